"""Pure overlay maths: class map + palette + opacity -> picture; legend of classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def palette_lut(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """A 256-entry BGR lookup table from an RGB palette (unknown ids: grey)."""
    lut = np.full((256, 3), 128, np.uint8)
    for i, (r, g, b) in enumerate(list(palette)[:256]):
        lut[i] = (b, g, r)
    return lut


def blend(image_bgr: np.ndarray, class_map: np.ndarray, lut_bgr: np.ndarray,
          opacity: float) -> np.ndarray:
    """Tint every non-background pixel (class != 0) with its class colour."""
    if class_map.shape != image_bgr.shape[:2]:
        raise ValueError(f"mask {class_map.shape} and frame {image_bgr.shape[:2]} differ")
    opacity = float(min(max(opacity, 0.0), 1.0))
    colours = lut_bgr[class_map]
    alpha = (class_map != 0)[..., None] * opacity
    out = image_bgr * (1.0 - alpha) + colours * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def legend(class_map: np.ndarray, names: Sequence[str],
           palette: Sequence[Sequence[int]]) -> list[dict]:
    """The classes present, largest share first: id, name, share (0..1), colour."""
    counts = np.bincount(class_map.ravel(), minlength=256)
    total = float(class_map.size) or 1.0
    rows = []
    for i in map(int, np.flatnonzero(counts)):
        r, g, b = palette[i] if i < len(palette) else (128, 128, 128)
        rows.append({"id": i, "name": names[i] if i < len(names) else f"class_{i}",
                     "share": counts[i] / total, "color": f"#{r:02x}{g:02x}{b:02x}"})
    rows.sort(key=lambda row: -row["share"])
    return rows
