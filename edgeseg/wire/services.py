"""TF Serving's gRPC services (PredictionService, ModelService) on grpc's generic API.

Contract: ``prediction_service_pb2_grpc`` and ``model_service_pb2_grpc`` offer what the
official generated modules offer — ``PredictionServiceStub(channel)``,
``PredictionServiceServicer`` (every method answers UNIMPLEMENTED until overridden) and
``add_PredictionServiceServicer_to_server(servicer, server)``, the same for ModelService —
built with ``channel.unary_unary`` and ``grpc.method_handlers_generic_handler`` from
:data:`METHODS`, so neither a client nor a server needs TensorFlow. Method paths are TF
Serving's (``/tensorflow.serving.PredictionService/Predict``...), so official clients and
servers interoperate with these (tests/test_wire_services.py runs both pairings).

Serializers call ``message.SerializeToString()`` on whatever they are given, so a servicer
may answer with these classes or with the official ones during a migration.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import grpc

from edgeseg.wire.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    predict_pb2,
    regression_pb2,
)
from edgeseg.wire.schema import Message, MessageClass

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"

# service -> method -> (request class, response class), as prediction_service.proto and
# model_service.proto declare them.
METHODS: dict[str, dict[str, tuple[MessageClass, MessageClass]]] = {
    PREDICTION_SERVICE: {
        "Classify": (classification_pb2.ClassificationRequest,
                     classification_pb2.ClassificationResponse),
        "Regress": (regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
        "Predict": (predict_pb2.PredictRequest, predict_pb2.PredictResponse),
        "MultiInference": (inference_pb2.MultiInferenceRequest,
                           inference_pb2.MultiInferenceResponse),
        "GetModelMetadata": (get_model_metadata_pb2.GetModelMetadataRequest,
                             get_model_metadata_pb2.GetModelMetadataResponse),
    },
    MODEL_SERVICE: {
        "GetModelStatus": (get_model_status_pb2.GetModelStatusRequest,
                           get_model_status_pb2.GetModelStatusResponse),
        "HandleReloadConfigRequest": (model_management_pb2.ReloadConfigRequest,
                                      model_management_pb2.ReloadConfigResponse),
    },
}


def method_path(service: str, method: str) -> str:
    if method not in METHODS[service]:
        raise KeyError(f"{service} has no method {method!r}")
    return f"/{service}/{method}"


PREDICT_METHOD = method_path(PREDICTION_SERVICE, "Predict")
GET_MODEL_METADATA_METHOD = method_path(PREDICTION_SERVICE, "GetModelMetadata")


def _serialize(message: Message) -> bytes:
    data: bytes = message.SerializeToString()
    return data


class _Stub:
    """One callable attribute per method, e.g. ``stub.Predict(request, timeout=5)``."""

    SERVICE = ""

    def __init__(self, channel: grpc.Channel) -> None:
        for name, (_, response) in METHODS[self.SERVICE].items():
            setattr(self, name, channel.unary_unary(
                method_path(self.SERVICE, name), request_serializer=_serialize,
                response_deserializer=response.FromString))


class _Servicer:
    """Base class: a method a subclass does not override answers UNIMPLEMENTED."""

    SERVICE = ""

    @staticmethod
    def _unimplemented(request: Any, context: grpc.ServicerContext) -> Any:
        context.set_code(grpc.StatusCode.UNIMPLEMENTED)
        context.set_details("Method not implemented!")
        raise NotImplementedError("Method not implemented!")

    def __getattr__(self, name: str) -> Any:
        if name in METHODS.get(type(self).SERVICE, {}):
            return self._unimplemented
        raise AttributeError(name)


def add_servicer(service: str, servicer: Any, server: grpc.Server) -> None:
    """Register ``servicer``'s methods (named as in the .proto) for ``service`` on ``server``."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name), request_deserializer=request.FromString,
            response_serializer=_serialize)
        for name, (request, _) in METHODS[service].items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    if hasattr(server, "add_registered_method_handlers"):  # grpcio >= 1.63: faster lookup
        server.add_registered_method_handlers(service, handlers)


class PredictionServiceStub(_Stub):
    SERVICE = PREDICTION_SERVICE


class PredictionServiceServicer(_Servicer):
    SERVICE = PREDICTION_SERVICE


class ModelServiceStub(_Stub):
    SERVICE = MODEL_SERVICE


class ModelServiceServicer(_Servicer):
    SERVICE = MODEL_SERVICE


prediction_service_pb2_grpc = SimpleNamespace(
    PredictionServiceStub=PredictionServiceStub,
    PredictionServiceServicer=PredictionServiceServicer,
    add_PredictionServiceServicer_to_server=lambda servicer, server: add_servicer(
        PREDICTION_SERVICE, servicer, server),
)
model_service_pb2_grpc = SimpleNamespace(
    ModelServiceStub=ModelServiceStub,
    ModelServiceServicer=ModelServiceServicer,
    add_ModelServiceServicer_to_server=lambda servicer, server: add_servicer(
        MODEL_SERVICE, servicer, server),
)
