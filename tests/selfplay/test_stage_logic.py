"""Pure logic of the round's stages: trivial answers, checker classification, the data mix."""

from types import SimpleNamespace as V

from puzzles.types import parse_type
from selfplay.stages.filter import classify, trivial_answers
from selfplay.stages.select import plan_mix


def test_trivial_answers_cover_small_values_of_the_declared_type():
    assert 0 in trivial_answers(parse_type("int")) and 10 in trivial_answers(parse_type("int"))
    assert "" in trivial_answers(parse_type("str"))
    lists = trivial_answers(parse_type("List[int]"))
    assert [] in lists and [0] in lists
    assert all(isinstance(x, list) for x in trivial_answers(parse_type("List[List[str]]")))


def test_classify_checker_from_its_verdicts():
    fail, ok = V(verdict="fail", detail="f returned False"), V(verdict="pass", detail="")
    assert classify([fail, ok], None)[0] == "trivial"
    assert classify([fail, fail], [fail, fail]) == ("valid", "")
    assert classify([fail, fail], [fail, V(verdict="error", detail="ZeroDivisionError")]
                    )[0] == "nondeterministic"
    assert classify([V(verdict="timeout", detail="")], None)[0] == "broken"
    name_error = V(verdict="error", detail="f raised NameError: name 'q' is not defined")
    assert classify([name_error, name_error], None)[0] == "broken"
    index_error = V(verdict="error", detail="IndexError: list index out of range")
    assert classify([index_error, fail], None) == ("valid", "")
    assert classify([V(verdict="fail", detail="f returned None"), fail], None) == ("valid", "")
    assert classify([fail, V(verdict="fail", detail="f returned 0")], None)[0] == "broken"
    assert classify([V(verdict="fail", detail="f returned a list (not True)")], None
                    )[0] == "broken"


def test_mix_keeps_human_share_and_minimum_size():
    # 30 synthetic at a 25% human share need 10 human examples.
    assert plan_mix(30, 100, 0.25, 0) == (30, 10)
    # Too few human pairs: synthetic is cut to keep the share.
    assert plan_mix(30, 4, 0.25, 0) == (12, 4)
    # Nothing synthetic: the round trains on human pairs up to the minimum.
    assert plan_mix(0, 100, 0.25, 32) == (0, 32)
    n_syn, n_hum = plan_mix(7, 1000, 0.5, 0)
    assert n_hum >= n_syn
