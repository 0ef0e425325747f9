"""Escapes: untrusted code that bypasses the import policy (a subclass walk to `os`) still
cannot touch files, run programs, open sockets, outlive its check, or hurt the host."""

import os
import pathlib
import shutil
import socket
import tempfile

import pytest

from sandbox import Pair

PUZZLE = "def f(x: int):\n    return x == x + 1\n"  # unsolvable: only the side effects matter


def _check(v, walk, body, puzzle=PUZZLE):
    return v.verify(Pair(puzzle, "def g():\n" + walk + body + "    return 1\n"))


@pytest.fixture
def target(tmp_path):
    """A world-writable dir, so that only the sandbox (not file modes) stands in the way."""
    tmp_path.chmod(0o777)
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    return tmp_path


def test_file_writes_outside_scratch(verifier, walk, target, healthy):
    path = target / "written"
    attempts = [
        f"    os['open']({str(path)!r}, os['O_CREAT'] | os['O_WRONLY'], 0o666)\n",
        f"    os['__builtins__']['open']({str(path)!r}, 'w').write('x')\n",
        f"    os['rename']({str(target / 'secret.txt')!r}, {str(path)!r})\n",
        f"    os['unlink']({str(target / 'secret.txt')!r})\n",
        f"    os['mkdir']({str(target / 'newdir')!r})\n",
        f"    os['symlink']('/etc/passwd', {str(path)!r})\n",
        f"    open({str(path)!r}, 'w')\n",  # open is not even a builtin here
    ]
    for body in attempts:
        assert _check(verifier, walk, body).verdict == "error"
    assert sorted(os.listdir(target)) == ["secret.txt"]
    assert (target / "secret.txt").read_text() == "s3cret"
    healthy(verifier)


def test_file_reads_outside_scratch(verifier, walk, target, healthy):
    secret = str(target / "secret.txt")
    puzzle = "def f(s: str):\n    return s == 's3cret'\n"
    reads = [
        f"    return os['read'](os['open']({secret!r}, os['O_RDONLY']), 100).decode()\n",
        f"    return os['__builtins__']['open']({secret!r}).read()\n",
        "    return str(os['listdir']('/'))\n",
    ]
    for body in reads:
        v = verifier.verify(Pair(puzzle, "def g():\n" + walk + body))
        assert v.verdict == "error" and "Permission" in v.detail, v
    healthy(verifier)


def test_scratch_dir_is_private_and_usable(verifier, walk, healthy):
    # The one place a check may write; it is emptied between workers.
    g = ("def g():\n" + walk +
         "    fd = os['open']('note', os['O_CREAT'] | os['O_WRONLY'], 0o600)\n"
         "    os['write'](fd, b'hi')\n    os['close'](fd)\n"
         "    return os['read'](os['open']('note', os['O_RDONLY']), 10).decode()\n")
    assert verifier.verify(Pair("def f(s: str):\n    return s == 'hi'\n", g)).verdict == "pass"
    healthy(verifier)


@pytest.mark.parametrize("body", [
    "    os['system']('touch {p}')\n",
    "    os['execv']('/bin/sh', ['sh', '-c', 'touch {p}'])\n",
    "    os['posix_spawn']('/bin/sh', ['sh', '-c', 'touch {p}'], {{}})\n",
    "    os['popen']('touch {p}').read()\n",
    "    os['__builtins__']['__import__']('subprocess').run(['touch', '{p}'])\n",
    "    os['sys'].modules['_posixsubprocess']\n",
], ids=["system", "execv", "posix_spawn", "popen", "subprocess", "posixsubprocess"])
def test_no_new_programs(verifier, walk, target, body, healthy):
    p = target / "ran"
    v = _check(verifier, walk, body.format(p=p))
    assert v.verdict in ("error", "fail"), v
    assert not p.exists()
    healthy(verifier)


