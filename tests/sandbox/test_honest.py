"""Honest code passes: stdlib imports, the usual language features, deep recursion, huge ints,
and checks that need real CPU time."""

import pytest

from sandbox import Pair

STDLIB = ["math", "itertools", "collections", "heapq", "functools", "re", "string", "fractions",
          "bisect", "operator", "random", "typing", "decimal", "statistics", "time", "hashlib",
          "json", "dataclasses", "enum"]


@pytest.mark.parametrize("module", STDLIB)
def test_stdlib_imports_inside_f_and_g(verifier, module):
    puzzle = f"def f(x: int):\n    import {module}\n    return x == len(dir({module})) > 0\n"
    solution = f"def g():\n    import {module}\n    return len(dir({module}))\n"
    v = verifier.verify(Pair(puzzle, solution))
    assert v.verdict == "pass", v


LANGUAGE = {
    "comprehensions and f-strings": (
        "def f(s: str):\n    return s == ','.join(f'{i:02d}' for i in range(5))\n",
        "def g():\n    return ','.join([f'{i:02d}' for i in {0, 1, 2, 3, 4}][:5])\n"),
    "lambdas and sorting": (
        "def f(li: List[int]):\n    return li == sorted(li, key=lambda v: -v) and len(li) == 4\n",
        "def g():\n    return sorted([3, 1, 4, 2], key=lambda v: -v)\n"),
    "classes": (
        "def f(x: int):\n    return x == 10\n",
        "def g():\n    class Acc:\n        def __init__(self):\n            self.total = 0\n"
        "        def add(self, v):\n            self.total += v\n            return self\n"
        "    return Acc().add(4).add(6).total\n"),
    "recursion depth 1000": (
        "def f(x: int):\n    def depth(n):\n        return 0 if n == 0 else 1 + depth(n - 1)\n"
        "    return x == depth(1000)\n",
        "def g():\n    def depth(n):\n        return 0 if n == 0 else 1 + depth(n - 1)\n"
        "    return depth(1000)\n"),
    "deep memoised recursion": (
        "def f(x: int):\n    return x > 0\n",
        "def g():\n    from functools import lru_cache\n    @lru_cache(None)\n"
        "    def fib(n):\n        return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
        "    return fib(5000) % 1000 + 1\n"),
    "ints beyond the 4,300-digit limit": (
        "def f(n: int):\n    return len(str(n)) == 10001 and str(n).startswith('1')\n",
        "def g():\n    return 10 ** 10000\n"),
    "nested lists and floats": (
        "def f(m: List[List[float]]):\n    return len(m) == 2 and abs(m[1][1] - 0.75) < 1e-9\n",
        "def g():\n    return [[1, 0.5], [0.25, 0.75]]\n"),
    "int where float is declared": (
        "def f(x: float):\n    return type(x) is float and x == 3.0\n",
        "def g():\n    return 3\n"),
    "extra arguments with defaults": (
        "def f(s: str, n=3, c='ab'):\n    return s == c * n\n",
        "def g(n=3, c='ab'):\n    return c * n\n"),
    "sys shim and typing": (
        "def f(li: List[int]):\n    import sys\n"
        "    return len(li) == 3 and max(li) < sys.maxsize\n",
        "def g():\n    import sys\n    from typing import List\n    sys.setrecursionlimit(5000)\n"
        "    out: List[int] = [1, 2, 3]\n    return out\n"),
    "string escapes and codecs": (
        "def f(b: str):\n    return b == 'caf\\\\xe9' and len(b.encode('utf-16')) == 16\n",
        "def g():\n    return 'caf\\xe9'.encode('unicode_escape').decode('ascii')\n"),
    "eval and private names (run alone, still pass)": (
        "def f(x: int):\n    return x == 12\n",
        "def g():\n    _private = 3\n    return eval('4 * _private', {'_private': _private})\n"),
}


@pytest.mark.parametrize("name", list(LANGUAGE))
def test_language_features(verifier, name):
    v = verifier.verify(Pair(*LANGUAGE[name]))
    assert v.verdict == "pass", v


def test_half_a_second_of_cpu(verifier):
    busy = ("    t = 0\n    for i in range(4_000_000):\n        t += i * i % 7\n")
    puzzle = "def f(x: int):\n" + busy + "    return x == t\n"
    solution = "def g():\n" + busy + "    return t\n"
    v = verifier.verify(Pair(puzzle, solution))
    assert v.verdict == "pass", v


def test_answer_is_reported_as_json(verifier):
    v = verifier.verify(Pair("def f(li: List[str]):\n    return li == ['a', 'b']\n",
                             "def g():\n    return ['a', 'b']\n"))
    assert v.verdict == "pass" and v.answer == '["a","b"]'


SEARCH_PUZZLE = "def f(x: int, a=37):\n    return x % a == 3 and x > 500\n"


def test_g_may_search_with_its_own_copy_of_f(verifier):
    v = verifier.verify(Pair(SEARCH_PUZZLE,
                             "def g(a=37):\n    return next(x for x in range(10**6) if f(x))\n"))
    assert (v.verdict, v.answer) == ("pass", "521")


@pytest.mark.parametrize("hack", [
    "    f.__code__ = (lambda x, a=37: True).__code__\n    return 1\n",
    "    global f\n    f = lambda x: True\n    return 2\n",
    "    f.__defaults__ = (0,)\n    return 3\n",
])
def test_patching_its_copy_of_f_does_not_change_the_verdict(verifier, hack):
    v = verifier.verify(Pair(SEARCH_PUZZLE, "def g(a=37):\n" + hack))
    assert v.verdict == "fail"
