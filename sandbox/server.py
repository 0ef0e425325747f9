"""The verification server: schedules checks onto workers forked from a clean zygote.

Three kinds of process, each holding only what it must:
- the host (the process holding torch and a model, see `sandbox.verifier`) never forks checks:
  fork cost grows with its memory. It starts this server once (a fresh `python -c`, with a
  minimal environment, see ENTRY) and streams checks to it (see `sandbox.wire`);
- the server holds every pending check's sources and answers, schedules them, measures each
  item's wall time and SIGKILLs a worker whose item runs past the timeout. No untrusted code
  ever runs in a process forked from it;
- the zygote is forked from the server at start, before any check exists, and never receives
  check data: it only forks one template per lane, which applies the lane's layers once and
  then forks that lane's workers (see `sandbox.zygote`). A worker gets its items through a
  memfd the server wrote (read one item at a time, after hardening) and writes results to its
  own pipe. So a worker's memory holds the zygote's clean image plus its own items, nothing of
  other checks, and its memory limit is the zygote's size plus its own allowance.

Checks that the sharing gate (`sandbox.sharing`) accepts run in batches, one stage per worker,
for speed. A `pass` from any process shared with other checks is never reported as such: the
pair is run again end to end alone (g in a fresh worker, then f in another), and that run's
verdict is final. Which checks share is decided on the host (the gate reads the source there),
never asked for by a worker, so every check ends with exactly one verdict after a bounded number
of runs.
"""

from __future__ import annotations

import collections
import json
import math
import os
import pickle
import resource
import secrets
import select
import signal
import sys
import time
from dataclasses import dataclass, field

from sandbox import wire
from sandbox.config import REASONS
from sandbox.scratch import clear_dir, reset_dir
from sandbox.wire import TASK_ENTRY, TASK_HEADER
from sandbox.zygote import Template, Zygote

_STACK_BYTES = 512 << 20  # deep recursion in C (lru_cache, repr) needs more than 8 MiB
_SETUP_SECONDS = 10.0
_PARENT_POLL = 1.0  # seconds between checks that the host is still alive
_PR_SET_PDEATHSIG = 1
_REQUEUES_BEFORE_ALONE = 2  # a check whose shared workers died this often then runs alone
_MAX_RUNS = 6  # a check handed to this many workers without a verdict gets one of its own
# (a check needs at most 3 without failures: g shared, g alone when the gate asks, f; a
# confirmation starts the count again)
_FINAL = ("pass", "fail", "error", "memory")
ENTRY = "from sandbox.server import main; main()"  # not -m: the package imports this module


@dataclass
class Check:
    """One check as the server tracks it: the marshalled code of the solution (`g_code` None
    means: only run f on `answer`) and of `f`, and whether each stage must run alone in its own
    process. The host parses, lints and compiles both (sandbox.verifier), so a worker only
    unmarshals: parsing in a freshly forked worker costs page faults on top of the parse."""

    idx: int
    g_code: bytes | None
    f_code: bytes
    answer_type: str
    answer: str | None
    g_alone: bool
    f_alone: bool
    seconds: float = 0.0
    shared: bool = False
    """Some stage of it ran in a process that also ran other checks' code."""
    confirming: bool = False
    """It passed in a shared process and is being run again end to end alone."""
    runs: int = 0
    """Workers it was handed to (a bound on requeues)."""
    requeues: int = 0
    """Workers it was waiting in that died because of another check."""


@dataclass
class Running:
    pid: int
    pidfd: int | None
    fd: int
    stage: str
    checks: list
    alone: bool
    lane: int
    nonce: str
    deadline: float
    k: int = -1  # index of the item running now; -1 until the worker says it is ready
    item_started: float = 0.0
    item_cpu: float = 0.0  # the worker's CPU seconds when its item started (CPU-time runs)
    buffer: bytearray = field(default_factory=bytearray)


