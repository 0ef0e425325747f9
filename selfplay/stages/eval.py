"""Evaluation stage: pass@k of the round's model (round 0: the base model) on every configured
eval set. The first set's pass@k is the run's headline figure (`pass_at_k` in status)."""

from __future__ import annotations

from selfplay.context import RoundContext
from selfplay.evaluation.evaluate import evaluate_set


def run(ctx: RoundContext) -> dict:
    cfg = ctx.config.eval
    if not cfg.sets or cfg.samples <= 0:
        return {"sets": 0}
    summary = {}
    for i, name in enumerate(cfg.sets):
        result = evaluate_set(ctx, name, ks=list(cfg.k), n=cfg.samples,
                              max_problems=cfg.max_problems, adapter=ctx.run.adapter(ctx.round))
        with ctx.store.transaction():
            ctx.store.add_attempts(result.attempts)
            ctx.store.set_metric(ctx.round, f"eval/{name}", result.metric())
            if i == 0:
                ctx.store.set_metric(ctx.round, "pass_at_k", result.pass_at_k)
        ctx.log.info("round %d eval %s: pass@k %s on %d problems (%d leaked)", ctx.round, name,
                     result.pass_at_k, result.problems, result.leaked)
        summary[name] = result.metric()
    return summary
