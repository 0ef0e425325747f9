"""One process at a time runs a run directory: a second `selfplay run` or `resume` on it stops
at once, naming the first; the kernel frees the lock however the first ends (kill -9 too), and
read-only commands never wait for it."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from puzzles.errors import SelfplayError
from selfplay import loop
from selfplay.cli import main
from selfplay.config import preset
from selfplay.rundir import RunDir, RunLock, init_run

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TIMEOUT = 60  # seconds a child may take to start under load: a bound, not a measurement

HOLD = ("import sys\n"
        "from selfplay.rundir import RunDir, RunLock\n"
        "from pathlib import Path\n"
        "with RunLock(RunDir(Path(sys.argv[1]))):\n"
        "    print('locked', flush=True)\n"
        "    sys.stdin.read()\n")


def _holder(run_dir: Path) -> subprocess.Popen:
    """A process holding `run_dir`'s lock until its stdin closes (or it is killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], cwd=ROOT, env=ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    return proc


def _selfplay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selfplay", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return init_run(tmp_path / "run", preset("tiny")).path


def test_a_second_run_or_resume_stops_at_once_naming_the_first(run_dir):
    (run_dir / "store.sqlite").touch()  # so that `resume` has something to resume
    holder = _holder(run_dir)
    try:
        for verb in ("run", "resume"):
            second = _selfplay(verb, str(run_dir))
            assert second.returncode == 1, second.stderr
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("selfplay: error: "), second.stderr
            assert f"{run_dir} is in use by another selfplay process (pid {holder.pid} " in \
                lines[0]
            assert "python" in lines[0] and "RunLock" in lines[0]  # the holder's command
            # It stopped before touching anything: no fingerprint, no log.
            assert not (run_dir / "run.json").exists() and not (run_dir / "log.txt").exists()
        # Read-only commands do not take the lock.
        status = _selfplay("status", str(run_dir))
        assert status.returncode == 0 and "rounds done: 0 of 2" in status.stdout, status.stderr
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_free_once_its_holder_is_killed(run_dir):
    holder = _holder(run_dir)
    with pytest.raises(SelfplayError, match=f"pid {holder.pid} "):
        with RunLock(RunDir(run_dir)):
            pass
    os.kill(holder.pid, signal.SIGKILL)  # no cleanup runs: the kernel drops the lock
    holder.wait()
    with RunLock(RunDir(run_dir)):
        assert f"pid {os.getpid()} " in (run_dir / "run.lock").read_text()
    assert (run_dir / "run.lock").read_text() == ""  # released: no holder to name


def test_run_holds_the_lock_while_its_stages_go_and_frees_it_after(run_dir, monkeypatch):
    seen = []

    def stages(run_dir_, config, progress, echo, *, started):
        # While the loop's stages would run, another process is refused.
        second = _selfplay("run", str(run_dir))
        seen.append((second.returncode, second.stderr))
        return {"rounds_done": 0, "rounds_planned": config.rounds, "rounds": []}

    monkeypatch.setattr(loop, "_run", stages)
    loop.run(run_dir)
    (rc, err), = seen
    assert rc == 1 and f"(pid {os.getpid()} " in err
    # The first has returned: the next run gets through (and in this process too).
    loop.run(run_dir)
    assert len(seen) == 2 and seen[1][0] == 1


def test_a_failed_run_frees_the_lock(run_dir, monkeypatch):
    def stages(*args, **kwargs):
        raise SelfplayError("a stage failed")

    monkeypatch.setattr(loop, "_run", stages)
    monkeypatch.setattr(loop, "validate_run", lambda config, **kw: None)
    with pytest.raises(SelfplayError, match="a stage failed"):
        loop.run(run_dir)
    with RunLock(RunDir(run_dir)):
        pass


def test_run_cli_refuses_while_another_process_runs(run_dir, capsys):
    holder = _holder(run_dir)
    try:
        assert main(["run", str(run_dir)]) == 1
        assert f"pid {holder.pid} " in capsys.readouterr().err
    finally:
        holder.stdin.close()
        holder.wait()
    assert holder.returncode == 0
