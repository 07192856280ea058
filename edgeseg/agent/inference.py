"""gRPC Predict against any TF-Serving-compatible server: pipelined, with deadline and backoff.

Contract:

* :func:`build_request` and :func:`read_response` are pure: a BGR frame becomes a
  PredictRequest (resized to the model's input size, RGB, uint8 tensor_content for
  ``serving_default`` or JPEG bytes for ``predict_encoded``), and a PredictResponse
  becomes a uint8 class map at the frame's size (nearest-neighbour, so class ids stay
  exact). :func:`input_size_from_metadata` reads the signature's fixed H, W if any.
* :class:`InferenceLoop` owns one thread. It takes a slot (at most ``max_in_flight``
  requests outstanding), THEN the newest frame — so a frame never waits for a slot and
  goes stale — and sends it with ``future()`` so transfer and compute overlap. Replies
  arrive on gRPC's threads, which decode them where they arrive (:func:`read_response`:
  the class map at the frame's size, its decode time counted as ``postprocess``) and put
  a :class:`Result` into the bounded result queue, so later stages see class maps, never
  protobufs. A failed call drops its frame (the ledger counts it: ``server_unavailable``
  or ``inference_error``) and the next send waits a capped, jittered backoff; frames
  arriving meanwhile replace each other in the size-1 capture queue (counted there), so
  nothing queues without bound while the server is down. A reply that cannot be read
  drops its frame as ``inference_error`` (no backoff: the server is up).
* When the frame queue is closed the loop waits for its in-flight calls (each bounded
  by the deadline) and closes the result queue. The channel is closed by ``close``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import grpc
import numpy as np

from edgeseg.agent.backoff import Backoff
from edgeseg.agent.capture import Frame
from edgeseg.agent.config import ClientTlsConfig, ServerConfig
from edgeseg.agent.metrics import AgentMetrics
from edgeseg.agent.queues import Closed, DropOldestQueue
from edgeseg.errors import InvalidArgument
from edgeseg.model_contract import IMAGES, PREDICT_ENCODED, SEGMENTATION_MAP
from edgeseg.wire.apis import get_model_metadata_pb2, model_pb2, predict_pb2
from edgeseg.wire.schema import Message
from edgeseg.wire.services import GET_MODEL_METADATA_METHOD, PREDICT_METHOD
from edgeseg.wire.tensors import decode, encode

log = logging.getLogger("edgeseg.agent.inference")

INPUT_KEY = IMAGES
OUTPUT_KEY = SEGMENTATION_MAP


@dataclass
class Result:
    """One decoded reply: the frame's class map and the model version that answered."""

    frame: Frame
    class_map: np.ndarray  # (H, W) uint8 at the frame's size
    version: int | None


def model_spec(cfg: ServerConfig, signature: str | None = None) -> Message:
    spec = model_pb2.ModelSpec(name=cfg.model, signature_name=signature or cfg.signature)
    if cfg.version is not None:
        spec.version.value = cfg.version
    elif cfg.version_label:
        spec.version_label = cfg.version_label
    return spec


def build_request(image_bgr: np.ndarray, cfg: ServerConfig, input_size: tuple[int, int] | None
                  ) -> Message:
    if input_size and tuple(input_size) != image_bgr.shape[:2]:
        h, w = input_size
        image_bgr = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_AREA)
    request = predict_pb2.PredictRequest(model_spec=model_spec(cfg))
    if cfg.signature == PREDICT_ENCODED:
        ok, jpeg = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        if not ok:
            raise InvalidArgument("JPEG encoding of the frame failed")
        request.inputs[INPUT_KEY].CopyFrom(encode(np.array([jpeg.tobytes()], dtype=object)))
    else:
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        encode(rgb[np.newaxis], content=True, out=request.inputs[INPUT_KEY])
    return request


