"""TensorFlow's ProfilerService on the gRPC port: TF's own client records a live server.

The server is a real `edgeseg serve` under REST :predict load; the client is TensorFlow's
`profiler_client.trace` (what TensorBoard's "Capture profile" calls), and the trace it
leaves in the logdir is read back as TensorFlow's XSpace proto.
"""

from __future__ import annotations

import socket
import sys
import threading
from concurrent import futures

import grpc
import pytest
from tensorflow.python.profiler import profiler_client
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from edgeseg.serving import profiler

from .conftest import free_port, rest_call
from .models import two_tag_model


@pytest.fixture(scope="module")
def busy_server(serve, tmp_path_factory):
    """A server whose REST :predict is called in a loop for as long as the module runs."""
    base = tmp_path_factory.mktemp("models") / "two_tags"
    two_tag_model(base / "1")
    rest_port = free_port()
    server = serve(f"--model_base_path={base}", "--model_name=m", f"--rest_api_port={rest_port}")
    url = f"{server.serve_rest(rest_port)}/m:predict"
    stop, answered = threading.Event(), []

    def load() -> None:
        while not stop.is_set():
            answered.append(rest_call(url, {"instances": [1.0, 2.0]}))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    server.answered = answered
    yield server
    stop.set()
    thread.join(60)


def event_names(xspace) -> set[str]:
    return {m.name for plane in xspace.planes for m in plane.event_metadata.values()
            if any(e.metadata_id == m.id for line in plane.lines for e in line.events)}


def test_profiler_client_trace_records_the_served_model(busy_server, tmp_path):
    profiler_client.trace(f"localhost:{busy_server.port}", str(tmp_path), 1000, "", 10)
    (xplane,) = tmp_path.glob("plugins/profile/*/*.xplane.pb")
    names = event_names(xplane_pb2.XSpace.FromString(xplane.read_bytes()))
    assert "SessionRun" in names  # the servable's session ran while we traced
    # the model's own ops (y = x * w + 1), recorded as "name:OpType" by TensorFlow's executor
    assert any(n.endswith((":Mul", ":AddV2")) for n in names), sorted(names)[:40]
    assert busy_server.answered[-1] == (200, {"predictions": [2.0, 3.0]})  # kept serving


def _call(server, method: str, request, timeout: float = 30):
    messages = profiler._messages()
    reply = "TerminateResponse" if method == "Terminate" else "ProfileResponse"
    rpc = server.channel.unary_unary(f"/{profiler.SERVICE}/{method}",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=messages[reply].FromString)
    return rpc(request, timeout=timeout)


def test_emit_xspace_returns_the_trace_and_a_second_capture_waits(busy_server, tmp_path):
    messages = profiler._messages()
    long = messages["ProfileRequest"](duration_ms=60_000, session_id="long",
                                      repository_root=str(tmp_path))
    result: list = []

    def capture_long() -> None:  # retries UNAVAILABLE, as TensorFlow's client does
        while True:
            try:
                return result.append(_call(busy_server, "Profile", long, timeout=120))
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise

    capture = threading.Thread(target=capture_long)
    capture.start()
    quick = messages["ProfileRequest"](duration_ms=500, emit_xspace=True)
    with pytest.raises(grpc.RpcError) as busy:
        for _ in range(100):  # until the long capture holds the profiler
            _call(busy_server, "Profile", quick)
    assert busy.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "another profile" in busy.value.details()
    _call(busy_server, "Terminate", messages["TerminateRequest"](session_id="long"))
    capture.join(60)
    assert not capture.is_alive() and len(result) == 1  # ended by Terminate, long before 60 s
    assert [p.name for p in (tmp_path / "long").iterdir()] == [  # no host_name: ours
        f"{socket.gethostname()}.xplane.pb"]
    response = _call(busy_server, "Profile", quick)
    assert not response.empty_trace and "SessionRun" in event_names(response.xspace)


def test_a_request_with_nowhere_to_put_the_trace_is_invalid(busy_server):
    request = profiler._messages()["ProfileRequest"](duration_ms=10)
    with pytest.raises(grpc.RpcError) as err:
        _call(busy_server, "Profile", request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "repository_root" in err.value.details()


def test_without_tensorflow_nothing_is_registered(monkeypatch):
    for name in ("tensorflow", "tensorflow.python.profiler.internal",
                 "tensorflow.tsl.profiler.protobuf"):
        monkeypatch.setitem(sys.modules, name, None)  # imports of them fail, as uninstalled
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    assert profiler.add_profiler_service(server) is False
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as err:
                channel.unary_unary(f"/{profiler.SERVICE}/Profile")(b"", timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(0)
