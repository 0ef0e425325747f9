"""Stage 5, verify: every parsed attempt through the sandbox. A pass is checked a second time
(the checker alone, on the answer `g` returned) so a flaky checker cannot mint training data."""

from __future__ import annotations

import json
from collections import Counter
from typing import NamedTuple

from sandbox import Pair
from selfplay.context import RoundContext
from selfplay.stages.common import progress_bar
from selfplay.summaries import VerifySummary


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
    counts = Counter(a.verdict for stage in ATTEMPT_STAGES
                     for a in ctx.store.attempts(ctx.round, stage))
    ctx.log.info("round %d verify: %s", ctx.round, dict(counts))
    return VerifySummary(dict(sorted(counts.items())), executor.version)


def judge(verifier, job, progress: bool = False) -> list[tuple[str, str, float]]:
    """(verdict, detail, seconds) for each of a chunk's items, in order: the sandbox's verdict,
    with a pass that does not hold a second time turned into a fail. Runs wherever the
    executor puts it (here, or in a Ray actor), so it takes plain data and touches no store."""
    items, sources = job
    verdicts = verifier.verify_many(
        [Pair(sources[a.puzzle_hash], a.solution, id=str(a.id)) for a in items],
        progress=progress)
    flaky = _recheck_passes(verifier, items, verdicts, sources)
    out = []
    for i, v in enumerate(verdicts):
        verdict, detail = v.verdict, v.detail
        if i in flaky:
            verdict, detail = "fail", "nondeterministic: the checker did not accept " \
                                      "the same answer a second time"
        out.append((verdict, detail, v.seconds))
    return out


def _recheck_passes(verifier, part, verdicts, sources) -> set[int]:
    """Indices of passes that do not hold a second time: the checker alone on the answer `g`
    returned, or, when the answer was too large to be reported, the whole pair again."""
    passes = [(i, a, v) for i, (a, v) in enumerate(zip(part, verdicts)) if v.verdict == "pass"]
    small = [(i, sources[a.puzzle_hash], json.loads(v.answer)) for i, a, v in passes
             if v.answer is not None]
    large = [(i, Pair(sources[a.puzzle_hash], a.solution, id=str(a.id))) for i, a, v in passes
             if v.answer is None]
    again = verifier.check_answers([(src, ans) for _, src, ans in small]) if small else []
    again_large = verifier.verify_many([pair for _, pair in large]) if large else []
    return ({i for (i, _, _), v in zip(small, again) if v.verdict != "pass"} |
            {i for (i, _), v in zip(large, again_large) if v.verdict != "pass"})
