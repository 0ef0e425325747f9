"""Adding puzzles to a store: validate, dedup, verify reference solutions, write in one batch.

Nothing is half-written: everything that passes is written in one transaction at the end, and
a failure before or during it leaves the store exactly as it was. A reference solution that
runs over the verifier's limit is run again with a longer one, of CPU time
(`VerifierConfig.reference_timeout_factor`): the slowest honest P3 references take several
seconds on an idle core, and on a loaded machine a first run shared with other checks, or its
confirmation alone, can pass any wall-clock limit; which human puzzles are kept must not
depend on that.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import content_hash, parse_solution
from puzzles.p3 import looks_like_p3, read_p3
from puzzles.records import PuzzleRecord, Rejected, read_jsonl
from puzzles.store import Store
from sandbox import Pair, Verifier


@dataclass
class AddReport:
    added: int = 0
    """New puzzles written."""
    unsolved: int = 0
    """Of those, puzzles stored without any verified solution (none was given, or it was
    withheld)."""
    solutions: int = 0
    """Verified solutions written."""
    duplicates: list[str] = field(default_factory=list)
    """Names of puzzles already in the store or repeated in the input (skipped)."""
    rejected: list[Rejected] = field(default_factory=list)
    """Puzzles or solutions not taken, each with where it was and why."""
    slow: list[str] = field(default_factory=list)
    """Puzzles one of whose reference solutions verified only in the second run, with the
    longer limit (`VerifierConfig.reference_timeout_factor`)."""
    slow_limit: float = 0.0
    """That longer limit, in seconds of CPU time."""

    @property
    def all_rejected(self) -> bool:
        """Nothing of the input was taken: every item was rejected (none added, none already
        stored)."""
        return bool(self.rejected) and not self.added and not self.duplicates

    def lines(self) -> list[str]:
        out = [f"added {self.added} puzzles ({self.unsolved} unsolved) and {self.solutions} "
               f"verified solutions; {len(self.duplicates)} duplicates skipped; "
               f"{len(self.rejected)} rejected"]
        if self.slow:
            out.append(f"  {len(self.slow)} reference solutions verified only when run again "
                       f"with {self.slow_limit:g} s of CPU time: {', '.join(self.slow)}")
        out += [f"  rejected {r}" for r in self.rejected]
        return out


def read_puzzle_file(path: str | Path, split_file: str | Path | None = None,
                     ) -> tuple[list[PuzzleRecord], list[Rejected]]:
    """Records from a P3 `puzzles.json` or a JSONL file, told apart by their first byte."""
    path = Path(path)
    if not path.is_file():
        raise SelfplayError(f"no such file: {path}")
    if looks_like_p3(path):
        try:
            return read_p3(path, split_file)
        except UnicodeDecodeError:
            raise SelfplayError(f"{path} is not UTF-8 text: expected a P3 puzzles.json or a "
                                "JSONL file of puzzles") from None
    if split_file:
        raise SelfplayError("--split-file applies to P3 files only")
    _refuse_one_object(path)
    return read_jsonl(path)


def _refuse_one_object(path: Path) -> None:
    """A file that is one JSON object over several lines is neither format: say so, instead of
    rejecting each of its lines as bad JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SelfplayError(f"{path} is not UTF-8 text: expected a P3 puzzles.json or a JSONL "
                            "file of puzzles") from None
    except OSError as e:
        raise SelfplayError(f"cannot read {path}: {e.strerror}") from None
    if not text.lstrip().startswith("{") or len(text.strip().splitlines()) < 2:
        return
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return  # several objects, or broken lines: JSONL, whose reader names each bad line
    if isinstance(value, dict):
        raise SelfplayError(f"{path} is one JSON object over {len(text.strip().splitlines())} "
                            "lines: expected a P3 list (a JSON array of puzzles) or JSONL "
                            "(one puzzle object a line)")


