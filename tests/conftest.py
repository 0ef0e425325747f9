"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model():
    """The built-in `tiny` model, loaded once per test session.

    Built on first use and cached (under $SELFPLAY_CACHE or ~/.cache/selfplay), so only the
    first session on a machine pays for the build. Tests must not modify it: deep-copy
    `tiny_model.model` before training or wrapping it.
    """
    from training.models import load_model
    return load_model("tiny")
