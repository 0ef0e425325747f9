"""The verification server: a small, fresh interpreter that forks hardened workers.

The host (the process holding torch and a model) never forks checks itself: fork cost grows
with the parent's memory. It starts this server once (a fresh `python -c`, see ENTRY), sends it
checks, and reads verdicts back (see `sandbox.wire`). The server runs one worker per lane at a time; each worker is
forked, hardened (see `sandbox.layers`) and given a batch of one stage (see `sandbox.worker`).
The server measures every item's wall time and SIGKILLs a worker whose current item runs past
the timeout; the rest of that batch goes to a fresh worker.
"""

from __future__ import annotations

import collections
import gc
import json
import math
import os
import resource
import secrets
import select
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field

from sandbox import wire

_STACK_BYTES = 512 << 20  # deep recursion in C (lru_cache, repr) needs more than 8 MiB
_SETUP_SECONDS = 10.0
_FINAL = ("pass", "fail", "error", "memory")
ENTRY = "from sandbox.server import main; main()"  # not -m: the package imports this module


@dataclass
class Check:
    """One check as the server tracks it: the solution's source and its puzzle (`g_source`
    None means: only run f on `answer`), the marshalled code of `f`, and whether each stage
    must run alone in its own process. The g worker parses and lints the solution itself, so
    that this work (and any parser crash) happens in parallel, inside the sandbox."""

    idx: int
    g_source: str | None
    puzzle: object
    f_code: bytes
    answer_type: str
    answer: str | None
    g_alone: bool
    f_alone: bool
    seconds: float = 0.0


@dataclass
class Running:
    pid: int
    fd: int
    stage: str
    checks: list
    lane: int
    nonce: str
    deadline: float
    k: int = -1  # index of the item running now; -1 until the worker says it is ready
    item_started: float = 0.0
    buffer: bytearray = field(default_factory=bytearray)


