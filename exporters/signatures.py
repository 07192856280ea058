"""The kit's three Predict signatures, with pre- and post-processing in the graph.

Clients send raw frames; the graph letterboxes them to the network's input, runs it,
crops the letterbox away and maps class ids back to each frame's own size:

* ``serving_default``: ``images`` uint8 [-1,-1,-1,3] -> ``segmentation_map`` uint8
  [-1,H,W] (int32 above 256 classes; uint8 keeps responses 8x smaller than int64).
* ``predict_images`` (the DeepLab/TF Serving tutorial's contract): ``images`` float32
  [1,-1,-1,3] RGB 0..255, ``height`` and ``width`` int32 [1] -> ``segmentation_map``
  int64 [1,height,width].
* ``predict_encoded``: ``images`` string [-1] of JPEG/PNG bytes, all of one size ->
  ``segmentation_map`` uint8 [-1,H,W].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from edgeseg.model_contract import (
    HEIGHT,
    IMAGES,
    PREDICT_ENCODED,
    PREDICT_IMAGES,
    PREDICT_METHOD_NAME,
    SEGMENTATION_MAP,
    SERVING_DEFAULT,
    WIDTH,
)
from exporters.model import GraphContext, SegmentationModel


def map_dtype(model: SegmentationModel) -> tf.DType:
    return tf.uint8 if model.num_classes <= 256 else tf.int32


def segment(images: tf.Tensor, out_size: tf.Tensor, model: SegmentationModel,
            ctx: GraphContext, dtype: tf.DType = tf.int32,
            resize: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None) -> tf.Tensor:
    """float32 RGB [N,H,W,3] -> class ids [N, out_h, out_w] of ``dtype``."""
    net_in, new_h, new_w = letterbox(images, model, resize)
    ids = class_ids(model.forward(net_in, ctx), model)
    return restore(ids, new_h, new_w, out_size, dtype)


def letterbox_size(height: tf.Tensor, width: tf.Tensor,
                   size: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor]:
    """The frame's size scaled to fit ``size``, keeping its aspect: the limiting side
    becomes the network's, the other ``round(side * scale)`` (half to even), in exact
    int32 arithmetic, so that every runtime (TF, TFLite) letterboxes alike."""
    size_h, size_w = size
    by_height = size_h * width <= size_w * height  # scale = size_h / height

    def scaled(side: tf.Tensor, target: int, limit: tf.Tensor) -> tf.Tensor:
        numerator = side * target
        quotient = tf.math.floordiv(numerator, limit)
        twice_rest = 2 * (numerator - quotient * limit)
        odd = tf.math.floormod(quotient, 2) == 1
        up = tf.logical_or(twice_rest > limit, tf.logical_and(twice_rest == limit, odd))
        return quotient + tf.cast(up, tf.int32)

    new_h = tf.where(by_height, tf.constant(size_h), scaled(height, size_w, width))
    new_w = tf.where(by_height, scaled(width, size_h, height), tf.constant(size_w))
    return tf.clip_by_value(new_h, 1, size_h), tf.clip_by_value(new_w, 1, size_w)


def bilinear_weights(out: tf.Tensor, in_size: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """TF's half-pixel bilinear sampling along one axis: lower and upper source indices
    and the blend weight, for ``out`` samples of an axis of ``in_size``."""
    scale = tf.cast(in_size, tf.float32) / tf.cast(out, tf.float32)
    x = (tf.cast(tf.range(out), tf.float32) + 0.5) * scale - 0.5
    x_floor = tf.floor(x)
    lower = tf.maximum(tf.cast(x_floor, tf.int32), 0)
    upper = tf.minimum(tf.cast(tf.math.ceil(x), tf.int32), in_size - 1)
    return lower, upper, x - x_floor


def resize_bilinear(images: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """TensorFlow's ResizeBilinear (half-pixel centers) spelled out in gathers and
    float32 arithmetic in the kernel's own order, bit for bit. TFLite's and XNNPACK's
    kernels weigh the four neighbours in another order, and a last-bit difference
    flips the rounding of the quantized input (x.5 is common), so model.tflite
    letterboxes with this."""
    shape = tf.shape(images)

    y_low, y_high, y_lerp = bilinear_weights(size[0], shape[1])
    x_low, x_high, x_lerp = bilinear_weights(size[1], shape[2])
    top, bottom = tf.gather(images, y_low, axis=1), tf.gather(images, y_high, axis=1)
    x_lerp, y_lerp = tf.reshape(x_lerp, [1, 1, -1, 1]), tf.reshape(y_lerp, [1, -1, 1, 1])
    top_left, top_right = tf.gather(top, x_low, axis=2), tf.gather(top, x_high, axis=2)
    bottom_left = tf.gather(bottom, x_low, axis=2)
    bottom_right = tf.gather(bottom, x_high, axis=2)
    top = top_left + (top_right - top_left) * x_lerp
    bottom = bottom_left + (bottom_right - bottom_left) * x_lerp
    return top + (bottom - top) * y_lerp


def _tf_resize_bilinear(images: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    return tf.image.resize(images, size, method="bilinear")


def letterbox(images: tf.Tensor, model: SegmentationModel,
              resize: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None
              ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """float32 RGB [N,H,W,3] -> (the network's input [N,h,w,3] after pre-processing,
    the letterboxed frame's height and width inside it). ``resize``: bilinear, TF's
    op by default (:func:`resize_bilinear` computes the same values)."""
    resize = resize or _tf_resize_bilinear
    size_h, size_w = model.input_size
    pre = model.preprocessing
    shape = tf.shape(images)
    if pre.resize == "letterbox":
        new_h, new_w = letterbox_size(shape[1], shape[2], model.input_size)
        resized = resize(images, tf.stack([new_h, new_w]))
        padding = [[0, 0], [0, size_h - new_h], [0, size_w - new_w], [0, 0]]
        net_in = tf.pad(resized - pre.pad_value, padding) + pre.pad_value
    else:
        new_h, new_w = tf.constant(size_h), tf.constant(size_w)
        net_in = resize(images, tf.constant([size_h, size_w]))
    # A reshape (not ensure_shape) fixes the static shape: TFLite converts it, and the
    # layers after it get static shapes there too.
    batch = images.shape[0] if images.shape[0] is not None else -1
    net_in = tf.reshape(net_in, [batch, size_h, size_w, 3])
    if pre.scale != 1.0 or pre.offset != 0.0:
        net_in = net_in * pre.scale + pre.offset
    return net_in, new_h, new_w


def restore(ids: tf.Tensor, new_h: tf.Tensor, new_w: tf.Tensor, out_size: tf.Tensor,
            dtype: tf.DType = tf.int32) -> tf.Tensor:
    """Class ids at the network's size -> ``dtype`` ids with the letterbox cropped away,
    resized (nearest) to ``out_size``. The ids are resized as float32 (exact for any
    class count the map holds): TFLite's nearest resize takes no uint8 or int32."""
    ids = tf.cast(ids, tf.float32)[:, :new_h, :new_w]
    resized_ids = tf.image.resize(tf.expand_dims(ids, -1), out_size, method="nearest")
    return tf.cast(tf.squeeze(resized_ids, -1), dtype)


def class_ids(scores: tf.Tensor, model: SegmentationModel) -> tf.Tensor:
    """The network's output -> int32 class ids [N, h, w] at the network's input size."""
    size = list(model.input_size)
    if model.output == "class_ids" or scores.shape.rank == 3:
        ids = tf.cast(scores, tf.int32)
        if ids.shape[1:3].as_list() != size:
            ids = tf.image.resize(ids[..., tf.newaxis], size, method="nearest")[..., 0]
        return ids
    if scores.shape[1:3].as_list() != size:
        scores = tf.image.resize(scores, size, method="bilinear")
    if scores.shape[-1] == 1:
        threshold = 0.5 if model.output == "probabilities" else 0.0
        return tf.cast(scores[..., 0] > threshold, tf.int32)
    return tf.argmax(scores, axis=-1, output_type=tf.int32)


def _decode_batch(encoded: tf.Tensor) -> tf.Tensor:
    count = tf.size(encoded)
    nonempty = tf.debugging.assert_positive(
        count, message=f"{PREDICT_ENCODED}: '{IMAGES}' holds no image; expected at least one")
    with tf.control_dependencies([nonempty]):
        first = tf.io.decode_image(encoded[0], channels=3, expand_animations=False)
    first_size = tf.shape(first)[:2]

    def decode(data: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        same = tf.debugging.assert_equal(
            tf.shape(image)[:2], first_size,
            message=f"{PREDICT_ENCODED}: every image in one request must have the size of the "
                    "first (height, width); send differently sized images in separate requests")
        with tf.control_dependencies([same]):
            return tf.identity(image)

    return tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def build_signatures(model: SegmentationModel,
                     context_for: Callable[[str], GraphContext]) -> dict[str, Any]:
    """Build the three signatures in the current default graph; ``context_for(name)``
    gives the context each signature's forward pass runs with."""
    info = tf.compat.v1.saved_model.utils.build_tensor_info
    build = tf.compat.v1.saved_model.signature_def_utils.build_signature_def
    out_dtype = map_dtype(model)
    sigs: dict[str, Any] = {}

    with tf.name_scope(SERVING_DEFAULT):
        images = tf.compat.v1.placeholder(tf.uint8, [None, None, None, 3], name=IMAGES)
        ids = segment(tf.cast(images, tf.float32), tf.shape(images)[1:3], model,
                      context_for(SERVING_DEFAULT), out_dtype)
        out = tf.cast(ids, out_dtype, name=SEGMENTATION_MAP)
        sigs[SERVING_DEFAULT] = build({IMAGES: info(images)},
                                      {SEGMENTATION_MAP: info(out)}, PREDICT_METHOD_NAME)

    with tf.name_scope(PREDICT_IMAGES):
        images = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3], name=IMAGES)
        height = tf.compat.v1.placeholder(tf.int32, [1], name=HEIGHT)
        width = tf.compat.v1.placeholder(tf.int32, [1], name=WIDTH)
        ids = segment(images, tf.concat([height, width], 0), model,
                      context_for(PREDICT_IMAGES))
        out = tf.cast(ids, tf.int64, name=SEGMENTATION_MAP)
        sigs[PREDICT_IMAGES] = build(
            {IMAGES: info(images), HEIGHT: info(height), WIDTH: info(width)},
            {SEGMENTATION_MAP: info(out)}, PREDICT_METHOD_NAME)

    with tf.name_scope(PREDICT_ENCODED):
        encoded = tf.compat.v1.placeholder(tf.string, [None], name=IMAGES)
        decoded = _decode_batch(encoded)
        ids = segment(tf.cast(decoded, tf.float32), tf.shape(decoded)[1:3], model,
                      context_for(PREDICT_ENCODED), out_dtype)
        out = tf.cast(ids, out_dtype, name=SEGMENTATION_MAP)
        sigs[PREDICT_ENCODED] = build({IMAGES: info(encoded)},
                                      {SEGMENTATION_MAP: info(out)}, PREDICT_METHOD_NAME)
    return sigs
