"""`executor.kind = "ray"`: the verify stage fanned out to Ray actors ends with the same store as
the local verifier, a chunk whose actor dies is verified again and written once, and the
setting is checked where it is read. The Ray tests share one local Ray (2 CPUs)."""

import collections
import contextlib
import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import time

import pytest

from puzzles.errors import SelfplayError
from puzzles.seeds import load_seeds
from puzzles.store import Attempt, Store
from sandbox import VerifierConfig
from selfplay.cli import main
from selfplay.compute import executors
from selfplay.config import ExecutorConfig, RunConfig, config_toml, is_free_to_change, \
    load_config
from selfplay.context import Resources, RoundContext
from selfplay.loop import run
from selfplay.rundir import RunDir
from selfplay.stages import verify
from test_round_scripted import scripted, scripted_sample  # noqa: F401 (a fixture)

WRONG = ("    return None\n",  # wrong type
         "    if True:\n        raise ValueError('no')\n    return None\n",  # g raises
         "    return (\n",  # does not parse
         None)  # empty: rejected without running
LOOP = "    while True:\n        pass\n    return None\n"


@pytest.fixture(scope="module")
def pending(tmp_path_factory):
    """A store with round-1 solve attempts still pending: for each of 12 seed puzzles its human
    solution and four wrong ones, and one loop that times out."""
    path = tmp_path_factory.mktemp("pending") / "store.sqlite"
    records = [r for r in load_seeds("train")
               if r.solutions and r.solutions[0].splitlines()[0].endswith(":")][:12]
    with Store(path) as store, store.transaction():
        attempts = []
        for r in records:
            store.add_puzzle(r.puzzle, "seed")
            header = r.solutions[0].splitlines()[0] + "\n"  # `def g(...):`, extra args and all
            for k, body in enumerate(WRONG + (LOOP,) if r is records[0] else WRONG):
                solution = "" if body is None else header + body
                attempts.append(Attempt(1, "solve", r.puzzle.hash, k, solution,
                                        verdict="pending", solution=solution))
            attempts.append(Attempt(1, "solve", r.puzzle.hash, 9, r.solutions[0],
                                    verdict="pending", solution=r.solutions[0]))
        store.add_attempts(attempts)
    return path


def _verify(store_path, tmp_path, name, executor=ExecutorConfig()):
    """Run the verify stage on a copy of the store: ({attempt id: (verdict, detail)}, summary,
    the attempt ids written, in write order)."""
    copy = tmp_path / f"{name}.sqlite"
    shutil.copy(store_path, copy)
    config = RunConfig(verifier=VerifierConfig(timeout=1.0), executor=executor)
    resources = Resources(config)
    written = []
    try:
        with Store(copy) as store:
            set_verdict = store.set_verdict

            def recording(attempt_id, *rest):
                written.append(attempt_id)
                set_verdict(attempt_id, *rest)
            store.set_verdict = recording
            ctx = RoundContext(1, config, store, RunDir(tmp_path), resources,
                               logging.getLogger("test"))
            summary = verify.run(ctx)
            verdicts = {a.id: (a.verdict, a.detail) for a in store.attempts(1, "solve")}
    finally:
        resources.close()
    return verdicts, summary, written


@pytest.fixture(scope="module")
def local(pending, tmp_path_factory):
    return _verify(pending, tmp_path_factory.mktemp("local"), "local")


def _ray(**changes):
    # Chunks of 8 attempts on 2 actors: several chunks in flight on each at once.
    return ExecutorConfig(**{"kind": "ray", "chunk": 8, "actor_cpus": 1, **changes})


def test_ray_verifies_every_attempt_as_the_local_verifier_does(ray_runtime, pending, local,
                                                               tmp_path):
    verdicts, summary, written = _verify(pending, tmp_path, "ray", _ray())
    local_verdicts, local_summary, _ = local
    assert verdicts == local_verdicts
    assert summary == local_summary  # counts and the sandbox's version string
    assert {v for v, _ in verdicts.values()} == {"pass", "fail", "error", "rejected", "timeout"}
    assert sorted(written) == sorted(verdicts)  # each attempt written once
    # The executor stopped its actors but left alone the Ray it did not start.
    assert ray_runtime.is_initialized()


