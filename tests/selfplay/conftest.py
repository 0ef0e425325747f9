import pytest

from sandbox import Verifier, VerifierConfig


@pytest.fixture(scope="session")
def verifier():
    with Verifier(VerifierConfig(timeout=5)) as v:
        yield v


@pytest.fixture(scope="module")
def ray_runtime():
    """A local Ray of 2 CPUs for one test module (skipped where Ray is not installed)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()
