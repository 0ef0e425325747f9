"""The Verifier's contract: order, rejections, check_answers, provenance, layer reporting."""

import ast
import warnings

import pytest

from puzzles.errors import SelfplayError
from sandbox import REASONS, VERDICTS, Pair, Verdict, Verifier, VerifierConfig
from sandbox.sharing import isolation_reason

PUZZLE = "def f(x: int, a=5):\n    return x == a * 2\n"


def test_results_come_back_in_input_order(verifier):
    pairs = [Pair(PUZZLE, f"def g(a=5):\n    return {i + 11}\n", id=str(i)) for i in range(30)]
    pairs[17] = Pair(PUZZLE, "def g(a=5):\n    return a * 2\n", id="right")
    verdicts = verifier.verify_many(pairs)
    assert [v.verdict for v in verdicts] == ["fail"] * 17 + ["pass"] + ["fail"] * 12
    assert verdicts[3].answer == "14" and verdicts[3].detail == "f returned False"
    assert all(isinstance(v, Verdict) and v.verdict in VERDICTS for v in verdicts)
    assert verifier.verify_many([]) == []


@pytest.mark.parametrize("puzzle,solution,where", [
    ("def f(x: int):\n    return x ==\n", "def g():\n    return 1\n", "puzzle"),
    ("def f(x):\n    return True\n", "def g():\n    return 1\n", "puzzle"),
    ("def f(x: dict):\n    return True\n", "def g():\n    return 1\n", "puzzle"),
    ("import os\nos.system('x')\ndef f(x: int):\n    return True\n", "def g():\n    return 1\n",
     "puzzle"),
    (PUZZLE, "def g():\n    return 10\n", "solution"),  # missing the extra argument
    (PUZZLE, "def h(a=5):\n    return 10\n", "solution"),
    (PUZZLE, "print('side effect')\ndef g(a=5):\n    return 10\n", "solution"),
    (PUZZLE, "", "solution"),
    (PUZZLE, "def g(a=5):\n    return " + "-" * 100_000 + "1\n", "solution"),  # parser bomb
    (PUZZLE, "def g(a=5):\n    return " + "[" * 5000 + "]" * 5000 + "\n", "solution"),
    (["not", "a", "string"], "def g():\n    return 1\n", "puzzle"),
    (PUZZLE, {"source": "def g(a=5):\n    return 10\n"}, "solution: source is a dict"),
])
def test_unparseable_pairs_are_rejected_with_the_reason(verifier, puzzle, solution, where):
    v = verifier.verify(Pair(puzzle, solution))
    assert v.verdict == "rejected" and v.detail.startswith(where), v


def test_errors_carry_the_exception(verifier):
    v = verifier.verify(Pair(PUZZLE, "def g(a=5):\n    return [][a]\n"))
    assert v.verdict == "error" and v.detail == "g raised IndexError: list index out of range"
    v = verifier.verify(Pair("def f(x: int):\n    return 1 / 0\n", "def g():\n    return 1\n"))
    assert v.verdict == "error" and v.detail.startswith("f raised ZeroDivisionError")


def test_only_the_object_true_passes(verifier):
    for result in ("1", "'True'", "[1]", "None"):
        v = verifier.verify(Pair(f"def f(x: int):\n    return {result}\n",
                                 "def g():\n    return 1\n"))
        assert v.verdict == "fail", (result, v)


def test_check_answers_runs_f_on_given_values(verifier):
    trivial = "def f(x: int):\n    return x * 0 == 0\n"
    hard = "def f(s: str):\n    return s == 'abc' * 3\n"
    verdicts = verifier.check_answers([(trivial, 0), (hard, ""), (hard, "abcabcabc"),
                                       (hard, 5), ("def f(x):\n    return 1\n", 0)])
    assert [v.verdict for v in verdicts] == ["pass", "fail", "pass", "fail", "rejected"]
    # twice on the same value: a deterministic checker agrees with itself
    twice = verifier.check_answers([(hard, "abcabcabc")] * 2)
    assert twice[0].verdict == twice[1].verdict == "pass"


def test_version_and_layers(verifier):
    layers = verifier.layers()
    assert layers["process"] is True and layers["two_stage"] is True
    for name, status in layers.items():
        assert status is True or (isinstance(status, str) and status)
    assert "timeout=10s" in verifier.version and "selfplay-sandbox/" in verifier.version


