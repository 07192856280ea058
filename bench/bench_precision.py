"""Mixed precision benchmark: ``--auto_mixed_precision`` vs float32 on this machine.

One DeepLab export (the real PASCAL VOC model from shared/models imported, or the built-in
architecture with random weights where that is absent) is loaded twice in this process with
the server's own loader: once with the float32 session options, once with the options
``edgeseg serve --auto_mixed_precision`` would build here (float16 on a GPU, bfloat16 on a
CPU with avx512_bf16/amx_bf16). The two are timed in alternation on the same photo and their
class maps compared pixel by pixel. Where the rewrite does not apply, it says so and times
float32 alone.

    .venv/bin/python bench/bench_precision.py [--runs 15] [--model BASE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import interleaved, median_ms, p90_ms, table  # noqa: E402
from edgeseg.model_contract import IMAGES, SEGMENTATION_MAP, SERVING_DEFAULT, TAG_FLOAT  # noqa: E402

SHARED = Path(os.environ.get("EDGESEG_SHARED", REPO.parent / "shared"))
VOC = SHARED / "models" / "deeplab" / "deeplabv3_mnv2_pascal_quant.tflite"
PHOTO = SHARED / "models" / "images" / "astronaut.png"


def export(base: Path) -> str:
    source = [str(VOC)] if VOC.is_file() else ["deeplabv3", "--input-size", "513"]
    subprocess.run([sys.executable, "-m", "edgeseg", "export", *source, "--output", str(base),
                    "--version", "1", "--quiet"], cwd=REPO, check=True)
    return VOC.name if VOC.is_file() else "built-in DeepLab-v3, random weights"


def frame(height: int, width: int):
    import cv2
    import numpy as np

    from exporters.deeplab import synthetic_image

    if PHOTO.is_file():
        image = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
        return cv2.resize(image, (width, height))[np.newaxis]
    return synthetic_image(height, width)[np.newaxis]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--model", type=Path, help="an existing export's base path")
    args = parser.parse_args()

    import numpy as np

    from edgeseg.serving.loader import Loader
    from edgeseg.serving.session_options import (
        OFF,
        UNSUPPORTED,
        cpu_flags,
        mixed_precision,
        session_config,
        visible_gpus,
    )

    with tempfile.TemporaryDirectory() as tmp:
        base = args.model or Path(tmp) / "deeplab"
        what = str(base) if args.model else export(base)
        version = base / str(max(int(p.name) for p in base.iterdir() if p.name.isdigit()))
        precision = mixed_precision(True, visible_gpus(), cpu_flags())
        models = {"float32": Loader(version, [TAG_FLOAT], session_config(precision=OFF)).load()}
        if precision.mode != UNSUPPORTED:
            models[precision.mode] = Loader(version, [TAG_FLOAT],
                                            session_config(precision=precision.mode)).load()
        signature = models["float32"].signature_defs[SERVING_DEFAULT]
        images = signature.inputs[IMAGES]
        dims = [d.size for d in images.tensor_shape.dim]
        height, width = (dims[1], dims[2]) if len(dims) == 4 and dims[1] > 0 else (513, 513)
        feed = {images.name: frame(height, width)}
        fetch = [signature.outputs[SEGMENTATION_MAP].name]
        calls = {name: (lambda m=m: m.run(feed, fetch)[0]) for name, m in models.items()}
        maps = {name: call() for name, call in calls.items()}
        took = interleaved(calls, runs=args.runs)
        base_ms = median_ms(took["float32"])
        rows = []
        for name, values in took.items():
            agree = float(np.mean(maps[name] == maps["float32"]))
            rows.append([name, f"{median_ms(values):.1f}", f"{p90_ms(values):.1f}",
                         f"{median_ms(values) / base_ms:.3f}", f"{100 * agree:.2f}%"])
        print(f"\n{what}, {height}x{width} photo, serving_default in-process; {args.runs} calls "
              f"per side, interleaved; {os.cpu_count()} cores; --auto_mixed_precision here: "
              f"{precision.describe()}")
        print(table(["session", "median ms", "p90 ms", "vs float32", "pixels = float32"], rows))
        for model in models.values():
            model.close()


if __name__ == "__main__":
    main()
