"""Determinism is a real check: a puzzle whose verdicts disagree on identical attempts, or whose
pass does not hold on recheck, is marked nondeterministic in the store and never trains."""

import dataclasses
import hashlib
import logging
from types import SimpleNamespace

from puzzles.format import parse_puzzle
from puzzles.store import Attempt, Store
from sandbox import Verdict
from selfplay.compute.executors import LocalExecutor
from selfplay.config import RunConfig
from selfplay.context import RoundContext
from selfplay.stages import select, verify
from selfplay.stages.verify import NONDETERMINISTIC

FLAKY = parse_puzzle("def f(x: int):\n    return x % 7 == 3\n", split="train")
STEADY = parse_puzzle("def f(x: int):\n    return x % 11 == 2\n", split="train")
RECHECK = parse_puzzle("def f(x: int):\n    return x % 13 == 4\n", split="train")


class Scripted:
    """A verifier answering from a script: {solution: [verdicts of its successive runs]}
    for whole pairs, and `rechecks` (puzzle source -> verdict) for the checker alone."""

    version = "scripted"

    def __init__(self, runs: dict, rechecks: dict):
        self.runs = {k: list(v) for k, v in runs.items()}
        self.rechecks = rechecks

    def verify_many(self, pairs, progress=False):
        return [Verdict(self.runs[p.solution].pop(0), "", 0.1, answer="1",
                        reason="passed") for p in pairs]

    def check_answers(self, items):
        return [Verdict(self.rechecks.get(src, "pass"), "f returned False", 0.0)
                for src, _ in items]


def _solution(n: int) -> str:
    return f"def g():\n    return {n}\n"


def _store(tmp_path, attempts: dict) -> Store:
    """A store holding the three puzzles and round 1's pending attempts: {puzzle: [solution]}."""
    store = Store(tmp_path / "store.sqlite")
    with store.transaction():
        rows = []
        for puzzle, solutions in attempts.items():
            store.add_puzzle(puzzle, "generated", round=0)
            rows += [Attempt(1, "solve", puzzle.hash, i, "", hashlib.sha256(s.encode())
                             .hexdigest(), "pending", solution=s)
                     for i, s in enumerate(solutions)]
        store.add_attempts(rows)
    return store


def _round(store, verifier) -> RoundContext:
    executor = LocalExecutor(verifier)
    resources = SimpleNamespace(verify_executor=lambda: executor, verifier=lambda: verifier)
    return RoundContext(1, RunConfig(), store, None, resources, logging.getLogger("test"))


def _verdicts(store, puzzle) -> list[str]:
    return [a.verdict for a in store.attempts(1, "solve", puzzle_hash=puzzle.hash)]


def test_disagreeing_identical_attempts_and_failed_rechecks_mark_the_puzzle(tmp_path):
    same, other = _solution(10), _solution(17)
    store = _store(tmp_path, {FLAKY: [same, same, same, other],
                              STEADY: [_solution(13), _solution(24), _solution(5)],
                              RECHECK: [_solution(4), _solution(17)]})
    verifier = Scripted(
        runs={same: ["pass", "fail", "pass"], other: ["pass"], _solution(13): ["pass"],
              _solution(24): ["pass"], _solution(5): ["fail"], _solution(4): ["pass"]},
        rechecks={RECHECK.source: "fail"})
    verifier.runs[_solution(17)] = ["pass", "pass"]  # one attempt under FLAKY, one under RECHECK
    with store:
        ctx = _round(store, verifier)
        summary = verify.run(ctx)
        # FLAKY: the same solution passed and failed, so none of its passes stand (`other`
        # included: the checker they all went through is the untrusted part).
        assert _verdicts(store, FLAKY) == [NONDETERMINISTIC, "fail", NONDETERMINISTIC,
                                           NONDETERMINISTIC]
        assert _verdicts(store, STEADY) == ["pass", "pass", "fail"]
        assert _verdicts(store, RECHECK) == [NONDETERMINISTIC, NONDETERMINISTIC]
        details = [a.detail for a in store.attempts(1, "solve", puzzle_hash=FLAKY.hash)]
        assert "identical attempts" in details[0] and "passed" in details[0]
        assert summary.verdicts[NONDETERMINISTIC] == 5

        # Select keeps STEADY only: no verified pair, no preference pair of the other two.
        with store.transaction():
            store.mark_stage_done(1, "verify", dataclasses.asdict(summary))
        selected = select.run(ctx)
        assert (selected.solved, selected.selected, selected.new_pairs) == (1, 1, 2)
        assert [len(store.solutions(store.puzzle_id(p.hash))) for p in (FLAKY, STEADY, RECHECK)
                ] == [0, 2, 0]
        untrusted = {a.id for p in (FLAKY, RECHECK) for a in store.attempts(puzzle_hash=p.hash)}
        assert not {x for pair in store.preference_pairs(1)
                    for x in (pair.chosen_attempt, pair.rejected_attempt)} & untrusted

        # Repeating the stage (a resume) changes nothing.
        verify.run(ctx)
        assert _verdicts(store, FLAKY)[0] == NONDETERMINISTIC


def test_a_real_flaky_checker_never_leaves_a_pass(tmp_path, verifier):
    # Accepts at random behind a condition no trivial answer meets, as the filter lets through.
    flaky = parse_puzzle("def f(x: int):\n    import random\n"
                         "    return x > 1000 and x % 7 == 3 and random.random() < 0.5\n",
                         split="train")
    steady = parse_puzzle("def f(x: int):\n    return x > 1000 and x % 7 == 3\n", split="train")
    solutions = [_solution(1004)] * 24
    store = _store(tmp_path, {flaky: solutions, steady: solutions})
    with store:
        verify.run(_round(store, verifier))
        flaky_verdicts = _verdicts(store, flaky)
        # Each attempt passes its run and both rechecks with 0.5**3 at most, and one failing
        # attempt takes back every pass: a pass stands only if all 24 were that lucky.
        assert "pass" not in flaky_verdicts, flaky_verdicts
        assert _verdicts(store, steady) == ["pass"] * 24
