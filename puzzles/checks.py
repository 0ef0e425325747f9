"""Range checks for config dataclasses: one message shape for every setting a user can get wrong.

A config's `__post_init__` says each numeric field's range once, in the words the error prints:

    check_ranges(self, "propose", prompts=">= 0", top_p="in (0, 1]")

and a value outside it raises `SelfplayError("propose.top_p must be in (0, 1], not 2.0")`: the
key, the allowed range and the value. It lives in `puzzles/` beside the exception so that
`sandbox` and `training` configs use it too (arrows point toward `puzzles/`).
"""

from __future__ import annotations

import re
from functools import cache

from puzzles.errors import SelfplayError

# A range, then an optional note in brackets saying where a bound comes from.
_BOUND = re.compile(r"^(>=|>|<=|<) (-?[\d.e+-]+|inf)(?: \(.*\))?$")
_INTERVAL = re.compile(r"^in ([\[(])(-?[\d.e+-]+|-inf), (-?[\d.e+-]+|inf)([\])])(?: \(.*\))?$")


@cache
def _test(allowed: str):
    """A predicate for a range written as ">= 1", "> 0", "<= 9", "< 1" or "in [0, 1)",
    maybe followed by a note: "in [1, 4] (eval.samples)"."""
    if m := _BOUND.match(allowed):
        op, bound = m.group(1), float(m.group(2))
        return {">=": lambda v: v >= bound, ">": lambda v: v > bound,
                "<=": lambda v: v <= bound, "<": lambda v: v < bound}[op]
    if m := _INTERVAL.match(allowed):
        low, high = float(m.group(2)), float(m.group(3))
        low_ok = (lambda v: v >= low) if m.group(1) == "[" else (lambda v: v > low)
        high_ok = (lambda v: v <= high) if m.group(4) == "]" else (lambda v: v < high)
        return lambda v: low_ok(v) and high_ok(v)
    raise ValueError(f"cannot read the range {allowed!r}")  # a programming error, not a user's


def check_range(key: str, value, allowed: str) -> None:
    """Refuse `value` of setting `key` (e.g. "solve.attempts") unless it is within `allowed`."""
    if not _test(allowed)(value):  # NaN fails every comparison, so it is refused too
        raise SelfplayError(f"{key} must be {allowed}, not {value!r}")


def check_ranges(obj, table: str, **ranges: str) -> None:
    """`check_range` for each named field of `obj`, its key `table.field`."""
    for name, allowed in ranges.items():
        check_range(f"{table}.{name}" if table else name, getattr(obj, name), allowed)


def check_choice(key: str, value, choices) -> None:
    """Refuse `value` of setting `key` unless it is one of `choices`."""
    if value not in choices:
        raise SelfplayError(f"{key} must be one of {', '.join(map(str, choices))}, "
                            f"not {value!r}")
