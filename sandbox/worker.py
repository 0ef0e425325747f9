"""What runs inside a worker process: harden it, then run one stage of a batch of checks.

Hardening comes in two parts (see `sandbox.layers` for what each layer does): `harden_lane`,
applied once by the lane's template process that forks the workers (`sandbox.zygote`), and
`_harden_worker`, each worker's own, right after fork and before its first item.

A check is two stages in two different processes:
- stage "g": run `g()` and report its answer as JSON text, only if it is a value of the
  declared type (exact builtin types, finite floats, size-capped);
- stage "f": in a fresh process that no `g` ever ran in, decode that JSON, check the type
  again, and run `f(answer)`; the check passes only if it returns the object `True`.

So nothing `g` does to its own process (patching builtins, `f`, the wrapper; lying objects;
exit codes; printed verdicts) can reach the process that judges it. Results go to the server
on a pipe, one line per item, each prefixed with a per-batch nonce: stdout and stderr are
/dev/null, and a line without the nonce marks the batch as tampered with.

What the pipe can and cannot promise: code that escapes the Python policy (a subclass walk to
`os`) shares its process with our wrapper, so it could write to fd 3 and, by walking frames
to the nonce, forge a line, for its own item or for the items after it in a shared batch. For
its own item, a line from a g worker is only a claimed answer that a fresh f judges, and a line
from an f worker is the puzzle's own word on its answer (a checker that accepts; the loop's
trivial-answer filter is for those). For other items, the server re-runs every pass from a
shared worker end to end alone, so a forged line can at worst turn a neighbour's pass into a
fail. Which checks may share a worker is decided on the host, from the source (sandbox.sharing),
so no line from a worker can ask for it.
"""

from __future__ import annotations

import fcntl
import functools
import json
import marshal
import os
import pickle
import random
import sys
import types

from puzzles.errors import as_text
from puzzles.types import coerce, conforms, parse_type
from sandbox.policy import compile_check
from sandbox.wire import TASK_ENTRY, TASK_HEADER

_RESULT_FD = 3
_TASK_FD = 4
_DETAIL_CHARS = 300
_RECURSION_LIMIT = 20_000
_MAX_FD = 1 << 20


def main(stage: str, task_fd: int, pipe_w: int, nonce: str, settings: dict, layers, policy,
         setup_error: str | None = None) -> None:
    """Entry point right after a lane template forks us; never returns. `setup_error`: why the
    template could not apply the lane's layers (then no item runs: fail closed)."""
    try:
        _own_fds(pipe_w, task_fd)
        try:
            if setup_error is not None:
                raise OSError(setup_error)
            _harden_worker(settings, layers)
        except BaseException as e:  # fail closed: no untrusted code without promised layers
            _send(nonce, {"k": -1, "v": "setup", "d": _describe_exception(e)})
            os._exit(71)
        _send(nonce, {"k": -1, "v": "ready"})
        run = _run_g if stage == "g" else _run_f
        for k in range(_task_count()):
            _reset_interpreter_state(policy)
            try:
                result = run(_task_item(k), policy, settings)
            except MemoryError:
                result = None  # report outside the handler: the traceback pins the big objects
            except BaseException as e:  # untrusted code is wrapped in run(); this is our bug
                result = {"v": "error", "c": "sandbox",
                          "d": "sandbox internal error: " + _describe_exception(e)}
            if result is None:
                result = {"v": "memory", "c": "memory", "d": "MemoryError"}
            result["k"] = k
            _send(nonce, result)
            if result["v"] == "memory":
                break  # the heap may be fragmented or half-built: start a fresh process
    finally:
        os._exit(0)


def _task_count() -> int:
    return TASK_HEADER.unpack(os.pread(_TASK_FD, TASK_HEADER.size, 0))[0]


