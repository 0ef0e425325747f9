"""What a puzzle and a solution are, how they are validated, and their canonical form.

A puzzle is Python source defining `def f(x: T, a=..., ...)`: the first argument is the answer,
annotated with an answer type (see `puzzles.types`); every other argument has a default. A
solution is source defining `def g(a=..., ...)` with the same extra arguments. The pair is
correct iff `f(g()) is True`. Top-level imports are allowed beside the function; nothing else.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import re
import sys
import warnings
from dataclasses import dataclass, replace
from functools import cached_property

from puzzles.errors import PuzzleError
from puzzles.types import AnswerType, parse_type

SPLITS = ("train", "heldout", "none")


@dataclass(frozen=True)
class Puzzle:
    """A validated puzzle. Build it with `parse_puzzle`, not directly."""

    source: str
    """Source text defining `f` (canonical form: formatting, comments and docstrings dropped)."""
    answer_type: str
    """Declared type of the answer, e.g. `List[int]`."""
    extra_args: tuple[tuple[str, str], ...] = ()
    """(name, default source) of each argument after the answer, in order."""
    name: str = ""
    family: str = ""
    split: str = "none"
    difficulty: str = ""
    tags: tuple[str, ...] = ()
    docstring: str = ""
    """The docstring of `f`, if it had one: kept for people, never part of the hash."""

    @cached_property
    def hash(self) -> str:
        return content_hash(self.source)

    @property
    def type(self) -> AnswerType:
        return parse_type(self.answer_type)

    def solution_header(self) -> str:
        """`def g(a=..., ...):`, the line a solution starts with."""
        args = ", ".join(f"{n}={d}" for n, d in self.extra_args)
        return f"def g({args}):"

    def with_meta(self, **changes) -> Puzzle:
        return replace(self, **changes)


@dataclass(frozen=True)
class Solution:
    """A validated solution: source defining `g`."""

    source: str

    @cached_property
    def hash(self) -> str:
        return content_hash(self.source)


@contextlib.contextmanager
def unlimited_int_digits():
    """Lift Python 3.11's 4,300-digit int/str limit: real puzzles hold larger literals."""
    old = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None
    if old is not None:
        sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        if old is not None:
            sys.set_int_max_str_digits(old)


MAX_SOURCE_CHARS = 100_000
"""Longest puzzle or solution source accepted (P3's longest is 14,564 characters): parsing,
canonicalising and compiling happen on the host, outside every sandbox timeout."""
MAX_INT_DIGITS = 20_000
"""Longest integer literal accepted (P3's longest has 8,844 digits): converting a decimal
literal costs time quadratic in its length, a million digits tens of seconds."""
_LONG_DIGITS = re.compile(r"\d{%d,}" % (MAX_INT_DIGITS + 1))


