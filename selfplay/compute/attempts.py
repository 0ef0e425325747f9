"""Sampling attempts at problems: the one sampler behind the solve stage and evaluation.

Whatever is asked (a generated puzzle, a seed or P3 puzzle, a HumanEval problem), it goes
through `sample_attempts`: a few-shot prompt per problem, the problem's k attempts as rejected
ones when its prompt does not fit, the rest sampled in chunks and parsed. What differs between
kinds of problem is behind `Problem`: how its prompt is written, how a completion is read, and
which pair the sandbox judges.

Seeding (the solve stage's scheme, which evaluation shares): problem i's few-shot draw is seeded
with `seed(f"{stage}-shots", i)`, and chunk c (of `batch_size // k` problems, counted over all
problems, fitting or not) is sampled with `seed(stage, c)`. So chunk c draws the same whether or
not an earlier run was cut off before it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import Puzzle, Solution
from puzzles.similarity import ShingleIndex
from puzzles.store import Attempt
from sandbox import Pair
from selfplay.compute.samplers import SampleJob, as_sampler
from selfplay.compute.work import chunks
from training.prompts import parse_solution_completion, solve_prompt

DETAIL_CHARS = 300
TOO_LONG = "prompt too long"
"""How the detail of an attempt rejected for its prompt's length begins."""


class Problem(Protocol):
    """What the sampler needs of a problem."""

    takes_examples: bool
    """Whether its prompt shows few-shot examples (a HumanEval prompt stands as it is)."""

    @property
    def hash(self) -> str: ...

    @property
    def source(self) -> str:
        """What training must stay away from (for decontamination)."""

    def solve_prompt(self, examples: list[tuple[Puzzle, Solution]], prompt_config,
                     tokenizer) -> str:
        """The prompt; raises SelfplayError when the problem alone does not fit."""

    def parse(self, completion: str) -> Solution | None:
        """The solution a completion defines (None: the completion is judged as it stands);
        raises PuzzleError when it does not parse."""

    def verify_pair(self, attempt: Attempt) -> Pair:
        """What the sandbox runs to judge a parsed attempt."""


@dataclass(frozen=True)
class PuzzleProblem:
    """A programming puzzle (generated, seed, imported or P3) as a `Problem`."""

    puzzle: Puzzle
    takes_examples = True

    @property
    def hash(self) -> str:
        return self.puzzle.hash

    @property
    def source(self) -> str:
        return self.puzzle.source

    @property
    def name(self) -> str:
        return self.puzzle.name

    def solve_prompt(self, examples, prompt_config, tokenizer) -> str:
        return solve_prompt(examples, self.puzzle, prompt_config, tokenizer)

    def parse(self, completion: str) -> Solution:
        return parse_solution_completion(completion, self.puzzle)

    def verify_pair(self, attempt: Attempt) -> Pair:
        return Pair(self.puzzle.source, attempt.solution)


HUMAN_ORIGINS = ("seed", "imported", "generator")
"""Origins of solutions a person wrote (the rest the model wrote, `generated`); a rule-based
generator's reference solution is a person's, written once for every instance."""


def train_puzzles_with_shortest_solution(store, *, human_only: bool = False
                                         ) -> list[tuple[Puzzle, Solution]]:
    """Every solved train puzzle with its shortest solution: the few-shot examples of solve
    and evaluation prompts. `human_only` looks at human solutions only: evaluation's examples,
    so that what a round's model is shown does not depend on what earlier rounds solved (the
    same prompts for every round and for every arm of a benchmark)."""
    shortest: dict[int, str] = {}
    for s in store.solutions():
        if human_only and s.origin not in HUMAN_ORIGINS:
            continue
        if s.puzzle_id not in shortest or len(s.source) < len(shortest[s.puzzle_id]):
            shortest[s.puzzle_id] = s.source
    return [(sp.puzzle, Solution(shortest[sp.id])) for sp in store.puzzles(split="train")
            if sp.id in shortest]