class Server:
    def __init__(self, settings: dict, layers, zygote: Zygote, host_pid: int):
        self.settings = settings
        self.layers = layers
        self.zygote = zygote
        self.host_pid = host_pid
        self.n_lanes = settings["workers"]
        self.timeout = settings["timeout"]
        self.batch_size = settings["batch_size"]
        self.answer_budget = settings.get("held_answer_bytes", 256 << 20)
        self.held = 0  # bytes of answers held for checks without a verdict (see _hold)
        self.templates: list[Template] = []
        for lane in range(self.n_lanes):
            path = self._make_lane_dir(lane)
            self.templates.append(zygote.template(lane, self._uid(lane), path))

    def _uid(self, lane: int) -> int:
        return self.settings["uid_base"] + lane

    def _make_lane_dir(self, lane: int, generation: int = 0) -> str:
        name = f"lane{lane}" + (f".{generation}" if generation else "")
        path = os.path.join(self.layers.scratch_root, name)
        os.makedirs(path, exist_ok=True)
        if self.layers.active("setuid"):
            os.chown(path, self._uid(lane), self._uid(lane))
        os.chmod(path, 0o700)
        return path

    def _clean_lane_dir(self, lane: int) -> None:
        """Empty the lane's scratch dir and reset its own metadata (mode, times, xattrs: a
        channel to the next check otherwise); if that fails (nothing a check leaves may stop
        the server), give the lane a new one, and a new template confined to it. The old dir
        then goes with the scratch tmpfs."""
        template = self.templates[lane]
        if (not clear_dir(template.lane_dir) or not reset_dir(template.lane_dir, 0o700)
                or not template.alive):
            generation = int(time.monotonic() * 1e6)
            template.close()
            self.templates[lane] = self.zygote.template(
                lane, self._uid(lane), self._make_lane_dir(lane, generation))

    # -- running a list of checks -------------------------------------------------------------

    def run(self, in_fd: int, out_fd: int, timeout: float | None = None,
            wall: float | None = None) -> None:
        """Take ("more", checks) messages until ("end",), running checks as they arrive (the
        host parses the next chunk meanwhile); send ("results", [...]) as checks finish, then
        ("done",). `timeout`: this run's limit per stage, instead of the configured one; with
        `wall`, it counts the worker's CPU seconds, and `wall` its wall-clock seconds."""
        self.in_fd, self.out_fd, self.more = in_fd, out_fd, True
        self.timeout = timeout or self.settings["timeout"]
        self.wall = wall
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
        if message is None or not self.more:
            raise BrokenPipeError("the verifier went away")
        if message[0] == "end":
            self.more = False
            return
        for check in message[1]:
            self.held += len(check.answer or "")  # check_answers: the host's answer
            self._enqueue(check)

    def _hold(self, check: Check, answer: str | None) -> None:
        """Set the answer the check's f stage will judge, counting the bytes held. Above the
        budget (VerifierConfig.held_answer_bytes) the server takes no more checks from the
        host and starts no g stage; a running g worker is stopped after the answer that
        crossed it (see _handle_line): answers then wait only for f stages, which free them."""
        self.held += len(answer or "") - len(check.answer or "")
        check.answer = answer

    def _enqueue(self, check: Check, front: bool = False) -> None:
        stage = "g" if check.g_code is not None and check.answer is None else "f"
        alone = check.g_alone if stage == "g" else check.f_alone
        if check.runs >= _MAX_RUNS:
            return self._finish(check, "error", f"no verdict after {check.runs} runs "
                                                "(its workers kept failing)", "sandbox")
        if check.requeues >= _REQUEUES_BEFORE_ALONE:  # neighbours keep killing its workers
            alone = check.g_alone = check.f_alone = True
        queue = self.queues[stage, alone]
        queue.appendleft(check) if front else queue.append(check)

    def _start_next(self) -> bool:
        """Start one worker if it is worth it: lone checks at once; full batches at once;
        partial batches only when no more checks are coming or nothing is running (a fresh
        process per handful of checks is what makes per-check isolation slow)."""
        q = self.queues
        if self.held >= self.answer_budget:  # only what frees answers: f stages, at once
            for alone in (True, False):
                queue = q["f", alone]
                if queue:
                    size = 1 if alone else min(len(queue), self.batch_size)
                    self._spawn("f", [queue.popleft() for _ in range(size)], alone=alone)
                    return True
            return False
        for stage in "gf":  # the slow lone checks first, so they overlap the batches
            if q[stage, True]:
                self._spawn(stage, [q[stage, True].popleft()], alone=True)
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

    def _spawn(self, stage: str, checks: list, alone: bool = False) -> None:
        alone = alone or len(checks) == 1  # a process of its own, whatever the queue
        for c in checks:
            c.runs += 1
            c.shared = c.shared or not alone
        if stage == "g":
            items = [(c.g_code, c.answer_type, c.f_code) for c in checks]
        else:
            items = [(c.f_code, c.answer_type, c.answer) for c in checks]
        lane = self.free_lanes.pop()
        nonce = secrets.token_hex(12)
        cpu_seconds = int(self.timeout * len(items) + _SETUP_SECONDS) + 1
        try:
            r, pid, pidfd = self.templates[lane].spawn(stage, _task_file(items), nonce,
                                                       cpu_seconds)
        except BrokenPipeError:  # the lane's template died (none should): a new one, once
            self._clean_lane_dir(lane)
            r, pid, pidfd = self.templates[lane].spawn(stage, _task_file(items), nonce,
                                                       cpu_seconds)
        os.set_blocking(r, False)
        self.running[r] = Running(pid=pid, pidfd=pidfd, fd=r, stage=stage, checks=checks,
                                  alone=alone, lane=lane, nonce=nonce,
                                  deadline=time.monotonic() + _SETUP_SECONDS)

    def _wait(self) -> None:
        now = time.monotonic()
        timeout = _PARENT_POLL
        if self.running:
            timeout = min(timeout, max(0.0, min(r.deadline for r in self.running.values()) - now))
        # The host's pipe is watched even after "end": EOF there means the host died.
        templates = {t.fd: t for t in self.templates if t.alive}
        # Over the answer budget, no more checks are taken from the host (its sender thread
        # waits on the full pipe); the getppid check below still sees it die.
        taking = self.held < self.answer_budget or not (self.running or any(self.queues.values()))
        fds = list(self.running) + [self.in_fd] * taking + [self.zygote.fd, *templates]
        readable, _, _ = select.select(fds, [], [], timeout)
        for fd in readable:
            if fd == self.in_fd:
                self._receive()
            elif fd == self.zygote.fd:
                self.zygote.poll()
            elif fd in templates:
                templates[fd].poll()
            elif fd in self.running:
                self._read(self.running[fd])
        for lane in self.free_lanes:  # a template that died (none should) is replaced
            if not self.templates[lane].alive:
                self._clean_lane_dir(lane)
        if os.getppid() != self.host_pid:
            raise BrokenPipeError("the verifier's process died")
        now = time.monotonic()
        for run in list(self.running.values()):
            if run.fd in self.running and now >= run.deadline:
                self._read(run)  # what it wrote while the server was busy counts
            if run.fd in self.running and now >= run.deadline:
                self._expire(run)

    def _read(self, run: Running) -> None:
        """Take what the worker wrote. Lines are handled as they complete, and only new bytes
        are searched for the newline: reading a line costs time linear in its size however
        slowly it arrives (a pipe holds 64 KiB, so a big answer comes in many wake-ups)."""
        while run.fd in self.running:
            try:
                chunk = os.read(run.fd, 1 << 20)
            except BlockingIOError:
                return
            if not chunk:
                return self._exited(run)
            start = len(run.buffer)
            run.buffer += chunk
            del chunk
            self._take_lines(run, start)

    def _take_lines(self, run: Running, start: int) -> None:
        """Handle the complete lines in the buffer; no newline is before `start`."""
        while run.fd in self.running:
            end = run.buffer.find(b"\n", start)
            if end < 0:
                break
            # The buffer becomes the line, the bytes after it a new buffer: a big line is
            # never copied (and those bytes all came in the last read: at most 1 MiB).
            line, run.buffer, start = run.buffer, run.buffer[end + 1:], 0
            del line[end:]
            self._handle_line(run, line)
        if run.fd in self.running and len(run.buffer) > self.settings["max_answer_bytes"] * 2 \
                + 65536:  # an answer's JSON, escaped once more: at most twice its size
            self._stop(run, "error", "result channel tampered with (oversized line)", "tampered")

    def _handle_line(self, run: Running, line: bytearray) -> None:
        message = _parse_line(line, run.nonce)
        if message is None:
            return self._stop(run, "error", "result channel tampered with", "tampered")
        k, v = message["k"], message["v"]
        now = time.monotonic()
        if k == -1 and run.k == -1:
            if v == "ready":
                run.k, run.item_started, run.deadline = 0, now, now + self.timeout
                run.item_cpu = _cpu_seconds(run.pid) if self.wall else 0.0
                return
            if v == "setup":
                return self._stop(run, "error", "sandbox setup failed: " + message["d"],
                                  "sandbox", whole_batch=True)
        if k != run.k or not 0 <= k < len(run.checks):
            return self._stop(run, "error", "result channel tampered with (out of order)",
                              "tampered")
        check = run.checks[k]
        check.seconds += now - run.item_started
        if run.stage == "g" and v == "answer":
            if len(message["a"]) > self.settings["max_answer_bytes"]:
                self._finish(check, "fail", "g's answer is over the size cap", "too_large")
            else:
                self._hold(check, message["a"])
                self._enqueue(check)
        elif v == "pass" and run.stage == "f":
            self._passed(check)
        elif v in _FINAL and v != "pass":
            self._finish(check, v, message["d"], message["c"], message.get("x"),
                         message.get("r"), ran_f=run.stage == "f")
        else:
            return self._stop(run, "error", "result channel tampered with (bad verdict)",
                              "tampered")
        run.k, run.item_started, run.deadline = k + 1, now, now + self.timeout
        run.item_cpu = _cpu_seconds(run.pid) if self.wall else 0.0
        if v == "memory":  # the worker stops after a MemoryError: the rest go to a fresh one
            self._reap(run)
            for c in reversed(run.checks[run.k:]):
                c.requeues += 1
                self._enqueue(c, front=True)
            return
        if run.stage == "g" and self.held >= self.answer_budget and run.k < len(run.checks):
            # Answers are over the budget: this worker stops here (its next item has only
            # just started), and the rest wait in front of their queue, this run not counted
            # against them (it judged nothing of theirs).
            self._reap(run)
            for c in reversed(run.checks[run.k:]):
                c.runs -= 1
                self._enqueue(c, front=True)
            return
        if run.k == len(run.checks):
            run.deadline = now + _SETUP_SECONDS  # only exiting is left

    def _passed(self, check: Check) -> None:
        """A pass counts only from a run in which no other check's code shared a process."""
        if not check.shared or check.confirming:
            return self._finish(check, "pass", "", "passed", ran_f=True)
        check.confirming, check.runs = True, 0
        check.g_alone = check.f_alone = True
        if check.g_code is not None:
            self._hold(check, None)  # g runs again, alone, and f judges what it returns
        self._enqueue(check)

    def _finish(self, check: Check, verdict: str, detail: str, reason: str,
                exception: str | None = None, returned: str | None = None,
                ran_f: bool = False) -> None:
        # g's answer, once the f worker has accepted its type and run f on it
        answer = check.answer if check.g_code is not None else None
        ran_f = ran_f and reason in ("passed", "wrong_answer", "f_raised")
        if answer is not None and (not ran_f or
                                   len(answer) > self.settings["report_answer_bytes"]):
            answer = None
        if check.confirming and verdict != "pass":
            detail = (detail + " (in a run alone, after passing in a shared worker)")[:300]
        self.outbox.append(("result", check.idx, verdict, detail, round(check.seconds, 6),
                            answer, reason, exception, returned))
        self._hold(check, None)  # done: its batch may run on, the answer is not needed

    def _expire(self, run: Running) -> None:
        if run.k == -1:
            return self._stop(run, "error", "sandbox setup timed out", "sandbox",
                              whole_batch=True)
        if run.k >= len(run.checks):
            return self._reap(run)
        now = time.monotonic()
        what = "g()" if run.stage == "g" else "f(answer)"
        limit = f"{self.timeout:g} s limit"
        if self.wall:  # the deadline was the earliest the CPU time could run out: has it?
            used = _cpu_seconds(run.pid) - run.item_cpu
            left_cpu = self.timeout - used if math.isfinite(used) else -math.inf
            left_wall = run.item_started + self.wall - now
            if min(left_cpu, left_wall) > 0:
                run.deadline = now + max(0.01, min(left_cpu, left_wall))
                return
            limit = (f"{self.timeout:g} s CPU limit" if left_cpu <= 0 else
                     f"{self.wall:g} s wall-clock limit")
        check = run.checks[run.k]
        check.seconds += now - run.item_started
        self._stop(run, "timeout", f"{what} ran over the {limit}", "timeout")

    def _exited(self, run: Running) -> None:
        status = self._reap(run)
        if run.k == -1:
            return self._requeue_or_fail(run, "error",
                                         f"worker died during setup ({_status_text(status)})",
                                         "sandbox", whole_batch=True)
        if run.k < len(run.checks):
            check = run.checks[run.k]
            check.seconds += time.monotonic() - run.item_started
            what = "g()" if run.stage == "g" else "f(answer)"
            verdict = "timeout" if _signal_of(status) == signal.SIGXCPU else "error"
            # Untrusted code ended its own process (os._exit, a signal, a crash in C): that is
            # the stage raising, in effect; SIGXCPU is the CPU limit.
            reason = "timeout" if verdict == "timeout" else f"{run.stage}_raised"
            self._requeue_or_fail(run, verdict,
                                  f"process ended during {what} ({_status_text(status)})", reason)

    def _stop(self, run: Running, verdict: str, detail: str, reason: str,
              whole_batch: bool = False) -> None:
        self._reap(run)
        self._requeue_or_fail(run, verdict, detail, reason, whole_batch)

    def _requeue_or_fail(self, run: Running, verdict: str, detail: str, reason: str,
                         whole_batch: bool = False) -> None:
        """The current item gets the verdict; the untouched rest go back to the queue."""
        start = max(run.k, 0)
        if whole_batch:
            for check in run.checks:
                self._finish(check, verdict, detail, reason)
            return
        if start < len(run.checks):
            self._finish(run.checks[start], verdict, detail, reason)
        for check in reversed(run.checks[start + 1:]):
            check.requeues += 1
            self._enqueue(check, front=True)

    def _reap(self, run: Running) -> int:
        """SIGKILL the worker (a no-op if it already exited), wait for it, free its lane."""
        template = self.templates[run.lane]
        try:
            if run.pidfd is not None:
                signal.pidfd_send_signal(run.pidfd, signal.SIGKILL)
            elif run.pid not in template.exits and template.alive:  # not reaped yet: the pid
                os.kill(run.pid, signal.SIGKILL)  # is still its
        except ProcessLookupError:
            pass
        status = template.wait(run.pid)
        if run.pidfd is not None:
            os.close(run.pidfd)
        os.close(run.fd)
        del self.running[run.fd]
        self._clean_lane_dir(run.lane)
        self.free_lanes.append(run.lane)
        return status

    def stop_all(self) -> None:
        """Kill every running worker; never raises (the scratch dir is removed after this)."""
        for run in list(getattr(self, "running", {}).values()):
            try:
                self._reap(run)
            except (OSError, EOFError, pickle.UnpicklingError):  # the template is gone too:
                pass  # its workers die with it (PDEATHSIG)
        for template in self.templates:
            template.close()


