"""What the TFLite import is judged against: photos read as RGB, letterboxed as the kit's
signatures do it, run by TFLite's own builtin kernels (the int8 reference), and IoU."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf


def read_rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


def letterbox(image: np.ndarray, size: int = 513, pad: int = 128) -> np.ndarray:
    """As the kit's signatures do it (bilinear, top-left, filled with the zero point)."""
    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    new_h, new_w = min(size, round(h * scale)), min(size, round(w * scale))
    resized = tf.image.resize(image[None].astype(np.float32), [new_h, new_w])[0].numpy()
    out = np.full((size, size, 3), float(pad), np.float32)
    out[:new_h, :new_w] = resized
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def interpreter_maps(model_path: Path, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """tf.lite.Interpreter with TFLite's own builtin kernels (no XNNPACK delegate)."""
    resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = tf.lite.Interpreter(str(model_path), experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    maps = {}
    for name, frame in frames.items():
        interpreter.set_tensor(inp["index"], frame[None])
        interpreter.invoke()
        maps[name] = interpreter.get_tensor(out["index"])[0].copy()
    return maps


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float((predicted & truth).sum() / max((predicted | truth).sum(), 1))