def _task_item(k: int):
    """Item k of the task memfd, read only when its turn comes: the other checks of the batch
    are never in this process's memory at the same time as this one's code runs."""
    entry = os.pread(_TASK_FD, TASK_ENTRY.size, TASK_HEADER.size + TASK_ENTRY.size * k)
    offset, size = TASK_ENTRY.unpack(entry)
    chunks = []
    while size:
        chunk = os.pread(_TASK_FD, min(size, 1 << 30), offset)
        if not chunk:
            raise EOFError("task file is truncated")
        chunks.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return pickle.loads(b"".join(chunks))


def _own_fds(pipe_w: int, task_fd: int) -> None:
    """The result pipe at fd 3, the task at fd 4, nothing else inherited (stdin, stdout and
    stderr are /dev/null already, see harden_lane)."""
    os.setsid()  # own session and process group: a group kill reaches only this worker
    # Move both above the target numbers first, so that dup2 never clobbers one with the other.
    pipe_w, task_fd = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (pipe_w, task_fd))
    os.dup2(pipe_w, _RESULT_FD, inheritable=False)
    os.dup2(task_fd, _TASK_FD, inheritable=False)
    os.closerange(_TASK_FD + 1, _MAX_FD)  # close_range(2) underneath: cheap however high


def harden_lane(settings: dict, layers, lane_dir: str, uid: int) -> None:
    """The layers every worker of a lane shares, applied once in the lane's template process
    (which runs no untrusted code and holds no check data) instead of in each worker: stdio
    to /dev/null, the scratch dir as cwd, the lane's rlimits, its uid, Landlock and the lane's
    seccomp filter. Raises if a layer reported active does not apply."""
    from sandbox import layers as kernel

    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    sys.stdout = open(1, "w", closefd=False)  # print() works, and goes nowhere
    sys.stderr = open(2, "w", closefd=False)
    os.chdir(lane_dir)
    kernel.set_lane_rlimits(memory_bytes=settings["memory_bytes"],
                            file_bytes=settings["scratch_bytes"])
    if layers.active("setuid"):
        kernel.drop_privileges(uid)
    kernel.die_with_parent(settings["zygote_pid"])  # after setuid, which clears it
    kernel.not_dumpable()
    if layers.active("landlock"):
        kernel.apply_landlock(layers.landlock_abi, lane_dir)
    if layers.active("seccomp"):
        kernel.load_seccomp(layers.seccomp_bpf)
    sys.setrecursionlimit(_RECURSION_LIMIT)
    sys.set_int_max_str_digits(0)


def _harden_worker(settings: dict, layers) -> None:
    """What each worker adds to its lane's layers: its CPU budget, one process, dying with its
    template (PDEATHSIG does not survive fork), a Landlock domain of its own (signal scope) and
    its own seccomp filter (no fork, no rlimit changes)."""
    from sandbox import layers as kernel

    kernel.set_worker_rlimits(settings["cpu_seconds"], one_process=layers.active("setuid"))
    kernel.die_with_parent(settings["parent_pid"])
    if layers.active("landlock"):
        kernel.apply_landlock_scope(layers.landlock_abi)
    if layers.active("seccomp"):
        kernel.load_seccomp(layers.seccomp_worker_bpf)


def _reset_interpreter_state(policy) -> None:
    """Undo what a previous check in this process could change through the modules it
    imported: random's state, decimal's context, the recursion limit, and the caches keyed by
    what a check passes in (struct's formats, re's patterns, _strptime's regexes, typing's
    aliases), where a key with a lying `__eq__` plants a wrong entry for every later lookup
    (see sandbox.sharing, which sends code defining `__eq__` to a process of its own)."""
    imported = policy.imported
    if not imported:
        return
    if "random" in imported:
        random.seed(os.urandom(16))
    if "decimal" in imported:
        import decimal
        decimal.setcontext(decimal.Context())
    if "sys" in imported:
        sys.setrecursionlimit(_RECURSION_LIMIT)
    for name in _CACHES.keys() & imported:
        _CACHES[name]()
    imported.clear()