def read_response(response: Message, frame_hw: tuple[int, int]) -> tuple[np.ndarray, int | None]:
    """(class map uint8 at frame_hw, model version or None) from a PredictResponse."""
    outputs = response.outputs
    if OUTPUT_KEY in outputs:
        tensor = outputs[OUTPUT_KEY]
    elif len(outputs) == 1:
        tensor = next(iter(outputs.values()))
    else:
        raise InvalidArgument(f"reply has no {OUTPUT_KEY!r} output (has {sorted(outputs)})")
    class_map = decode(tensor, f"output {OUTPUT_KEY!r}")
    if class_map.ndim == 3 and class_map.shape[0] == 1:
        class_map = class_map[0]
    if class_map.ndim != 2:
        raise InvalidArgument(f"segmentation map must be [1, H, W], got {class_map.shape}")
    if class_map.dtype != np.uint8:
        if class_map.size and (class_map.min() < 0 or class_map.max() > 255):
            raise InvalidArgument("class ids outside 0..255 cannot be sent as an 8-bit PNG")
        class_map = class_map.astype(np.uint8)
    if class_map.shape != tuple(frame_hw):
        h, w = frame_hw
        class_map = cv2.resize(class_map, (w, h), interpolation=cv2.INTER_NEAREST)
    version = response.model_spec.version.value if response.model_spec.HasField("version") \
        else None
    return class_map, version


def input_size_from_metadata(response: Message, signature: str) -> tuple[int, int] | None:
    """The signature's fixed [H, W] from a GetModelMetadataResponse, or None if dynamic."""
    meta = response.metadata.get("signature_def")
    if meta is None or not meta.type_url.endswith("tensorflow.serving.SignatureDefMap"):
        return None
    sigs = get_model_metadata_pb2.SignatureDefMap.FromString(meta.value).signature_def
    if signature not in sigs or INPUT_KEY not in sigs[signature].inputs:
        return None
    dims = [d.size for d in sigs[signature].inputs[INPUT_KEY].tensor_shape.dim]
    if len(dims) == 4 and dims[1] > 0 and dims[2] > 0:
        return dims[1], dims[2]
    return None


# The server could not be reached or did not answer in time: retrying may help. Every
# other failure is the server answering with an error (bad input, model missing, bug).
_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED}


def drop_reason(exc: BaseException) -> str:
    """The ledger's reason for a frame whose Predict call failed with ``exc``."""
    code = exc.code() if hasattr(exc, "code") else None
    return "server_unavailable" if code in _UNAVAILABLE else "inference_error"