def _ctypes_socket(walk, kind, port):
    # Sockets through libc, since no socket module can be imported: AF_INET=2, STREAM=1, DGRAM=2
    return ("def g():\n" + walk +
            "    c = os['sys'].modules['ctypes']\n    libc = c.CDLL(None)\n"
            f"    fd = libc.socket(2, {kind}, 0)\n"
            f"    addr = (c.c_ubyte * 16)(2, 0, {port >> 8}, {port & 255}, 127, 0, 0, 1)\n"
            + ("    r = libc.connect(fd, addr, 16)\n" if kind == 1 else
               "    r = libc.sendto(fd, b'pass', 4, 0, addr, 16)\n") +
            "    return fd * 1000 + r\n")


def test_tcp_and_udp_even_to_localhost(verifier, walk, healthy):
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(4)
        udp.bind(("127.0.0.1", 0))
        tcp.setblocking(False)
        udp.setblocking(False)
        opened = "def f(x: int):\n    return x >= 0\n"  # passes iff socket() and connect() worked
        for kind, sock in ((1, tcp), (2, udp)):
            g = _ctypes_socket(walk, kind, sock.getsockname()[1])
            assert verifier.verify(Pair(opened, g)).verdict == "fail"
        with pytest.raises(BlockingIOError):
            tcp.accept()
        with pytest.raises(BlockingIOError):
            udp.recv(16)
    finally:
        tcp.close()
        udp.close()
    healthy(verifier)


def test_fork_bombs_leave_nothing_behind(quick, walk, healthy, leftovers):
    bombs = [
        "    while True:\n        os['fork']()\n",
        # keep trying until killed: the check ends as a timeout, still with nothing left
        "    while True:\n        try:\n            os['fork']()\n        except BaseException:\n"
        "            pass\n",
        "    t = os['sys'].modules['_thread']\n    t.start_new_thread(lambda: None, ())\n",
    ]
    verdicts = quick.verify_many([Pair(PUZZLE, "def g():\n" + walk + b + "    return 1\n")
                                  for b in bombs])
    assert [v.verdict for v in verdicts] == ["error", "timeout", "error"]
    assert leftovers(quick) == []
    healthy(quick)


def test_ctypes_crash(verifier, walk, healthy):
    v = _check(verifier, walk, "    os['sys'].modules['ctypes'].string_at(0)\n")
    assert v.verdict == "error" and "SIGSEGV" in v.detail
    healthy(verifier)


@pytest.mark.parametrize("body", [
    "    os['kill'](os['getppid'](), 9)\n",
    "    os['killpg'](0, 9)\n",
    "    os['killpg'](os['getpgid'](os['getppid']()), 9)\n",
    "    os['kill'](-1, 9)\n",
    "    os['sys'].modules['ctypes'].CDLL(None).kill(-1, 9)\n",
], ids=["parent", "own-group", "parent-group", "everyone", "everyone-via-libc"])
def test_cannot_kill_parent_or_group(verifier, walk, body, healthy):
    server = verifier._proc.pid
    v = _check(verifier, walk, body)
    assert v.verdict in ("error", "fail"), v
    assert verifier._proc.pid == server and verifier._proc.poll() is None
    healthy(verifier)


def test_disk_fill(quick, walk, healthy):
    before = shutil.disk_usage("/tmp").free
    bodies = [
        # one huge file in the scratch dir
        "    fd = os['open']('big', os['O_CREAT'] | os['O_WRONLY'], 0o600)\n"
        "    while True:\n        os['write'](fd, b'x' * (1 << 20))\n",
        # many files
        "    i = 0\n    while True:\n"
        "        fd = os['open'](str(i), os['O_CREAT'] | os['O_WRONLY'], 0o600)\n"
        "        os['write'](fd, b'x' * (1 << 20))\n        os['close'](fd)\n        i += 1\n",
    ]
    for body in bodies:
        assert _check(quick, walk, body).verdict in ("error", "timeout")
    assert before - shutil.disk_usage("/tmp").free < 64 << 20
    healthy(quick)


def test_raising_limits(verifier, walk, healthy):
    for which in ("RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CPU"):
        body = (f"    r = os['sys'].modules['resource']\n"
                f"    r.setrlimit(r.{which}, (r.RLIM_INFINITY, r.RLIM_INFINITY))\n")
        v = _check(verifier, walk, body)
        assert v.verdict == "error", (which, v)
    healthy(verifier)


