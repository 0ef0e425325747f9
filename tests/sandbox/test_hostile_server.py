"""What the server does with hostile worker output and when its host dies: bounded decoding of
result lines, text that is text, bounded memory for answers in flight, a parent-death signal,
no scratch dir left behind, and verdicts that do not depend on a hash seed."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc

import pytest

from sandbox import Pair, Verifier, VerifierConfig
from sandbox import verifier as verifier_module
from sandbox.server import _parse_line
from sandbox.verifier import _server_environment, server_command

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NONCE = "0123456789abcdef01234567"
PUZZLE = "def f(x: int):\n    return x == 42\n"
RIGHT = "def g():\n    return 42\n"
WRONG = "def g():\n    return 41\n"


def line(body: str) -> bytearray:
    return bytearray((NONCE + body).encode())


# -- decoding result lines -------------------------------------------------------------------

@pytest.fixture
def no_digit_limit():
    """As in the server, where answers may hold ints of any size."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    yield
    sys.set_int_max_str_digits(limit)


def test_a_line_of_millions_of_digits_is_refused_not_parsed(no_digit_limit):
    # json.loads takes seconds on this (quadratic), and minutes on a few million digits.
    assert _parse_line(line('{"k": ' + "7" * 1_000_000 + ', "v": "ready"}'), NONCE) is None
    assert _parse_line(line('{"k": 0, "v": "ready"}'), NONCE) == {"k": 0, "v": "ready"}


def test_nested_containers_are_refused_before_any_is_built(no_digit_limit):
    body = '{"k": 0, "v": "answer", "a": "42", "z": [' + ",".join(["[]"] * 200_000) + "]}"
    data = line(body)
    size = len(data)
    tracemalloc.start()
    try:
        assert _parse_line(data, NONCE) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * size  # json.loads builds ~28 times the line's size of lists


@pytest.mark.parametrize("body", [
    '{"k": 0, "v": "answer", "a": "42", "z": "extra key"}',
    '{"k": 0, "v": "ready", ' + ", ".join(['"d": "x"'] * 8) + '}',
    '{"k": 0, "v": "ready", "d": "\\x"}',
    '{"k": 0123, "v": "ready"}',
    '{"k": 0.5, "v": "ready"}',
    '{"k": 0, "v": "ready"} trailing',
    '{"k": 0, "v": "ready"',
    '{"k": 0, "v": "answer", "a": "\\ud800"}',
    '["k", 0]',
])
def test_lines_a_worker_never_writes_are_refused(body):
    assert _parse_line(line(body), NONCE) is None


def test_what_workers_write_still_decodes():
    results = [{"k": 3, "v": "answer", "a": json.dumps("a\u00e9\"\\")},
               {"k": 0, "v": "fail", "c": "wrong_answer", "r": "False", "d": "f returned False"},
               {"k": 1, "v": "error", "c": "g_raised", "x": "ValueError", "d": "g raised \u00e9"},
               {"k": -1, "v": "setup", "d": "lane setup: OSError"},
               {"k": 2, "v": "answer", "a": json.dumps(["\u00e9\"\\"] * 50_000)}]  # long
    for message in results:
        assert _parse_line(line(json.dumps(message)), NONCE) == message


def test_text_from_a_worker_is_valid_text():
    message = _parse_line(line('{"k": 0, "v": "fail", "c": "wrong_answer", "d": "x\\ud800y", '
                               '"r": "\\udfff"}'), NONCE)
    assert message["d"].encode("utf-8") == b"x\\ud800y"
    assert message["r"].encode("utf-8") == b"\\udfff"


def forge(body: str) -> str:
    """g, escaped from the policy (walk), writes its own result line: the value of the Python
    expression `body`."""
    return (
        "    frame = os['sys']._getframe()\n"
        "    while frame is not None and 'nonce' not in frame.f_locals:\n"
        "        frame = frame.f_back\n"
        "    nonce = frame.f_locals['nonce']\n"
        f"    os['write'](3, (nonce + {body} + '\\n').encode())\n"
        "    return 41\n")