def test_a_round_on_ray_stores_what_a_local_round_does(ray_runtime, tmp_path, scripted,
                                                       tiny_model, monkeypatch):
    # A whole round with the scripted sampler (every kind of proposal and solution): the data
    # it stores (verdicts, verified solutions and their provenance, what trains) is the same.
    # Sampling stays here, where the scripted sampler is (`executor.sampling = false`);
    # tests/selfplay/test_ray_sampling.py samples on Ray, with the real model.
    def round_data(name, executor):
        scripted_sample.proposed = []
        path = tmp_path / name
        assert main(["init", str(path), "--preset", "tiny"]) == 0
        config = load_config(path / "config.toml")
        (path / "config.toml").write_text(config_toml(dataclasses.replace(config,
                                                                          executor=executor)))
        run(path, rounds=1)
        with Store(path / "store.sqlite") as store:
            return {"attempts": [(a.stage, a.puzzle_hash, a.attempt, a.solution, a.verdict,
                                  a.detail) for a in store.attempts(1)],
                    "solutions": [(s.puzzle_id, s.source, s.verifier, s.provenance)
                                  for s in store.solutions(round=1)],
                    "train": store.train_examples(1),
                    "verify": {k: v for k, v in store.stage_summary(1, "verify").items()
                               if k != "seconds"}}

    chunks_on_ray = []
    ray_map = executors.RayExecutor.map

    def counting_map(self, fn, chunks, progress=False):
        chunks_on_ray.extend(chunks)
        return ray_map(self, fn, chunks, progress)
    monkeypatch.setattr(executors.RayExecutor, "map", counting_map)

    local_round = round_data("local", ExecutorConfig())
    assert {a[4] for a in local_round["attempts"]} >= {"pass", "fail", "rejected"}
    assert not chunks_on_ray
    assert round_data("ray", _ray(sampling=False)) == local_round
    assert len(chunks_on_ray) > 1  # the round's attempts went to Ray, several chunks


