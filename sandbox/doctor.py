"""What isolation this machine gives the sandbox, and a few canary checks that prove it.

`selfplay doctor` prints `diagnose()`: each layer active or not (and why), then canaries:
an honest pair must pass, and a loop, a file write, a socket and a fork must all be stopped.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from dataclasses import dataclass

from sandbox.config import Pair, VerifierConfig
from sandbox.verifier import Verifier

LAYER_NOTES = {
    "process": "each batch runs in a fresh process forked from its lane's template (forked "
               "from a zygote; neither ever holds check data), SIGKILLed on timeout",
    "rlimits": "address space, CPU, file size, open files, no core dumps",
    "setuid": "workers drop root for a per-worker uid (RLIMIT_NPROC then holds)",
    "namespaces": "private network, IPC and mount namespaces (no network at all)",
    "scratch_tmpfs": "scratch dirs live on a size-capped private tmpfs",
    "landlock": "no reading or writing files outside the scratch dir (metadata is "
                "seccomp's), no TCP, no signals outside",
    "landlock_partial": "parts of Landlock this kernel's ABI lacks",
    "seccomp": "no sockets, exec, fork, kill, ptrace, mounts, io_uring, bpf; no file "
               "metadata changes (mode, times, xattrs), no inotify",
    "two_stage": "f runs in a process g never touched, on g's answer as JSON",
    "policy": "import allowlist; read-only module views",
    "sharing": "RestrictedPython + AST gate decides who shares a worker; every pass from a "
               "shared worker is re-run end to end alone",
}

_ESCAPE = ("    os = [c for c in ().__class__.__base__.__subclasses__()\n"
           "          if c.__name__ == '_wrap_close'][0].__init__.__globals__\n")
_CANARIES = (
    ("honest pair passes", "pass", "def f(x: int):\n    return x == 3\n",
     "def g():\n    return 3\n"),
    ("infinite loop is killed", "timeout", "def f(x: int):\n    return x == 3\n",
     "def g():\n    while True:\n        pass\n    return 3\n"),
    # {path}: a fresh name per diagnosis (see _with_canary_file), created with O_EXCL.
    ("file write outside scratch is refused", "error", "def f(x: int):\n    return True\n",
     "def g():\n" + _ESCAPE + "    os['open']({path!r}, 193, 0o600)\n    return 1\n"),
    ("socket is refused", "error", "def f(x: int):\n    return True\n",
     "def g():\n" + _ESCAPE + "    c = os['sys'].modules['ctypes']\n"
     "    fd = c.CDLL(None, use_errno=True).socket(2, 2, 0)\n"
     "    if fd < 0:\n        raise OSError(c.get_errno(), 'socket')\n    return 1\n"),
    ("fork is refused", "error", "def f(x: int):\n    return True\n",
     "def g():\n" + _ESCAPE + "    os['fork']()\n    return 1\n"),
)


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str


def diagnose(config: VerifierConfig | None = None) -> tuple[list[Finding], list[Finding]]:
    """(layers, canaries): what is active and why not, and whether the canaries behaved."""
    import dataclasses
    import warnings

    config = dataclasses.replace(config or VerifierConfig(), timeout=1.0)
    # A name no earlier diagnosis used: a file left by one (owned by another worker uid) would
    # refuse the open and pass the canary though nothing stopped the write.
    path = os.path.join(tempfile.gettempdir(), f"selfplay-doctor-canary-{uuid.uuid4().hex}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reported below instead
            with Verifier(config) as verifier:
                layers = [Finding(name, status is True,
                                  LAYER_NOTES.get(name, "") if status is True else str(status))
                          for name, status in verifier.layers().items()]
                verdicts = verifier.verify_many([Pair(p, g.replace("{path!r}", repr(path)))
                                                 for _, _, p, g in _CANARIES])
        written = os.path.lexists(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    canaries = [Finding(name, v.verdict == want, f"{v.verdict}: {v.detail}"[:160])
                for (name, want, _, g), v in zip(_CANARIES, verdicts)]
    if written:  # whatever the verdict said, the file is the proof
        canaries = [Finding(f.name, False, f"the file was written ({path}, now removed); "
                            + f.detail) if "{path!r}" in g else f
                    for f, (_, _, _, g) in zip(canaries, _CANARIES)]
    return layers, canaries
