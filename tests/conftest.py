"""Fixtures shared by the whole suite.

Test data lives beside the project in ``../shared`` (override with EDGESEG_SHARED);
tests that need it skip, naming the folder, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.services import Mosquitto, Recorder, mosquitto_binary, wait_until

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


@pytest.fixture
def mosquitto(tmp_path):
    if mosquitto_binary() is None:
        pytest.skip("Debian's mosquitto is not installed (make system-deps installs it)")
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def recorder_factory():
    made: list[Recorder] = []

    def make(port: int, prefix: str = "edgeseg/#") -> Recorder:
        rec = Recorder(port, prefix)
        made.append(rec)
        wait_until(rec.subscribed.is_set, 5, what="the subscriber's SUBACK")
        return rec

    try:
        yield make
    finally:
        for rec in made:
            rec.close()
