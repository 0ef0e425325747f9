"""bench/round.py: one round, stage by stage, under two configs from one snapshot."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "round.py"
# Small enough for seconds: few proposals and attempts, one or two training steps.
SMALL = ["propose.prompts=2", "propose.per_prompt=2", "solve.attempts=2", "train.steps=1"]


@pytest.fixture(scope="module")
def round_bench():
    spec = importlib.util.spec_from_file_location("round_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["round_bench"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["round_bench"]


@pytest.mark.slow
def test_quick_mode_runs_each_arm_on_its_own_copy_of_the_snapshot(round_bench, tmp_path,
                                                                  capsys):
    out = tmp_path / "runs.json"
    args = ["--quick", "--json", str(out)]
    for s in SMALL:
        args += ["--baseline", s]
    for s in SMALL[:-1] + ["train.steps=2"]:
        args += ["--candidate", s]
    assert round_bench.main(args) == 0
    runs = json.loads(out.read_text())
    assert [r["arm"] for r in runs] == ["baseline", "candidate"]
    for run in runs:
        assert list(run["seconds"]) == list(round_bench.ROUND_STAGES)
        assert run["output"]["proposed"] == 4
    printed = capsys.readouterr().out
    assert "candidate / baseline wall time" in printed and "new pairs" in printed


def test_a_snapshot_whose_round_has_started_is_refused(round_bench, tmp_path, capsys):
    from puzzles.store import Store
    from selfplay.config import preset
    from selfplay.rundir import init_run

    run = init_run(tmp_path / "run", preset("tiny"))
    with Store(run.store_file) as store, store.transaction():
        store.mark_stage_done(0, "seed", {})
        store.mark_stage_done(1, "propose", {})
    assert round_bench.main([str(run.path)]) == 1
    assert "round 1 has already started" in capsys.readouterr().err
