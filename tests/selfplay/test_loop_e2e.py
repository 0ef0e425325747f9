"""End to end on the tiny model: two rounds, killed with SIGKILL mid-round, resumed; the store
must match an uninterrupted run with the same seed."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfplay.cli import main
from selfplay.loop import run, status

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# Columns that measure time, not content: they may differ between two identical runs.
TIMING = {"seconds"}


def small_run(path: Path) -> Path:
    assert main(["init", str(path), "--preset", "tiny", "--seed", "3"]) == 0
    return path


def dump(run_dir: Path) -> dict:
    db = sqlite3.connect(run_dir / "store.sqlite")
    out = {}
    for table, order in (("puzzles", "hash"), ("solutions", "puzzle_id, hash"),
                         ("attempts", "round, stage, puzzle_hash, attempt"),
                         ("proposals", "round, prompt, sample"),
                         ("train_examples", "round, position"), ("stages", "round, stage"),
                         ("metrics", "round, name")):
        cur = db.execute(f"SELECT * FROM {table} ORDER BY {order}")
        cols = [c[0] for c in cur.description]
        rows = []
        for row in cur:
            item = {c: v for c, v in zip(cols, row) if c not in TIMING | {"id"}}
            for key in ("summary", "value"):
                if key in item:
                    item[key] = _strip_timing(json.loads(item[key]))
            rows.append(item)
        out[table] = rows
    return out


def _strip_timing(value):
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if k not in TIMING}
    return value


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, tiny_model):
    reference = small_run(tmp_path / "reference")
    result = run(reference)
    assert result["rounds_done"] == 2
    assert [r["round"] for r in result["rounds"]] == [0, 1, 2]
    funnel = result["rounds"][1]["funnel"]
    assert set(funnel) == {"proposed", "valid", "novel", "solved", "selected"}
    assert funnel["proposed"] > 0
    assert all(isinstance(r["funnel"]["novel"], int) for r in result["rounds"])
    assert all("pass_at_k" in r for r in result["rounds"])

    killed = small_run(tmp_path / "killed")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "selfplay", "run", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill it once round 1 has verified its attempts, i.e. in the middle of the round.
    deadline = time.monotonic() + 300
    store = killed / "store.sqlite"
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                done = sqlite3.connect(store).execute(
                    "SELECT COUNT(*) FROM stages WHERE round=1 AND stage='solve'").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = status(killed)
    assert partial["rounds_done"] == 0

    assert main(["resume", str(killed)]) == 0
    assert dump(killed) == dump(reference)
