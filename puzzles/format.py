"""What a puzzle and a solution are, how they are validated, and their canonical form.

A puzzle is Python source defining `def f(x: T, a=..., ...)`: the first argument is the answer,
annotated with an answer type (see `puzzles.types`); every other argument has a default. A
solution is source defining `def g(a=..., ...)` with the same extra arguments. The pair is
correct iff `f(g()) is True`. Top-level imports are allowed beside the function; nothing else.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import re
import sys
import threading
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


MAX_NESTING = 1_000
"""Deepest syntax tree accepted, in nodes from the module down. Each operator of a chain nests
the ones before it (`1 + 1 + ... + 1` with 400 terms is ~400 deep), so honest sums and string
concatenations reach hundreds; CPython's parser stops near 3,000 on its own. Deeper source is
refused with reason `too_deep`, so the recursive walkers used on accepted trees (ast.unparse,
the compiler) run with a bounded recursion headroom (`recursion_headroom`), never unbounded."""
MAX_FOLDED_BYTES = 16 << 20
"""Most bytes of constants that compiling a source may build by folding constant expressions
(`'a' * 4096 + 'a' * 4096 + ...`). CPython's AST optimiser folds `+` without a size limit and
keeps every intermediate until the compile ends, so 13 KB of source can take a GB of host
memory: such source is refused with reason `too_long` before it is compiled. Host memory for
compiling accepted source is its syntax tree plus at most this."""
_FRAMES_PER_LEVEL = 5
"""Python frames the standard library's recursive tree walkers take per level of a tree:
ast.unparse about 3, fix_missing_locations 1; the compiler's C checks count about 1."""


class _Headroom:
    """A raised recursion limit while any thread needs one, the caller's limit back after the
    last leaves. The limit is process-wide, so a thread must not lower it while another one is
    still deep in a tree: a count and a lock, not each caller restoring what it saw."""

    def __init__(self, extra: int):
        self.extra = extra
        self.lock = threading.Lock()
        self.users = 0
        self.saved = 0

    @contextlib.contextmanager
    def __call__(self):
        with self.lock:
            if self.users == 0:
                self.saved = sys.getrecursionlimit()
                sys.setrecursionlimit(self.saved + self.extra)
            self.users += 1
        try:
            yield
        finally:
            with self.lock:
                self.users -= 1
                if self.users == 0:
                    sys.setrecursionlimit(self.saved)


recursion_headroom = _Headroom(_FRAMES_PER_LEVEL * MAX_NESTING + 500)
"""`with recursion_headroom():` around a recursive walk of a tree that `_parse` accepted (at
most MAX_NESTING deep): ast.unparse, fix_missing_locations, compile."""


def unparse(tree: ast.AST) -> str:
    """ast.unparse of an accepted tree, with the recursion headroom its depth needs (a 400-term
    sum is past the default limit of 1,000 frames). Raises PuzzleError if it still fails."""
    try:
        with recursion_headroom(), unlimited_int_digits():
            return ast.unparse(tree)
    except RecursionError:
        raise PuzzleError(f"source is nested too deeply to write back (over {MAX_NESTING:,} "
                          "levels)", "too_deep") from None


_MAX_REPEATED_ITEMS = 4096
"""Most items a `*` of constants folds into: CPython's optimiser refuses to fold a str or
bytes longer than 4,096 items, a tuple over 256 or an int over 128 bits (and `**`, `<<` into
an int over 128 bits)."""


def _constant_size(value) -> tuple[int, int]:
    """(bytes, bytes per item) of a constant: a str's items are 1, 2 or 4 bytes as CPython
    stores them, a tuple's 8 (pointers to items that exist already)."""
    if isinstance(value, str):
        top = max(value) if value else ""
        width = 4 if top > "\uffff" else 2 if top > "\xff" else 1
        return len(value) * width, width
    if isinstance(value, bytes):
        return len(value), 1
    if isinstance(value, (tuple, frozenset)):
        return 8 * len(value), 8
    if isinstance(value, int):
        return value.bit_length() // 8 + 1, 1
    return 16, 4


def bound_tree(tree: ast.AST, what: str) -> None:
    """Refuse a tree deeper than MAX_NESTING, or whose constant expressions compiling would fold
    into more than MAX_FOLDED_BYTES, without recursion and without building any constant.

    The folding model follows CPython's AST optimiser (Python/ast_opt.c) and over-approximates
    it: a constant tuple, a unary or binary operation or a subscript whose operands are all
    constants is taken to be folded; a `*`, `**` or `<<` into at most _MAX_REPEATED_ITEMS items
    of its operands' widest, any other operator (`+`: concatenation) into as many bytes as both
    operands; a tuple shallow (its items are pointers to constants that exist already)."""
    # Level by level (breadth first): the depth comes for free, and the foldable nodes, taken
    # in reverse, come children before parents. Operator and context nodes (leaves shared by
    # the whole tree) are not visited. This runs on every source the host parses: kept lean.
    level, depth, foldable = [tree], 0, []
    while level:
        depth += 1
        if depth > MAX_NESTING:
            raise PuzzleError(f"{what} line {getattr(level[0], 'lineno', '?')}: nested over "
                              f"{MAX_NESTING:,} levels deep", "too_deep")
        below: list = []
        for node in level:
            if isinstance(node, _FOLDABLE):
                foldable.append(node)
            for name in node._fields:
                value = getattr(node, name, None)
                if type(value) is list:
                    below += [v for v in value if isinstance(v, _VISITED)]
                elif isinstance(value, _VISITED):
                    below.append(value)
        level = below
    sizes: dict[ast.AST, tuple[int, int]] = {}  # foldable node -> (bytes, bytes per item)
    folded = 0
    for node in reversed(foldable):
        size = _folded_size(node, sizes)
        if size is None:
            continue
        sizes[node] = size
        if not isinstance(node, ast.Constant):
            folded += size[0]
            if folded > MAX_FOLDED_BYTES:
                raise PuzzleError(f"{what} has constant expressions that compiling would fold "
                                  f"into over {MAX_FOLDED_BYTES >> 20} MiB of constants",
                                  "too_long")


