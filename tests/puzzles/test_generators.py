"""Rule-based generators: every instance a generator can draw is a well-formed puzzle that its
reference solution solves and no trivial answer does (a property over many seeds)."""

from __future__ import annotations

import pytest

from puzzles.errors import SelfplayError
from puzzles.format import parse_puzzle, parse_solution
from puzzles.generators import Generator, families, generate, generators, split_of
from puzzles.seeds import families as seed_families
from puzzles.trivial import trivial_answers
from puzzles.types import parse_type
from sandbox import Pair, Verifier, VerifierConfig

SEEDS = range(200)


@pytest.fixture(scope="module")
def verifier():
    with Verifier(VerifierConfig()) as v:
        yield v


@pytest.mark.parametrize("gen", generators(), ids=lambda g: g.name)
def test_every_instance_is_solved_by_its_reference_and_by_no_trivial_answer(gen, verifier):
    records = [gen.instance(seed, "train") for seed in SEEDS]
    for r in records:
        # Round-trips through the project's parsers, as a seed line would.
        checker, solution = gen.sources(r.provenance["seed"])
        assert parse_puzzle(checker).hash == r.puzzle.hash
        parse_solution(solution, r.puzzle)
        assert r.puzzle.family == gen.family and r.provenance["generator"] == gen.name
    verdicts = verifier.verify_many([Pair(r.puzzle.source, r.solutions[0]) for r in records])
    failed = [(r.puzzle.name, v.verdict, v.detail) for r, v in zip(records, verdicts)
              if v.verdict != "pass"]
    assert not failed, failed[:3]
    items = [(r.puzzle.source, a) for r in records
             for a in trivial_answers(parse_type(r.puzzle.answer_type))]
    trivial = [(source, a) for (source, a), v in zip(items, verifier.check_answers(items))
               if v.verdict == "pass"]
    assert not trivial, trivial[:3]
    # Instances vary with the seed (a generator that ignores its RNG is one puzzle).
    assert len({r.puzzle.hash for r in records}) >= len(records) * 0.9


def test_the_same_seed_draws_the_same_instance():
    for gen in generators():
        assert gen.sources(7) == gen.sources(7)
        assert gen.sources(7) != gen.sources(8)


def test_at_least_15_families_with_varied_answer_types():
    assert len(families()) >= 15
    types = {gen.answer.split(": ", 1)[1] for gen in generators()}
    assert {"int", "str", "list[int]", "list[str]"} <= types


def test_generators_are_of_train_families_and_never_put_heldout_in_train():
    assert set(families()) <= set(seed_families("train"))
    for family in seed_families("heldout"):
        assert split_of(family) == "heldout"
        with pytest.raises(SelfplayError, match="held-out"):
            generators(family)
    drawn = generate(300, 5)
    assert {r.puzzle.split for r in drawn.records} == {"train"}
    heldout = set(seed_families("heldout"))
    assert not [r for r in drawn.records if r.puzzle.family in heldout]


def test_generate_gives_n_distinct_instances_across_families_reproducibly():
    drawn = generate(200, 1)
    assert len(drawn.records) == 200
    assert len({r.puzzle.hash for r in drawn.records}) == 200
    assert len({r.puzzle.family for r in drawn.records}) == len(families())
    assert [r.puzzle.hash for r in generate(200, 1).records] == [
        r.puzzle.hash for r in drawn.records]
    assert all(r.provenance["run_seed"] == 1 and "seed" in r.provenance for r in drawn.records)


def test_one_family():
    drawn = generate(50, 2, family="strings")
    assert {r.puzzle.family for r in drawn.records} == {"strings"}
    assert len(drawn.records) == 50


def test_identical_instances_collapse_and_are_counted(monkeypatch):
    # Three distinct instances only: asked for ten, it returns the three (stopping after
    # 20 * n draws instead of looping) and counts every repeat.
    small = Generator("arithmetic/tiny_space", "x: int", "Find x = a + 1.", "return x == a + 1",
                      "return a + 1", lambda rng: {"a": rng.randint(11, 13)})
    monkeypatch.setattr("puzzles.generators.generators", lambda family=None: [small])
    drawn = generate(10, 1)
    assert len(drawn.records) == 3
    assert drawn.duplicates == {"arithmetic": 20 * 10 - 3}


@pytest.mark.parametrize("n", [0, -3])
def test_bad_n_names_the_problem(n):
    with pytest.raises(SelfplayError, match="n must be at least 1"):
        generate(n, 1)


def test_unknown_family_names_the_known_ones():
    with pytest.raises(SelfplayError, match="no generator for family 'nope'.*arithmetic"):
        generate(3, 1, family="nope")
