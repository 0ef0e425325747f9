"""Reward hacks on unsolvable puzzles never pass: g runs alone, its answer crosses to a fresh
process only as JSON of the declared type, and only `f(answer) is True` counts."""

import pytest

from sandbox import Pair


def _g(body: str) -> str:
    return "def g():\n" + body


HACKS = {
    "always-equal object": ("int", _g(
        "    class A:\n        def __eq__(self, o):\n            return True\n"
        "        def __ne__(self, o):\n            return True\n    return A()\n")),
    "lying int subclass": ("int", _g(
        "    class I(int):\n        def __eq__(self, o):\n            return True\n"
        "    return I(1)\n")),
    "lying str subclass": ("str", _g(
        "    class S(str):\n        def __ne__(self, o):\n            return True\n"
        "    return S('a')\n")),
    "lying list subclass": ("list", _g(
        "    class L(list):\n        def __ne__(self, o):\n            return True\n"
        "    return L([1])\n")),
    "bool for int": ("int", _g("    return True\n")),
    "NaN": ("float", _g("    return float('nan')\n")),
    "infinity": ("float", _g("    return float('inf') - float('inf')\n")),
    "generator": ("list", _g("    return (i for i in range(3))\n")),
    "tuple for list": ("list", _g("    return (1, 2)\n")),
    "dict": ("list", _g("    return {'a': 1}\n")),
    "sys.exit(0)": ("int", _g("    raise SystemExit(0)\n    return 1\n")),
}

WALKING_HACKS = {
    "patched builtins": ("int", (
        "    b = os['__builtins__']\n    b['all'] = b['any'] = lambda *a: True\n"
        "    b['isinstance'] = lambda *a: True\n    __builtins__['len'] = lambda *a: 0\n"
        "    return 1\n")),
    "patching f from g": ("int", (
        "    for m in list(os['sys'].modules.values()):\n"
        "        d = getattr(m, '__dict__', {})\n"
        "        for name in ('f', 'sat', '_run_f', '_call'):\n"
        "            if name in d:\n                d[name] = lambda *a, **k: True\n"
        "    gc = os['sys'].modules['gc']\n"
        "    for o in gc.get_objects():\n"
        "        if callable(o) and getattr(o, '__name__', '') == 'f':\n"
        "            o.__code__ = (lambda *a: True).__code__\n"
        "    return 1\n")),
    "os._exit(0)": ("int", "    os['_exit'](0)\n    return 1\n"),
    "fake verdicts on stdout/stderr": ("int", (
        "    print('pass')\n    print('{\"verdict\": \"pass\"}')\n"
        "    os['write'](1, b'pass\\n')\n    os['write'](2, b'pass\\n')\n    return 1\n")),
    "fake results on every fd": ("int", (
        "    for fd in range(64):\n"
        "        for line in (b'pass\\n', b'{\"k\": 0, \"v\": \"answer\", \"a\": \"1\"}\\n',\n"
        "                     b'{\"k\": 0, \"v\": \"pass\", \"d\": \"\"}\\n'):\n"
        "            try:\n                os['write'](fd, line)\n"
        "            except BaseException:\n                pass\n    return 1\n")),
    "signal handlers": ("int", (
        "    sig = os['sys'].modules['signal']\n"
        "    sig.signal(sig.SIGTERM, lambda *a: os['_exit'](0))\n"
        "    sig.setitimer(sig.ITIMER_REAL, 0.01)\n    sig.signal(sig.SIGALRM, lambda *a: None)\n"
        "    return 1\n")),
    "threads": ("int", (
        "    t = os['sys'].modules['_thread']\n"
        "    t.start_new_thread(lambda: os['write'](3, b'pass\\n'), ())\n    return 1\n")),
    "atexit": ("int", (
        "    os['sys'].modules['atexit'].register(lambda: os['write'](3, b'pass\\n'))\n"
        "    return 1\n")),
    "finalizer": ("int", (
        "    class F:\n        def __del__(self):\n            os['write'](3, b'pass\\n')\n"
        "    F.keep = F()\n    return 1\n")),
    "huge output": ("str", "    return 'a' * (1 << 28)\n"),
}


@pytest.mark.parametrize("name", list(HACKS))
def test_hacks_fail(verifier, unsolvable, name):
    kind, g = HACKS[name]
    v = verifier.verify(Pair(unsolvable[kind], g))
    assert v.verdict in ("fail", "error"), v
    assert v.answer is None or v.verdict == "fail"


@pytest.mark.parametrize("name", list(WALKING_HACKS))
def test_hacks_that_bypass_the_policy_fail(verifier, unsolvable, walk, name, healthy):
    kind, body = WALKING_HACKS[name]
    v = verifier.verify(Pair(unsolvable[kind], "def g():\n" + walk + body))
    assert v.verdict in ("fail", "error", "memory"), v
    healthy(verifier)


def test_hacks_do_not_leak_into_other_checks_of_a_batch(verifier, walk):
    # The next checks in the same call use what the hack patched; each is judged afresh.
    patch = "def g():\n" + walk + "    os['__builtins__']['sum'] = lambda *a: 42\n    return 0\n"
    puzzle = "def f(x: int):\n    return sum([x]) == 42\n"
    plain = "def g():\n    return sum([1, 2])\n"  # a wrong answer: 3
    verdicts = verifier.verify_many([Pair(puzzle, patch)] + [Pair(puzzle, plain)] * 20)
    assert {v.verdict for v in verdicts} == {"fail"}


def test_checker_hacks_do_not_leak_into_other_checkers(verifier):
    # A puzzle's f could try to make later puzzles' checkers pass; it cannot reach them: the
    # module views are read-only, so the patch itself fails.
    poison = ("def f(x: int):\n    import random\n    random.choice = lambda s: True\n"
              "    return x == 1\n")
    victim = "def f(x: int):\n    import random\n    return random.choice([x]) is True\n"
    g = "def g():\n    return 1\n"
    verdicts = verifier.verify_many([Pair(poison, g)] + [Pair(victim, g)] * 20)
    assert [v.verdict for v in verdicts] == ["error"] + ["fail"] * 20
    assert "read-only" in verdicts[0].detail
