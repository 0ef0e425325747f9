"""Stage 5, verify: every parsed attempt through the sandbox, then a determinism check, so that a
flaky checker cannot mint training data:

- every pass is checked `RECHECKS` more times (the checker alone, on the answer `g` returned);
  a pass that a recheck then fails or errors on was luck, not a solution: it is stored as
  `nondeterministic`;
- attempts with the same solution (same `solution_hash`) of one puzzle must agree: where some
  pass and others fail or error (timeouts and memory are the machine's, not the code's), or
  where a pass did not hold on recheck, the puzzle's verdicts this round cannot be trusted and
  every pass of it is stored as `nondeterministic` (its detail says why and that it passed).

A `nondeterministic` attempt is neither a pass nor a fail: select never trains on it nor uses
it as a rejected side, and skips its puzzle for the round (`NONDETERMINISTIC`). The marking
reads the round's stored verdicts only, so a resumed stage ends as an uninterrupted one."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import NamedTuple

from sandbox import Pair
from selfplay.compute.work import progress_bar
from selfplay.context import RoundContext
from selfplay.reports.summaries import VerifySummary

NONDETERMINISTIC = "nondeterministic"
"""The verdict of an attempt whose pass cannot be trusted: it did not hold on recheck, or
identical attempts of its puzzle disagreed."""
RECHECKS = 2
"""Extra runs of the checker on each passing answer (a checker accepting at random with
probability p keeps a lucky pass with p**RECHECKS)."""
DISAGREE = ("fail", "error")
"""Verdicts that, beside a pass of the same solution, show a nondeterministic check: it ran to
the end and judged otherwise."""


ATTEMPT_STAGES = ("solve", "propose")
"""The attempts a round judges: the solver's, and the `g` of each novel pair proposal."""


class Item(NamedTuple):
    """What judging one attempt needs (all an executor's worker is sent of it)."""
    id: int
    puzzle_hash: str
    solution: str


def run(ctx: RoundContext) -> VerifySummary:
    executor = ctx.resources.verify_executor()
    # The solver's attempts and pair proposals' own solutions (stage "propose").
    pending = [a for stage in ATTEMPT_STAGES
               for a in ctx.store.attempts(ctx.round, stage, verdict="pending")]
    sources = {}
    for a in pending:
        if a.puzzle_hash not in sources:
            sources[a.puzzle_hash] = ctx.store.puzzle(a.puzzle_hash).puzzle.source
    # Each chunk is judged wherever the executor runs it (here, or in a Ray actor) and written
    # here, by attempt id, in one transaction: the store is the same whichever ran it.
    parts = [pending[start:start + executor.chunk]
             for start in range(0, len(pending), executor.chunk)]
    jobs = [([Item(a.id, a.puzzle_hash, a.solution) for a in part],
             {a.puzzle_hash: sources[a.puzzle_hash] for a in part}) for part in parts]
    # On a terminal the sandbox shows a bar per chunk; in a log, a line now and then.
    bar = None if ctx.progress else progress_bar(ctx, len(pending), "verify")
    for i, judged in executor.map(judge, jobs, progress=ctx.progress):
        if len(judged) != len(parts[i]):  # a chunk is written whole or not at all
            raise RuntimeError(f"verify chunk {i}: {len(judged)} verdicts for "
                               f"{len(parts[i])} attempts")
        with ctx.store.transaction():
            for a, (verdict, detail, seconds) in zip(parts[i], judged):
                ctx.store.set_verdict(a.id, verdict, detail, seconds)
        if bar is not None:
            bar.update(len(parts[i]))
    attempts = [a for stage in ATTEMPT_STAGES for a in ctx.store.attempts(ctx.round, stage)]
    marked = nondeterministic_passes(attempts)
    if marked:
        with ctx.store.transaction():
            for a, why in marked:
                ctx.store.set_verdict(a.id, NONDETERMINISTIC, why, a.seconds)
                a.verdict = NONDETERMINISTIC
        ctx.log.info("round %d verify: %d passes of %d puzzles taken back as nondeterministic",
                     ctx.round, len(marked), len({a.puzzle_hash for a, _ in marked}))
    counts = Counter(a.verdict for a in attempts)
    ctx.log.info("round %d verify: %s", ctx.round, dict(counts))
    return VerifySummary(dict(sorted(counts.items())), executor.version)


