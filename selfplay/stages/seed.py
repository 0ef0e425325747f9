"""Round 0's first stage, seed: put the shipped seed corpus (train and held-out) into the run's
store, each reference solution verified in the sandbox, and as many rule-based generator
instances as `seeds.generated` asks for."""

from __future__ import annotations

from puzzles.errors import SelfplayError
from puzzles.seeds import load_seeds
from selfplay.context import RoundContext
from selfplay.corpus.generating import generate_into
from selfplay.corpus.importing import add_file, add_records
from selfplay.reports.summaries import SeedSummary

SHAPED_BY = ("seed", "seeds", "verifier")
"""The settings (a table covers its keys) this stage's writes depend on: the run's seed draws
the generator instances, `seeds` says what is added, the verifier judges the references. A
stage stopped part way leaves what it wrote, so these may not change before it is redone."""


def run(ctx: RoundContext) -> SeedSummary:
    report = add_records(ctx.store, load_seeds(), ctx.resources.verifier(), origin="seed")
    if report.rejected:
        ctx.log.info("seed: %d seed items rejected: %s", len(report.rejected),
                     "; ".join(map(str, report.rejected[:5])))
    wanted = ctx.config.seeds.generated
    if wanted:
        # Drawn from the run's seed: a redone stage draws the same instances, and the store
        # keeps one copy of each.
        generated = generate_into(ctx.store, ctx.resources.verifier(), wanted,
                                  ctx.seed("seed-generated"),
                                  withhold=ctx.config.seeds.withheld)
        ctx.log.info("seed: generators: %s", generated.lines()[0])
    for path in ctx.config.seeds.files:
        # A redone stage finds them stored already and skips them as duplicates.
        try:
            added = add_file(ctx.store, path, ctx.resources.verifier(), splits=("train",),
                             withhold_share=ctx.config.seeds.files_withheld,
                             seed=ctx.seed("seed-files-withheld", path))
        except SelfplayError as e:
            raise SelfplayError(f"seeds.files: {e}") from None
        ctx.log.info("seed: %s (train split): %s", path, added.lines()[0])
        for line in added.lines()[1:]:  # every loss by name, and every reference run again
            ctx.log.info("seed: %s:%s", path, line)
    # What the store holds, not what this call added: a seed stage redone after its write (the
    # run died before marking it done) adds nothing, and its summary must still be the run's.
    puzzles = len(ctx.store.puzzles(origin="seed"))
    solutions = len(ctx.store.solutions(origin="seed"))
    imported = len(ctx.store.puzzles(origin="imported"))
    ctx.log.info("seed: %d puzzles, %d solutions; %d imported puzzles", puzzles, solutions,
                 imported)
    return SeedSummary(puzzles, solutions, len(report.rejected), imported)
