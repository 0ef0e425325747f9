"""`selfplay train` on two processes (gloo on CPU) trains the same adapter as one process does
with the same global batch: users who launch it on several devices get the run they asked for,
not each process training alone on part of the data."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selfplay.cli import main
from selfplay.config import config_toml, load_config
from selfplay.loop import run
from tests.selfplay.test_round_scripted import scripted, scripted_sample  # noqa: F401
from tests.training.test_trainer import PAIRS
from training.job import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

ARGS = ["--model", "tiny", "--steps", "4", "--micro-batch", "2", "--block-size", "128",
        "--lr", "5e-3", "--rank", "4", "--alpha", "8", "--dropout", "0", "--seed", "3",
        "--checkpoint-every", "0", "--json"]


def _train(command: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command + ["--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_processes_train_the_single_process_adapter(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"puzzle": p, "solution": s}) + "\n" for p, s in PAIRS))
    one = _train([sys.executable, "-m", "selfplay", "train", str(pairs), *ARGS,
                  "--grad-accum", "2"], tmp_path / "one")
    # accelerate's --cpu flag alone starts one process (several need mpirun); its torchrun
    # launcher starts two, and the trainer joins them with gloo because the base is on the CPU.
    two = _train([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                  "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                  "--dynamo_backend", "no", "--main_process_port", str(free_port()),
                  "-m", "selfplay", "train", str(pairs), *ARGS, "--grad-accum", "1"],
                 tmp_path / "two")
    # Same global batch (2 blocks x 2 micro batches, or 2 blocks x 2 processes): same data seen.
    assert two["tokens"] == one["tokens"] and two["steps"] == one["steps"] == 4
    assert two["first_loss"] == pytest.approx(one["first_loss"], rel=1e-5)
    a = load_file(str(tmp_path / "one" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "two" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    assert any(a[key].abs().max() > 1e-3 for key in a if "lora_B" in key)  # it did train


def _round_with(path: Path, processes: int, grad_accum: int) -> Path:
    scripted_sample.proposed = []  # both runs see the same scripted proposals
    assert main(["init", str(path), "--preset", "tiny", "--seed", "5"]) == 0
    config = load_config(path / "config.toml")
    config = dataclasses.replace(
        config, lora=dataclasses.replace(config.lora, dropout=0.0),
        train=dataclasses.replace(config.train, processes=processes, grad_accum=grad_accum,
                                  steps=3, checkpoint_every=0))
    (path / "config.toml").write_text(config_toml(config))
    assert run(path, rounds=1)["rounds"][1]["complete"]
    return path / "rounds" / "r1" / "train"


def test_the_loop_trains_a_round_on_two_processes(tmp_path, scripted, tiny_model):
    """`train.processes = 2`: the train stage launches two processes, and the round's adapter is
    the one a single process trains with the same global batch."""
    one = _round_with(tmp_path / "one", processes=1, grad_accum=2)
    two = _round_with(tmp_path / "two", processes=2, grad_accum=1)
    assert (two / "job.json").is_file() and not (one / "job.json").exists()
    a = load_file(str(one / "adapter_model.safetensors"))
    b = load_file(str(two / "adapter_model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    summary = json.loads((two / "summary.json").read_text())
    assert summary["inputs"]["processes"] == 2 and summary["summary"]["steps"] == 3
