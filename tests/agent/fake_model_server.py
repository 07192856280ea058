"""A FAKE TF-Serving-compatible Predict server for the agent's logic tests — not a model.

It speaks the real wire protocol (PredictionService/Predict and GetModelMetadata, the
same bytes tensorflow_model_server uses) and answers with a numpy "segmentation": class 15
where the pixel is bright, else 0, at the input's size — enough to check that masks
travel, keep the frame's size and carry the right classes. The real end-to-end tests use
``edgeseg serve`` with a DeepLab export instead (test_e2e_real.py).

Run: python fake_model_server.py --port PORT [--delay SECONDS] [--input-size H W]
Prints "fake model server listening on PORT" on stderr when ready.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent import futures

import grpc
import numpy as np

from edgeseg.agent import protos
from edgeseg.agent.tensors import DT_STRING, DT_UINT8, from_tensor, to_tensor


def fake_segment(images: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] uint8 RGB -> [N, H, W] uint8: 15 where bright, else 0."""
    return np.where(images.mean(axis=-1) > 127, 15, 0).astype(np.uint8)


class FakeServer:
    def __init__(self, delay: float, input_size: tuple[int, int] | None, version: int = 1):
        self.delay, self.input_size, self.version = delay, input_size, version
        self.calls = 0
        self.active = 0
        self.max_active = 0  # most calls in progress at once (pipelining)
        self._lock = threading.Lock()

    def predict(self, request, context):
        with self._lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            return self._predict(request, context)
        finally:
            with self._lock:
                self.active -= 1

    def _predict(self, request, context):
        tensor = request.inputs["images"]
        if tensor.dtype == DT_STRING:
            import cv2

            bgr = cv2.imdecode(np.frombuffer(tensor.string_val[0], np.uint8), cv2.IMREAD_COLOR)
            images = bgr[np.newaxis, :, :, ::-1]
        elif tensor.dtype == DT_UINT8:
            images = from_tensor(tensor)
        else:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "fake server: uint8 or string")
        reply = protos.PredictResponse()
        reply.model_spec.name = request.model_spec.name
        reply.model_spec.version.value = self.version
        reply.model_spec.signature_name = request.model_spec.signature_name
        reply.outputs["segmentation_map"].CopyFrom(to_tensor(fake_segment(images)))
        return reply

    def metadata(self, request, context):
        sig = protos.SignatureDef(method_name="tensorflow/serving/predict")
        info = sig.inputs["images"]
        info.dtype = DT_UINT8
        h, w = self.input_size or (-1, -1)
        for n in (-1, h, w, 3):
            info.tensor_shape.dim.add(size=n)
        sigmap = protos.SignatureDefMap()
        sigmap.signature_def["serving_default"].CopyFrom(sig)
        reply = protos.GetModelMetadataResponse()
        reply.model_spec.name = request.model_spec.name
        reply.model_spec.version.value = self.version
        reply.metadata["signature_def"].type_url = protos.SIGNATURE_DEF_MAP_TYPE
        reply.metadata["signature_def"].value = sigmap.SerializeToString()
        return reply


def serve(port: int, delay: float = 0.0, input_size=None, host: str = "127.0.0.1"):
    fake = FakeServer(delay, input_size)
    handler = grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", {
        "Predict": grpc.unary_unary_rpc_method_handler(
            fake.predict, request_deserializer=protos.PredictRequest.FromString,
            response_serializer=lambda m: m.SerializeToString()),
        "GetModelMetadata": grpc.unary_unary_rpc_method_handler(
            fake.metadata, request_deserializer=protos.GetModelMetadataRequest.FromString,
            response_serializer=lambda m: m.SerializeToString()),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, fake, bound


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--input-size", type=int, nargs=2)
    a = ap.parse_args()
    srv, _, bound = serve(a.port, a.delay, tuple(a.input_size) if a.input_size else None)
    print(f"fake model server listening on {bound}", file=sys.stderr, flush=True)
    srv.wait_for_termination()