_FOLDABLE = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Tuple, ast.Subscript, ast.Slice, ast.Name)
_VISITED = (ast.expr, ast.stmt, ast.arguments, ast.arg, ast.keyword, ast.comprehension,
            ast.excepthandler, ast.withitem, ast.match_case, ast.pattern, ast.alias,
            ast.type_ignore, ast.mod)
"""Node classes below which a tree goes on (not operators, contexts: shared leaves)."""


def _bounded_by_its_length(source: str) -> bool:
    """True when `source` is too short to break either bound of bound_tree, which then need not
    walk its tree (the walk costs about as much as parsing; most solutions are this short).

    Depth: a node's source span holds its children's, narrowing by a character at least every
    few levels (implicit nodes, like `Expr` around its value, add one), so depth stays under
    3 * length + 10 (measured, every construct nested: under length + 10). Folding: each folded
    node needs an operator character (or `not`), and none can fold into more than 8 bytes per
    character (a str is at most 4 a character, a tuple 8 an item) plus what `*` and `<<` repeat
    (_MAX_REPEATED_ITEMS items of at most 8 bytes each)."""
    n = len(source)
    if 3 * n + 10 > MAX_NESTING:
        return False
    folds = sum(map(source.count, "+-*/%@&|^~<>,[")) + source.count("not")
    repeats = source.count("*") + source.count("<<")
    return folds * (8 * n + 8 * _MAX_REPEATED_ITEMS * repeats) <= MAX_FOLDED_BYTES


def _folded_size(node: ast.AST, sizes: dict) -> tuple[int, int] | None:
    """(bytes, bytes per item) of the constant `node` folds to, None if it is not folded (see
    bound_tree)."""
    if isinstance(node, ast.Constant):
        return _constant_size(node.value)
    if isinstance(node, ast.BinOp):
        left, right = sizes.get(node.left), sizes.get(node.right)
        if left is None or right is None:
            return None
        unit = max(left[1], right[1])
        if isinstance(node.op, (ast.Mult, ast.Pow, ast.LShift)):
            return _MAX_REPEATED_ITEMS * unit, unit
        return left[0] + right[0], unit
    if isinstance(node, ast.UnaryOp):
        return sizes.get(node.operand)
    if isinstance(node, ast.Tuple):
        if all(e in sizes for e in node.elts):
            return 8 * len(node.elts), 8
        return None
    if isinstance(node, ast.Subscript):
        if node.value in sizes and node.slice in sizes:
            return sizes[node.value]
        return None
    if isinstance(node, ast.Slice):
        if all(part is None or part in sizes for part in (node.lower, node.upper, node.step)):
            return 0, 1
        return None
    if isinstance(node, ast.Name) and node.id == "__debug__":
        return 1, 1
    return None


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
            tree = ast.parse(source)
    except SyntaxError as e:
        raise PuzzleError(f"{what} has a syntax error at line {e.lineno}: {e.msg}",
                          "syntax") from None
    except RecursionError:  # the parser's own depth check, near 3,000 levels
        raise PuzzleError(f"{what} is nested over {MAX_NESTING:,} levels deep",
                          "too_deep") from None
    except MemoryError:
        raise PuzzleError(f"{what} cannot be parsed: MemoryError", "too_long") from None
    except ValueError as e:  # a NUL byte; a lone surrogate, which UTF-8 cannot encode
        raise PuzzleError(f"{what} cannot be parsed: {type(e).__name__}", "syntax") from None
    if not _bounded_by_its_length(source):
        bound_tree(tree, what)
    return tree


def _typed_failures(parser):
    """`parser` (of model text) raising only PuzzleError, with a reason: whatever else a step
    on untrusted source throws (the parser, unparse, a str operation on a lone surrogate) is
    a refusal of that source, never an exception that stops a loop stage."""
    @functools.wraps(parser)
    def parse(*args, **kwargs):
        try:
            return parser(*args, **kwargs)
        except RecursionError:
            raise PuzzleError(f"source is nested over {MAX_NESTING:,} levels deep",
                              "too_deep") from None
        except MemoryError:
            raise PuzzleError("source cannot be parsed: MemoryError", "too_long") from None
        except (ValueError, OverflowError, SystemError) as e:
            raise PuzzleError(f"source cannot be parsed: {type(e).__name__}: {e}"[:300],
                              "invalid") from None
    return parse


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
    with recursion_headroom():
        ast.fix_missing_locations(tree)
    return unparse(tree) + "\n"


@_typed_failures
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


@_typed_failures
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


@_typed_failures
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
    extra = tuple((a.arg, unparse(d)) for a, d in zip(args.args[1:], args.defaults))
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


@_typed_failures
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


@_typed_failures
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
