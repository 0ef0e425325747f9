"""`executor.kind = "ray"`: propose, solve and eval sampled on Ray sampler actors with the real
tiny model store what a local run with the same seed stores, byte for byte; a chunk whose
actor dies is sampled again and written once, in chunk order. The Ray tests share one local
Ray (2 CPUs)."""

import dataclasses
import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from puzzles.errors import SelfplayError
from puzzles.store import Store
from selfplay.cli import main
from selfplay.compute import samplers
from selfplay.compute.executors import in_order
from selfplay.config import ExecutorConfig, RunConfig, config_toml, load_config
from selfplay.context import Resources, RoundContext
from selfplay.loop import run
from selfplay.rundir import RunDir
from selfplay.stages import solve
from test_loop_e2e import dump
from training.settings import ModelConfig, SamplingConfig

RAY = ExecutorConfig(kind="ray", chunk=8, actor_cpus=1, sampler_cpus=1)  # 2 actors of each
CHUNKS = 11
"""Chunks a round of `small_run` samples: eval 2 (round 0), propose 4, solve 3, eval 2."""


def small_run(path: Path, executor: ExecutorConfig) -> Path:
    """A tiny run cut down to seconds a round, with chunks of 4 samples: several chunks per
    stage, so that two actors sample at once and finish out of order."""
    assert main(["init", str(path), "--preset", "tiny", "--seed", "3"]) == 0
    c = load_config(path / "config.toml")
    c = dataclasses.replace(
        c, executor=executor, generation=dataclasses.replace(c.generation, batch_size=4),
        propose=dataclasses.replace(c.propose, prompts=8, per_prompt=2),
        solve=dataclasses.replace(c.solve, attempts=2, unsolved_train=4, solved_train=6),
        train=dataclasses.replace(c.train, steps=2, checkpoint_every=0),
        eval=dataclasses.replace(c.eval, max_problems=4, samples=2, k=(1, 2)))
    (path / "config.toml").write_text(config_toml(c))
    return path


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, tiny_model):
    path = small_run(tmp_path_factory.mktemp("local") / "run", ExecutorConfig())
    run(path, rounds=1)
    return path


@pytest.mark.slow
def test_a_round_sampled_on_ray_stores_what_a_local_round_does(ray_runtime, local_run,
                                                               tmp_path, monkeypatch):
    sampled_on_ray = []
    ray_map = samplers.RaySamplers.map

    def counting_map(self, adapter, fingerprint, jobs):
        sampled_on_ray.append((adapter, len(jobs)))
        return ray_map(self, adapter, fingerprint, jobs)
    monkeypatch.setattr(samplers.RaySamplers, "map", counting_map)

    ray_run = small_run(tmp_path / "ray", RAY)
    run(ray_run, rounds=1)
    # Every table: proposals and attempts (their completions, from the real model, and their
    # provenance), then all that follows from them, down to pass@k.
    local, remote = dump(local_run), dump(ray_run)
    assert remote == local
    assert len(local["proposals"]) == 16 and len(local["attempts"]) == 28
    assert len({a["completion"] for a in local["attempts"]}) > 10  # sampled, not constant
    # Every chunk went to Ray: round 0's eval on the base model, round 1's on its adapter.
    assert sum(n for _, n in sampled_on_ray) == CHUNKS
    assert sampled_on_ray[0][0] == "" and sampled_on_ray[-1][0].endswith("r1/train")
    assert ray_runtime.is_initialized()  # the run left alone the Ray it did not start


def _solve_round_2(run_dir: Path, executor: ExecutorConfig, monkeypatch) -> list:
    """The solve stage of round 2 (on round 1's adapter) on `run_dir`: the attempt keys in
    the order they were written, repeats included."""
    config = dataclasses.replace(load_config(run_dir / "config.toml"), executor=executor)
    resources = Resources(config)
    written = []
    try:
        with Store(run_dir / "store.sqlite") as store:
            add_attempts = store.add_attempts

            def recording(rows):
                rows = list(rows)
                written.extend((a.puzzle_hash, a.attempt, a.completion) for a in rows)
                return add_attempts(rows)
            monkeypatch.setattr(store, "add_attempts", recording)
            solve.run(RoundContext(2, config, store, RunDir(run_dir), resources,
                                   logging.getLogger("test")))
    finally:
        resources.close()
    return written


