"""The host side of the sandbox: `Verifier`, what the rest of the project codes against.

    with Verifier(VerifierConfig(timeout=5)) as v:
        verdicts = v.verify_many([Pair(puzzle_src, solution_src, id="p1"), ...])

The verifier parses and compiles each pair with the project's puzzle format (a pair that does
not parse is `rejected` without running anything), then hands the checks to a server process (see
`sandbox.server`) started once per Verifier from a fresh interpreter, so that forking workers
never copies this process's memory (torch, a model), nor its environment. The server, its
imports, namespaces and clean zygote are reused across calls; each batch gets a fresh, hardened
worker process forked from the zygote.
"""

from __future__ import annotations

import ast
import json
import marshal
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from typing import Sequence

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import parse_puzzle, recursion_headroom, solution_tree
from puzzles.types import conforms
from sandbox import wire
from sandbox.config import KERNEL_LAYERS, Pair, Verdict, VerifierConfig
from sandbox.policy import compile_check
from sandbox.scratch import remove_tree
from sandbox.server import ENTRY as SERVER_ENTRY, HASH_SEED, Check
from sandbox.sharing import isolation_reason

SANDBOX_VERSION = "0.2"  # 0.2: clean zygote, passes confirmed alone, sharing gate on the AST
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PUZZLE_CACHE = 4096
_CHUNK = 128  # checks per message: small enough that workers start while the host parses


def _compile(tree: ast.Module, name: str, bounded: bool) -> tuple[bytes, bool]:
    """Marshalled code for the worker, and whether the sharing gate wants it run alone.
    `bounded`: puzzles.format parsed the tree, bounding its depth and folding (see
    compile_check)."""
    code = compile_check(tree, name, bounded=bounded)
    with recursion_headroom():  # RestrictedPython's transformer recurses once a level too
        alone = isolation_reason(tree) is not None  # spends the tree: compiled above
    return marshal.dumps(code), alone


def _compile_checker(source: str) -> tuple[bytes, bool]:
    try:
        with warnings.catch_warnings():  # the model's `1if x` is not the user's business
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
        return _compile(tree, "f", bounded=False)  # once a puzzle: cached
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise PuzzleError(f"f does not compile: {type(e).__name__}: {e}") from None


def _compile_solution(source: str, puzzle) -> tuple[bytes, bool] | Verdict:
    """g parsed, checked against its puzzle and compiled here, on the host, like f: a worker
    then only unmarshals (a parse inside a freshly forked worker costs it page faults too).
    Sources are capped at puzzles.format.MAX_SOURCE_CHARS, their trees at MAX_NESTING levels
    and MAX_FOLDED_BYTES of folded constants, so untrusted source cannot stall the host."""
    try:
        return _compile(solution_tree(source, puzzle), "g", bounded=True)
    except PuzzleError as e:
        return Verdict("rejected", f"solution: {e}", 0.0, reason="invalid_solution")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        return Verdict("rejected", f"solution does not compile: {type(e).__name__}: {e}"[:300],
                       0.0, reason="invalid_solution")


def _check_limits(timeout: float | None, wall: float | None) -> None:
    for name, value in (("timeout", timeout), ("wall", wall)):
        if value is not None and not value > 0:
            raise SelfplayError(f"verifier: {name} must be > 0, not {value!r}")


