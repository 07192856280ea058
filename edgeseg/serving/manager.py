"""Manager: moves every servable version toward what its Source aspires, one step at a time.

Contract (as TF Serving's ``AspiredVersionsManager``):

* :meth:`Manager.set_aspired_versions` is the Source's callback: the complete set of versions
  of one model that should be served. New versions enter START; versions left out are
  unloaded (or simply forgotten if not loaded yet).
* One manager thread asks the model's aspired-version policy (``policy.next_action``) for
  the next step and carries it out: a LOAD builds the model through a loader from
  ``loader_factory(path, tags)`` (plus ``prefer_tflite=`` when the model's config sets it)
  and makes it AVAILABLE, or, when it fails, retries up to
  ``max_load_retries`` times ``retry_interval_s`` apart (without blocking other models) and
  then ends the version with its error kept; an UNLOAD refuses new requests, waits for the
  in-flight ones to release their handles, then frees the model.
* :meth:`Manager.handle` gives request threads a counted :class:`Handle` on an AVAILABLE
  version (the highest one when none is named) or raises NOT_FOUND with TF Serving's
  message. :meth:`Manager.versions` reports every version's state, failed ones included.

All public methods are thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgeseg.errors import EdgesegError, Internal, NotFound
from edgeseg.model_contract import TAG_FLOAT
from edgeseg.serving.metrics import SERVING
from edgeseg.serving.policy import Action, PreservePolicy, Snapshot, Verb, next_action
from edgeseg.serving.servable import Handle, Servable, State

log = logging.getLogger(__name__)

LoaderFactory = Callable[..., Any]  # (path, tags[, prefer_tflite=]) -> object with .load()
MAX_ENDED_KEPT = 8  # per model: ended versions kept for GetModelStatus


@dataclass(frozen=True)
class StreamOptions:
    """How one model's versions are loaded and swapped."""

    tags: tuple[str, ...] = (TAG_FLOAT,)
    preserve: PreservePolicy = PreservePolicy.AVAILABILITY
    prefer_tflite: bool | None = None  # None: the loader factory's own default (the flag)


def not_found(name: str, version: int | None) -> NotFound:
    """TF Serving's words for a model or version that is not being served."""
    which = f"Latest({name})" if version is None else f"Specific({name}, {version})"
    return NotFound(f"Servable not found for request: {which}")