def _clear_strptime_cache() -> None:
    import _strptime  # imported by ModulePolicy; `time.strptime` imports it through the policy
    with _strptime._cache_lock:
        _strptime._regex_cache.clear()


def _clear_typing_caches() -> None:
    import typing
    for clear in typing._cleanups:
        clear()


def _clear_struct_cache() -> None:
    import struct
    struct._clearcache()


def _clear_re_cache() -> None:
    import re
    re.purge()


_CACHES = {"struct": _clear_struct_cache, "re": _clear_re_cache,
           "_strptime": _clear_strptime_cache, "typing": _clear_typing_caches}
"""Module (as a check imports it) -> what clears the interpreter-wide cache it fills."""


def _send(nonce: str, payload: dict) -> None:
    # Every text field as valid text (the answer "a" is JSON, ASCII already): the server and
    # the host store what it says, and a lone surrogate would fail that write.
    payload = {key: as_text(value) if type(value) is str and key != "a" else value
               for key, value in payload.items()}
    data = (nonce + json.dumps(payload) + "\n").encode()
    while data:
        data = data[os.write(_RESULT_FD, data):]


def _call(code, name: str, args: tuple, policy, prelude=None):
    # The code runs as the body of a fresh module that `sys.modules` knows for the duration of
    # the call: `@dataclass` (and `typing`, `enum`...) look a class's module up there. Untrusted
    # code never sees the real `sys`, and the entry goes before the next check runs.
    module = types.ModuleType(_CHECK_MODULE)
    namespace = vars(module)
    namespace["__builtins__"] = policy.runtime_builtins()
    sys.modules[_CHECK_MODULE] = module
    try:
        if prelude is not None:
            exec(prelude, namespace)
        exec(code, namespace)
        fn = namespace.get(name)
        if not callable(fn):
            raise NameError(f"{name} is not defined")
        return fn(*args)
    finally:
        sys.modules.pop(_CHECK_MODULE, None)


def _run_g(item, policy, settings) -> dict:
    g_code, answer_type, f_code = item  # both compiled, and g linted, on the host
    # g may call f, as in the ICLR 2023 setup (a brute-force search is honest code): it gets
    # its own copy of the checker. Whatever g does to that copy, its answer is judged by a
    # fresh f in a process g never touched.
    code, checker = marshal.loads(g_code), marshal.loads(f_code)
    try:
        answer = _call(code, "g", (), policy, prelude=checker)
    except MemoryError:
        raise
    except BaseException as e:  # SystemExit, KeyboardInterrupt, anything g throws
        return {"v": "error", "c": "g_raised", "x": _exception_name(e),
                "d": "g raised " + _describe_exception(e)}
    return _encode_answer(answer, answer_type, settings["max_answer_bytes"])