def _server_environment() -> dict[str, str]:
    """The server's whole environment (its workers inherit it): nothing of the caller's, whose
    variables may hold secrets that a check could raise into a verdict's detail."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (_PROJECT_ROOT, os.environ.get("PYTHONPATH"))
                                          if p),
            "PATH": os.defpath, "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": HASH_SEED}  # verdicts must not depend on str hashes' seed


def server_command(cfg: VerifierConfig, scratch: str, entry: str = SERVER_ENTRY) -> list[str]:
    """The command line that starts a server for this process, with `scratch` as its scratch
    root (`entry`: the code it runs; tests start a server that hangs)."""
    settings = {"timeout": cfg.timeout, "memory_mb": cfg.memory_mb,
                "workers": cfg.n_workers, "batch_size": cfg.batch_size,
                "max_answer_bytes": cfg.max_answer_bytes, "scratch_mb": cfg.scratch_mb,
                "report_answer_bytes": cfg.report_answer_bytes,
                "held_answer_bytes": cfg.held_answer_bytes,
                "uid_base": cfg.uid_base, "scratch_root": scratch,
                "disable_layers": list(cfg.disable_layers), "host_pid": os.getpid(),
                "sharing": cfg.sharing}
    return [sys.executable, "-s", "-P", "-c", entry, json.dumps(settings)]


class Verifier:
    """Runs untrusted puzzle/solution pairs in a hardened sandbox. See module docstring."""

    def __init__(self, config: VerifierConfig | None = None):
        self.config = config or VerifierConfig()
        self._proc: subprocess.Popen | None = None
        self._scratch = ""
        self._layers: dict = {}
        self._puzzles: dict = {}  # source -> (Puzzle, code of f, isolate f?) or PuzzleError
        self._lock = threading.Lock()
        # Answers may hold ints beyond 4,300 digits; callers json.loads them (check_answers).
        sys.set_int_max_str_digits(0)
        self._start()

    # -- lifecycle ----------------------------------------------------------------------------

    def _start(self) -> None:
        try:
            self._start_server()
        except BaseException:  # Ctrl-C or a failure while starting: no server, no scratch dir
            self.close()
            raise

    def _start_server(self) -> None:
        cfg = self.config
        self._scratch = tempfile.mkdtemp(prefix="selfplay-sandbox-")
        os.chmod(self._scratch, 0o711)  # lane dirs below belong to the workers' uids
        self._proc = subprocess.Popen(
            server_command(cfg, self._scratch), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=_server_environment(), close_fds=True, start_new_session=True)
        reply = self._request(("layers",))
        if reply is None:
            self.close()
            raise SelfplayError("the sandbox server failed to start (run `selfplay doctor`)")
        self._layers = reply[1]
        self.uid_base = reply[2]["uid_base"]  # the configured one, or the next free block
        self.zygote_pid = reply[2]["zygote_pid"]
        inactive = {k: v for k, v in self._layers.items() if k in KERNEL_LAYERS and v is not True}
        if inactive and cfg.strict:
            self.close()
            raise SelfplayError("sandbox: strict mode needs every kernel layer, inactive: " +
                                "; ".join(f"{k}: {v}" for k, v in inactive.items()))
        for name, why in inactive.items():
            warnings.warn(f"sandbox layer {name!r} is not active: {why}", RuntimeWarning,
                          stacklevel=3)

    def _request(self, message):
        try:
            wire.send(self._proc.stdin.fileno(), message)
            return wire.recv(self._proc.stdout.fileno())
        except (BrokenPipeError, OSError):
            return None

    def close(self) -> None:
        """Stop the server and its workers, remove the scratch directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._scratch:  # the server removes it; this covers a server that was killed
            remove_tree(self._scratch)
            self._scratch = ""

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- what it reports -----------------------------------------------------------------------

    @property
    def version(self) -> str:
        """Provenance stored with every verdict: sandbox version, limits and active layers."""
        return self.version_with()

    def version_with(self, timeout: float | None = None, wall: float | None = None) -> str:
        """`version` for verdicts of a call given its own limits (see `verify_many`)."""
        active = "+".join(k for k, v in self._layers.items() if v is True)
        c = self.config
        limit = f"{timeout or c.timeout:g}s" + (f"-cpu/{wall:g}s-wall" if wall else "")
        return (f"selfplay-sandbox/{SANDBOX_VERSION} py{sys.version_info[0]}."
                f"{sys.version_info[1]} timeout={limit} memory={c.memory_mb}MiB "
                f"sharing={c.sharing} layers={active}")

    def layers(self) -> dict[str, bool | str]:
        """Isolation layers: True when active, otherwise a string saying why not."""
        result = dict(self._layers)
        result["two_stage"] = True  # f runs in a process g never touched, on a JSON answer
        result["policy"] = True  # import allowlist, read-only module views
        result["sharing"] = True if self.config.sharing != "always" else \
            "disabled (sharing='always'): every check shares; passes are still re-run alone"
        return result

    # -- checks --------------------------------------------------------------------------------

    def verify(self, pair: Pair) -> Verdict:
        return self.verify_many([pair])[0]

    def verify_many(self, pairs: Sequence[Pair], progress: bool = False,
                    timeout: float | None = None, wall: float | None = None) -> list[Verdict]:
        """One verdict per pair, in input order. With `timeout`, each run of untrusted code in
        this call gets that many seconds instead of `config.timeout`; with `wall` too, those
        are seconds of CPU time (which a loaded machine does not stretch as it does wall-clock
        time), within `wall` seconds of wall-clock time (for code that sleeps or waits)."""
        _check_limits(timeout, wall)
        results: list[Verdict | None] = [None] * len(pairs)

        def prepared():
            for i, pair in enumerate(pairs):
                check = self._prepare_pair(i, pair)
                if isinstance(check, Verdict):
                    results[i] = check
                else:
                    yield check
        return self._run(prepared(), results, progress, (timeout, wall))

    def check_answers(self, items: Sequence[tuple[str, object]], progress: bool = False,
                      timeout: float | None = None, wall: float | None = None) -> list[Verdict]:
        """Run `f(answer)` only, for (puzzle source, answer value) items. `timeout` and `wall`
        as for `verify_many`."""
        _check_limits(timeout, wall)
        results: list[Verdict | None] = [None] * len(items)
        checks = []
        for i, (source, value) in enumerate(items):
            parsed = self._puzzle(source)
            if isinstance(parsed, PuzzleError):
                results[i] = Verdict("rejected", f"puzzle: {parsed}", 0.0,
                                     reason="invalid_puzzle")
                continue
            puzzle, f_code, f_alone = parsed
            if not conforms(value, puzzle.type):
                results[i] = Verdict("fail", f"answer is {type(value).__name__}, not "
                                             f"{puzzle.answer_type}", 0.0, reason="wrong_type",
                                     returned=type(value).__name__)
                continue
            try:
                text = json.dumps(value, allow_nan=False, separators=(",", ":"))
            except (ValueError, RecursionError) as e:
                results[i] = Verdict("fail", f"answer cannot be carried as JSON: {e}", 0.0,
                                     reason="wrong_type", returned=type(value).__name__)
                continue
            checks.append(Check(i, None, f_code, puzzle.answer_type, text, False,
                                f_alone or self.config.sharing == "never"))
        return self._run(checks, results, progress, (timeout, wall))

    def _puzzle(self, source: str):
        """(Puzzle, marshalled code of f, must f run alone?) or the PuzzleError, cached."""
        if not isinstance(source, str):
            return PuzzleError(f"source is a {type(source).__name__}, not a string")
        hit = self._puzzles.get(source)
        if hit is None:
            try:
                puzzle = parse_puzzle(source)
                hit = (puzzle, *_compile_checker(puzzle.source))
            except PuzzleError as e:
                hit = e
            except (RecursionError, MemoryError, ValueError) as e:
                hit = PuzzleError(f"cannot be parsed: {type(e).__name__}")
            if len(self._puzzles) >= _PUZZLE_CACHE:
                self._puzzles.clear()
            self._puzzles[source] = hit
        return hit

    def _prepare_pair(self, i: int, pair: Pair) -> Check | Verdict:
        parsed = self._puzzle(pair.puzzle)
        if isinstance(parsed, PuzzleError):
            return Verdict("rejected", f"puzzle: {parsed}", 0.0, reason="invalid_puzzle")
        puzzle, f_code, f_alone = parsed
        if not isinstance(pair.solution, str):
            return Verdict("rejected", f"solution: source is a {type(pair.solution).__name__}, "
                           "not a string", 0.0, reason="invalid_solution")
        if not pair.solution.strip():
            return Verdict("rejected", "solution: source is empty", 0.0,
                           reason="invalid_solution")
        compiled = _compile_solution(pair.solution, puzzle)
        if isinstance(compiled, Verdict):
            return compiled
        g_code, g_alone = compiled
        # A checker that must run alone makes its g run alone too: g's process runs f's code.
        # (sharing = "always" skips the gate for g only: a checker the gate refuses is the
        # puzzle's, and the puzzle is trusted no more than the solution.)
        f_alone = f_alone or self.config.sharing == "never"
        g_alone = f_alone or (g_alone and self.config.sharing == "gate")
        return Check(i, g_code, f_code, puzzle.answer_type, None, g_alone, f_alone)

    def _run(self, checks, results: list, progress: bool,
             limits: tuple = (None, None)) -> list[Verdict]:
        """Stream `checks` (an iterable, prepared lazily) to the server and collect verdicts;
        restart the server once if it dies, then give up with `error` verdicts."""
        from tqdm import tqdm

        bar = tqdm(total=len(results), disable=not progress, desc="verify", unit="check")
        sent: list = []
        with self._lock:  # one conversation with the server at a time
            try:
                return self._run_locked(checks, sent, results, bar, limits)
            except BaseException:
                # Interrupted mid-stream (Ctrl-C, a bug): the server may still be answering.
                # Drop it, so that the next call starts a fresh one instead of reading stale
                # verdicts.
                self.close()
                raise
            finally:
                bar.close()

    def _run_locked(self, checks, sent: list, results: list, bar,
                    limits: tuple) -> list[Verdict]:
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self._start()
        if not self._stream(checks, sent, results, bar, limits):
            todo = [c for c in sent if results[c.idx] is None] + list(checks)
            self.close()
            self._start()
            self._stream(todo, [], results, bar, limits)
        for i, v in enumerate(results):
            if v is None:
                results[i] = Verdict("error", "the sandbox server died", 0.0, reason="sandbox")
        bar.update(len(results) - bar.n)
        return results

    def _stream(self, checks, sent: list, results: list, bar,
                limits: tuple = (None, None)) -> bool:
        """Send checks in chunks from a thread (preparing the next chunk overlaps running the
        last), collect verdicts here; False if the server died. Every prepared check is
        appended to `sent`, so a retry knows what is outstanding."""
        import threading

        fd_in, fd_out = self._proc.stdin.fileno(), self._proc.stdout.fileno()
        failure: list = []

        def send_all():
            try:
                wire.send(fd_in, ("run", *limits))  # (timeout, wall): sandbox.server.run
                chunk = []
                for check in checks:
                    chunk.append(check)
                    sent.append(check)
                    if len(chunk) >= _CHUNK:
                        wire.send(fd_in, ("more", chunk))
                        chunk = []
                if chunk:
                    wire.send(fd_in, ("more", chunk))
            except BaseException as e:  # a broken pipe, or a bug while preparing
                failure.append(e)
            finally:
                try:
                    wire.send(fd_in, ("end",))
                except OSError:
                    pass

        sender = threading.Thread(target=send_all, name="sandbox-sender", daemon=True)
        sender.start()
        ok = False
        while True:
            message = wire.recv(fd_out)
            if message is None:
                break
            if message[0] == "done":
                ok = True
                break
            for _, idx, verdict, detail, seconds, answer, reason, exception, returned in \
                    message[1]:
                results[idx] = Verdict(verdict, detail, seconds, answer, reason, exception,
                                       returned)
            bar.update(len(message[1]))
        sender.join()
        if failure and not isinstance(failure[0], OSError):
            raise failure[0]
        return ok
