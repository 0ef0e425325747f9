"""The answers a puzzle must not accept: small values of its answer type, tried by the filter
stage on every proposed checker and by the rule-based generators on what they make. A checker
that accepts one of them is trivial (ICLR 2023, "Language Models Can Teach Themselves to
Program Better")."""

from __future__ import annotations

from puzzles.types import AnswerType

_SCALAR_TRIVIA = {
    # Smallest first: lists of trivial items take the first few.
    "int": [0, 1, -1] + [v for i in range(2, 11) for v in (i, -i)] + [100, 1000],
    "float": [0.0, 0.5, 1.0, -1.0, 2.0, 0.1],
    "bool": [True, False],
    "str": ["", "a", "b", "ab", "abc", "aaa", "0", "1", " ", "hello", "x"],
}


def trivial_answers(t: AnswerType) -> list:
    """Answers a puzzle must not accept (ICLR 2023: small ints, a few strings, short lists)."""
    if t.name != "list":
        return list(_SCALAR_TRIVIA[t.name])
    items = trivial_answers(t.item)
    return [[]] + [[x] for x in items[:4]] + [[x, x] for x in items[:2]] + [items[:3]]
