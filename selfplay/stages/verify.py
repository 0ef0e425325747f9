"""Stage 5, verify: every parsed attempt through the sandbox. A pass is checked a second time
(the checker alone, on the answer `g` returned) so a flaky checker cannot mint training data."""

from __future__ import annotations

import json
from collections import Counter

from sandbox import Pair
from selfplay.context import RoundContext
from selfplay.summaries import VerifySummary

CHUNK = 512


def run(ctx: RoundContext) -> VerifySummary:
    verifier = ctx.resources.verifier()
    pending = ctx.store.attempts(ctx.round, "solve", verdict="pending")
    sources = {}
    for a in pending:
        if a.puzzle_hash not in sources:
            sources[a.puzzle_hash] = ctx.store.puzzle(a.puzzle_hash).puzzle.source
    for start in range(0, len(pending), CHUNK):
        part = pending[start:start + CHUNK]
        verdicts = verifier.verify_many(
            [Pair(sources[a.puzzle_hash], a.solution, id=str(a.id)) for a in part],
            progress=ctx.progress)
        flaky = _recheck_passes(verifier, part, verdicts, sources)
        with ctx.store.transaction():
            for i, (a, v) in enumerate(zip(part, verdicts)):
                verdict, detail = v.verdict, v.detail
                if i in flaky:
                    verdict, detail = "fail", "nondeterministic: the checker did not accept " \
                                              "the same answer a second time"
                ctx.store.set_verdict(a.id, verdict, detail, v.seconds)
    counts = Counter(a.verdict for a in ctx.store.attempts(ctx.round, "solve"))
    ctx.log.info("round %d verify: %s", ctx.round, dict(counts))
    return VerifySummary(dict(sorted(counts.items())), verifier.version)


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
