"""TensorFlow's ProfilerService on the model server's gRPC port, as TF Serving registers it.

Contract: :func:`add_profiler_service` adds ``tensorflow.ProfilerService`` to a gRPC server,
so ``tf.profiler.experimental.client.trace("HOST:PORT", logdir, ms)`` and TensorBoard's
"Capture profile" record what this process's TensorFlow does while requests keep being
served. It returns False and adds nothing where TensorFlow's profiler cannot be imported (a
light install without TensorFlow).

- ``Profile``: profiles the whole process for ``opts.duration_ms`` (or the request's
  ``duration_ms``), then, as TensorFlow's own profiler_service_impl.cc, writes the XSpace to
  ``<repository_root>/<session_id>/<host_name>.xplane.pb`` (``:`` in the host name becomes
  ``_``; written beside and renamed, never half-written), or returns it in the response when
  ``emit_xspace`` is set; ``empty_trace`` says whether any event was recorded. TensorFlow
  allows one profiler session per process: a second capture while one runs is answered
  UNAVAILABLE, which the client retries. A cancelled call ends its capture early.
- ``Terminate``: ends the capture of that ``session_id`` now (its data is still written).
- ``Monitor`` and the continuous-profiling calls: UNIMPLEMENTED (TensorFlow's service
  answers Monitor the same way).

The repository path is a path on *this* machine, named by the client: as with TF Serving,
whoever can reach the gRPC port can have the server write profiles where it may write.

The request and response messages are defined at run time (textproto.py): no TensorFlow
wheel ships their Python modules; the wire names and field numbers are TensorFlow's.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from edgeseg.errors import EdgesegError, Internal, InvalidArgument, Unavailable
from edgeseg.serving import textproto
from edgeseg.wire.schema import MessageClass

log = logging.getLogger(__name__)

SERVICE = "tensorflow.ProfilerService"
DEFAULT_DURATION_MS = 1000
_POLL_S = 0.05  # how often a running capture looks for Terminate or a cancelled call
_T = {"uint64": 4, "string": 9, "bool": 8, "message": 11}


def _messages() -> dict[str, type]:
    def build(fdp: Any) -> None:
        def message(name: str, *fields: tuple[str, int, str, str]) -> None:
            msg = fdp.message_type.add(name=name)
            for field_name, number, kind, type_name in fields:
                field = msg.field.add(name=field_name, number=number, type=_T[kind], label=1)
                if type_name:
                    field.type_name = type_name

        # tsl/profiler/protobuf/profiler_service.proto; fields edgeseg does not read are
        # left out (protobuf keeps them as unknown fields).
        message("ProfileRequest", ("duration_ms", 1, "uint64", ""),
                ("opts", 4, "message", ".tensorflow.ProfileOptions"),
                ("repository_root", 5, "string", ""), ("session_id", 6, "string", ""),
                ("host_name", 7, "string", ""), ("emit_xspace", 9, "bool", ""))
        message("ProfileResponse", ("empty_trace", 7, "bool", ""),
                ("xspace", 8, "message", ".tensorflow.profiler.XSpace"))
        message("TerminateRequest", ("session_id", 1, "string", ""))
        message("TerminateResponse")

    from tensorflow.tsl.profiler.protobuf import (  # registers the dependencies
        profiler_options_pb2,
        xplane_pb2,
    )

    deps = (profiler_options_pb2.DESCRIPTOR.name, xplane_pb2.DESCRIPTOR.name)
    names = ("ProfileRequest", "ProfileResponse", "TerminateRequest", "TerminateResponse")
    return {name: textproto.message_class(name, "edgeseg/serving/profiler_service.proto",
                                          build, deps) for name in names}


def _session_options(opts: Any) -> dict[str, int]:
    """TensorFlow's ProfilerSession::Create rule: a versioned ProfileOptions is used as sent,
    an unversioned one means the defaults (host 2, device 1, python off)."""
    if opts.version:
        return {"host_tracer_level": opts.host_tracer_level,
                "device_tracer_level": opts.device_tracer_level,
                "python_tracer_level": opts.python_tracer_level}
    return {"host_tracer_level": 2, "device_tracer_level": 1, "python_tracer_level": 0}


def _has_events(xspace: Any) -> bool:
    return any(line.events for plane in xspace.planes for line in plane.lines)


class Profiler:
    """Captures of this process's TensorFlow activity; one at a time (TensorFlow's rule)."""

    def __init__(self, session_class: type, messages: dict[str, type]) -> None:
        self._session_class = session_class
        self._messages = messages
        self._busy = threading.Lock()
        self._stops: dict[str, threading.Event] = {}
        self._stops_lock = threading.Lock()

    def profile(self, request: Any, is_active=lambda: True) -> Any:
        if not request.emit_xspace and not request.repository_root:
            raise InvalidArgument("ProfileRequest has neither repository_root nor emit_xspace")
        if not self._busy.acquire(blocking=False):
            raise Unavailable("another profile is being captured in this server; try again")
        try:
            raw = self._capture(request, is_active)
        finally:
            self._busy.release()
        response = self._messages["ProfileResponse"]()
        response.xspace.ParseFromString(raw)
        response.empty_trace = not _has_events(response.xspace)
        if not request.emit_xspace:
            self._save(request, raw)
            response.ClearField("xspace")
        log.info("profile %s: %d ms captured%s", request.session_id or "(no id)",
                 request.opts.duration_ms or request.duration_ms,
                 ", no events" if response.empty_trace else "")
        return response

    def terminate(self, request: Any) -> Any:
        with self._stops_lock:
            self._stops.setdefault(request.session_id, threading.Event()).set()
        return self._messages["TerminateResponse"]()

    def _capture(self, request: Any, is_active) -> bytes:
        duration_s = (request.opts.duration_ms or request.duration_ms
                      or DEFAULT_DURATION_MS) / 1000
        with self._stops_lock:
            stop = self._stops.setdefault(request.session_id, threading.Event())
        with tempfile.TemporaryDirectory(prefix="edgeseg-profile-") as scratch:
            session = self._session_class()
            try:
                session.start(scratch, _session_options(request.opts))
            except Exception as exc:  # TensorFlow's status, e.g. another session in-process
                raise Unavailable(f"cannot start TensorFlow's profiler: {exc}") from None
            deadline = time.monotonic() + duration_s
            try:
                while is_active():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or stop.wait(min(_POLL_S, remaining)):
                        break
            finally:
                session.export_to_tb()  # ends the session; writes plugins/profile/RUN/HOST
                del session
                with self._stops_lock:
                    self._stops.pop(request.session_id, None)
            written = sorted(Path(scratch).glob("plugins/profile/*/*.xplane.pb"))
            if not written:
                raise Internal("TensorFlow's profiler wrote no XSpace")
            return written[0].read_bytes()

    @staticmethod
    def _save(request: Any, raw: bytes) -> None:
        host = (request.host_name or socket.gethostname()).replace(":", "_")
        run_dir = Path(request.repository_root) / request.session_id
        final = run_dir / f"{host}.xplane.pb"
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            partial = run_dir / f".{host}.xplane.pb.partial"
            partial.write_bytes(raw)
            os.replace(partial, final)
        except OSError as exc:
            raise Internal(f"cannot write the profile to {final}: {exc.strerror}") from None


def _unary(fn, request_class: MessageClass | None = None) -> grpc.RpcMethodHandler:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        from edgeseg.serving.grpc_api import grpc_code  # no import cycle

        try:
            return fn(request, context)
        except EdgesegError as exc:
            context.abort(grpc_code(exc), exc.message)
        except Exception as exc:
            log.exception("ProfilerService call failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

    return grpc.unary_unary_rpc_method_handler(
        handle, request_deserializer=request_class.FromString if request_class else None,
        response_serializer=(lambda m: m.SerializeToString()) if request_class else None)


def wanted(models: Any = (), prefer_tflite: bool = False) -> bool:
    """Whether ``edgeseg serve`` registers the profiler: TF Serving always has it, but it
    needs TensorFlow imported (~500 MB), which a server of only ``model.tflite`` files never
    pays for. So: when TensorFlow is already imported (a SavedModel was loaded), or when it
    is installed and some configured model may load a SavedModel (``models``: ModelConfigs;
    one not preferring model.tflite, by its own setting or else ``prefer_tflite``, the
    --prefer_tflite_model flag). Checking never imports TensorFlow."""
    if "tensorflow" in sys.modules:
        return True
    if importlib.util.find_spec("tensorflow") is None:
        return False
    return any(not (prefer_tflite if m.prefer_tflite is None else m.prefer_tflite)
               for m in models)


def add_profiler_service(server: grpc.Server) -> bool:
    """Register ``tensorflow.ProfilerService`` on ``server``; False where TensorFlow's
    profiler is not available (nothing is registered then)."""
    try:
        from tensorflow.python.profiler.internal import (
            _pywrap_profiler,
        )

        messages = _messages()
        session_class = _pywrap_profiler.ProfilerSession
    except (ImportError, AttributeError, TypeError) as exc:  # TypeError: the pool refused
        log.info("profiler service off: TensorFlow's profiler is not available (%s)", exc)
        return False
    profiler = Profiler(session_class, messages)

    def unimplemented(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "unimplemented.")

    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Profile": _unary(lambda request, context: profiler.profile(request, context.is_active),
                          messages["ProfileRequest"]),
        "Terminate": _unary(lambda request, context: profiler.terminate(request),
                            messages["TerminateRequest"]),
        "Monitor": grpc.unary_unary_rpc_method_handler(unimplemented),
    }),))
    return True
