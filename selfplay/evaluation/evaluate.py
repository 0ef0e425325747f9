"""Held-out evaluation: n sampled solutions per problem, verified in the sandbox, scored with
the unbiased pass@k. Evaluation samples are stored under their own stage name, which the
select stage never reads: they can never become training data."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from puzzles.format import Puzzle, Solution
from puzzles.store import Attempt
from selfplay.compute.attempts import (TOO_LONG, Problem, sample_attempts,
                               train_puzzles_with_shortest_solution)
from selfplay.compute.work import progress_bar, sampling_config
from selfplay.evaluation.bootstrap import paired_pass_at_k
from selfplay.evaluation.evalsets import load_eval_set
from selfplay.evaluation.passk import mean_pass_at_k


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


def evaluate(sampler, problems: list[Problem], examples: list[tuple[Puzzle, Solution]],
             verifier, *, set_name: str, n: int, ks: list[int], sampling, prompt_config,
             seed: Callable[..., int], round: int = 0, progress: bool = False,
             bar=None) -> EvalResult:
    """pass@k of the model `sampler` samples (`selfplay.compute.samplers`, or a loaded model) on
    `problems`, with few-shot `examples` in each prompt. Sampled as the solve stage samples
    (`selfplay.compute.attempts.sample_attempts`), under stage `eval:<set>`; `bar` (tqdm-like) is
    advanced by the problems sampled."""
    if not problems:
        return EvalResult(set_name, 0, n, {}, 0)
    attempts = [a for rows in sample_attempts(
        sampler, problems, examples, k=n, sampling=sampling, prompt_config=prompt_config,
        seed=seed, stage=f"eval:{set_name}", round=round,
        provenance={"model": sampler.name, "model_fingerprint": sampler.fingerprint,
                    "adapter_round": round, "sampling": dataclasses.asdict(sampling)},
        progress=bar)
        for a in rows]
    by_hash = {p.hash: p for p in problems}
    pending = [a for a in attempts if a.verdict == "pending"]
    verdicts = verifier.verify_many([by_hash[a.puzzle_hash].verify_pair(a) for a in pending],
                                    progress=progress)
    for a, v in zip(pending, verdicts):
        a.verdict, a.detail, a.seconds = v.verdict, v.detail, v.seconds
    passes = defaultdict(int)
    for a in attempts:
        passes[a.puzzle_hash] += a.verdict == "pass"
    counts = [(n, passes[p.hash]) for p in problems]
    too_long = len({a.puzzle_hash for a in attempts if a.detail.startswith(TOO_LONG)})
    return EvalResult(set_name, len(problems), n, mean_pass_at_k(counts, ks),
                      sum(1 for _, c in counts if c), too_long=too_long, attempts=attempts)


def evaluate_set(ctx, name: str, *, ks: list[int], n: int, max_problems: int,
                 adapter: Path | None) -> EvalResult:
    """pass@k of the base model with `adapter` (None: the base model alone) on eval set
    `name`, sampled with round `ctx.round`'s seeds: the eval stage's work (with the round's own
    adapter), and `selfplay eval`'s."""
    eval_set = load_eval_set(name, ctx.store, max_problems=max_problems, seed=ctx.config.seed)
    # Evaluation has its own sampling settings ([eval] temperature, top_p, max_new_tokens):
    # changing how the solve stage samples must not move the measuring stick, and the other
    # way round.
    sampling = sampling_config(ctx, ctx.config.eval)
    with progress_bar(ctx, len(eval_set.problems), f"eval {name}") as bar:
        result = evaluate(ctx.resources.sampler(adapter),
                          eval_set.problems,
                          train_puzzles_with_shortest_solution(ctx.store, human_only=True),
                          ctx.resources.verifier(),
                          set_name=name, n=n, ks=ks, sampling=sampling,
                          prompt_config=ctx.config.prompts, seed=ctx.seed, round=ctx.round,
                          progress=ctx.progress, bar=bar)
    trained = trained_hashes(ctx.store)
    result.leaked = sum(1 for p in eval_set.problems if p.hash in trained)
    result.rejected = [str(r) for r in eval_set.rejected]
    # Every line of the set's file that was left out, so the figure is read knowing what it
    # covers; the rest of the file was evaluated.
    for line in result.rejected:
        ctx.log.warning("eval set %s: skipped %s", name, line)
    return result


def trained_hashes(store) -> set[str]:
    """Hashes of every puzzle any round has trained on."""
    rounds = {r for r, _, _ in store.stages()}
    return {store.puzzle_by_id(ex.puzzle_id).hash for r in rounds
            for ex in store.train_examples(r)}


def eval_counts(store, round: int, set_name: str) -> dict[str, tuple[int, int]]:
    """{problem hash: (samples, passes)} of one round's evaluation on one set."""
    counts: dict[str, list[int]] = {}
    for a in store.attempts(round, f"eval:{set_name}"):
        entry = counts.setdefault(a.puzzle_hash, [0, 0])
        entry[0] += 1
        entry[1] += a.verdict == "pass"
    return {h: (n, c) for h, (n, c) in counts.items()}


def eval_changes(store, sets: tuple[str, ...], ks: tuple[int, ...], **bootstrap) -> list[dict]:
    """Per set and k: pass@k of round 0 and of the last round evaluated on it, and the change
    with its paired bootstrap interval over the problems both measured (a run's own answer to
    "did the rounds help?")."""
    rounds = sorted({r for r, stage, _ in store.stages() if stage == "eval"})
    out = []
    for name in sets:
        measured = [r for r in rounds if eval_counts(store, r, name)]
        if len(measured) < 2 or measured[0] != 0:
            continue
        before, after = eval_counts(store, 0, name), eval_counts(store, measured[-1], name)
        n = min(s for s, _ in [*before.values(), *after.values()])
        for k in ks:
            if k > n:
                continue
            interval = paired_pass_at_k(before, after, k, seed=f"{name}:k{k}", **bootstrap)
            out.append({"set": name, "k": k, "round": measured[-1], "interval": interval,
                        "before": mean_pass_at_k(list(before.values()), [k])[str(k)],
                        "after": mean_pass_at_k(list(after.values()), [k])[str(k)]})
    return out