def _example_chooser(examples: list[tuple[Puzzle, Solution]], prompt_config
                     ) -> Callable[[Problem, random.Random], list[tuple[Puzzle, Solution]]]:
    """How `prompt_config.example_choice` picks a problem's few-shot examples (never itself)."""
    k = prompt_config.solve_examples
    if prompt_config.example_choice == "random":
        def choose(problem, rng):
            others = [e for e in examples if e[0].hash != problem.hash]
            return rng.sample(others, min(k, len(others)))
        return choose
    index = ShingleIndex(literals=False)
    for n, (puzzle, _) in enumerate(examples):
        index.add(str(n), puzzle.source)

    def choose(problem, rng):
        near = [examples[int(key)] for key, _ in index.nearest(problem.source, k + 1)]
        near = [e for e in near if e[0].hash != problem.hash][:k]
        if len(near) < k:  # too few share a shingle: fill at random
            taken = {e[0].hash for e in near} | {problem.hash}
            rest = [e for e in examples if e[0].hash not in taken]
            near += rng.sample(rest, min(k - len(near), len(rest)))
        return near[::-1]  # the most similar last, next to the puzzle it is like
    return choose


def sample_attempts(sampler, problems: Sequence[Problem],
                    examples: list[tuple[Puzzle, Solution]], *, k: int, sampling,
                    prompt_config, seed: Callable[..., int], stage: str, round: int,
                    provenance: dict, done: set[str] = frozenset(),
                    progress=None) -> Iterator[list[Attempt]]:
    """k attempts at each problem, as batches of rows ready to store, in a fixed order: first
    the rejected attempts of problems whose prompt is too long, then one batch per chunk.

    `sampler` samples the chunks (`selfplay.compute.samplers`: here, or on Ray actors); a loaded model
    is sampled here. Problems whose hash is in `done` (a resumed stage) are not yielded again;
    a chunk whose problems are all done is not sampled. Parsed attempts are `pending` (the
    sandbox has yet to judge them), unparsable ones `rejected`. `progress` (a tqdm-like bar)
    is advanced by the problems of each chunk.
    """
    sampler = as_sampler(sampler)
    prompts: list[str | None] = []
    parents: list[list[str]] = []
    overflow: dict[int, str] = {}
    choose = _example_chooser(examples, prompt_config)
    for i, problem in enumerate(problems):
        chosen = []
        if problem.takes_examples:
            chosen = choose(problem, random.Random(seed(f"{stage}-shots", i)))
        try:
            prompts.append(problem.solve_prompt(chosen, prompt_config, sampler.tokenizer))
        except SelfplayError as e:
            prompts.append(None)  # the problem alone overflows the prompt budget
            overflow[i] = str(e)
        parents.append([p.hash for p, _ in chosen])
    # Such a problem gets its k attempts as rejected ones: counted, never solved or asked again.
    too_long = [Attempt(round, stage, problems[i].hash, a, "", verdict="rejected",
                        detail=f"{TOO_LONG}: {why}"[:DETAIL_CHARS])
                for i, why in overflow.items() if problems[i].hash not in done
                for a in range(k)]
    if too_long:
        yield too_long
    done = set(done) | {problems[i].hash for i in overflow}
    parts, jobs = [], []
    for c, part in enumerate(chunks(len(problems), sampling.batch_size // max(1, k))):
        if all(problems[i].hash in done for i in part):
            if progress is not None:
                progress.update(len(part))
            continue
        fit = [i for i in part if i not in overflow]
        parts.append((part, fit))
        jobs.append(SampleJob([prompts[i] for i in fit], k, sampling, seed(stage, c)))
    for j, outs in sampler.map(jobs):
        part, fit = parts[j]
        yield [_attempt(problems[i], text, a, stage=stage, round=round,
                        provenance={**provenance, "parents": parents[i]})
               for i, completions in zip(fit, outs) for a, text in enumerate(completions)]
        if progress is not None:
            progress.update(len(part))


def _attempt(problem: Problem, text: str, index: int, *, stage: str, round: int,
             provenance: dict) -> Attempt:
    row = Attempt(round, stage, problem.hash, index, text, verdict="pending",
                  provenance=provenance)
    try:
        solution = problem.parse(text)
    except PuzzleError as e:
        row.verdict, row.detail = "rejected", f"unparsable: {e}"[:DETAIL_CHARS]
    else:
        if solution is not None:
            row.solution, row.solution_hash = solution.source, solution.hash
    return row
