"""The processes below the server that fork workers: the zygote, and one template per lane.

- The zygote is forked from the server at start, before any check exists. It imports and warms
  up what workers need, then only forks lane templates (at start, and when a lane gets a new
  scratch dir). It never receives check data.
- A lane template is forked from the zygote. It applies the layers every worker of its lane
  shares once (stdio, the lane's uid, rlimits, Landlock on the lane's scratch dir, the lane's
  seccomp filter: `sandbox.worker.harden_lane`), then forks that lane's workers on request. It
  runs no untrusted code and never holds check data: a worker's task memfd and result pipe pass
  through it as descriptors, unread. So every worker is a fresh process whose memory is the
  zygote's clean image and its own items, nothing of other checks.
- A worker adds its own layers (`sandbox.worker._harden_worker`: CPU limit, one process, its
  own Landlock signal scope and seccomp filter, dying with its template) before its first item.

What the template saves: each worker would otherwise pay for the lane's hardening (the long
seccomp filter's JIT, Landlock's ruleset, setuid, ctypes calls: about half a millisecond and a
hundred copy-on-write pages). What it does not change: workers run as the template's uid and
inside its Landlock domain; what keeps a worker from reaching its template is seccomp (no kill,
ptrace or process_vm_*), the worker's own Landlock scope (no signals outside itself), the
template being non-dumpable, and Landlock hiding /proc files.
"""

from __future__ import annotations

import array
import gc
import os
import pickle
import resource
import signal
import socket
import time

_KILLED = signal.SIGKILL  # the wait status of a worker whose template vanished (PDEATHSIG)


