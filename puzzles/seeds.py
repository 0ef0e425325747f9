"""The shipped seed corpus: original puzzles written for this project, one JSONL file a family.

Whole families are held out (`split: heldout`): no round ever trains on them, so evaluation on
them measures skill on puzzles of a kind the model never saw.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path

from puzzles.errors import SelfplayError
from puzzles.records import PuzzleRecord, read_jsonl

SEEDS_DIR = Path(__file__).parent / "seeds"


def seed_files() -> list[Path]:
    return sorted(SEEDS_DIR.glob("*.jsonl"))


@cache
def _all_seeds() -> tuple[PuzzleRecord, ...]:
    records = []
    for path in seed_files():
        good, bad = read_jsonl(path)
        if bad:
            # The corpus ships with the package: a bad line is our bug, never the user's.
            raise SelfplayError(f"shipped seed corpus is broken: {bad[0]}")
        for r in good:
            r.provenance = {"origin": "seed", **r.provenance}
        records.extend(good)
    return tuple(records)


def load_seeds(split: str | None = None) -> list[PuzzleRecord]:
    """The seed records, optionally only one split (`train` or `heldout`)."""
    # Copies, so a caller that edits a record cannot change what the next caller sees.
    return [replace(r, solutions=list(r.solutions), provenance=dict(r.provenance))
            for r in _all_seeds() if split is None or r.puzzle.split == split]


def families(split: str | None = None) -> list[str]:
    return sorted({r.puzzle.family for r in load_seeds(split)})
