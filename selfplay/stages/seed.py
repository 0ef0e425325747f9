"""Round 0's first stage, seed: put the shipped seed corpus (train and held-out) into the run's
store, each reference solution verified in the sandbox."""

from __future__ import annotations

from puzzles.seeds import load_seeds
from selfplay.context import RoundContext
from selfplay.importing import add_records
from selfplay.summaries import SeedSummary


def run(ctx: RoundContext) -> SeedSummary:
    report = add_records(ctx.store, load_seeds(), ctx.resources.verifier(), origin="seed")
    if report.rejected:
        ctx.log.info("seed: %d seed items rejected: %s", len(report.rejected),
                     "; ".join(map(str, report.rejected[:5])))
    ctx.log.info("seed: %d puzzles, %d solutions", report.added, report.solutions)
    return SeedSummary(report.added, report.solutions, len(report.rejected))