def make_channel(cfg: ServerConfig) -> grpc.Channel:
    size = cfg.max_message_mb * 1024 * 1024
    options: list[tuple[str, int | str]] = [
        ("grpc.max_send_message_length", size),
        ("grpc.max_receive_message_length", size),
        # gRPC's own reconnect backoff grows to 120 s by default: a restarted server would
        # sit unused for minutes. Keep it within our own cap.
        ("grpc.initial_reconnect_backoff_ms", int(cfg.backoff_initial_s * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(cfg.backoff_initial_s * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(cfg.backoff_max_s * 1000)),
    ]
    if cfg.tls is None:
        return grpc.insecure_channel(cfg.address, options=options)
    if cfg.tls.server_name:
        options.append(("grpc.ssl_target_name_override", cfg.tls.server_name))
    return grpc.secure_channel(cfg.address, _credentials(cfg.tls), options=options)


def _credentials(tls: ClientTlsConfig) -> grpc.ChannelCredentials:
    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path else None

    return grpc.ssl_channel_credentials(read(tls.ca_file), read(tls.key_file),
                                         read(tls.cert_file))


class InferenceLoop:
    def __init__(self, cfg: ServerConfig, frames: DropOldestQueue[Frame],
                 results: DropOldestQueue[Result], metrics: AgentMetrics,
                 channel: grpc.Channel | None = None) -> None:
        self.cfg = cfg
        self.frames, self.results, self.metrics = frames, results, metrics
        self.channel = channel or make_channel(cfg)
        self._predict = self.channel.unary_unary(
            PREDICT_METHOD, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=predict_pb2.PredictResponse.FromString)
        self._metadata = self.channel.unary_unary(
            GET_MODEL_METADATA_METHOD, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=get_model_metadata_pb2.GetModelMetadataResponse.FromString)
        self.input_size: tuple[int, int] | None = cfg.input_size
        self._resolved = cfg.input_size is not None
        self._slots = threading.Semaphore(cfg.max_in_flight)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._failing = False
        self._backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        self._retry_at = 0.0
        self.failed = False  # the loop died of a bug (the pipeline then exits 1)
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def close(self) -> None:
        self.channel.close()

    def _run(self) -> None:
        try:
            while True:
                if not self._take_slot():
                    continue
                try:
                    frame = self.frames.get(timeout=0.2)
                except Closed:
                    self._slots.release()
                    break
                if frame is None or not self._wait_retry() or not self._resolve():
                    self._slots.release()
                    if frame is not None:
                        self._dropped(frame, "server_unavailable")
                    continue
                self._send(frame)
            self._drain()
        except Exception:
            log.exception("inference: the request loop failed")
            self.failed = True
        finally:
            self.results.close()

    def _take_slot(self) -> bool:
        return self._slots.acquire(timeout=0.2)

    def _wait_retry(self) -> bool:
        """False while a backoff after a failure is still running (the frame is dropped)."""
        return time.monotonic() >= self._retry_at

    def _dropped(self, frame: Frame, reason: str) -> None:
        self.metrics.ledger.drop(frame.id, reason)

    def _resolve(self) -> bool:
        if self._resolved:
            return True
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_spec(self.cfg), metadata_field=["signature_def"])
        try:
            reply = self._metadata(request, timeout=self.cfg.deadline_s)
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND):
                self._failed(exc)
                return False
            reply = None
        self.input_size = input_size_from_metadata(reply, self.cfg.signature) if reply else None
        self._resolved = True
        if self.input_size:
            size = (f"frames resized to {self.input_size[1]}x{self.input_size[0]} (WxH) "
                    f"before sending")
        else:
            size = "frames sent at their own size (the model takes any)"
        log.info("inference: model %r, signature %r: %s", self.cfg.model, self.cfg.signature,
                 size)
        return True

    def _send(self, frame: Frame) -> None:
        try:
            request = build_request(frame.image, self.cfg, self.input_size)
        except InvalidArgument as exc:
            log.error("inference: %s", exc.message)
            self._slots.release()
            self._dropped(frame, "inference_error")
            return
        sent = time.monotonic()
        frame.timings["queue"] = sent - frame.captured_mono
        with self._lock:
            self._in_flight += 1
            self.metrics.in_flight.set(self._in_flight)
        future = self._predict.future(request, timeout=self.cfg.deadline_s)
        future.add_done_callback(lambda f: self._done(frame, f, sent))

    def _done(self, frame: Frame, future: grpc.Future, sent: float) -> None:
        with self._lock:
            self._in_flight -= 1
            self.metrics.in_flight.set(self._in_flight)
        try:
            exc = future.exception()
            if exc is not None:
                self._failed(exc)
                self._dropped(frame, drop_reason(exc))
                return
            frame.timings["inference"] = time.monotonic() - sent
            self._recovered()
            self.metrics.frames_processed.inc()
            result = self._decode(frame, future.result())
            if result is not None:
                self.results.put(result)
        finally:
            self._slots.release()

    def _decode(self, frame: Frame, response: Message) -> Result | None:
        """The reply as a class map at the frame's size; a reply that cannot be read drops
        its frame (``inference_error``). The time it takes counts as ``postprocess``."""
        started = time.monotonic()
        try:
            class_map, version = read_response(response, frame.image.shape[:2])
        except InvalidArgument as exc:
            log.error("inference: dropping a reply: %s", exc.message)
            self._dropped(frame, "inference_error")
            return None
        frame.timings["postprocess"] = time.monotonic() - started
        return Result(frame, class_map, version)

    def _failed(self, exc: BaseException) -> None:
        self.metrics.inference_errors.inc()
        with self._lock:
            wait = self._backoff.next_delay()
            self._retry_at = time.monotonic() + wait
            first = not self._failing
            self._failing = True
        code = exc.code().name if hasattr(exc, "code") else type(exc).__name__
        detail = exc.details() if hasattr(exc, "details") else str(exc)
        level = logging.WARNING if first else logging.DEBUG
        log.log(level, "inference: Predict on %s failed (%s: %s); dropping frames, retrying "
                "in %.1f s", self.cfg.address, code, detail, wait)

    def _recovered(self) -> None:
        with self._lock:
            was_failing, self._failing = self._failing, False
            self._backoff.reset()
        if was_failing:
            log.warning("inference: server %s answers again", self.cfg.address)

    def _drain(self) -> None:
        deadline = time.monotonic() + self.cfg.deadline_s + 1.0
        taken = 0
        while taken < self.cfg.max_in_flight and time.monotonic() < deadline:
            if self._slots.acquire(timeout=0.1):
                taken += 1
