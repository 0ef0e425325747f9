"""No check can change another check's verdict or read its data; every input gets exactly one
verdict in bounded time; nothing of the caller leaks into verdicts; nothing outlives the
verifier. The attacks first escape the Python policy (the subclass walk of conftest.WALK) to show
that what holds them is the process model, not the policy."""

import ast
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from sandbox import Pair, Verifier, VerifierConfig
from sandbox.server import free_uid_base
from sandbox.sharing import isolation_reason

PUZZLE = "def f(x: int):\n    return x == 42\n"
RIGHT = "def g():\n    return 42\n"
WRONG = "def g():\n    return 41\n"


def forge(own: str, others: str, returns: str) -> str:
    """Walks from the untrusted frame up to the worker loop's locals (the batch's nonce), then
    writes a result line for its own item (`own`) and for every item after it (`others`)."""
    return (
        "    frame = os['sys']._getframe()\n"
        "    while frame is not None and 'nonce' not in frame.f_locals:\n"
        "        frame = frame.f_back\n"
        "    nonce = frame.f_locals['nonce']\n"
        "    for k in range(64):\n"
        f"        body = {own!r} if k == 0 else {others!r}\n"
        "        line = nonce + '{\"k\": %d, ' % k + body + '}\\n'\n"
        "        os['write'](3, line.encode())\n"
        f"    return {returns}\n")


FORGE_ANSWERS = forge('"v": "answer", "a": "41"', '"v": "answer", "a": "42"', "41")
FORGE_PASSES = forge('"v": "fail", "d": ""', '"v": "pass", "d": ""', "False")


def _batch(attacker: Pair, n: int = 24) -> list[Pair]:
    victims = [Pair(PUZZLE, RIGHT if i % 2 else WRONG, id=f"v{i}") for i in range(n)]
    return [attacker] + victims


def _victims_judged_alone(verdicts) -> None:
    got = [v.verdict for v in verdicts[1:]]
    assert got == ["pass" if i % 2 else "fail" for i in range(len(got))], got


def test_forged_answer_lines_change_no_other_verdict(verifier, walk, healthy):
    attacker = Pair(PUZZLE, "def g():\n" + walk + FORGE_ANSWERS, id="attacker")
    verdicts = verifier.verify_many(_batch(attacker))
    assert verdicts[0].verdict != "pass"
    _victims_judged_alone(verdicts)
    healthy(verifier)


@pytest.fixture(scope="module")
def no_gate():
    """Every check shares a worker: what a gate that misses an attack would allow."""
    with Verifier(VerifierConfig(timeout=5.0, workers=2, sharing="always")) as v:
        yield v


def test_without_the_gate_a_forged_pass_is_still_never_reported(no_gate, walk, healthy):
    # In a shared g worker the forged answers are taken for the next items; every pass from a
    # shared process is then re-run end to end alone, so no wrong answer passes.
    attacker = Pair(PUZZLE, "def g():\n" + walk + FORGE_ANSWERS, id="attacker")
    verdicts = no_gate.verify_many(_batch(attacker))
    assert verdicts[0].verdict != "pass"
    wrong = [v for i, v in enumerate(verdicts[1:]) if i % 2 == 0]
    assert not any(v.passed for v in wrong), wrong
    healthy(no_gate)


def test_without_the_gate_a_checker_cannot_pass_other_checkers(no_gate, walk):
    # A puzzle's f in a shared f worker forges "pass" lines for the checks after it.
    attacker = Pair("def f(x: int):\n" + walk + FORGE_PASSES, RIGHT, id="attacker")
    verdicts = no_gate.verify_many(_batch(attacker))
    assert verdicts[0].verdict != "pass"
    wrong = [v for i, v in enumerate(verdicts[1:]) if i % 2 == 0]
    assert not any(v.passed for v in wrong), wrong


