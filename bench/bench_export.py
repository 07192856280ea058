"""Exporter benchmark: export time (and the share of model.tflite), size on disk vs the
float weights, and in-process per-frame latency of ``serve`` and ``serve_quantized`` at
513x513 (interleaved runs). LiteRT's model.tflite beside them: bench/bench_tflite.py.

    .venv/bin/python bench/bench_export.py [--runs 15] [--input-size 513]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.common import interleaved, median_ms, p90_ms, table  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--input-size", type=int, default=513)
    args = p.parse_args()

    import tensorflow as tf

    from exporters import graphs
    from exporters.deeplab import (
        DeepLabConfig,
        build_keras_model,
        segmentation_model,
        synthetic_image,
    )
    from exporters.writer import export

    tf.get_logger().setLevel("ERROR")
    size = args.input_size
    cfg = DeepLabConfig(input_size=(size, size))
    shared = Path(os.environ.get("EDGESEG_SHARED",
                                 Path(__file__).resolve().parents[2] / "shared"))
    photos = shared / "models" / "images"
    with tempfile.TemporaryDirectory() as tmp:
        calibration = photos if photos.is_dir() else None
        started = time.perf_counter()
        model = segmentation_model(build_keras_model(cfg), cfg)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        result = export(model, Path(tmp) / "deeplab", calibration_images=calibration)
        export_s = time.perf_counter() - started
        pb = (result.path / "saved_model.pb").stat().st_size
        print(table(["step", "value"], [
            ["build Keras model (s)", f"{build_s:.1f}"],
            ["export: 2 graphs, calibration, write, check (s)", f"{export_s:.1f}"],
            ["  of which model.tflite: convert + LiteRT check (s)",
             f"{result.tflite.seconds:.1f} + {result.tflite.check_seconds:.1f}"
             if result.tflite.written else f"not written: {result.tflite.reason}"],
            ["calibration images", result.calibration_images],
            ["float weights (MB)", f"{result.weight_bytes / 1e6:.2f}"],
            ["variables/ on disk (MB)", f"{result.variables_bytes / 1e6:.2f}"],
            ["variables / float weights", f"{result.variables_bytes / result.weight_bytes:.3f}"],
            ["saved_model.pb, both graphs (MB)", f"{pb / 1e6:.2f}"],
        ]))
        frame = synthetic_image(size, size)[None]
        with graphs.loaded(result.path, "serve") as run_float, \
                graphs.loaded(result.path, "serve_quantized") as run_int8:
            times = interleaved({
                "serve": lambda: run_float("serving_default", {"images": frame}),
                "serve_quantized": lambda: run_int8("serving_default", {"images": frame}),
            }, runs=args.runs)
    base = median_ms(times["serve"])
    print(f"\nper-frame latency, {size}x{size} uint8 in, uint8 map out, in-process, "
          f"{args.runs} interleaved runs, {os.cpu_count()} cores")
    print(table(["tag-set", "median ms", "p90 ms", "vs serve"], [
        [name, f"{median_ms(v):.1f}", f"{p90_ms(v):.1f}", f"{median_ms(v) / base:.2f}x"]
        for name, v in times.items()]))
    print("\nserve_quantized runs int8 as fake-quant (quantize/dequantize) ops in float: it "
          "checks int8 accuracy and feeds TensorRT INT8; it is not meant to be faster on CPU.")


if __name__ == "__main__":
    main()
