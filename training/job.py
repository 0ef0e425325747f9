"""A LoRA round trained by several processes: the loop writes a job (its typed settings as JSON
and its pairs as JSONL) and launches `python -m training.job JOB.json` under accelerate's
launcher (torchrun underneath), one process per GPU, or several sharing the CPU over gloo.

    python -m accelerate.commands.launch --multi_gpu --num_processes 2 -m training.job JOB.json

Every process loads the base, trains its share of each global batch, and rank 0 writes the
adapter and summary.json into the job's `out` directory, exactly as a single-process
`train_adapter` would (`launch_job` returns that summary). A killed launch resumes from the last
checkpoint when launched again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from puzzles.errors import SelfplayError
from training.lora import LoraSettings
from training.settings import ModelConfig, TrainConfig
from training.trainer import SUMMARY_FILE, TrainSummary

JOB_FILE = "job.json"
PAIRS_FILE = "job_pairs.jsonl"


def write_job(out_dir: str | Path, model: ModelConfig, config: TrainConfig, lora: LoraSettings,
              pairs: Sequence[tuple[str, str]] = (),
              preferences: Sequence[tuple[str, str, str]] = (),
              init_adapter: str | Path | None = None) -> Path:
    """Write the job into out_dir (created); returns the job file's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / PAIRS_FILE, "w") as fh:
        for row in (preferences if config.objective != "sft" else pairs):
            fh.write(json.dumps(list(row)) + "\n")
    job = {"model": dataclasses.asdict(model), "train": dataclasses.asdict(config),
           "lora": {**dataclasses.asdict(lora), "target_modules": list(lora.target_modules)},
           "init_adapter": str(init_adapter) if init_adapter is not None else None}
    path = out_dir / JOB_FILE
    path.write_text(json.dumps(job, indent=1) + "\n")
    return path


def launch_job(job_file: str | Path, processes: int, *, timeout: float | None = None
               ) -> TrainSummary:
    """Run the job on `processes` processes of this machine and return its summary."""
    job_file = Path(job_file)
    port = free_port()
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(port), "-m", "training.job", str(job_file)]
    # The launched processes import this project from wherever this one did.
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SelfplayError(f"training on {processes} processes failed (exit "
                            f"{done.returncode}):\n{done.stderr[-4000:]}")
    summary = job_file.parent / SUMMARY_FILE
    return TrainSummary.from_dict(json.loads(summary.read_text())["summary"])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for the launcher's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_model(model: ModelConfig) -> ModelConfig:
    """This process's share of the machine under a launcher (torchrun's WORLD_SIZE and
    LOCAL_RANK): its own GPU, or on a CPU machine its share of the cores; as is when alone."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return model
    if model.device in ("auto", "cuda") and torch.cuda.is_available():
        return dataclasses.replace(model, device=f"cuda:{os.environ.get('LOCAL_RANK', '0')}")
    if model.threads == 0:
        # The processes share this machine's cores: one thread pool each would oversubscribe.
        return dataclasses.replace(model, threads=max(1, (os.cpu_count() or 1) // world))
    return model


def run_job(job_file: str | Path) -> TrainSummary:
    """One process's part of the job (under a launcher: torchrun's RANK, WORLD_SIZE, ...)."""
    from training.models import load_model
    from training.trainer import train_adapter

    job_file = Path(job_file)
    job = json.loads(job_file.read_text())
    config = TrainConfig(**job["train"])
    lora = LoraSettings(**{**job["lora"], "target_modules": tuple(job["lora"]["target_modules"])})
    model = process_model(ModelConfig(**job["model"]))
    rows = [tuple(json.loads(line)) for line in
            (job_file.parent / PAIRS_FILE).read_text().splitlines() if line.strip()]
    sft = config.objective == "sft"
    return train_adapter(load_model(model), rows if sft else (), job_file.parent, config, lora,
                         init_adapter=job["init_adapter"], resume=True,
                         preferences=() if sft else rows)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m training.job JOB.json")
    run_job(sys.argv[1])
