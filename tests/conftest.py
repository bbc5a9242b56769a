"""Suite-wide pytest configuration (owned by the lead; area fixtures live in each area's conftest)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

VECTORS = Path(__file__).parent / "vectors"

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def load_vectors(name: str) -> Any:
    """Load a conformance-vector file copied from shared/vectors into tests/vectors."""
    with open(VECTORS / name, encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def gm_vectors() -> Any:
    return load_vectors("gm.json")


@pytest.fixture(scope="session")
def otp_vectors() -> Any:
    return load_vectors("otp_rfc.json")