@pytest.mark.slow
def test_a_chunk_whose_sampler_actor_dies_is_sampled_again_and_written_once(
        ray_runtime, local_run, tmp_path, monkeypatch):
    here, there = tmp_path / "here", tmp_path / "there"
    shutil.copytree(local_run, here)
    shutil.copytree(local_run, there)
    local = _solve_round_2(here, ExecutorConfig(), monkeypatch)

    marker, driver = tmp_path / "died", os.getpid()
    real = samplers.sample_chunk

    def dies_on_the_first_chunk(loaded, job):
        # Runs in an actor: the first chunk to get here kills its actor's process outright,
        # as an OOM kill would, with the chunk queued behind it on the same actor.
        assert os.getpid() != driver
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return real(loaded, job)
        os._exit(1)

    monkeypatch.setattr(samplers, "sample_chunk", dies_on_the_first_chunk)
    remote = _solve_round_2(there, RAY, monkeypatch)
    assert marker.exists()  # an actor did die (and its restart loaded round 1's adapter)
    assert len(local) == 12 and len(set(local)) == 12
    assert remote == local  # the same rows, each once, in the same order


def test_an_actor_whose_model_is_not_the_drivers_refuses_without_retrying(ray_runtime,
                                                                           tiny_model):
    pool = samplers.RaySamplers(dataclasses.replace(RAY, sampler_actors=1), ModelConfig("tiny"))
    job = samplers.SampleJob(["def f("], 1, SamplingConfig(max_new_tokens=4), seed=0)
    try:
        with pytest.raises(SelfplayError, match="sample chunk 0 on Ray: the model on Ray node "
                                                ".* is not the driver's"):
            list(pool.map("", "another fingerprint", [job]))
        # The same actor samples for the right fingerprint: it refused, it did not die.
        assert list(pool.sampler(None).map([job])) == [(0, samplers.sample_chunk(tiny_model,
                                                                                 job))]
    finally:
        pool.close()


def test_results_are_yielded_in_chunk_order():
    assert list(in_order(iter([(2, "c"), (0, "a"), (3, "d"), (1, "b")]))) == \
        [(0, "a"), (1, "b"), (2, "c"), (3, "d")]


@pytest.mark.parametrize("setting, error", [
    ("sampler_cpus = 0", "executor.sampler_cpus must be >= 1, not 0"),
    ("sampler_actors = -1", "executor.sampler_actors must be >= 0, not -1"),
    ("sampler_gpus = -1", "executor.sampler_gpus must be >= 0, not -1.0")])
def test_a_bad_sampler_setting_is_refused_by_name(tmp_path, setting, error):
    path = tmp_path / "config.toml"
    path.write_text(f'[executor]\nkind = "ray"\n{setting}\n')
    with pytest.raises(SelfplayError, match=error):
        load_config(path)


def test_a_sampler_actor_runs_where_it_reserved():
    cpu, gpu = ExecutorConfig(kind="ray"), ExecutorConfig(kind="ray", sampler_gpus=1)
    # `auto` must not take a GPU of the node the actor did not reserve, nor miss the one it did.
    assert samplers.actor_model(ModelConfig(device="auto"), cpu).device == "cpu"
    assert samplers.actor_model(ModelConfig(device="auto"), gpu).device == "cuda"
    assert samplers.actor_model(ModelConfig(device="cuda:3"), gpu).device == "cuda"
    with pytest.raises(SelfplayError, match="reserve no GPU .*sampler_gpus = 0"):
        samplers.actor_model(ModelConfig(device="cuda"), cpu)
    with pytest.raises(SelfplayError, match="model.device = 'cpu' does not use"):
        samplers.actor_model(ModelConfig(device="cpu"), gpu)


@pytest.mark.parametrize("executor", [ExecutorConfig(),
                                      ExecutorConfig(kind="ray", sampling=False)])
def test_a_run_that_does_not_sample_on_ray_samples_here(executor):
    if executor.kind == "ray":
        pytest.importorskip("ray")
    resources = Resources(RunConfig(executor=executor))
    loaded = SimpleNamespace(name="m", fingerprint="fp", tokenizer=None)
    resources.model = lambda adapter: loaded
    sampler = resources.sampler(None)
    assert isinstance(sampler, samplers.LocalSampler) and sampler.loaded is loaded
    assert samplers.as_sampler(loaded).loaded is loaded  # a loaded model is sampled here
    assert samplers.as_sampler(sampler) is sampler
