"""Where built and converted models live ($SELFPLAY_CACHE, else ~/.cache/selfplay), and how
an entry is published: built in a temporary directory, renamed into place, once across
processes. Below `training.models` and `training.tiny`, which both build entries."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

FINGERPRINT_FILE = "selfplay-fingerprint.txt"
"""The file a finished cache entry holds (its weights' fingerprint): its presence marks the
entry complete."""


def cache_dir() -> Path:
    """Where converted and built models live: $SELFPLAY_CACHE, else ~/.cache/selfplay."""
    root = os.environ.get("SELFPLAY_CACHE") or Path.home() / ".cache" / "selfplay"
    return Path(root)


def publish_dir(target: Path, write) -> Path:
    """Fill a fresh temporary directory with `write(tmp)`, then rename it to `target`.

    The rename is atomic, so two processes building the same model never see half a cache
    entry; the loser of a race discards its copy.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # Concurrent builders (parallel test runs, several loops) wait for the first instead of
    # all spending a minute of CPU on the same model.
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / FINGERPRINT_FILE).is_file():
            return target
        return _publish_locked(target, write)


def _publish_locked(target: Path, write) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a cache entry is as readable as its parent
        write(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / FINGERPRINT_FILE).is_file():
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
