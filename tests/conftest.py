"""Fixtures shared by the whole suite.

Test data lives beside the project in ``../shared`` (override with EDGESEG_SHARED);
tests that need it skip, naming the folder, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("EDGESEG_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"test data folder {path} is absent (set EDGESEG_SHARED to point at it)")
    return path


@pytest.fixture(scope="session")
def shared_models(shared: Path) -> Path:
    path = shared / "models"
    if not path.is_dir():
        pytest.skip(f"real models and photos folder {path} is absent")
    return path
