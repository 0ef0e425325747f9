"""Stage 6, select: store every verified solution, keep the learnable puzzles (solve rate
strictly between the bounds), up to m shortest distinct solutions each, and mix in human seed
pairs so they never fall below their share of the round's training set. When the round trains
with a preference objective (train.objective dpo or sft+dpo), also pair a passing with a failing
attempt of each learnable puzzle: the chosen/rejected pairs of DPO."""

from __future__ import annotations

import math
import random
from collections import defaultdict

from selfplay.compute.attempts import HUMAN_ORIGINS
from selfplay.context import RoundContext
from selfplay.reports.summaries import SelectSummary, load_summary
from selfplay.stages.dedup import PROPOSER
from selfplay.stages.verify import ATTEMPT_STAGES
from selfplay.stages.verify import NONDETERMINISTIC


def plan_mix(n_synthetic: int, n_human_pool: int, share: float, min_examples: int,
             min_human: int = 0) -> tuple[int, int]:
    """(synthetic, human) example counts: human >= share of the total, total >= min_examples
    and human >= min_human where the human pool allows; synthetic is cut when the pool cannot
    keep the share."""
    if share >= 1:
        return 0, min(n_human_pool, max(min_examples, min_human, 1))
    need = math.ceil(share / (1 - share) * n_synthetic) if share > 0 else 0
    n_human = min(n_human_pool, max(need, min_examples - n_synthetic, min_human))
    if share > 0 and n_human < need:
        n_synthetic = math.floor(n_human * (1 - share) / share)
    return n_synthetic, n_human


FAILED = ("fail", "error")
"""Verdicts of a rejected side: it ran and returned a wrong answer, or raised. Not an attempt
that did not parse (no solution to score) nor a timeout (no verdict on what it computes)."""


def preference_pairs(attempts, per_puzzle: int, seed: str) -> list[tuple[object, object]]:
    """(chosen, rejected) attempts of one puzzle: up to `per_puzzle` pairs of a distinct passing
    and a distinct failing solution, each side used as evenly as the counts allow.

    Seeded per puzzle (seed and puzzle hash), so a puzzle's pairs do not depend on which other
    puzzles the round holds or in what order they are visited: a resumed select repeats them.
    """
    passes, fails = {}, {}
    for a in sorted(attempts, key=lambda a: a.attempt):
        if a.verdict == "pass":
            passes.setdefault(a.solution_hash, a)
        elif a.verdict in FAILED and a.solution:
            fails.setdefault(a.solution_hash, a)
    if not passes or not fails:
        return []
    rng = random.Random(seed)
    chosen = sorted(passes.values(), key=lambda a: a.solution_hash)
    rejected = sorted(fails.values(), key=lambda a: a.solution_hash)
    rng.shuffle(chosen)
    rng.shuffle(rejected)
    n = min(per_puzzle, max(len(chosen), len(rejected)))
    return [(chosen[i % len(chosen)], rejected[i % len(rejected)]) for i in range(n)]


