"""Stage 1, propose: the model writes new puzzles after few-shot prompts of train puzzles."""

from __future__ import annotations

import dataclasses
import random

from puzzles.programs import Program, program_of_puzzle, seed_programs
from puzzles.store import Proposal
from selfplay.compute.attempts import train_puzzles_with_shortest_solution
from selfplay.compute.samplers import SampleJob
from selfplay.compute.work import chunks, model_provenance, progress_bar, sampling_config
from selfplay.context import RoundContext
from selfplay.reports.summaries import ProposeSummary
from training.prompts import propose_pair_prompt, propose_program_prompt, propose_prompt


def solved_train_puzzles(store, origins: tuple[str, ...] = ()) -> list:
    """The puzzles propose prompts draw from: train puzzles with a verified solution (of the
    given origins; empty: all). An unsolved generated puzzle may be garbage (a checker that can
    never return True), and showing it would teach more garbage."""
    return [sp.puzzle for sp in store.puzzles(split="train", solved=True)
            if not origins or sp.origin in origins]


def solved_train_pairs(store, origins: tuple[str, ...] = ()) -> list:
    """(puzzle, shortest solution) of every solved train puzzle of the given origins: the
    examples of pair prompts."""
    allowed = {p.hash for p in solved_train_puzzles(store, origins)}
    return [(p, s) for p, s in train_puzzles_with_shortest_solution(store) if p.hash in allowed]


def program_examples(store) -> list[Program]:
    """The examples of program prompts: the shipped seed programs, and every program puzzle of
    the model's with a verified solution that returns a literal (its program, that input)."""
    examples = seed_programs()
    own = {sp.hash for sp in store.puzzles(split="train", origin="generated", solved=True)}
    for puzzle, solution in train_puzzles_with_shortest_solution(store):
        if puzzle.hash in own and (program := program_of_puzzle(puzzle, solution)):
            examples.append(program)
    return examples


def run(ctx: RoundContext) -> ProposeSummary:
    cfg = ctx.config.propose
    if not ctx.config.select.synthetic:
        return ProposeSummary(0, 0)  # nothing proposed could train: the control arm
    pool = {"pair": lambda: solved_train_pairs(ctx.store, cfg.origins),
            "program": lambda: program_examples(ctx.store),
            "checker": lambda: solved_train_puzzles(ctx.store, cfg.origins)}[cfg.format]()
    if not pool:
        return ProposeSummary(0, 0)
    sampler = ctx.resources.sampler(ctx.sampling_adapter)
    sampling = sampling_config(ctx, cfg)
    if cfg.format != "checker":  # the completion holds the puzzle (program), then its `def g`
        sampling = dataclasses.replace(sampling, functions=2)
    make_prompt = {"pair": propose_pair_prompt, "program": propose_program_prompt,
                   "checker": propose_prompt}[cfg.format]
    # All prompts are drawn up front from one seeded generator, so chunk i is the same
    # whether or not an earlier run was cut off after chunk i-1.
    rng = random.Random(ctx.seed("propose"))
    prompts = [make_prompt(pool, rng, ctx.config.prompts, sampler.tokenizer)
               for _ in range(cfg.prompts)]
    done = {p.prompt for p in ctx.store.proposals(ctx.round)}
    base_provenance = model_provenance(ctx, sampler, sampling)
    per_chunk = max(1, ctx.config.generation.batch_size // max(1, cfg.per_prompt))
    with progress_bar(ctx, cfg.prompts, "propose") as bar:
        parts, jobs = [], []
        for i, part in enumerate(chunks(cfg.prompts, per_chunk)):
            if all(j in done for j in part):
                bar.update(len(part))
                continue
            parts.append(part)
            jobs.append(SampleJob([prompts[j][0] for j in part], cfg.per_prompt, sampling,
                                  ctx.seed("propose", i)))
        for t, completions in sampler.map(jobs):
            rows = []
            for j, outs in zip(parts[t], completions):
                _, parents = prompts[j]
                for s, text in enumerate(outs):
                    rows.append(Proposal(ctx.round, j, s, text, provenance={
                        **base_provenance, "parents": parents, "prompt_k": len(parents),
                        "format": cfg.format}))
            with ctx.store.transaction():
                ctx.store.add_proposals(rows)
            bar.update(len(parts[t]))
    n = len(ctx.store.proposals(ctx.round))
    ctx.log.info("round %d propose: %d completions from %d prompts", ctx.round, n, cfg.prompts)
    return ProposeSummary(n, cfg.prompts)