@pytest.mark.parametrize("body", [
    "    m = __import__('o' + 's')\n",
    "    m = __builtins__['__import__']('so'[::-1])\n",
    "    import importlib\n",
    "    import inspect\n",
    "    import gc\n",
    "    import sys\n    m = sys.modules['os']\n",
    # bypassed policy: gc and frames reach the worker's own state, which changes nothing
    "    gc = os['sys'].modules['gc']\n"
    "    for o in gc.get_objects():\n"
    "        if type(o) is dict and 'nonce' in o:\n            o['nonce'] = 'x'\n",
    "    fr = os['sys']._getframe()\n    while fr.f_back:\n        fr = fr.f_back\n"
    "    fr.f_globals['_send']('', {'k': 0, 'v': 'pass', 'd': ''})\n",
], ids=["obfuscated-import", "builtins-dict", "importlib", "inspect", "gc", "sys.modules",
        "gc-walk", "frame-walk"])
def test_import_tricks(verifier, walk, body, healthy):
    v = _check(verifier, walk, body)
    assert v.verdict in ("error", "fail"), v
    healthy(verifier)


@pytest.fixture
def seccomp(verifier):
    status = verifier.layers().get("seccomp")
    if status is not True:
        pytest.skip(f"seccomp is not active here: {status}")


@pytest.fixture
def reachable():
    """A world-writable dir that any uid can reach (pytest's tmp_path sits under a dir only
    its owner may enter, which would stop a worker uid before any sandbox layer does)."""
    path = tempfile.mkdtemp(prefix="selfplay-metadata-", dir="/tmp")
    os.chmod(path, 0o777)
    yield pathlib.Path(path)
    shutil.rmtree(path)


@pytest.mark.parametrize("body", [
    "    os['utime']({p!r})\n",  # to now: needs only write permission, which 0o666 gives
    "    os['setxattr']({p!r}, 'user.note', b'x')\n",
    "    os['removexattr']({p!r}, 'user.kept')\n",
    "    os['listxattr']({p!r})\n",
    # its own scratch dir, which it owns: the channel to the next check that sandbox.server
    # also closes by resetting the dir
    "    os['chmod']('.', 0o755)\n",
    "    os['utime']('.', (12345, 12345))\n",
], ids=["utime", "setxattr", "removexattr", "listxattr", "chmod-own", "utime-own"])
def test_no_file_metadata_outside_scratch(verifier, walk, reachable, body, seccomp, healthy):
    # Landlock has no right for metadata: without seccomp's denial these reach a world-writable
    # host file (setxattr of user.* and utime to now need only write permission).
    victim = reachable / "shared.txt"
    victim.write_text("x")
    victim.chmod(0o666)
    try:
        os.setxattr(victim, "user.kept", b"1")
    except OSError:  # a file system without user xattrs: the other calls still count
        pass
    os.utime(victim, (1_000_000, 1_000_000))
    before = (os.stat(victim), os.stat(reachable).st_mode, _xattrs(victim))
    v = _check(verifier, walk, body.format(p=str(victim), d=str(reachable)))
    assert v.verdict == "error" and "PermissionError" in v.detail, v
    after = (os.stat(victim), os.stat(reachable).st_mode, _xattrs(victim))
    assert after[0].st_mtime == before[0].st_mtime and after[0].st_mode == before[0].st_mode
    assert after[1:] == before[1:]
    healthy(verifier)


def _xattrs(path) -> dict:
    try:
        return {name: os.getxattr(path, name) for name in os.listxattr(path)}
    except OSError:
        return {}


def test_no_watching_host_directories(verifier, walk, reachable, seccomp, healthy):
    # inotify on a host dir reports the names of the files the host creates there.
    g = ("def g():\n" + walk +
         "    libc = os['sys'].modules['ctypes'].CDLL(None)\n"
         "    fd = libc.inotify_init1(0)\n"
         f"    watch = libc.inotify_add_watch(fd, {str(reachable).encode()!r}, 0x100)\n"
         "    return min(fd, watch)\n")
    opened = "def f(x: int):\n    return x >= 0\n"  # passes iff both calls worked
    assert verifier.verify(Pair(opened, g)).verdict == "fail"
    healthy(verifier)
