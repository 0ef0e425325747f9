"""Pure logic of the round's stages: trivial answers, checker classification, the data mix."""

import pytest

from puzzles.errors import PuzzleError
from puzzles.format import parse_puzzle
from puzzles.trivial import trivial_answers
from puzzles.types import parse_type
from sandbox import Verdict
from selfplay.stages.filter import classify, parse_reason
from selfplay.stages.select import plan_mix


def test_trivial_answers_cover_small_values_of_the_declared_type():
    assert 0 in trivial_answers(parse_type("int")) and 10 in trivial_answers(parse_type("int"))
    assert "" in trivial_answers(parse_type("str"))
    lists = trivial_answers(parse_type("List[int]"))
    assert [] in lists and [0] in lists
    assert all(isinstance(x, list) for x in trivial_answers(parse_type("List[List[str]]")))


def _v(verdict, reason, exception=None, returned=None):
    # The detail is deliberately meaningless: classification must read the typed fields only.
    return Verdict(verdict, "(reworded message)", 0.0, reason=reason, exception=exception,
                   returned=returned)


def test_classify_checker_from_its_typed_verdicts():
    fail, ok = _v("fail", "wrong_answer", returned="False"), _v("pass", "passed")
    assert classify([fail, ok], None)[0] == "trivial"
    assert classify([fail, fail], [fail, fail]) == ("valid", "")
    assert classify([fail, fail], [fail, _v("error", "f_raised", "ZeroDivisionError")]
                    )[0] == "nondeterministic"
    assert classify([_v("timeout", "timeout")], None)[0] == "broken"
    name_error = _v("error", "f_raised", "NameError")
    assert classify([name_error, name_error], None)[0] == "broken"
    index_error = _v("error", "f_raised", "IndexError")
    assert classify([index_error, fail], None) == ("valid", "")
    assert classify([_v("fail", "wrong_answer", returned="None"), fail], None) == ("valid", "")
    assert classify([fail, _v("fail", "wrong_answer", returned="0")], None)[0] == "broken"
    assert classify([_v("fail", "wrong_answer", returned="a list (not True)")], None
                    )[0] == "broken"


BAD_PROPOSALS = {
    "empty": "   \n",
    "syntax": "def f(x: int):\n    return x ==\n",
    "extra_code": "x = 1\ndef f(x: int):\n    return True\n",
    "signature": "def f(x):\n    return True\n",
    "answer_type": "def f(x: dict):\n    return True\n",
    "no_return": "def f(x: int):\n    pass\n",
    "too_long": "def f(x: int):\n    return x == " + "7" * 30_000 + "\n",
}


def test_parse_failures_are_counted_by_reason_code_not_wording(monkeypatch):
    def reasons():
        found = {}
        for want, source in BAD_PROPOSALS.items():
            with pytest.raises(PuzzleError) as e:
                parse_puzzle(source)
            found[want] = parse_reason(e.value)
        return found

    assert reasons() == {k: k for k in BAD_PROPOSALS}
    original = PuzzleError.__init__

    def reworded(self, message, reason="invalid"):
        original(self, "something else entirely: " + message[::-1], reason)

    monkeypatch.setattr(PuzzleError, "__init__", reworded)
    assert reasons() == {k: k for k in BAD_PROPOSALS}


def test_real_sandbox_verdicts_carry_the_fields_classification_reads(tmp_path):
    from sandbox import Verifier, VerifierConfig

    checkers = {
        "valid": "def f(x: int):\n    return x == 12345\n",
        "trivial": "def f(x: int):\n    return x >= 0\n",
        "returns a number": "def f(x: int):\n    return x + 1\n",
        "name error": "def f(x: int):\n    return x == undefined_name\n",
    }
    answers = trivial_answers(parse_type("int"))[:5]
    with Verifier(VerifierConfig(timeout=5.0, workers=1)) as v:
        got = {name: classify(v.check_answers([(src, a) for a in answers]), None)[0]
               for name, src in checkers.items()}
    assert got == {"valid": "valid", "trivial": "trivial", "returns a number": "broken",
                   "name error": "broken"}


def test_mix_keeps_human_share_and_minimum_size():
    # 30 synthetic at a 25% human share need 10 human examples.
    assert plan_mix(30, 100, 0.25, 0) == (30, 10)
    # Too few human pairs: synthetic is cut to keep the share.
    assert plan_mix(30, 4, 0.25, 0) == (12, 4)
    # Nothing synthetic: the round trains on human pairs up to the minimum.
    assert plan_mix(0, 100, 0.25, 32) == (0, 32)
    n_syn, n_hum = plan_mix(7, 1000, 0.5, 0)
    assert n_hum >= n_syn


def test_mix_min_human_adds_synthetic_on_top_of_the_human_pairs():
    # Without it, 73 synthetic pairs push the human ones down to the 25% share.
    assert plan_mix(73, 400, 0.25, 64) == (73, 25)
    # With it at the control's 64, the synthetic pairs come on top of 64 human ones.
    assert plan_mix(73, 400, 0.25, 64, min_human=64) == (73, 64)
    # A pool smaller than min_human gives what it has, and the share still cuts synthetic.
    assert plan_mix(73, 10, 0.25, 64, min_human=64) == (30, 10)
