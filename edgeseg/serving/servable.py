"""One version of one model as the server holds it: its lifecycle state and its handles.

States follow TF Serving's ``ServableState`` (numbered as ``ModelVersionStatus.State``)::

    START -> LOADING -> AVAILABLE -> UNLOADING -> END
               \\____________(load failed, error kept)___/

Only the Manager moves a servable between states; anyone may read them. Requests get at a
loaded model only through a :class:`Handle` from :meth:`Servable.acquire`, which succeeds
only while the servable is AVAILABLE. Handles are reference-counted: :meth:`begin_unload`
refuses new handles at once, and :meth:`wait_idle` returns when the last in-flight request
has released its handle, so a version is torn down only after its requests finish.
All methods are thread-safe.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from edgeseg.errors import EdgesegError, Internal


class ServedModel(Protocol):
    """What requests use of a loaded model (loader.LoadedModel, tflite_loader.TfLiteModel,
    batching.BatchingModel); a model may also have ``close()``, called after unloading."""

    @property
    def signature_defs(self) -> Mapping[str, Any]:
        """SignatureDef messages by key."""
        ...

    def run(self, feeds: Mapping[str, Any], fetches: Sequence[str],
            timeout_ms: int = 0) -> list[Any]:
        """Arrays of ``fetches`` in order, fed ``feeds`` (tensor name -> array)."""
        ...


class State(enum.IntEnum):
    """Lifecycle of one servable version (values as tensorflow.serving.ModelVersionStatus)."""

    START = 10  # known to the manager, not loaded yet
    LOADING = 20  # the loader is reading it into memory
    AVAILABLE = 30  # serving requests
    UNLOADING = 40  # refusing new requests, waiting for in-flight ones, then freeing
    END = 50  # gone: unloaded, or its load failed (see Servable.error)


class Servable:
    """One (model name, version) and, while AVAILABLE, the loaded model behind it."""

    def __init__(self, name: str, version: int, path: str) -> None:
        self.name = name
        self.version = version
        self.path = path
        self._cond = threading.Condition()
        self._state = State.START
        self._error: EdgesegError | None = None
        self._model: ServedModel | None = None  # set while AVAILABLE and UNLOADING
        self._in_flight = 0
        self.load_attempts = 0
        self.changed_at = time.monotonic()

    def __repr__(self) -> str:
        return f"Servable({self.name!r}, {self.version}, {self._state.name})"

    @property
    def state(self) -> State:
        with self._cond:
            return self._state

    @property
    def error(self) -> EdgesegError | None:
        with self._cond:
            return self._error

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def _move(self, to: State, allowed_from: tuple[State, ...]) -> None:
        if self._state not in allowed_from:
            raise Internal(f"{self!r}: cannot move to {to.name}")
        self._state = to
        self.changed_at = time.monotonic()
        self._cond.notify_all()

    def begin_load(self) -> None:
        with self._cond:
            self._move(State.LOADING, (State.START,))

    def retry_load(self) -> None:
        """Back to START after a failed attempt that will be retried."""
        with self._cond:
            self._move(State.START, (State.LOADING,))

    def finish_load(self, model: ServedModel) -> None:
        with self._cond:
            self._move(State.AVAILABLE, (State.LOADING,))
            self._model = model

    def fail(self, error: EdgesegError) -> None:
        """The load failed for good: END, the error kept for GetModelStatus."""
        with self._cond:
            self._move(State.END, (State.START, State.LOADING))
            self._error = error

    def begin_unload(self) -> None:
        with self._cond:
            self._move(State.UNLOADING, (State.AVAILABLE,))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no handle is held; True if idle."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight == 0, timeout)

    def finish_unload(self) -> ServedModel | None:
        """END; returns the model so the caller can free it outside the lock."""
        with self._cond:
            self._move(State.END, (State.UNLOADING,))
            model, self._model = self._model, None
            return model

    def acquire(self) -> Handle | None:
        """A handle on the loaded model, or None unless AVAILABLE."""
        with self._cond:
            model = self._model
            if self._state is not State.AVAILABLE or model is None:
                return None
            self._in_flight += 1
            return Handle(self, model)

    def _release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()


class Handle:
    """A counted reference to an AVAILABLE servable; use as a context manager."""

    def __init__(self, servable: Servable, model: ServedModel) -> None:
        self.servable = servable
        self.model = model
        self._released = False

    @property
    def name(self) -> str:
        return self.servable.name

    @property
    def version(self) -> int:
        return self.servable.version

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.servable._release()

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


if TYPE_CHECKING:  # mypy checks here that every loaded model is a ServedModel
    from edgeseg.serving.batching import BatchingModel
    from edgeseg.serving.loader import LoadedModel
    from edgeseg.serving.tflite_loader import TfLiteModel

    def _are_served_models(a: LoadedModel, b: TfLiteModel, c: BatchingModel
                           ) -> list[ServedModel]:
        return [a, b, c]
