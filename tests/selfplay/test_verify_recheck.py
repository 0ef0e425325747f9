"""The verify stage re-checks every pass before it counts, whatever the size of its answer."""

from types import SimpleNamespace

from sandbox import Pair, Verdict
from selfplay.stages.verify import _recheck_passes

PUZZLE = "def f(s: str):\n    return len(s) == 100_000\n"


class Recording:
    """A verifier that records what it was asked to re-check and answers with `verdict`."""

    def __init__(self, verdict: str):
        self.verdict, self.pairs, self.answers = verdict, [], []

    def check_answers(self, items):
        self.answers += items
        return [Verdict(self.verdict, "", 0.0) for _ in items]

    def verify_many(self, pairs):
        self.pairs += pairs
        return [Verdict(self.verdict, "", 0.0) for _ in pairs]


def _attempts():
    return [SimpleNamespace(id=i, puzzle_hash="p", solution=f"def g():\n    return 'a' * {n}\n")
            for i, n in enumerate((100_000, 5))]


def test_a_pass_too_large_to_report_is_run_again_whole():
    verdicts = [Verdict("pass", "", 0.1, answer=None),  # 100 kB of JSON: not reported
                Verdict("pass", "", 0.1, answer='"aaaaa"')]
    for outcome, flaky in (("pass", set()), ("fail", {0, 1})):
        verifier = Recording(outcome)
        assert set(_recheck_passes(verifier, _attempts(), verdicts, {"p": PUZZLE})) == flaky
        assert verifier.pairs == [Pair(PUZZLE, _attempts()[0].solution, id="0")]
        assert verifier.answers == [(PUZZLE, "aaaaa")]


def test_failures_are_not_rechecked():
    verifier = Recording("pass")
    verdicts = [Verdict("fail", "f returned False", 0.1), Verdict("error", "g raised", 0.1)]
    assert _recheck_passes(verifier, _attempts(), verdicts, {"p": PUZZLE}) == {}
    assert verifier.pairs == [] and verifier.answers == []
