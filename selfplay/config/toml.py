"""Frozen dataclasses <-> TOML, with every field documented and every key checked.

A field's documentation is the string literal written under it in the class body (read with
`ast`, so the docs live next to the code they describe, once). Loading refuses unknown keys and
values of the wrong type, naming the key and the file.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from functools import cache

from puzzles.errors import SelfplayError


@cache
def field_docs(cls: type) -> dict[str, str]:
    """{field name: docstring} for a dataclass whose fields carry a string literal below them."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def from_dict(cls: type, data: dict, where: str):
    """Build dataclass `cls` from a dict, checking keys and types; `where` names the source."""
    if not isinstance(data, dict):
        raise SelfplayError(f"{where}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SelfplayError(f"{where}: unknown key {unknown[0]!r} "
                            f"(known keys: {', '.join(fields)})")
    values = {}
    for name, value in data.items():
        values[name] = _convert(hints[name], value, f"{where}.{name}" if where else name)
    try:
        return cls(**values)
    except SelfplayError as e:
        # A message that starts with its own key ("propose.top_p must be ...") says where
        # already; others get the table's name in front.
        first = str(e).split(" ", 1)[0]
        if first.startswith(f"{where}.") if where else first in fields:
            raise
        raise SelfplayError(f"{where or 'config'}: {e}") from None


def _convert(tp, value, where: str):
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(tp)):
            return None
        errors = []
        for option in options:
            try:
                return _convert(option, value, where)
            except SelfplayError as e:
                errors.append(str(e))
        raise SelfplayError(errors[0])
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise SelfplayError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise SelfplayError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        item = args[0] if args else typing.Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is typing.Any:
        return value
    if tp is float and type(value) is int:
        return float(value)
    if tp in (int, float, str, bool):
        if type(value) is not tp:
            raise SelfplayError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise SelfplayError(f"{where}: expected a table")
        return dict(value)
    raise TypeError(f"unsupported config type {tp} at {where}")


def to_dict(obj) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def to_toml(obj, *, header: str = "") -> str:
    """TOML text for a dataclass of dataclasses (one table each), every key with its doc."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    top_docs = field_docs(type(obj))
    scalars = [f for f in dataclasses.fields(obj) if not dataclasses.is_dataclass(
        getattr(obj, f.name))]
    tables = [f for f in dataclasses.fields(obj) if dataclasses.is_dataclass(
        getattr(obj, f.name))]
    for f in scalars:
        lines += _key_lines(f.name, getattr(obj, f.name), top_docs.get(f.name, ""))
    for f in tables:
        section = getattr(obj, f.name)
        lines.append("")
        if top_docs.get(f.name):
            lines += _comment(top_docs[f.name])
        lines.append(f"[{f.name}]")
        docs = field_docs(type(section))
        for sf in dataclasses.fields(section):
            lines += _key_lines(sf.name, getattr(section, sf.name), docs.get(sf.name, ""))
    return "\n".join(lines).lstrip("\n") + "\n"


def _comment(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, 96)]


def _key_lines(name: str, value, doc: str) -> list[str]:
    return (_comment(doc) if doc else []) + [f"{name} = {_toml_value(value)}"]


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} to TOML")


def override(config, **changes):
    """`dataclasses.replace` that ignores changes left as None (unset command-line flags)."""
    return dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