def nondeterministic_passes(attempts) -> list[tuple[object, str]]:
    """(attempt, detail) for every pass of a puzzle whose verdicts cannot be trusted: one of
    its passes did not hold on recheck, or two attempts with the same solution got a pass and
    a fail or error."""
    by_puzzle = defaultdict(list)
    for a in attempts:
        by_puzzle[a.puzzle_hash].append(a)
    marked = []
    for puzzle_attempts in by_puzzle.values():
        why = _why_nondeterministic(puzzle_attempts)
        if why:
            marked += [(a, f"{why} (this attempt passed)")
                       for a in puzzle_attempts if a.verdict == "pass"]
    return marked


def _why_nondeterministic(attempts) -> str | None:
    if any(a.verdict == NONDETERMINISTIC for a in attempts):
        return "nondeterministic puzzle: a pass of it did not hold (on recheck, or beside " \
               "an identical attempt)"
    by_solution = defaultdict(set)
    for a in attempts:
        if a.solution_hash:
            by_solution[a.solution_hash].add(a.verdict)
    for verdicts in by_solution.values():
        if "pass" in verdicts and verdicts & set(DISAGREE):
            return ("nondeterministic puzzle: identical attempts got pass and "
                    + " and ".join(sorted(verdicts & set(DISAGREE))))
    return None


def judge(verifier, job, progress: bool = False) -> list[tuple[str, str, float]]:
    """(verdict, detail, seconds) for each of a chunk's items, in order: the sandbox's verdict,
    with a pass that does not hold on recheck turned into `nondeterministic` (or the recheck's
    own verdict when that ran out of time or memory). Runs wherever the executor puts it
    (here, or in a Ray actor), so it takes plain data and touches no store."""
    items, sources = job
    verdicts = verifier.verify_many(
        [Pair(sources[a.puzzle_hash], a.solution, id=str(a.id)) for a in items],
        progress=progress)
    out = [(v.verdict, v.detail, v.seconds) for v in verdicts]
    for _ in range(RECHECKS):
        for i, again in _recheck_passes(verifier, items, verdicts, sources).items():
            if again.verdict in DISAGREE:
                out[i] = (NONDETERMINISTIC, "nondeterministic: the checker did not accept the "
                          f"same answer again ({again.detail})"[:300], verdicts[i].seconds)
            else:  # timeout or memory: no verdict on what it computes, as for any attempt
                out[i] = (again.verdict, f"on recheck: {again.detail}"[:300],
                          verdicts[i].seconds)
        verdicts = [v if out[i][0] == "pass" else None for i, v in enumerate(verdicts)]
    return out


def _recheck_passes(verifier, part, verdicts, sources) -> dict:
    """{index: verdict of the recheck} for the passes that do not hold a second time: the
    checker alone on the answer `g` returned, or, when the answer was too large to be
    reported, the whole pair again. (Entries of `verdicts` that are None are skipped.)"""
    passes = [(i, a, v) for i, (a, v) in enumerate(zip(part, verdicts))
              if v is not None and v.verdict == "pass"]
    small = [(i, sources[a.puzzle_hash], json.loads(v.answer)) for i, a, v in passes
             if v.answer is not None]
    large = [(i, Pair(sources[a.puzzle_hash], a.solution, id=str(a.id))) for i, a, v in passes
             if v.answer is None]
    again = verifier.check_answers([(src, ans) for _, src, ans in small]) if small else []
    again_large = verifier.verify_many([pair for _, pair in large]) if large else []
    return ({i: v for (i, _, _), v in zip(small, again) if v.verdict != "pass"} |
            {i: v for (i, _), v in zip(large, again_large) if v.verdict != "pass"})
