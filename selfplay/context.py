"""What every stage of a round is handed: the round number, config, store, run dir and the
expensive shared resources (model, verifier), loaded once and only when a stage needs them."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from puzzles.store import Store
from sandbox import Verifier
from selfplay.config import RunConfig
from selfplay.reports.tracking import RunTracker
from selfplay.rundir import RunDir


class Resources:
    """The model (base + one adapter at a time), the verifier pool, the verify stage's
    executor and the sampling stages' sampler, loaded lazily."""

    def __init__(self, config: RunConfig):
        self.config = config
        self._model = None
        self._model_adapter: Path | None = None
        self._verifier = None
        self._executor = None
        self._samplers = None
        self._ray_started = False
        if config.executor.kind == "ray":
            from selfplay.compute.executors import require_ray
            require_ray()  # at the start of a run, not at its verify stage hours later

    def model(self, adapter: Path | None):
        """The run's model with `adapter` applied (None: the base model)."""
        if self._model is not None and self._model_adapter == adapter:
            return self._model
        from training.models import load_model
        self.drop_model()
        self._model = load_model(self.config.model, adapter=adapter)
        self._model_adapter = adapter
        return self._model

    def drop_model(self) -> None:
        """Free the model's memory (for training), here and on any sampler actors."""
        self._model = None
        self._model_adapter = None
        self._close_samplers()

    def verifier(self):
        if self._verifier is None:
            self._verifier = Verifier(self.config.verifier)
        return self._verifier

    def sampler(self, adapter: Path | None):
        """What the sampling stages sample with, from the run's model with `adapter`: the model
        above, here, or Ray sampler actors (`executor.kind = "ray"` with `executor.sampling`)."""
        from selfplay.compute import samplers
        executor = self.config.executor
        if executor.kind != "ray" or not executor.sampling:
            return samplers.LocalSampler(self.model(adapter))
        if self._samplers is None:
            # The verify actors and the sampler actors take turns, so that either may fill
            # the cluster: the ones not stopped would hold CPUs the others wait for forever.
            self._close_executor()
            self._connect_ray()
            self._samplers = samplers.RaySamplers(executor, self.config.model)
        return self._samplers.sampler(adapter)

    def verify_executor(self):
        """Where the verify stage's checks run (`executor.kind`): the verifier above, or Ray
        actors with verifiers of their own (Ray connected, or started, on first use)."""
        if self._executor is None:
            from selfplay.compute import executors
            if self.config.executor.kind == "ray":
                self._close_samplers()  # their turn is over (see `sampler`)
                self._connect_ray()
                self._executor = executors.RayExecutor(self.config.executor,
                                                       self.config.verifier)
            else:
                self._executor = executors.LocalExecutor(self.verifier())
        return self._executor

    def _connect_ray(self) -> None:
        # Connected once for the whole run: the actor sets come and go, Ray stays.
        if not self._ray_started:
            from selfplay.compute.executors import connect
            self._ray_started = connect(self.config.executor.address)

    def _close_executor(self) -> None:
        if self._executor is not None:  # stops its actors (and their sandboxes)
            self._executor.close()
            self._executor = None

    def _close_samplers(self) -> None:
        if self._samplers is not None:
            self._samplers.close()
            self._samplers = None

    def close(self) -> None:
        self.drop_model()
        self._close_executor()
        if self._verifier is not None:
            self._verifier.close()
            self._verifier = None
        if self._ray_started:  # a Ray this run connected to or started
            import ray
            ray.shutdown()
            self._ray_started = False


@dataclass
class RoundContext:
    round: int
    config: RunConfig
    store: Store
    run: RunDir
    resources: Resources
    log: logging.Logger
    progress: bool = False
    tracker: RunTracker | None = None
    """The run's experiment trackers (`[track]`), None when it asks for none."""

    def seed(self, stage: str, *parts: object) -> int:
        """A seed for one stage (and chunk) of this round, derived from the run's seed, so a
        resumed run draws exactly what an uninterrupted one would."""
        text = ":".join(str(p) for p in (self.config.seed, self.round, stage, *parts))
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")

    @property
    def sampling_adapter(self) -> Path | None:
        """The adapter this round samples from: the previous round's."""
        return self.run.adapter(self.round - 1)
