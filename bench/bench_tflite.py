"""model.tflite benchmark: what the int8 file buys on a CPU node, side by side in one run.

For the Coral VOC DeepLab (TFLite source: its int8 operators spliced) and the built-in
DeepLab with the same trained weights (kit source: converted from serve_quantized's
fake-quant graph, calibrated on the shared photos): the export-time cost of model.tflite,
its size, its agreement with serve_quantized on the photos (TFLite's builtin int8
kernels, and XNNPACK), and the in-process p50 latency of one 513x513 uint8 frame for
LiteRT (XNNPACK, --threads) beside TF's ``serve`` and ``serve_quantized`` sessions,
interleaved so that a noisy neighbour slows them all alike. For the Coral model, its
letterbox and resize-back parts are also timed alone (converted as separate models): with
the source alone, they say where model.tflite's time goes.

    .venv/bin/python bench/bench_tflite.py [--runs 15] [--threads 2] [--only coral|builtin]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, median_ms, p90_ms, table
from edgeseg.model_contract import IMAGES, SERVING_DEFAULT, TAG_FLOAT, TAG_QUANTIZED, TFLITE_FILE

PHOTOS = ("astronaut.png", "grace_hopper.bmp", "chelsea.png", "bird_segmentation.bmp",
          "dog_segmentation.bmp", "coffee.png")
CORAL = "deeplab/deeplabv3_mnv2_pascal_quant.tflite"


def export_models(shared: Path, out: Path, only: str | None) -> dict[str, object]:
    from exporters import tflite
    from exporters.deeplab import (
        DeepLabConfig,
        build_keras_model,
        segmentation_model,
        weights_from_tflite,
    )
    from exporters.writer import export

    photos = out / "photos"
    photos.mkdir()
    for name in PHOTOS:
        (photos / name).symlink_to(shared / "images" / name)
    results = {}
    if only in (None, "coral"):
        started = time.perf_counter()
        results["coral (TFLite source)"] = (export(tflite.load(shared / CORAL), out / "coral",
                                                   calibration_images=photos),
                                            time.perf_counter() - started)
    if only in (None, "builtin"):
        cfg = DeepLabConfig(input_size=(513, 513))
        model = segmentation_model(build_keras_model(cfg), cfg)
        model = dataclasses.replace(model, weights=weights_from_tflite(shared / CORAL,
                                                                       model.weights))
        started = time.perf_counter()
        results["built-in + Coral weights"] = (export(model, out / "builtin",
                                                      calibration_images=photos),
                                               time.perf_counter() - started)
    return results


def source_runner(path: Path, frame: object, threads: int) -> object:
    """The source flatbuffer as it is (513x513 input, no letterbox, no resize back): the
    floor model.tflite's pre/post-processing adds to."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def run() -> object:
        interpreter.set_tensor(inp["index"], frame[None])  # type: ignore[index]
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return run


