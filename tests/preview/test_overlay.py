"""Overlay maths on small tables."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.labels import voc_palette
from edgeseg.preview.overlay import blend, legend, palette_lut


def test_blend_tints_foreground_only():
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[0, 15], [8, 0]], np.uint8)
    lut = palette_lut(voc_palette(21))
    out = blend(image, mask, lut, 0.5)
    assert out[0, 0].tolist() == [100, 100, 100]  # background untouched
    assert out[0, 1].tolist() == [114, 114, 146]  # BGR of person (192,128,128) half over 100
    assert out[1, 0].tolist() == [50, 50, 82]     # cat (64,0,0)
    assert blend(image, mask, lut, 0.0).tolist() == image.tolist()
    assert blend(image, mask, lut, 1.0)[0, 1].tolist() == [128, 128, 192]


def test_blend_refuses_a_mask_of_another_size():
    with pytest.raises(ValueError, match="differ"):
        blend(np.zeros((4, 4, 3), np.uint8), np.zeros((2, 2), np.uint8), palette_lut([]), 0.5)


def test_legend_orders_by_share():
    mask = np.array([[15, 15, 15, 0]], np.uint8)
    rows = legend(mask, ["background"] + ["x"] * 14 + ["person"], voc_palette(21))
    assert [(r["name"], r["share"], r["color"]) for r in rows] == [
        ("person", 0.75, "#c08080"), ("background", 0.25, "#000000")]
