"""model.tflite serving benchmark (issue 11): LiteRT through `edgeseg serve` vs the rest.

On the Coral VOC DeepLab (513x513 uint8 frames), side by side in one run:

- ``model.tflite`` Predict over gRPC (``--prefer_tflite_model``, one interpreter with N
  threads) vs LiteRT's own ``invoke`` in this process on the same frame with the same N
  threads (goal: median <= 1.10x), and vs ``serve_quantized`` and ``serve`` served from the
  same export (goals: >= 3x faster, faster); calls interleaved so a busy neighbour slows all;
- each server's RSS after warm-up (the model.tflite server still imports TensorFlow for the
  wire format until issue 12);
- throughput with 2 interpreters (``--num_tflite_interpreters_per_pool=2``): 4 clients vs 1.

The export is ``edgeseg export`` of the Coral flatbuffer; when the exporter did not write a
``model.tflite`` beside the SavedModel, the Coral flatbuffer itself is placed there (its
signature is TF Serving's generated one, so each server's input/output names are read from
its own GetModelMetadata). Needs ../shared/models (skips with a message when absent).

    .venv/bin/python bench/bench_tflite_serving.py [--runs 20] [--model BASE] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_serving import (  # noqa: E402
    concurrent_rounds,
    percentile_ms,
    start_server,
    stop_server,
)
from bench.common import interleaved, table  # noqa: E402
from edgeseg.model_contract import SEGMENTATION_MAP, SERVING_DEFAULT, TFLITE_FILE  # noqa: E402

SHARED = Path(os.environ.get("EDGESEG_SHARED", REPO.parent / "shared"))
CORAL = SHARED / "models" / "deeplab" / "deeplabv3_mnv2_pascal_quant.tflite"
PHOTO = SHARED / "models" / "images" / "astronaut.png"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepare(base: Path) -> Path:
    """An export of the Coral model with model.tflite beside saved_model.pb; its folder."""
    if not any(p.name.isdigit() for p in base.glob("*")):
        print("exporting the Coral DeepLab (serve, serve_quantized)…", flush=True)
        subprocess.run([sys.executable, "-m", "edgeseg", "export", str(CORAL), "--output",
                        str(base), "--version", "1", "--quiet"], cwd=REPO, check=True)
    version = base / str(max(int(p.name) for p in base.iterdir() if p.name.isdigit()))
    if not (version / TFLITE_FILE).is_file():
        print("the export has no model.tflite: placing the Coral flatbuffer there", flush=True)
        shutil.copy(CORAL, version / TFLITE_FILE)
    return version


class Client:
    """Predict on one server with the names its own metadata gives."""

    def __init__(self, port: int, frame) -> None:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import (
            get_model_metadata_pb2,
            predict_pb2,
            prediction_service_pb2_grpc,
        )

        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        meta = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        meta.model_spec.name = "deeplab"
        sigs = get_model_metadata_pb2.SignatureDefMap()
        self.stub.GetModelMetadata(meta, timeout=60).metadata["signature_def"].Unpack(sigs)
        sig = sigs.signature_def[SERVING_DEFAULT]
        (alias,) = sig.inputs
        self.output = SEGMENTATION_MAP if SEGMENTATION_MAP in sig.outputs else next(
            iter(sig.outputs))
        self.request = predict_pb2.PredictRequest()
        self.request.model_spec.name = "deeplab"
        self.request.inputs[alias].CopyFrom(tf.make_tensor_proto(frame))
        self.request.output_filter.append(self.output)

    def __call__(self):
        from edgeseg.serving.tensors import decode

        return decode(self.stub.Predict(self.request, timeout=300).outputs[self.output])


def litert_invoke(model: Path, frame, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model), num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, frame.shape)  # an export's input is [1,-1,-1,3]
    interpreter.allocate_tensors()
    out = interpreter.get_output_details()[0]["index"]

    def call():
        interpreter.set_tensor(index, frame)
        interpreter.invoke()
        return interpreter.get_tensor(out)
    return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20, help="interleaved calls per path")
    parser.add_argument("--model", type=Path, help="base path of an export of the Coral model")
    parser.add_argument("--threads", type=int, default=0,
                        help="LiteRT threads, in and out of the server (default: the CPUs)")
    args = parser.parse_args()
    if not CORAL.is_file():
        print(f"skipped: the Coral DeepLab is not at {CORAL} (set EDGESEG_SHARED)")
        return
    import cv2
    import numpy as np

    from edgeseg.serving.flags import _cpus

    threads = args.threads or _cpus()
    frame = cv2.resize(cv2.imread(str(PHOTO))[:, :, ::-1], (513, 513))[None].copy()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.model or Path(tmp) / "coral"
        version = prepare(base)
        common = ("--enable_model_warmup=false",)  # the Coral file takes other input names
        servers = {
            "model.tflite (gRPC)": ("--prefer_tflite_model=true", "--num_tflite_pools=1",
                                    f"--tflite_num_threads={threads}"),
            "serve_quantized (gRPC)": ("--saved_model_tags=serve_quantized",),
            "serve (gRPC)": ("--saved_model_tags=serve",),
            "model.tflite, 2 interpreters": ("--prefer_tflite_model=true",
                                             "--num_tflite_pools=1",
                                             "--num_tflite_interpreters_per_pool=2"),
        }
        procs, clients = {}, {}
        try:
            for i, (name, flags) in enumerate(servers.items()):
                print(f"starting {name}…", flush=True)
                procs[name], port = start_server(base, Path(tmp) / f"s{i}.log", *common, *flags)
                clients[name] = Client(port, frame)
            latency_tables(clients, litert_invoke(version / TFLITE_FILE, frame, threads),
                           served_in_process(version, frame, threads), threads, args.runs, np)
            pool = clients["model.tflite, 2 interpreters"]
            rounds = max(4, args.runs // 2)
            rows = []
            for n in (1, 4):
                result = concurrent_rounds({"pool": pool}, n, rounds)
                values, wall = result["pool"]
                rows.append([n, f"{len(values) / wall:.2f}", f"{percentile_ms(values, 0.5):.1f}"])
            print(f"\nthroughput, model.tflite with 2 interpreters of {max(1, threads // 2)} "
                  f"thread(s) (--num_tflite_pools=1 --num_tflite_interpreters_per_pool=2), "
                  f"{rounds} rounds")
            print(table(["clients", "req/s", "median ms"], rows))
            print("\nserver RSS after warm-up (each serves one model)")
            print(table(["server", "RSS MB"], [[n, f"{rss_mb(p.pid):.0f}"]
                                                for n, p in procs.items()]))
        finally:
            for client in clients.values():
                client.channel.close()
            for proc in procs.values():
                stop_server(proc)


def served_in_process(version: Path, frame, threads: int):
    """The server's own TFLite model and Predict core, without the transport: what
    edgeseg adds to an invoke before the wire format (encode) and gRPC."""
    from tensorflow_serving.apis import predict_pb2

    from edgeseg.serving import predict
    from edgeseg.serving.tensors import encode
    from edgeseg.serving.tflite_loader import TfLiteLoader, TfLiteOptions
    from edgeseg.serving.warmup import _OneModel

    model = TfLiteLoader(version, TfLiteOptions(1, 1, threads), warmup=False).load()
    (alias,) = model.signature_defs[SERVING_DEFAULT].inputs
    request = predict_pb2.PredictRequest()
    encode(frame, content=True, out=request.inputs[alias])
    core = _OneModel(model)
    return lambda: predict.predict(core, request)


def latency_tables(clients, invoke, in_process, threads: int, runs: int,
                   np) -> None:
    paths = {"LiteRT invoke (in-process)": invoke,
             "edgeseg Predict core, no transport": in_process,
             **{n: c for n, c in clients.items() if "2 interpreters" not in n}}
    lite = clients["model.tflite (gRPC)"]()
    direct = invoke()
    assert np.array_equal(lite.reshape(direct.shape), direct), "server and LiteRT disagree"
    quantized = clients["serve_quantized (gRPC)"]().reshape(direct.shape)
    times = interleaved(paths, runs=runs)
    base = percentile_ms(times["LiteRT invoke (in-process)"], 0.5)
    tfl = percentile_ms(times["model.tflite (gRPC)"], 0.5)
    rows = []
    for name, values in times.items():
        median = percentile_ms(values, 0.5)
        rows.append([name, f"{median:.1f}", f"{percentile_ms(values, 0.9):.1f}",
                     f"{median / base:.2f}x", f"{median / tfl:.2f}x"])
    print(f"\nCoral VOC DeepLab 513x513, uint8 frame (astronaut), 1 client, {runs} interleaved "
          f"calls per path; LiteRT with {threads} thread(s) (XNNPACK) in and out of the server")
    print(table(["path", "median ms", "p90 ms", "vs LiteRT invoke", "vs model.tflite gRPC"],
                rows))
    agree = float((quantized == direct.astype(quantized.dtype)).mean())
    print(f"model.tflite and serve_quantized agree on {100 * agree:.2f}% of pixels")


if __name__ == "__main__":
    main()