def test_missing_layers_are_reported_not_silently_dropped(healthy):
    off = ("setuid", "namespaces", "landlock", "seccomp")
    with pytest.warns(RuntimeWarning, match="not active"):
        v = Verifier(VerifierConfig(timeout=2, disable_layers=off))
    with v:
        layers = v.layers()
        assert all(isinstance(layers[name], str) for name in off)
        assert "landlock" not in v.version.split("layers=")[1]
        # still a working verifier with the remaining layers (process, rlimits, policy)
        verdicts = v.verify_many([Pair(PUZZLE, "def g(a=5):\n    return 10\n"),
                                  Pair(PUZZLE, "def g(a=5):\n    while True:\n        pass\n"
                                               "    return 1\n")])
        assert [x.verdict for x in verdicts] == ["pass", "timeout"]
    with pytest.raises(SelfplayError, match="strict"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Verifier(VerifierConfig(disable_layers=("seccomp",), strict=True))


def test_config_is_validated():
    with pytest.raises(SelfplayError, match="timeout"):
        VerifierConfig(timeout=0)
    with pytest.raises(SelfplayError, match="workers"):
        VerifierConfig(workers=-1)


def test_progress_bar(verifier, capsys):
    verifier.verify_many([Pair(PUZZLE, "def g(a=5):\n    return 10\n")] * 3, progress=True)
    assert "3/3" in capsys.readouterr().err


@pytest.mark.parametrize("source,shared", [
    ("def g():\n    import math\n    return [math.isqrt(i) for i in range(9)]\n", True),
    ("def g():\n    class A:\n        def __init__(self):\n            self.v = 1\n"
     "    return A().v\n", True),
    ("def g():\n    return ().__class__\n", False),
    ("def g():\n    x = (i for i in [])\n    return x.gi_frame\n", False),
    ("def g():\n    return getattr(1, 'real')\n", False),
    ("def g():\n    import math\n    math.pi = 3\n    return 1\n", False),
    ("def g():\n    import os\n    return 1\n", False),
    ("def g():\n    return '{0.__class__}'.format(1)\n", False),
    ("def g():\n    return eval('1')\n", False),
])
def test_only_plain_code_may_share_a_worker(source, shared):
    assert (isolation_reason(ast.parse(source)) is None) == shared


def test_server_death_is_survived():
    with Verifier(VerifierConfig(timeout=2)) as v:
        v._proc.kill()
        v._proc.wait()
        assert v.verify(Pair(PUZZLE, "def g(a=5):\n    return 10\n")).verdict == "pass"


def test_concurrent_calls_from_threads(verifier):
    from concurrent.futures import ThreadPoolExecutor

    def run(k):
        pairs = [Pair(PUZZLE, f"def g(a=5):\n    return {k + i}\n") for i in range(20)]
        return [v.verdict for v in verifier.verify_many(pairs)]

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, (0, 5, 10)))
    assert results[0] == ["fail"] * 10 + ["pass"] + ["fail"] * 9
    assert results[1] == ["fail"] * 5 + ["pass"] + ["fail"] * 14
    assert results[2] == ["pass"] + ["fail"] * 19


def test_every_verdict_carries_its_reason_as_a_code(quick):
    cases = {
        "passed": (PUZZLE, "def g(a=5):\n    return a * 2\n", {}),
        "wrong_answer": (PUZZLE, "def g(a=5):\n    return 11\n", {"returned": "False"}),
        "wrong_type": (PUZZLE, "def g(a=5):\n    return 'ten'\n", {"returned": "str"}),
        "g_raised": (PUZZLE, "def g(a=5):\n    return 1 // 0\n",
                     {"exception": "ZeroDivisionError"}),
        "f_raised": ("def f(x: int):\n    return x == [][0]\n", "def g():\n    return 1\n",
                     {"exception": "IndexError"}),
        "timeout": (PUZZLE, "def g(a=5):\n    while True:\n        pass\n    return 10\n", {}),
        "memory": (PUZZLE, "def g(a=5):\n    x = bytearray(2 ** 40)\n    return 10\n", {}),
        "invalid_puzzle": ("def f(x):\n    return True\n", "def g():\n    return 1\n", {}),
        "invalid_solution": (PUZZLE, "def g(a=5):\n    return\n", {}),
    }
    verdicts = quick.verify_many([Pair(p, s) for p, s, _ in cases.values()])
    for (reason, (_, _, fields)), v in zip(cases.items(), verdicts):
        assert v.reason == reason, (reason, v)
        for name, value in fields.items():
            assert getattr(v, name) == value, (reason, v)
    assert {v.reason for v in verdicts} <= set(REASONS)


def test_the_server_ignores_a_sandbox_package_in_the_working_directory(tmp_path, monkeypatch):
    # A user's own `sandbox/` package where they run selfplay must not stand in for ours: the
    # server would run a different protocol (or a user's code) outside the sandbox's checks.
    fake = tmp_path / "sandbox"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the wrong sandbox package')\n")
    monkeypatch.chdir(tmp_path)
    with Verifier() as verifier:
        assert verifier.verify(Pair(PUZZLE, "def g(a=5):\n    return a * 2\n")).verdict == "pass"
