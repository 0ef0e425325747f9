"""Answer types: the small type language of P3 answers.

An answer type is `bool`, `int`, `float`, `str`, or `List[T]` / `list[T]` of an answer type,
nested to any depth. The grammar is this small on purpose: every answer must survive a JSON
round trip, which is how the sandbox carries an answer from `g` to `f` without trusting it.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

from puzzles.errors import PuzzleError

SCALARS = ("bool", "int", "float", "str")


@dataclass(frozen=True)
class AnswerType:
    """`name` is a scalar name, or "list" with `item` set."""

    name: str
    item: AnswerType | None = None

    def __str__(self) -> str:
        return f"List[{self.item}]" if self.name == "list" else self.name


MAX_TYPE_DEPTH = 32
"""Deepest answer type accepted (`List[List[...]]`; P3's deepest is 3). Checking and coercing
an answer recurse once per level, so the depth is bounded where the type is parsed."""

_PARSE_FAILURES = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)
"""What parsing an annotation string can raise: a lone surrogate in it (UnicodeEncodeError
is a ValueError), a NUL, nesting past the parser's limits."""


def parse_type(annotation: str | ast.expr) -> AnswerType:
    """Parse an annotation (source text or an ast node) into an AnswerType.

    Raises PuzzleError naming the annotation when it is not one of the allowed types.
    """
    node = annotation
    if isinstance(annotation, str):
        try:
            node = ast.parse(annotation.strip(), mode="eval").body
        except _PARSE_FAILURES:
            raise PuzzleError(f"answer type {annotation!r:.200} is not a valid annotation",
                              "signature") from None
    result = _from_node(node, 0)
    if result is None:
        try:
            text = annotation if isinstance(annotation, str) else ast.unparse(annotation)
        except _PARSE_FAILURES:
            text = "(an annotation nested too deeply to show)"
        raise PuzzleError(
            f"answer type {text!r:.200} is not allowed: use bool, int, float, str or List[...] "
            f"of them, nested at most {MAX_TYPE_DEPTH} deep", "answer_type")
    return result


def _from_node(node: ast.expr, depth: int) -> AnswerType | None:
    """The type `node` denotes, None if it is not an answer type (or nested past
    MAX_TYPE_DEPTH: one call per level, so no annotation recurses further than that)."""
    if depth > MAX_TYPE_DEPTH:
        return None
    if isinstance(node, ast.Name) and node.id in SCALARS:
        return AnswerType(node.id)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _from_node(ast.parse(node.value, mode="eval").body, depth + 1)
        except _PARSE_FAILURES:
            return None
    if isinstance(node, ast.Subscript):
        base = node.value
        base_name = base.id if isinstance(base, ast.Name) else (
            base.attr if isinstance(base, ast.Attribute) else None)
        if base_name in ("List", "list"):
            item = _from_node(node.slice, depth + 1)
            return AnswerType("list", item) if item else None
    return None


def conforms(value: object, answer_type: AnswerType) -> bool:
    """True iff `value` is exactly of `answer_type` (no subclasses; bool is not an int).

    A float answer must be finite: NaN and infinities satisfy comparisons in ways a checker's
    author did not intend, and JSON cannot carry them.
    """
    name = answer_type.name
    if name == "list":
        return type(value) is list and all(conforms(v, answer_type.item) for v in value)
    if name == "float":
        # An int is accepted where a float is declared, as Python's own numeric tower does.
        return (type(value) is float and math.isfinite(value)) or type(value) is int
    return type(value) is {"bool": bool, "int": int, "str": str}[name]


def type_of(value: object, depth: int = 0) -> AnswerType | None:
    """The answer type of a value, None where it has none: a tuple, dict or set, a list that is
    empty (its item type is unknown) or mixes item types (ints and floats mix as float), a
    float that is not finite, or nesting past MAX_TYPE_DEPTH."""
    kind = type(value)
    if kind in (bool, int, str):
        return AnswerType(kind.__name__)
    if kind is float:
        return AnswerType("float") if math.isfinite(value) else None
    if kind is not list or not value or depth >= MAX_TYPE_DEPTH:
        return None
    items = {type_of(v, depth + 1) for v in value}
    if items == {AnswerType("int"), AnswerType("float")}:
        items = {AnswerType("float")}
    if len(items) != 1 or None in items:
        return None
    return AnswerType("list", items.pop())


def coerce(value: object, answer_type: AnswerType) -> object:
    """Turn a JSON-decoded value into the declared type (ints where floats are declared)."""
    if answer_type.name == "list":
        return [coerce(v, answer_type.item) for v in value]
    if answer_type.name == "float" and type(value) is int:
        return float(value)
    return value
