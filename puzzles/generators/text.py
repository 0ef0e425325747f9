"""Generators over text: strings, words, string transforms. Every answer is longer than the
trivial-answer filter's strings (at most 5 characters; selfplay.stages.filter)."""

from __future__ import annotations

import random
import string

from puzzles.generators.base import Generator


def _word(rng: random.Random, lo: int, hi: int, letters: str = string.ascii_lowercase) -> str:
    return "".join(rng.choice(letters) for _ in range(rng.randint(lo, hi)))


def _interleave(rng: random.Random) -> dict:
    a = _word(rng, 4, 10)
    b = _word(rng, len(a) - 1, len(a))
    return {"a": a, "b": b}


INTERLEAVE = Generator(
    "strings/interleave", "s: str",
    "Find the string whose characters at even positions spell a and at odd positions spell b.",
    "return s[::2] == a and s[1::2] == b",
    "return ''.join(x + y for x, y in zip(a, b)) + a[len(b):]",
    _interleave, tags=("slicing", "interleave"))


def _runs(rng: random.Random) -> dict:
    text = "".join(rng.choice("abcde") * rng.randint(1, 12) for _ in range(rng.randint(3, 8)))
    return {"text": text}


RUN_LENGTH = Generator(
    "strings_transform/run_length_encoding", "s: str",
    "Give the run-length encoding of text: each maximal run of one character as its length "
    "followed by the character, e.g. 'aaab' -> '3a1b'.",
    """
    out, i = '', 0
    while i < len(text):
        j = i
        while j < len(text) and text[j] == text[i]:
            j += 1
        out += str(j - i) + text[i]
        i = j
    return s == out
    """,
    """
    from itertools import groupby
    return ''.join(f'{len(list(run))}{ch}' for ch, run in groupby(text))
    """,
    _runs, tags=("run-length encoding",))


def _anagrams(rng: random.Random) -> dict:
    target = _word(rng, 4, 7)
    words = [_word(rng, len(target) - 1, len(target) + 1) for _ in range(rng.randint(3, 8))]
    for _ in range(rng.randint(2, 4)):
        letters = list(target)
        rng.shuffle(letters)
        words.insert(rng.randint(0, len(words)), "".join(letters))
    return {"words": words, "target": target}


ANAGRAMS_OF = Generator(
    "words/anagrams_in_order", "li: list[str]",
    "List, in their order in words, the words that are anagrams of target (itself included).",
    "return li == [w for w in words if sorted(w) == sorted(target)]",
    """
    from collections import Counter
    want = Counter(target)
    return [w for w in words if Counter(w) == want]
    """,
    _anagrams, tags=("anagrams",))

GENERATORS = (INTERLEAVE, RUN_LENGTH, ANAGRAMS_OF)