def part_runners(source: Path, frame: object, threads: int) -> dict[str, object]:
    """The Coral model.tflite's three parts as separate LiteRT models (the bisection that
    says where its time goes): the converted letterbox, the resize back, on ``frame``."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from exporters import tflite, tflite_export

    model, fb = tflite.load(source), tflite.read(source)
    core_in, core_out = fb.tensors[fb.inputs[0]], fb.tensors[fb.outputs[0]]
    scores = np.zeros(core_out.shape, tflite._DTYPES[core_out.dtype])
    runners = {}
    for name, function, feeds in (
            ("letterbox (pre) part alone", tflite_export.pre_function(model, core_in),
             {"images": frame[None]}),  # type: ignore[index]
            ("resize back (post) part alone", tflite_export.post_function(model, core_out),
             {"scores": scores, "images": frame[None]})):  # type: ignore[index]
        interpreter = Interpreter(model_content=tflite_export.convert(function),
                                  num_threads=threads)
        inputs = {d["name"]: d["index"] for d in interpreter.get_input_details()}
        for key, value in feeds.items():
            index = next(i for n, i in inputs.items() if key in n)
            interpreter.resize_tensor_input(index, value.shape)
        interpreter.allocate_tensors()
        runners[name] = _invoker(interpreter, inputs, feeds)
    return runners


def _invoker(interpreter: Any, inputs: dict[str, int], feeds: dict[str, Any]) -> Any:
    def run() -> None:
        for key, value in feeds.items():
            interpreter.set_tensor(next(i for n, i in inputs.items() if key in n), value)
        interpreter.invoke()

    return run


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", choices=("coral", "builtin"))
    args = p.parse_args()

    import numpy as np
    import tensorflow as tf

    from exporters import graphs, tflite_export
    from exporters.deeplab import synthetic_image
    from exporters.writer import read_rgb

    tf.get_logger().setLevel("ERROR")
    shared = Path(os.environ.get("EDGESEG_SHARED",
                                 Path(__file__).resolve().parents[2] / "shared")) / "models"
    if not (shared / CORAL).is_file():
        sys.exit(f"bench_tflite needs {shared / CORAL} (the project's shared test data)")
    photos = [read_rgb(shared / "images" / n) for n in PHOTOS]
    frame = synthetic_image(513, 513)
    rows, latency = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (result, export_s) in export_models(shared, Path(tmp), args.only).items():
            card = result.tflite.card()
            data = (result.path / TFLITE_FILE).read_bytes()
            xnnpack = tflite_export.runner(data, threads=args.threads)
            with graphs.loaded(result.path, TAG_QUANTIZED) as run:
                expected = [run(SERVING_DEFAULT, {IMAGES: f[None]})[0] for f in photos]
            xnn_agree = [float(np.mean(xnnpack(f) == e)) for f, e in zip(photos, expected,
                                                                           strict=True)]
            rows.append([label, f"{export_s:.1f}",
                         f"{card['conversion_seconds'] + card['check_seconds']:.1f}",
                         f"{card['bytes'] / 1e6:.2f}",
                         f"{100 * min(result.tflite.per_frame):.2f}%",
                         f"{100 * min(xnn_agree):.2f}%"])
            runners = {"LiteRT model.tflite (XNNPACK)": lambda segment=xnnpack: segment(frame)}
            if label.startswith("coral"):
                runners["LiteRT source .tflite alone (XNNPACK)"] = source_runner(
                    shared / CORAL, frame, args.threads)
                runners.update(part_runners(shared / CORAL, frame, args.threads))
            with graphs.loaded(result.path, TAG_FLOAT) as run_float, \
                    graphs.loaded(result.path, TAG_QUANTIZED) as run_int8:
                runners["serve (TF, float)"] = lambda run=run_float: run(
                    SERVING_DEFAULT, {IMAGES: frame[None]})
                runners["serve_quantized (TF)"] = lambda run=run_int8: run(
                    SERVING_DEFAULT, {IMAGES: frame[None]})
                times = interleaved(runners, runs=args.runs)
            latency[label] = times
    print(f"export cost and agreement with serve_quantized on {len(PHOTOS)} photos "
          "(worst photo)")
    print(table(["model", "export s (all)", "model.tflite s", "MB", "builtin kernels",
                 "XNNPACK"], rows))
    print(f"\nper-frame latency, one 513x513 uint8 frame in, uint8 map out, in-process, "
          f"{args.runs} interleaved runs, LiteRT {args.threads} threads, "
          f"{os.cpu_count()} cores")
    out = []
    for label, times in latency.items():
        base = median_ms(times["serve_quantized (TF)"])
        for name, values in times.items():
            out.append([label, name, f"{median_ms(values):.1f}", f"{p90_ms(values):.1f}",
                        f"{base / median_ms(values):.2f}x"])
    print(table(["model", "runner", "p50 ms", "p90 ms", "speed vs serve_quantized"], out))


if __name__ == "__main__":
    main()
