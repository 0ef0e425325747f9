import json

import pytest

from puzzles import SelfplayError
from puzzles.p3 import read_p3, write_p3
from puzzles.records import read_jsonl, write_jsonl

PUZZLE = 'def f(x: int, a=3):\n    """Find x above a."""\n    return x > a\n'


def test_jsonl_round_trip_keeps_puzzle_solutions_metadata_and_provenance(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"name": "above", "family": "arith", "split": "train",
                                "difficulty": "easy", "tags": ["t"], "puzzle": PUZZLE,
                                "solutions": ["def g(a=3):\n    return a + 1"],
                                "provenance": {"origin": "generated", "round": 2}}) + "\n")
    records, rejected = read_jsonl(path)
    assert not rejected
    write_jsonl(records, tmp_path / "out.jsonl")
    again, _ = read_jsonl(tmp_path / "out.jsonl")
    assert again[0].puzzle == records[0].puzzle
    assert again[0].puzzle.docstring == "Find x above a."
    assert again[0].solutions == records[0].solutions
    assert again[0].provenance == {"origin": "generated", "round": 2}


def test_jsonl_bad_lines_are_reported_by_line_and_the_rest_kept(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([
        json.dumps({"puzzle": PUZZLE}),
        "{not json",
        json.dumps({"puzzle": "def f(x: int) return"}),
        json.dumps({"puzzle": PUZZLE, "colour": "red"}),
        json.dumps(["a list"]),
    ]) + "\n")
    records, rejected = read_jsonl(path)
    assert len(records) == 1
    reasons = {r.where.rsplit(":", 1)[1]: r.reason for r in rejected}
    assert set(reasons) == {"2", "3", "4", "5"}
    assert "bad JSON" in reasons["2"]
    assert "syntax error" in reasons["3"]
    assert "colour" in reasons["4"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SelfplayError, match="cannot read"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_p3_round_trip_small(tmp_path):
    p3 = [{"name": "Above:0", "sat": "def sat(x: int, a=3):\n    return x > a",
           "ans_type": "int", "sol_header": "def sol(a=3):",
           "sol_docstring": '    """Find x above a."""', "sol_bodies": ["    return a + 1"],
           "module": "m.py", "notes": "", "weight": 1.0}]
    (tmp_path / "p.json").write_text(json.dumps(p3))
    records, rejected = read_p3(tmp_path / "p.json")
    assert not rejected and records[0].puzzle.family == "Above"
    write_p3(records, tmp_path / "out.json")
    out = json.loads((tmp_path / "out.json").read_text())
    assert out[0]["sat"].startswith("def sat(x: int, a=3):")
    assert out[0]["sol_header"] == "def sol(a=3):"
    assert out[0]["sol_bodies"] == ["    return a + 1"]
    again, _ = read_p3(tmp_path / "out.json")
    assert again[0].puzzle == records[0].puzzle and again[0].solutions == records[0].solutions


def test_p3_bad_json_is_a_clear_error(tmp_path):
    (tmp_path / "p.json").write_text("[{oops")
    with pytest.raises(SelfplayError, match="bad JSON at line 1"):
        read_p3(tmp_path / "p.json")