def test_a_line_of_digits_from_an_escaped_check_gets_it_a_verdict(verifier, walk, healthy):
    # Before: the server spent minutes on int("777...") while no check got a verdict.
    body = """'{"k": 0, "v": "answer", "a": "42", "n": ' + '7' * 3_000_000 + '}'"""
    attacker = Pair(PUZZLE, "def g():\n" + walk + forge(body), id="attacker")
    victims = [Pair(PUZZLE, RIGHT if i % 2 else WRONG) for i in range(8)]
    verdicts = verifier.verify_many([attacker] + victims)
    assert (verdicts[0].verdict, verdicts[0].reason) == ("error", "tampered")
    assert [v.verdict for v in verdicts[1:]] == ["pass" if i % 2 else "fail" for i in range(8)]
    healthy(verifier)


def test_a_lone_surrogate_from_an_escaped_check_never_reaches_a_verdict(verifier, walk):
    body = repr('{"k": 0, "v": "fail", "c": "wrong_answer", "d": "\\ud800", "r": "\\udbff"}')
    verdict = verifier.verify(Pair(PUZZLE, "def g():\n" + walk + forge(body)))
    assert verdict.verdict == "fail"
    for text in (verdict.detail, verdict.returned):
        text.encode("utf-8")  # what SQLite needs


# -- memory for answers in flight ------------------------------------------------------------

def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_server_memory_is_bounded_by_the_setting_not_the_batch():
    # 24 honest checks with 7 MB answers: the server used to hold all 24 answers (and a
    # pickled copy of each for the f batch), ~340 MB; now at most the 16 MiB budget, one
    # answer per lane past it, and the line being read.
    answer = 7_000_000
    big = f"def f(s: str):\n    return len(s) == {answer}\n"
    pairs = [Pair(big, f"def g():\n    return 'ab'[{i} % 2] * {answer}\n") for i in range(24)]
    config = VerifierConfig(timeout=20.0, workers=1, max_answer_bytes=8 << 20,
                            held_answer_bytes=16 << 20)
    with Verifier(config) as v:
        assert v.verify(Pair(PUZZLE, RIGHT)).passed
        before = _peak_rss(v._proc.pid)
        verdicts = v.verify_many(pairs)
        grown = _peak_rss(v._proc.pid) - before
    assert [x.verdict for x in verdicts] == ["pass"] * len(pairs), verdicts
    bound = (16 << 20) + 1 * answer + 3 * answer + (16 << 20)  # budget, a lane's, reading, slack
    assert grown < bound, f"server peak grew {grown >> 20} MiB"


def test_check_answers_are_bounded_too():
    big = "def f(s: str):\n    return len(s) == 3_000_000\n"
    config = VerifierConfig(timeout=20.0, workers=1, held_answer_bytes=4 << 20)
    with Verifier(config) as v:
        verdicts = v.check_answers([(big, "x" * 3_000_000)] * 10 + [(big, "short")])
    assert [x.verdict for x in verdicts] == ["pass"] * 10 + ["fail"]


# -- when the host dies ----------------------------------------------------------------------

HUNG_HOST = textwrap.dedent("""
    import resource, subprocess, sys
    from sandbox import VerifierConfig
    from sandbox.verifier import _server_environment, server_command
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = 512 << 20 if hard == resource.RLIM_INFINITY else min(512 << 20, hard)
    resource.setrlimit(resource.RLIMIT_STACK, (want, hard))  # so the server does not re-exec
    entry = ("import time\\nimport sandbox.server as s\\n"
             "def hang(*args):\\n"
             "    open(%r, 'w').close()\\n"
             "    time.sleep(3600)\\n"
             "s._wait_for_request = hang\\n"
             "s.main()\\n") % sys.argv[2]
    proc = subprocess.Popen(server_command(VerifierConfig(workers=1), sys.argv[1], entry),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=_server_environment(), start_new_session=True)
    print(proc.pid, flush=True)
    proc.wait()
""")


