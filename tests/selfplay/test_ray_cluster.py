"""`executor.kind = "ray"` on a real cluster of two Ray nodes on this machine (Ray's
`cluster_utils.Cluster`: a head and a worker node, each a raylet of its own with 1 CPU, so the
two verify actors, and the two sampler actors, land one on each): the verify stage and a
whole round's sampling fan out over both nodes and end with a local run's store; and when the worker node itself is killed mid-stage (its raylet,
its object store and every worker process on it, not only an actor), the chunks it held are
verified again on the node that replaces it, each attempt written once, the store again the
local run's."""

import collections
import os
import threading
import time

import pytest

from selfplay.compute import samplers
from selfplay.loop import run
from selfplay.stages import verify
from test_loop_e2e import dump
from test_ray_executor import _ray, _verify, local, pending  # noqa: F401 (fixtures)
from test_ray_sampling import RAY, local_run, small_run  # noqa: F401 (a fixture)

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = pytest.mark.slow  # three raylets start; about a minute in all on 2 busy cores

# Ray's defaults declare a node dead after 5 missed health checks 3 s apart; a killed node is
# noticed within about a second here instead.
FAST_FAILURE = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 200,
                "health_check_failure_threshold": 3}
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={
        **NODE, "resources": {"head": 1}, "include_dashboard": False,
        "_system_config": FAST_FAILURE})
    try:
        cluster.add_node(**NODE, resources={"worker": 1})
        ray.init(address=cluster.address, logging_level="WARNING")
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def _alive_nodes() -> list[str]:
    return [n["NodeID"] for n in ray.nodes() if n["Alive"]]


def _recording_judge(log_dir):
    """verify.judge, noting in `log_dir` the Ray node each chunk ran on (the files are this
    machine's, so every node can write them)."""
    real_judge = verify.judge

    def judge(verifier, job, progress=False):
        node = ray.get_runtime_context().get_node_id()
        with open(log_dir / f"{node}.{os.getpid()}.{time.monotonic_ns()}", "w"):
            pass
        return real_judge(verifier, job, progress)
    return judge


def _chunks_per_node(log_dir) -> collections.Counter:
    return collections.Counter(p.name.split(".")[0] for p in log_dir.iterdir())


def test_verify_fans_out_over_both_nodes_and_stores_what_a_local_run_does(
        cluster, pending, local, tmp_path, monkeypatch):
    assert len(_alive_nodes()) == 2
    log_dir = tmp_path / "chunks"
    log_dir.mkdir()
    monkeypatch.setattr(verify, "judge", _recording_judge(log_dir))
    verdicts, summary, written = _verify(pending, tmp_path, "ray", _ray())
    assert verdicts == local[0] and summary == local[1]
    assert sorted(written) == sorted(verdicts)  # each attempt written once
    per_node = _chunks_per_node(log_dir)
    assert set(per_node) == set(_alive_nodes())  # both nodes verified chunks


def test_a_round_sampled_and_verified_on_both_nodes_stores_what_a_local_round_does(
        cluster, local_run, tmp_path, monkeypatch):
    log_dir = tmp_path / "chunks"
    log_dir.mkdir()
    real_sample = samplers.sample_chunk

    def sample_chunk(loaded, job):
        node = ray.get_runtime_context().get_node_id()
        with open(log_dir / f"{node}.{os.getpid()}.{time.monotonic_ns()}", "w"):
            pass
        return real_sample(loaded, job)

    monkeypatch.setattr(samplers, "sample_chunk", sample_chunk)
    ray_run = small_run(tmp_path / "ray", RAY)
    run(ray_run, rounds=1)
    assert dump(ray_run) == dump(local_run)  # every table, completions and pass@k included
    assert set(_chunks_per_node(log_dir)) == set(_alive_nodes())  # both nodes sampled


def test_a_node_killed_mid_stage_loses_no_chunk_and_writes_none_twice(
        cluster, pending, local, tmp_path, monkeypatch):
    # A third node joins first, idle: the dead node's actor is restarted there (Ray starts
    # nodes from the main thread only, so the replacement cannot join after the kill).
    cluster.add_node(**NODE, resources={"worker": 1})
    cluster.wait_for_nodes()
    head = cluster.head_node.node_id
    log_dir = tmp_path / "chunks"
    log_dir.mkdir()
    started = tmp_path / "started"
    real_judge = _recording_judge(log_dir)

    def judge(verifier, job, progress=False):
        # The first chunk on a worker node names the node, then takes long enough that the
        # node is killed with it (and the chunk queued behind it) in flight.
        node = ray.get_runtime_context().get_node_id()
        if node != head:
            try:
                fd = os.open(started, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, node.encode())
                os.close(fd)
                time.sleep(60)
        return real_judge(verifier, job, progress)

    killed = []

    def kill_that_node():
        deadline = time.monotonic() + 120
        while not (started.exists() and started.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        doomed = next(n for n in cluster.worker_nodes if n.node_id == started.read_text())
        cluster.remove_node(doomed, allow_graceful=False)
        killed.append(doomed.node_id)

    monkeypatch.setattr(verify, "judge", judge)
    killer = threading.Thread(target=kill_that_node, daemon=True)
    killer.start()
    try:
        verdicts, summary, written = _verify(pending, tmp_path, "ray", _ray(actors=2))
    finally:
        killer.join(timeout=180)
    assert killed and killed[0] not in _alive_nodes()  # the node did die, mid-stage
    assert verdicts == local[0] and summary == local[1]
    counts = collections.Counter(written)
    assert set(counts) == set(verdicts) and set(counts.values()) == {1}
    # The chunk asleep on the killed node never finished there: another node verified it.
    assert killed[0] not in _chunks_per_node(log_dir)
    assert len(_alive_nodes()) == 2  # the head and the spare
