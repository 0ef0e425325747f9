"""Stage 3, dedup: drop exact and near duplicates of anything stored, and decontaminate: no
puzzle resembling a held-out or evaluation puzzle ever enters training. Survivors are stored
as generated train puzzles with their provenance."""

from __future__ import annotations

from collections import Counter

from puzzles.errors import PuzzleError
from puzzles.format import parse_puzzle
from puzzles.lsh import LSHIndex
from puzzles.programs import input_solution
from puzzles.similarity import ShingleIndex
from puzzles.store import Attempt
from selfplay.config import DedupConfig
from selfplay.context import RoundContext
from selfplay.evaluation.evalsets import eval_set_puzzles
from selfplay.reports.summaries import DedupSummary
from training.prompts import parse_pair_proposal, parse_program_proposal


DECONTAMINATION = "decontamination"
"""The store's record of the eval-set puzzles training stays away from."""


def decontamination_sources(store, eval_config, *, renew: bool = False
                            ) -> list[tuple[str, str]]:
    """(hash, source) of every eval-set puzzle dedup decontaminates against, as recorded in the
    store the first time this is asked (the loop asks when a run starts).

    Why a record rather than the config: eval settings may change on resume (an eval set added
    to measure a run that is half done), and users expect that to change measurements only,
    never which puzzles later rounds train on; refusing the change instead would take away the
    one way to measure an existing run on a new set. A set added later is still measured, and
    its `leaked` count says how many of its problems some round trained on. Recording the
    puzzles rather than the set names also keeps an eval file edited mid-run out of the data.
    A store written before this record existed takes the sets configured when first resumed.
    `renew` (no stage has finished: nothing was deduplicated yet) records the sets again if
    they changed, as for a run that starts now.
    The store's own held-out split is not part of the record: `heldout_sources` reads it live
    (it is written once, by round 0's seed stage).
    """
    recorded = store.meta(DECONTAMINATION)
    if recorded is None or renew and recorded["sets"] != list(eval_config.sets):
        items = [(p.hash, p.source) for p in eval_set_puzzles(eval_config, store)]
        recorded = {"sets": list(eval_config.sets), "puzzles": [list(i) for i in items]}
        with store.transaction():
            store.set_meta(DECONTAMINATION, recorded)
    return [(h, source) for h, source in recorded["puzzles"]]


def heldout_sources(ctx: RoundContext) -> list[tuple[str, str]]:
    """(key, source) of every puzzle training must stay away from: the store's held-out split
    and the eval sets recorded when the run started."""
    items = [(sp.hash, sp.puzzle.source) for sp in ctx.store.puzzles(split="heldout")]
    items += decontamination_sources(ctx.store, ctx.config.eval)
    return items


def near_duplicate_index(cfg: DedupConfig, n_stored: int) -> ShingleIndex | LSHIndex:
    """The index near-duplicates are searched in, for a store of `n_stored` puzzles: exact up
    to `cfg.lsh_above`, where every query already touches the whole store, LSH candidates with
    an exact check past it. Constants blanked: a puzzle that only changes numbers or strings is
    not a new one."""
    if n_stored > cfg.lsh_above:
        return LSHIndex(cfg.near_duplicate, 3, literals=False)
    return ShingleIndex(3, literals=False)


PROPOSER = "propose"
"""The stage name of a pair's own solution, stored as an attempt at its puzzle: verify judges it
beside the solver's attempts, and select counts it as one more attempt."""


def proposer_attempt(p) -> Attempt:
    """The `g` a pair proposal wrote for its puzzle (a program proposal: its own input), as a
    pending attempt (rejected, with the reason, when the completion holds no solution that
    parses)."""
    row = Attempt(p.round, PROPOSER, p.puzzle_hash, 0, p.completion, verdict="pending",
                  provenance={**p.provenance, "proposal": [p.round, p.prompt, p.sample]})
    k = p.provenance.get("prompt_k", 0)
    try:
        if p.provenance.get("format") == "program":  # its input, under the built puzzle
            solution = input_solution(parse_program_proposal(p.completion, k),
                                      parse_puzzle(p.puzzle))
        else:
            _, solution = parse_pair_proposal(p.completion, k)
    except PuzzleError as e:
        row.verdict, row.detail = "rejected", f"unparsable: {e}"[:300]
    else:
        row.solution, row.solution_hash = solution.source, solution.hash
    return row


def run(ctx: RoundContext) -> DedupSummary:
    cfg = ctx.config.dedup
    valid = ctx.store.proposals(ctx.round, status="valid")
    heldout = ShingleIndex(cfg.contamination_ngram)
    heldout_hashes = set()
    for key, source in heldout_sources(ctx):
        heldout.add(key, source)
        heldout_hashes.add(key)
    stored = None
    if cfg.near_duplicate < 1:
        puzzles = ctx.store.puzzles()
        stored = near_duplicate_index(cfg, len(puzzles))
        for sp in puzzles:
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
        if stored is not None:
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
                if p.provenance.get("format") in ("pair", "program"):
                    ctx.store.add_attempts([proposer_attempt(p)])
    counts = Counter(status for _, status, _ in outcomes)
    novel = len(ctx.store.puzzles(origin="generated", round=ctx.round))
    ctx.log.info("round %d dedup: %d novel of %d valid; %s", ctx.round, novel, len(valid),
                 dict(counts))
    return DedupSummary(novel, {k: v for k, v in sorted(counts.items()) if k != "novel"})
