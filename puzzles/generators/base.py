"""What a rule-based generator is: one puzzle class whose parameters a seeded RNG draws.

P3 itself was built this way. A generator holds a checker body and a reference-solution body
written once by a person, and a `params` function drawing the default argument values; an
instance is the two functions with those values spelled into their signatures, in the shape of
a seed line (`def f(x: T, a=..., b=...) -> bool:` with a docstring, `def g(a=..., b=...):`).
"""

from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass, field
from typing import Callable

from puzzles.format import Puzzle, parse_puzzle, parse_solution, string_literal
from puzzles.records import PuzzleRecord

Params = Callable[[random.Random], dict]


@dataclass(frozen=True)
class Generator:
    name: str
    """`family/what`, like a seed's name; also the key of the registry."""
    answer: str
    """The answer argument with its type, e.g. `x: int`."""
    doc: str
    checker: str
    """Body of `f` (any indentation; dedented)."""
    solution: str
    """Body of `g`, the reference solution for every instance."""
    params: Params
    """Draws the default values, in signature order, from the RNG. Must only produce
    instances the reference solution solves and no trivial answer satisfies."""
    difficulty: str = "easy"
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def family(self) -> str:
        return self.name.split("/", 1)[0]

    def sources(self, seed: int) -> tuple[str, str]:
        """(checker source, solution source) of the instance drawn with `seed`."""
        # A string seed hashes the same on every run and platform, and keeps one generator's
        # instances independent of another's at the same seed.
        values = self.params(random.Random(f"{self.name}:{seed}"))
        args = ", ".join(f"{k}={v!r}" for k, v in values.items())
        checker = (f"def f({self.answer}, {args}) -> bool:\n"
                   f"    {string_literal(self.doc)}\n"
                   + textwrap.indent(textwrap.dedent(self.checker).strip("\n"), "    ") + "\n")
        solution = (f"def g({args}):\n"
                    + textwrap.indent(textwrap.dedent(self.solution).strip("\n"), "    ") + "\n")
        return checker, solution

    def instance(self, seed: int, split: str) -> PuzzleRecord:
        """The instance drawn with `seed` as a record (parsed, so malformed output fails here),
        its provenance naming the generator and the seed."""
        checker, solution = self.sources(seed)
        puzzle: Puzzle = parse_puzzle(checker, name=f"{self.name}#{seed}", family=self.family,
                                      split=split, difficulty=self.difficulty, tags=self.tags)
        return PuzzleRecord(puzzle, [parse_solution(solution, puzzle).source],
                            {"generator": self.name, "seed": seed})