@contextlib.contextmanager
def cpu_burners(n: int = 2, seconds: float = 120):
    """`n` processes spinning on a core each beside the test, as other work on a busy machine
    would; each stops by itself after `seconds` (should this process be killed) and all are
    killed on leaving."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    burners = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]
    try:
        yield
    finally:
        for p in burners:
            p.kill()
        for p in burners:
            p.wait()


def test_a_chunk_whose_actor_dies_is_verified_again_and_written_once(
        ray_runtime, pending, local, tmp_path, monkeypatch):
    # On a loaded machine, as where it once failed: the dead actor's restart (a new process,
    # its imports, a sandbox server) is slow, and slower still for the sleep below. Sends
    # meanwhile are refused "restarting"; counted as deaths they would use up max_retries
    # (1 here) although the actor died once.
    marker = tmp_path / "died"
    real_judge = verify.judge

    class SlowToRestart(executors.VerifyActor):
        def __init__(self, config):
            if marker.exists():  # this is the restart, after the death
                time.sleep(4)
            super().__init__(config)

    def dies_on_the_first_chunk(verifier, job, progress=False):
        # Runs in an actor: the first chunk to get here kills its actor's process outright,
        # as an OOM kill or a lost node would, with its sibling chunks queued behind it.
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return real_judge(verifier, job, progress)
        os._exit(1)

    monkeypatch.setattr(verify, "judge", dies_on_the_first_chunk)
    monkeypatch.setattr(executors, "VerifyActor", SlowToRestart)
    with cpu_burners():
        verdicts, summary, written = _verify(pending, tmp_path, "ray", _ray(max_retries=1))
    assert marker.exists()  # an actor did die
    assert verdicts == local[0]
    counts = collections.Counter(written)
    assert set(counts) == set(verdicts) and set(counts.values()) == {1}


def test_a_chunk_that_keeps_killing_its_actor_stops_the_stage(ray_runtime, pending, tmp_path,
                                                              monkeypatch):
    def always_dies(verifier, job, progress=False):
        os._exit(1)

    monkeypatch.setattr(verify, "judge", always_dies)
    with pytest.raises(SelfplayError, match="died 2 times.*max_retries = 1"):
        _verify(pending, tmp_path, "ray", _ray(max_retries=1, chunk=1000))
    with Store(tmp_path / "ray.sqlite") as store:  # nothing written, all left for a resume
        assert {a.verdict for a in store.attempts(1, "solve")} == {"pending"}


def test_an_actor_that_cannot_start_its_sandbox_is_an_error_not_a_retry(ray_runtime):
    # Strict mode on a worker lacking a layer: the actor's constructor refuses, and Ray does
    # not restart an actor for an exception, so the stage stops at once, saying why.
    config = RunConfig(verifier=VerifierConfig(strict=True, disable_layers=("seccomp",)),
                       executor=_ray())
    resources = Resources(config)
    try:
        with pytest.raises(SelfplayError, match="did not start: .*strict mode.*seccomp"):
            resources.verify_executor()
    finally:
        resources.close()


def test_doctor_probes_the_layers_inside_a_ray_worker(ray_runtime, tmp_path, capsys):
    config = RunConfig(executor=_ray())
    (tmp_path / "config.toml").write_text(config_toml(config))
    assert main(["doctor", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(a Ray worker on node " in out and "seccomp" in out
    assert "honest pair passes" in out

    # Strict mode refuses there as it does here, naming the node.
    strict = RunConfig(executor=_ray(), verifier=VerifierConfig(strict=True,
                                                                disable_layers=("seccomp",)))
    (tmp_path / "config.toml").write_text(config_toml(strict))
    assert main(["doctor", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "on Ray node" in err and "strict mode" in err and "seccomp" in err


def test_a_bad_executor_is_refused_by_name(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[executor]\nkind = "dask"\n')
    with pytest.raises(SelfplayError, match="executor.kind = 'dask' is not one of local, ray"):
        load_config(path)
    path.write_text('[executor]\nkind = "ray"\nchunk = 0\n')
    with pytest.raises(SelfplayError, match="executor.chunk must be >= 1, not 0"):
        load_config(path)
    path.write_text('[executor]\nkind = "ray"\nrestart_wait = 0\n')
    with pytest.raises(SelfplayError, match="executor.restart_wait must be > 0, not 0"):
        load_config(path)
    path.write_text('[executor]\nkind = "ray"\naddress = "auto"\nmax_retries = 5\n')
    assert load_config(path).executor == ExecutorConfig(kind="ray", address="auto",
                                                        max_retries=5)


def test_ray_missing_is_named_with_the_extra_to_install(monkeypatch):
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else find_spec(name, *a))
    with pytest.raises(SelfplayError, match=r'pip install -e "\.\[ray\]"'):
        Resources(RunConfig(executor=ExecutorConfig(kind="ray")))
    Resources(RunConfig()).close()  # the local executor needs nothing


def test_the_executor_may_change_on_resume():
    # It decides where verdicts are computed, not what they are (the tests above).
    assert is_free_to_change("executor.kind") and is_free_to_change("executor.address")


def test_a_chunk_whose_actor_died_waits_for_its_restart_before_it_is_sent_again(
        ray_runtime, monkeypatch):
    # A restarted actor reloads a model, slowly on a loaded node; sent at once, the chunk would
    # meet it restarting ("unavailable") and use up max_retries without another death.
    from selfplay.compute import executors
    real_get, events = ray_runtime.get, []

    class Actor:
        class __ray_ready__:  # every Ray actor has this method; it answers once restarted
            @staticmethod
            def remote():
                events.append("ready?")
                return ray_runtime.put(True)

    def dies_once(ref, *args, **kwargs):
        value = real_get(ref, *args, **kwargs)
        if value == 10 and "died" not in events:
            events.append("died")  # what a chunk in an actor that died gets
            raise ray_runtime.exceptions.ActorUnavailableError(
                "The actor is temporarily unavailable: RpcError: RPC error: Socket closed", None)
        return value

    def submit(actor, i):
        events.append(f"send {i}")
        return ray_runtime.put(i * 10)

    monkeypatch.setattr(ray_runtime, "get", dies_once)
    chunks = executors.fan_out([Actor()], submit, 4, max_retries=1, what="test")
    assert sorted(chunks) == [(0, 0), (1, 10), (2, 20), (3, 30)]
    assert events[events.index("died") + 1] == "ready?"  # waited, then sent chunk 1 again
    assert events.count("send 1") == 2

    # Every death counts: with no retries allowed the stage stops, naming the chunk.
    events.clear()
    with pytest.raises(SelfplayError, match="test chunk 1: its Ray actor died 1 times"):
        list(executors.fan_out([Actor()], submit, 4, max_retries=0, what="test"))


def test_an_actor_slow_to_restart_is_waited_for_and_its_refusals_use_no_retry(
        ray_runtime, monkeypatch):
    # What Ray does (2.x), faked: a chunk in an actor that dies fails "Socket closed"; while
    # the actor restarts, a question or a chunk sent to it fails "The actor is restarting"
    # after a grace, instead of waiting. Only the death may use a retry (1 here).
    real_get, events = ray_runtime.get, []
    unavailable = ray_runtime.exceptions.ActorUnavailableError
    died = unavailable("The actor is temporarily unavailable: RpcError: Socket closed", None)
    restarting = unavailable("The actor is temporarily unavailable: IOError: The actor is "
                             "restarting.", None)
    outcomes = {"ready": [restarting, restarting, restarting, True, True],
                "chunk 1": [died, restarting, 10]}  # the second send meets a new restart

    class Actor:
        class __ray_ready__:
            @staticmethod
            def remote():
                events.append("ready?")
                return ray_runtime.put("ready")

    def get(ref, *args, **kwargs):
        value = real_get(ref, *args, **kwargs)
        if value in outcomes:
            value = outcomes[value].pop(0)
            if isinstance(value, Exception):
                raise value
        return value

    def submit(actor, i):
        events.append(f"send {i}")
        return ray_runtime.put("chunk 1" if i == 1 else i * 10)

    monkeypatch.setattr(ray_runtime, "get", get)
    chunks = executors.fan_out([Actor()], submit, 4, max_retries=1, what="test")
    assert sorted(chunks) == [(0, 0), (1, 10), (2, 20), (3, 30)]
    assert events.count("send 1") == 3 and events.count("ready?") == 5
    assert outcomes == {"ready": [], "chunk 1": []}

    # The wait is bounded: an actor that never comes back stops the stage, naming the setting.
    outcomes["ready"] = [restarting] * 1000
    with pytest.raises(SelfplayError, match=r"did not come back within 0\.5 s "
                                            r"\(executor\.restart_wait\)"):
        executors.wait_until_ready(Actor(), "test chunk 1", 0.5)
