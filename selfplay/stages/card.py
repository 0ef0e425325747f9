"""The last stage of a round: write the round's data card (DIR/cards/round-N.md and .json)."""

from __future__ import annotations

from selfplay.context import RoundContext
from selfplay.reports.cards import build_card, write_card
from selfplay.reports.summaries import CardSummary


def run(ctx: RoundContext) -> CardSummary:
    card = build_card(ctx.store, ctx.config, ctx.round, log=ctx.log)
    md, _ = write_card(card, ctx.run.cards_dir)
    ctx.log.info("round %d card: %s (%d warnings)", ctx.round, md, len(card["warnings"]))
    # Paths relative to the run dir: a summary must not depend on where the run lives.
    return CardSummary(len(card["warnings"]), str(md.relative_to(ctx.run.path)))
