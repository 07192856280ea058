"""Loader: reads one version of a SavedModel into memory, and frees it again.

Contract (as TF Serving's ``Loader``): constructing a :class:`Loader` is cheap and touches
nothing but the path it is given; :meth:`Loader.estimate_ram_bytes` looks only at file sizes
and is an upper-bound guess made *before* loading; :meth:`Loader.load` does the work and
either returns a :class:`LoadedModel` or raises an :class:`~edgeseg.errors.EdgesegError`
saying what is wrong with the folder (no saved_model.pb, a corrupt proto, missing
variables, the tag-set absent, not enough memory). It never leaves a half-built session
behind. Loads run one at a time on the Manager's thread; :meth:`LoadedModel.run` may be
called from many request threads at once (TF sessions are thread-safe).

Unless told not to, :meth:`Loader.load` also replays the version's warmup requests
(warmup.py) before returning, so a version is warm when it becomes AVAILABLE.

Each version gets its own ``tf.Graph`` and ``tf.compat.v1.Session``: this is how one
SavedModel with several meta-graphs ({serve}, {serve_quantized}) is served by tag, and how
TF1 and TF2 exports are served alike.

:func:`version_loader` is the factory the server uses: it picks this Loader or, for a folder
with ``model.tflite`` when TFLite is preferred, tflite_loader.py's (same contract, LiteRT).
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgeseg.errors import (
    DataLoss,
    DeadlineExceeded,
    EdgesegError,
    NotFound,
    ResourceExhausted,
    Status,
)
from edgeseg.serving.integrity import check_saved_model

log = logging.getLogger(__name__)

# As TF Serving's EstimateResourceFromPath: file sizes times a margin for TF's own copies.
RAM_ESTIMATE_MULTIPLIER = 1.2
GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")
MAX_CALLABLES = 64  # cached (feeds, fetches) runners per loaded model
LIVE_BATCHERS: weakref.WeakSet = weakref.WeakSet()  # for the queue-depth gauge


def available_ram_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, or None where that is not readable."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def wire_signature_defs(signature_defs: Mapping[str, Any]) -> dict[str, Any]:
    """A loaded meta-graph's (official ``tensorflow.SignatureDef``) signatures as edgeseg.wire's
    messages, the classes every request path builds replies of; converted by bytes, once
    per loaded version (messages of the two pools do not mix)."""
    from edgeseg.wire.framework import meta_graph_pb2

    return {key: meta_graph_pb2.SignatureDef.FromString(sig.SerializeToString())
            for key, sig in signature_defs.items()}


def timeout_step(timeout_ms: int) -> int:
    """``timeout_ms`` rounded UP to a step of a ~12% grid (2**(k/6) ms): a runner's timeout is
    fixed (RunOptions in its CallableOptions), so every client deadline gets one of a few
    dozen cached runners, and no run is cancelled before the deadline it was given."""
    if timeout_ms <= 0:
        return 0
    return math.ceil(2 ** (math.ceil(6 * math.log2(timeout_ms)) / 6))


class LoadedModel:
    """A SavedModel meta-graph loaded in its own graph and session."""

    def __init__(self, session: Any, meta_graph: Any, tags: Sequence[str]) -> None:
        self.session = session
        self.meta_graph = meta_graph
        self.tags = tuple(tags)
        self._callables: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        self.signature_defs = wire_signature_defs(meta_graph.signature_def)

    def run(self, feeds: Mapping[str, Any], fetches: Sequence[str],
            timeout_ms: int = 0) -> list[Any]:
        """Run the graph: ``feeds`` maps tensor names to arrays; returns arrays in order.
        A ``timeout_ms`` > 0 ends the run with DEADLINE_EXCEEDED when it takes longer."""
        names = tuple(feeds)
        timeout_ms = timeout_step(timeout_ms)
        key = (names, tuple(fetches), timeout_ms)
        with self._lock:
            fn = self._callables.get(key)
            if fn is None:
                if len(self._callables) >= MAX_CALLABLES:  # output_filter combinations
                    self._callables.clear()
                fn = self._callable(names, tuple(fetches), timeout_ms)
                self._callables[key] = fn
        try:
            return list(fn(*(feeds[n] for n in names)))
        except Exception as exc:
            error = _run_error(exc)
            if error.status is Status.DEADLINE_EXCEEDED and timeout_ms > 0:
                # as TfLiteModel.run says it, not "Timed out waiting for notification"
                error = DeadlineExceeded(f"running the model took longer than {timeout_ms} "
                                         f"ms; the session cancelled it")
            raise error from exc

    def _callable(self, feeds: tuple[str, ...], fetches: tuple[str, ...],
                  timeout_ms: int) -> Any:
        """A runner straight into the C++ session, as TF Serving calls Session::Run: the
        Python-side feed checks of Session.run/make_callable (which refuse shapes that the
        graph itself accepts, e.g. x of shape [1] for half_plus_two's [-1,1]) are skipped;
        dtypes are still checked by TensorFlow. Timeouts are fixed per runner (run() rounds
        them to :func:`timeout_step`'s grid); a run past its timeout is cancelled by the
        session and fails DEADLINE_EXCEEDED."""
        from tensorflow.core.protobuf import config_pb2

        options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
        if timeout_ms > 0:
            options.run_options.timeout_in_ms = timeout_ms
        return self.session._make_callable_from_options(options)

    def close(self) -> None:
        with self._lock:
            self._callables.clear()
        self.session.close()


class Loader:
    """Loads ``path`` (one version folder) with the meta-graph tagged ``tags``."""

    def __init__(self, path: str | Path, tags: Sequence[str], session_config: Any = None,
                 warmup: bool = True, batching: Any = None, session_summary: Any = ""):
        self.path = Path(path)
        self.tags = tuple(tags)
        # session_options.py's ConfigProto, and its one-line summary for the load log; either
        # may be a callable, called at the load (building them imports TensorFlow)
        self.session_config = session_config
        self.session_summary = session_summary
        self.warmup = warmup  # replay assets.extra/tf_serving_warmup_requests (warmup.py)
        self.batching = batching  # BatchingOptions: merge concurrent calls (batching.py)

    def estimate_ram_bytes(self) -> int:
        """Upper-bound guess of the memory the loaded model takes: graph + variables."""
        total = 0
        for name in GRAPH_FILES:
            if (self.path / name).is_file():
                total += (self.path / name).stat().st_size
        variables = self.path / "variables"
        if variables.is_dir():
            total += sum(f.stat().st_size for f in variables.iterdir() if f.is_file())
        return int(total * RAM_ESTIMATE_MULTIPLIER)

    def check(self) -> None:
        """Cheap checks before TF is asked: a graph file, and memory for the estimate."""
        if not any((self.path / name).is_file() for name in GRAPH_FILES):
            raise NotFound(
                f"no saved_model.pb in {self.path}: not a SavedModel, or still being written"
            )
        need, free = self.estimate_ram_bytes(), available_ram_bytes()
        if free is not None and need > free:
            raise ResourceExhausted(
                f"loading {self.path} needs about {need} bytes of RAM; {free} are available"
            )

    def load(self) -> LoadedModel:
        self.check()
        check_saved_model(self.path)  # empty or short files of an unsynced export: DataLoss
        import tensorflow as tf  # heavy; only the serving process needs it

        graph = tf.Graph()
        config = self.session_config() if callable(self.session_config) else self.session_config
        session = tf.compat.v1.Session(graph=graph, config=config)
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(
                session, list(self.tags), str(self.path)
            )
        except Exception as exc:
            session.close()
            raise _load_error(self.path, self.tags, exc) from exc
        graph.finalize()  # requests must not grow the graph
        summary = (self.session_summary() if callable(self.session_summary)
                   else self.session_summary)
        if summary:
            log.info("loaded %s (tags %s): %s", self.path, ",".join(self.tags), summary)
        return prepare(LoadedModel(session, meta_graph, self.tags), self.path, self.warmup,
                       self.batching)


def prepare(model: Any, path: Path, warmup: bool, batching: Any) -> Any:
    """What every loaded model goes through before it serves, whatever its runtime:
    wrapped for batching (batching.py) when configured, then warmed up (warmup.py)."""
    if batching is not None:
        from edgeseg.serving.batching import BatchingModel
        from edgeseg.serving.metrics import SERVING

        model = BatchingModel(model, batching, SERVING.batch_size.observe)
        LIVE_BATCHERS.add(model)
    if warmup:
        from edgeseg.serving.warmup import replay

        try:
            replay(model, path)
        except EdgesegError:
            model.close()
            raise
    return model


def version_loader(path: str | Path, tags: Sequence[str], *, prefer_tflite: bool = False,
                   tflite: Any = None, session_config: Any = None, warmup: bool = True,
                   batching: Any = None, session_summary: Any = "") -> Any:
    """The loader for one version folder, as TF Serving's SavedModelBundleFactory picks it:
    with ``prefer_tflite`` and a ``model.tflite`` there, LiteRT (tflite_loader.py);
    otherwise the SavedModel's meta-graph tagged ``tags``. Decided at each load attempt."""
    from edgeseg.serving.tflite_loader import TFLITE_FILE, TfLiteLoader

    if prefer_tflite and (Path(path) / TFLITE_FILE).is_file():
        return TfLiteLoader(path, tflite, warmup=warmup, batching=batching)
    return Loader(path, tags, session_config=session_config, warmup=warmup, batching=batching,
                  session_summary=session_summary)


def _load_error(path: Path, tags: Sequence[str], exc: Exception) -> EdgesegError:
    if isinstance(exc, EdgesegError):
        return exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "MetaGraphDef associated with tags" in text or "could not be found in SavedModel" in text:
        return NotFound(f"{path}: no meta-graph with tags {','.join(tags)}: {text}")
    return DataLoss(f"{path}: cannot load SavedModel ({type(exc).__name__}): {text}")


def _run_error(exc: Exception) -> EdgesegError:
    """A TF runtime error as our error, keeping its canonical code (OpError.error_code)."""
    code = getattr(exc, "error_code", None)
    message = getattr(exc, "message", None) or str(exc)
    first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    try:
        status = Status(code) if code else Status.INTERNAL
    except ValueError:
        status = Status.INTERNAL
    return EdgesegError(f"running the model failed: {first}", status)
