"""Where the sampling stages (propose, solve, eval) sample: here, with the run's loaded model
(`LocalSampler`), or on Ray actors that each load the model themselves (`RaySamplers`, when
`executor.kind = "ray"` and `executor.sampling`).

A stage hands `map` its chunks as `SampleJob`s and gets `(chunk index, completions)` back in
chunk order, whichever actor sampled which. A chunk's completions depend on its job alone (the
chunk's seed, each sample's generator seeded from it, its prompt and its index; the same model
and thread count), so the stage writes the rows a local run writes, in the same order. Only the
stage, in the driver, writes to the store; a chunk whose actor died is sampled again, and since
a chunk comes back whole or not at all, none is written twice or in part.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from puzzles.errors import SelfplayError
from selfplay.compute.executors import IN_FLIGHT, connect, fan_out, in_order
from training.settings import ModelConfig, SamplingConfig


@dataclass(frozen=True)
class SampleJob:
    """One chunk of a stage's sampling: `n` completions for each prompt."""

    prompts: list[str]
    n: int
    sampling: SamplingConfig
    seed: int
    """The chunk's seed (`ctx.seed(stage, chunk)`), whoever samples it."""


def sample_chunk(loaded, job: SampleJob) -> list[list[str]]:
    """A chunk's completions, in prompt order: what runs here or in a sampler actor."""
    from training import sampling  # looked up now: tests swap the sampler for a scripted one
    return sampling.sample(loaded, job.prompts, job.n, job.sampling, seed=job.seed)


class LocalSampler:
    """The chunks sampled here with `loaded` (a LoadedModel), each only when the stage asks for
    the next: sample a chunk, write it, sample the next, as before Ray existed."""

    def __init__(self, loaded):
        self.loaded = loaded

    # What a stage reads of the model: provenance, and the tokenizer that sizes prompts.
    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def fingerprint(self) -> str:
        return self.loaded.fingerprint

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    def map(self, jobs: Sequence[SampleJob]) -> Iterator[tuple[int, list[list[str]]]]:
        for i, job in enumerate(jobs):
            yield i, sample_chunk(self.loaded, job)


class SampleActor:
    """What one Ray sampler actor holds: the run's model with one adapter at a time, loaded
    when the first chunk for that adapter comes (again after a restart). Made a Ray actor class
    by `RaySamplers`, so that importing this module does not need Ray."""

    def __init__(self, model: ModelConfig, cpus: int):
        self.model = model
        self.cpus = cpus
        self.loaded = None
        self.adapter = ""

    def run(self, fn, adapter: str, fingerprint: str, job: SampleJob):
        if self.loaded is None or self.adapter != adapter:
            from training.models import load_model
            self.loaded = None  # one model at a time: the last one goes before the next loads
            # `cpus`: with model.threads = 0, as many torch threads as the driver would take
            # on as many cores (1 for a small model), not one per core of the node.
            loaded = load_model(self.model, adapter=adapter or None, cpus=self.cpus)
            if loaded.fingerprint != fingerprint:
                raise SelfplayError(
                    f"the model on Ray node {socket.gethostname()} is not the driver's (its "
                    f"fingerprint {loaded.fingerprint}, the driver's {fingerprint}): another "
                    f"build of {self.model.name!r} or other adapter files at {adapter!r}")
            self.loaded, self.adapter = loaded, adapter
        return fn(self.loaded, job)


def actor_model(model: ModelConfig, executor) -> ModelConfig:
    """The model settings a sampler actor loads with: on the GPU share it reserved
    (`executor.sampler_gpus`, which Ray shows it as cuda:0...), else on CPU."""
    if not executor.sampler_gpus:
        if model.device.startswith("cuda"):
            raise SelfplayError(
                f"model.device = {model.device!r}, but sampler actors reserve no GPU "
                f"(executor.sampler_gpus = 0): set it (1: one actor per GPU), or "
                f"executor.sampling = false to sample in this process")
        # "auto" on a GPU node would take a GPU the actor did not reserve.
        return dataclasses.replace(model, device="cpu")
    if model.device == "cpu":
        raise SelfplayError(f"executor.sampler_gpus = {executor.sampler_gpus} reserves GPUs "
                            f"that model.device = 'cpu' does not use: set it to 0")
    return dataclasses.replace(model, device="cuda")


