"""edgeseg.wire's gRPC services (grpc's generic API, no *_pb2_grpc) interoperate with the
official tensorflow_serving stubs in both pairings: official client -> our server, our
client -> official server. Real gRPC over loopback."""

from __future__ import annotations

from concurrent import futures

import grpc
import numpy as np
import pytest

from edgeseg.wire import services
from edgeseg.wire.apis import (
    SIGNATURE_DEF_MAP_TYPE_URL,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)
from edgeseg.wire.tensors import decode, encode

official_grpc = pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc",
                                    reason="needs edgeseg[tensorflow]")
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2 as official_gmm,
)
from tensorflow_serving.apis import (  # noqa: E402
    get_model_status_pb2 as official_gms,
)
from tensorflow_serving.apis import (  # noqa: E402
    model_service_pb2_grpc as official_model_grpc,
)
from tensorflow_serving.apis import (  # noqa: E402
    predict_pb2 as official_predict,
)


def _start(register) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


class OurPredictions(services.PredictionServiceServicer):
    """Doubles input 'x'; Classify etc. are left to the base class (UNIMPLEMENTED)."""

    def Predict(self, request, context):  # the .proto's method name
        reply = predict_pb2.PredictResponse()
        reply.model_spec.name = request.model_spec.name
        reply.model_spec.version.value = 7
        encode(decode(request.inputs["x"]) * 2, out=reply.outputs["y"])
        return reply

    def GetModelMetadata(self, request, context):
        sigmap = get_model_metadata_pb2.SignatureDefMap()
        sigmap.signature_def["serving_default"].inputs["x"].name = "x:0"
        reply = get_model_metadata_pb2.GetModelMetadataResponse()
        reply.model_spec.name = request.model_spec.name
        reply.metadata["signature_def"].Pack(sigmap)
        return reply


class OurModels(services.ModelServiceServicer):
    def GetModelStatus(self, request, context):
        reply = get_model_status_pb2.GetModelStatusResponse()
        status = reply.model_version_status.add(version=3)
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return reply


@pytest.fixture(scope="module")
def our_server():
    def register(server):
        services.prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            OurPredictions(), server)
        services.model_service_pb2_grpc.add_ModelServiceServicer_to_server(OurModels(), server)

    server, address = _start(register)
    with grpc.insecure_channel(address) as channel:
        yield channel
    server.stop(None)


def test_official_client_predicts_on_our_server(our_server):
    request = official_predict.PredictRequest()
    request.model_spec.name = "half"
    encode(np.float32([1.0, 2.5]), out=request.inputs["x"])
    reply = official_grpc.PredictionServiceStub(our_server).Predict(request, timeout=10)
    assert isinstance(reply, official_predict.PredictResponse)
    assert reply.model_spec.version.value == 7
    assert decode(reply.outputs["y"]).tolist() == [2.0, 5.0]


def test_official_client_reads_our_metadata_and_status(our_server):
    request = official_gmm.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half"
    reply = official_grpc.PredictionServiceStub(our_server).GetModelMetadata(request, timeout=10)
    assert reply.metadata["signature_def"].type_url == SIGNATURE_DEF_MAP_TYPE_URL
    sigmap = official_gmm.SignatureDefMap()
    reply.metadata["signature_def"].Unpack(sigmap)
    assert sigmap.signature_def["serving_default"].inputs["x"].name == "x:0"
    status = official_model_grpc.ModelServiceStub(our_server).GetModelStatus(
        official_gms.GetModelStatusRequest(), timeout=10)
    assert status.model_version_status[0].state == official_gms.ModelVersionStatus.AVAILABLE


def test_a_method_not_overridden_is_unimplemented(our_server):
    with pytest.raises(grpc.RpcError) as err:
        services.PredictionServiceStub(our_server).Classify(
            services.METHODS[services.PREDICTION_SERVICE]["Classify"][0](), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as err:
        services.ModelServiceStub(our_server).HandleReloadConfigRequest(
            services.METHODS[services.MODEL_SERVICE]["HandleReloadConfigRequest"][0](),
            timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


class OfficialPredictions(official_grpc.PredictionServiceServicer):
    def Predict(self, request, context):
        reply = official_predict.PredictResponse()
        reply.model_spec.CopyFrom(request.model_spec)
        encode(decode(request.inputs["x"]) + 1, out=reply.outputs["y"])
        return reply


@pytest.fixture(scope="module")
def official_server():
    server, address = _start(lambda s: official_grpc.add_PredictionServiceServicer_to_server(
        OfficialPredictions(), s))
    with grpc.insecure_channel(address) as channel:
        yield channel
    server.stop(None)


def test_our_client_predicts_on_an_official_server(official_server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.model_spec.version_label = "stable"
    encode(np.arange(6, dtype=np.int64).reshape(2, 3), content=True, out=request.inputs["x"])
    reply = services.PredictionServiceStub(official_server).Predict(request, timeout=10)
    assert isinstance(reply, predict_pb2.PredictResponse)
    assert reply.model_spec.version_label == "stable"
    assert decode(reply.outputs["y"]).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_method_paths_are_tf_servings():
    assert services.PREDICT_METHOD == "/tensorflow.serving.PredictionService/Predict"
    assert services.method_path(services.MODEL_SERVICE, "GetModelStatus") == \
        "/tensorflow.serving.ModelService/GetModelStatus"
    with pytest.raises(KeyError):
        services.method_path(services.PREDICTION_SERVICE, "Nope")
