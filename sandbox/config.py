"""The sandbox's public value types: what you configure, what you submit, what you get back."""

from __future__ import annotations

import os
from dataclasses import dataclass

from puzzles.errors import as_text

VERDICTS = ("pass", "fail", "error", "timeout", "memory", "rejected")
SHARING = ("gate", "never", "always")
KERNEL_LAYERS = ("setuid", "namespaces", "landlock", "seccomp")
REASONS = ("passed", "wrong_answer", "wrong_type", "too_large", "g_raised", "f_raised",
           "timeout", "memory", "invalid_puzzle", "invalid_solution", "tampered", "sandbox")
"""Why a check got its verdict, as a code to branch on (`Verdict.detail` is for people):
passed; wrong_answer (f returned something other than True, see `Verdict.returned`);
wrong_type (g's answer is not a value of the declared type, or cannot be carried as JSON);
too_large (the answer is over the size cap); g_raised / f_raised (see `Verdict.exception`);
timeout; memory; invalid_puzzle / invalid_solution (rejected without running); tampered (the
result channel was written to by untrusted code); sandbox (the sandbox itself failed)."""


@dataclass(frozen=True)
class VerifierConfig:
    """How untrusted code is run: limits, parallelism, and what an answer may be."""

    timeout: float = 5.0
    """Wall-clock seconds allowed to each run of untrusted code: `g()` once, then `f(answer)`
    once, each with its own budget (the JSON round trip of the answer included). The slowest
    honest P3 checks (Mastermind, 1 to 2.5 s on an idle core; ExponentialCoinMoves:0, whose
    81 MB answer takes seconds to serialise) fit on an idle machine; a larger budget lets
    every looping solution cost more."""
    reference_timeout_factor: float = 6.0
    """For reference solutions (those a puzzle comes with: P3's, the seeds', the generators'),
    which an import verifies before storing the puzzle: one that ran over `timeout` is run
    again with this many times as long, counted in CPU time, so that a loaded machine, not the
    reference, cannot decide which puzzles are kept (`Verifier.verify_many(timeout=...,
    wall=...)`; 1: no second run). A reference that loops forever then costs `timeout` times
    (1 + this) seconds of a core."""
    memory_mb: int = 1024
    """Memory (MiB) the untrusted code may allocate on top of the interpreter: an address-space
    limit per worker process. Exceeding it gives verdict `memory`."""
    workers: int = 0
    """Worker processes running at once; 0 means one per CPU core."""
    batch_size: int = 128
    """Most checks one worker process runs in sequence before it is replaced. Only code the
    policy lint calls plain shares a process, and never across stages (see sandbox.policy)."""
    max_answer_bytes: int = 128 << 20
    """Largest answer accepted from `g`, in bytes of JSON; a larger answer fails the check.
    (P3's largest reference answer, ExponentialCoinMoves:0, is 81 MB of big ints.)"""
    held_answer_bytes: int = 256 << 20
    """Bytes of answers the server holds at most, from g stages waiting for their f stage,
    before it starts f stages only (and stops a g worker after its next answer; it takes no
    more checks from the host meanwhile). The server's memory is then bounded by settings,
    not by the batch: about its own ~50 MiB, plus this, plus `workers` x max_answer_bytes
    (one answer per lane that finishes while over it), plus twice the line being read per lane
    (at most 2 x max_answer_bytes each). See bench/server_memory.py."""
    report_answer_bytes: int = 65_536
    """Answers up to this size are copied into `Verdict.answer`; larger ones are left out."""
    scratch_mb: int = 16
    """Size (MiB) of the private scratch directory each worker may write to."""
    uid_base: int = 61000
    """Worker `w` drops to uid/gid `uid_base + w` when the verifier runs as root."""
    disable_layers: tuple[str, ...] = ()
    """Kernel layers to leave off (setuid, namespaces, landlock, seccomp), for debugging or to
    see how the sandbox behaves on a kernel without them. They are reported as inactive."""
    strict: bool = False
    """Refuse to start unless every kernel isolation layer is active (instead of warning)."""
    sharing: str = "gate"
    """Which checks may share a worker process: "gate" (code the sharing gate accepts, see
    sandbox.sharing; the default), "never" (every stage of every check in a fresh process:
    slowest, for the most cautious) or "always" (no gate: for testing and measuring; passes
    are still confirmed alone, so a neighbour can at worst turn a pass into a fail)."""

    def __post_init__(self):
        from puzzles.checks import check_choice, check_ranges
        check_ranges(self, "verifier", timeout="> 0", memory_mb=">= 16", workers=">= 0",
                     batch_size=">= 1", max_answer_bytes=">= 1", report_answer_bytes=">= 0",
                     scratch_mb=">= 1", uid_base=">= 1",
                     reference_timeout_factor=">= 1", held_answer_bytes=">= 1")
        check_choice("verifier.sharing", self.sharing, SHARING)
        for layer in self.disable_layers:
            check_choice("verifier.disable_layers", layer, KERNEL_LAYERS)

    @property
    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class Pair:
    """A puzzle (source defining `f`) and a candidate solution (source defining `g`)."""

    puzzle: str
    solution: str
    id: str = ""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check. Only `f(g()) is True`, with an answer of the declared type,
    is `pass`."""

    verdict: str
    """One of pass, fail, error, timeout, memory, rejected."""
    detail: str
    """Why: the exception and message, what `f` returned, the rule that rejected."""
    seconds: float
    """Wall time spent running untrusted code for this check."""
    answer: str | None = None
    """JSON text of g's answer when it was a value of the declared type, up to
    `VerifierConfig.report_answer_bytes` (None when larger)."""
    reason: str = "sandbox"
    """One of REASONS: why, as a code."""
    exception: str | None = None
    """For g_raised and f_raised: the name of the exception's type (e.g. "NameError")."""
    returned: str | None = None
    """For wrong_answer: what f returned instead of True ("False", "None", "3", "a list");
    for wrong_type: the type g's answer had ("str", "an object of another type")."""

    def __post_init__(self):
        # Its text fields come from untrusted code (an exception's message, an answer) and are
        # stored: each as valid text, whatever line a worker wrote (see puzzles.errors.as_text).
        for name in ("detail", "answer", "exception", "returned"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, as_text(value))

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"
