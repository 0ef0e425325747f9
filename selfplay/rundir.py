"""A run directory: its config, store, log, per-round outputs, and the guard on its settings.

    DIR/config.toml      every setting, documented (written by `selfplay init`)
    DIR/store.sqlite     puzzles, solutions, attempts, verdicts, provenance, stage marks
    DIR/run.json         the fingerprint of the settings that shape the data
    DIR/log.txt          what every stage did
    DIR/rounds/rN/       round N's adapter and training checkpoints
    DIR/cards/           data cards; DIR/report/ the HTML report
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from puzzles.errors import SelfplayError
from puzzles.records import atomic_write
from selfplay.config import (FREE_TO_CHANGE, RunConfig, config_toml, fingerprint,
                             fingerprint_fields, load_config)
from training.lora import run_adapter


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.toml"

    @property
    def store_file(self) -> Path:
        return self.path / "store.sqlite"

    @property
    def log_file(self) -> Path:
        return self.path / "log.txt"

    @property
    def state_file(self) -> Path:
        return self.path / "run.json"

    @property
    def cards_dir(self) -> Path:
        return self.path / "cards"

    def round_dir(self, round: int) -> Path:
        return self.path / "rounds" / f"r{round}"

    def adapter(self, round: int) -> Path | None:
        """Round `round`'s trained adapter, None for round 0 (the base model)."""
        if round <= 0:
            return None
        return run_adapter(self.round_dir(round) / "train")

    def load_config(self) -> RunConfig:
        if not self.path.is_dir():
            raise SelfplayError(f"no run at {self.path}: create it with `selfplay init "
                                f"{self.path}`")
        return load_config(self.config_file)


def init_run(path: str | Path, config: RunConfig, *, force: bool = False) -> RunDir:
    """Create DIR with a documented config.toml. Refuses to touch an existing run."""
    run = RunDir(Path(path))
    if run.config_file.exists() and not force:
        raise SelfplayError(f"{run.config_file} already exists: edit it, or choose a new "
                            "directory")
    if run.store_file.exists():
        raise SelfplayError(f"{run.path} already holds a run's store; choose a new directory")
    run.path.mkdir(parents=True, exist_ok=True)
    atomic_write(run.config_file, config_toml(config))
    return run


def check_fingerprint(run: RunDir, config: RunConfig) -> None:
    """Record the settings that shape the data on first use; refuse a changed config later."""
    current = fingerprint_fields(config)
    if not run.state_file.exists():
        atomic_write(run.state_file, json.dumps(
            {"fingerprint": fingerprint(config), "settings": current}, indent=1) + "\n")
        return
    saved = json.loads(run.state_file.read_text())
    if saved["fingerprint"] == fingerprint(config):
        return
    before = saved["settings"]
    # Only settings both versions know are compared: a setting added by a newer selfplay (or
    # dropped by it) is not a change the user made.
    changes = [f"{k}: {before[k]!r} -> {current[k]!r}"
               for k in sorted(set(before) & set(current)) if before[k] != current[k]]
    if not changes:
        return
    raise SelfplayError(
        f"{run.config_file} changed since this run started ({'; '.join(changes)}). These "
        "settings shape the data, so continuing would not reproduce the run: put them back, or "
        "start a new run directory (only " + ", ".join(FREE_TO_CHANGE) + " may change).")


def run_logger(run: RunDir) -> logging.Logger:
    """A logger writing to DIR/log.txt, private to this run (no handlers left behind)."""
    logger = logging.getLogger(f"selfplay.run.{run.path.resolve()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        handler = logging.FileHandler(run.log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
    return logger


def close_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
