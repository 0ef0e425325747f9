"""Infinite loops anywhere get a hard kill and verdict `timeout`; the pool carries on."""

import pytest

from puzzles.errors import SelfplayError
from sandbox import Pair

PUZZLE = "def f(x: int):\n    return x == 3\n"
LOOPS = {
    "python loop in g": (PUZZLE, "def g():\n    while True:\n        pass\n    return 3\n"),
    "C-level loop in g": (PUZZLE, "def g():\n    return any(iter(int, 1))\n"),
    "loop catching BaseException": (PUZZLE, (
        "def g():\n    while True:\n        try:\n            while True:\n                pass\n"
        "        except BaseException:\n            pass\n    return 3\n")),
    "loop in f": ("def f(x: int):\n    while x == 3:\n        pass\n    return True\n",
                  "def g():\n    return 3\n"),
    "C-level loop in f": ("def f(x: int):\n    return any(iter(int, 1))\n",
                          "def g():\n    return 3\n"),
}


def test_loops_time_out_and_pool_carries_on(quick, healthy):
    honest = Pair(PUZZLE, "def g():\n    return 3\n", id="honest")
    pairs = [Pair(p, s, id=name) for name, (p, s) in LOOPS.items()]
    # honest pairs before, between and after the loops: batches are re-forked after a kill
    verdicts = quick.verify_many([honest, *pairs[:2], honest, *pairs[2:], honest])
    got = [v.verdict for v in verdicts]
    assert got == ["pass", "timeout", "timeout", "pass", "timeout", "timeout", "timeout", "pass"]
    for v in verdicts:
        if v.verdict == "timeout":
            assert "limit" in v.detail and v.seconds >= 1.0
    healthy(quick)


def test_signal_based_timeouts_are_not_enough_to_escape(quick, walk, healthy):
    # g blocks SIGALRM-style handlers and ignores every catchable signal: only SIGKILL works.
    g = ("def g():\n" + walk +
         "    sig = os['sys'].modules['signal']\n"
         "    for s in (sig.SIGALRM, sig.SIGTERM, sig.SIGINT, sig.SIGXCPU, sig.SIGVTALRM):\n"
         "        try:\n            sig.signal(s, sig.SIG_IGN)\n"
         "        except BaseException:\n            pass\n"
         "    while True:\n        pass\n    return 3\n")
    assert quick.verify(Pair(PUZZLE, g)).verdict == "timeout"
    healthy(quick)


def test_sleeping_is_a_timeout_too(quick):
    g = "def g():\n    import time\n    time.sleep(60)\n    return 3\n"
    assert quick.verify(Pair(PUZZLE, g)).verdict == "timeout"


def test_a_call_may_give_its_checks_a_longer_limit_of_their_own(quick):
    # What an import gives reference solutions that ran over the limit (selfplay.corpus.importing):
    # 1.5 s of sleep is over quick's 1 s, within the call's 4 s; the next call has 1 s again.
    slow = Pair(PUZZLE, "def g():\n    import time\n    time.sleep(1.5)\n    return 3\n")
    assert quick.verify_many([slow])[0].verdict == "timeout"
    longer = quick.verify_many([slow, slow], timeout=4)
    assert [v.verdict for v in longer] == ["pass", "pass"]
    again = quick.verify_many([slow])[0]
    assert again.verdict == "timeout" and "1 s limit" in again.detail
    assert "timeout=4s" in quick.version_with(4) and "timeout=1s" in quick.version
    with pytest.raises(SelfplayError, match="timeout must be > 0, not 0"):
        quick.verify_many([slow], timeout=0)


def test_a_call_may_count_cpu_time_instead_of_wall_time(quick):
    # Sleeping uses no CPU: within 1 CPU second although 1.5 s pass, where wall time counts
    # (the call above) it is over. A loop is stopped at its CPU second, however long the
    # machine's load makes that take; a sleep at the wall-clock bound.
    sleeps = Pair(PUZZLE, "def g():\n    import time\n    time.sleep(1.5)\n    return 3\n")
    assert quick.verify_many([sleeps], timeout=1, wall=4)[0].verdict == "pass"
    loop, forever = (Pair(PUZZLE, LOOPS["python loop in g"][1]),
                     Pair(PUZZLE, "def g():\n    import time\n    time.sleep(60)\n    return 3\n"))
    looped = quick.verify_many([loop], timeout=1, wall=30)[0]
    assert looped.verdict == "timeout" and "1 s CPU limit" in looped.detail
    slept = quick.verify_many([forever], timeout=1, wall=2)[0]
    assert slept.verdict == "timeout" and "2 s wall-clock limit" in slept.detail
    assert "timeout=1s-cpu/2s-wall" in quick.version_with(1, 2)
