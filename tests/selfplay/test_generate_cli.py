"""`selfplay puzzles generate` as a user runs it: verified, deduplicated, train-only instances
of the rule-based generators, stored with origin `generator`."""

from __future__ import annotations

import pytest

from puzzles.generators import Generator, families
from puzzles.seeds import families as seed_families
from puzzles.store import Store
from sandbox import Verifier
from selfplay.cli import main
from selfplay.compute.attempts import HUMAN_ORIGINS
from selfplay.corpus.generating import generate_into


def test_generate_stores_n_verified_instances_across_the_families(tmp_path, capsys):
    path = tmp_path / "g.sqlite"
    assert main(["puzzles", "generate", "--n", "120", "--seed", "1", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("stored 120 puzzles in ")
    assert "0 failed verification" in out
    with Store(path) as store:
        stored = store.puzzles(origin="generator")
        assert len(stored) == 120 and all(sp.n_solutions == 1 for sp in stored)
        assert len({sp.puzzle.family for sp in stored}) >= 15
        assert {sp.puzzle.split for sp in stored} == {"train"}
        assert not {sp.puzzle.family for sp in stored} & set(seed_families("heldout"))
        assert all({"generator", "seed", "run_seed"} <= set(sp.provenance) for sp in stored)
        assert {s.origin for s in store.solutions()} == {"generator"} <= set(HUMAN_ORIGINS)

    # The same draw again: every instance is already there, counted as a duplicate.
    assert main(["puzzles", "generate", "--n", "120", "--seed", "1", "--store", str(path)]) == 0
    assert capsys.readouterr().out.startswith("stored 0 puzzles in 0 families (); 120 duplicates")
    with Store(path) as store:
        assert len(store.puzzles()) == 120


def test_generate_one_family(tmp_path, capsys):
    path = tmp_path / "g.sqlite"
    assert main(["puzzles", "generate", "--family", "graphs", "--n", "5", "--store",
                 str(path)]) == 0
    with Store(path) as store:
        assert {sp.puzzle.family for sp in store.puzzles()} == {"graphs"}


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "--n must be at least 1, not 0"),
    (["--n", "3", "--family", "nope"], "no generator for family 'nope'"),
    (["--n", "3", "--family", "geometry"], "held-out family"),
])
def test_bad_input_names_the_problem_and_writes_nothing(tmp_path, capsys, argv, message):
    path = tmp_path / "g.sqlite"
    assert main(["puzzles", "generate", *argv, "--store", str(path)]) != 0
    assert message in capsys.readouterr().err
    assert not path.exists()


def test_wrong_reference_and_trivial_instances_are_counted_not_stored(tmp_path, monkeypatch):
    # A generator with a bug some seeds reach: the sandbox and the trivial answers catch it.
    def params(rng):
        return {"a": rng.choice([3, 40, 41])}
    buggy = Generator("arithmetic/buggy", "x: int", "Find x = a * 2.", "return x == a * 2",
                      "return a * 2 if a != 41 else 0", params)
    monkeypatch.setattr("puzzles.generators.generators", lambda family=None: [buggy])
    with Store(tmp_path / "g.sqlite") as store, Verifier() as verifier:
        report = generate_into(store, verifier, 3, 1)
        assert report.trivial == {"arithmetic": 1}      # a = 3: x = 6 is a trivial answer
        assert report.failed == {"arithmetic": 1}       # a = 41: the reference returns 0
        assert report.stored == {"arithmetic": 1}
        assert [sp.puzzle.extra_args for sp in store.puzzles()] == [(("a", "40"),)]
    assert "1 trivial; 1 failed verification" in report.lines()[0]


def test_families_cover_at_least_15():
    assert len(families()) >= 15


def test_withheld_instances_are_stored_unsolved_spread_over_families(tmp_path, capsys):
    # A withheld instance is a train puzzle the model must solve itself: its reference solution
    # verified (it is solvable) but is not stored, and every family keeps solved instances.
    path = tmp_path / "g.sqlite"
    assert main(["puzzles", "generate", "--n", "60", "--seed", "2", "--withhold", "30",
                 "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert ", 30 of them without their reference solution;" in out.splitlines()[0]
    with Store(path) as store:
        unsolved = store.puzzles(origin="generator", solved=False)
        solved = store.puzzles(origin="generator", solved=True)
        assert len(unsolved) == 30 and len(solved) == 30
        assert all(sp.provenance.get("reference_withheld") is True for sp in unsolved)
        assert not any("reference_withheld" in sp.provenance for sp in solved)
        families = {sp.puzzle.family for sp in unsolved + solved}
        assert {sp.puzzle.family for sp in solved} == families
        per_family = [sum(sp.puzzle.family == f for sp in unsolved) for f in families]
        assert max(per_family) - min(per_family) <= 1
        # Withheld, not lost: the solve stage's unsolved targets are exactly these.
        assert {sp.id for sp in store.puzzles(split="train", solved=False)} == {
            sp.id for sp in unsolved}


def test_withhold_out_of_range_is_refused_before_anything_is_written(tmp_path, capsys):
    path = tmp_path / "g.sqlite"
    assert main(["puzzles", "generate", "--n", "3", "--withhold", "4", "--store",
                 str(path)]) != 0
    assert "--withhold must be between 0 and --n = 3, not 4" in capsys.readouterr().err
    assert not path.exists()
