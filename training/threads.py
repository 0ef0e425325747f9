"""How many CPU threads torch runs with: chosen per model, set around each piece of work."""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(threads: int):
    """Run with `threads` CPU threads, then restore the previous count (0 = leave as is)."""
    before = torch.get_num_threads()
    if threads and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def auto_threads(n_params: int, cpus: int = 0) -> int:
    """One thread for small models, else one per CPU this process may use (`cpus` of them
    when given, else its affinity's).

    Below ~30M parameters the matrices are too small to split: a second thread adds only
    synchronisation, and on a busy machine the threads spin against each other (measured on
    2 cores at load 10: tiny sampled 10x slower with 2 threads than with 1).
    """
    if n_params < 30_000_000:
        return 1
    return cpus or len(os.sched_getaffinity(0))