def _task_file(items: list) -> int:
    """A memfd holding the items, each pickled on its own behind an offset table, so that the
    worker can load one item at a time (a check's neighbours are never in its memory at once).
    Each item is pickled and written before the next: one copy of one answer at a time here."""
    fd = os.memfd_create("selfplay-task", os.MFD_CLOEXEC)
    table = bytearray(TASK_HEADER.pack(len(items)))
    offset = TASK_HEADER.size + TASK_ENTRY.size * len(items)
    os.lseek(fd, offset, os.SEEK_SET)
    for item in items:
        blob = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        table += TASK_ENTRY.pack(offset, len(blob))
        offset += len(blob)
        _write_all(fd, blob)
        del blob
    os.lseek(fd, 0, os.SEEK_SET)
    _write_all(fd, table)
    return fd


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


_KEYS = frozenset("kvadcxr")  # what sandbox.worker sends: index, verdict, answer, detail...
_TEXT_CHARS = 300


def _parse_line(line: bytearray, nonce: str) -> dict | None:
    """A worker's result line, validated field by field; None if anything is off. Consumes
    `line` (emptied once decoded): an answer is then held as its text and its string, at most
    twice the line's size, and decoding is linear in it whatever it holds (see
    `wire.decode_flat`)."""
    prefix = nonce.encode()
    if not line.startswith(prefix) or not line.isascii():  # json.dumps writes ASCII only
        return None
    with memoryview(line) as view, view[len(prefix):] as body:
        text = str(body, "ascii")
    line.clear()
    message = wire.decode_flat(text)
    del text
    if message is None or not message.keys() <= _KEYS or type(message.get("k")) is not int:
        return None
    v = message.get("v")
    if v == "answer":
        # The answer is JSON text, which json.dumps writes in ASCII: anything else (a lone
        # surrogate from a \u escape) was not written by a worker, and could not be stored.
        a = message.get("a")
        return message if type(a) is str and a.isascii() else None
    if v == "ready":
        return message
    if v == "setup" and type(message.get("d")) is str:
        message["d"] = _text(message["d"])
        return message
    if v in _FINAL and type(message.get("d")) is str and message.get("c") in REASONS and all(
            type(message.get(key, "")) is str for key in ("x", "r")):
        for key in ("d", "x", "r"):
            if key in message:
                message[key] = _text(message[key])
        return message
    return None


