"""Evaluation stage: pass@k of the round's model (round 0: the base model) on every configured
eval set. The first set's pass@k is the run's headline figure (`pass_at_k` in status)."""

from __future__ import annotations

import dataclasses

from selfplay.context import RoundContext
from selfplay.evalsets import load_eval_set
from selfplay.evaluate import EvalResult, evaluate, trained_hashes
from selfplay.stages.common import sampling_config
from selfplay.stages.solve import example_pool


def evaluate_set(ctx: RoundContext, name: str, *, ks: list[int], n: int,
                 max_problems: int) -> EvalResult:
    """pass@k of round `ctx.round`'s model on eval set `name`; also `selfplay eval`'s work."""
    cfg = ctx.config.eval
    eval_set = load_eval_set(name, ctx.store, max_problems=max_problems, seed=ctx.config.seed)
    # Evaluation samples as the solve stage does, at the eval temperature.
    sampling = sampling_config(ctx, dataclasses.replace(ctx.config.solve,
                                                        temperature=cfg.temperature))
    result = evaluate(ctx.resources.model(ctx.run.adapter(ctx.round)), eval_set.puzzles,
                      [(sp.puzzle, s) for sp, s in example_pool(ctx)], ctx.resources.verifier(),
                      set_name=name, n=n, ks=ks, sampling=sampling,
                      prompt_config=ctx.config.prompts, seed=ctx.seed("eval", name),
                      round=ctx.round, progress=ctx.progress)
    trained = trained_hashes(ctx.store)
    result.leaked = sum(1 for p in eval_set.puzzles if p.hash in trained)
    result.rejected = [str(r) for r in eval_set.rejected]
    # Every line of the set's file that was left out, so the figure is read knowing what it
    # covers; the rest of the file was evaluated.
    for line in result.rejected:
        ctx.log.warning("eval set %s: skipped %s", name, line)
    return result


def run(ctx: RoundContext) -> dict:
    cfg = ctx.config.eval
    if not cfg.sets or cfg.samples <= 0:
        return {"sets": 0}
    summary = {}
    for i, name in enumerate(cfg.sets):
        result = evaluate_set(ctx, name, ks=list(cfg.k), n=cfg.samples,
                              max_problems=cfg.max_problems)
        with ctx.store.transaction():
            ctx.store.add_attempts(result.attempts)
            ctx.store.set_metric(ctx.round, f"eval/{name}", result.metric())
            if i == 0:
                ctx.store.set_metric(ctx.round, "pass_at_k", result.pass_at_k)
        ctx.log.info("round %d eval %s: pass@k %s on %d problems (%d leaked)", ctx.round, name,
                     result.pass_at_k, result.problems, result.leaked)
        summary[name] = result.metric()
    return summary
