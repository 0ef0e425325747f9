"""Stage 3, dedup: drop exact and near duplicates of anything stored, and decontaminate: no
puzzle resembling a held-out or evaluation puzzle ever enters training. Survivors are stored
as generated train puzzles with their provenance."""

from __future__ import annotations

from collections import Counter

from puzzles.format import parse_puzzle
from selfplay.context import RoundContext
from selfplay.evalsets import eval_set_puzzles
from selfplay.similarity import ShingleIndex
from selfplay.summaries import DedupSummary


def heldout_sources(ctx: RoundContext) -> list[tuple[str, str]]:
    """(key, source) of every puzzle training must stay away from: the store's held-out split
    and the configured evaluation sets."""
    items = [(sp.hash, sp.puzzle.source) for sp in ctx.store.puzzles(split="heldout")]
    items += [(p.hash, p.source) for p in eval_set_puzzles(ctx.config.eval, ctx.store)]
    return items


def run(ctx: RoundContext) -> DedupSummary:
    cfg = ctx.config.dedup
    valid = ctx.store.proposals(ctx.round, status="valid")
    heldout = ShingleIndex(cfg.contamination_ngram)
    heldout_hashes = set()
    for key, source in heldout_sources(ctx):
        heldout.add(key, source)
        heldout_hashes.add(key)
    # Constants blanked: a puzzle that only changes numbers or strings is not a new one.
    stored = ShingleIndex(3, literals=False)
    if cfg.near_duplicate < 1:
        for sp in ctx.store.puzzles():
            stored.add(sp.hash, sp.puzzle.source)

    outcomes = []  # (proposal, status, reason)
    seen: set[str] = set()
    for p in valid:
        if p.puzzle_hash in heldout_hashes:
            outcomes.append((p, "contaminated", "is a held-out puzzle"))
            continue
        if p.puzzle_hash in seen or ctx.store.has_puzzle(p.puzzle_hash):
            outcomes.append((p, "duplicate", "same canonical source as a stored puzzle"))
            continue
        key, overlap = heldout.max_containment(p.puzzle)
        if overlap >= cfg.contamination_overlap:
            outcomes.append((p, "contaminated", f"{overlap:.0%} of its {cfg.contamination_ngram}"
                                                f"-grams are in held-out puzzle {key}"))
            continue
        if cfg.near_duplicate < 1:
            key, score = stored.most_similar(p.puzzle)
            if score >= cfg.near_duplicate:
                outcomes.append((p, "near_duplicate", f"similarity {score:.2f} to {key}"))
                continue
            stored.add(p.puzzle_hash, p.puzzle)
        seen.add(p.puzzle_hash)
        outcomes.append((p, "novel", ""))

    with ctx.store.transaction():
        for p, status, reason in outcomes:
            ctx.store.set_proposal(p.id, status, reason)
            if status == "novel":
                puzzle = parse_puzzle(p.puzzle, name=f"r{ctx.round}/{p.puzzle_hash[:8]}",
                                      family="generated", split="train")
                ctx.store.add_puzzle(puzzle, "generated", round=ctx.round, provenance={
                    **p.provenance, "proposal": [p.round, p.prompt, p.sample]})
    counts = Counter(status for _, status, _ in outcomes)
    novel = len(ctx.store.puzzles(origin="generated", round=ctx.round))
    ctx.log.info("round %d dedup: %d novel of %d valid; %s", ctx.round, novel, len(valid),
                 dict(counts))
    return DedupSummary(novel, {k: v for k, v in sorted(counts.items()) if k != "novel"})
