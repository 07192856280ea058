"""Class names and colour palettes shared by the exporter, the agent and the preview.

The PASCAL VOC palette is the one the VOC devkit's ground-truth PNGs use: class ``i``
gets the colour whose R, G and B bits come from the bits of ``i`` read three at a time.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.errors import InvalidArgument, NotFound

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tv",
)


def default_class_names(num_classes: int) -> list[str]:
    """VOC names for 21 classes, else ``class_0`` … ``class_{n-1}``."""
    if num_classes == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    return [f"class_{i}" for i in range(num_classes)]


def voc_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """The PASCAL VOC colour map, extended bit-wise to any number of classes."""
    palette = []
    for index in range(num_classes):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
            if c == 0:
                break
        palette.append((r, g, b))
    return palette


def read_labels(path: str | Path, num_classes: int | None = None) -> list[str]:
    """Read a labels file: one class name a line, blank lines ignored."""
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError:
        raise NotFound(f"labels file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"labels file {path} is not readable text: {exc}") from None
    names = [name for name in names if name]
    if num_classes is not None and len(names) != num_classes:
        raise InvalidArgument(
            f"labels file {path} names {len(names)} classes; the model has {num_classes}")
    return names
