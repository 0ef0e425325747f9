"""Storing rule-based generator instances (puzzles.generators): draw, drop what a trivial answer
solves, verify each reference solution in the sandbox, store with origin `generator`. Some may
be stored without their reference solution (`withhold`): verified solvable, they are train
puzzles the model has to solve itself, so each of its verified solutions is a new pair.

The same gate as any puzzle a person adds (selfplay.corpus.importing.add_records), plus the filter
stage's trivial answers: a generator is code, and code has bugs that only some seeds reach.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from puzzles.errors import SelfplayError
from puzzles.generators import generate
from puzzles.records import PuzzleRecord
from puzzles.store import Store
from puzzles.trivial import trivial_answers
from puzzles.types import parse_type
from sandbox import Verifier
from selfplay.corpus.importing import add_records


@dataclass
class GenerateReport:
    stored: Counter = field(default_factory=Counter)
    """New puzzles stored, by family."""
    duplicates: Counter = field(default_factory=Counter)
    """Instances drawn twice or already in the store, by family."""
    trivial: Counter = field(default_factory=Counter)
    """Instances a trivial answer satisfies (not stored), by family."""
    failed: Counter = field(default_factory=Counter)
    """Instances whose reference solution did not verify (not stored), by family."""
    splits: Counter = field(default_factory=Counter)
    """New puzzles stored, by split."""
    withheld: Counter = field(default_factory=Counter)
    """Of the new puzzles, those stored without their (verified) reference solution, by
    family."""

    def lines(self) -> list[str]:
        out = [f"stored {sum(self.stored.values())} puzzles in {len(self.stored)} families "
               f"({', '.join(f'{n} {s}' for s, n in sorted(self.splits.items()))})"
               + (f", {sum(self.withheld.values())} of them without their reference solution"
                  if self.withheld.total() else "")
               + f"; {sum(self.duplicates.values())} duplicates; "
               f"{sum(self.trivial.values())} trivial; "
               f"{sum(self.failed.values())} failed verification"]
        for family in sorted(set(self.stored) | set(self.duplicates) | set(self.trivial)
                             | set(self.failed)):
            out.append(f"  {family:<22} stored {self.stored[family]:>5}  duplicates "
                       f"{self.duplicates[family]:>4}  trivial {self.trivial[family]:>4}  "
                       f"failed {self.failed[family]:>4}  withheld {self.withheld[family]:>4}")
        return out


def _family(record: PuzzleRecord) -> str:
    return record.puzzle.family


def _not_trivial(records: list[PuzzleRecord], verifier: Verifier, report: GenerateReport
                 ) -> list[PuzzleRecord]:
    items, owners = [], []
    for i, r in enumerate(records):
        for answer in trivial_answers(parse_type(r.puzzle.answer_type)):
            items.append((r.puzzle.source, answer))
            owners.append(i)
    solved = {i for i, v in zip(owners, verifier.check_answers(items)) if v.verdict == "pass"}
    for i in solved:
        report.trivial[_family(records[i])] += 1
    return [r for i, r in enumerate(records) if i not in solved]


def choose_withheld(records: list[PuzzleRecord], n: int, seed: int) -> set[str]:
    """Names of `n` records, spread over the families in turn (a random order within each): every
    family keeps solved instances, whose solutions the solver's few-shot examples show, for as
    long as `n` leaves any."""
    by_family: dict[str, list[str]] = {}
    for r in records:
        by_family.setdefault(_family(r), []).append(r.puzzle.name)
    rng = random.Random(seed)
    queues = [rng.sample(names, len(names)) for _, names in sorted(by_family.items())]
    chosen: set[str] = set()
    keep = 1  # first take from families that still have another instance, then the last ones
    while len(chosen) < min(n, len(records)):
        if all(len(queue) <= keep for queue in queues):
            keep = 0
        for queue in queues:
            if len(queue) > keep and len(chosen) < n:
                chosen.add(queue.pop())
    return chosen


def generate_into(store: Store, verifier: Verifier, n: int, seed: int,
                  family: str | None = None, *, withhold: int = 0,
                  progress: bool = False) -> GenerateReport:
    """Draw `n` distinct instances (puzzles.generators.generate) and store those that hold up,
    in one transaction; `withhold` of them without their reference solution."""
    if not 0 <= withhold <= n:
        raise SelfplayError(f"withhold must be between 0 and n = {n}, not {withhold}")
    drawn = generate(n, seed, family)
    report = GenerateReport(duplicates=Counter(drawn.duplicates))
    records = _not_trivial(drawn.records, verifier, report)
    by_name = {r.puzzle.name: r for r in records}
    withheld = choose_withheld(records, withhold, seed)
    added = add_records(store, records, verifier, origin="generator", withhold=withheld,
                        progress=progress)
    for name in added.duplicates:
        report.duplicates[_family(by_name[name])] += 1
    failed = {r.name for r in added.rejected if r.name in by_name}
    for name in failed:
        report.failed[_family(by_name[name])] += 1
    skipped = set(added.duplicates) | failed
    for r in records:
        if r.puzzle.name not in skipped:
            report.stored[_family(r)] += 1
            report.splits[r.puzzle.split] += 1
            report.withheld[_family(r)] += r.puzzle.name in withheld
    return report
