"""Verify a JSONL file of pairs: the library side of `selfplay verify`.

Input: one JSON object a line, `{"id": str, "puzzle": str, "solution": str}`; blank lines are
skipped. Output: one line per input record, in input order, `{"id", "verdict", "reason",
"exception", "returned", "detail", "seconds"}` (see `sandbox.Verdict`). A malformed line (not
JSON, not an object, a missing or non-string field) does not stop the run: it gets verdict
`rejected` with a detail naming the line, so that the output still has one verdict per record
and a user can see every bad line at once.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from puzzles.errors import SelfplayError
from puzzles.records import read_json_lines
from sandbox.config import Pair, Verdict
from sandbox.verifier import Verifier

FIELDS = ("id", "puzzle", "solution")


@dataclass
class FileSummary:
    """What `verify_jsonl` did: verdict counts, malformed lines, time spent."""

    counts: Counter = field(default_factory=Counter)
    malformed: list = field(default_factory=list)
    """(line number, reason) of each malformed input line."""
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        rate = self.total / self.seconds if self.seconds else 0.0
        out = [f"{self.total} verdicts in {self.seconds:.1f} s ({rate:.0f}/s): " +
               ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))]
        out += [f"line {n}: {why}" for n, why in self.malformed]
        return out


def read_pairs(path: str | Path) -> list[tuple[int, Pair | str]]:
    """(line number, Pair or the reason the line is malformed) for every non-blank line."""
    return [(line.lineno, line.error or _pair(line.value)) for line in read_json_lines(path)]


def _pair(obj: object) -> Pair | str:
    if not isinstance(obj, dict):
        return f"expected a JSON object with {', '.join(FIELDS)}"
    missing = [k for k in FIELDS if k not in obj]
    if missing:
        return f"missing {', '.join(missing)}"
    wrong = [k for k in FIELDS if not isinstance(obj[k], str)]
    if wrong:
        return f"{', '.join(wrong)} must be a string"
    return Pair(puzzle=obj["puzzle"], solution=obj["solution"], id=obj["id"])


def verify_jsonl(verifier: Verifier, pairs_path: str | Path, out_path: str | Path,
                 progress: bool = False) -> FileSummary:
    """Verify every pair in `pairs_path`, write verdicts to `out_path` in input order."""
    import time

    records = read_pairs(pairs_path)
    summary = FileSummary()
    good = [(i, rec) for i, (_, rec) in enumerate(records) if isinstance(rec, Pair)]
    start = time.perf_counter()
    verdicts = verifier.verify_many([rec for _, rec in good], progress=progress)
    summary.seconds = time.perf_counter() - start
    by_index = {i: v for (i, _), v in zip(good, verdicts)}
    out_path = Path(out_path)
    try:
        out = out_path.open("w", encoding="utf-8")
    except OSError as e:
        raise SelfplayError(f"{out_path}: cannot write: {e}") from None
    with out:
        for i, (number, rec) in enumerate(records):
            if isinstance(rec, Pair):
                v, pair_id = by_index[i], rec.id
            else:
                summary.malformed.append((number, rec))
                v = Verdict("rejected", f"line {number}: {rec}", 0.0, reason="invalid_solution")
                pair_id = _id_of(number)
            summary.counts[v.verdict] += 1
            out.write(json.dumps({"id": pair_id, "verdict": v.verdict, "reason": v.reason,
                                  "exception": v.exception, "returned": v.returned,
                                  "detail": v.detail, "seconds": v.seconds}) + "\n")
    return summary


def _id_of(number: int) -> str:
    return f"line:{number}"
