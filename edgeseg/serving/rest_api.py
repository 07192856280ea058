"""REST transport: TF Serving's /v1/models API over the same core as gRPC.

Contract: routes as TF Serving's http_rest_api_handler::

    GET  /v1/models/NAME[/versions/N | /labels/L]            -> GetModelStatus as JSON
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata   -> GetModelMetadata as JSON
    GET  <prometheus path> (--monitoring_config_file)        -> metrics, Prometheus text
    GET  /v1/ready                                           -> 200, or 503 until every
                                                                configured model serves
    POST /v1/models/NAME[/versions/N | /labels/L]:predict    -> see json_codec.py
    POST /v1/models/NAME[/versions/N | /labels/L]:classify   -> Classify (tf.Examples)
    POST /v1/models/NAME[/versions/N | /labels/L]:regress    -> Regress

Handlers only convert (URL and JSON to protos or arrays, back to JSON) and delegate to the
core (model_service.py, predict.py, classify.py). Requests are counted and timed in
``_route`` (metrics.py); the one place statuses become HTTP codes is :data:`HTTP_CODES` /
:func:`_send_error`: INVALID_ARGUMENT and FAILED_PRECONDITION 400,
NOT_FOUND 404, RESOURCE_EXHAUSTED 429, UNIMPLEMENTED 501, UNAVAILABLE 503,
DEADLINE_EXCEEDED 504, anything else 500; the body is ``{"error": message}``. Bodies over
``max_body_bytes`` are refused (RESOURCE_EXHAUSTED, 429) before they are read. One thread
per connection.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    regression_pb2,
)

from edgeseg.errors import EdgesegError, InvalidArgument, NotFound, Status, Unavailable
from edgeseg.serving import classify, json_codec, model_service, protocompat, signatures
from edgeseg.serving.health import readiness
from edgeseg.serving.metrics import SERVING
from edgeseg.serving.predict import run_signature

log = logging.getLogger(__name__)

READY_PATH = "/v1/ready"  # edgeseg's readiness probe (TF Serving has none)
HTTP_CODES = {
    Status.INVALID_ARGUMENT: 400,
    Status.FAILED_PRECONDITION: 400,
    Status.NOT_FOUND: 404,
    Status.RESOURCE_EXHAUSTED: 429,
    Status.UNIMPLEMENTED: 501,
    Status.UNAVAILABLE: 503,
    Status.DEADLINE_EXCEEDED: 504,
}
_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>-?\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>\w+))?/?$"
)


def http_code(error: EdgesegError) -> int:
    return HTTP_CODES.get(error.status, 500)


def _spec(match: re.Match) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=match["name"])
    if match["version"] is not None:
        spec.version.value = int(match["version"])
    elif match["label"] is not None:
        spec.version_label = match["label"]
    return spec


def _as_json(message: Any) -> dict:
    return protocompat.message_to_dict(message)


def model_status(core: Any, spec: model_pb2.ModelSpec) -> dict:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
    return _as_json(model_service.get_model_status(core, request))


def model_metadata(core: Any, spec: model_pb2.ModelSpec) -> dict:
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec)
    request.metadata_field.append(model_service.SIGNATURE_DEF)
    response = model_service.get_model_metadata(core, request)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[model_service.SIGNATURE_DEF].Unpack(signature_map)
    return {"model_spec": _as_json(response.model_spec),
            "metadata": {model_service.SIGNATURE_DEF: _as_json(signature_map)}}


def predict(core: Any, spec: model_pb2.ModelSpec, body: Any, timeout_ms: int = 0) -> dict:
    name = body.get("signature_name", "") if isinstance(body, dict) else ""
    if not isinstance(name, str):
        raise InvalidArgument("'signature_name' must be a string")
    with core.handle(spec) as handle:
        _, signature = signatures.find_signature(handle.model.signature_defs, name)
        inputs, row_format = json_codec.predict_inputs(body, signature.inputs)
        outputs = run_signature(handle.model, signature, inputs, timeout_ms=timeout_ms)
    return json_codec.predict_outputs(outputs, row_format)


def classify_or_regress(core: Any, spec: model_pb2.ModelSpec, verb: str, body: Any,
                        timeout_ms: int = 0) -> dict:
    request_input = json_codec.examples_input(body)
    signature_name = body.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise InvalidArgument("'signature_name' must be a string")
    spec.signature_name = signature_name
    if verb == "classify":
        request = classification_pb2.ClassificationRequest(model_spec=spec, input=request_input)
        return json_codec.classification_json(
            classify.classify(core, request, timeout_ms).result)
    request = regression_pb2.RegressionRequest(model_spec=spec, input=request_input)
    return json_codec.regression_json(classify.regress(core, request, timeout_ms).result)


class _Handler(BaseHTTPRequestHandler):
    server_version = "edgeseg-serve"
    protocol_version = "HTTP/1.1"
    core: Any = None
    max_body_bytes = 0
    metrics_path: str | None = None  # Prometheus text on GET here, when set
    timeout_ms = 0  # --rest_api_timeout_in_ms for :predict, :classify and :regress

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, code: int, payload: Any) -> None:
        body = json.dumps(payload, indent=1).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, error: EdgesegError) -> None:
        self._send(http_code(error), {"error": error.message})

    def _route(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        if method == "GET" and self.metrics_path and path == self.metrics_path:
            self._send_metrics()
            return
        started = time.perf_counter()
        status = "OK"
        try:
            self._send(200, self._answer(method))
        except EdgesegError as exc:
            status = exc.status.name
            self._send_error(exc)
        except Exception as exc:  # a bug: logged with its traceback, answered 500
            status = "INTERNAL"
            log.exception("REST %s %s failed", method, self.path)
            self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
        finally:
            match = _PATH.match(path)
            verb = (match["verb"] or ("metadata" if match["metadata"] else "status")
                    if match else "unknown")
            SERVING.observe_request("rest", verb, match["name"] if match else "",
                                    (match["version"] or "") if match else "", "", status,
                                    time.perf_counter() - started)

    def _send_metrics(self) -> None:
        body = SERVING.registry.render().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, method: str) -> Any:
        if method == "GET" and self.path.split("?", 1)[0] == READY_PATH:
            ready, why = readiness(self.core)
            if not ready:
                raise Unavailable(why)
            return {"ready": True}
        match = _PATH.match(self.path.split("?", 1)[0])
        if match is None:
            raise NotFound(f"Malformed request: {method} {self.path}")
        spec = _spec(match)
        if method == "GET" and match["verb"] is None:
            if match["metadata"]:
                return model_metadata(self.core, spec)
            return model_status(self.core, spec)
        if method == "POST" and match["verb"] == "predict" and not match["metadata"]:
            return predict(self.core, spec, self._body(), self.timeout_ms)
        if method == "POST" and match["verb"] in ("classify", "regress") \
                and not match["metadata"]:
            return classify_or_regress(self.core, spec, match["verb"], self._body(),
                                       self.timeout_ms)
        raise NotFound(f"Malformed request: {method} {self.path}")

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise InvalidArgument("a Content-Length header is required") from None
        if length > self.max_body_bytes:
            self.close_connection = True
            raise EdgesegError(f"request body of {length} bytes is over the limit of "
                               f"{self.max_body_bytes}", Status.RESOURCE_EXHAUSTED)
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise InvalidArgument(f"the body is not valid JSON: {exc}") from None

    def do_GET(self) -> None:  # noqa: N802 - the base's naming
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")


class RestServer:
    """TF Serving's REST API on host:port, one thread per connection."""

    def __init__(self, core: Any, host: str, port: int, max_body_bytes: int,
                 context: ssl.SSLContext | None = None, metrics_path: str | None = None,
                 timeout_ms: int = 0) -> None:
        handler = type("Handler", (_Handler,), {"core": core, "max_body_bytes": max_body_bytes,
                                                "metrics_path": metrics_path,
                                                "timeout_ms": timeout_ms})
        self._server = ThreadingHTTPServer((host, port), handler)
        if context is not None:  # TLS; handshakes happen in the connection's own thread
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False)
            self._server.handle_error = self._handshake_failed
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="rest",
                                        daemon=True)

    @staticmethod
    def _handshake_failed(request: Any, client_address: Any) -> None:
        """A client that fails TLS (no or a wrong certificate) is dropped, logged briefly."""
        log.info("REST connection from %s dropped (TLS handshake or I/O failed)",
                 client_address[0] if client_address else "?")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
