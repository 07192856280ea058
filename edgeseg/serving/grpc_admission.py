"""gRPC admission: a bound on the serving calls in the server at once, health kept apart.

Contract: :class:`Admission` is a ``grpc.ServerInterceptor`` and provides the server's
executor (:attr:`Admission.executor`, given to ``grpc.server``). A call to a bounded service
(TF Serving's ``PredictionService`` and ``ModelService``) is admitted while fewer than
``max_calls`` admitted calls are running or queued for the ``max_threads`` workers; past it,
it is answered RESOURCE_EXHAUSTED at once (counted as rejection ``max_concurrent_rpcs``) and
never queues. Calls to other services (``grpc.health.v1``, ...) and the refusals run on a
small separate pool of ``control_threads``, so health checks answer while every worker is
busy. ``stats()`` gives (None, running, queued) for metrics.py.

How: grpc's server calls ``intercept_service`` for a new call on its polling thread and, right
after it, submits the chosen handler to the executor from that same thread; the interceptor
leaves its verdict in a thread-local that ``submit`` takes. A submission that finds no
verdict (a grpc that changed this order) runs on the workers, unbounded and uncounted, rather
than leaking a slot; tests/serving/test_load_grpc.py checks the bound holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

BOUNDED_PREFIXES = ("/tensorflow.serving.PredictionService/", "/tensorflow.serving.ModelService/")
_SERVE, _CONTROL = "serve", "control"


def _refuse(limit: int) -> Callable[[Any, grpc.ServicerContext], Any]:
    def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"the server is at its limit of {limit} concurrent calls "
                      "(--grpc_max_concurrent_rpcs); retry later")

    return behaviour


class _LaneExecutor(futures.Executor):
    def __init__(self, admission: Admission, max_threads: int, control_threads: int) -> None:
        self._admission = admission
        self._serve = futures.ThreadPoolExecutor(max_threads, thread_name_prefix="grpc")
        self._control = futures.ThreadPoolExecutor(control_threads,
                                                   thread_name_prefix="grpc-control")

    def submit(self, fn, /, *args, **kwargs):
        lane = self._admission._take_verdict()
        if lane == _CONTROL:
            return self._control.submit(fn, *args, **kwargs)
        if lane != _SERVE:
            return self._serve.submit(fn, *args, **kwargs)
        self._admission._admitted()
        future = self._serve.submit(self._admission._run, fn, *args, **kwargs)
        future.add_done_callback(lambda _: self._admission._finished())
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._serve.shutdown(wait, cancel_futures=cancel_futures)
        self._control.shutdown(wait, cancel_futures=cancel_futures)


class Admission(grpc.ServerInterceptor):
    def __init__(self, max_threads: int, max_calls: int, control_threads: int = 2,
                 on_reject: Callable[[str], None] | None = None) -> None:
        self.max_calls = max_calls
        self._on_reject = on_reject or (lambda reason: None)
        self._lock = threading.Lock()
        self._in_server = self._running = 0
        self._verdict = threading.local()
        self.executor = _LaneExecutor(self, max_threads, control_threads)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method or ""
        if not method.startswith(BOUNDED_PREFIXES):
            self._verdict.lane = _CONTROL
            return handler
        with self._lock:
            full = self._in_server >= self.max_calls
        if not full:
            self._verdict.lane = _SERVE
            return handler
        self._on_reject("max_concurrent_rpcs")
        self._verdict.lane = _CONTROL
        return grpc.unary_unary_rpc_method_handler(
            _refuse(self.max_calls), request_deserializer=None, response_serializer=None)

    def stats(self) -> tuple[None, int, int]:
        with self._lock:
            return None, self._running, self._in_server - self._running

    def _take_verdict(self) -> str | None:
        lane = getattr(self._verdict, "lane", None)
        self._verdict.lane = None
        return lane

    def _admitted(self) -> None:
        with self._lock:
            self._in_server += 1

    def _finished(self) -> None:
        with self._lock:
            self._in_server -= 1

    def _run(self, fn, *args, **kwargs):
        with self._lock:
            self._running += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self._running -= 1
