"""Held-out evaluation: n sampled solutions per problem, verified in the sandbox, scored with
the unbiased pass@k. Evaluation samples are stored under their own stage name, which the
select stage never reads: they can never become training data."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import Puzzle, Solution
from puzzles.store import Attempt
from sandbox import Pair
from selfplay.humaneval import HumanEvalProblem
from selfplay.passk import mean_pass_at_k


@dataclass
class EvalResult:
    set: str
    problems: int
    samples: int
    pass_at_k: dict[str, float]
    solved: int
    """Problems with at least one passing sample."""
    leaked: int = 0
    """Problems whose puzzle is in some round's training data (should be 0)."""
    too_long: int = 0
    """Problems whose prompt did not fit the model (scored as unsolved)."""
    rejected: list[str] = field(default_factory=list)
    """Lines of the set's file that were not taken (where and why); not part of the metric."""
    attempts: list[Attempt] = field(default_factory=list, repr=False)

    def metric(self) -> dict:
        return {"pass_at_k": self.pass_at_k, "problems": self.problems,
                "samples": self.samples, "solved": self.solved, "leaked": self.leaked,
                "too_long": self.too_long}


def evaluate(loaded, problems: list[Puzzle], examples: list[tuple[Puzzle, Solution]], verifier,
             *, set_name: str, n: int, ks: list[int], sampling, prompt_config, seed: int,
             round: int = 0, progress: bool = False) -> EvalResult:
    """pass@k of `loaded` on `problems`, with few-shot `examples` in each prompt."""
    from training.prompts import parse_solution_completion, solve_prompt
    from training.sampling import sample

    if not problems:
        return EvalResult(set_name, 0, n, {}, 0)
    prompts: list[str | None] = []
    shots = prompt_config.solve_examples
    for i, puzzle in enumerate(problems):
        if isinstance(puzzle, HumanEvalProblem):
            prompts.append(puzzle.prompt)  # HumanEval is completed as it stands
            continue
        rng = random.Random(f"{seed}:{i}")
        others = [e for e in examples if e[0].hash != puzzle.hash]
        try:
            prompts.append(solve_prompt(rng.sample(others, min(shots, len(others))), puzzle,
                                        prompt_config, loaded.tokenizer))
        except SelfplayError:
            prompts.append(None)  # longer than the prompt budget: counted, never solved
    too_long = [i for i, p in enumerate(prompts) if p is None]
    per_call = max(1, sampling.batch_size // max(1, n))
    attempts: list[Attempt] = []
    pairs, where = [], []
    for i in too_long:
        attempts += [Attempt(round, f"eval:{set_name}", problems[i].hash, a, "",
                             verdict="rejected", detail="prompt too long for the model")
                     for a in range(n)]
    fits = [i for i, p in enumerate(prompts) if p is not None]
    for start in range(0, len(fits), per_call):
        part = fits[start:start + per_call]
        outs = sample(loaded, [prompts[i] for i in part], n, sampling, seed=seed + start)
        for i, completions in zip(part, outs):
            puzzle = problems[i]
            for a, text in enumerate(completions):
                row = Attempt(round, f"eval:{set_name}", puzzle.hash, a, text, verdict="fail",
                              provenance={"model": loaded.name,
                                          "model_fingerprint": loaded.fingerprint})
                try:
                    if isinstance(puzzle, HumanEvalProblem):
                        pair = puzzle.pair(text)
                    else:
                        solution = parse_solution_completion(text, puzzle)
                        row.solution, row.solution_hash = solution.source, solution.hash
                        pair = Pair(puzzle.source, solution.source)
                    pairs.append(pair)
                    where.append(len(attempts))
                except PuzzleError as e:
                    row.verdict, row.detail = "rejected", f"unparsable: {e}"[:300]
                attempts.append(row)
    for idx, v in zip(where, verifier.verify_many(pairs, progress=progress)):
        attempts[idx].verdict, attempts[idx].detail = v.verdict, v.detail
        attempts[idx].seconds = v.seconds
    passes = defaultdict(int)
    for a in attempts:
        passes[a.puzzle_hash] += a.verdict == "pass"
    counts = [(n, passes[p.hash]) for p in problems]
    return EvalResult(set_name, len(problems), n, mean_pass_at_k(counts, ks),
                      sum(1 for _, c in counts if c), too_long=len(too_long), attempts=attempts)


def trained_hashes(store) -> set[str]:
    """Hashes of every puzzle any round has trained on."""
    rounds = {r for r, _, _ in store.stages()}
    return {store.puzzle_by_id(ex.puzzle_id).hash for r in rounds
            for ex in store.train_examples(r)}
