"""Live metrics for experiment trackers: what the loop sends, and TensorBoard event files."""

import dataclasses
import importlib.util

import pytest

from puzzles.errors import SelfplayError
from selfplay.config import TrackConfig, config_toml, preset
from selfplay.loop import run
from selfplay.reports.tracking import RunTracker
from selfplay.rundir import init_run

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


class MemoryTracker:
    """A tracker in accelerate's shape that keeps what it is sent."""

    name = "memory"
    requires_logging_directory = True
    sent: list[tuple[dict, int]] = []
    finished = 0

    def __init__(self, run_name, logging_dir):
        self.run_name, self.logging_dir = run_name, logging_dir

    def start(self):
        pass

    def log(self, values, step=None):
        MemoryTracker.sent.append((dict(values), step))

    def finish(self):
        MemoryTracker.finished += 1


@pytest.mark.slow
def test_the_loop_sends_training_steps_and_round_metrics(tmp_path, tiny_model, monkeypatch):
    from accelerate import tracking
    monkeypatch.setitem(tracking.LOGGER_TYPE_TO_CLASS, "memory", MemoryTracker)
    MemoryTracker.sent, MemoryTracker.finished = [], 0
    config = dataclasses.replace(preset("tiny"), rounds=1,
                                 track=TrackConfig(trackers=("memory",)))
    init_run(tmp_path / "run", config)
    run(tmp_path / "run")
    assert MemoryTracker.finished == 1
    steps = [(v["train/loss"], step) for v, step in MemoryTracker.sent if "train/loss" in v]
    assert [step for _, step in steps] == list(range(1, config.train.steps + 1))
    rounds = {step: v for v, step in MemoryTracker.sent if "train/loss" not in v}
    assert set(rounds) == {0, 1}
    assert set(rounds[0]) == {"round/heldout/pass@1", "round/heldout/pass@4"}
    assert rounds[1]["round/funnel/proposed"] > 0
    assert rounds[1]["round/trained/human"] > 0 and "round/heldout/pass@4" in rounds[1]

    # Raised to two rounds, the run sends round 2 only, its steps counted after round 1's.
    MemoryTracker.sent = []
    run(tmp_path / "run", rounds=2)
    steps = [step for v, step in MemoryTracker.sent if "train/loss" in v]
    assert steps == list(range(config.train.steps + 1, 2 * config.train.steps + 1))
    assert {step for v, step in MemoryTracker.sent if "train/loss" not in v} == {2}


def test_unknown_tracker_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(SelfplayError, match="unknown tracker 'tensorbored'.*tensorboard"):
        RunTracker.open(tmp_path, TrackConfig(trackers=("tensorbored",)))
    assert RunTracker.open(tmp_path, TrackConfig()) is None


def test_trackers_are_documented_in_the_config_file():
    text = config_toml(preset("tiny"))
    assert "[track]" in text and "trackers = []" in text


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed "
                                                "(pip install 'selfplay[tensorboard]')")
def test_tensorboard_event_files_hold_the_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tracker = RunTracker.open(tmp_path / "run", TrackConfig(trackers=("tensorboard",)))
    tracker.log({"train/loss": 2.5}, step=1)
    tracker.log({"train/loss": 1.5}, step=2)
    tracker.close()
    runs = list((tmp_path / "run" / "trackers").iterdir())
    assert [p.name for p in runs] == ["run"]
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 2.5), (2, 1.5)]
