"""Live metrics for experiment trackers: a long run watched in TensorBoard (or wandb offline,
MLflow, ...) while it goes, through the trackers accelerate already implements.

What goes out: every training step's loss, learning rate and gradient norm (`train/...`, at a
step counted over the whole run: the steps of earlier rounds plus this one's), and when a round
finishes, its funnel, training mix and loss, and pass@k per eval set (`round/...`, at the
round's number; round 0 is the base model's pass@k). A round finished by an earlier process is
not sent again; a training round resumed from a checkpoint sends its remaining steps.

The trackers are accelerate's tracker classes used directly, not through an `Accelerator`: the
loop makes no Accelerator of its own (each training round makes one, with its own mixed
precision, and accelerate's state allows only one setting per process). Nothing here changes
what a run computes, so `[track]` may change on resume.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from puzzles.errors import SelfplayError
from selfplay.reports.summaries import Funnel, round_records


def set_label(name: str) -> str:
    """A short name for an eval set, for tables and plots: `p3:test` for
    `p3:/long/path/puzzles.json:test`, a JSONL file's stem."""
    if name.startswith("p3:"):
        _, _, split = name[3:].partition(":")
        return f"p3:{split or 'test'}"  # with instances per problem: p3:test:1
    return Path(name).stem if name.endswith(".jsonl") else name


INSTALL = {"tensorboard": "'selfplay[tensorboard]'"}
"""What to pip install for a tracker whose package is not its own name (selfplay's extra)."""


class RunTracker:
    """The run's open trackers; `log` sends to every one."""

    def __init__(self, trackers: list):
        self.trackers = trackers

    @classmethod
    def open(cls, run_path: Path, track_config) -> RunTracker | None:
        """The trackers `[track]` asks for, started (None when it asks for none)."""
        names = tuple(track_config.trackers)
        if not names:
            return None
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        directory = Path(track_config.dir or "trackers")
        if not directory.is_absolute():
            directory = run_path / directory
        trackers = []
        for name in names:
            tracker_class = LOGGER_TYPE_TO_CLASS.get(name)
            if tracker_class is None:
                raise SelfplayError(f"track.trackers: unknown tracker {name!r} (accelerate "
                                    f"knows {', '.join(sorted(LOGGER_TYPE_TO_CLASS))})")
            kwargs = {}
            if getattr(tracker_class, "requires_logging_directory", False):
                kwargs["logging_dir"] = str(directory)
            if name == "wandb":
                # Offline by default: a run must not need an account or the network.
                kwargs["dir"] = str(directory)
                if "WANDB_MODE" not in os.environ:
                    kwargs["mode"] = "offline"
            directory.mkdir(parents=True, exist_ok=True)
            tracker = tracker_class(run_path.resolve().name, **kwargs)
            try:
                tracker.start()
            except ImportError:
                raise SelfplayError(f"track.trackers: the {name} tracker needs its package: "
                                    f"pip install {INSTALL.get(name, name)}") from None
            trackers.append(tracker)
        return cls(trackers)

    def log(self, values: dict[str, float], step: int) -> None:
        for tracker in self.trackers:
            tracker.log(values, step=step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()

    def on_train_step(self, store, round: int) -> Callable:
        """The training loop's `on_step` for round `round`: its steps continue the count of
        the rounds before it."""
        before = sum((record.get("train").steps for r, record in round_records(store).items()
                      if r < round and record.get("train") is not None), 0)

        def on_step(info) -> None:
            self.log({"train/loss": info.loss, "train/learning_rate": info.learning_rate,
                      "train/grad_norm": info.grad_norm, "train/round": round},
                     step=before + info.step)
        return on_step

    def log_round(self, store, round: int) -> None:
        """Round `round`'s funnel, training mix and loss, and pass@k per eval set."""
        self.log(round_values(store, round), step=round)


def round_values(store, round: int) -> dict[str, float]:
    record = round_records(store, round).get(round)
    values: dict[str, float] = {}
    if record is not None and round > 0:
        funnel = Funnel.of(record, len(store.train_examples(round)))
        for name, _, count in funnel.rows():
            if count is not None:
                values[f"round/funnel/{name}"] = count
        if (select := record.get("select")) is not None:
            values["round/trained/synthetic"] = select.synthetic
            values["round/trained/human"] = select.human
        if (train := record.get("train")) is not None and train.last_loss is not None:
            values["round/train/last_loss"] = train.last_loss
    for name, entry in store.metrics(round).get(round, {}).items():
        if name.startswith("eval/") and isinstance(entry, dict):
            for k, value in (entry.get("pass_at_k") or {}).items():
                values[f"round/{set_label(name[len('eval/'):])}/pass@{k}"] = value
    return values
