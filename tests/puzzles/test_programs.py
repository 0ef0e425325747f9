"""Programs with inputs make inversion puzzles that their own input solves
(puzzles.programs, the `program` proposal format). Outputs are computed in the real sandbox."""

import pytest

from puzzles.errors import PuzzleError
from puzzles.programs import (Program, copies_input, input_of_solution, input_solution,
                              inversion_puzzle, output_probe, parse_program, program_of_puzzle,
                              seed_programs, with_output)
from sandbox import Verifier
from sandbox.config import Pair


@pytest.fixture(scope="module")
def verifier():
    with Verifier() as v:
        yield v


def run_program(verifier, program: Program) -> Program:
    [verdict] = verifier.verify_many([Pair(*output_probe(program))])
    assert verdict.passed, verdict.detail
    return with_output(program, verdict.answer)


def test_every_seed_program_states_the_output_the_sandbox_computes(verifier):
    seeds = seed_programs()
    assert len(seeds) >= 30
    probes = [Pair(*output_probe(p)) for p in seeds]
    for program, verdict in zip(seeds, verifier.verify_many(probes)):
        assert verdict.passed, (program.source, verdict.detail)
        assert with_output(program, verdict.answer).output == program.output, program.source


def test_an_inversion_puzzle_is_solved_by_its_own_input_and_not_by_another(verifier):
    program = run_program(verifier, parse_program(
        "def f9(s: str, k=2) -> str:\n    return s[k:] + s[:k]\n", "'puzzle'", "f9"))
    assert program.output == "'zzlepu'"
    puzzle = inversion_puzzle(program)
    assert puzzle.answer_type == "str" and "target='zzlepu'" in puzzle.source
    own = input_solution(program, puzzle)
    other = input_solution(Program(program.source, "'elzzup'", program.output), puzzle)
    assert [v.verdict for v in verifier.verify_many(
        [Pair(puzzle.source, own.source), Pair(puzzle.source, other.source)])] == ["pass", "fail"]


def test_a_recursive_program_still_calls_itself_once_nested(verifier):
    program = run_program(verifier, parse_program(
        "def f3(n: int) -> int:\n    return 1 if n < 2 else n * f3(n - 1)\n", "5", "f3"))
    assert program.output == "120"
    puzzle = inversion_puzzle(program)
    [verdict] = verifier.verify_many([Pair(puzzle.source, input_solution(program, puzzle).source)])
    assert verdict.passed, verdict.detail


@pytest.mark.parametrize("source, given, reason", [
    ("def f(s: str):\n    return s\n", "'a'", "signature"),            # no return annotation
    ("def f(s) -> str:\n    return s\n", "'a'", "signature"),          # untyped input
    ("def f(s: str, n) -> str:\n    return s * n\n", "'a'", "signature"),
    ("def f(s: dict) -> str:\n    return ''\n", "{}", "answer_type"),
    ("def f(s: str) -> str:\n    return s\nx = 1\n", "'a'", "extra_code"),
    ("def f(s: str) -> str:\n    return s\n", "open('x')", "no_input"),
    ("def f(s: str) -> str:\n    return s\n", "(3, 4)", "no_input"),  # a tuple: no answer type
    ("def f(s: str) -> str:\n    return s\n", "[]", "no_input"),      # an empty list, of what?
    ("def f(s: str) -> str:\n    return s\n", "[1, 'a']", "no_input"),  # a mixed list
    ("def f(s: str) -> str\n    return s\n", "'a'", "syntax"),
])
def test_a_bad_program_is_refused_with_its_reason(source, given, reason):
    with pytest.raises(PuzzleError) as e:
        parse_program(source, given)
    assert e.value.reason == reason


def test_the_input_must_be_one_literal_return():
    assert input_of_solution("def g():\n    return [1, 2]\n") == "[1, 2]"
    for body in ("def g():\n    x = 2\n    return x\n", "def g():\n    pass\n"):
        with pytest.raises(PuzzleError, match="return <literal>"):
            input_of_solution(body)


def test_an_output_equal_to_the_input_or_too_long_is_caught():
    copy = Program("def f(x: int) -> int:\n    return x", "7", "7")
    assert copies_input(copy) and not copies_input(Program(copy.source, "7", "8"))
    long = Program("def f(x: str) -> str:\n    return x * 200", "'ab'", repr("ab" * 200))
    with pytest.raises(PuzzleError) as e:
        inversion_puzzle(long)
    assert e.value.reason == "too_long"


