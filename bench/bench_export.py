"""Exporter benchmark: export time (and the share of model.tflite), size on disk vs the
float weights, in-process per-frame latency of ``serve`` and ``serve_quantized`` at 513x513
(interleaved runs), and the cost of a durable publish (exports with and without the fsyncs,
interleaved). LiteRT's model.tflite beside them: bench/bench_tflite.py.

    .venv/bin/python bench/bench_export.py [--runs 15] [--input-size 513] [--durable-runs 5]
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


from bench.common import interleaved, median_ms, p90_ms, table
from edgeseg.model_contract import IMAGES, SERVING_DEFAULT, TAG_FLOAT, TAG_QUANTIZED


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--input-size", type=int, default=513)
    p.add_argument("--durable-runs", type=int, default=5,
                   help="exports with and without fsync, each (0: skip that table)")
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
        with graphs.loaded(result.path, TAG_FLOAT) as run_float, \
                graphs.loaded(result.path, TAG_QUANTIZED) as run_int8:
            times = interleaved({
                "serve": lambda: run_float(SERVING_DEFAULT, {IMAGES: frame}),
                "serve_quantized": lambda: run_int8(SERVING_DEFAULT, {IMAGES: frame}),
            }, runs=args.runs)
    base = median_ms(times["serve"])
    print(f"\nper-frame latency, {size}x{size} uint8 in, uint8 map out, in-process, "
          f"{args.runs} interleaved runs, {os.cpu_count()} cores")
    print(table(["tag-set", "median ms", "p90 ms", "vs serve"], [
        [name, f"{median_ms(v):.1f}", f"{p90_ms(v):.1f}", f"{median_ms(v) / base:.2f}x"]
        for name, v in times.items()]))
    print("\nserve_quantized runs int8 as fake-quant (quantize/dequantize) ops in float: it "
          "checks int8 accuracy and feeds TensorRT INT8; it is not meant to be faster on CPU.")
    if args.durable_runs:
        print(durability_table(model, args.durable_runs))


def durability_table(model, runs: int) -> str:  # a SegmentationModel
    """Whole exports (no calibration) with the durable publish and with its fsyncs made
    no-ops, interleaved, on the disk under build/ (not /tmp, which may be a tmpfs where
    fsync is free); and the fsync step's own time inside the durable exports."""
    from exporters import versions
    from exporters.writer import export

    real = {"fsync_tree": versions.fsync_tree, "fsync_dir": versions.fsync_dir}
    synced: list[float] = []

    def timed(name: str):
        def call(path) -> None:
            started = time.perf_counter()
            real[name](path)
            synced[-1] += time.perf_counter() - started
        return call

    workdir = Path(__file__).resolve().parents[1] / "build"
    workdir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-durable-", dir=workdir) as tmp:
        count = iter(range(10**6))

        def durable() -> None:
            synced.append(0.0)
            versions.fsync_tree, versions.fsync_dir = timed("fsync_tree"), timed("fsync_dir")
            export(model, Path(tmp) / f"d{next(count)}")

        def no_fsync() -> None:
            versions.fsync_tree = versions.fsync_dir = lambda path: None
            export(model, Path(tmp) / f"n{next(count)}")

        try:
            times = interleaved({"durable (fsync)": durable, "no fsync": no_fsync},
                                runs=runs, warmup=1)
        finally:
            versions.fsync_tree, versions.fsync_dir = real["fsync_tree"], real["fsync_dir"]
        version = next(Path(tmp).glob("d*/1"))
        size = sum(p.stat().st_size for p in version.rglob("*") if p.is_file())
        entries = sum(1 for _ in version.rglob("*"))
        fs = _filesystem(Path(tmp))
    base = median_ms(times["no fsync"])
    rows = [[name, f"{median_ms(v):.0f}", f"{p90_ms(v):.0f}", f"{median_ms(v) / base:.3f}x"]
            for name, v in times.items()]
    rows.append(["fsync step alone (in durable)", f"{median_ms(synced[1:]):.0f}",
                 f"{p90_ms(synced[1:]):.0f}", f"{median_ms(synced[1:]) / base:.3f}x"])
    return (f"\ndurable publish: {runs} interleaved exports each, version of "
            f"{size / 1e6:.2f} MB in {entries} files and folders, on {fs}\n"
            + table(["export", "median ms", "p90 ms", "vs no fsync"], rows))


def _filesystem(path: Path) -> str:
    """'<fstype> (<device>)' of the mount holding path, from /proc/mounts."""
    best = ("?", "?", "")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype = line.split()[:3]
            if str(path).startswith(mount) and len(mount) > len(best[2]):
                best = (fstype, device, mount)
    except OSError:
        pass
    return f"{best[0]} ({best[1]})"


if __name__ == "__main__":
    main()
