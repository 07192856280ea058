"""Warmup: replay a version's recorded requests before it becomes AVAILABLE.

Contract (as TF Serving's saved_model_warmup): when a version folder holds
``assets.extra/tf_serving_warmup_requests`` (a TFRecord of ``PredictionLog``), the loader
replays its records (Predict, Classify, Regress and MultiInference logs; at most
:data:`MAX_RECORDS`) against the freshly loaded model, through the same code as real
requests, before the Manager marks the version AVAILABLE, so the first real request does not
pay for TensorFlow's lazy initialisation (tensorflow/serving#385). A record that fails, an
unknown log type or too many records fail the load with INVALID_ARGUMENT naming the record.
No file, no warmup. :func:`replay` returns the number of records replayed.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from edgeseg.errors import DataLoss, EdgesegError, InvalidArgument
from edgeseg.model_contract import ASSETS_EXTRA
from edgeseg.serving import tfrecord

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_RECORDS = 1000


class _Handle:
    """What predict.py and examples.py read from a servable handle."""

    def __init__(self, model: Any) -> None:
        self.model, self.name, self.version = model, "warmup", 0

    def __enter__(self) -> _Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _OneModel:
    """A core holding just the model being loaded, so records replay through predict.py
    and classify.py/regress.py/multi_inference.py exactly as real requests will."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.options = SimpleNamespace(method_name_check=False)

    def handle(self, spec: Any) -> _Handle:
        return _Handle(self._model)


def warmup_file(version_path: str | Path) -> Path:
    return Path(version_path) / ASSETS_EXTRA / WARMUP_FILE


def _replay_one(core: Any, log: Any) -> None:  # a _OneModel: duck-typed, not a Core
    from edgeseg.serving import classify, multi_inference, predict, regress  # import warmup

    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        predict.predict(core, log.predict_log.request)
    elif kind == "classify_log":
        classify.classify(core, log.classify_log.request)
    elif kind == "regress_log":
        regress.regress(core, log.regress_log.request)
    elif kind == "multi_inference_log":
        multi_inference.multi_inference(core, log.multi_inference_log.request)
    else:
        raise InvalidArgument(f"unsupported log type {kind!r}")


def replay(model: Any, version_path: str | Path) -> int:
    path = warmup_file(version_path)
    if not path.is_file():
        return 0
    from edgeseg.wire.apis import prediction_log_pb2

    core = _OneModel(model)
    count = 0
    try:
        for raw in tfrecord.records(path):
            count += 1
            if count > MAX_RECORDS:
                raise InvalidArgument(f"warmup: {path} holds more than {MAX_RECORDS} records")
            _replay_record(core, prediction_log_pb2.PredictionLog, raw, count, path)
    except DataLoss as exc:
        raise InvalidArgument(f"warmup: {exc.message}") from None
    return count


def _replay_record(core: _OneModel, log_class: Any, raw: bytes, count: int, path: Path) -> None:
    try:
        _replay_one(core, log_class.FromString(raw))
    except EdgesegError as exc:
        raise InvalidArgument(f"warmup record {count} of {path} failed: {exc}") from None
    except Exception as exc:  # a corrupt record
        raise InvalidArgument(f"warmup record {count} of {path} is unreadable: "
                              f"{type(exc).__name__}: {exc}") from None
