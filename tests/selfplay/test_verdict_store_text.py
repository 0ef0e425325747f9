"""A verdict whose text came from untrusted code (an exception message holding a lone
surrogate) is stored like any other: the verify stage's write used to raise UnicodeEncodeError,
and a resumed run hit the same row again."""

from puzzles.store import Attempt, Store
from sandbox import Verdict
from selfplay.stages.verify import Item, judge


class Surrogates:
    """A verifier whose verdicts quote what a check raised, characters that are not text."""

    def verify_many(self, pairs, progress=False):
        return [Verdict("error", "f raised ValueError: \ud800 and \udfff", 0.1,
                        reason="f_raised", exception="ValueError") for _ in pairs]

    def check_answers(self, items):
        return []


def test_a_verdict_quoting_a_lone_surrogate_is_stored_and_read_back(tmp_path):
    store = Store(tmp_path / "store.sqlite")
    with store.transaction():
        store.add_attempts([Attempt(1, "solve", "p", 0, "    return 3\n", verdict="pending",
                                    solution="def g():\n    return 3\n")])
    [pending] = store.attempts(1, "solve", verdict="pending")
    [(verdict, detail, seconds)] = judge(Surrogates(), (
        [Item(pending.id, "p", pending.solution)], {"p": "def f(x: int):\n    return x\n"}))
    with store.transaction():
        store.set_verdict(pending.id, verdict, detail, seconds)
    [stored] = store.attempts(1, "solve")
    assert (stored.verdict, stored.detail) == ("error", "f raised ValueError: \\ud800 and \\udfff")
    store.close()