def test_reading_other_checks_data_finds_nothing(verifier, walk):
    # A sample that solved nothing looks for another sample's correct answer in its process
    # (every live object, and the zygote's memory it was forked from): there is none.
    thief = ("def g():\n" + walk +
             "    gc = os['sys'].modules['gc']\n"
             "    needle = 'return ' + str(4000 + 242)\n"  # not a constant of its own code
             "    for o in gc.get_objects():\n"
             "        if type(o) in (tuple, list, dict):\n"
             "            for item in (o.values() if type(o) is dict else o):\n"
             "                if type(item) is str and needle in item:\n"
             "                    return 4000 + 242\n"
             "    return 0\n")
    puzzle = "def f(x: int):\n    return x == 4242\n"
    honest = [Pair(puzzle, "def g():\n    return 4242\n", id=f"h{i}") for i in range(10)]
    verdicts = verifier.verify_many(honest[:5] + [Pair(puzzle, thief)] + honest[5:])
    assert [v.verdict for v in verdicts] == ["pass"] * 5 + ["fail"] + ["pass"] * 5


@pytest.mark.parametrize("name,source", [
    ("annotation string evaluated later",
     "def g():\n    import typing\n    def h(x: '[c for c in ().__class__.__bases__]'):\n"
     "        pass\n    return typing.get_type_hints(h)\n"),
    ("annotation that is an expression", "def g():\n    def h(x: print(1) or int):\n"
                                         "        pass\n    return 1\n"),
    ("annotation string that is an expression", "def g():\n    def h(x: 'len([1])'):\n"
                                                "        pass\n    return 1\n"),
    ("get_type_hints", "def g():\n    from typing import get_type_hints\n    return 1\n"),
    ("update_wrapper as setattr",
     "def g():\n    import functools, math\n    functools.update_wrapper(math.sqrt, len)\n"
     "    return 1\n"),
    ("wraps", "def g():\n    from functools import wraps\n    return 1\n"),
    ("dataclass applied to another object",
     "def g():\n    import dataclasses, fractions\n"
     "    dataclasses.dataclass(fractions.Fraction)\n    return 1\n"),
    ("decorator that is not a plain cache", "def g():\n    import functools\n"
                                            "    @functools.singledispatch\n"
                                            "    def h(x):\n        return x\n    return 1\n"),
    ("attribute store on a module view", "def g():\n    import math\n    math.pi = 3\n"
                                         "    return 1\n"),
    ("a plain function's self is a shared class",
     "def g():\n    import collections\n    def h(self):\n        self.most_common = len\n"
     "    h(collections.Counter)\n    return 1\n"),
    ("frame attribute", "def g():\n    def h():\n        yield 1\n    return h().gi_frame\n"),
    ("private name (RestrictedPython)", "def g():\n    _x = 41\n    return _x + 1\n"),
    ("exec (RestrictedPython)", "def g():\n    return exec('1')\n"),
    ("own __eq__", "def g():\n    class S(str):\n        def __eq__(self, other):\n"
                   "            return True\n    return 1\n"),
    ("own __hash__ by assignment", "def g():\n    class S(str):\n        __hash__ = len\n"
                                   "    return 1\n"),
    ("__eq__ imported under that name",
     "def g():\n    class S(str):\n        from operator import is_not as __eq__\n"
     "    return 1\n"),
])
def test_the_sharing_gate_sends_dynamic_code_to_a_process_of_its_own(name, source):
    assert isolation_reason(ast.parse(source)) is not None, name


@pytest.mark.parametrize("source", [
    "def g():\n    counts = {}\n    for c in 'abca':\n        counts[c] = counts.get(c, 0) + 1\n"
    "        counts[c] += 0\n    return counts['a']\n",
    "def g():\n    n = 0\n    def bump():\n        nonlocal n\n        n += 1\n    bump()\n"
    "    return n\n",
    "def g():\n    from dataclasses import dataclass\n    @dataclass\n    class P:\n"
    "        x: int\n        y: 'List[int]'\n    return P(1, [2]).x\n",
    "def g():\n    from functools import lru_cache\n    @lru_cache(None)\n"
    "    def fib(n):\n        return n if n < 2 else fib(n - 1) + fib(n - 2)\n    return fib(30)\n",
    "def g():\n    class Acc:\n        def __init__(self):\n            self.total = 0\n"
    "        def add(self, v):\n            self.total += v\n    a = Acc()\n    a.add(3)\n"
    "    return 'x y'.replace(' ', '') and a.total\n",
    "def f(x: List[int], n: int = 3) -> bool:\n    return len(x) == n\n",
])
def test_plain_code_may_share_a_worker(source):
    assert isolation_reason(ast.parse(source)) is None


