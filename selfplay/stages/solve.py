"""Stage 4, solve: k sampled solutions for each new puzzle, for train puzzles no round has
solved yet and, when `solve.solved_train` asks for them, for train puzzles that already have a
solution (the model's new solutions to those are expert-iteration data). Completions that do
not parse are stored too, as `rejected` attempts."""

from __future__ import annotations

import random

from puzzles.store import StoredPuzzle
from selfplay.compute.attempts import (PuzzleProblem, sample_attempts,
                               train_puzzles_with_shortest_solution)
from selfplay.compute.work import model_provenance, progress_bar, sampling_config
from selfplay.context import RoundContext
from selfplay.reports.summaries import SolveSummary


def targets(ctx: RoundContext) -> list[StoredPuzzle]:
    """This round's new puzzles, then up to `unsolved_train` unsolved train puzzles, then up to
    `solved_train` solved ones."""
    new = ctx.store.puzzles(origin="generated", round=ctx.round)
    new_ids = {sp.id for sp in new}
    unsolved = [sp for sp in ctx.store.puzzles(split="train", solved=False)
                if sp.id not in new_ids]
    random.Random(ctx.seed("solve-targets")).shuffle(unsolved)
    solved = [sp for sp in ctx.store.puzzles(split="train", solved=True) if sp.id not in new_ids]
    random.Random(ctx.seed("solve-solved-targets")).shuffle(solved)
    return (new + unsolved[:ctx.config.solve.unsolved_train]
            + solved[:ctx.config.solve.solved_train])


def run(ctx: RoundContext) -> SolveSummary:
    cfg = ctx.config.solve
    if not ctx.config.select.synthetic:
        return SolveSummary(0, 0, 0)  # no solution could train: the control arm
    todo = targets(ctx)
    if not todo or cfg.attempts <= 0:
        return SolveSummary(0, 0, 0)
    sampler = ctx.resources.sampler(ctx.sampling_adapter)
    sampling = sampling_config(ctx, cfg)
    done = {a.puzzle_hash for a in ctx.store.attempts(ctx.round, "solve")}
    with progress_bar(ctx, len(todo), "solve") as bar:
        for rows in sample_attempts(
                sampler, [PuzzleProblem(sp.puzzle) for sp in todo],
                train_puzzles_with_shortest_solution(ctx.store), k=cfg.attempts,
                sampling=sampling, prompt_config=ctx.config.prompts, seed=ctx.seed,
                stage="solve", round=ctx.round,
                provenance=model_provenance(ctx, sampler, sampling), done=done, progress=bar):
            with ctx.store.transaction():
                ctx.store.add_attempts(rows)
    attempts = ctx.store.attempts(ctx.round, "solve")
    parsed = sum(1 for a in attempts if a.solution)
    ctx.log.info("round %d solve: %d attempts at %d puzzles, %d parsed", ctx.round,
                 len(attempts), len(todo), parsed)
    return SolveSummary(len(todo), len(attempts), parsed)