def _parse(source: str, what: str) -> ast.Module:
    if not isinstance(source, str) or not source.strip():
        raise PuzzleError(f"{what} source is empty", "empty")
    if len(source) > MAX_SOURCE_CHARS:
        raise PuzzleError(f"{what} source is {len(source):,} characters, over the "
                          f"{MAX_SOURCE_CHARS:,}-character limit", "too_long")
    long_run = _LONG_DIGITS.search(source)
    if long_run:
        raise PuzzleError(f"{what} has a run of over {MAX_INT_DIGITS:,} digits (an integer "
                          f"literal too long to convert in bounded time)", "too_long")
    try:
        # Model-written code draws SyntaxWarnings (`x is 1`, `[...][...]`): not for the user.
        with unlimited_int_digits(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except SyntaxError as e:
        raise PuzzleError(f"{what} has a syntax error at line {e.lineno}: {e.msg}",
                          "syntax") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise PuzzleError(f"{what} cannot be parsed: {type(e).__name__}", "syntax") from None


def _the_function(tree: ast.Module, fname: str, what: str) -> ast.FunctionDef:
    funcs = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            funcs.append(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        elif (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
              and isinstance(node.value.value, str)):
            continue  # a module docstring
        else:
            raise PuzzleError(
                f"{what} line {node.lineno}: only imports and one `def {fname}` may stand at top "
                f"level, found {type(node).__name__}", "extra_code")
    named = [fn for fn in funcs if fn.name == fname]
    if len(funcs) != 1 or not named:
        found = ", ".join(fn.name for fn in funcs) or "none"
        raise PuzzleError(f"{what} must define exactly one function `{fname}` (found: {found})",
                          "extra_code")
    fn = named[0]
    if isinstance(fn, ast.AsyncFunctionDef):
        raise PuzzleError(f"{what} line {fn.lineno}: `{fname}` must not be async", "extra_code")
    if fn.decorator_list:
        raise PuzzleError(f"{what} line {fn.lineno}: `{fname}` must not be decorated",
                          "extra_code")
    return fn


def _has_return(fn: ast.FunctionDef) -> bool:
    # A `return` inside a nested function does not count: it returns from the wrong function.
    stack = list(fn.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return) and node.value is not None:
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return False


def _drop_docstring(fn: ast.FunctionDef) -> str:
    body = fn.body
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        doc = body[0].value.value
        fn.body = body[1:] or [ast.Pass()]
        return doc
    return ""


def _canonical(tree: ast.Module) -> str:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            _drop_docstring(node)
    tree.body = [n for n in tree.body if not (
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
        and isinstance(n.value.value, str))]
    # The return annotation (`-> bool` or none) does not change what a puzzle means.
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            node.returns = None
    with unlimited_int_digits():
        return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def canonical_source(source: str) -> str:
    """Normalised source: comments, docstrings, `-> bool` and formatting dropped."""
    return _canonical(_parse(source, "source"))


def content_hash(source: str) -> str:
    """Stable hash of the canonical form, for exact dedup (16 hex digits of sha256)."""
    return hashlib.sha256(canonical_source(source).encode()).hexdigest()[:16]


def string_literal(text: str) -> str:
    """Python source of a string literal whose value is exactly `text`, for any text.

    Triple-quoted, so a multi-line docstring reads as it was written; only what would change
    the value or end the literal early is escaped. Pasting text between quotes is never safe:
    a docstring ending in `"` or holding `\"\"\"` closes the literal too soon, a backslash starts
    an escape, a NUL cannot stand in source at all and a bare CR is read back as LF.
    """
    out = []
    for i, c in enumerate(text):
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            # An unescaped quote is safe only alone: escape one that another quote follows,
            # or that is last (the closing `"""` follows it), so no `"""` forms inside.
            follower = text[i + 1] if i + 1 < len(text) else '"'
            out.append('\\"' if follower == '"' else '"')
        elif c in "\n\t" or c.isprintable():
            out.append(c)
        else:
            # NUL, CR, other control characters, lone surrogates, U+2028...: repr's escape of
            # one character is its `\xNN`/`\uNNNN` form (never a quote, which is printable).
            out.append(repr(c)[1:-1])
    return '"""' + "".join(out) + '"""'


def source_with_docstring(puzzle: Puzzle) -> str:
    """The puzzle's source with its docstring put back as the first statement of `f`: what
    every writer of puzzle files shows people. Re-parsing it gives the same puzzle, the same
    hash and the same docstring, whatever characters the docstring holds."""
    if not puzzle.docstring:
        return puzzle.source
    source = puzzle.source
    tree = _parse(source, "puzzle")
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "f")
    if fn.body[0].lineno == fn.lineno:  # `def f(x): return x`: not canonical, so make it so
        source = _canonical(tree)
        tree = _parse(source, "puzzle")
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "f")
    first = fn.body[0]
    # The canonical source (ast.unparse output) starts the body on its own line below the
    # header, so the docstring goes in as a line of its own before that line; the source text
    # itself is kept as it is rather than unparsed again.
    lines = source.split("\n")
    at = first.lineno - 1
    doc = " " * first.col_offset + string_literal(puzzle.docstring)
    return "\n".join(lines[:at] + [doc] + lines[at:])