def test_a_solved_inversion_puzzle_gives_back_its_program():
    for program in seed_programs():
        puzzle = inversion_puzzle(program)
        assert program_of_puzzle(puzzle, input_solution(program, puzzle)) == program
    plain = inversion_puzzle(seed_programs()[0])
    assert program_of_puzzle(plain, "def g(target='x'):\n    return 'a' + 'b'\n") is None


def test_an_input_written_as_code_runs_in_the_sandbox_first(verifier):
    from puzzles.programs import input_code, input_probe, with_input
    code = input_code("def g4():\n    words = ['b', 'a']\n    return sorted(words)\n", "g4")
    program = parse_program("def f4(li: List[str]) -> str:\n    return '+'.join(li)\n", None,
                            "f4", code)
    assert program.input == "" and program.input_code.startswith("def g():")
    [verdict] = verifier.verify_many([Pair(*input_probe(program))])
    program = run_program(verifier, with_input(program, verdict.answer))
    assert (program.input, program.output) == ("['a', 'b']", "'a+b'")
    puzzle = inversion_puzzle(program)
    own = input_solution(program, puzzle)  # the model's code, under the puzzle's header
    assert "sorted(words)" in own.source
    [verdict] = verifier.verify_many([Pair(puzzle.source, own.source)])
    assert verdict.passed, verdict.detail
    with pytest.raises(PuzzleError, match="without arguments"):
        input_code("def g4(n=3):\n    return [n]\n", "g4")


def test_an_input_of_another_type_than_annotated_retypes_the_program(verifier):
    # The 135M model writes `n: int` and passes a list (83 of 1,024 proposals in one round):
    # the program runs on what it was given, and the puzzle asks for that type.
    program = run_program(verifier, parse_program(
        "def f9(n: int) -> int:\n    return sum(n) * 2\n", "[1, 2, 3]", "f9"))
    assert program.source.startswith("def f(n: List[int]) -> int:") and program.output == "12"
    puzzle = inversion_puzzle(program)
    assert puzzle.answer_type == "List[int]"
    [verdict] = verifier.verify_many([Pair(puzzle.source, input_solution(program, puzzle).source)])
    assert verdict.passed, verdict.detail
    # An input of the declared type leaves the program as written; an int where a float is
    # declared is a float, as in a P3 answer.
    kept = parse_program("def f(x: float) -> float:\n    return x / 2\n", "3")
    assert kept.source.startswith("def f(x: float)")


def test_a_return_of_another_type_than_annotated_is_still_the_target(verifier):
    program = run_program(verifier, parse_program(
        "def f(n: int) -> int:\n    return [n, n + 1] if n > 2 else n / 2\n", "5"))
    assert program.output == "[5, 6]"
    puzzle = inversion_puzzle(program)
    [verdict] = verifier.verify_many([Pair(puzzle.source, input_solution(program, puzzle).source)])
    assert verdict.passed, verdict.detail


def test_an_output_that_is_no_literal_is_refused_by_name(verifier):
    program = parse_program("def f(n: int) -> int:\n    return float('nan') if n else object()\n",
                            "1")
    [verdict] = verifier.verify_many([Pair(*output_probe(program))])
    assert verdict.passed, verdict.detail
    with pytest.raises(PuzzleError, match="program output is not a literal: 'nan'") as e:
        with_output(program, verdict.answer)
    assert e.value.reason == "invalid"


def test_an_input_computed_as_another_type_retypes_the_program_or_is_refused(verifier):
    from puzzles.programs import input_code, input_probe, with_input
    source = "def f4(li: List[str]) -> int:\n    return len(li)\n"
    retyped = parse_program(source, None, "f4", input_code("def g4():\n    return 'abc'\n", "g4"))
    tupled = parse_program(source, None, "f4", input_code("def g4():\n    return (1, 2)\n", "g4"))
    given, refused = verifier.verify_many([Pair(*input_probe(retyped)), Pair(*input_probe(tupled))])
    program = with_input(retyped, given.answer)
    assert program.input == "'abc'" and program.source.startswith("def f(li: str)")
    with pytest.raises(PuzzleError, match="tuple without an answer type") as e:
        with_input(tupled, refused.answer)
    assert e.value.reason == "no_input"
