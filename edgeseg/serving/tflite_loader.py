"""TfLiteLoader: serves a version folder's ``model.tflite`` with LiteRT instead of its SavedModel.

Contract: the same as loader.py's :class:`~edgeseg.serving.loader.Loader` (cheap
construction, :meth:`TfLiteLoader.estimate_ram_bytes` from file sizes, :meth:`TfLiteLoader.load`
returns a model or raises an :class:`~edgeseg.errors.EdgesegError` and leaves nothing
behind), so the Manager cannot tell them apart. It is chosen per version folder by
:func:`edgeseg.serving.loader.version_loader` when ``--prefer_tflite_model`` (or the model's
``prefer_tflite_model`` config field) is true and the folder has ``model.tflite``, as TF
Serving's SavedModelBundleFactory does.

The loaded :class:`TfLiteModel` offers what requests use of a SavedModel: ``signature_defs``
(see tflite_signatures.py) and ``run(feeds, fetches)`` over tensor names, thread-safe. Each
run takes one interpreter from the version's pools (tflite_pool.py), feeds it (an input whose
shape changed is resized and the tensors re-allocated, TF Serving's ResizeInputTensor;
otherwise nothing is allocated per request), invokes and copies the outputs out. LiteRT's
XNNPACK delegate stays on unless ``reference_kernels`` asks for TFLite's builtin int8
kernels (bit-exact with serve_quantized, slower). The runtime is ``ai_edge_litert``, never
``tf.lite``: this module imports no TensorFlow.

Load errors: no file is NOT_FOUND; an empty, truncated or corrupt file DATA_LOSS; an op the
LiteRT runtime lacks UNIMPLEMENTED naming the op. Run errors keep TF Serving's shape: an
INTERNAL "running the model failed: ..." that signatures.py turns into INVALID_ARGUMENT when
an input's shape is outside the signature.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import (
    DataLoss,
    DeadlineExceeded,
    EdgesegError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Status,
    Unimplemented,
)
from edgeseg.model_contract import TFLITE_FILE
from edgeseg.serving.tflite_pool import InterpreterPools
from edgeseg.serving.tflite_signatures import Signature, read_signatures

log = logging.getLogger(__name__)

RAM_ESTIMATE_MULTIPLIER = 1.2
MAX_PLANS = 64


def cpu_count() -> int:
    """CPUs this process may run on (TF Serving's NumSchedulableCPUs)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class TfLiteOptions:
    """How each model.tflite version runs: pools x interpreters, LiteRT threads each."""

    pools: int = 1
    per_pool: int = 1
    num_threads: int = 0  # 0: the CPUs shared out among the interpreters, at least 1
    reference_kernels: bool = False  # TFLite's builtin int8 kernels, not XNNPACK

    @property
    def threads(self) -> int:
        if self.num_threads > 0:
            return self.num_threads
        return max(1, cpu_count() // (self.pools * self.per_pool))


class _Slot:
    """One interpreter and the input shapes it is allocated for; one request at a time."""

    def __init__(self, build: Callable[[], Any], subgraphs: Sequence[int],
                 interpreter: Any = None) -> None:
        self._build = build
        self._subgraphs = tuple(sorted(set(subgraphs)))
        self._reset(interpreter if interpreter is not None else build())

    def _reset(self, interpreter: Any) -> None:
        self.interpreter = interpreter
        self._wrapper = interpreter._interpreter  # runs any subgraph
        self._shapes: dict[tuple[int, int], tuple[int, ...]] = {}
        for subgraph in self._subgraphs:
            if subgraph:  # the primary one was allocated when built
                self._wrapper.AllocateTensors(subgraph)

    def _shape(self, subgraph: int, index: int) -> tuple[int, ...]:
        key = (subgraph, index)
        if key not in self._shapes:
            details = self.interpreter._get_tensor_details(index, subgraph)
            self._shapes[key] = tuple(int(d) for d in details["shape"])
        return self._shapes[key]

    def run(self, subgraph: int, inputs: Sequence[tuple[int, np.ndarray]],
            outputs: Sequence[int]) -> list[np.ndarray]:
        wrapper, touched = self._wrapper, False
        try:
            for index, value in inputs:
                if self._shape(subgraph, index) != value.shape:
                    touched = True
                    wrapper.ResizeInputTensor(index, np.array(value.shape, dtype=np.int32),
                                              False, subgraph)
                    self._shapes[(subgraph, index)] = value.shape
            if touched:
                wrapper.AllocateTensors(subgraph)
            for index, value in inputs:
                wrapper.SetTensor(index, np.ascontiguousarray(value), subgraph)
            touched = True
            wrapper.Invoke(subgraph)
            return [wrapper.GetTensor(index, subgraph) for index in outputs]
        except Exception:
            if touched:  # resized or mid-invoke: start the next request from a clean one
                self._reset(self._build())
            raise


@dataclass(frozen=True)
class _Plan:
    subgraph: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


class TfLiteModel:
    """A model.tflite loaded into pools of LiteRT interpreters."""

    def __init__(self, path: Path, signatures: Mapping[str, Signature],
                 pools: InterpreterPools) -> None:
        self.path = path
        self.signatures = dict(signatures)
        self.signature_defs = {k: s.definition for k, s in self.signatures.items()}
        self.pools = pools
        self._plans: dict[tuple, _Plan] = {}
        self._lock = threading.Lock()

    def _plan(self, feeds: tuple[str, ...], fetches: tuple[str, ...]) -> _Plan:
        key = (feeds, fetches)
        with self._lock:
            plan = self._plans.get(key)
        if plan is not None:
            return plan
        for sig in self.signatures.values():
            if set(feeds) == set(sig.inputs) and all(f in sig.outputs for f in fetches):
                plan = _Plan(sig.subgraph, tuple(sig.inputs[f] for f in feeds),
                             tuple(sig.outputs[f] for f in fetches))
                break
        else:
            raise InvalidArgument(f"{self.path.name}: no signature takes exactly the inputs "
                                  f"{sorted(feeds)} and gives {sorted(fetches)}")
        with self._lock:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def run(self, feeds: Mapping[str, Any], fetches: Sequence[str],
            timeout_ms: int = 0) -> list[Any]:
        """Run on one free interpreter; ``timeout_ms`` > 0 bounds the wait for one and the
        whole call (an invoke cannot be interrupted: a late result is DEADLINE_EXCEEDED)."""
        plan = self._plan(tuple(feeds), tuple(fetches))
        values = list(feeds.values())
        started = time.monotonic()
        with self.pools.acquire(timeout_ms / 1000 if timeout_ms > 0 else None) as slot:
            try:
                results = slot.run(plan.subgraph, list(zip(plan.inputs, values, strict=True)),
                                   plan.outputs)
            except Exception as exc:
                raise _run_error(exc) from exc
        if timeout_ms > 0 and (time.monotonic() - started) * 1000 > timeout_ms:
            raise DeadlineExceeded(f"running the model took longer than {timeout_ms} ms")
        return results

    def close(self) -> None:
        self.pools.close()


class TfLiteLoader:
    """Loads ``path/model.tflite`` (one version folder) into interpreter pools."""

    def __init__(self, path: str | Path, options: TfLiteOptions | None = None,
                 warmup: bool = True, batching: Any = None) -> None:
        self.path = Path(path)
        self.file = self.path / TFLITE_FILE
        self.options = options or TfLiteOptions()
        self.warmup = warmup
        self.batching = batching

    def estimate_ram_bytes(self) -> int:
        """The flatbuffer once, plus XNNPACK's packed weights in every interpreter."""
        size = self.file.stat().st_size if self.file.is_file() else 0
        interpreters = self.options.pools * self.options.per_pool
        return int(size * (1 + interpreters) * RAM_ESTIMATE_MULTIPLIER)

    def check(self) -> None:
        from edgeseg.serving.loader import available_ram_bytes

        if not self.file.is_file():
            raise NotFound(f"no {TFLITE_FILE} in {self.path}")
        need, free = self.estimate_ram_bytes(), available_ram_bytes()
        if free is not None and need > free:
            raise ResourceExhausted(
                f"loading {self.file} needs about {need} bytes of RAM; {free} are available")

    def load(self) -> Any:
        from edgeseg.serving import integrity
        from edgeseg.serving.loader import prepare

        self.check()
        data = self.file.read_bytes()
        integrity.check_tflite(self.file, data)
        make = functools.partial(build_interpreter, data, self.options.threads, self.file,
                                 self.options.reference_kernels)
        first = make()
        try:
            signatures = read_signatures(first, data)
        except EdgesegError as exc:
            raise type(exc)(f"{self.file}: {exc.message}", exc.status) from None
        subgraphs = [s.subgraph for s in signatures.values()]
        log.info("%s: LiteRT, %d pool(s) of %d interpreter(s), %d thread(s) each, %s; "
                 "signatures %s", self.file, self.options.pools, self.options.per_pool,
                 self.options.threads,
                 "reference kernels" if self.options.reference_kernels else "XNNPACK on",
                 sorted(signatures))
        pools = InterpreterPools(lambda: _Slot(make, subgraphs), self.options.pools,
                                 self.options.per_pool, first=_Slot(make, subgraphs, first))
        return prepare(TfLiteModel(self.path, signatures, pools), self.path, self.warmup,
                       self.batching)


def build_interpreter(data: bytes, threads: int, file: Path, reference: bool = False) -> Any:
    """A LiteRT interpreter with its tensors allocated: builtin ops with XNNPACK, or with
    ``reference`` TFLite's builtin kernels alone (the int8 reference serve_quantized
    reproduces bit for bit)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if reference
                else OpResolverType.AUTO)
    try:
        interpreter = Interpreter(model_content=data, num_threads=threads,
                                  experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except Exception as exc:
        raise load_error(file, exc) from None
    return interpreter


_MISSING_OP = (re.compile(r"unresolved custom op: ([^\s.]+)"),
               re.compile(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'"))


def load_error(file: Path, exc: Exception) -> EdgesegError:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    for pattern in _MISSING_OP:
        match = pattern.search(text)
        if match:
            op = match.group(1) + (f" (version {match.group(2)})" if match.lastindex == 2 else "")
            return Unimplemented(
                f"{file}: op {op} is not in LiteRT's builtin op resolver; this model needs "
                f"a runtime that registers it ({first})")
    if "not a valid Flatbuffer" in text:
        return DataLoss(f"{file}: not a valid TFLite flatbuffer (corrupt or truncated)")
    return DataLoss(f"{file}: LiteRT cannot load it: {first}")


def _run_error(exc: Exception) -> EdgesegError:
    if isinstance(exc, EdgesegError):
        return exc
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return EdgesegError(f"running the model failed: {first}", Status.INTERNAL)
