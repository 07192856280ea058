"""Health: the standard grpc.health.v1 service, SERVING only when the models can answer.

Contract: :func:`health_of` is pure: given, for every configured model, the states of its
versions, it answers each health service name's status: the server as a whole ("") is
SERVING only when *every* configured model has an AVAILABLE version; each model's own name
is SERVING when it has one. :class:`HealthReporter` applies that to a
``grpc_health.v1.health.HealthServicer`` now (:meth:`HealthReporter.update`) and every
``interval_s`` on a background thread, so Check and Watch calls follow loads, failures and
unloads; :meth:`HealthReporter.shutdown` turns everything NOT_SERVING for good (called as
the server starts to stop). A service name that is neither "" nor a model is NOT_FOUND, as
the standard servicer answers. :func:`readiness` gives the same verdict to REST
(``GET /v1/ready``: 200 when ready, else 503 naming the models that are not).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from grpc_health.v1 import health, health_pb2

from edgeseg.errors import NotFound
from edgeseg.serving.servable import State

if TYPE_CHECKING:
    from edgeseg.serving.core_protocol import Core

SERVER = ""  # the health service name of the whole server


def health_of(states: Mapping[str, Iterable[State]]) -> dict[str, bool]:
    """Service name -> serving? for the server ("") and each model."""
    models = {name: State.AVAILABLE in set(versions) for name, versions in states.items()}
    return {SERVER: all(models.values()), **models}


def configured_states(core: Core) -> dict[str, list[State]]:
    """The version states of every configured model (an empty list: none found yet)."""
    states: dict[str, list[State]] = {}
    for name in core.models:
        try:
            states[name] = [s.state for s in core.version_states(name)]
        except NotFound:
            states[name] = []
    return states


def readiness(core: Core) -> tuple[bool, str]:
    """(ready?, why) for the REST readiness endpoint: the same verdict as service ""."""
    verdict = health_of(configured_states(core))
    waiting = sorted(name for name, ok in verdict.items() if name != SERVER and not ok)
    if waiting:
        return False, f"not ready: no AVAILABLE version of {', '.join(waiting)}"
    return True, "ready"


class HealthReporter:
    def __init__(self, core: Core, interval_s: float = 1.0) -> None:
        self.servicer = health.HealthServicer(experimental_non_blocking=True)
        self._core = core
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._known: set[str] = set()

    def update(self) -> None:
        if self._stop.is_set():
            return
        verdict = health_of(configured_states(self._core))
        for gone in self._known - set(verdict):  # a model dropped from the config
            verdict[gone] = False
        self._known = set(verdict)
        for service, serving in verdict.items():
            self.servicer.set(service, health_pb2.HealthCheckResponse.SERVING if serving
                              else health_pb2.HealthCheckResponse.NOT_SERVING)

    def start(self) -> None:
        self.update()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.update()

    def shutdown(self) -> None:
        self._stop.set()
        self.servicer.enter_graceful_shutdown()