def _encode_answer(answer, answer_type: str, max_bytes: int) -> dict:
    try:
        atype = _parsed_type(answer_type)
        if not conforms(answer, atype):
            return {"v": "fail", "c": "wrong_type", "r": _describe_type(answer),
                    "d": f"g returned {_describe_type(answer)}, not {answer_type}"}
        if "float" in answer_type:
            coerce(answer, atype)  # an int is a float answer only if it converts to one
        text = json.dumps(answer, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        return {"v": "fail", "c": "wrong_type", "r": "a value nested too deeply",
                "d": "g returned a value nested too deeply"}
    except OverflowError:
        return {"v": "fail", "c": "wrong_type", "r": "int",
                "d": f"g returned an int too large for a float, not {answer_type}"}
    except (ValueError, TypeError) as e:
        return {"v": "fail", "c": "wrong_type", "r": _describe_type(answer),
                "d": f"g's answer cannot be carried as JSON: {e}"[:_DETAIL_CHARS]}
    if len(text) > max_bytes:
        return {"v": "fail", "c": "too_large",
                "d": f"g's answer is {len(text)} bytes of JSON, over the {max_bytes}-byte cap"}
    return {"v": "answer", "a": text}


def _run_f(item, policy, settings) -> dict:
    source, answer_type, answer_text = item
    try:
        atype = _parsed_type(answer_type)
        answer = json.loads(answer_text)
        if not conforms(answer, atype):
            return {"v": "fail", "c": "wrong_type", "r": _describe_type(answer),
                    "d": f"answer is {_describe_type(answer)}, not {answer_type}"}
        answer = coerce(answer, atype)
    except OverflowError:  # only through check_answers: a g worker refuses such an answer
        return {"v": "fail", "c": "wrong_type", "r": "int",
                "d": f"answer holds an int too large for a float, not {answer_type}"}
    except (ValueError, RecursionError) as e:
        return {"v": "fail", "c": "wrong_type", "r": "invalid JSON",
                "d": f"answer is not valid JSON: {type(e).__name__}"}
    try:
        result = _call(marshal.loads(source), "f", (answer,), policy)
    except MemoryError:
        raise
    except BaseException as e:
        return {"v": "error", "c": "f_raised", "x": _exception_name(e),
                "d": "f raised " + _describe_exception(e)}
    if result is True:
        return {"v": "pass", "c": "passed", "d": ""}
    returned = _describe_value(result)
    return {"v": "fail", "c": "wrong_answer", "r": returned, "d": f"f returned {returned}"}


_CHECK_MODULE = "sandbox_check"
"""`__name__` of the code a check runs, and its `sys.modules` key while it runs."""


@functools.lru_cache(maxsize=256)
def _parsed_type(text: str):
    return parse_type(text)


def _describe_type(value) -> str:
    return type(value).__name__ if type(value) in (int, float, str, bool, list, dict, tuple,
                                                   set, type(None)) else "an object of another type"


def _describe_value(value) -> str:
    # Never call a method of an untrusted object (its __repr__ could lie or loop).
    if value is None or type(value) in (bool, int, float):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return "a " + _describe_type(value) + " (not True)"


_TYPE_NAME = type.__dict__["__name__"].__get__
"""The name a class was given (its C-level name), read past any metaclass: `type(e).__name__`
runs a metaclass's `__name__` property, which untrusted code defines and can make raise."""


def _exception_name(e: BaseException) -> str:
    """The name of `e`'s type as valid text, whatever the untrusted class does."""
    try:
        return _text(_TYPE_NAME(type(e)))
    except BaseException:  # not expected (every metaclass is a type); a safe name all the same
        return "exception"


def _describe_exception(e: BaseException) -> str:
    name = _exception_name(e)
    try:
        message = _text(str(e))  # str() runs the exception's own __str__: untrusted
    except BaseException:
        message = "(unprintable)"
    return (f"{name}: {message}" if message else name)[:_DETAIL_CHARS]


def _text(value) -> str:
    """What a check's code made (a name, a message) as at most _DETAIL_CHARS of valid text: an
    exact str, lone surrogates as their escapes. A str subclass's own methods (`__format__`,
    `__getitem__`) never run: str's are called on it."""
    return as_text(str.__getitem__(value, slice(0, _DETAIL_CHARS)))


def warm_up(policy) -> None:
    """Run one trivial check of each stage in this (trusted, unhardened) process: the zygote
    calls it so that what Python initialises lazily on a first check (compiler, JSON codecs,
    type caches) is done once and shared by every worker forked afterwards, instead of costing
    each fresh worker about a millisecond."""
    from puzzles.format import parse_puzzle

    puzzle = parse_puzzle("def f(x: int, a=3):\n    return x == a\n")
    f_code = marshal.dumps(compile_check(puzzle.source, "f"))
    g_code = marshal.dumps(compile_check("def g(a=3):\n    return a\n", "g"))
    answer = _run_g((g_code, puzzle.answer_type, f_code), policy, {"max_answer_bytes": 1 << 10})
    _run_f((f_code, puzzle.answer_type, answer["a"]), policy, {})
    _reset_interpreter_state(policy)
    policy.prepare_fork()
