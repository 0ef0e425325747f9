"""The shipped seed corpus: size, families, the held-out split, and every reference solution."""

from collections import Counter

from puzzles.seeds import families, load_seeds


def test_corpus_size_families_and_split():
    seeds = load_seeds()
    assert len(seeds) >= 250
    assert len(families()) >= 25
    heldout, train = set(families("heldout")), set(families("train"))
    assert len(heldout) >= 6
    assert not heldout & train, "a family is either all train or all held out"
    assert len({r.puzzle.hash for r in seeds}) == len(seeds)
    assert len({r.puzzle.name for r in seeds}) == len(seeds)
    assert all(r.solutions for r in seeds)
    assert all(r.puzzle.difficulty in ("easy", "medium", "hard") for r in seeds)
    assert all(r.puzzle.docstring for r in seeds), "each puzzle says what it asks"
    assert min(Counter(r.puzzle.family for r in seeds).values()) >= 8


def test_load_seeds_returns_copies():
    first = load_seeds()[0]
    first.solutions.append("junk")
    assert "junk" not in load_seeds()[0].solutions
