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

from exporters.model import GraphContext, SegmentationModel

PREDICT_METHOD = "tensorflow/serving/predict"
SIGNATURES = ("serving_default", "predict_images", "predict_encoded")


def map_dtype(model: SegmentationModel) -> tf.DType:
    return tf.uint8 if model.num_classes <= 256 else tf.int32


def segment(images: tf.Tensor, out_size: tf.Tensor, model: SegmentationModel,
            ctx: GraphContext) -> tf.Tensor:
    """float32 RGB [N,H,W,3] -> int32 class ids [N, out_h, out_w]."""
    size_h, size_w = model.input_size
    pre = model.preprocessing
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    if pre.resize == "letterbox":
        h64, w64 = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
        scale = tf.minimum(size_h / h64, size_w / w64)
        new_h = tf.clip_by_value(tf.cast(tf.round(h64 * scale), tf.int32), 1, size_h)
        new_w = tf.clip_by_value(tf.cast(tf.round(w64 * scale), tf.int32), 1, size_w)
        resized = tf.image.resize(images, tf.stack([new_h, new_w]), method="bilinear")
        padding = [[0, 0], [0, size_h - new_h], [0, size_w - new_w], [0, 0]]
        net_in = tf.pad(resized - pre.pad_value, padding) + pre.pad_value
    else:
        new_h, new_w = tf.constant(size_h), tf.constant(size_w)
        net_in = tf.image.resize(images, [size_h, size_w], method="bilinear")
    net_in = tf.ensure_shape(net_in, [None, size_h, size_w, 3])
    if pre.scale != 1.0 or pre.offset != 0.0:
        net_in = net_in * pre.scale + pre.offset
    ids = class_ids(model.forward(net_in, ctx), model)
    ids = ids[:, :new_h, :new_w]
    resized_ids = tf.image.resize(ids[..., tf.newaxis], out_size, method="nearest")
    return resized_ids[..., 0]


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
        count, message="predict_encoded: 'images' holds no image; expected at least one")
    with tf.control_dependencies([nonempty]):
        first = tf.io.decode_image(encoded[0], channels=3, expand_animations=False)
    first_size = tf.shape(first)[:2]

    def decode(data: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        same = tf.debugging.assert_equal(
            tf.shape(image)[:2], first_size,
            message="predict_encoded: every image in one request must have the size of the "
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

    with tf.name_scope("serving_default"):
        images = tf.compat.v1.placeholder(tf.uint8, [None, None, None, 3], name="images")
        ids = segment(tf.cast(images, tf.float32), tf.shape(images)[1:3], model,
                      context_for("serving_default"))
        out = tf.cast(ids, out_dtype, name="segmentation_map")
        sigs["serving_default"] = build({"images": info(images)},
                                        {"segmentation_map": info(out)}, PREDICT_METHOD)

    with tf.name_scope("predict_images"):
        images = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3], name="images")
        height = tf.compat.v1.placeholder(tf.int32, [1], name="height")
        width = tf.compat.v1.placeholder(tf.int32, [1], name="width")
        ids = segment(images, tf.concat([height, width], 0), model,
                      context_for("predict_images"))
        out = tf.cast(ids, tf.int64, name="segmentation_map")
        sigs["predict_images"] = build(
            {"images": info(images), "height": info(height), "width": info(width)},
            {"segmentation_map": info(out)}, PREDICT_METHOD)

    with tf.name_scope("predict_encoded"):
        encoded = tf.compat.v1.placeholder(tf.string, [None], name="images")
        decoded = _decode_batch(encoded)
        ids = segment(tf.cast(decoded, tf.float32), tf.shape(decoded)[1:3], model,
                      context_for("predict_encoded"))
        out = tf.cast(ids, out_dtype, name="segmentation_map")
        sigs["predict_encoded"] = build({"images": info(encoded)},
                                        {"segmentation_map": info(out)}, PREDICT_METHOD)
    return sigs