def test_code_restrictedpython_refuses_is_isolated_and_judged_correctly(verifier):
    # `match` is plain computation that RestrictedPython does not know, so it refuses it.
    right = "def g():\n    match [40, 2]:\n        case [a, b]:\n            return a + b\n"
    wrong = right.replace("a + b", "a - b")
    assert "RestrictedPython" in isolation_reason(ast.parse(right))
    verdicts = verifier.verify_many([Pair(PUZZLE, s) for s in (right, wrong) * 3])
    assert [v.verdict for v in verdicts] == ["pass", "fail"] * 3


# Gate-passing code whose keys lie about equality, planting entries in the interpreter's own
# caches for the formats, regexes and patterns an honest neighbour then looks up.
POISONERS = [
    "def g():\n    import struct\n    class S(str):\n        def __hash__(self):\n"
    "            return hash('<I')\n        def __eq__(self, other):\n            return True\n"
    "    struct.unpack(S('>I'), bytes(4))\n    return 0\n",
    "def g():\n    import time\n    class S(str):\n        def __hash__(self):\n"
    "            return hash('%Y')\n        def __eq__(self, other):\n            return True\n"
    "    time.strptime('07', S('%d'))\n    return 0\n",
    "def g():\n    import re\n    class F(int):\n        def __hash__(self):\n"
    "            return hash(0)\n        def __eq__(self, other):\n            return True\n"
    "    re.compile('ab', F(re.IGNORECASE))\n    return 0\n",
]
POISONED = ("def g():\n    import re, struct, time\n"
            "    one = struct.unpack('<I', bytes([1, 0, 0, 0]))[0]\n"
            "    year = time.strptime('2020', '%Y').tm_year\n"
            "    case = re.fullmatch('ab', 'AB') is None\n"
            "    return one if year == 2020 and case else 0\n")
CACHE_PUZZLE = "def f(x: int):\n    return x == 1\n"


@pytest.mark.parametrize("shared", ["gate", "no_gate"])
def test_lying_keys_do_not_poison_the_caches_of_honest_neighbours(shared, request):
    # Through the gate, such code runs alone; with every check sharing (no gate), the worker
    # clears those caches between checks. Either way the honest checks after it pass.
    v = request.getfixturevalue("verifier" if shared == "gate" else "no_gate")
    poisoners = [Pair(CACHE_PUZZLE, g, id=f"p{i}") for i, g in enumerate(POISONERS)]
    honest = [Pair(CACHE_PUZZLE, POISONED, id=f"h{i}") for i in range(8)]
    if shared == "gate":
        assert all(isolation_reason(ast.parse(g)) for g in POISONERS)
    verdicts = v.verify_many(poisoners + honest)
    assert [x.verdict for x in verdicts] == ["fail"] * 3 + ["pass"] * 8, verdicts


def _returns_within(seconds: float, fn):
    out: list = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"no verdict within {seconds} s"
    return out[0]


def test_a_lone_check_cannot_ask_to_be_requeued(verifier, walk, healthy):
    # "alone" is the shared worker's gate speaking; from a check already alone it is forged,
    # and used to requeue the check forever.
    forge = ("    frame = os['sys']._getframe()\n"
             "    while frame is not None and 'nonce' not in frame.f_locals:\n"
             "        frame = frame.f_back\n"
             "    line = frame.f_locals['nonce'] + '{\"k\": 0, \"v\": \"alone\"}\\n'\n"
             "    os['write'](3, line.encode())\n"
             "    return 42\n")
    pairs = [Pair(PUZZLE, "def g():\n" + walk + forge), Pair(PUZZLE, RIGHT)]
    verdicts = _returns_within(60, lambda: verifier.verify_many(pairs))
    assert verdicts[0].verdict == "error" and verdicts[0].reason == "tampered"
    assert verdicts[1].verdict == "pass"
    healthy(verifier)