class RaySamplers:
    """Ray actors that sample (`executor.sampler_actors`, `sampler_cpus` and `sampler_gpus`
    each), every one loading the run's model and the adapter asked for itself."""

    def __init__(self, config, model: ModelConfig):
        import ray
        self.config = config
        self.model = actor_model(model, config)
        self._started = connect(config.address)
        self._actors: list = []
        self._identity: tuple = (None, None)  # (adapter, its ModelIdentity)
        try:
            n = config.sampler_actors or self._fill(ray.cluster_resources())
            # max_restarts=-1: a dead actor comes back empty and loads the model again on its
            # next chunk; how often a chunk may be retried is the driver's (max_retries).
            actor_class = ray.remote(SampleActor).options(
                num_cpus=config.sampler_cpus, num_gpus=config.sampler_gpus, max_restarts=-1)
            self._actors = [actor_class.remote(self.model, config.sampler_cpus)
                            for _ in range(n)]
        except BaseException:
            self.close()
            raise

    def _fill(self, resources: dict) -> int:
        """As many actors as the cluster holds at their CPUs (and GPUs) each."""
        n = int(resources.get("CPU", 1) // self.config.sampler_cpus)
        if self.config.sampler_gpus:
            gpus = resources.get("GPU", 0)
            if not gpus:
                raise SelfplayError(f"executor.sampler_gpus = {self.config.sampler_gpus}, but "
                                    f"the Ray cluster has no GPU")
            n = min(n, int(gpus // self.config.sampler_gpus))
        return max(1, n)

    def sampler(self, adapter: Path | None) -> RaySampler:
        """The actors bound to `adapter` (None: the base model), with what the driver needs
        of the model: its tokenizer and fingerprint, read here without the weights."""
        from training.models import model_identity
        key = str(adapter) if adapter else ""
        if self._identity[0] != key:
            self._identity = (key, model_identity(self.model, adapter=key or None))
        identity = self._identity[1]
        return RaySampler(self, key, identity.name, identity.fingerprint, identity.tokenizer)

    def map(self, adapter: str, fingerprint: str, jobs: Sequence[SampleJob]) -> Iterator:
        fn = sample_chunk  # looked up now, sent to the actors with every chunk
        # The window bounds what waits behind a slow or retried chunk: rows reach the store in
        # chunk order, and a crash loses at most the chunks in flight or held back.
        results = fan_out(
            self._actors, lambda actor, i: actor.run.remote(fn, adapter, fingerprint, jobs[i]),
            len(jobs), max_retries=self.config.max_retries, what="sample",
            window=2 * IN_FLIGHT * len(self._actors), restart_wait=self.config.restart_wait)
        return in_order(results)

    def close(self) -> None:
        """Stop the actors (their models go with them), then Ray if this pool started it."""
        import ray
        actors, self._actors = self._actors, []
        if actors and ray.is_initialized():
            for a in actors:
                ray.kill(a, no_restart=True)
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


@dataclass(frozen=True)
class RaySampler:
    """The Ray sampler actors bound to one adapter: what a stage samples with on Ray."""

    pool: RaySamplers
    adapter: str
    name: str
    fingerprint: str
    """The driver's `training.models.model_identity`; every actor's model must have it."""
    tokenizer: object

    def map(self, jobs: Sequence[SampleJob]) -> Iterator[tuple[int, list[list[str]]]]:
        return self.pool.map(self.adapter, self.fingerprint, jobs)


def as_sampler(model) -> LocalSampler | RaySampler:
    """A sampler as it is; a loaded model (or a stand-in with its name, fingerprint and
    tokenizer) as the `LocalSampler` that samples it here."""
    return model if isinstance(model, (LocalSampler, RaySampler)) else LocalSampler(model)