class Manager:
    def __init__(
        self,
        loader_factory: LoaderFactory,
        max_load_retries: int = 5,
        retry_interval_s: float = 60.0,
    ) -> None:
        self._loader_factory = loader_factory
        self._max_retries = max_load_retries
        self._retry_interval_s = retry_interval_s
        self._cond = threading.Condition()
        self._streams: dict[str, dict[int, Servable]] = {}
        self._aspired: dict[str, set[int]] = {}
        self._options: dict[str, StreamOptions] = {}
        self._retry_at: dict[tuple[str, int], float] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- the Source side -------------------------------------------------------------

    def set_options(self, name: str, options: StreamOptions) -> None:
        with self._cond:
            self._options[name] = options
            self._streams.setdefault(name, {})
            self._cond.notify_all()

    def set_aspired_versions(self, name: str, versions: Mapping[int, str]) -> None:
        with self._cond:
            stream = self._streams.setdefault(name, {})
            self._aspired[name] = set(versions)
            for version, path in versions.items():
                old = stream.get(version)
                if old is None or (old.state is State.END and old.error is None):
                    stream[version] = Servable(name, version, path)
            for version, servable in list(stream.items()):
                if version not in versions and servable.state is State.START:
                    del stream[version]  # never loaded: nothing to unload
                    self._retry_at.pop((name, version), None)
            self._forget_old_ends(name)
            self._cond.notify_all()

    def _forget_old_ends(self, name: str) -> None:
        stream = self._streams[name]
        ended = sorted(
            (s for v, s in stream.items() if s.state is State.END
             and v not in self._aspired.get(name, ())),
            key=lambda s: s.changed_at,
        )
        for servable in ended[:-MAX_ENDED_KEPT] if len(ended) > MAX_ENDED_KEPT else []:
            del stream[servable.version]

    # --- the request side -----------------------------------------------------------

    def handle(self, name: str, version: int | None = None) -> Handle:
        """A counted handle on ``version`` of ``name`` (highest AVAILABLE when None)."""
        with self._cond:
            stream = self._streams.get(name, {})
            if version is None:
                candidates = sorted(stream.values(), key=lambda s: s.version, reverse=True)
            else:
                candidates = [stream[version]] if version in stream else []
        for servable in candidates:
            handle = servable.acquire()
            if handle is not None:
                return handle
        raise not_found(name, version)

    def versions(self, name: str) -> list[Servable]:
        """Every version known for ``name``, highest first; NOT_FOUND if none."""
        with self._cond:
            stream = list(self._streams.get(name, {}).values())
        if not stream:
            raise NotFound(f"Could not find any versions of model {name}")
        return sorted(stream, key=lambda s: s.version, reverse=True)

    def model_names(self) -> list[str]:
        with self._cond:
            return sorted(self._streams)

    # --- the manager thread ---------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="manager", daemon=True)
        self._thread.start()

    def _snapshots(self, name: str) -> list[Snapshot]:
        aspired = self._aspired.get(name, set())
        return [
            Snapshot(v, s.state, v in aspired)
            for v, s in self._streams[name].items()
            if s.state is not State.END or v in aspired
        ]

    def _next(self) -> tuple[str, Action] | float:
        """The next action due, or how long to wait for one. Holds the lock."""
        wait = 1.0
        now = time.monotonic()
        for name in sorted(self._streams):
            preserve = self._options.get(name, StreamOptions()).preserve
            action = next_action(self._snapshots(name), preserve)
            if action is None:
                continue
            due = self._retry_at.get((name, action.version), 0.0)
            if action.verb is Verb.LOAD and due > now:
                wait = min(wait, due - now)
                continue
            return name, action
        return wait

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                step = self._next()
                if isinstance(step, float):
                    self._cond.wait(step)
                    continue
                name, action = step
                servable = self._streams[name][action.version]
                options = self._options.get(name, StreamOptions())
            try:
                if action.verb is Verb.LOAD:
                    self._load(servable, options)
                else:
                    self._unload(servable)
            except Exception:  # the manager thread must outlive any bug in one step
                log.exception("%r: %s failed", servable, action.verb.value)
            with self._cond:
                self._cond.notify_all()

    def _load(self, servable: Servable, options: StreamOptions) -> None:
        servable.begin_load()
        servable.load_attempts += 1
        started = time.monotonic()
        log.info("loading %s version %d from %s (tags %s)", servable.name, servable.version,
                 servable.path, ",".join(options.tags))
        extra = {} if options.prefer_tflite is None else {"prefer_tflite": options.prefer_tflite}
        try:
            loader = self._loader_factory(servable.path, options.tags, **extra)
            model = loader.load()
        except EdgesegError as exc:
            self._load_failed(servable, exc)
            return
        except Exception as exc:
            self._load_failed(servable, Internal(f"{type(exc).__name__}: {exc}"))
            return
        servable.finish_load(model)
        SERVING.observe_load(servable.name, time.monotonic() - started)
        log.info("%s version %d is AVAILABLE", servable.name, servable.version)

    def _load_failed(self, servable: Servable, error: EdgesegError) -> None:
        key = (servable.name, servable.version)
        if servable.load_attempts <= self._max_retries and not self._stopping:
            log.warning("loading %s version %d failed (attempt %d of %d), will retry: %s",
                        *key, servable.load_attempts, self._max_retries + 1, error)
            with self._cond:
                self._retry_at[key] = time.monotonic() + self._retry_interval_s
            servable.retry_load()
            return
        log.error("loading %s version %d failed: %s", *key, error)
        servable.fail(error)

    def _unload(self, servable: Servable, grace_s: float | None = None) -> None:
        servable.begin_unload()
        log.info("unloading %s version %d", servable.name, servable.version)
        if not servable.wait_idle(grace_s):
            log.warning("%r: in-flight requests still running after %ss; freeing anyway",
                        servable, grace_s)
        model = servable.finish_unload()
        if model is not None and hasattr(model, "close"):
            model.close()
        log.info("%s version %d reached END", servable.name, servable.version)

    # --- waiting and stopping -------------------------------------------------------

    def settled(self, names: Sequence[str] | None = None) -> bool:
        """True when no action is pending: every aspired version AVAILABLE or failed."""
        with self._cond:
            return self._settled(names)

    def _settled(self, names: Sequence[str] | None) -> bool:
        for name in names if names is not None else list(self._streams):
            if name not in self._streams:
                continue
            preserve = self._options.get(name, StreamOptions()).preserve
            snapshots = self._snapshots(name)
            if next_action(snapshots, preserve) is not None:
                return False
            if any(s.state in (State.LOADING, State.UNLOADING) for s in snapshots):
                return False
        return True

    def wait_settled(self, names: Sequence[str] | None = None, timeout: float | None = None
                     ) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._settled(names), timeout)

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the thread and unload every version, waiting up to grace_s for requests."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        with self._cond:
            servables = [s for stream in self._streams.values() for s in stream.values()]
        for servable in servables:
            if servable.state is State.AVAILABLE:
                self._unload(servable, grace_s)
