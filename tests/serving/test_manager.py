"""The Manager with a fake loader: swap order per policy, failures, retries, in-flight waits."""

from __future__ import annotations

import threading
import time

import pytest

from edgeseg.errors import DataLoss, NotFound
from edgeseg.serving.manager import Manager, StreamOptions
from edgeseg.serving.policy import PreservePolicy
from edgeseg.serving.servable import State
from tests.services import wait_until


class FakeLoaders:
    """loader_factory: paths starting with 'bad' fail; every step is logged in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def note(self, what: str, path: str) -> None:
        with self.lock:
            self.events.append((what, path))

    def __call__(self, path, tags):
        outer = self

        class Model:
            def close(self):
                outer.note("closed", path)

        class FakeLoader:
            def load(self):
                outer.note("load", path)
                time.sleep(0.05)
                if path.startswith("bad"):
                    raise DataLoss(f"{path}: corrupt saved_model.pb")
                outer.note("loaded", path)
                return Model()

        return FakeLoader()


@pytest.fixture
def fake():
    return FakeLoaders()


@pytest.fixture
def manager(fake):
    managers = []

    def make(preserve=PreservePolicy.AVAILABILITY, retries=0, interval=0.01):
        m = Manager(fake, max_load_retries=retries, retry_interval_s=interval)
        m.set_options("m", StreamOptions(("serve",), preserve))
        m.start()
        managers.append(m)
        return m

    yield make
    for m in managers:
        m.stop(grace_s=1)


def states(m):
    return {s.version: s.state for s in m.versions("m")}


def test_loads_and_serves_the_highest_version(manager):
    m = manager()
    m.set_aspired_versions("m", {1: "v1", 2: "v2"})
    assert m.wait_settled(timeout=5)
    assert states(m) == {1: State.AVAILABLE, 2: State.AVAILABLE}
    with m.handle("m") as h:
        assert h.version == 2
    with m.handle("m", 1) as h:
        assert h.version == 1


def test_availability_preserving_swap_loads_new_before_unloading_old(manager, fake):
    m = manager(PreservePolicy.AVAILABILITY)
    m.set_aspired_versions("m", {1: "v1"})
    assert m.wait_settled(timeout=5)
    m.set_aspired_versions("m", {2: "v2"})
    assert m.wait_settled(timeout=5)
    assert states(m) == {1: State.END, 2: State.AVAILABLE}
    assert fake.events.index(("loaded", "v2")) < fake.events.index(("closed", "v1"))


def test_resource_preserving_swap_unloads_old_before_loading_new(manager, fake):
    m = manager(PreservePolicy.RESOURCE)
    m.set_aspired_versions("m", {1: "v1"})
    assert m.wait_settled(timeout=5)
    m.set_aspired_versions("m", {2: "v2"})
    assert m.wait_settled(timeout=5)
    assert states(m) == {1: State.END, 2: State.AVAILABLE}
    assert fake.events.index(("closed", "v1")) < fake.events.index(("load", "v2"))


def test_failed_new_version_keeps_the_old_one_serving(manager):
    m = manager()
    m.set_aspired_versions("m", {1: "v1"})
    assert m.wait_settled(timeout=5)
    m.set_aspired_versions("m", {2: "bad2"})
    assert m.wait_settled(timeout=5)
    assert states(m) == {1: State.AVAILABLE, 2: State.END}
    failed = m.versions("m")[0]
    assert failed.version == 2 and "corrupt saved_model.pb" in failed.error.message
    with m.handle("m") as h:
        assert h.version == 1


def test_failed_loads_are_retried_a_bounded_number_of_times(manager, fake):
    m = manager(retries=2, interval=0.05)
    m.set_aspired_versions("m", {1: "bad1"})
    assert m.wait_settled(timeout=5)
    assert fake.events.count(("load", "bad1")) == 3  # the first try and two retries
    assert states(m) == {1: State.END}


def test_unload_waits_for_in_flight_requests(manager, fake):
    m = manager()
    m.set_aspired_versions("m", {1: "v1"})
    assert m.wait_settled(timeout=5)
    handle = m.handle("m")
    m.set_aspired_versions("m", {})
    wait_until(lambda: m.versions("m")[0].state is State.UNLOADING, 5,
               what="the manager to begin the unload")
    time.sleep(0.3)  # a negative check: while the handle is held, the unload goes no further
    assert m.versions("m")[0].state is State.UNLOADING  # still serving its last request
    assert ("closed", "v1") not in fake.events
    handle.release()
    assert m.wait_settled(timeout=5)
    assert states(m) == {1: State.END}
    assert ("closed", "v1") in fake.events


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("nope", None, "Servable not found for request: Latest(nope)"),
        ("m", 7, "Servable not found for request: Specific(m, 7)"),
    ],
)
def test_not_found_messages(manager, name, version, message):
    m = manager()
    m.set_aspired_versions("m", {1: "v1"})
    assert m.wait_settled(timeout=5)
    with pytest.raises(NotFound, match=r"^" + message.replace("(", r"\(").replace(")", r"\)")):
        m.handle(name, version)
