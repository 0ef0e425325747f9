"""The real P3 v0.2 data set, when it sits beside the checkout (../shared/data/p3)."""

from collections import Counter
from pathlib import Path

import pytest

from puzzles.p3 import read_p3, write_p3

P3 = Path(__file__).resolve().parents[3] / "shared" / "data" / "p3"
pytestmark = pytest.mark.skipif(not (P3 / "puzzles.json").exists(),
                                reason="P3 data not present beside the checkout")


@pytest.fixture(scope="module")
def p3_records():
    records, rejected = read_p3(P3 / "puzzles.json")
    assert rejected == []
    return records


def test_counts_and_split(p3_records):
    assert len(p3_records) == 1715
    assert len({r.puzzle.family for r in p3_records}) == 397
    assert sum(len(r.solutions) for r in p3_records) == 1698
    assert sum(1 for r in p3_records if not r.solutions) == 54
    assert Counter(r.puzzle.split for r in p3_records) == {"train": 636, "heldout": 1009,
                                                           "none": 70}
    assert len({r.puzzle.hash for r in p3_records}) == 1715


def test_export_and_reimport_round_trips_every_puzzle(p3_records, tmp_path):
    write_p3(p3_records, tmp_path / "puzzles.json")
    again, rejected = read_p3(tmp_path / "puzzles.json", P3 / "split.json")
    assert rejected == []
    assert [r.puzzle for r in again] == [r.puzzle for r in p3_records]
    assert [r.solutions for r in again] == [r.solutions for r in p3_records]
