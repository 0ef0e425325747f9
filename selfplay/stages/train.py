"""Stage 7, train: a LoRA round on the selected examples, or with a preference objective on the
round's preference pairs; the next round samples from it."""

from __future__ import annotations

import dataclasses

from selfplay.compute.work import log_steps
from selfplay.context import RoundContext
from selfplay.reports.summaries import TrainStageSummary
from training.lora import ADAPTER_CONFIG


def run(ctx: RoundContext) -> TrainStageSummary:
    from training.job import launch_job, write_job
    from training.models import load_model
    from training.trainer import StepInfo, read_train_log, train_adapter

    examples = ctx.store.train_examples(ctx.round)
    pairs = []
    for ex in examples:
        pairs.append((ctx.store.puzzle_by_id(ex.puzzle_id).puzzle.source,
                      ctx.store.solution(ex.solution_id).source))
    config = dataclasses.replace(ctx.config.train, seed=ctx.seed("train") % (2 ** 31))
    preferences = []
    for pp in ctx.store.preference_pairs(ctx.round) if config.objective != "sft" else ():
        preferences.append((ctx.store.puzzle_by_id(pp.puzzle_id).puzzle.source,
                            ctx.store.attempt(pp.chosen_attempt).solution,
                            ctx.store.attempt(pp.rejected_attempt).solution))
    if config.objective != "sft" and not preferences:
        # A round whose puzzles all passed or all failed has nothing to prefer; a loop should
        # not die of it. Train on the selected examples, and say so.
        ctx.log.warning("round %d train: no preference pairs for objective %s: training sft "
                        "on the %d selected examples", ctx.round, config.objective, len(pairs))
        config = dataclasses.replace(config, objective="sft")
    previous = ctx.run.adapter(ctx.round - 1)
    init = previous if (ctx.config.continue_adapter and previous
                        and (previous / ADAPTER_CONFIG).is_file()) else None
    # Training wraps the model in peft and changes it: it gets its own fresh copy of the base.
    ctx.resources.drop_model()
    out = ctx.run.round_dir(ctx.round) / "train"
    on_step = ctx.tracker.on_train_step(ctx.store, ctx.round) if ctx.tracker else None
    on_step = log_steps(ctx, "train", on_step)
    if config.processes > 1:
        job = write_job(out, ctx.config.model, config, ctx.config.lora, pairs, preferences, init)
        ctx.log.info("round %d train: launching %d processes", ctx.round, config.processes)
        summary = launch_job(job, config.processes)
        if on_step is not None:  # the trackers get the steps once the launch is done
            for row in read_train_log(out):
                on_step(StepInfo(step=row["step"], total=summary.steps, loss=row["loss"],
                                 learning_rate=row["lr"], grad_norm=row["grad_norm"],
                                 model=None))
    else:
        summary = train_adapter(load_model(ctx.config.model), pairs, out, config,
                                ctx.config.lora, init_adapter=init, resume=True,
                                progress=ctx.progress, on_step=on_step, preferences=preferences)
    # Paths relative to the run dir: a summary must not depend on where the run lives.
    result = TrainStageSummary(**{
        **dataclasses.asdict(summary),
        "examples": len(preferences) if config.objective != "sft" else len(pairs),
        "adapter": str(ctx.run.adapter(ctx.round).relative_to(ctx.run.path)),
        "adapter_hash": summary.adapter_hash,
        "init_adapter": str(init.relative_to(ctx.run.path)) if init else ""})
    ctx.log.info("round %d train (%s): %d examples, %d steps, loss %.3f -> %.3f", ctx.round,
                 config.objective, result.examples, summary.steps, summary.first_loss,
                 summary.last_loss)
    return result
