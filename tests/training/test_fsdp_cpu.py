"""FSDP on the CPU: accelerate (1.16) does not shard there (an FSDP launch of a CPU base becomes
plain data parallelism over gloo, each process holding the whole model, with no word said),
so the trainer refuses sharding it cannot give instead of training unsharded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from puzzles.errors import SelfplayError
from tests.training.test_trainer import PAIRS
from training.job import free_port
from training.settings import TrainConfig
from training.trainer import train_adapter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_accelerate():
    # accelerate keeps one state per process, fixed by the first Accelerator built in it.
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_fsdp_asked_for_on_the_cpu_is_refused(tiny_model, tmp_path, monkeypatch,
                                              fresh_accelerate):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(SelfplayError, match="accelerate does not shard a model on the CPU"):
        train_adapter(tiny_model, PAIRS, tmp_path / "out", TrainConfig(steps=1))
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


@pytest.mark.slow
def test_an_fsdp_launch_on_two_cpu_processes_stops_saying_why(tmp_path, tiny_model):
    # What a user runs: accelerate's FSDP settings on 2 gloo processes. Without the check this
    # trains (DistributedType.MULTI_CPU, the model wrapped in DDP, nothing sharded).
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"puzzle": p, "solution": s}) + "\n" for p, s in PAIRS))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(free_port()), "--use_fsdp", "--fsdp_version", "2",
         "-m", "selfplay", "train", str(pairs), "--model", "tiny", "--steps", "1",
         "--block-size", "128", "--out", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "accelerate does not shard a model on the CPU" in done.stderr