def test_a_busy_server_dies_with_its_host(tmp_path):
    # The server polls for its host only between requests; one stuck in work (here: a hang
    # where it waits for a request) must still go, with its zygote, templates and scratch dir.
    scratch, marker = str(tmp_path / "scratch"), str(tmp_path / "hung")
    os.mkdir(scratch)
    host = subprocess.Popen([sys.executable, "-c", HUNG_HOST, scratch, marker],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    server = int(host.stdout.readline())
    deadline = time.monotonic() + 60
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(marker), "the server did not start"
    zygote = _children(server)
    templates = [t for z in zygote for t in _children(z)]
    assert zygote and templates
    host.send_signal(signal.SIGKILL)
    host.wait()
    alive = [server, *zygote, *templates]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        if not alive and not os.path.exists(scratch):
            break
        time.sleep(0.1)
    for pid in alive:  # a failure must not leave a hung server to the tests after this one
        os.kill(pid, signal.SIGKILL)
    assert alive == [], "processes outlived a busy server's host"
    assert not os.path.exists(scratch), "the scratch directory outlived the host"


def test_a_host_that_died_before_its_server_started_leaves_no_scratch_dir(tmp_path):
    scratch = str(tmp_path / "scratch")
    os.mkdir(scratch)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that is no process's now: the host "died" before the server ran
    command = server_command(VerifierConfig(workers=1), scratch)
    settings = json.loads(command[-1])
    settings["host_pid"] = gone.pid
    command[-1] = json.dumps(settings)
    subprocess.run(command, env=_server_environment(), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, timeout=60, check=True)
    assert not os.path.exists(scratch)


def test_a_verifier_interrupted_while_starting_leaves_nothing(monkeypatch):
    made = []
    mkdtemp = verifier_module.tempfile.mkdtemp

    def recording_mkdtemp(**kwargs):
        made.append(mkdtemp(**kwargs))
        return made[-1]

    def interrupted(self, message):
        raise KeyboardInterrupt

    monkeypatch.setattr(verifier_module.tempfile, "mkdtemp", recording_mkdtemp)
    monkeypatch.setattr(Verifier, "_request", interrupted)
    with pytest.raises(KeyboardInterrupt) as caught:
        Verifier(VerifierConfig(workers=1))
    assert made and not os.path.exists(made[0])
    del caught


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


# -- the hash seed ---------------------------------------------------------------------------

def test_verdicts_do_not_depend_on_a_hash_seed():
    checkers = ["def f(x: int):\n    return hash('abc') % 1000003\n",
                "def f(x: int):\n    return len(''.join({'apple', 'kiwi', 'fig', 'plum'})"
                "[:5].split('p')[0]) + 1000\n",
                "def f(x: int):\n    return x == hash('selfplay') % 7\n"]
    pairs = [Pair(c, f"def g():\n    return {x}\n") for c in checkers for x in range(7)]
    seen = []
    for _ in range(2):
        with Verifier(VerifierConfig(workers=1)) as v:
            seen.append([(x.verdict, x.returned) for x in v.verify_many(pairs)])
    assert seen[0] == seen[1]


def test_a_server_started_from_a_thread_that_ended_keeps_serving():
    # PR_SET_PDEATHSIG fires when the *thread* that started the server exits: the server must
    # see that its host process is still there and carry on.
    import threading

    made = []
    starter = threading.Thread(target=lambda: made.append(Verifier(VerifierConfig(workers=1))))
    starter.start()
    starter.join()
    with made[0] as v:
        server = v._proc.pid
        deadline = time.monotonic() + 2  # the signal, if any, is handled within this
        while time.monotonic() < deadline and v._proc.poll() is None:
            time.sleep(0.1)
        assert v.verify(Pair(PUZZLE, RIGHT)).passed
        assert v._proc.pid == server, "the server died with its starting thread"
