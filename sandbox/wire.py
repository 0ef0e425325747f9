"""Framing between the verifier (host) and its server: length-prefixed pickles on pipes.

Both ends are trusted code; untrusted workers never hold these pipes (they close every fd but
their own result pipe), and their output reaches the host only as strings the server built.
"""

from __future__ import annotations

import os
import pickle
import struct

_HEADER = struct.Struct("!Q")


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