def _cpu_seconds(pid: int) -> float:
    """CPU seconds process `pid` has used, user and system (inf when unreadable: its time is
    up then, as if only wall-clock time counted)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.inf


def _text(value: str) -> str:
    """At most _TEXT_CHARS characters of valid text: a lone surrogate (which no UTF-8 writer,
    SQLite's included, accepts) becomes its backslash escape."""
    value = value[:_TEXT_CHARS]
    if not value.isascii():
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


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


HASH_SEED = "0"
"""PYTHONHASHSEED of the server, and so of its zygote and every worker (forked: same seed):
str hashes and set order, which checkers may depend on, are then the same in every run."""


def _ensure_interpreter() -> None:
    """The main thread's stack limit and the hash seed are fixed at exec: set them, then exec
    ourselves again (the verifier starts us with both right, so this normally does nothing)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = _STACK_BYTES if hard == resource.RLIM_INFINITY else min(_STACK_BYTES, hard)
    stack = soft != resource.RLIM_INFINITY and soft < want
    if stack:
        resource.setrlimit(resource.RLIMIT_STACK, (want, hard))
    if stack or os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        os.environ["PYTHONHASHSEED"] = HASH_SEED
        os.execv(sys.executable, [sys.executable, "-s", "-P", "-c", ENTRY, *sys.argv[1:]])


class _HostDied(BrokenPipeError):
    pass


def _die_with_host(host_pid: int) -> None:
    """SIGTERM when the host dies, even while this process is busy (it polls for that only
    between requests and wake-ups); the handler raises, so the cleanup in main() still runs.
    The kernel sends it when the *thread* that started us exits: a host thread that started
    the verifier and ended is no reason to stop, so the handler checks the process. The
    zygote, templates and workers each die with their own parent (PR_SET_PDEATHSIG too)."""
    def on_signal(signum, frame):
        if os.getppid() != host_pid:
            raise _HostDied("the verifier's process died")

    signal.signal(signal.SIGTERM, on_signal)
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_PDEATHSIG failed")
    if os.getppid() != host_pid:  # it died before the signal was set
        raise _HostDied("the verifier's process died")


def free_uid_base(base: int, count: int) -> int:
    """The first block of `count` ids from `base` up (in steps of `count`) that no existing
    user or group has, so that workers never act as, or own files of, a real account."""
    import grp
    import pwd

    def taken(i: int) -> bool:
        for lookup in (pwd.getpwuid, grp.getgrgid):
            try:
                lookup(i)
                return True
            except KeyError:
                pass
        return False

    while any(taken(i) for i in range(base, base + count)):
        base += count
    return base


def _wait_for_request(in_fd: int, host_pid: int):
    """The host's next message; None when it closed the pipe or died."""
    while True:
        readable, _, _ = select.select([in_fd], [], [], _PARENT_POLL)
        if readable:
            return wire.recv(in_fd)
        if os.getppid() != host_pid:
            return None


def main() -> None:
    settings = json.loads(sys.argv[1])
    _ensure_interpreter()
    # Our protocol pipes move to private fds; stray prints cannot corrupt them.
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    host_pid = settings["host_pid"]
    layers = zygote = server = None
    try:  # from here on, every way out removes the scratch dir (the host may be gone)
        _die_with_host(host_pid)
        sys.set_int_max_str_digits(0)

        from sandbox import layers as kernel
        import sandbox.worker  # noqa: F401  (imported once here, before the zygote forks)
        from sandbox.policy import ModulePolicy

        if os.geteuid() == 0:
            settings["uid_base"] = free_uid_base(settings["uid_base"], settings["workers"])
        policy = ModulePolicy()  # imports the allowlisted modules before any lockdown
        layers = kernel.setup_server(settings["scratch_root"], settings["scratch_mb"],
                                     settings["workers"], tuple(settings["disable_layers"]))
        settings["server_pid"] = os.getpid()
        zygote = Zygote(settings, layers, policy)
        server = Server(settings, layers, zygote, host_pid)
        while True:
            message = _wait_for_request(in_fd, host_pid)
            if message is None:
                break
            if message[0] == "layers":
                wire.send(out_fd, ("layers", dict(layers.status),
                                   {"uid_base": settings["uid_base"],
                                    "zygote_pid": zygote.pid}))
            elif message[0] == "run":
                server.run(in_fd, out_fd, *message[1:])
    except (BrokenPipeError, ConnectionError):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut this short
        if server is not None:
            server.stop_all()
        if zygote is not None:
            zygote.stop()
        _remove_scratch(settings["scratch_root"], layers)


def _remove_scratch(root: str, layers) -> None:
    """Nothing of the verifier's scratch outlives it, even when the host was killed (or died
    while this server was starting: `layers` is None then, and a tmpfs may be mounted)."""
    if layers is None or layers.status.get("scratch_tmpfs") is True:
        from sandbox import layers as kernel

        kernel.unmount_scratch(root)  # fails harmlessly where nothing is mounted
    clear_dir(root)
    try:
        os.rmdir(root)
    except OSError:
        pass


if __name__ == "__main__":
    main()
