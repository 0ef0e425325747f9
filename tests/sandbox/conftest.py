"""Warm verifiers shared by the whole sandbox suite (a server starts in ~0.1 s, then checks
cost microseconds), and helpers that look at the host after an attack."""

import os

import pytest

from sandbox import Verifier, VerifierConfig

# Untrusted code's way out of the import policy: the globals of `os`, reached through a
# `().__class__.__base__.__subclasses__()` walk. Attack tests use it to show that the kernel
# layers hold even when the Python-level policy is bypassed.
WALK = ("    os = [c for c in ().__class__.__base__.__subclasses__()\n"
        "          if c.__name__ == '_wrap_close'][0].__init__.__globals__\n")

UNSOLVABLE = {
    "int": "def f(x: int):\n    return x == x + 1\n",
    "str": "def f(s: str):\n    return s != s\n",
    "list": "def f(li: List[int]):\n    return li != li\n",
    "float": "def f(x: float):\n    return x != x\n",
}


@pytest.fixture(scope="session")
def verifier():
    with Verifier(VerifierConfig(timeout=10.0, workers=2)) as v:
        yield v


@pytest.fixture(scope="session")
def quick():
    """A short timeout and a small memory limit, for checks meant to run out of either."""
    with Verifier(VerifierConfig(timeout=1.0, workers=2, memory_mb=256)) as v:
        yield v


@pytest.fixture(scope="session")
def walk():
    return WALK


@pytest.fixture(scope="session")
def unsolvable():
    return UNSOLVABLE


@pytest.fixture(scope="session")
def healthy():
    """Call it with a verifier after an attack: asserts the host side is intact."""
    return assert_healthy


@pytest.fixture(scope="session")
def leftovers():
    return sandbox_processes


def sandbox_processes(v: Verifier) -> list[int]:
    """Processes left by checks: the server's descendants, and anything running as a worker
    uid that no other verifier's server owns (other verifiers, in this session or another
    process, use the same uids). Between calls there must be none (workers live only while
    they have work); the zygote and its lane templates, which workers are forked from, are
    not among them."""
    uids = range(v.uid_base, v.uid_base + v.config.n_workers)
    parents, as_worker, servers = {}, [], set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"sandbox.server import main" in f.read():
                    servers.add(int(entry))
        except OSError:
            continue
        if status["State"].strip().startswith("Z"):
            continue  # exited: runs nothing (an orphan's init may never reap it, e.g. after
            # a test kills a server, whose zygote and lane templates then die of PDEATHSIG)
        pid, ppid = int(entry), int(status["PPid"])
        parents[pid] = ppid
        if int(status["Uid"].split()[0]) in uids:
            as_worker.append(pid)
    ours, found = v._proc.pid, []
    for pid in parents:
        p, seen = parents.get(pid), 0
        while p and seen < 64:
            if p == ours:
                found.append(pid)
                break
            if p in servers:  # another verifier's server (or zygote)
                break
            p, seen = parents.get(p), seen + 1
        else:
            if pid in as_worker:  # a worker uid outside every server's tree
                found.append(pid)
    templates = {pid for pid, ppid in parents.items() if ppid == v.zygote_pid}
    return sorted(set(found) - {v.zygote_pid} - templates)


def assert_healthy(v: Verifier) -> None:
    """The server is alive, nothing is left running, and an honest check still passes."""
    assert v._proc.poll() is None, "the sandbox server died"
    assert sandbox_processes(v) == []
    from sandbox import Pair
    ok = v.verify(Pair("def f(x: int):\n    return x == 7\n", "def g():\n    return 7\n"))
    assert ok.verdict == "pass", ok
