"""Evaluation stage: pass@k of the round's model (round 0: the base model) on every configured
eval set. The first set's pass@k is the run's headline figure (`pass_at_k` in status)."""

from __future__ import annotations

import dataclasses

from selfplay.context import RoundContext
from selfplay.evalsets import load_eval_set
from selfplay.evaluate import evaluate, trained_hashes
from selfplay.stages.common import sampling_config
from selfplay.stages.solve import example_pool


def run(ctx: RoundContext) -> dict:
    cfg = ctx.config.eval
    if not cfg.sets or cfg.samples <= 0:
        return {"sets": 0}
    loaded = ctx.resources.model(ctx.run.adapter(ctx.round))
    # Evaluation samples as the solve stage does, at the eval temperature.
    sampling = sampling_config(ctx, dataclasses.replace(ctx.config.solve,
                                                        temperature=cfg.temperature))
    examples = [(sp.puzzle, s) for sp, s in example_pool(ctx)]
    trained = trained_hashes(ctx.store)
    summary = {}
    for i, name in enumerate(cfg.sets):
        eval_set = load_eval_set(name, ctx.store, max_problems=cfg.max_problems,
                                 seed=ctx.config.seed)
        result = evaluate(loaded, eval_set.puzzles, examples, ctx.resources.verifier(),
                          set_name=name, n=cfg.samples, ks=list(cfg.k), sampling=sampling,
                          prompt_config=ctx.config.prompts, seed=ctx.seed("eval", name),
                          round=ctx.round, progress=ctx.progress)
        result.leaked = sum(1 for p in eval_set.puzzles if p.hash in trained)
        with ctx.store.transaction():
            ctx.store.add_attempts(result.attempts)
            ctx.store.set_metric(ctx.round, f"eval/{name}", result.metric())
            if i == 0:
                ctx.store.set_metric(ctx.round, "pass_at_k", result.pass_at_k)
        ctx.log.info("round %d eval %s: pass@k %s on %d problems (%d leaked)", ctx.round, name,
                     result.pass_at_k, result.problems, result.leaked)
        summary[name] = result.metric()
    return summary