def run(ctx: RoundContext) -> SelectSummary:
    cfg = ctx.config.select
    store = ctx.store
    by_puzzle = defaultdict(list)
    for stage in ATTEMPT_STAGES:  # a pair's own `g` is one more attempt at its puzzle
        for a in store.attempts(ctx.round, stage):
            by_puzzle[a.puzzle_hash].append(a)
    verify = load_summary("verify", store.stage_summary(ctx.round, "verify"))
    verifier = verify.verifier if verify is not None else ""
    synthetic: list[tuple[int, str]] = []  # (puzzle id, solution hash)
    preferences: list[tuple[int, int, int, dict]] = []
    preferring = ctx.config.train.objective != "sft" and cfg.synthetic
    solved = kept = new_pairs = on_solved = 0
    # The model's own puzzles (origin generated) kept apart from human ones it solved.
    own_solved = own_by_solver = own_pairs = human_solved = 0
    untrusted: set[int] = set()  # puzzles whose verdicts disagreed this round (see verify)
    with store.transaction():
        for puzzle_hash, attempts in by_puzzle.items():
            sp = store.puzzle(puzzle_hash)
            if any(a.verdict == NONDETERMINISTIC for a in attempts):
                untrusted.add(sp.id)
                continue  # never trains: neither its passes, its fails, nor its human pairs
            # Solutions stored before this round (a human's or an earlier round's): the model
            # writing one of them again is no new data. (This round's own, from a run cut off
            # mid-stage, are not "earlier": a resumed select ends as an uninterrupted one.)
            earlier = {s.hash for s in store.solutions(sp.id) if s.round != ctx.round}
            target = "solved" if earlier else "new"
            passes = [a for a in attempts if a.verdict == "pass"]
            distinct = {}
            for a in passes:
                if a.solution_hash not in earlier:
                    distinct.setdefault(a.solution_hash, a)
            for a in distinct.values():
                store.add_solution(sp.id, a.solution, a.solution_hash, "generated",
                                   round=ctx.round, verifier=verifier,
                                   provenance={**a.provenance, "attempt": a.attempt,
                                               "solve_rate": len(passes) / len(attempts),
                                               "target": target,
                                               "by": "proposer" if a.stage == PROPOSER
                                               else "solver"})
            solved += bool(passes)
            if sp.origin == "generated":
                own_solved += bool(passes)
                own_by_solver += any(a.stage != PROPOSER for a in passes)
                own_pairs += len(distinct)
            else:
                human_solved += bool(passes)
            new_pairs += len(distinct)
            on_solved += len(distinct) if target == "solved" else 0
            rate = len(passes) / len(attempts)
            if preferring and sp.puzzle.split == "train":
                for chosen, rejected in preference_pairs(
                        attempts, cfg.per_puzzle, f"{ctx.seed('select-pairs')}-{puzzle_hash}"):
                    preferences.append((sp.id, chosen.id, rejected.id, {
                        "chosen": chosen.attempt, "rejected": rejected.attempt,
                        "rejected_verdict": rejected.verdict, "solve_rate": rate}))
            if (not (cfg.min_solve_rate < rate < cfg.max_solve_rate)
                    or sp.puzzle.split != "train" or not distinct):
                continue
            kept += 1
            best = sorted(distinct.values(), key=lambda a: (len(a.solution), a.solution_hash))
            synthetic += [(sp.id, a.solution_hash) for a in best[:cfg.per_puzzle]]

        if not cfg.synthetic:
            # The control arm: propose and solve sampled nothing, so this only makes select
            # keep the promise on its own (a store with solve attempts still trains on none).
            synthetic = []
        solution_ids = {(s.puzzle_id, s.hash): s.id for s in store.solutions(round=ctx.round)}
        synthetic_ids = [(pid, solution_ids[(pid, h)]) for pid, h in synthetic]
        pooled = 0
        if cfg.pool and cfg.synthetic:
            earlier = [(e.puzzle_id, e.solution_id) for r in range(1, ctx.round)
                       for e in store.train_examples(r)
                       if e.kind == "synthetic" and e.puzzle_id not in untrusted]
            before = len(synthetic_ids)
            synthetic_ids = list(dict.fromkeys(synthetic_ids + earlier))
            pooled = len(synthetic_ids) - before
        human_pool = [(s.puzzle_id, s.id) for s in store.solutions()
                      if s.origin in HUMAN_ORIGINS]
        train_ids = {sp.id for sp in store.puzzles(split="train")}
        human_pool = [h for h in human_pool if h[0] in train_ids and h[0] not in untrusted]
        rng = random.Random(ctx.seed("select"))
        n_syn, n_hum = plan_mix(len(synthetic_ids), len(human_pool), cfg.human_share,
                                cfg.min_examples, cfg.min_human)
        chosen_syn = (rng.sample(synthetic_ids, n_syn) if n_syn < len(synthetic_ids)
                      else synthetic_ids)
        chosen_hum = rng.sample(human_pool, n_hum)
        examples = ([(pid, sid, "synthetic") for pid, sid in chosen_syn]
                    + [(pid, sid, "human") for pid, sid in chosen_hum])
        rng.shuffle(examples)
        store.set_train_examples(ctx.round, examples)
        store.set_preference_pairs(ctx.round, preferences)
    ctx.log.info("round %d select: %d puzzles solved (%d of the model's own, %d of them by the "
                 "solver; %d human), %d new verified pairs (%d on its own puzzles, %d on puzzles "
                 "solved before), %d puzzles kept as learnable; training on %d synthetic + %d "
                 "human examples%s%s", ctx.round, solved, own_solved, own_by_solver, human_solved,
                 new_pairs, own_pairs, on_solved, kept, n_syn, n_hum,
                 f" ({pooled} synthetic pairs pooled from earlier rounds)" if pooled else "",
                 f" and {len(preferences)} preference pairs" if preferring else "")
    return SelectSummary(solved, kept, n_syn, n_hum, new_pairs, on_solved, own_solved,
                         own_by_solver, own_pairs, human_solved)
