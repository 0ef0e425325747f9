"""Framing between the verifier (host) and its server: length-prefixed pickles on pipes.

Both ends are trusted code; untrusted workers never hold these pipes (they close every fd but
their own result pipe), and their output reaches the host only as strings the server built.
Also here: the bounded decoder for what workers write to their result pipes (`decode_flat`),
and the layout of the task memfd the server writes and a worker reads (`TASK_HEADER`,
`TASK_ENTRY`), so that the worker need not import the server.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct

_HEADER = struct.Struct("!Q")
TASK_HEADER = struct.Struct("!Q")
"""The task memfd's first field: how many items it holds."""
TASK_ENTRY = struct.Struct("!QQ")
"""One row of the task memfd's offset table: where an item's pickle starts, and its size."""


def send(fd: int, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    data = _HEADER.pack(len(data)) + data
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv(fd: int):
    """The next message, or None when the other end has closed the pipe."""
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    data = _read_exact(fd, _HEADER.unpack(header)[0])
    return None if data is None else pickle.loads(data)


# -- worker result lines ---------------------------------------------------------------------
# A worker's result line is untrusted bytes (an escaped check can write anything to its result
# pipe), so the server never hands it to a general JSON parser: `json.loads` parses a line of
# millions of digits in quadratic time (with int digit limits off, as answers need) and turns
# a line of nested empty containers into ~28 times its size in objects. What workers send is a
# flat object of short ints and strings (`sandbox.worker._send`: `json.dumps`, ASCII only); the
# decoder below accepts exactly that and refuses anything else before allocating for it.

MAX_INT_DIGITS = 18
"""Most digits of an int in a result line (item indices): an int64, parsed in constant time."""
MAX_KEYS = 8
"""Most keys in a result line (a worker sends at most k, v, c, d, x, r or k, v, a)."""
_INT = r"-?(?:0|[1-9][0-9]{0,%d})" % (MAX_INT_DIGITS - 1)
_NUMBER = re.compile(_INT)
_SPACE = re.compile(r"[ \t\n\r]*")
_PAIR = r'"[a-z]": (?:"(?:[^"\\\x00-\x1f]++|\\.)*+"|%s)' % _INT
_WORKER_LINE = re.compile(r"\{%s(?:, %s){0,%d}\}" % (_PAIR, _PAIR, MAX_KEYS - 1))
"""Exactly what json.dumps writes for a worker's result: flat, short ints. Possessive
quantifiers, so matching is linear; a line it matches is then safe for json.loads."""
_FAST = 1 << 16  # longer lines (answers) go the scanner's way: it is faster per byte


def decode_flat(text: str) -> dict | None:
    """The JSON object in `text` if it is flat: at most MAX_KEYS distinct keys, each value a
    string or an int of at most MAX_INT_DIGITS digits; otherwise None. Work and memory are
    linear in len(text): no nesting is parsed at all, numbers are matched by a bounded pattern,
    strings by json's own string scanner (one str per value, never more than the text). Pairs
    with the same key: the last one counts, as in json.loads."""
    if len(text) < _FAST and _WORKER_LINE.fullmatch(text):
        try:  # the common case, at C speed: the pattern admits no nesting and no long int
            return json.loads(text)
        except ValueError:  # a bad escape in a string
            return None
    scan = json.decoder.scanstring
    space = _SPACE.match
    result: dict = {}
    pairs = 0
    i = space(text, 0).end()
    if text[i:i + 1] != "{":
        return None
    i = space(text, i + 1).end()
    if text[i:i + 1] == "}":
        return result if space(text, i + 1).end() == len(text) else None
    try:
        while True:
            if text[i:i + 1] != '"':
                return None
            key, i = scan(text, i + 1)
            pairs += 1
            if pairs > MAX_KEYS:
                return None
            i = space(text, i).end()
            if text[i:i + 1] != ":":
                return None
            i = space(text, i + 1).end()
            if text[i:i + 1] == '"':
                value, i = scan(text, i + 1)
            else:
                number = _NUMBER.match(text, i)
                if number is None:
                    return None
                value, i = int(number.group()), number.end()
            result[key] = value
            i = space(text, i).end()
            separator = text[i:i + 1]
            i = space(text, i + 1).end()
            if separator == "}":
                return result if i == len(text) else None
            if separator != ",":
                return None  # also: an int longer than MAX_INT_DIGITS, a float, a nested value
    except ValueError:  # json.decoder.JSONDecodeError: a bad string (escape, control char)
        return None
