"""Programs with inputs, and the puzzles they make: the `program` proposal format.

A model writes a program `def f(s: str) -> str` and an input for it (`def g(): return "abc"`).
The sandbox runs the program on the input, and the output it returns becomes the puzzle's
target: "find an input the program maps to this output". So the puzzle is valid by
construction and the model's own input solves it (Absolute Zero's abduction task, in P3's
form). The model never has to write a checker that accepts its own answer, which the 135M
model almost never did (bench/results/propose_formats_intel_xeon.txt: 0 of 31 own pairs).

What this does not guarantee: that the puzzle is hard. A program that ignores its input, or
returns the input itself, makes a puzzle any solver passes; the filter's trivial-answer check
and `copies_input` reject those.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from puzzles.errors import PuzzleError
from puzzles.format import Puzzle, Solution, bound_tree, parse_puzzle, solution_from_body, unparse
from puzzles.types import conforms, parse_type, type_of

SEED_PROGRAMS = Path(__file__).with_name("programs.jsonl")

MAX_OUTPUT_CHARS = 300
"""Longest output (as Python source) a puzzle's target may be: a longer one makes a puzzle
whose text is mostly one constant."""


@dataclass(frozen=True)
class Program:
    """A program `def f(answer: T, extra=default, ...) -> R` and one input for it, as source."""

    source: str
    """The program, its function named `f`."""
    input: str
    """The input, a Python literal of the answer argument's type."""
    output: str | None = None
    """What the program returns on the input, a Python literal; None until it has run."""
    input_code: str | None = None
    """`def g(): ...` computing the input, where the model wrote code rather than a literal
    (`input` is then empty until that code has run in the sandbox: `input_probe`)."""