def add_records(store: Store, records: list[PuzzleRecord], verifier: Verifier, *,
                origin: str = "imported", rejected: list[Rejected] | None = None,
                withhold: Collection[str] = (), progress: bool = False) -> AddReport:
    """Verify every record's solutions and store the puzzles that hold up, in one transaction.

    A puzzle given with solutions is stored only if at least one verifies; a puzzle given with
    none is stored unsolved. Puzzles already in the store are skipped as duplicates. A puzzle
    named in `withhold` is stored unsolved although its solutions verified (so it is known to be
    solvable), with `reference_withheld` in its provenance: a target the model must solve itself.
    """
    report = AddReport(rejected=list(rejected or []))
    seen: set[str] = set()
    todo: list[tuple[PuzzleRecord, list[str]]] = []
    for i, record in enumerate(records):
        p = record.puzzle
        label = p.name or p.hash
        if p.hash in seen or store.has_puzzle(p.hash):
            report.duplicates.append(label)
            continue
        seen.add(p.hash)
        sources = []
        for j, source in enumerate(record.solutions):
            try:
                sources.append(parse_solution(source, p).source)
            except PuzzleError as e:
                report.rejected.append(Rejected(f"item {i + 1} solution {j + 1}", str(e), label))
        if record.solutions and not sources:
            report.rejected.append(Rejected(f"item {i + 1}", "no reference solution parses",
                                            label))
            continue
        todo.append((record, list(dict.fromkeys(sources))))

    pairs = [Pair(r.puzzle.source, s, id=f"{i}:{j}")
             for i, (r, sources) in enumerate(todo) for j, s in enumerate(sources)]
    verdicts = verifier.verify_many(pairs, progress=progress)
    slow = _run_timeouts_again(verifier, pairs, verdicts)
    report.slow_limit, wall = _reference_limits(verifier)
    slow_version = verifier.version_with(report.slow_limit, wall)
    verdicts = iter(enumerate(verdicts))
    keep: list[tuple[PuzzleRecord, list[tuple[str, str]]]] = []
    for record, sources in todo:
        label = record.puzzle.name or record.puzzle.hash
        good = []  # (source, the version of the sandbox that verified it)
        for j, source in enumerate(sources):
            k, v = next(verdicts)
            if v.verdict == "pass":
                good.append((source, slow_version if k in slow else verifier.version))
                if k in slow and label not in report.slow:
                    report.slow.append(label)
            else:
                report.rejected.append(Rejected(
                    f"solution {j + 1}", f"reference solution {v.verdict}: {v.detail}", label))
        if sources and not good:
            report.rejected.append(Rejected("puzzle", "none of its reference solutions "
                                                      "verifies; puzzle not stored", label))
            continue
        keep.append((record, good))

    with store.transaction():
        for record, good in keep:
            provenance = {k: v for k, v in record.provenance.items() if k != "origin"}
            if record.puzzle.name in withhold:
                provenance["reference_withheld"] = True
                good = []
            pid, created = store.add_puzzle(record.puzzle, origin, provenance=provenance)
            report.added += created
            report.unsolved += created and not good
            for source, version in good:
                report.solutions += store.add_solution(
                    pid, source, content_hash(source), origin, verifier=version)
    return report


WALL_PER_CPU_SECOND = 10
"""The wall-clock bound of a reference's second run, per second of CPU time it may use: only
code that sleeps or waits meets it, unless the machine gives the check less than a tenth of a
core."""


def _reference_limits(verifier: Verifier) -> tuple[float, float]:
    """(CPU seconds, wall-clock seconds) allowed to each stage of a reference run again."""
    cpu = verifier.config.timeout * verifier.config.reference_timeout_factor
    return cpu, cpu * WALL_PER_CPU_SECOND


def _run_timeouts_again(verifier: Verifier, pairs: list[Pair], verdicts: list) -> set[int]:
    """Run the pairs that timed out again, with the longer limit for reference solutions;
    their new verdicts replace the old in `verdicts`. Which were run again (their indices).

    A timeout is the one verdict that depends on the machine's load: a reference near the
    limit passes in a shared worker and times out when confirmed alone, or the reverse. So the
    second run counts CPU time, which load does not stretch, and it is a call of its own,
    confirmed alone like any pass."""
    cpu, wall = _reference_limits(verifier)
    slow = [k for k, v in enumerate(verdicts) if v.verdict == "timeout"]
    if not slow or verifier.config.reference_timeout_factor == 1:
        return set()
    again = verifier.verify_many([pairs[k] for k in slow], timeout=cpu, wall=wall)
    for k, v in zip(slow, again):
        verdicts[k] = v
    return set(slow)


def add_file(store: Store, path: str | Path, verifier: Verifier, *,
             split_file: str | Path | None = None, splits: Collection[str] | None = None,
             withhold_share: float = 0.0, seed: int = 0, progress: bool = False) -> AddReport:
    """`add_records` for a puzzle file; with `splits`, only its puzzles in those splits; with
    `withhold_share`, that share of its solved puzzles stored unsolved (`choose_withheld`)."""
    records, rejected = read_puzzle_file(path, split_file)
    if splits is not None:
        records = [r for r in records if r.puzzle.split in splits]
    withhold = choose_withheld(records, withhold_share, seed) if withhold_share else set()
    return add_records(store, records, verifier, rejected=rejected, withhold=withhold,
                       progress=progress)


def problem_of(name: str) -> str:
    """The problem an instance belongs to: P3 names instances `Problem:index`."""
    return name.rsplit(":", 1)[0]


def choose_withheld(records: list[PuzzleRecord], share: float, seed: int) -> set[str]:
    """Names of about `share` of the records with reference solutions, drawn with `seed`, to be
    stored without them: solve targets known to be solvable. Every problem keeps at least one
    solved instance (an example of its kind for prompts), so a problem with a single solved
    instance is never withheld."""
    by_problem: dict[str, list[str]] = {}
    for r in records:
        if r.solutions and r.puzzle.name:
            by_problem.setdefault(problem_of(r.puzzle.name), []).append(r.puzzle.name)
    rng = random.Random(seed)
    candidates = []
    for names in by_problem.values():
        names = sorted(names)
        rng.shuffle(names)
        candidates += names[1:]  # the first stays solved
    want = round(share * sum(len(v) for v in by_problem.values()))
    rng.shuffle(candidates)
    return set(candidates[:want])

