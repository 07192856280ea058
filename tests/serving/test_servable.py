"""Servable states and ref-counted handles."""

from __future__ import annotations

import threading
import time

import pytest

from edgeseg.errors import Internal, NotFound
from edgeseg.serving.servable import Servable, State


def available() -> Servable:
    s = Servable("m", 1, "/p")
    s.begin_load()
    s.finish_load("model")
    return s


def test_lifecycle_in_order():
    s = Servable("m", 1, "/p")
    seen = [s.state]
    s.begin_load()
    seen.append(s.state)
    s.finish_load("model")
    seen.append(s.state)
    s.begin_unload()
    seen.append(s.state)
    assert s.finish_unload() == "model"
    seen.append(s.state)
    assert seen == [State.START, State.LOADING, State.AVAILABLE, State.UNLOADING, State.END]
    assert [int(x) for x in seen] == [10, 20, 30, 40, 50]  # ModelVersionStatus numbering


def test_failed_load_ends_with_its_error():
    s = Servable("m", 1, "/p")
    s.begin_load()
    s.fail(NotFound("no saved_model.pb"))
    assert s.state is State.END
    assert s.error.message == "no saved_model.pb"
    assert s.acquire() is None


def test_illegal_moves_are_bugs():
    s = Servable("m", 1, "/p")
    with pytest.raises(Internal):
        s.finish_load("model")  # not LOADING
    with pytest.raises(Internal):
        s.begin_unload()


def test_handles_only_while_available():
    s = Servable("m", 1, "/p")
    assert s.acquire() is None
    s.begin_load()
    assert s.acquire() is None
    s.finish_load("model")
    with s.acquire() as handle:
        assert (handle.name, handle.version, handle.model) == ("m", 1, "model")
        assert s.in_flight == 1
    assert s.in_flight == 0
    s.begin_unload()
    assert s.acquire() is None


def test_unload_waits_for_in_flight_requests():
    s = available()
    handle = s.acquire()
    s.begin_unload()
    assert not s.wait_idle(timeout=0.05)  # a request is still running
    released_at: list[float] = []

    def finish_request():
        time.sleep(0.2)
        released_at.append(time.monotonic())
        handle.release()

    threading.Thread(target=finish_request).start()
    assert s.wait_idle(timeout=5)
    assert released_at and time.monotonic() >= released_at[0]
    handle.release()  # releasing twice does not count twice
    assert s.in_flight == 0