def test_a_scratch_tree_no_cleanup_can_recurse_through(verifier, walk, healthy):
    # 3,000 nested directories (past Python's recursion limit and PATH_MAX), odd names,
    # read-only modes: the server cleans up after it, or gives the lane a fresh directory.
    g = ("def g():\n" + walk +
         "    fd = os['open']('.', os['O_RDONLY'])\n"
         "    for i in range(3000):\n"
         "        os['mkdir']('d\\n\\x01', dir_fd=fd)\n"
         "        new = os['open']('d\\n\\x01', os['O_RDONLY'], dir_fd=fd)\n"
         "        os['close'](fd)\n"
         "        fd = new\n"
         "    os['mkdir']('read-only', 0o500, dir_fd=fd)\n"
         "    try:\n"
         "        os['fchmod'](fd, 0o500)\n"
         "    except PermissionError:\n"  # seccomp denies mode changes where it is active
         "        pass\n"
         "    return 42\n")
    verdicts = verifier.verify_many([Pair(PUZZLE, g)] + [Pair(PUZZLE, RIGHT)] * 4)
    assert verdicts[0].verdict == "pass", verdicts[0]
    assert [v.verdict for v in verdicts[1:]] == ["pass"] * 4
    healthy(verifier)


FLAGS = ("    ioctl = os['sys'].modules['fcntl'].ioctl\n"
         "    fd = os['open']('.', os['O_RDONLY'])\n"
         "    try:\n"
         "        flags = ioctl(fd, 0x80086601, bytes(8))\n"  # FS_IOC_GETFLAGS
         "    except OSError:\n"  # a scratch file system without inode flags
         "        flags = bytes(8)\n")


def test_what_a_check_sets_on_its_scratch_dir_the_next_one_does_not_see(walk):
    # Without seccomp (which denies these calls where it is active), a check owns its lane's
    # dir and can set the dir's mode, times and xattrs; emptying the dir leaves those, so the
    # next check in the lane read them: a channel between checks.
    marks = ("def g():\n" + walk +
             "    os['chmod']('.', 0o755)\n"
             "    os['utime']('.', (12345, 12345))\n"
             "    try:\n"
             "        os['setxattr']('.', 'user.note', b'hi')\n"
             "    except OSError:\n"  # a scratch file system without user xattrs
             "        pass\n"
             + FLAGS +
             "    try:\n"
             "        ioctl(fd, 0x40086602, bytes([flags[0] | 0x40]) + flags[1:])\n"  # nodump
             "    except OSError:\n"
             "        pass\n"
             "    return 'marked'\n")
    reads = ("def g():\n" + walk + FLAGS +
             "    st = os['stat']('.')\n"
             "    seen = [oct(st.st_mode & 0o777), int(st.st_mtime), os['listxattr']('.'),\n"
             "            flags[0] & 0x40]\n"
             "    return 'clean' if seen == ['0o700', 0, [], 0] else str(seen)\n")
    puzzle = "def f(s: str):\n    return s in ('marked', 'clean')\n"
    with pytest.warns(RuntimeWarning, match="seccomp"):
        v = Verifier(VerifierConfig(timeout=5.0, workers=1, disable_layers=("seccomp",)))
    with v:
        first, second = (v.verify(Pair(puzzle, g)) for g in (marks, reads))
    assert first.verdict == "pass", first
    assert second.verdict == "pass", second


def test_huge_literals_are_rejected_in_bounded_time(verifier):
    million = "def f(x: int):\n    return x == " + "7" * 1_000_000 + "\n"
    long_digits = "def g():\n    return " + "7" * 50_000 + "\n"
    start = time.perf_counter()
    verdicts = verifier.verify_many([Pair(million, RIGHT), Pair(PUZZLE, long_digits)])
    assert time.perf_counter() - start < 5
    assert [v.verdict for v in verdicts] == ["rejected", "rejected"]
    assert "limit" in verdicts[0].detail and "digits" in verdicts[1].detail


def test_secrets_in_the_callers_environment_never_reach_a_verdict(walk, monkeypatch):
    monkeypatch.setenv("SELFPLAY_TEST_SECRET", "hunter2-do-not-leak")
    leak_env = ("def g():\n" + walk + "    raise ValueError(str(dict(os['environ'])))\n"
                "    return 1\n")
    leak_env_plain = "def g():\n    raise ValueError('x')\n    return 1\n"
    with Verifier(VerifierConfig(timeout=5.0, workers=1)) as v:
        verdicts = v.verify_many([Pair(PUZZLE, leak_env), Pair(PUZZLE, leak_env_plain)])
    assert verdicts[0].verdict == "error"
    assert all("hunter2" not in x.detail for x in verdicts)


