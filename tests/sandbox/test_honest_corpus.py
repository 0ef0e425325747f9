"""A corpus of honest Python idioms, run through `selfplay verify` as a user runs it.

Every correct pair must pass; the wrong pairs beside them must not, so that the corpus can
fail (a sandbox that passed everything, or nothing, would not get through this file). Several
entries print: printed output never reaches a verdict.
"""

import json
import textwrap

import pytest

from sandbox import Pair
from sandbox.policy import ModulePolicy
from selfplay.cli import main


def _src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# id -> (puzzle, solution, verdict it must get, or (verdict, text its detail holds))
CORPUS = {
    # -- the `sys` stand-in: streams, exc_info, getsizeof ------------------------------------
    "print to sys.stderr": (
        _src("""
            import sys
            def f(x: int):
                print("checking", x, file=sys.stderr)
                return x == 42
            """),
        _src("""
            import sys
            def g():
                for i in range(50):
                    print("trying", i, file=sys.stderr)
                sys.stderr.flush()
                return 42
            """), "pass"),
    "sys.stdout.write": (
        _src("""
            def f(s: str):
                return s == "done"
            """),
        _src("""
            import sys
            def g():
                n = sys.stdout.write("progress 100%\\n")
                sys.stdout.flush()
                return "done" if n == 14 else "write count"
            """), "pass"),
    "sys.exc_info in a handler": (
        _src("""
            import sys
            def f(s: str):
                try:
                    int(s)
                except ValueError:
                    return sys.exc_info()[0] is ValueError
                return False
            """),
        _src("""
            import sys
            def g():
                try:
                    {}["missing"]
                except KeyError:
                    kind = sys.exc_info()[0]
                return "x" + kind.__name__
            """), "pass"),
    "sys.getsizeof": (
        _src("""
            import sys
            def f(n: int):
                return n == sys.getsizeof(0) and n > 0
            """),
        _src("""
            import sys
            def g():
                return sys.getsizeof(0)
            """), "pass"),
    "sys.platform and other facts about the interpreter": (
        _src("""
            import sys
            def f(s: str):
                return s == "ok"
            """),
        _src("""
            import sys
            def g():
                facts = [sys.platform.startswith("linux"), sys.maxsize > 2 ** 31,
                         sys.version_info >= (3, 8), sys.byteorder in ("little", "big"),
                         sys.float_info.epsilon < 1e-9, sys.int_info.bits_per_digit > 0,
                         sys.hexversion > 0x03000000, "." in sys.version]
                return "ok" if all(facts) else str(facts)
            """), "pass"),
    # -- from __future__ ----------------------------------------------------------------------
    "future annotations in the puzzle": (
        _src("""
            from __future__ import annotations
            def f(li: List[int], n: int = 3) -> bool:
                return len(li) == n and sorted(li) == li
            """),
        _src("""
            def g(n=3):
                return list(range(n))
            """), "pass"),
    "future annotations in the solution": (
        _src("""
            def f(x: int):
                return x == 6
            """),
        _src("""
            from __future__ import annotations
            def g() -> int:
                def total(xs: list[int]) -> int:
                    return sum(xs)
                return total([1, 2, 3])
            """), "pass"),
    "future annotations in both": (
        _src("""
            from __future__ import annotations
            def f(s: str) -> bool:
                return s == "ab" * 2
            """),
        _src("""
            from __future__ import annotations
            def g() -> str:
                return "ab" * 2
            """), "pass"),
    # -- dataclasses ----------------------------------------------------------------------------
    "dataclass with fields": (
        _src("""
            def f(x: int):
                from dataclasses import dataclass, field
                @dataclass(order=True)
                class P:
                    a: int
                    b: list = field(default_factory=list)
                return sorted([P(3), P(1, [2])])[0] == P(1, [2]) and x == 7
            """),
        _src("""
            from dataclasses import dataclass
            def g():
                @dataclass(frozen=True)
                class Point:
                    x: int
                    y: int = 2
                p = Point(5)
                return p.x + p.y
            """), "pass"),
    # -- standard library modules --------------------------------------------------------------
    "datetime.strptime": (
        _src("""
            import time
            from datetime import datetime
            def f(s: str):
                return datetime.strptime(s, "%Y-%m-%d").weekday() == 0 == time.strptime(
                    s, "%Y-%m-%d").tm_wday
            """),
        _src("""
            import datetime as dt
            def g():
                d = dt.datetime.strptime("2024-01-03", "%Y-%m-%d")
                while d.weekday() != 0:
                    d += dt.timedelta(days=1)
                return d.strftime("%Y-%m-%d")
            """), "pass"),
    "io.StringIO and BytesIO": (
        _src("""
            import io
            def f(s: str):
                buf = io.StringIO(s)
                return [line.strip() for line in buf] == ["a", "b", "c"]
            """),
        _src("""
            from io import StringIO, BytesIO
            def g():
                out = StringIO()
                for c in "abc":
                    print(c, file=out)
                raw = BytesIO(out.getvalue().encode())
                return raw.read().decode()
            """), "pass"),
    "queue": (
        _src("""
            def f(li: List[int]):
                return li == [1, 2, 3, 5, 8]
            """),
        _src("""
            import queue
            def g():
                q = queue.PriorityQueue()
                for v in (5, 1, 8, 3, 2):
                    q.put(v)
                fifo = queue.Queue()
                while not q.empty():
                    fifo.put(q.get())
                return [fifo.get() for _ in range(fifo.qsize())]
            """), "pass"),
    "graphlib": (
        _src("""
            from graphlib import TopologicalSorter
            def f(order: List[str]):
                deps = {"b": {"a"}, "c": {"b"}, "d": {"a", "c"}}
                seen = set()
                for node in order:
                    if not deps.get(node, set()) <= seen:
                        return False
                    seen.add(node)
                return seen == {"a", "b", "c", "d"}
            """),
        _src("""
            import graphlib
            def g():
                ts = graphlib.TopologicalSorter({"b": {"a"}, "c": {"b"}, "d": {"a", "c"}})
                return list(ts.static_order())
            """), "pass"),
    "codec cp1251": (
        _src("""
            def f(b: List[int]):
                return bytes(b).decode("cp1251") == "привет"
            """),
        _src("""
            def g():
                return list("привет".encode("cp1251"))
            """), "pass"),
    "codecs koi8_r and shift_jis": (
        _src("""
            def f(b: List[int]):
                return bytes(b).decode("shift_jis") == "日本語" and len(b) == 6
            """),
        _src("""
            def g():
                assert "Привет".encode("koi8_r").decode("koi8_r") == "Привет"
                return list("日本語".encode("shift_jis"))
            """), "pass"),
    # -- the language ----------------------------------------------------------------------------
    "deep recursion": (
        _src("""
            def f(n: int):
                def depth(k):
                    return 0 if k == 0 else 1 + depth(k - 1)
                return n == depth(5000)
            """),
        _src("""
            def g():
                chain = None
                for i in range(5000):
                    chain = (i, chain)
                def length(node):
                    return 0 if node is None else 1 + length(node[1])
                return length(chain)
            """), "pass"),
    "big ints": (
        _src("""
            def f(n: int):
                return n % (2 ** 127 - 1) == 0 and n.bit_length() > 20000
            """),
        _src("""
            def g():
                from math import factorial
                return (2 ** 127 - 1) * factorial(3000)
            """), "pass"),
    "generators": (
        _src("""
            def f(li: List[int]):
                def primes():
                    n = 2
                    while True:
                        if all(n % p for p in range(2, int(n ** 0.5) + 1)):
                            yield n
                        n += 1
                gen = primes()
                return li == [next(gen) for _ in range(10)]
            """),
        _src("""
            def g():
                def sieve(limit):
                    marks = [True] * limit
                    for i in range(2, limit):
                        if marks[i]:
                            yield i
                            for j in range(i * i, limit, i):
                                marks[j] = False
                def take(n, it):
                    for _, v in zip(range(n), it):
                        yield v
                return list(take(10, sieve(100)))
            """), "pass"),
    "classes with dunders and inheritance": (
        _src("""
            def f(x: int):
                return x == 15
            """),
        _src("""
            def g():
                class Vec:
                    def __init__(self, *xs):
                        self.xs = xs
                    def __add__(self, other):
                        return Vec(*(a + b for a, b in zip(self.xs, other.xs)))
                    def __iter__(self):
                        return iter(self.xs)
                class Vec3(Vec):
                    def norm1(self):
                        return sum(abs(v) for v in self)
                return Vec3(1, 2, 3).norm1() + (Vec(1, 2, 3) + Vec(1, 2, 3)).xs[2] * 1 + 3
            """), "pass"),
    "closures and nonlocal": (
        _src("""
            def f(li: List[int]):
                return li == [1, 2, 3, 4]
            """),
        _src("""
            def g():
                def counter():
                    n = 0
                    def step():
                        nonlocal n
                        n += 1
                        return n
                    return step
                c = counter()
                return [c() for _ in range(4)]
            """), "pass"),
    "handled exceptions": (
        _src("""
            def f(li: List[int]):
                out = []
                for v in li:
                    try:
                        out.append(10 // v)
                    except ZeroDivisionError:
                        out.append(-1)
                return out == [10, -1, 5]
            """),
        _src("""
            def g():
                class Stop(Exception):
                    pass
                found = []
                try:
                    for v in [1, 0, 2, 7]:
                        if v == 7:
                            raise Stop(v)
                        found.append(v)
                except Stop as e:
                    assert e.args == (7,)
                finally:
                    found.append(len(found))
                return found[:3]
            """), "pass"),
    "seeded random": (
        _src("""
            import random
            def f(li: List[int]):
                rng = random.Random(12345)
                return li == [rng.randrange(100) for _ in range(5)]
            """),
        _src("""
            import random
            def g():
                random.seed(12345)
                return [random.randrange(100) for _ in range(5)]
            """), "pass"),
    "heavy itertools and functools": (
        _src("""
            from itertools import permutations
            def f(n: int):
                return n == sum(1 for p in permutations(range(8)) if all(
                    abs(p[i] - p[j]) != j - i for i in range(8) for j in range(i + 1, 8)))
            """),
        _src("""
            import itertools
            import functools
            import operator
            def g():
                @functools.lru_cache(maxsize=None)
                def ways(row, cols, d1, d2):
                    if row == 8:
                        return 1
                    return sum(ways(row + 1, cols | 1 << c, d1 | 1 << (row + c),
                                    d2 | 1 << (row - c + 7))
                               for c in range(8)
                               if not (cols >> c & 1 or d1 >> (row + c) & 1
                                       or d2 >> (row - c + 7) & 1))
                combos = sum(1 for _ in itertools.combinations(range(20), 5))
                prod = functools.reduce(operator.mul, itertools.islice(itertools.count(1), 5))
                assert combos == 15504 and prod == 120
                return ways(0, 0, 0, 0)
            """), "pass"),
    # -- wrong pairs: these must not pass --------------------------------------------------------
    "wrong: prints a pass verdict, returns a wrong answer": (
        _src("""
            def f(x: int):
                return x == 42
            """),
        _src("""
            import sys
            def g():
                print('{"v": "pass", "d": ""}')
                sys.stdout.write("pass\\n")
                print("pass", file=sys.stderr)
                return 41
            """), ("fail", "f returned False")),
    "wrong: a checker that prints pass but returns False": (
        _src("""
            import sys
            def f(x: int):
                sys.stdout.write('{"k": 0, "v": "pass", "d": ""}\\n')
                return False
            """),
        _src("""
            def g():
                return 1
            """), ("fail", "f returned False")),
    "wrong: dataclass answer off by one": (
        _src("""
            def f(x: int):
                return x == 7
            """),
        _src("""
            from dataclasses import dataclass
            def g():
                @dataclass
                class Point:
                    x: int
                    y: int = 2
                return Point(6).x + Point(6).y
            """), ("fail", "f returned False")),
    "wrong: strptime of a bad date raises": (
        _src("""
            from datetime import datetime
            def f(s: str):
                return datetime.strptime(s, "%Y-%m-%d").year == 2024
            """),
        _src("""
            def g():
                return "2024-02-30"
            """), ("error", "ValueError")),
    "wrong: huge int where a float is declared": (
        _src("""
            def f(x: float):
                return x > 0
            """),
        _src("""
            def g():
                return 10 ** 400
            """), ("fail", "too large for a float")),
    "wrong: io has no open": (
        _src("""
            def f(s: str):
                return s == "secret"
            """),
        _src("""
            import io
            def g():
                return io.open("/etc/hostname").read()
            """), ("error", "has no attribute 'open'")),
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    """The whole corpus through `selfplay verify`, once: {id: (verdict, detail)}."""
    tmp = tmp_path_factory.mktemp("corpus")
    pairs, out = tmp / "pairs.jsonl", tmp / "verdicts.jsonl"
    pairs.write_text("".join(json.dumps({"id": k, "puzzle": p, "solution": s}) + "\n"
                             for k, (p, s, _) in CORPUS.items()))
    assert main(["verify", str(pairs), "--out", str(out), "--timeout", "10",
                 "--workers", "2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(CORPUS)
    return {r["id"]: (r["verdict"], r["detail"]) for r in rows}


@pytest.mark.parametrize("case", list(CORPUS))
def test_corpus_verdict(verdicts, case):
    verdict, detail = verdicts[case]
    want = CORPUS[case][2]
    want, text = want if isinstance(want, tuple) else (want, "")
    assert verdict == want and text in detail, f"{case}: {verdict}: {detail}"


# -- module views ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def policy():
    return ModulePolicy()


def _import(policy, name):
    return policy.import_module(name, fromlist=("x",))


@pytest.mark.parametrize("name", ["math", "sys", "io", "collections", "collections.abc"])
def test_module_views_are_read_only(policy, name):
    view = _import(policy, name)
    before = dict(vars(view))
    for change in (lambda: setattr(view, "pi", 3), lambda: setattr(view, "extra", 1),
                   lambda: delattr(view, next(n for n in before if not n.startswith("_")))):
        with pytest.raises(AttributeError, match="read-only"):
            change()
    assert vars(view) == before


def test_sys_stand_in_has_sinks_not_the_interpreter(policy):
    shim = _import(policy, "sys")
    assert shim.stdout.write("x" * 10) == 10 and shim.stderr.write("") == 0
    with pytest.raises(TypeError):
        shim.stdout.write(b"bytes")
    with pytest.raises(AttributeError):
        shim.stdout.anything = 1  # no instance attributes to change between checks
    import sys
    assert shim.stdout is not sys.stdout and shim.stderr is not sys.__stderr__
    assert shim.getsizeof(0) > 0 and shim.exc_info() == (None, None, None)
    for name in ("modules", "_getframe", "settrace", "setprofile", "stdin", "path", "exit",
                 "__stdout__", "meta_path", "addaudithook"):
        assert not hasattr(shim, name), name


def test_io_view_is_in_memory_streams_only(policy):
    io = _import(policy, "io")
    assert io.StringIO("a\nb").readlines() == ["a\n", "b"] and io.BytesIO(b"z").read() == b"z"
    assert sorted(n for n in vars(io) if not n.startswith("__")) == [
        "BytesIO", "SEEK_CUR", "SEEK_END", "SEEK_SET", "StringIO"]


def test_interpreter_imports_get_an_empty_view(policy):
    view = policy.import_module("_strptime")
    assert [n for n in vars(view) if not n.startswith("__")] == []
    with pytest.raises(ImportError):
        policy.import_module("os")


def test_no_check_changes_a_view_for_the_next(verifier):
    """`def h(self): self.pi = 3` passes the sharing lint as a store on `self`: the view must
    refuse it, whichever worker the checks land in."""
    mutate = ("def g():\n    import math, sys\n    def h(self):\n        self.pi = 3\n"
              "    def k(self):\n        self.stdout = None\n    refused = 0\n"
              "    for fn, target in ((h, math), (k, sys)):\n        try:\n"
              "            fn(target)\n        except AttributeError:\n"
              "            refused += 1\n    return refused\n")
    read = "def g():\n    import math, sys\n    sys.stdout.write('ok')\n    return math.pi\n"
    pairs = [Pair("def f(n: int):\n    return n == 2\n", mutate, id=f"m{i}") for i in range(4)]
    pairs += [Pair("def f(x: float):\n    return x == 3.141592653589793\n", read, id=f"r{i}")
              for i in range(4)]
    verdicts = verifier.verify_many(pairs)
    assert [v.verdict for v in verdicts] == ["pass"] * 8, verdicts


def test_huge_int_for_a_float_fails_clearly_in_check_answers(verifier):
    v, = verifier.check_answers([("def f(x: float):\n    return x > 0\n", 10 ** 400)])
    assert v.verdict == "fail" and "too large for a float" in v.detail, v
