"""`selfplay puzzles add|list|export` as a user runs them."""

import json
import sqlite3

import pytest

from selfplay.cli import main

GOOD = {"name": "good", "family": "arith", "split": "train",
        "puzzle": "def f(x: int, a=5):\n    return x * 2 == a * 4",
        "solutions": ["def g(a=5):\n    return a * 2"]}
UNSOLVED = {"name": "unsolved", "family": "arith", "split": "train",
            "puzzle": "def f(x: int, a=7):\n    return x * 3 == a * 9"}


def line(obj):
    return json.dumps(obj) + "\n"


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join([
        line(GOOD),
        line(UNSOLVED),
        line({"name": "syntax", "puzzle": "def f(x: int) return x"}),
        line({"name": "loops", "puzzle": "def f(x: int):\n    return x == 3",
              "solutions": ["def g():\n    while True:\n        pass\n    return 3"]}),
        line({"name": "wrong", "puzzle": "def f(x: int):\n    return x == 4",
              "solutions": ["def g():\n    return 5"]}),
        line({**GOOD, "name": "good again"}),
        "{this is not json\n",
    ]))
    return path


def test_add_reports_every_problem_and_stores_only_good_puzzles(bad_file, tmp_path, capsys):
    store = tmp_path / "s.db"
    # The loop runs 1 s, then 2 s of CPU time when run again as a reference that timed out.
    quick = ["--timeout", "1", "--reference-timeout-factor", "2"]
    assert main(["puzzles", "add", str(bad_file), "--store", str(store), *quick]) == 0
    out = capsys.readouterr().out
    assert "added 2 puzzles (1 unsolved) and 1 verified solutions" in out
    assert "1 duplicates skipped" in out
    assert ":3 (syntax): " in out and "syntax error" in out
    assert "(loops): reference solution timeout: g() ran over the 2 s CPU limit" in out
    assert "(wrong)" in out and "fail" in out
    assert ":7: bad JSON" in out
    assert main(["puzzles", "list", "--store", str(store), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["name"], r["n_solutions"], r["origin"]) for r in rows} == {
        ("good", 1, "imported"), ("unsolved", 0, "imported")}
    # Adding the same file again stores nothing new.
    assert main(["puzzles", "add", str(bad_file), "--store", str(store), *quick]) == 0
    assert "added 0 puzzles" in capsys.readouterr().out


def test_a_failing_batch_leaves_the_store_unchanged(tmp_path, capsys):
    store = tmp_path / "s.db"
    good = tmp_path / "good.jsonl"
    good.write_text(line(GOOD))
    assert main(["puzzles", "add", str(good), "--store", str(store)]) == 0
    before = sqlite3.connect(store).execute("SELECT hash FROM puzzles").fetchall()
    broken = tmp_path / "broken.json"
    broken.write_text("[{\"sat\": ")  # a P3 file cut off mid-way
    assert main(["puzzles", "add", str(broken), "--store", str(store)]) == 1
    assert "bad JSON" in capsys.readouterr().err
    assert sqlite3.connect(store).execute("SELECT hash FROM puzzles").fetchall() == before


def test_list_without_store_shows_the_seed_corpus(capsys):
    assert main(["puzzles", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 250
    assert set(rows[0]) >= {"hash", "name", "family", "split", "origin", "n_solutions"}
    assert {r["split"] for r in rows} == {"train", "heldout"}
    assert all(r["origin"] == "seed" and r["n_solutions"] >= 1 for r in rows)


def test_export_jsonl_and_p3_read_back(tmp_path, capsys):
    store = tmp_path / "s.db"
    src = tmp_path / "in.jsonl"
    src.write_text(line(GOOD) + line(UNSOLVED))
    main(["puzzles", "add", str(src), "--store", str(store)])
    for fmt in ("jsonl", "p3"):
        out = tmp_path / f"out.{fmt}"
        assert main(["puzzles", "export", "--store", str(store), "--format", fmt,
                     "--out", str(out)]) == 0
        again = tmp_path / f"again-{fmt}.db"
        main(["puzzles", "add", str(out), "--store", str(again)])
        capsys.readouterr()
        main(["puzzles", "list", "--store", str(again), "--json"])
        rows = json.loads(capsys.readouterr().out)
        assert sorted((r["name"], r["n_solutions"]) for r in rows) == [("good", 1),
                                                                      ("unsolved", 0)]


def test_missing_store_for_list_is_a_clear_error(tmp_path, capsys):
    assert main(["puzzles", "list", "--store", str(tmp_path / "nope.db")]) == 1
    assert "no store at" in capsys.readouterr().err


def test_a_file_whose_every_puzzle_is_rejected_exits_non_zero_naming_each(tmp_path, capsys):
    src = tmp_path / "all-bad.jsonl"
    src.write_text(line({"name": "wrong", "puzzle": "def f(x: int):\n    return x == 4",
                         "solutions": ["def g():\n    return 5"]}) +
                   line({"name": "syntax", "puzzle": "def f(x: int) return x"}))
    store = tmp_path / "s.db"
    assert main(["puzzles", "add", str(src), "--store", str(store)]) == 1
    captured = capsys.readouterr()
    assert "(wrong): reference solution fail" in captured.out and "(syntax)" in captured.out
    assert f"every record of {src} was rejected" in captured.err
    # A file of puzzles the store holds already is no error: nothing was rejected.
    good = tmp_path / "good.jsonl"
    good.write_text(line(GOOD))
    assert main(["puzzles", "add", str(good), "--store", str(store)]) == 0
    assert main(["puzzles", "add", str(good), "--store", str(store)]) == 0
