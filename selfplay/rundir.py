"""A run directory: its config, store, log, per-round outputs, and the guard on its settings.

    DIR/config.toml      every setting, documented (written by `selfplay init`)
    DIR/store.sqlite     puzzles, solutions, attempts, verdicts, provenance, stage marks
    DIR/run.json         the fingerprint of the settings that shape the data
    DIR/run.lock         held (flock) by the one process running the loop; says which one
    DIR/log.txt          what every stage did
    DIR/rounds/rN/       round N's adapter and training checkpoints
    DIR/cards/           data cards; DIR/report/ the HTML report
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shlex
import socket
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from puzzles.errors import SelfplayError
from puzzles.records import atomic_write
from selfplay.config import (FREE_TO_CHANGE, RunConfig, config_toml, fingerprint,
                             fingerprint_fields, load_config, preset)
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
    def lock_file(self) -> Path:
        return self.path / "run.lock"

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


class RunLock:
    """The run directory held by this process alone, for as long as the `with` block (or the
    process) lasts: an exclusive `flock` on DIR/run.lock, which also holds the holder's pid,
    host and command for the next one to name. The kernel drops the lock when the process
    ends, however it ends (kill -9 included), so there is never a stale lock to clear. The
    file is opened close-on-exec: processes the run starts (the sandbox server, Ray, training
    launchers) do not inherit it. Only commands that write take it; `status`, `report` and
    `export` read while a run goes."""

    def __init__(self, run: RunDir):
        self.run = run
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            fd = os.open(self.run.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise SelfplayError(f"cannot lock {self.run.path}: {self.run.lock_file}: "
                                f"{e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise SelfplayError(
                f"{self.run.path} is in use by another selfplay process "
                f"({holder or 'one that has not written its pid yet'}): wait for it to end, or "
                "stop it; two processes on one run directory would both write it") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}: {_command()}\n"
                  .encode("utf-8", "replace"), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no holder to name once it is free
            os.close(self._fd)  # releases the lock
            self._fd = None


def _command(limit: int = 300) -> str:
    """This process's command line on one line (as typed, where /proc has it), shortened."""
    try:
        with open("/proc/self/cmdline", "rb") as fh:
            args = [a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        args = sys.argv
    text = " ".join(shlex.join(args).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_preset(run: RunDir, name: str | None, model: str | None = None) -> None:
    """For `selfplay run DIR --preset NAME [--model M]` where DIR has its config already: the
    flags only create a config, so refuse them unless they ask for the one DIR has (settings
    free to change on resume aside)."""
    config = run.load_config()
    if name:
        wanted = fingerprint_fields(preset(name, model=model))
    else:
        wanted = {**fingerprint_fields(config), "model.name": model}
    have = fingerprint_fields(config)
    differ = [f"{k}: {have.get(k)!r} -> {wanted[k]!r}" for k in sorted(wanted)
              if have.get(k) != wanted[k]]
    if differ:
        flags = " ".join(f for f in (f"--preset {name}" if name else "",
                                     f"--model {model}" if model else "") if f)
        raise SelfplayError(
            f"{run.path} has a config already, which {flags} would change "
            f"({', '.join(differ[:4])}{', ...' if len(differ) > 4 else ''}): those flags only "
            f"create a config; edit {run.config_file}, or choose a new directory")


def extend_rounds(run: RunDir, rounds: int) -> None:
    """Set `rounds` in DIR/config.toml (`selfplay run --rounds N` past the planned rounds),
    leaving every other line as the user wrote it. `rounds` is free to change, so the run's
    fingerprint does not move."""
    text = run.config_file.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    first_table = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")),
                       len(lines))
    at = next((i for i in range(first_table) if re.match(r"\s*rounds\s*=", lines[i])), None)
    if at is None:
        lines.insert(0, f"rounds = {rounds}\n")  # keys before the first table are top level
    else:
        lines[at] = f"rounds = {rounds}\n"
    new = "".join(lines)
    try:
        ok = tomllib.loads(new) == {**tomllib.loads(text), "rounds": rounds}
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:  # a layout the line edit does not understand: leave the file alone
        raise SelfplayError(f"{run.config_file}: could not set rounds = {rounds} in it; set "
                            "it there yourself and run again")
    atomic_write(run.config_file, new)


def check_fingerprint(run: RunDir, config: RunConfig, *,
                      replaceable: Callable[[str], bool] | None = None) -> None:
    """Record the settings that shape the data on first use; refuse a changed config later.

    `replaceable(key)` says which settings may still change because nothing they shape is
    stored yet (the loop's answer before any stage has finished): a change to those alone
    records the new config instead of refusing it.
    """
    current = fingerprint_fields(config)
    record = {"fingerprint": fingerprint(config), "settings": current}
    if not run.state_file.exists():
        atomic_write(run.state_file, json.dumps(record, indent=1) + "\n")
        return
    saved = json.loads(run.state_file.read_text())
    if saved["fingerprint"] == fingerprint(config):
        return
    before = saved["settings"]
    # Only settings both versions know are compared: a setting added by a newer selfplay (or
    # dropped by it) is not a change the user made.
    changed = [k for k in sorted(set(before) & set(current)) if before[k] != current[k]]
    if replaceable is not None and all(replaceable(k) for k in changed):
        atomic_write(run.state_file, json.dumps(record, indent=1) + "\n")
        return
    changes = [f"{k}: {before[k]!r} -> {current[k]!r}" for k in changed
               if replaceable is None or not replaceable(k)]
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
