"""Imported TFLite DeepLab: latency of serve, serve_quantized and the TFLite
interpreter on the same real photos, with agreement and IoU, in one table.

    .venv/bin/python bench/bench_import.py [--model FILE.tflite] [--repeats 5]

Frames are the photos in ../shared/models/images (EDGESEG_SHARED overrides),
letterboxed to the model's input (zero-point fill) once, so every runner sees the same
uint8 frames. ``serve``/``serve_quantized`` run the exported SavedModel's
serving_default through a TF1 session (what TF Serving runs); the interpreter runs
with TFLite's builtin kernels (the agreement reference) and with its default XNNPACK
delegate. Agreement is the share of pixels whose class equals the builtin-kernel
interpreter's; IoU is against the photos' ground-truth masks (bird: VOC 3 where the
mask is 3; dog: VOC 12 where the mask is 0). Prints; not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeseg.model_contract import IMAGES, SERVING_DEFAULT, TAGS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PHOTOS = ("astronaut.png", "grace_hopper.bmp", "chelsea.png", "bird_segmentation.bmp",
          "dog_segmentation.bmp")
TRUTH = {"bird_segmentation.bmp": ("bird_segmentation_mask.bmp", 3, 3),
         "dog_segmentation.bmp": ("dog_segmentation_mask.bmp", 0, 12)}


def letterbox(image: np.ndarray, size: int, fill: float, nearest: bool = False) -> np.ndarray:
    import cv2
    import tensorflow as tf

    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    new_h, new_w = min(size, round(h * scale)), min(size, round(w * scale))
    if nearest:
        out = np.full((size, size), fill, np.int32)
        out[:new_h, :new_w] = cv2.resize(image, (new_w, new_h),
                                         interpolation=cv2.INTER_NEAREST)
        return out
    resized = tf.image.resize(image[None].astype(np.float32), [new_h, new_w])[0].numpy()
    out = np.full((size, size, 3), fill, np.float32)
    out[:new_h, :new_w] = resized
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def timed(run: Callable[[np.ndarray], np.ndarray], frames: dict[str, np.ndarray],
          repeats: int) -> tuple[dict[str, np.ndarray], list[float]]:
    maps = {name: run(frame) for name, frame in frames.items()}  # warm-up and results
    times = []
    for _ in range(repeats):
        for frame in frames.values():
            started = time.perf_counter()
            run(frame)
            times.append(1000 * (time.perf_counter() - started))
    return maps, times


def interpreter_runner(model: Path, builtin: bool) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    kinds = tf.lite.experimental.OpResolverType
    resolver = kinds.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin else kinds.AUTO
    interpreter = tf.lite.Interpreter(str(model), experimental_op_resolver_type=resolver,
                                      num_threads=os.cpu_count())
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def run(frame: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(inp["index"], frame[None])
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])[0].copy()

    return run


def main(argv: list[str] | None = None) -> int:
    import cv2

    from edgeseg.models import shared_models_dir
    from exporters import graphs, tflite
    from exporters.writer import export

    shared = shared_models_dir()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path,
                   default=shared / "deeplab/deeplabv3_mnv2_pascal_quant.tflite")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if not args.model.is_file() or not (shared / "images").is_dir():
        print(f"bench_import: needs {args.model} and {shared / 'images'} "
              "(set EDGESEG_SHARED)", file=sys.stderr)
        return 2

    model = tflite.load(args.model)
    size, pad = model.input_size[0], model.preprocessing.pad_value
    photos = {n: cv2.imread(str(shared / "images" / n))[:, :, ::-1] for n in PHOTOS}
    frames = {n: letterbox(img, size, pad) for n, img in photos.items()}
    truth = {n: letterbox(cv2.imread(str(shared / "images" / m), cv2.IMREAD_UNCHANGED),
                          size, -1, nearest=True) == v
             for n, (m, v, _) in TRUTH.items()}

    rows: list[tuple[str, dict[str, np.ndarray], list[float]]] = []
    rows.append(("tflite builtin kernels", *timed(interpreter_runner(args.model, True),
                                                  frames, args.repeats)))
    rows.append(("tflite + XNNPACK", *timed(interpreter_runner(args.model, False),
                                            frames, args.repeats)))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = export(model, Path(tmp) / "model")
        export_s = time.perf_counter() - started
        for tag in TAGS:
            with graphs.loaded(result.path, tag) as runner:
                def run(frame: np.ndarray, runner=runner) -> np.ndarray:
                    return runner(SERVING_DEFAULT, {IMAGES: frame[None]})[0]
                rows.append((f"SavedModel {tag}", *timed(run, frames, args.repeats)))

    reference = rows[0][1]
    print(f"{args.model.name}: {len(frames)} photos letterboxed to {size}x{size}, "
          f"{args.repeats} timed passes, {os.cpu_count()} CPU threads; export took "
          f"{export_s:.1f} s")
    header = (f"{'runner':<26}{'p50 ms':>8}{'p90 ms':>8}  {'agree (all)':>11}"
              f"{'worst photo':>13}{'bird IoU':>10}{'dog IoU':>9}")
    print(header)
    print("-" * len(header))
    for name, maps, times in rows:
        agree = [float(np.mean(maps[n] == reference[n])) for n in PHOTOS]
        ious = []
        for photo, (_, _, cls) in TRUTH.items():
            pred, gt = maps[photo] == cls, truth[photo]
            ious.append(float((pred & gt).sum() / max((pred | gt).sum(), 1)))
        p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
        print(f"{name:<26}{statistics.median(times):>8.0f}{p90:>8.0f}  "
              f"{100 * np.mean(agree):>10.2f}%{100 * min(agree):>12.2f}%"
              f"{ious[0]:>10.3f}{ious[1]:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
