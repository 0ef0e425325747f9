"""How untrusted code is judged: a hardened, fast verifier of puzzle/solution pairs.

    from sandbox import Verifier, VerifierConfig, Pair
    with Verifier(VerifierConfig(timeout=5)) as v:
        v.verify_many([Pair(puzzle_source, solution_source, id="x")])

A pair passes only when `f(g()) is True` with an answer of the declared type, judged in a
process `g` never touched, and only from a run in which no other check's code shared a process.

What each layer adds, and what it does not cover:

- process model (`sandbox.server`, `sandbox.zygote`): checks run in fresh workers forked from
  their lane's template, itself forked from a zygote; neither ever holds check data or runs
  untrusted code, and the template applies the lane's layers once for all its workers; items
  reach a worker one at a time. Holds: a worker's memory has nothing of other checks; limits
  per check; every pass re-run end to end alone. Not: a check that shares a batch and escapes
  the Python policy can still make a neighbour *fail* (never pass).
- two stages (`sandbox.worker`): g runs in one process, f judges its JSON answer in another.
  Holds: nothing g does to its process reaches its judge. Not: a checker that accepts
  anything (that is the loop's trivial-answer filter's job).
- sharing gate (`sandbox.sharing`): RestrictedPython's compile-time policy plus our own AST
  checks decide, on the source as written, which code may share a worker. Holds: dynamic and
  introspective code runs alone. Not a boundary: it is a speed decision; what it misses the
  process model above contains.
- module policy (`sandbox.policy`): builtins without `open`/`input`, read-only views of an
  allowlist of modules. Holds: honest code gets clear ImportErrors. Not: a subclass walk
  reaches the real modules; the kernel layers below are what stop that.
- rlimits: address space, CPU, file size, open files, no cores, one process (as root).
- setuid: each lane (its template and workers) runs as its own unprivileged uid (a block no
  existing account uses). Not when the verifier is not root.
- namespaces and tmpfs: no network interfaces, private IPC and mounts, a size- and
  inode-capped scratch tmpfs. Not when not root.
- Landlock: no reading, writing or listing files outside the lane's scratch dir, no TCP; each
  worker its own signal scope, so it cannot signal its template or anything else (by ABI).
  Not: file metadata (Landlock has no right for it; seccomp below denies changing it).
- seccomp: no sockets, exec, fork, kill, ptrace, mounts, io_uring, bpf, rlimit changes; no
  changing any file's mode, owner, times, xattrs or inode flags, no reading xattrs, no
  inotify/fanotify (the lane's filter, plus each worker's own for fork and rlimits). Not:
  `stat` of a host path a check names (existence, size, times; never contents).

Host-side work on untrusted source is bounded (`puzzles.format`: size and integer-literal
length); the server gets a minimal environment (no caller secrets; a fixed hash seed, so
that no verdict depends on one), decodes what workers write in linear time and memory, holds
answers up to a budget (`VerifierConfig.held_answer_bytes`), and it, the zygote, the lane
templates and the workers die with the process that started them. A layer the kernel or privileges do not offer
is reported by `Verifier.layers()` and `selfplay doctor` (`strict=True` refuses to start).
Not protected: kernel bugs, side channels (timing, cache), and a denial of service by a
checker that is slow for every answer (it gets `timeout` each time).
"""

from sandbox.config import REASONS, SHARING, VERDICTS, Pair, Verdict, VerifierConfig
from sandbox.verifier import Verifier

__all__ = ["Verifier", "VerifierConfig", "Verdict", "Pair", "VERDICTS", "REASONS", "SHARING"]