class Server:
    def __init__(self, settings: dict, layers, policy):
        self.settings = settings
        self.layers = layers
        self.policy = policy
        self.n_lanes = settings["workers"]
        self.timeout = settings["timeout"]
        self.batch_size = settings["batch_size"]
        self.lane_dirs = [self._make_lane_dir(lane) for lane in range(self.n_lanes)]
        self.worker_settings = {
            "memory_bytes": _address_space_now() + settings["memory_mb"] * (1 << 20),
            "scratch_bytes": settings["scratch_mb"] * (1 << 20),
            "max_answer_bytes": settings["max_answer_bytes"],
            "server_pid": os.getpid(),
        }

    def _uid(self, lane: int) -> int:
        return self.settings["uid_base"] + lane

    def _make_lane_dir(self, lane: int) -> str:
        path = os.path.join(self.layers.scratch_root, f"lane{lane}")
        os.makedirs(path, exist_ok=True)
        if self.layers.active("setuid"):
            os.chown(path, self._uid(lane), self._uid(lane))
        os.chmod(path, 0o700)
        return path

    def _clean_lane_dir(self, lane: int) -> None:
        path = self.lane_dirs[lane]
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        pass

    # -- running a list of checks -------------------------------------------------------------

    def run(self, in_fd: int, out_fd: int) -> None:
        """Take ("more", checks) messages until ("end",), running checks as they arrive (the
        host parses the next chunk meanwhile); send ("result", idx, verdict, detail, seconds,
        answer) as each finishes, then ("done",)."""
        self.in_fd, self.out_fd, self.more = in_fd, out_fd, True
        self.queues = {(stage, alone): collections.deque()
                       for stage in "gf" for alone in (False, True)}
        self.running: dict[int, Running] = {}
        self.free_lanes = list(range(self.n_lanes))
        self.outbox: list = []
        while self.more or self.running or any(self.queues.values()):
            while self.free_lanes and self._start_next():
                pass
            self._wait()
            if self.outbox:  # one message per wake-up, not one per verdict
                wire.send(out_fd, ("results", self.outbox))
                self.outbox = []
        wire.send(out_fd, ("done",))

    def _receive(self) -> None:
        message = wire.recv(self.in_fd)
        if message is None:
            raise BrokenPipeError("the verifier went away")
        if message[0] == "end":
            self.more = False
            return
        for check in message[1]:
            if check.g_source is None:
                self.queues["f", check.f_alone].append(check)
            else:
                self.queues["g", check.g_alone].append(check)

    def _start_next(self) -> bool:
        """Start one worker if it is worth it: lone checks at once; full batches at once;
        partial batches only when no more checks are coming or nothing is running (a fresh
        process per handful of checks is what makes per-check isolation slow)."""
        q = self.queues
        for stage in "gf":  # the slow lone checks first, so they overlap the batches
            if q[stage, True]:
                self._spawn(stage, [q[stage, True].popleft()])
                return True
        g, f = q["g", False], q["f", False]
        for stage, queue in (("f", f), ("g", g)):
            if len(queue) >= self.batch_size:
                self._spawn(stage, [queue.popleft() for _ in range(self.batch_size)])
                return True
        if not (f or g) or (self.more and self.running):
            return False
        stage, queue = ("f", f) if len(f) >= len(g) else ("g", g)
        share = math.ceil((len(f) + len(g)) / max(1, len(self.free_lanes)))
        size = max(1, min(len(queue), self.batch_size, share))
        self._spawn(stage, [queue.popleft() for _ in range(size)])
        return True

    def _spawn(self, stage: str, checks: list) -> None:
        from sandbox import worker

        lane = self.free_lanes.pop()
        nonce = secrets.token_hex(12)
        if stage == "g":
            items = [(c.g_source, c.puzzle, c.g_alone or len(checks) == 1) for c in checks]
        else:
            items = [(c.f_code, c.answer_type, c.answer) for c in checks]
        settings = dict(self.worker_settings,
                        cpu_seconds=int(self.timeout * len(items) + _SETUP_SECONDS) + 1)
        r, w = os.pipe()
        gc.freeze()  # the child's collector then never touches (and copies) our pages
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                worker.main(stage, items, w, nonce, settings, self.layers, self.policy,
                            self.lane_dirs[lane], self._uid(lane))
            finally:
                os._exit(70)
        os.close(w)
        os.set_blocking(r, False)
        self.running[r] = Running(pid=pid, fd=r, stage=stage, checks=checks, lane=lane,
                                  nonce=nonce, deadline=time.monotonic() + _SETUP_SECONDS)

    def _wait(self) -> None:
        now = time.monotonic()
        timeout = None
        if self.running:
            timeout = max(0.0, min(r.deadline for r in self.running.values()) - now)
        fds = list(self.running) + ([self.in_fd] if self.more else [])
        if not fds:
            return
        readable, _, _ = select.select(fds, [], [], timeout)
        for fd in readable:
            if fd == self.in_fd:
                self._receive()
            else:
                self._read(self.running[fd])
        now = time.monotonic()
        for run in list(self.running.values()):
            if run.fd in self.running and now >= run.deadline:
                self._expire(run)

    def _read(self, run: Running) -> None:
        eof = False
        while True:
            try:
                chunk = os.read(run.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            run.buffer += chunk
            if len(run.buffer) > self.settings["max_answer_bytes"] * 2 + 65536:
                return self._stop(run, "error", "result channel tampered with (oversized line)")
        while run.fd in self.running:
            end = run.buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(run.buffer[:end])
            del run.buffer[:end + 1]
            self._handle_line(run, line)
        if eof and run.fd in self.running:
            self._exited(run)

    def _handle_line(self, run: Running, line: bytes) -> None:
        message = _parse_line(line, run.nonce)
        if message is None:
            return self._stop(run, "error", "result channel tampered with")
        k, v = message["k"], message["v"]
        now = time.monotonic()
        if k == -1 and run.k == -1:
            if v == "ready":
                run.k, run.item_started, run.deadline = 0, now, now + self.timeout
                return
            if v == "setup":
                return self._stop(run, "error", "sandbox setup failed: " + message["d"],
                                  whole_batch=True)
        if k != run.k or not 0 <= k < len(run.checks):
            return self._stop(run, "error", "result channel tampered with (out of order)")
        check = run.checks[k]
        check.seconds += now - run.item_started
        if run.stage == "g" and v == "alone":  # the policy wants it in a process of its own
            check.g_alone = True
            self.queues["g", True].append(check)
        elif run.stage == "g" and v == "rejected":
            self._finish(check, v, message["d"])
        elif run.stage == "g" and v == "answer":
            if len(message["a"]) > self.settings["max_answer_bytes"]:
                self._finish(check, "fail", "g's answer is over the size cap")
            else:
                check.answer = message["a"]
                self.queues["f", check.f_alone].append(check)
        elif v in _FINAL and not (run.stage == "g" and v == "pass"):
            self._finish(check, v, message["d"])
        else:
            return self._stop(run, "error", "result channel tampered with (bad verdict)")
        run.k, run.item_started, run.deadline = k + 1, now, now + self.timeout
        if v == "memory":  # the worker stops after a MemoryError: the rest go to a fresh one
            self._reap(run)
            self.queues[run.stage, False].extendleft(reversed(run.checks[run.k:]))
            return
        if run.k == len(run.checks):
            run.deadline = now + _SETUP_SECONDS  # only exiting is left

    def _finish(self, check: Check, verdict: str, detail: str) -> None:
        # g's answer, once the f worker has accepted its type and run f on it
        answer = check.answer if check.g_source is not None else None
        ran_f = verdict == "pass" or (verdict == "fail" and detail.startswith("f returned")) or (
            verdict == "error" and detail.startswith("f raised"))
        if answer is not None and (not ran_f or
                                   len(answer) > self.settings["report_answer_bytes"]):
            answer = None
        self.outbox.append(("result", check.idx, verdict, detail, round(check.seconds, 6),
                            answer))

    def _expire(self, run: Running) -> None:
        if run.k == -1:
            return self._stop(run, "error", "sandbox setup timed out", whole_batch=True)
        if run.k >= len(run.checks):
            return self._reap(run)
        check = run.checks[run.k]
        check.seconds += time.monotonic() - run.item_started
        what = "g()" if run.stage == "g" else "f(answer)"
        self._stop(run, "timeout", f"{what} ran over the {self.timeout:g} s limit")

    def _exited(self, run: Running) -> None:
        status = self._reap(run)
        if run.k == -1:
            return self._requeue_or_fail(run, "error",
                                         f"worker died during setup ({_status_text(status)})",
                                         whole_batch=True)
        if run.k < len(run.checks):
            check = run.checks[run.k]
            check.seconds += time.monotonic() - run.item_started
            what = "g()" if run.stage == "g" else "f(answer)"
            verdict = "timeout" if _signal_of(status) == signal.SIGXCPU else "error"
            self._requeue_or_fail(run, verdict,
                                  f"process ended during {what} ({_status_text(status)})")

    def _stop(self, run: Running, verdict: str, detail: str, whole_batch: bool = False) -> None:
        self._reap(run)
        self._requeue_or_fail(run, verdict, detail, whole_batch)

    def _requeue_or_fail(self, run: Running, verdict: str, detail: str,
                         whole_batch: bool = False) -> None:
        """The current item gets the verdict; the untouched rest go back to the queue."""
        start = max(run.k, 0)
        if whole_batch:
            for check in run.checks:
                self._finish(check, verdict, detail)
            return
        if start < len(run.checks):
            self._finish(run.checks[start], verdict, detail)
        self.queues[run.stage, False].extendleft(reversed(run.checks[start + 1:]))

    def _reap(self, run: Running) -> int:
        """SIGKILL the worker (a no-op if it already exited), collect it, free its lane."""
        for kill in (os.killpg, os.kill):
            try:
                kill(run.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _pid, status = os.waitpid(run.pid, 0)
        os.close(run.fd)
        del self.running[run.fd]
        self._clean_lane_dir(run.lane)
        self.free_lanes.append(run.lane)
        return status

    def stop_all(self) -> None:
        for run in list(getattr(self, "running", {}).values()):
            self._reap(run)


def _parse_line(line: bytes, nonce: str) -> dict | None:
    """A worker's result line, validated field by field; None if anything is off."""
    prefix = nonce.encode()
    if not line.startswith(prefix):
        return None
    try:
        message = json.loads(line[len(prefix):])
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or type(message.get("k")) is not int:
        return None
    v = message.get("v")
    if v == "answer":
        return message if type(message.get("a")) is str else None
    if v in ("ready", "alone"):
        return message
    if v == "rejected" and type(message.get("d")) is str:
        return message
    if v in _FINAL + ("setup",) and type(message.get("d")) is str:
        message["d"] = message["d"][:300]
        return message
    return None


def _signal_of(status: int) -> int | None:
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit code {os.WEXITSTATUS(status)}"


def _address_space_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _ensure_big_stack() -> None:
    """The main thread's stack limit is fixed at exec: raise it, then exec ourselves again."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = _STACK_BYTES if hard == resource.RLIM_INFINITY else min(_STACK_BYTES, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_STACK, (want, hard))
        os.execv(sys.executable, [sys.executable, "-s", "-c", ENTRY, *sys.argv[1:]])


def main() -> None:
    settings = json.loads(sys.argv[1])
    _ensure_big_stack()
    sys.set_int_max_str_digits(0)
    # Our protocol pipes move to private fds; stray prints cannot corrupt them.
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)

    from sandbox import layers as kernel
    from sandbox.policy import ModulePolicy

    policy = ModulePolicy()  # imports the allowlisted modules before any lockdown
    layers = kernel.setup_server(settings["scratch_root"], settings["scratch_mb"],
                                 settings["workers"], tuple(settings["disable_layers"]))
    server = Server(settings, layers, policy)
    try:
        while True:
            message = wire.recv(in_fd)
            if message is None:
                break
            if message[0] == "layers":
                wire.send(out_fd, ("layers", dict(layers.status)))
            elif message[0] == "run":
                server.run(in_fd, out_fd)
    except BrokenPipeError:
        pass
    finally:
        server.stop_all()


if __name__ == "__main__":
    main()
