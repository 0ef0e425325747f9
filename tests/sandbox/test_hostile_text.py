"""What a check says about itself is text, whatever its code does: exception messages that are
not valid text, exception types whose name cannot be read, str subclasses with their own
methods. And what the host does with a pair before running it (parse, fold, compile) is
bounded, deep honest code included."""

import json

import pytest

from puzzles.format import MAX_NESTING
from sandbox import Pair, Verdict

PUZZLE = "def f(x: int):\n    return x == 3\n"
GOOD = "def g():\n    return 3\n"


def _stored_text(v: Verdict) -> None:
    """Every text field of `v` goes into SQLite and JSON as it is: UTF-8 must encode it."""
    for field in (v.detail, v.exception, v.returned, v.answer):
        if field is not None:
            assert type(field) is str
            field.encode("utf-8")


@pytest.mark.parametrize("raiser", [
    "raise ValueError('\\ud800')",
    "raise OSError(2, '\\udfff' * 1000)",  # str() of it holds the characters themselves
    "raise UnicodeDecodeError('utf-8', b'\\xff', 0, 1, '\\ud800')",
])
def test_a_message_that_is_not_text_is_reported_as_text(verifier, raiser):
    in_f = f"def f(x: int):\n    {raiser}\n    return True\n"
    in_g = f"def g():\n    {raiser}\n    return 3\n"
    [v_f, v_g] = verifier.verify_many([Pair(in_f, GOOD), Pair(PUZZLE, in_g)])
    assert (v_f.reason, v_g.reason) == ("f_raised", "g_raised")
    for v in (v_f, v_g):
        _stored_text(v)
        assert "\\ud800" in v.detail + v.exception or "\\udfff" in v.detail


METACLASS = """
    class Meta(type):
        @property
        def __name__(cls):
            raise RuntimeError('no name')
    class Boom(Exception, metaclass=Meta):
        def __str__(self):
            class S(str):
                def __format__(self, spec):
                    raise RuntimeError('format')
                def __getitem__(self, i):
                    raise RuntimeError('getitem')
            return S('a message')
    raise Boom()
    return 3
"""


def test_an_exception_whose_type_has_no_readable_name_is_the_checks_own_error(verifier):
    in_f = "def f(x: int):" + METACLASS
    in_g = "def g():" + METACLASS
    [v_f, v_g] = verifier.verify_many([Pair(in_f, GOOD), Pair(PUZZLE, in_g)])
    # Used to be `error`/`sandbox`: "sandbox internal error", as if the sandbox had failed.
    assert (v_f.verdict, v_f.reason) == ("error", "f_raised")
    assert (v_g.verdict, v_g.reason) == ("error", "g_raised")
    for v in (v_f, v_g):
        assert v.exception == "Boom" and v.detail.endswith("Boom: a message")
        _stored_text(v)


def test_a_verdict_holds_only_text_whatever_it_is_given():
    v = Verdict("error", "f raised ValueError: \ud800", 0.1, answer='"\udfff"',
                reason="f_raised", exception="E\ud800", returned="\ud800")
    _stored_text(v)
    assert v.detail == "f raised ValueError: \\ud800" and v.exception == "E\\ud800"


def test_deep_honest_code_is_compiled_and_run(verifier):
    """A 400-term sum used to be `rejected` (RecursionError writing its canonical form)."""
    terms = " + ".join(["1"] * 400)
    puzzle = f"def f(x: int):\n    return x == {terms}\n"
    [v, wrong] = verifier.verify_many([Pair(puzzle, f"def g():\n    return {terms}\n"),
                                       Pair(puzzle, "def g():\n    return 399\n")])
    assert (v.verdict, wrong.verdict) == ("pass", "fail")


def test_source_the_host_cannot_bound_is_rejected_without_running(verifier):
    deep = " + ".join(["1"] * (MAX_NESTING + 10))
    folding = " + ".join(["'a' * 4096"] * 300)  # ~184 MB of folded constants on old code
    verdicts = verifier.verify_many([
        Pair(f"def f(x: int):\n    return x == {deep}\n", GOOD),
        Pair(PUZZLE, f"def g():\n    return {deep}\n"),
        Pair(f"def f(s: str):\n    return s == {folding}\n", "def g():\n    return ''\n"),
        Pair("def f(s: str):\n    return s == 'a'\n", f"def g():\n    return {folding}\n"),
    ])
    assert [(v.verdict, v.reason) for v in verdicts] == [
        ("rejected", "invalid_puzzle"), ("rejected", "invalid_solution")] * 2
    assert "levels deep" in verdicts[0].detail and "MiB of constants" in verdicts[3].detail
    json.dumps([v.detail for v in verdicts])
