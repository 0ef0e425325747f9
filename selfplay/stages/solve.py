"""Stage 4, solve: k sampled solutions for each new puzzle and for train puzzles no round has
solved yet. Completions that do not parse are stored too, as `rejected` attempts."""

from __future__ import annotations

import random

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import Solution
from puzzles.store import Attempt, StoredPuzzle
from selfplay.context import RoundContext
from selfplay.stages.common import chunks, model_provenance, progress_bar, sampling_config


def targets(ctx: RoundContext) -> list[StoredPuzzle]:
    """This round's new puzzles, then up to `unsolved_train` unsolved train puzzles."""
    new = ctx.store.puzzles(origin="generated", round=ctx.round)
    new_ids = {sp.id for sp in new}
    unsolved = [sp for sp in ctx.store.puzzles(split="train", solved=False)
                if sp.id not in new_ids]
    random.Random(ctx.seed("solve-targets")).shuffle(unsolved)
    return new + unsolved[:ctx.config.solve.unsolved_train]


def example_pool(ctx: RoundContext) -> list[tuple[StoredPuzzle, Solution]]:
    """Solved train puzzles with their shortest solution, for few-shot solve prompts."""
    shortest: dict[int, str] = {}
    for s in ctx.store.solutions():
        if s.puzzle_id not in shortest or len(s.source) < len(shortest[s.puzzle_id]):
            shortest[s.puzzle_id] = s.source
    return [(sp, Solution(shortest[sp.id])) for sp in ctx.store.puzzles(split="train")
            if sp.id in shortest]


def run(ctx: RoundContext) -> dict:
    from training.prompts import parse_solution_completion, solve_prompt
    from training.sampling import sample

    cfg = ctx.config.solve
    todo = targets(ctx)
    if not todo or cfg.attempts <= 0:
        return {"targets": 0, "attempts": 0, "parsed": 0}
    loaded = ctx.resources.model(ctx.sampling_adapter)
    sampling = sampling_config(ctx, cfg)
    pool = example_pool(ctx)
    shots = ctx.config.prompts.solve_examples
    prompts, parents, overflow = [], [], {}
    for i, sp in enumerate(todo):
        rng = random.Random(ctx.seed("solve-shots", i))
        others = [e for e in pool if e[0].id != sp.id]
        chosen = rng.sample(others, min(shots, len(others)))
        try:
            prompts.append(solve_prompt([(e.puzzle, s) for e, s in chosen], sp.puzzle,
                                        ctx.config.prompts, loaded.tokenizer))
        except SelfplayError as e:
            prompts.append(None)  # the puzzle alone overflows the prompt budget
            overflow[i] = str(e)
        parents.append([e.hash for e, _ in chosen])
    done = {a.puzzle_hash for a in ctx.store.attempts(ctx.round, "solve")}
    # Such a puzzle gets its k attempts as rejected ones: counted, and never asked again.
    too_long = [Attempt(ctx.round, "solve", todo[j].hash, a, "", verdict="rejected",
                        detail=f"prompt too long: {why}"[:300])
                for j, why in overflow.items() if todo[j].hash not in done
                for a in range(cfg.attempts)]
    if too_long:
        with ctx.store.transaction():
            ctx.store.add_attempts(too_long)
        done |= {a.puzzle_hash for a in too_long}
    base_provenance = model_provenance(ctx, loaded, sampling)
    per_chunk = max(1, ctx.config.generation.batch_size // cfg.attempts)
    with progress_bar(ctx, len(todo), "solve") as bar:
        for c, part in enumerate(chunks(len(todo), per_chunk)):
            if all(todo[j].hash in done for j in part):
                bar.update(len(part))
                continue
            fit = [j for j in part if j not in overflow]
            outs = sample(loaded, [prompts[j] for j in fit], cfg.attempts, sampling,
                          seed=ctx.seed("solve", c))
            rows = []
            for j, completions in zip(fit, outs):
                sp = todo[j]
                for a, text in enumerate(completions):
                    row = Attempt(ctx.round, "solve", sp.hash, a, text, verdict="pending",
                                  provenance={**base_provenance, "parents": parents[j]})
                    try:
                        solution = parse_solution_completion(text, sp.puzzle)
                        row.solution, row.solution_hash = solution.source, solution.hash
                    except PuzzleError as e:
                        row.verdict, row.detail = "rejected", f"unparsable: {e}"[:300]
                    rows.append(row)
            with ctx.store.transaction():
                ctx.store.add_attempts(rows)
            bar.update(len(part))
    attempts = ctx.store.attempts(ctx.round, "solve")
    parsed = sum(1 for a in attempts if a.solution)
    ctx.log.info("round %d solve: %d attempts at %d puzzles, %d parsed", ctx.round,
                 len(attempts), len(todo), parsed)
    return {"targets": len(todo), "attempts": len(attempts), "parsed": parsed}
