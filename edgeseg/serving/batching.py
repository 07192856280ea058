"""Batching: concurrent calls to one loaded model merged into one run, then split back.

Contract (as TF Serving's batching session with its basic batch scheduler):
:class:`BatchingModel` wraps a loaded model and offers the same ``run(feeds, fetches)``.
Calls that feed and fetch the same tensors, with the same dtypes and the same shapes after
the first (batch) dimension, join one open batch; it closes when it holds
``max_batch_size`` rows or ``batch_timeout_micros`` after its first call, and one of
``num_batch_threads`` threads runs it: inputs concatenated on dimension 0 (padded to the
next ``allowed_batch_sizes`` entry by repeating the last row), ONE model run, each output
split back by rows. With ``pad_variable_length_inputs`` calls whose inputs differ after the
first dimension join one batch too: each input is padded at the end of every dimension to
the largest in the batch with its own first element (TF Serving's AddPadding), and outputs
are split by rows only, as TF Serving does. Calls without a batch dimension, or with more
rows than a batch holds, run on their own. When ``max_enqueued_batches`` batches are
already waiting, a new call is refused at once with RESOURCE_EXHAUSTED (gRPC; HTTP 429):
memory never grows without bound.
A failed run, or an output whose first dimension is not the batch, fails every call in the
batch with that error. Thread-safe; :meth:`BatchingModel.close` drains and stops.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError, Internal, InvalidArgument, ResourceExhausted
from edgeseg.serving import textproto
from edgeseg.wire.schema import MessageClass


@dataclass(frozen=True)
class BatchingOptions:
    max_batch_size: int = 32
    batch_timeout_s: float = 0.0
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def __post_init__(self) -> None:
        if min(self.max_batch_size, self.max_enqueued_batches, self.num_batch_threads) < 1:
            raise InvalidArgument("batching: max_batch_size, max_enqueued_batches and "
                                  "num_batch_threads must be >= 1")
        sizes = self.allowed_batch_sizes
        if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != self.max_batch_size):
            raise InvalidArgument("batching: allowed_batch_sizes must increase and end with "
                                  "max_batch_size")


@dataclass
class _Call:
    feeds: Mapping[str, np.ndarray]
    rows: int
    done: threading.Event = field(default_factory=threading.Event)
    result: list[np.ndarray] | None = None
    error: EdgesegError | None = None


@dataclass
class _Batch:
    key: tuple
    fetches: tuple[str, ...]
    opened_at: float
    calls: list[_Call] = field(default_factory=list)
    rows: int = 0


class BatchingModel:
    def __init__(self, model: Any, options: BatchingOptions, on_batch: Any = None) -> None:
        self._model = model
        self._options = options
        self._on_batch = on_batch  # called with each batch's size (metrics)
        self._cond = threading.Condition()
        self._open: dict[tuple, _Batch] = {}
        self._ready: deque[_Batch] = deque()
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
                         for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    @property
    def signature_defs(self) -> Mapping[str, Any]:
        return self._model.signature_defs

    @property
    def queued_batches(self) -> int:
        with self._cond:
            return len(self._ready) + len(self._open)

    def run(self, feeds: Mapping[str, Any], fetches: Sequence[str],
            timeout_ms: int = 0) -> list[Any]:
        """As the model's run. A batched call runs without its timeout (a batch is shared);
        a call run alone keeps it."""
        arrays = {name: np.asarray(value) for name, value in feeds.items()}
        rows = {a.shape[0] if a.ndim else None for a in arrays.values()}
        count = next(iter(rows)) if len(rows) == 1 else None
        if not arrays or not count or count > self._options.max_batch_size:
            # nothing to batch on (no batch dimension, or more rows than a batch holds)
            return (self._model.run(feeds, fetches, timeout_ms) if timeout_ms
                    else self._model.run(feeds, fetches))
        pad = self._options.pad_variable_length_inputs
        key = (tuple(fetches),) + tuple(
            (name, a.dtype.str, a.ndim if pad else a.shape[1:])
            for name, a in sorted(arrays.items()))
        call = _Call(arrays, count)
        self._enqueue(key, tuple(fetches), call)
        call.done.wait()
        if call.error is not None:
            raise call.error
        assert call.result is not None  # set before done, when there is no error
        return call.result

    def _enqueue(self, key: tuple, fetches: tuple[str, ...], call: _Call) -> None:
        with self._cond:
            if self._stopping:
                raise Internal("the model is being unloaded")
            batch = self._open.get(key)
            if batch is not None and batch.rows + call.rows > self._options.max_batch_size:
                self._close(batch)
                batch = None
            if batch is None:
                if len(self._ready) + len(self._open) >= self._options.max_enqueued_batches:
                    raise ResourceExhausted(
                        f"batching queue is full ({self._options.max_enqueued_batches} "
                        "batches waiting); try again later")
                batch = _Batch(key, fetches, time.monotonic())
                self._open[key] = batch
            batch.calls.append(call)
            batch.rows += call.rows
            if batch.rows >= self._options.max_batch_size:
                self._close(batch)  # full; with no timeout, a free thread takes it at once
            self._cond.notify_all()

    def _close(self, batch: _Batch) -> None:
        """Move an open batch to the ready queue. Holds the lock."""
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
            self._ready.append(batch)

    def _next_batch(self) -> _Batch | None:
        with self._cond:
            while True:
                if self._ready:
                    return self._ready.popleft()
                if self._stopping and not self._open:
                    return None
                now = time.monotonic()
                due = [b for b in self._open.values()
                       if self._stopping or now - b.opened_at >= self._options.batch_timeout_s]
                for batch in due:
                    self._close(batch)
                if self._ready:
                    continue
                waits = [b.opened_at + self._options.batch_timeout_s - now
                         for b in self._open.values()]
                self._cond.wait(min(waits) if waits else None)

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)

    def _padded_size(self, rows: int) -> int:
        for size in self._options.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows

    def _run(self, batch: _Batch) -> None:
        try:
            names = list(batch.calls[0].feeds)
            size = self._padded_size(batch.rows)
            feeds = {}
            for name in names:
                parts = [c.feeds[name] for c in batch.calls]
                if self._options.pad_variable_length_inputs:
                    parts = pad_to_largest(parts, name)
                joined = np.concatenate(parts)
                if size > batch.rows:  # pad by repeating the last row
                    joined = np.concatenate([joined, np.repeat(joined[-1:], size - batch.rows,
                                                                axis=0)])
                feeds[name] = joined
            outputs = self._model.run(feeds, batch.fetches)
            if self._on_batch is not None:
                self._on_batch(batch.rows)
            for fetch, out in zip(batch.fetches, outputs, strict=True):
                if np.ndim(out) == 0 or np.shape(out)[0] != size:
                    raise InvalidArgument(
                        f"batching: output {fetch} has shape {list(np.shape(out))}, not "
                        f"[{size}, ...]; this signature cannot be batched")
            start = 0
            for call in batch.calls:
                call.result = [out[start:start + call.rows] for out in outputs]
                start += call.rows
        except EdgesegError as exc:
            for call in batch.calls:
                call.error = exc
        except Exception as exc:  # a bug must not leave callers waiting forever
            for call in batch.calls:
                call.error = Internal(f"batching: {type(exc).__name__}: {exc}")
        finally:
            for call in batch.calls:
                call.done.set()

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._model.close()


def pad_to_largest(arrays: list[np.ndarray], name: str) -> list[np.ndarray]:
    """Pad each array at the end of dimensions 1.. to the largest size among them, with its
    own first element (TF Serving's AddPadding); the batch dimension is left alone."""
    largest = np.max([a.shape for a in arrays], axis=0)
    out = []
    for a in arrays:
        if a.size == 0:
            raise InvalidArgument(f"batching: input {name} is empty and cannot be padded "
                                  "(pad_variable_length_inputs pads with the first element)")
        widths = [(0, 0)] + [(0, int(m) - n) for m, n in zip(largest[1:], a.shape[1:],
                                                             strict=True)]
        out.append(np.pad(a, widths, constant_values=a.flat[0]) if any(w for _, w in widths)
                   else a)
    return out


def _parameters_class() -> MessageClass:
    def build(fdp: Any) -> None:
        msg = fdp.message_type.add(name="BatchingParameters")
        for number, name in enumerate(("max_batch_size", "batch_timeout_micros",
                                       "max_enqueued_batches", "num_batch_threads"), start=1):
            msg.field.add(name=name, number=number, type=11, label=1,
                          type_name=".google.protobuf.Int64Value")
        msg.field.add(name="thread_pool_name", number=5, type=11, label=1,
                      type_name=".google.protobuf.StringValue")
        msg.field.add(name="allowed_batch_sizes", number=6, type=3, label=3)
        msg.field.add(name="pad_variable_length_inputs", number=7, type=8, label=1)

    from google.protobuf import wrappers_pb2  # noqa: F401 - registers the dependency

    return textproto.message_class("BatchingParameters",
                                   "edgeseg/serving/batching_parameters.proto", build,
                                   ("google/protobuf/wrappers.proto",))


def parse_batching_parameters(text: str, origin: str = "batching parameters"
                              ) -> BatchingOptions:
    """TF Serving's BatchingParameters text proto as options (absent fields: defaults)."""
    message = textproto.parse(_parameters_class(), text, origin)
    defaults = BatchingOptions()
    values = {}
    for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
        if message.HasField(name):
            values[name] = getattr(message, name).value
    if message.HasField("batch_timeout_micros"):
        values["batch_timeout_s"] = message.batch_timeout_micros.value / 1e6
    try:
        return BatchingOptions(**{**defaults.__dict__, **values,
                                  "allowed_batch_sizes": tuple(message.allowed_batch_sizes),
                                  "pad_variable_length_inputs":
                                      message.pad_variable_length_inputs})
    except InvalidArgument as exc:
        raise InvalidArgument(f"{origin}: {exc}") from None
