"""Storing rule-based generator instances (puzzles.generators): draw, drop what a trivial answer
solves, verify each reference solution in the sandbox, store with origin `generator`.

The same gate as any puzzle a person adds (selfplay.importing.add_records), plus the filter
stage's trivial answers: a generator is code, and code has bugs that only some seeds reach.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from puzzles.generators import generate
from puzzles.records import PuzzleRecord
from puzzles.store import Store
from puzzles.types import parse_type
from sandbox import Verifier
from selfplay.importing import add_records
from selfplay.stages.filter import trivial_answers


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

    def lines(self) -> list[str]:
        out = [f"stored {sum(self.stored.values())} puzzles in {len(self.stored)} families "
               f"({', '.join(f'{n} {s}' for s, n in sorted(self.splits.items()))}); "
               f"{sum(self.duplicates.values())} duplicates; "
               f"{sum(self.trivial.values())} trivial; "
               f"{sum(self.failed.values())} failed verification"]
        for family in sorted(set(self.stored) | set(self.duplicates) | set(self.trivial)
                             | set(self.failed)):
            out.append(f"  {family:<22} stored {self.stored[family]:>5}  duplicates "
                       f"{self.duplicates[family]:>4}  trivial {self.trivial[family]:>4}  "
                       f"failed {self.failed[family]:>4}")
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


def generate_into(store: Store, verifier: Verifier, n: int, seed: int,
                  family: str | None = None, *, progress: bool = False) -> GenerateReport:
    """Draw `n` distinct instances (puzzles.generators.generate) and store those that hold up,
    in one transaction."""
    drawn = generate(n, seed, family)
    report = GenerateReport(duplicates=Counter(drawn.duplicates))
    records = _not_trivial(drawn.records, verifier, report)
    by_name = {r.puzzle.name: r for r in records}
    added = add_records(store, records, verifier, origin="generator", progress=progress)
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
    return report
