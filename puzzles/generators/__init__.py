"""Rule-based puzzle generators, shipped beside the seed corpus: a source of human-authored
puzzles as P3 was built (a puzzle class, random instances, one reference solution).

Each generator belongs to a seed family and its instances take that family's split, so a
held-out family's instance can never reach the train split. Every generator shipped here is
of a train family (a test holds that): held-out families stay puzzles of a kind no round saw.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from puzzles.errors import SelfplayError
from puzzles.generators import lists, numbers, structures, text
from puzzles.generators.base import Generator
from puzzles.records import PuzzleRecord

__all__ = ["Generated", "Generator", "families", "generate", "generators"]


def generators(family: str | None = None) -> list[Generator]:
    """The shipped generators (of one family if given), in a fixed order."""
    every = [*numbers.GENERATORS, *lists.GENERATORS, *text.GENERATORS, *structures.GENERATORS]
    if family is None:
        return every
    chosen = [g for g in every if g.family == family]
    if not chosen:
        why = " (a held-out family: none is shipped, so no round trains on its kind)" \
            if split_of(family) == "heldout" else ""
        raise SelfplayError(f"no generator for family {family!r}{why}; families with "
                            f"generators: {', '.join(families())}")
    return chosen


def families() -> list[str]:
    return sorted({g.family for g in generators()})


def split_of(family: str) -> str:
    """The split a family's instances go to: its seed family's (held out stays held out)."""
    from puzzles.seeds import families as seed_families
    return "heldout" if family in seed_families("heldout") else "train"


@dataclass
class Generated:
    records: list[PuzzleRecord]
    """Distinct instances (by canonical hash), provenance naming generator and seed."""
    duplicates: Counter = field(default_factory=Counter)
    """Per family, instances drawn again that were already among `records`."""


def generate(n: int, seed: int, family: str | None = None) -> Generated:
    """`n` distinct instances, taking the generators in turn (of `family` only, if given).

    The same (n, seed, family) gives the same instances. Draws stop after 20 * n tries, so a
    generator with fewer distinct instances than asked for returns fewer rather than loop."""
    if n < 1:
        raise SelfplayError(f"n must be at least 1, not {n}")
    gens = generators(family)
    splits = {g.family: split_of(g.family) for g in gens}
    rng = random.Random(seed)
    out = Generated([])
    seen: set[str] = set()
    for i in range(20 * n):
        if len(out.records) == n:
            break
        gen = gens[i % len(gens)]
        record = gen.instance(rng.randrange(2 ** 32), splits[gen.family])
        if record.puzzle.hash in seen:
            out.duplicates[gen.family] += 1
            continue
        seen.add(record.puzzle.hash)
        record.provenance["run_seed"] = seed
        out.records.append(record)
    return out
