"""Source: watches each model's base path and tells the Manager which versions to serve.

Contract (as TF Serving's ``FileSystemStoragePathSource``): a model's versions are the
sub-folders of its base path whose names are decimal integers (``1``, ``00000123``);
anything else (``2.tmp``, ``.partial``) is ignored, so an exporter that writes elsewhere and
renames the folder into place publishes a version atomically. On every poll the Source
applies the model's version policy and calls ``callback(name, {version: path})`` with the
*complete* aspired set: a version left out is to be unloaded; an empty dict unloads the
model. A base path that cannot be listed is logged and skipped (the versions being served
stay). Models dropped by :meth:`FileSystemSource.set_models` get an empty set once.

The callback runs on the polling thread (or on the caller's thread for :meth:`poll_once`);
it must be thread-safe and quick. :meth:`set_models` and :meth:`poll_once` may be called
from any thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from edgeseg.serving.policy import VersionPolicy, aspired_versions

log = logging.getLogger(__name__)

AspiredCallback = Callable[[str, Mapping[int, str]], None]


@dataclass(frozen=True)
class WatchedModel:
    name: str
    base_path: str
    policy: VersionPolicy


def list_versions(base_path: str) -> dict[int, str]:
    """Version number -> folder path for the numeric sub-folders of base_path."""
    found: dict[int, str] = {}
    with os.scandir(base_path) as entries:
        for entry in entries:
            if entry.name.isdigit() and entry.is_dir():
                found[int(entry.name)] = entry.path
    return found


class FileSystemSource:
    """Polls base paths every ``poll_wait_s`` seconds on a background thread."""

    def __init__(self, callback: AspiredCallback, poll_wait_s: float = 1.0) -> None:
        self._callback = callback
        self._poll_wait_s = poll_wait_s
        self._models: dict[str, WatchedModel] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_models(self, models: Sequence[WatchedModel]) -> None:
        with self._lock:
            dropped = set(self._models) - {m.name for m in models}
            self._models = {m.name: m for m in models}
        for name in sorted(dropped):
            self._callback(name, {})

    def poll_once(self) -> None:
        with self._lock:
            models = list(self._models.values())
        for model in models:
            try:
                on_disk = list_versions(model.base_path)
            except OSError as exc:
                log.warning("model %s: cannot list base path %s: %s", model.name,
                            model.base_path, exc)
                continue
            keep = aspired_versions(on_disk, model.policy)
            if not keep:
                log.warning("model %s: no servable versions under %s", model.name,
                            model.base_path)
            self._callback(model.name, {v: on_disk[v] for v in keep})

    def start(self) -> None:
        """Poll periodically; a wait <= 0 means the one poll already done is all."""
        if self._poll_wait_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="source", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._poll_wait_s):
            try:
                self.poll_once()
            except Exception:  # a poll must never kill the thread
                log.exception("file system poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