def parse_puzzle(source: str, *, rename: str | None = None, **meta) -> Puzzle:
    """Validate puzzle source and return its canonical Puzzle.

    `rename` names a function to treat as `f` (P3 calls it `sat`). Extra keyword arguments set
    metadata fields (name, family, split, difficulty, tags). Raises PuzzleError.
    """
    what = f"puzzle {meta['name']!r}" if meta.get("name") else "puzzle"
    tree = _parse(source, what)
    if rename:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == rename:
                node.name = "f"
    fn = _the_function(tree, "f", what)
    args = fn.args
    if args.posonlyargs or args.vararg or args.kwarg or args.kwonlyargs:
        raise PuzzleError(f"{what} line {fn.lineno}: `f` takes plain arguments only "
                          "(no *args, **kwargs, keyword-only or positional-only)", "signature")
    if not args.args:
        raise PuzzleError(f"{what} line {fn.lineno}: `f` must take the answer as first argument",
                          "signature")
    first = args.args[0]
    if first.annotation is None:
        raise PuzzleError(f"{what} line {fn.lineno}: the answer argument `{first.arg}` needs a "
                          "type annotation (bool, int, float, str or List[...])", "signature")
    try:
        answer_type = parse_type(first.annotation)
    except PuzzleError as e:
        raise PuzzleError(f"{what} line {fn.lineno}: {e}", e.reason) from None
    n_extra = len(args.args) - 1
    if len(args.defaults) != n_extra:
        raise PuzzleError(f"{what} line {fn.lineno}: every argument after the answer needs a "
                          "default value", "signature")
    if len(args.defaults) > n_extra:
        raise PuzzleError(f"{what} line {fn.lineno}: the answer argument must not have a default",
                          "signature")
    if not _has_return(fn):
        raise PuzzleError(f"{what} line {fn.lineno}: `f` never returns a value", "no_return")
    docstring = _drop_docstring(fn)
    with unlimited_int_digits():
        extra = tuple((a.arg, ast.unparse(d)) for a, d in zip(args.args[1:], args.defaults))
    split = meta.pop("split", "none") or "none"
    if split not in SPLITS:
        raise PuzzleError(f"{what}: split must be one of {', '.join(SPLITS)}, not {split!r}")
    tags = tuple(meta.pop("tags", ()) or ())
    for key, value in [*((k, v) for k, v in meta.items() if k != "docstring"),
                       *(("tag", t) for t in tags)]:
        # JSON's `"\ud800"` decodes to a lone surrogate, which no UTF-8 file or store can hold:
        # storing it would fail the whole batch, so the puzzle is refused here, saying why.
        if isinstance(value, str) and not _is_text(value):
            raise PuzzleError(f"{what}: {key} {value!r} holds a lone surrogate, which is not text")
    # The same in the docstring (`"\ud800"` in the source) is valid Python, and the docstring is
    # only for people: it keeps the escape instead of the character.
    docstring = (meta.pop("docstring", "") or docstring).encode("utf-8", "backslashreplace"
                                                                ).decode("utf-8")
    return Puzzle(source=_canonical(tree), answer_type=str(answer_type), extra_args=extra,
                  docstring=docstring, split=split, tags=tags,
                  **{k: (v or "") for k, v in meta.items()})


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def solution_tree(source: str, puzzle: Puzzle | None = None, *, rename: str | None = None,
                  ) -> ast.Module:
    """The validated syntax tree of solution source (defines `g`), not canonicalised: what a
    verifier compiles, without paying for the canonical form it does not need."""
    tree = _parse(source, "solution")
    if rename:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == rename:
                node.name = "g"
    fn = _the_function(tree, "g", "solution")
    args = fn.args
    if args.posonlyargs or args.vararg or args.kwarg or args.kwonlyargs:
        raise PuzzleError(f"solution line {fn.lineno}: `g` takes plain arguments only",
                          "signature")
    if len(args.defaults) != len(args.args):
        raise PuzzleError(f"solution line {fn.lineno}: every argument of `g` needs a default",
                          "signature")
    if puzzle is not None:
        want = [n for n, _ in puzzle.extra_args]
        got = [a.arg for a in args.args]
        if sorted(got) != sorted(want):  # g is called with its defaults: order is free
            raise PuzzleError(f"solution line {fn.lineno}: `g` must take the puzzle's extra "
                              f"arguments ({', '.join(want) or 'none'}), not "
                              f"({', '.join(got) or 'none'})", "signature")
    if not _has_return(fn):
        raise PuzzleError(f"solution line {fn.lineno}: `g` never returns a value", "no_return")
    return tree


def parse_solution(source: str, puzzle: Puzzle | None = None, *, rename: str | None = None,
                   ) -> Solution:
    """Validate solution source (defines `g`); with `puzzle`, check the extra arguments match."""
    return Solution(source=_canonical(solution_tree(source, puzzle, rename=rename)))


def solution_from_body(body: str, puzzle: Puzzle, header: str | None = None) -> Solution:
    """A solution from an indented body (as P3 stores them) under the puzzle's `g` header."""
    head = header or puzzle.solution_header()
    return parse_solution(head.rstrip() + "\n" + body.rstrip() + "\n", puzzle,
                          rename=_header_name(head))


def _header_name(header: str) -> str | None:
    text = header.strip()
    if text.startswith("def "):
        return text[4:].split("(", 1)[0].strip()
    return None


# A field list for other modules that want to carry puzzle metadata without the source.
META_FIELDS = tuple(f for f in Puzzle.__dataclass_fields__ if f not in (
    "source", "answer_type", "extra_args"))