def test_a_checks_memory_limit_does_not_depend_on_answers_in_flight(walk):
    # Eight 40 MB answers wait in the server for their f stage; a check that needs most of its
    # own 256 MiB still gets it (workers are forked from a zygote that never holds answers).
    big = "def f(s: str):\n    return len(s) > 10\n"
    pairs = [Pair(big, "def g():\n    return 'a' * 40_000_000\n") for _ in range(8)]
    hungry = Pair(PUZZLE, "def g():\n    block = bytearray(200 * 1024 * 1024)\n"
                          "    return 42 + len(block) * 0\n")
    with Verifier(VerifierConfig(timeout=20.0, workers=2, memory_mb=256)) as v:
        verdicts = v.verify_many(pairs + [hungry])
    assert [x.verdict for x in verdicts] == ["pass"] * 9


SCRIPT = textwrap.dedent("""
    import sys, time
    from sandbox import Pair, Verifier, VerifierConfig
    v = Verifier(VerifierConfig(timeout=60.0, workers=2))
    print(v._proc.pid, v.zygote_pid, v._scratch, flush=True)
    v.verify_many([Pair("def f(x: int):\\n    return x == 1\\n",
                        "def g():\\n    while True:\\n        pass\\n    return 1\\n")] * 2)
""")


def test_nothing_outlives_a_killed_caller(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True,
                            cwd=root)
    server, zygote, scratch = proc.stdout.readline().split()
    server, zygote = int(server), int(zygote)
    time.sleep(1.0)  # the two looping checks are running now
    templates = _children(zygote)
    workers = [w for t in templates for w in _children(t)]
    assert workers, "the looping checks should be running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # 30 s, not 15: a fresh clone's suite once saw the scratch directory still there at 15 s
    # (every process gone; not reproduced alone). Removal after a kill, not its speed, is
    # what this asserts.
    deadline = time.monotonic() + 30
    alive = [server, zygote, *templates, *workers]
    while time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        if not alive and not os.path.exists(scratch):
            break
        time.sleep(0.2)
    assert alive == [], "processes outlived the verifier's caller"
    assert not os.path.exists(scratch), "the scratch directory outlived the verifier"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" not in f.read()
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def test_a_lane_template_that_died_is_replaced():
    # Templates never run untrusted code, so none should die; if one does (killed from
    # outside), its lane gets a new one and checks go on in the same server.
    with Verifier(VerifierConfig(timeout=5.0, workers=1)) as v:
        server = v._proc.pid
        assert v.verify(Pair(PUZZLE, RIGHT)).passed
        (template,) = _children(v.zygote_pid)
        os.kill(template, signal.SIGKILL)
        verdicts = v.verify_many([Pair(PUZZLE, RIGHT), Pair(PUZZLE, RIGHT.replace("42", "41"))])
        assert [x.verdict for x in verdicts] == ["pass", "fail"]
        assert v._proc.pid == server
        assert _children(v.zygote_pid) not in ([], [template])


def test_worker_ids_never_collide_with_an_existing_account():
    import grp
    import pwd

    taken = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    base = free_uid_base(0, 4)  # 0 is root: the block must move past every existing id it meets
    assert not taken & set(range(base, base + 4))
    assert free_uid_base(base, 4) == base


def test_sharing_never_runs_every_stage_alone_and_judges_alike():
    pairs = _batch(Pair(PUZZLE, RIGHT), n=6)
    with Verifier(VerifierConfig(timeout=5.0, workers=2, sharing="never")) as v:
        verdicts = v.verify_many(pairs)
        answers = v.check_answers([(PUZZLE, 42), (PUZZLE, 41)])
    assert verdicts[0].passed
    _victims_judged_alone(verdicts)
    assert [a.verdict for a in answers] == ["pass", "fail"]


def test_an_unknown_sharing_mode_is_refused_by_name():
    from puzzles.errors import SelfplayError

    with pytest.raises(SelfplayError, match="sharing"):
        VerifierConfig(sharing="sometimes")
