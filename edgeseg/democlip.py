"""A demo clip made from still photos with camera-like motion.

Each photo gets a few seconds of slow pan and zoom (as a camera on a gimbal would make)
plus a little hand-held shake; photos follow one another with a short cross-fade. The
clip is written with OpenCV (Motion-JPEG in AVI, which every OpenCV build can read).
Without photos, synthetic pictures stand in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def load_photos(folder: Path | None) -> list[np.ndarray]:
    if folder is None or not folder.is_dir():
        return []
    photos = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in PHOTO_SUFFIXES and "mask" not in path.stem:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                photos.append(image)
    return photos


def camera_view(photo: np.ndarray, t: float, size: tuple[int, int], seed: int) -> np.ndarray:
    """The photo seen by a slowly panning, zooming, slightly shaking camera at ``t`` (0..1)."""
    out_h, out_w = size
    h, w = photo.shape[:2]
    rng = np.random.default_rng(seed)
    zoom_from, zoom_to = rng.uniform(1.0, 1.15), rng.uniform(1.2, 1.45)
    zoom = zoom_from + (zoom_to - zoom_from) * (0.5 - 0.5 * math.cos(math.pi * t))
    # the crop keeps the output's aspect ratio and fits inside the photo
    crop_w = min(w, h * out_w / out_h) / zoom
    crop_h = crop_w * out_h / out_w
    direction = rng.uniform(-1, 1, 2)
    cx = w / 2 + direction[0] * (w - crop_w) / 2 * (2 * t - 1)
    cy = h / 2 + direction[1] * (h - crop_h) / 2 * (2 * t - 1)
    shake = 0.004 * min(w, h)
    cx += shake * (math.sin(37 * t + seed) + 0.5 * math.sin(91 * t))
    cy += shake * (math.cos(29 * t + seed) + 0.5 * math.sin(73 * t))
    cx = min(max(cx, crop_w / 2), w - crop_w / 2)
    cy = min(max(cy, crop_h / 2), h - crop_h / 2)
    scale = out_w / crop_w
    matrix = np.array([[scale, 0, out_w / 2 - scale * cx],
                       [0, scale, out_h / 2 - scale * cy]], np.float64)
    return cv2.warpAffine(photo, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def frames(photos: Sequence[np.ndarray], count: int, size: tuple[int, int] = (480, 640),
           per_photo: int = 45, fade: int = 8) -> list[np.ndarray]:
    out = []
    for i in range(count):
        index, step = divmod(i, per_photo)
        photo = photos[index % len(photos)]
        view = camera_view(photo, step / per_photo, size, seed=index)
        if step >= per_photo - fade:
            following = photos[(index + 1) % len(photos)]
            alpha = (step - (per_photo - fade) + 1) / (fade + 1)
            view = cv2.addWeighted(view, 1 - alpha,
                                   camera_view(following, 0.0, size, seed=index + 1), alpha, 0)
        out.append(view)
    return out


def write_clip(path: Path, photos: Sequence[np.ndarray], count: int = 180, fps: float = 15.0,
               size: tuple[int, int] = (480, 640)) -> Path:
    if not photos:
        from exporters.deeplab import synthetic_image

        photos = [synthetic_image(720, 960, seed=s)[:, :, ::-1] for s in range(4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), fps,
                             (size[1], size[0]))
    try:
        for frame in frames(photos, count, size):
            writer.write(frame)
    finally:
        writer.release()
    tmp.replace(path)
    return path
