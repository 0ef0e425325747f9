"""Helpers the sampling stages and evaluation share: chunking work so a crash loses at most one
chunk, a stage's sampler settings, provenance, and the progress they show.

`ctx` below is a `selfplay.context.RoundContext` (which sits above this module; these read only
its `round`, `config`, `log` and `progress`)."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict

from training.settings import SamplingConfig


def chunks(n_items: int, size: int) -> list[range]:
    size = max(1, size)
    return [range(i, min(i + size, n_items)) for i in range(0, n_items, size)]


def sampling_config(ctx, stage_config):
    """The sampler's settings for a stage: its own temperature and length, shared batching."""
    return SamplingConfig(temperature=stage_config.temperature, top_p=stage_config.top_p,
                          max_new_tokens=stage_config.max_new_tokens,
                          batch_size=ctx.config.generation.batch_size,
                          backend=ctx.config.generation.backend,
                          dtype=ctx.config.generation.dtype)


def model_provenance(ctx, loaded, sampling) -> dict:
    """Which model, adapter and sampling settings made a stored item."""
    return {"model": loaded.name, "model_fingerprint": loaded.fingerprint,
            "adapter_round": ctx.round - 1, "sampling": asdict(sampling)}


def progress_bar(ctx, total: int, desc: str):
    """A tqdm bar on a terminal (`ctx.progress`); otherwise a `LogProgress`, so that a run whose
    output goes to a file (nohup, a batch job) still says how far a long stage has got."""
    desc = f"round {ctx.round} {desc}"
    if not ctx.progress:
        return LogProgress(total, desc, log=ctx.log)
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="it", leave=False)


def log_steps(ctx, desc: str, on_step=None):
    """`on_step` for training (`training.trainer.StepInfo`), also writing `LogProgress` lines
    when there is no terminal (on one, the trainer shows its own bar)."""
    if ctx.progress:
        return on_step
    bar = LogProgress(0, f"round {ctx.round} {desc}", log=ctx.log)

    def step(info) -> None:
        bar.total = info.total
        bar.update(info.step - bar.n)
        if on_step is not None:
            on_step(info)
    return step


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class LogProgress:
    """tqdm's `update`/`close` as a plain line (done/total, rate, ETA) on stderr and in the
    run's log, at most every `every` seconds: nothing for a stage shorter than that, so short
    work stays quiet, and no carriage returns to garble a log file."""

    def __init__(self, total: int, desc: str, *, every: float = 30.0, log=None, stream=None,
                 clock=time.monotonic):
        self.total, self.desc, self.every, self.log = total, desc, every, log
        self.stream, self.clock = stream, clock
        self.n = 0
        self.started = self.last = clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self._write(self.line(now))

    def line(self, now: float) -> str:
        elapsed = now - self.started
        rate = self.n / elapsed if elapsed > 0 else 0.0
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        eta = (f", ETA {_duration((self.total - self.n) / rate)}" if rate and self.total
               else "")
        return (f"{self.desc}: {self.n}/{self.total}{share} after {_duration(elapsed)}, "
                f"{rate:.3g}/s{eta}")

    def _write(self, line: str) -> None:
        print(line, file=self.stream or sys.stderr, flush=True)
        if self.log is not None:
            self.log.info("%s", line)

    def close(self) -> None:
        pass

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
