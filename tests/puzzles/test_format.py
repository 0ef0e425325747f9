import pytest

from puzzles import PuzzleError, canonical_source, content_hash, parse_puzzle, parse_solution
from puzzles.format import solution_from_body
from puzzles.types import coerce, conforms, parse_type

GOOD = '''
def f(s: str, n=3, c="o") -> bool:
    """Find a string with n copies of c."""
    # a comment
    return s.count(c) == n
'''


def test_parse_puzzle_reads_type_extra_args_and_docstring():
    p = parse_puzzle(GOOD, name="count_o", family="strings", split="train", tags=["x"])
    assert p.answer_type == "str"
    assert p.extra_args == (("n", "3"), ("c", "'o'"))
    assert p.docstring == "Find a string with n copies of c."
    assert p.solution_header() == "def g(n=3, c='o'):"
    assert (p.name, p.family, p.split, p.tags) == ("count_o", "strings", "train", ("x",))


def test_canonical_form_ignores_formatting_comments_docstrings_and_return_annotation():
    other = "def f(s:str,n=3,c='o'):\n  return s.count( c )==n  # same\n"
    assert canonical_source(GOOD) == canonical_source(other)
    assert content_hash(GOOD) == content_hash(other) == parse_puzzle(other).hash
    assert content_hash(GOOD) != content_hash(other.replace("n=3", "n=4"))


@pytest.mark.parametrize("source, message", [
    ("def f(x): return x", "needs a type annotation"),
    ("def f(x: dict): return 1", "not allowed"),
    ("def f(x: int, y): return x == y", "needs a default"),
    ("def f(x: int):\n    pass", "never returns"),
    ("def f(x: int) return", "syntax error at line 1"),
    ("x = 1\ndef f(x: int): return x", "line 1: only imports"),
    ("def f(x: int): return 1\ndef h(y: int): return 2", "exactly one function"),
    ("def g(x: int): return 1", "exactly one function `f`"),
    ("def f(*x: int): return 1", "plain arguments"),
    ("def f(): return 1", "answer as first argument"),
    ("def f(x: int):\n    def h():\n        return 1\n    h()", "never returns"),
    ("", "empty"),
])
def test_bad_puzzles_are_rejected_with_the_reason(source, message):
    with pytest.raises(PuzzleError, match=message):
        parse_puzzle(source)


def test_solution_must_match_extra_args_in_any_order():
    p = parse_puzzle("def f(x: int, a=1, b=2): return x == a + b")
    assert parse_solution("def g(b=2, a=1): return a + b", p).source.startswith("def g(b=2, a=1)")
    with pytest.raises(PuzzleError, match="extra arguments"):
        parse_solution("def g(a=1): return a", p)
    with pytest.raises(PuzzleError, match="never returns"):
        parse_solution("def g(a=1, b=2): pass", p)


def test_solution_from_p3_body_and_header():
    p = parse_puzzle("def sat(x: int, a=5): return x > a", rename="sat")
    s = solution_from_body("    return a + 1", p, header="def sol(a=5):")
    assert s.source == "def g(a=5):\n    return a + 1\n"


def test_huge_int_literals_parse():
    p = parse_puzzle(f"def f(x: int, n={'9' * 5000}): return x > n")
    assert len(p.extra_args[0][1]) == 5000


@pytest.mark.parametrize("text, shape", [
    ("int", "int"), ("List[int]", "List[int]"), ("list[str]", "List[str]"),
    ("List[List[float]]", "List[List[float]]"), ("typing.List[bool]", "List[bool]"),
])
def test_answer_types(text, shape):
    assert str(parse_type(text)) == shape


def test_conforms_is_exact_about_types():
    t = parse_type("List[int]")
    assert conforms([1, 2], t)
    assert not conforms([1, True], t)  # bool is not an int answer
    assert not conforms((1, 2), t)

    class LyingInt(int):
        pass
    assert not conforms(LyingInt(3), parse_type("int"))
    assert not conforms(float("nan"), parse_type("float"))
    assert conforms(3, parse_type("float")) and coerce([3], parse_type("List[float]")) == [3.0]