def parse_program(source: str, input_source: str | None, name: str = "f",
                  input_code: str | None = None) -> Program:
    """The program and input a model wrote, checked: one function `name` (renamed `f`) whose
    first argument has an answer type, whose other arguments have defaults and whose return
    annotation is an answer type too; an input that is a literal with an answer type. Where the
    input's type is not the annotation's, the program takes the input's type instead
    (`retyped`). Raises PuzzleError with the reason."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise PuzzleError(f"program: cannot be parsed: {type(e).__name__}", "syntax") from None
    bound_tree(tree, "program")
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef) \
            or tree.body[0].name != name:
        raise PuzzleError(f"program: must be one function `{name}`", "extra_code")
    fn = tree.body[0]
    _rename(fn, name, "f")
    args = fn.args
    if args.posonlyargs or args.vararg or args.kwarg or args.kwonlyargs or not args.args:
        raise PuzzleError("program: takes its input as first argument, plain arguments only",
                          "signature")
    if args.args[0].annotation is None or fn.returns is None:
        raise PuzzleError("program: its input argument and its return need type annotations",
                          "signature")
    if len(args.defaults) != len(args.args) - 1:
        raise PuzzleError("program: every argument after the input needs a default value",
                          "signature")
    answer_type = parse_type(args.args[0].annotation)
    parse_type(fn.returns)
    if input_source is None:  # computed by `input_code` in the sandbox
        return Program(unparse(tree), "", input_code=input_code)
    try:
        value = ast.literal_eval(input_source.strip())
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        raise PuzzleError(f"program input is not a literal: {input_source.strip()[:60]!r}",
                          "no_input") from None
    return retyped(Program(unparse(tree), repr(value)), value, answer_type)


def retyped(program: Program, value: object, answer_type=None) -> Program:
    """`program` with its input's annotation set to the type of `value`, its input, where the
    two differ. The 135M model often annotates `n: int` and passes a list: a third of its
    program proposals (bench/results/round_program_intel_xeon.txt). Python does not enforce the
    annotation, so the program runs on the input as written, and the puzzle asks for an input
    of the type the model actually used. Raises PuzzleError (`no_input`) when the input has no
    answer type (a tuple, a dict, an empty or mixed list where the annotation says otherwise)."""
    fn = ast.parse(program.source).body[0]
    declared = answer_type or parse_type(fn.args.args[0].annotation)
    if conforms(value, declared):
        return program
    actual = type_of(value)
    if actual is None:
        raise PuzzleError(f"program input is a {type(value).__name__} without an answer type, "
                          f"not the {unparse(fn.args.args[0].annotation)} the program takes",
                          "no_input")
    fn.args.args[0].annotation = ast.parse(str(actual), mode="eval").body
    return Program(unparse(fn), program.input, program.output, program.input_code)


def _rename(fn: ast.FunctionDef, old: str, new: str) -> None:
    """Rename function `fn` from `old` to `new`, with its recursive calls."""
    fn.name = new
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id == old:
            node.id = new


def input_of_solution(body_or_source: str) -> str:
    """The literal a `def g(): return <literal>` returns (or its body alone), as source.
    Raises PuzzleError (`no_input`) when g does anything else."""
    text = body_or_source.strip()
    try:
        tree = ast.parse(text if text.startswith("def ") else "def g():\n" + body_or_source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise PuzzleError("program input: `g` cannot be parsed", "no_input") from None
    fn = tree.body[0] if len(tree.body) == 1 else None
    body = fn.body if isinstance(fn, ast.FunctionDef) else []
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        raise PuzzleError("program input: `g` must be one `return <literal>`", "no_input")
    try:
        ast.literal_eval(body[0].value)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise PuzzleError("program input: `g` must be one `return <literal>`, not "
                          f"{unparse(body[0].value)[:60]!r}", "no_input") from None
    return unparse(body[0].value)


def input_code(g_source: str, name: str = "g") -> str:
    """A model's `def name(): ...` (no arguments) computing a program's input, renamed `g`.
    Raises PuzzleError (`no_input`) when it is not one such function."""
    try:
        tree = ast.parse(g_source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise PuzzleError("program input: `g` cannot be parsed", "no_input") from None
    bound_tree(tree, "program input")
    fn = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(fn, ast.FunctionDef) or fn.name != name or fn.args.args \
            or fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs or fn.args.posonlyargs:
        raise PuzzleError(f"program input: must be one function `{name}()` without arguments",
                          "no_input")
    _rename(fn, name, "g")
    return unparse(tree) + "\n"


_ANY = "def f(y: str) -> bool:\n    return True\n"
"""A checker any string passes: the probes below return a value's repr, whatever its type,
so a value of another type than the annotation says still comes back (`retyped`)."""


def _repr_of(code: str, call: str) -> str:
    """`def g()` holding `code` (a function definition) and returning repr(`call`)."""
    body = "\n".join("    " + line for line in code.rstrip().splitlines())
    return f"def g():\n{body}\n    return repr({call})\n"


def input_probe(program: Program) -> tuple[str, str]:
    """The (puzzle, solution) whose verification returns the repr of the input
    `program.input_code` computes (its `g` nested in the probe's)."""
    return _ANY, _repr_of(program.input_code, "g()")


def _literal(answer_json: str, what: str, reason: str):
    """The value a probe's verdict carries (JSON text of a repr). Raises PuzzleError where the
    repr is not a Python literal (an object, nan, a recursive list)."""
    text = json.loads(answer_json)
    try:
        return ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        raise PuzzleError(f"{what} is not a literal: {text[:60]!r}", reason) from None


def with_input(program: Program, answer_json: str) -> Program:
    """`program` with the input its `input_code` returned (the input probe's verdict), retyped
    to it where needed. Raises PuzzleError (`no_input`) for an input that is not a literal of
    an answer type."""
    value = _literal(answer_json, "program input", "no_input")
    return retyped(Program(program.source, repr(value), program.output, program.input_code),
                   value)


def output_probe(program: Program) -> tuple[str, str]:
    """The (puzzle, solution) whose verification returns the repr of the program's output:
    a `g` that runs the program on its input, whatever type it returns (the return annotation
    is the model's guess, as the input's is). The sandbox's verdict carries g's answer, so the
    program runs there and never here."""
    return _ANY, _repr_of(program.source, f"f({program.input})")


def with_output(program: Program, answer_json: str) -> Program:
    """`program` with the output its probe returned (the sandbox's verdict). Raises
    PuzzleError (`invalid`) where the output is not a Python literal: no puzzle can name it."""
    value = _literal(answer_json, "program output", "invalid")
    return Program(program.source, program.input, repr(value), program.input_code)


def copies_input(program: Program) -> bool:
    """Whether the output is the input itself (the puzzle is then solved by its own target)."""
    return ast.literal_eval(program.output) == ast.literal_eval(program.input)


def inversion_puzzle(program: Program, **meta) -> Puzzle:
    """The puzzle "find an input `program` maps to its output": the program nested in `f`, the
    output a default argument (P3's way of giving a puzzle its constants).
    Raises PuzzleError when the output is too long to make a puzzle of."""
    if program.output is None:
        raise ValueError("inversion_puzzle needs the program's output")
    if len(program.output) > MAX_OUTPUT_CHARS:
        raise PuzzleError(f"program output is {len(program.output)} characters long, over "
                          f"{MAX_OUTPUT_CHARS}", "too_long")
    fn = ast.parse(program.source).body[0]
    answer = fn.args.args[0]
    names = {a.arg for a in fn.args.args}
    target = next(n for n in ("target", "expected", "wanted", "goal") if n not in names)
    _rename(fn, "f", "program")
    nested = "\n".join("    " + line for line in unparse(fn).splitlines())
    source = (f"def f({answer.arg}: {unparse(answer.annotation)}, {target}={program.output})"
              f" -> bool:\n{nested}\n    return program({answer.arg}) == {target}\n")
    return parse_puzzle(source, **meta)


def input_solution(program: Program, puzzle: Puzzle) -> Solution:
    """The model's own input as the puzzle's solution: `def g(target=...): return <input>`,
    or, where the model computed it, its code's body under that header."""
    if program.input_code:
        fn = ast.parse(program.input_code).body[0]
        lines = program.input_code.splitlines(keepends=True)
        return solution_from_body("".join(lines[fn.body[0].lineno - 1:]), puzzle)
    return solution_from_body(f"    return {program.input}\n", puzzle)


@cache
def _seed_programs() -> tuple[Program, ...]:
    programs = []
    for i, line in enumerate(SEED_PROGRAMS.read_text().splitlines(), 1):
        row = json.loads(line)
        try:
            p = parse_program(row["program"], row["input"])
        except PuzzleError as e:  # the file ships with the package: our bug, not the user's
            raise PuzzleError(f"{SEED_PROGRAMS.name} line {i}: {e}", e.reason) from None
        programs.append(Program(p.source, p.input, row["output"]))
    return tuple(programs)


def seed_programs() -> list[Program]:
    """The shipped example programs (written for this project) with their inputs and outputs:
    the examples of program prompts until the model's own programs join them."""
    return list(_seed_programs())


def program_of_puzzle(puzzle: Puzzle, solution: Solution | str) -> Program | None:
    """The program, input and output an inversion puzzle and a literal solution were built
    from (None when they were not built by `inversion_puzzle`): a solved program puzzle as a
    prompt example."""
    try:
        fn = ast.parse(puzzle.source).body[0]
        nested = fn.body[0]
        source = solution.source if isinstance(solution, Solution) else solution
        if not (isinstance(nested, ast.FunctionDef) and nested.name == "program"
                and len(fn.body) == 2 and len(fn.args.defaults) == 1):
            return None
        _rename(nested, "program", "f")
        return Program(unparse(nested), input_of_solution(source),
                       unparse(fn.args.defaults[0]))
    except (PuzzleError, SyntaxError, ValueError, IndexError, AttributeError):
        return None
