"""Serving benchmark: gRPC Predict round trip vs the same signature called in-process.

A DeepLab export at 513x513 (uint8 frame in, uint8 map out, ``serving_default``) is served
by a real ``edgeseg serve`` on 127.0.0.1; the same version is loaded in this process with
the server's own loader. With 1 client the two are timed in alternation (so a noisy
neighbour slows both alike); with 4 concurrent clients each side runs on its own.
Prints median and p99 latency, requests/s and the overhead ratio (gRPC / in-process).
Goal (issue 4): median overhead <= 5% of the in-process call with 1 client.
The client decodes the map with edgeseg's codec; ``tf.make_ndarray`` on the typed
``int_val`` field TF Serving answers with would add ~11 ms per 513x513 map on the client.

    .venv/bin/python bench/bench_serving.py [--runs 30] [--input-size 513] [--model BASE]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
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

READY = re.compile(r"gRPC listening on 127\.0\.0\.1:(\d+)")


def export(base: Path, size: int) -> None:
    subprocess.run([sys.executable, "-m", "edgeseg", "export", "deeplabv3", "--output", str(base),
                    "--version", "1", "--input-size", str(size), "--quiet"],
                   cwd=REPO, check=True)


def start_server(base: Path, log_path: Path) -> tuple[subprocess.Popen, int]:
    log = open(log_path, "wb")  # noqa: SIM115 - the child keeps writing to it
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeseg", "serve", "--grpc_bind_address=127.0.0.1", "--port=0",
         "--model_name=deeplab", f"--model_base_path={base}"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        match = READY.search(log_path.read_text(errors="replace"))
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready in 300 s")


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def concurrent_rounds(fns: dict, clients: int, rounds: int) -> dict:
    """Per-call latencies and total wall time of each fn, `clients` calls at once per round.

    Rounds alternate between the fns (A B A B ...), as bench.common.interleaved does for
    one client, so that a noisy neighbour slows them alike.
    """
    out = {name: ([], 0.0) for name in fns}
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
            model = Loader(base / str(version), ["serve"]).load()
            signature = model.signature_defs["serving_default"]
            feed_name = signature.inputs["images"].name
            fetch = [signature.outputs["segmentation_map"].name]

            def in_process():
                return model.run({feed_name: frame}, fetch)[0]

            channel = grpc.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)])
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "deeplab"
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(frame))

            def over_grpc():
                response = stub.Predict(request, timeout=120)
                return decode(response.outputs["segmentation_map"])

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
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
