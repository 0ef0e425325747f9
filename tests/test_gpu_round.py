"""bench/gpu_check.py --round without CUDA: the same round the GPU runs (the `gpu` preset with
bench/gpu_round.py's settings), sized down to the `tiny` model on the CPU. It completes, its
stage times and funnel agree with each other, the eval of rounds 0 and 1 on a P3 file's test
problems runs when time is left, the results file is written; a round past its budget is cut
and reports the stages that had finished."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gpu_check():
    yield _load("gpu_check")
    del sys.modules["gpu_check"]


def _mini_p3(folder: Path) -> Path:
    """A P3 puzzles.json with split.json: 3 test problems (one with 2 instances), 1 train."""
    items = []
    for name, split, sat, body in (
            ("Add:0", "test", "def sat(x: int):\n    return x + 3 == 10", "    return 7"),
            ("Add:1", "test", "def sat(x: int):\n    return x + 4 == 10", "    return 6"),
            ("Rev:0", "test", "def sat(s: str):\n    return s[::-1] == 'ab'", "    return 'ba'"),
            ("Len:0", "test", "def sat(li: List[int]):\n    return len(li) == 3",
             "    return [1, 2, 3]"),
            ("Mul:0", "train", "def sat(x: int):\n    return x * 3 == 12", "    return 4")):
        items.append({"name": name, "sat": sat, "sol_header": "def sol():",
                      "sol_docstring": "", "sol_bodies": [body], "module": "t.py", "notes": "",
                      "weight": 1.0})
    folder.mkdir(parents=True)
    (folder / "puzzles.json").write_text(json.dumps(items))
    (folder / "split.json").write_text(json.dumps({"train": ["Mul"],
                                                   "test": ["Add", "Rev", "Len"]}))
    return folder / "puzzles.json"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA dry run")
def test_the_round_runs_on_the_cpu_and_its_figures_agree(gpu_check, tiny_model, tmp_path):
    p3 = _mini_p3(tmp_path / "p3")
    out = tmp_path / "out"
    # --budget-seconds 0 skips the table's parts (test_gpu_check.py runs them): the round has
    # its own budget.
    assert gpu_check.main(["--cpu-only", "--models", "tiny", "--budget-seconds", "0",
                           "--round", "--round-budget-s", "240", "--p3", str(p3),
                           "--eval-k", "1,2", "--eval-n", "2", "--out-dir", str(out)]) == 0
    [text] = out.glob("gpu_*.txt")
    data = json.loads(text.with_suffix(".json").read_text())
    result = data["round"]
    assert result["complete"] and result["error"] is None and result["stopped"] is None
    assert (result["model"], result["device"]) == ("tiny", "cpu")
    # The GPU settings are applied and only then sized down: one config, two sizes.
    settings = result["settings"]
    assert settings.index("solve.attempts=32") < settings.index("solve.attempts=2")
    assert f"eval.sets={json.dumps([f'p3:{p3.resolve()}:test:1'])}" in settings

    stages = [(s["round"], s["stage"]) for s in result["stages"]]
    assert stages == [(0, "seed"), (0, "eval")] + [(1, s) for s in (
        "propose", "filter", "dedup", "solve", "verify", "select", "train", "eval", "card")]
    assert all(s["seconds"] >= 0 for s in result["stages"])
    assert sum(s["seconds"] for s in result["stages"]) <= result["wall_s"]

    funnel = result["funnel"]
    summary = {s["stage"]: s["summary"] for s in result["stages"] if s["round"] == 1}
    assert funnel["proposed"] == summary["propose"]["proposed"] == 4 * 4
    assert funnel["proposed"] >= funnel["valid"] >= funnel["novel"]
    # 4 withheld generator instances are the solve targets (with any novel proposal).
    assert funnel["solve_targets"] >= 4 and funnel["attempts"] == 2 * funnel["solve_targets"]
    assert funnel["attempts"] >= funnel["parsed"] >= funnel["passed"]
    assert funnel["train_examples"] == summary["train"]["examples"] > 0

    tokens = result["tokens"]
    assert set(tokens) == {"propose", "solve", "train"}
    assert tokens["solve"]["tokens"] > 0 and tokens["train"]["tokens"] == \
        summary["train"]["tokens"]
    for stage in ("propose", "solve"):
        assert tokens[stage]["seconds"] == pytest.approx(
            next(s["seconds"] for s in result["stages"] if s["stage"] == stage and
                 s["round"] == 1), abs=1e-3)

    evals = result["eval"]
    assert [e["round"] for e in evals] == [0, 1]
    for e in evals:
        assert e["problems"] == 3 and e["samples"] == 2  # Add, Rev, Len: one instance each
        assert set(e["pass_at_k"]) == {"1", "2"} and e["seconds"] > 0

    rows = {r["what"]: r for r in data["rows"]}
    assert rows["self-play round (bench/gpu_round.py)"]["check"] == "ok (round done)"
    assert "tiny loop, 1 round" not in " ".join(rows)  # --round replaces it
    assert text.read_text().splitlines()[-1].endswith("no check failed")


def test_a_round_past_its_budget_is_cut_and_keeps_what_finished(tmp_path):
    gpu_round = _load("gpu_round")
    settings = gpu_round.round_settings(cuda=False, p3=None, extra=[])
    result = gpu_round.run_round(tmp_path, settings, 0.5, p3="unused", say=lambda line: None)
    assert not result["complete"] and "budget ran out" in result["stopped"]
    assert result["error"] is None
    assert result["wall_s"] < 30  # the child was stopped, not waited for
    # Nothing had finished in half a second; the evals are skipped, saying why.
    assert result["stages"] == [] and result["funnel"] == {}
    assert [e.get("skipped") for e in result["eval"]] == ["the round did not finish"] * 2
    assert gpu_round.report_lines(result)  # a partial result still formats


def test_a_payload_s_p3_files_are_the_round_s_default(gpu_check, tmp_path):
    assert gpu_check.carried_p3(tmp_path) is None
    (tmp_path / "p3").mkdir()
    (tmp_path / "p3" / "puzzles.json").write_text("[]")
    assert gpu_check.carried_p3(tmp_path) is None  # without split.json there is no test split
    (tmp_path / "p3" / "split.json").write_text("{}")
    assert gpu_check.carried_p3(tmp_path) == str(tmp_path / "p3" / "puzzles.json")


def test_the_gpu_round_is_the_gpu_preset_at_one_round_of_minutes():
    from selfplay.config import preset, with_settings
    gpu_round = _load("gpu_round")
    config = with_settings(preset("gpu"), gpu_round.round_settings(
        cuda=True, p3="/d/puzzles.json", extra=["solve.attempts=16"]))
    assert config.rounds == 1
    assert (config.model.name, config.model.device, config.model.dtype) == (
        "smollm2-135m", "cuda", "bfloat16")
    assert config.generation.backend == "transformers"  # no vLLM on the lent machines
    assert config.propose.prompts * config.propose.per_prompt >= 200  # hundreds of proposals
    assert config.solve.attempts == 16  # the caller's setting wins
    assert (config.train.steps, config.train.epochs) == (0, 1.0)  # one epoch
    assert config.eval.sets == ("p3:/d/puzzles.json:test:1",)  # decontaminated from the start


def test_a_bad_round_setting_is_refused_before_the_table(gpu_check, capsys):
    with pytest.raises(SystemExit, match=r"--round: setting 'solve.atempts': no such key"):
        gpu_check.main(["--cpu-only", "--round", "--round-set", "solve.atempts=3"])
    assert "packages" not in capsys.readouterr().out  # no part ran
