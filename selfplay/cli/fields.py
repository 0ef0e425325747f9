"""Command-line flags generated from a settings dataclass (TRL's HfArgumentParser idea): one
`--kebab-name` per scalar field, typed by its annotation, its help the field's docstring and its
default the dataclass's, so a verb never retypes the config's vocabulary."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from selfplay.config.toml import field_docs

_TYPES = {int: int, float: float, str: str}


def add_fields(parser, cls: type, *, skip: tuple[str, ...] = (),
               flags: dict[str, tuple[str, ...]] | None = None,
               choices: dict[str, tuple[str, ...]] | None = None,
               prefix: str = "") -> dict[str, str]:
    """Add a flag for every scalar field of dataclass `cls` not in `skip`: `--{prefix}{name}`
    in kebab case, or the flags `flags` gives the field (the first is its name in help; more
    are aliases kept for scripts that use an older name); `choices` gives the values a string
    field takes. Flags default to None, so a value not given leaves the dataclass default.
    Returns {argparse dest: field name}, which `given(args, ...)` reads back."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    added = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if f.name in skip or not (kind is bool or kind in _TYPES):
            continue
        dest = prefix.replace("-", "_") + f.name
        names = (flags or {}).get(f.name) or (f"--{dest.replace('_', '-')}",)
        # An empty default (no adapter, say) is what the docstring's "empty for none" says.
        shown = f" (default: {f.default})" if f.default != "" else ""
        text = f"{docs.get(f.name, '')}{shown}".replace("%", "%%")
        if kind is bool:
            parser.add_argument(*names, dest=dest, action=argparse.BooleanOptionalAction,
                                default=None, help=text)
        else:
            parser.add_argument(*names, dest=dest, type=_TYPES[kind], default=None,
                                choices=(choices or {}).get(f.name), metavar=(
                                    None if (choices or {}).get(f.name) else f.name.upper()),
                                help=text)
        added[dest] = f.name
    return added


def given(args: argparse.Namespace, fields: dict[str, str]) -> dict:
    """The fields (`add_fields`' answer) the command line set: keyword arguments for the
    dataclass."""
    return {name: getattr(args, dest) for dest, name in fields.items()
            if getattr(args, dest) is not None}
