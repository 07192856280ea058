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

:class:`Routes` only converts (URL and JSON to protos or arrays, back to JSON) and delegates
to the core (model_service.py, predict.py, classify.py, regress.py); the transport
(connections, worker pool, timeouts, limits) is http_server.py. Requests are counted and timed in
:meth:`Routes.__call__` (metrics.py); the one place statuses become HTTP codes is
:data:`HTTP_CODES` / :func:`http_code`: INVALID_ARGUMENT and FAILED_PRECONDITION 400,
NOT_FOUND 404, RESOURCE_EXHAUSTED 429, UNIMPLEMENTED 501, UNAVAILABLE 503,
DEADLINE_EXCEEDED 504, anything else 500; the body is ``{"error": message}``. Bodies over
``max_body_bytes`` are refused (RESOURCE_EXHAUSTED, 429) before they are read; methods
other than GET and POST are UNIMPLEMENTED (501).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
from typing import Any

from edgeseg.errors import EdgesegError, InvalidArgument, NotFound, Status, Unavailable
from edgeseg.metrics import exposition
from edgeseg.serving import (
    classify,
    json_codec,
    model_service,
    protocompat,
    regress,
)
from edgeseg.serving import predict as predict_core
from edgeseg.serving.core_protocol import Core
from edgeseg.serving.health import readiness
from edgeseg.serving.http_message import Limits, Request, Response, json_response
from edgeseg.serving.http_server import HttpServer
from edgeseg.serving.metrics import SERVING
from edgeseg.wire.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    regression_pb2,
)
from edgeseg.wire.schema import Message

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


def _spec(match: re.Match) -> Message:
    spec = model_pb2.ModelSpec(name=match["name"])
    if match["version"] is not None:
        spec.version.value = int(match["version"])
    elif match["label"] is not None:
        spec.version_label = match["label"]
    return spec


def _as_json(message: Any) -> dict:
    return protocompat.message_to_dict(message)


def model_status(core: Core, spec: Message) -> dict:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
    return _as_json(model_service.get_model_status(core, request))


def model_metadata(core: Core, spec: Message) -> dict:
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec)
    request.metadata_field.append(model_service.SIGNATURE_DEF)
    response = model_service.get_model_metadata(core, request)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[model_service.SIGNATURE_DEF].Unpack(signature_map)
    return {"model_spec": _as_json(response.model_spec),
            "metadata": {model_service.SIGNATURE_DEF: _as_json(signature_map)}}


def predict(core: Core, spec: Message, body: Any, timeout_ms: int = 0) -> dict:
    name = body.get("signature_name", "") if isinstance(body, dict) else ""
    if not isinstance(name, str):
        raise InvalidArgument("'signature_name' must be a string")
    spec.signature_name = name
    row_format = []  # how the body was written (rows or columns) is how the answer is

    def decode(signature: Any) -> dict[str, Any]:
        inputs, rows = json_codec.predict_inputs(body, signature.inputs)
        row_format.append(rows)
        return inputs

    result = predict_core.run(core, spec, decode, timeout_ms=timeout_ms)
    return json_codec.predict_outputs(result.outputs, row_format[0])


def classify_or_regress(core: Core, spec: Message, verb: str, body: Any,
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
    return json_codec.regression_json(regress.regress(core, request, timeout_ms).result)


class Routes:
    """The REST API over the core: ``Routes(...)(request) -> Response``, thread-safe (it
    holds no per-request state); the transport is http_server.py."""

    def __init__(self, core: Core, max_body_bytes: int, metrics_path: str | None = None,
                 timeout_ms: int = 0) -> None:
        self.core, self.max_body_bytes = core, max_body_bytes
        self.metrics_path = metrics_path  # Prometheus text on GET here, when set
        self.timeout_ms = timeout_ms  # --rest_api_timeout_in_ms for :predict/:classify/:regress

    def is_quick(self, request: Request) -> bool:
        """Readiness and metrics: answered on the transport's loop thread, so they answer
        while every worker is busy."""
        path = request.path.split("?", 1)[0]
        return request.method == "GET" and path in (READY_PATH, self.metrics_path)

    def __call__(self, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        if request.method == "GET" and self.metrics_path and path == self.metrics_path:
            return Response(200, *exposition(SERVING.registry))
        started = time.perf_counter()
        status = "OK"
        try:
            # answers of POST (predict, classify, regress) carry arrays: on one line a
            # 513x513 mask is half the bytes and ~5x faster (bench/bench_rest_json.py)
            return json_response(200, self._answer(request, path),
                                 indent=None if request.method == "POST" else 1)
        except EdgesegError as exc:
            status = exc.status.name
            return json_response(http_code(exc), {"error": exc.message})
        except Exception as exc:  # a bug: logged with its traceback, answered 500
            status = "INTERNAL"
            log.exception("REST %s %s failed", request.method, request.path)
            return json_response(500, {"error": f"{type(exc).__name__}: {exc}"})
        finally:
            match = _PATH.match(path)
            verb = (match["verb"] or ("metadata" if match["metadata"] else "status")
                    if match else "unknown")
            SERVING.observe_request("rest", verb, match["name"] if match else "",
                                    (match["version"] or "") if match else "", "", status,
                                    time.perf_counter() - started)

    def _answer(self, request: Request, path: str) -> Any:
        method = request.method
        if method not in ("GET", "POST"):
            raise EdgesegError(f"Unsupported method {method!r}", Status.UNIMPLEMENTED)
        if method == "GET" and path == READY_PATH:
            ready, why = readiness(self.core)
            if not ready:
                raise Unavailable(why)
            return {"ready": True}
        match = _PATH.match(path)
        if match is None:
            raise NotFound(f"Malformed request: {method} {request.path}")
        spec = _spec(match)
        if method == "GET" and match["verb"] is None:
            if match["metadata"]:
                return model_metadata(self.core, spec)
            return model_status(self.core, spec)
        if method == "POST" and match["verb"] == "predict" and not match["metadata"]:
            return predict(self.core, spec, self._body(request), self.timeout_ms)
        if method == "POST" and match["verb"] in ("classify", "regress") \
                and not match["metadata"]:
            return classify_or_regress(self.core, spec, match["verb"], self._body(request),
                                       self.timeout_ms)
        raise NotFound(f"Malformed request: {method} {request.path}")

    def _body(self, request: Request) -> Any:
        if request.content_length is None:
            raise InvalidArgument("a Content-Length header is required")
        if request.body is None:  # the transport did not read it: over the limit
            raise EdgesegError(f"request body of {request.content_length} bytes is over the "
                               f"limit of {self.max_body_bytes}", Status.RESOURCE_EXHAUSTED)
        try:
            return json.loads(request.body)
        except (ValueError, RecursionError) as exc:
            raise InvalidArgument(f"the body is not valid JSON: {exc}") from None


class RestServer:
    """TF Serving's REST API on host:port: :class:`Routes` on an :class:`HttpServer`,
    its connections and requests in the metrics (transport "rest")."""

    def __init__(self, core: Core, host: str, port: int, limits: Limits,
                 context: ssl.SSLContext | None = None, metrics_path: str | None = None,
                 timeout_ms: int = 0) -> None:
        routes = Routes(core, limits.max_body_bytes, metrics_path, timeout_ms)
        self._server = HttpServer(routes, host, port, limits, context, inline=routes.is_quick,
                                  on_reject=lambda reason: SERVING.reject("rest", reason))
        SERVING.watch_transport("rest", self._server.stats)
        self.port = self._server.port

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
