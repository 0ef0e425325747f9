"""Helpers the sampling stages share: chunking work so a crash loses at most one chunk."""

from __future__ import annotations

from dataclasses import asdict

from selfplay.context import RoundContext
from training.settings import SamplingConfig


def chunks(n_items: int, size: int) -> list[range]:
    size = max(1, size)
    return [range(i, min(i + size, n_items)) for i in range(0, n_items, size)]


def sampling_config(ctx: RoundContext, stage_config):
    """The sampler's settings for a stage: its own temperature and length, shared batching."""
    return SamplingConfig(temperature=stage_config.temperature, top_p=stage_config.top_p,
                          max_new_tokens=stage_config.max_new_tokens,
                          batch_size=ctx.config.generation.batch_size,
                          backend=ctx.config.generation.backend,
                          dtype=ctx.config.generation.dtype)


def model_provenance(ctx: RoundContext, loaded, sampling) -> dict:
    """Which model, adapter and sampling settings made a stored item."""
    return {"model": loaded.name, "model_fingerprint": loaded.fingerprint,
            "adapter_round": ctx.round - 1, "sampling": asdict(sampling)}


def progress_bar(ctx: RoundContext, total: int, desc: str):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"round {ctx.round} {desc}", disable=not ctx.progress,
                unit="it", leave=False)
