"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model():
    """The built-in `tiny` model, loaded once per test session.

    Built on first use and cached (under $SELFPLAY_CACHE or ~/.cache/selfplay), so only the
    first session on a machine pays for the build. Tests must not modify it: deep-copy
    `tiny_model.model` before training or wrapping it.
    """
    from training.models import load_model
    return load_model("tiny")


# Pieces of text that break naive quoting: quote runs of either kind, backslashes (alone, before
# a quote, before a newline, spelling escapes), control characters (NUL, CR, form feed), line
# separators Python's str.splitlines honours, non-ASCII and astral characters, braces (f-strings).
HOSTILE_PIECES = (
    '"', '""', '"""', '""""', "'", "''", "'''", '\\', '\\\\', '\\"', "\\'", '\\\n', '\\n',
    '\\x00', '\\u00e9', '\\N{BULLET}', '\n', '\r', '\r\n', '\t', '\x00', '\x0b', '\x0c',
    '\x1b', '\x7f', '\x85', '\u2028', '\u2029', '\ufeff', '\u200b', 'é', 'ß', '中文',
    '\U0001F600', '{', '}', '{x}', '%s', ' ', '    ', 'a', 'Find x.', 'def g():', '#',
)
SURROGATES = ('\ud800', '\udfff')
# The worst cases written out, so each is tried on every run whatever the seed draws.
HOSTILE_EXAMPLES = (
    '"', '""', '"""', '""""', '"""""""', 'ends in a quote "', '"starts with one', "'", "'''",
    'both \'\'\' and """', 'a """ inside', '\\', 'ends in a backslash \\', '\\"', '\\\n',
    '\x00', 'a\rb', 'a\r\nb', '\n    indented\n    ', ' ', 'é 中文 \U0001F600', '\u2028',
    '"1010"', '["woooow", "cow"] => "cow"', '$\\sum_{i \\in S} x_i = 1$',
)


@pytest.fixture(scope="session")
def hostile_texts():
    """`hostile_texts(n, seed, surrogates=False)`: the written-out worst cases, then `n` strings
    drawn (seeded, so every run tries the same ones) from pieces that break naive quoting."""
    import random

    def make(n: int, seed: int = 0, *, surrogates: bool = False) -> list[str]:
        rng = random.Random(seed)
        pieces = HOSTILE_PIECES + (SURROGATES if surrogates else ())
        drawn = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
                 for _ in range(n)]
        return list(HOSTILE_EXAMPLES) + drawn
    return make
