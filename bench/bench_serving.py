"""Serving benchmark: gRPC Predict round trip vs the same signature called in-process.

A DeepLab export at 513x513 (uint8 frame in, uint8 map out, ``serving_default``) is served
by a real ``edgeseg serve`` on 127.0.0.1; the same version is loaded in this process with
the server's own loader. With 1 client the two are timed in alternation (so a noisy
neighbour slows both alike); with 4 concurrent clients each side runs on its own.
Prints median and p99 latency, requests/s and the overhead ratio (gRPC / in-process).
Goal (issue 4): median overhead <= 5% of the in-process call with 1 client.
``--issue5`` adds issue 5's tables: REST (JSON instances, b64 JPEG) vs gRPC for the same
frame, and batched vs unbatched gRPC throughput with 1, 4 and 8 concurrent clients.
The client decodes the map with edgeseg's codec; ``tf.make_ndarray`` on the typed
``int_val`` field TF Serving answers with would add ~11 ms per 513x513 map on the client.

    .venv/bin/python bench/bench_serving.py [--runs 30] [--input-size 513] [--model BASE]
                                            [--issue5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import interleaved, table  # noqa: E402
from edgeseg.model_contract import (  # noqa: E402
    IMAGES,
    PREDICT_ENCODED,
    SEGMENTATION_MAP,
    SERVING_DEFAULT,
    TAG_FLOAT,
)

READY = re.compile(r"gRPC listening on 127\.0\.0\.1:(\d+)")


def export(base: Path, size: int, *, cwd: Path = REPO, env: dict | None = None) -> None:
    """Export with the exporter of the tree at ``cwd`` (``python -m`` imports from there)."""
    subprocess.run([sys.executable, "-m", "edgeseg", "export", "deeplabv3", "--output", str(base),
                    "--version", "1", "--input-size", str(size), "--quiet"],
                   cwd=cwd, env=env, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: Path, log_path: Path, *flags: str, cwd: Path = REPO,
                 env: dict | None = None) -> tuple[subprocess.Popen, int]:
    """A server of the tree at ``cwd`` (bench_compare runs one per git revision); later
    ``flags`` override the defaults here, e.g. ``--model_name``."""
    log = open(log_path, "wb")  # the child keeps writing to it
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeseg", "serve", "--grpc_bind_address=127.0.0.1", "--port=0",
         "--model_name=deeplab", f"--model_base_path={base}", *flags],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        match = READY.search(text)
        wants_rest = any(f.startswith("--rest_api_port") for f in flags)
        rest_ready = not wants_rest or "REST listening" in text
        if match and rest_ready:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{text}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready in 300 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def concurrent_rounds(fns: dict, clients: int, rounds: int) -> dict:
    """Per-call latencies and total wall time of each fn, `clients` calls at once per round.

    Rounds alternate between the fns (A B A B ...), as bench.common.interleaved does for
    one client, so that a noisy neighbour slows them alike.
    """
    out: dict[str, tuple[list[float], float]] = {name: ([], 0.0) for name in fns}
    lock = threading.Lock()
    for fn in fns.values():
        fn()  # warm up
    for _ in range(rounds):
        for name, fn in fns.items():
            latencies, _ = out[name]

            def client(fn=fn, latencies=latencies):
                started = time.perf_counter()
                fn()
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)

            threads = [threading.Thread(target=client) for _ in range(clients)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out[name] = (latencies, out[name][1] + time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30, help="calls per side with 1 client")
    parser.add_argument("--input-size", type=int, default=513)
    parser.add_argument("--model", type=Path, help="an existing export's base path")
    parser.add_argument("--issue5", action="store_true",
                        help="also: REST vs gRPC, and batched vs unbatched throughput")
    args = parser.parse_args()

    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from edgeseg.serving.loader import Loader
    from edgeseg.serving.tensors import decode

    size = args.input_size
    with tempfile.TemporaryDirectory() as tmp:
        base = args.model or Path(tmp) / "deeplab"
        if args.model is None:
            print(f"exporting DeepLab-v3 at {size}x{size}…", flush=True)
            export(base, size)
        version = max(int(p.name) for p in base.iterdir() if p.name.isdigit())
        proc, port = start_server(base, Path(tmp) / "server.log")
        try:
            frame = np.random.default_rng(0).integers(0, 255, (1, size, size, 3), np.uint8)
            model = Loader(base / str(version), [TAG_FLOAT]).load()
            signature = model.signature_defs[SERVING_DEFAULT]
            feed_name = signature.inputs[IMAGES].name
            fetch = [signature.outputs[SEGMENTATION_MAP].name]

            def in_process():
                return model.run({feed_name: frame}, fetch)[0]

            channel = grpc.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)])
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "deeplab"
            request.inputs[IMAGES].CopyFrom(tf.make_tensor_proto(frame))

            def over_grpc():
                response = stub.Predict(request, timeout=120)
                return decode(response.outputs[SEGMENTATION_MAP])

            assert np.array_equal(in_process(), over_grpc()), "gRPC and in-process disagree"
            one = interleaved({"in-process": in_process, "gRPC": over_grpc}, runs=args.runs)
            rows = []
            base_median = percentile_ms(one["in-process"], 0.5)
            for name, values in one.items():
                median = percentile_ms(values, 0.5)
                rows.append([name, 1, f"{median:.1f}", f"{percentile_ms(values, 0.99):.1f}",
                             f"{len(values) / sum(values):.2f}", f"{median / base_median:.3f}"])
            rounds = max(3, args.runs // 4)
            four = concurrent_rounds({"in-process": in_process, "gRPC": over_grpc}, 4, rounds)
            base4 = percentile_ms(four["in-process"][0], 0.5)
            for name, (values, wall) in four.items():
                median = percentile_ms(values, 0.5)
                rows.append([name, 4, f"{median:.1f}", f"{percentile_ms(values, 0.99):.1f}",
                             f"{len(values) / wall:.2f}", f"{median / base4:.3f}"])
            print(f"\nDeepLab-v3 {size}x{size}, uint8 frame in, uint8 map out (serving_default); "
                  f"{args.runs} calls per side with 1 client, {rounds} rounds of 4 concurrent "
                  f"calls with 4 (sides interleaved); {os.cpu_count()} cores; server and "
                  "client on this machine")
            print(table(["path", "clients", "median ms", "p99 ms", "req/s",
                         "median vs in-process"], rows))
            model.close()
            channel.close()
        finally:
            stop_server(proc)
        if args.issue5:
            issue5_tables(base, size, args.runs, Path(tmp))


def _grpc_call(port: int, frame):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from edgeseg.serving.tensors import decode

    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "deeplab"
    request.inputs[IMAGES].CopyFrom(tf.make_tensor_proto(frame))
    return lambda: decode(stub.Predict(request, timeout=300).outputs[SEGMENTATION_MAP])


def _rest_call(url: str, body: dict):
    import urllib.request

    def call():
        data = json.dumps(body).encode()  # the client's JSON encoding is part of REST's cost
        request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 - loopback
            return json.loads(response.read())
    return call


def issue5_tables(base: Path, size: int, runs: int, tmp: Path) -> None:
    """REST vs gRPC for the same frame; batched vs unbatched throughput at 1, 4, 8 clients."""
    import cv2
    import numpy as np

    frame = np.random.default_rng(0).integers(0, 255, (1, size, size, 3), np.uint8)
    jpeg = base64.b64encode(cv2.imencode(".jpg", frame[0])[1].tobytes()).decode()
    rest_port = free_port()
    params = tmp / "batching.config"
    params.write_text("max_batch_size { value: 8 } batch_timeout_micros { value: 5000 } "
                      "num_batch_threads { value: 1 }")
    plain, plain_port = start_server(base, tmp / "plain.log", f"--rest_api_port={rest_port}")
    try:
        url = f"http://127.0.0.1:{rest_port}/v1/models/deeplab:predict"
        paths = {
            "gRPC uint8 tensor": _grpc_call(plain_port, frame),
            "REST JSON instances": _rest_call(url, {"instances": frame.tolist()}),
            "REST b64 JPEG (predict_encoded)": _rest_call(
                url, {"signature_name": PREDICT_ENCODED, "instances": [{"b64": jpeg}]}),
        }
        times = interleaved(paths, runs=max(5, runs // 3))
        first = percentile_ms(times["gRPC uint8 tensor"], 0.5)
        print(f"\nREST vs gRPC, DeepLab-v3 {size}x{size}, 1 client, "
              f"{len(times['gRPC uint8 tensor'])} interleaved calls each")
        print(table(["path", "median ms", "p99 ms", "vs gRPC"], [
            [name, f"{percentile_ms(v, 0.5):.1f}", f"{percentile_ms(v, 0.99):.1f}",
             f"{percentile_ms(v, 0.5) / first:.2f}x"] for name, v in times.items()]))
        unbatched = _grpc_call(plain_port, frame)
        batched_proc, batched_port = start_server(
            base, tmp / "batched.log", "--enable_batching", f"--batching_parameters_file={params}")
        try:
            batched = _grpc_call(batched_port, frame)
            rows = []
            rounds = max(3, runs // 6)
            for clients in (1, 4, 8):
                result = concurrent_rounds({"unbatched": unbatched, "batched": batched},
                                           clients, rounds)
                rows.append([clients] + [f"{len(v) / wall:.2f}" for v, wall in result.values()]
                            + [f"{percentile_ms(v, 0.5):.0f}" for v, _ in result.values()])
            print(f"\nbatched (max 8 rows, 5 ms timeout, 1 thread) vs unbatched gRPC, "
                  f"{rounds} rounds per client count, sides interleaved")
            print(table(["clients", "unbatched req/s", "batched req/s", "unbatched median ms",
                         "batched median ms"], rows))
        finally:
            stop_server(batched_proc)
    finally:
        stop_server(plain)


if __name__ == "__main__":
    main()