class Template:
    """The server's handle on a lane template: spawn requests (with the worker's task memfd
    and result pipe) one way, (pid, pidfd) and exit statuses back, on a SOCK_SEQPACKET pair."""

    def __init__(self, sock: socket.socket, pid: int, lane_dir: str):
        self.sock, self.fd, self.pid, self.lane_dir = sock, sock.fileno(), pid, lane_dir
        self.alive = True
        self.exits: dict[int, int] = {}
        self.pending_spawn: list = []

    def spawn(self, stage: str, task_fd: int, nonce: str, cpu_seconds: int):
        """Fork a worker; (read end of its result pipe, pid, pidfd or None)."""
        r, w = os.pipe()
        try:
            request = pickle.dumps(("spawn", stage, nonce, cpu_seconds))
            socket.send_fds(self.sock, [request], [task_fd, w])
        except OSError:
            os.close(r)
            self.alive = False
            raise BrokenPipeError("a sandbox lane template died") from None
        finally:
            os.close(task_fd)
            os.close(w)
        while not self.pending_spawn:
            if not self._receive():
                os.close(r)
                raise BrokenPipeError("a sandbox lane template died")
        pid, pidfd = self.pending_spawn.pop()
        return r, pid, pidfd

    def poll(self) -> None:
        """Take what the template sent, if anything (a wait() may have taken it already)."""
        try:
            self._receive(socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass

    def wait(self, pid: int) -> int:
        """The exit status of worker `pid` (already signalled or exiting)."""
        while pid not in self.exits:
            if not self._receive():  # its workers died with it (PDEATHSIG)
                return _KILLED
        return self.exits.pop(pid)

    def _receive(self, flags: int = 0) -> bool:
        """One message; False once the template is gone."""
        if not self.alive:
            return False
        try:
            data, fds = recv_with_fds(self.sock, 1, flags)
        except ConnectionResetError:  # it died with our request unread
            data, fds = b"", []
        if not data:
            self.alive = False
            return False
        message = pickle.loads(data)
        if message[0] == "spawned":
            self.pending_spawn.append((message[1], fds[0] if fds else None))
        elif message[0] == "exited":
            self.exits[message[1]] = message[2]
        return True

    def close(self) -> None:
        """The template exits when its socket closes (the zygote reaps it)."""
        self.alive = False
        self.sock.close()


class Zygote:
    """The server's handle on the zygote: template requests (with the template's end of its
    socket) one way, the template's pid back."""

    def __init__(self, settings: dict, layers, policy):
        server_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server's is for the server
                server_end.close()
                _zygote_main(zygote_end, settings, layers, policy)
            finally:
                os._exit(70)
        zygote_end.close()
        self.pid, self.sock, self.fd = pid, server_end, server_end.fileno()

    def template(self, lane: int, uid: int, lane_dir: str) -> Template:
        """A new template for `lane`, confined to `lane_dir` as `uid`."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            socket.send_fds(self.sock, [pickle.dumps(("template", lane, uid, lane_dir))],
                            [theirs.fileno()])
        finally:
            theirs.close()
        data = self.sock.recv(4096)
        if not data:
            ours.close()
            raise BrokenPipeError("the sandbox zygote died")
        return Template(ours, pickle.loads(data)[1], lane_dir)

    def poll(self) -> None:
        """The zygote sends nothing unasked: readable means it died."""
        try:
            if not self.sock.recv(4096, socket.MSG_DONTWAIT):
                raise BrokenPipeError("the sandbox zygote died")
        except BlockingIOError:
            pass

    def stop(self, grace: float = 2.0) -> None:
        """Close the zygote's socket: it then stops and reaps its templates, and exits. After
        `grace` seconds it is killed (its templates then die of PDEATHSIG, unreaped)."""
        self.sock.close()
        deadline = time.monotonic() + grace
        try:
            while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    return
                time.sleep(0.005)
        except (ProcessLookupError, ChildProcessError):
            pass


def _zygote_main(sock: socket.socket, settings: dict, layers, policy) -> None:
    """Fork lane templates on request and reap them; never holds check data."""
    from sandbox import layers as kernel
    from sandbox import worker

    kernel.die_with_parent(settings["server_pid"])
    signal.signal(signal.SIGCHLD, lambda *_: _reap_exited())  # templates that exited
    worker.warm_up(policy)
    gc.collect()
    gc.freeze()  # workers' collectors then never touch (and copy) the zygote's pages
    lane_settings = {
        "memory_bytes": _address_space_now() + settings["memory_mb"] * (1 << 20),
        "scratch_bytes": settings["scratch_mb"] * (1 << 20),
        "max_answer_bytes": settings["max_answer_bytes"],
        "zygote_pid": os.getpid(),
    }
    while True:
        data, fds = recv_with_fds(sock, 1)
        if not data:  # the server is stopping (or gone): so are the templates, reaped here
            _stop_templates()  # (an orphan would wait for an init that may never reap it)
            os._exit(0)
        _, lane, uid, lane_dir = pickle.loads(data)
        pid = os.fork()  # a real os.fork: templates are few and long-lived
        if pid == 0:
            try:
                sock.close()
                _template_main(fds[0], lane_settings, layers, policy, lane_dir, uid)
            finally:
                os._exit(70)
        os.close(fds[0])
        sock.send(pickle.dumps(("template", pid)))


def _reap_exited() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _stop_templates() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            children = [int(pid) for pid in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: they die of PDEATHSIG when the zygote exits
        return
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _template_main(sock_fd: int, settings: dict, layers, policy, lane_dir: str,
                   uid: int) -> None:
    """Apply the lane's layers, then fork workers on request and report their exits. If a
    layer fails to apply, every worker reports that instead of running anything."""
    import random

    from sandbox import layers as kernel
    from sandbox import worker

    kernel.die_with_parent(settings["zygote_pid"])
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote's reaping handler: not here
    os.closerange(3, sock_fd)  # nothing of the zygote's (its socket) stays open here
    os.closerange(sock_fd + 1, 1 << 20)
    sock = socket.socket(fileno=sock_fd)
    fork = _plain_fork()
    setup_error = None
    try:
        worker.harden_lane(settings, layers, lane_dir, uid)
    except BaseException as e:
        setup_error = f"lane setup: {type(e).__name__}: {e}"[:200]
    worker_settings = {"max_answer_bytes": settings["max_answer_bytes"],
                       "parent_pid": os.getpid()}
    gc.freeze()
    # One worker at a time per lane (the server asks for the next once this one's exit is
    # reported), so the loop is plain blocking calls: no select, no SIGCHLD handler, and as
    # little Python as possible between forks (every page it writes is copied while a worker
    # still shares it).
    while True:
        data, fds = recv_with_fds(sock, 2)
        if not data:
            os._exit(0)  # the server went away
        _, stage, nonce, cpu_seconds = pickle.loads(data)
        task_fd, result_w = fds
        # Each worker's own random state, drawn here so that the worker's page holding it is
        # only copied if its checks use `random` (see _plain_fork).
        random.seed()
        pid = fork()
        if pid == 0:
            try:
                worker.main(stage, task_fd, result_w, nonce,
                            dict(worker_settings, cpu_seconds=cpu_seconds), layers, policy,
                            setup_error)
            finally:
                os._exit(70)
        os.close(task_fd)
        os.close(result_w)
        try:  # a pidfd makes the server's SIGKILL immune to pid reuse (Linux >= 5.3)
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        socket.send_fds(sock, [pickle.dumps(("spawned", pid))], [] if pidfd is None else [pidfd])
        if pidfd is not None:
            os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        sock.send(pickle.dumps(("exited", pid, status)))


def _plain_fork():
    """libc's fork(), without what `os.fork` adds around it: CPython's after-fork work (runtime
    locks, the `threading` and `random` at-fork hooks) runs Python code that writes to pages of
    the template's heap, each a copy-on-write fault in every worker. None of it is needed: a
    template has one thread (it was made by `os.fork`, and starts none), so no lock can be held
    by a thread that is gone; the one hook that matters, a fresh `random` state per worker, the
    template applies itself before each fork. The GIL stays held across the call (PyDLL), so
    no other Python code runs in between."""
    import ctypes

    libc_fork = ctypes.PyDLL(None, use_errno=True).fork
    libc_fork.restype = ctypes.c_int
    libc_fork.argtypes = ()

    def fork() -> int:
        pid = libc_fork()
        if pid < 0:
            raise OSError(ctypes.get_errno(), "fork failed")
        return pid
    return fork


def recv_with_fds(sock: socket.socket, max_fds: int, flags: int = 0) -> tuple[bytes, list]:
    """One message and the descriptors passed with it. (`socket.recv_fds` drops `flags` before
    Python 3.12, so MSG_DONTWAIT would block.)"""
    fds = array.array("i")
    data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_LEN(max_fds * fds.itemsize),
                                                  flags)
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def _address_space_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()
