import pytest

from sandbox import Verifier, VerifierConfig


@pytest.fixture(scope="session")
def verifier():
    with Verifier(VerifierConfig(timeout=5)) as v:
        yield v
