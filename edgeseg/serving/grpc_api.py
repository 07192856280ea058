"""gRPC transport: TF Serving's PredictionService and ModelService over the core.

Contract: each servicer method only delegates to the transport-independent core
(predict.py, classify.py, regress.py, multi_inference.py, model_service.py) with the
request proto and returns its reply proto; Predict, Classify, Regress and MultiInference
also pass the client's deadline (:func:`deadline_ms`), which becomes the run's timeout (a
run past it is cancelled and answered DEADLINE_EXCEEDED). The one place statuses are mapped (and
requests counted and timed, metrics.py) is :func:`_call`: an
:class:`~edgeseg.errors.EdgesegError` becomes the gRPC status of the same canonical code
with its message; anything else is logged with its traceback and answered INTERNAL. The
servicers hold no state and are safe on the server's thread pool.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from edgeseg.errors import DeadlineExceeded, EdgesegError
from edgeseg.serving import (
    classify,
    model_service,
    multi_inference,
    predict,
    profiler,
    regress,
)
from edgeseg.serving.core_protocol import Core
from edgeseg.serving.metrics import SERVING, spec_labels
from edgeseg.wire.services import model_service_pb2_grpc, prediction_service_pb2_grpc

log = logging.getLogger(__name__)

_CODES = {code.value[0]: code for code in grpc.StatusCode}
MAX_TIMEOUT_S = 24 * 3600  # a longer deadline is as good as none


def grpc_code(error: EdgesegError) -> grpc.StatusCode:
    return _CODES.get(int(error.status), grpc.StatusCode.UNKNOWN)


def deadline_ms(context: grpc.ServicerContext) -> int:
    """The client's deadline as the run's timeout (0: none); DEADLINE_EXCEEDED when it has
    already passed, so nothing runs for a client that stopped waiting."""
    remaining = context.time_remaining()
    if remaining is None or remaining > MAX_TIMEOUT_S:
        return 0
    if remaining <= 0.001:
        raise DeadlineExceeded("the call's deadline passed before the model ran")
    return max(1, math.ceil(remaining * 1000))


def _within_deadline(fn: Callable[[Any, Any, int], Any],
                     context: grpc.ServicerContext) -> Callable[[Any, Any], Any]:
    """``fn(core, request, timeout_ms)`` run within the client's deadline."""
    return lambda core, request: fn(core, request, deadline_ms(context))


def _call(api: str, fn: Callable[[Any, Any], Any], core: Core, request: Any,
          context: grpc.ServicerContext) -> Any:
    started = time.perf_counter()
    status, response = "OK", None
    try:
        response = fn(core, request)
        return response
    except EdgesegError as exc:
        status = exc.status.name
        context.abort(grpc_code(exc), exc.message)
    except Exception as exc:
        status = "INTERNAL"
        log.exception("%s failed", api)
        context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
    finally:
        SERVING.observe_request("grpc", api, *spec_labels(request, response), status,
                                time.perf_counter() - started)


# built at run time (edgeseg.wire.services): Any to the type checker
_PredictionBase: Any = prediction_service_pb2_grpc.PredictionServiceServicer
_ModelBase: Any = model_service_pb2_grpc.ModelServiceServicer


class PredictionServicer(_PredictionBase):
    def __init__(self, core: Core) -> None:
        self._core = core

    def Predict(self, request, context):  # names fixed by the proto
        return _call("Predict", _within_deadline(predict.predict, context), self._core,
                     request, context)

    def Classify(self, request, context):
        return _call("Classify", _within_deadline(classify.classify, context), self._core,
                     request, context)

    def Regress(self, request, context):
        return _call("Regress", _within_deadline(regress.regress, context), self._core,
                     request, context)

    def MultiInference(self, request, context):
        return _call("MultiInference", _within_deadline(multi_inference.multi_inference,
                                                        context), self._core, request, context)

    def GetModelMetadata(self, request, context):
        return _call("GetModelMetadata", model_service.get_model_metadata, self._core, request,
                     context)


class ModelServicer(_ModelBase):
    def __init__(self, core: Core) -> None:
        self._core = core

    def GetModelStatus(self, request, context):
        return _call("GetModelStatus", model_service.get_model_status, self._core, request, context)

    def HandleReloadConfigRequest(self, request, context):
        return _call("HandleReloadConfigRequest", model_service.reload_config, self._core,
                     request, context)


def add_services(server: grpc.Server, core: Core, health_servicer: Any = None,
                 with_profiler: bool = True) -> None:
    """TF Serving's services on ``server``; ``tensorflow.ProfilerService`` too when
    ``with_profiler`` (profiler.wanted: it needs TensorFlow imported)."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), server)
    if with_profiler:
        profiler.add_profiler_service(server)  # tensorflow.ProfilerService, as TF Serving's
    if health_servicer is not None:  # grpc.health.v1, see health.py
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
