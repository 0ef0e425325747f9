"""Command-line flags generated from a settings dataclass (TRL's HfArgumentParser idea): one
`--kebab-name` per scalar field, typed by its annotation, its help the field's docstring and its
default the dataclass's, so a verb never retypes the config's vocabulary."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from selfplay.config.toml import field_docs

_TYPES = {int: int, float: float, str: str}


def add_fields(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = (),
               aliases: dict[str, tuple[str, ...]] | None = None,
               choices: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Add a flag for every scalar field of dataclass `cls` not in `skip`; `aliases` gives a
    field more flags (kept for scripts that use an older name), `choices` the values a string
    field takes. Flags default to None, so a value not given leaves the dataclass default.
    Returns the field names added; `given(args, names)` reads them back."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    added = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if f.name in skip or not (kind is bool or kind in _TYPES):
            continue
        flags = [f"--{f.name.replace('_', '-')}", *(aliases or {}).get(f.name, ())]
        text = f"{docs.get(f.name, '')} (default: {f.default})".replace("%", "%%")
        if kind is bool:
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=text)
        else:
            parser.add_argument(*flags, dest=f.name, type=_TYPES[kind], default=None,
                                choices=(choices or {}).get(f.name), help=text)
        added.append(f.name)
    return added


def given(args: argparse.Namespace, names: list[str]) -> dict:
    """The fields of `names` the command line set: keyword arguments for the dataclass."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}
