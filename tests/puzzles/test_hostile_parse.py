"""Model text that breaks a parser's assumptions: every failure is a PuzzleError with a
reason (never a RecursionError or UnicodeEncodeError out of a loop stage), deep honest code is
accepted, and compiling bounds the constants CPython's optimiser folds."""

import sys
import tracemalloc

import pytest

from puzzles.errors import PUZZLE_REASONS, PuzzleError
from puzzles.format import (MAX_FOLDED_BYTES, MAX_NESTING, canonical_source, content_hash,
                            parse_puzzle, parse_solution, source_with_docstring)
from puzzles.types import MAX_TYPE_DEPTH, parse_type
from sandbox.policy import compile_check
from training.prompts import parse_proposal, parse_solution_completion, rename_function

SUM_400 = "def f(x: int):\n    return x == " + " + ".join(["1"] * 400) + "\n"
CONCAT = "def f(s: str):\n    return s == " + " + ".join(f"'w{i}'" for i in range(800)) + "\n"
# A chain of n folded 4 KiB strings: CPython keeps every intermediate, n * n * 2 KiB in all.
FOLDING = "def f(s: str):\n    return s == " + " + ".join(["'a' * 4096"] * 150) + "\n"


def _reason(call, *args):
    with pytest.raises(PuzzleError) as e:
        call(*args)
    assert e.value.reason in PUZZLE_REASONS
    return e.value.reason


@pytest.mark.parametrize("source", [SUM_400, CONCAT], ids=["400-term sum", "string concat"])
def test_honest_long_chains_are_accepted_hashed_and_written_back(source):
    limit = sys.getrecursionlimit()
    puzzle = parse_puzzle(source, docstring="a chain")
    assert puzzle.hash == content_hash(source) == content_hash(puzzle.source)
    assert canonical_source(source_with_docstring(puzzle)) == puzzle.source
    assert "def f1(" in rename_function(puzzle.source, "f", "f1")
    compile_check(puzzle.source, "f")
    assert sys.getrecursionlimit() == limit  # the headroom is given back


@pytest.mark.parametrize("body, reason", [
    (" + ".join(["1"] * (MAX_NESTING + 10)), "too_deep"),  # deeper than the limit
    (" + ".join(["1"] * 5000), "too_deep"),  # deeper than the parser goes
    ("-" * 5000 + "1", "too_deep"),
    ("(" * 400 + "1" + ")" * 400, "syntax"),  # the tokenizer's own limit
])
def test_pathological_depth_is_a_typed_refusal(body, reason):
    puzzle = f"def f(x: int):\n    return x == {body}\n"
    solution = f"def g():\n    return {body}\n"
    target = parse_puzzle("def f(x: int):\n    return x == 2\n")
    assert _reason(parse_puzzle, puzzle) == reason
    assert _reason(parse_solution, solution) == reason
    assert _reason(content_hash, puzzle) == reason
    assert _reason(parse_proposal, f"x: int):\n    return x == {body}\n", 0) == reason
    assert _reason(parse_solution_completion, f"\n    return {body}\n", target) == reason


def test_a_string_annotation_that_is_not_text_is_refused_not_raised():
    # UnicodeEncodeError (the parser encodes the string as UTF-8) used to stop the filter stage.
    assert _reason(parse_puzzle, "def f(x: '\\ud800'):\n    return True\n") == "answer_type"
    assert _reason(parse_proposal, "x: 'List[\\ud800]'):\n    return True\n", 0) == "answer_type"
    assert _reason(parse_type, "'\\ud800'") == "answer_type"  # the escape, in source
    assert _reason(parse_type, "'\ud800'") == "signature"  # the character itself
    assert _reason(parse_type, "List[int]\0") == "signature"


def test_answer_types_nest_a_bounded_depth():
    def nested(n):
        return "List[" * n + "int" + "]" * n
    assert str(parse_type(nested(MAX_TYPE_DEPTH))) == nested(MAX_TYPE_DEPTH)
    assert _reason(parse_type, nested(MAX_TYPE_DEPTH + 1)) == "answer_type"
    # Strings inside strings count as levels too.
    assert _reason(parse_type, "'" * 1 + "List[" * 40 + "int" + "]" * 40 + "'") == "answer_type"


def test_a_message_quoting_a_lone_surrogate_is_text():
    error = PuzzleError("line 1: name '\ud800' is odd", "syntax")
    assert str(error).encode("utf-8") == b"line 1: name '\\ud800' is odd"


def test_constants_that_folding_would_blow_up_are_refused_before_compiling():
    # Old code: compiling this 1.8 KB puzzle built ~46 MB of constants (every intermediate of
    # the fold kept); refused now before anything is built.
    tracemalloc.start()
    try:
        assert _reason(parse_puzzle, FOLDING) == "too_long"
        assert _reason(parse_solution, FOLDING.replace("def f(s: str):\n    return s == ",
                                                       "def g():\n    return ")) == "too_long"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_compile_check_bounds_folding_on_trees_it_did_not_parse():
    import ast
    tree = ast.parse(FOLDING)
    with pytest.raises(PuzzleError) as e:
        compile_check(tree, "f")
    assert e.value.reason == "too_long"
    # Tuples repeat and concatenate too (pointers, 8 bytes an item).
    tuples = "x = " + " + ".join(["(1,) * 256"] * 200)
    assert _reason(compile_check, tuples, "f") == "too_long"


def test_folding_within_the_bound_compiles_within_it():
    """Host memory for compiling accepted source is its tree plus MAX_FOLDED_BYTES at most: an
    adversarial chain just under the bound, measured."""
    n = 60  # 60 * 60 / 2 * 4 KiB = 7 MiB of intermediates, under the 16 MiB bound
    source = "def f(s: str):\n    return s == " + " + ".join(["'a' * 4096"] * n) + "\n"
    puzzle = parse_puzzle(source)
    tracemalloc.start()
    try:
        compile_check(puzzle.source, "f")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 4 << 20 < peak < MAX_FOLDED_BYTES + (4 << 20)  # the fold did happen, bounded
    assert compile_check("x = 'a' * 4096 + 'b'\n", "f") is not None


@pytest.mark.parametrize("source", [
    "x = " + "-" * 320 + "1",
    "x = " + "+".join(["'a'*4096"] * 36),
    "x = " + "+".join(["(1,)*256"] * 36),
    "x = " + "[" * 100 + "]" * 100,
    "x = f(" + "a=f(" * 60 + ")" * 61,
])
def test_sources_short_enough_to_skip_the_walk_are_within_both_bounds(source):
    """_parse skips bound_tree for short sources: its length argument must hold for them."""
    import ast

    from puzzles.format import _bounded_by_its_length, bound_tree
    if _bounded_by_its_length(source):
        bound_tree(ast.parse(source), "x")  # would raise if the argument were wrong
    # And the argument is not vacuous: the short honest case skips the walk.
    assert _bounded_by_its_length("def g(a=3):\n    return 10 ** 6 * a + 1\n")
