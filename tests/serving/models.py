"""Tiny SavedModels the tests build themselves (TF1 graphs; a few KB, built in ~0.1 s).

- two_tag_model: ONE SavedModel with tag-sets {serve} (y = x*w + 1) and {serve_quantized}
  (y = x*w + 100) sharing one variables checkpoint (w = 1), like an `edgeseg export`.
- slow_model: y = x after spinning a while_loop `n` times (input n, int32 scalar), so a
  test can keep a request in flight for as long as it wants; its `regress` signature
  (outputs = x) and `classify` signature (one score, x) do the same for tf.Examples with a
  float feature `x` and an int64 feature `n`.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

v1 = tf.compat.v1


def _signature(inputs: dict, outputs: dict):
    return v1.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)


def two_tag_model(path: Path) -> Path:
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        x = v1.placeholder(tf.float32, [None], name="x")
        w = v1.get_variable("w", initializer=tf.constant(1.0))
        float_y = tf.identity(x * w + 1.0, name="y_float")
        int8_y = tf.identity(x * w + 100.0, name="y_int8")
        sess.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(
            sess, ["serve"], signature_def_map={"serving_default": _signature({"x": x},
                                                                               {"y": float_y})})
        builder.add_meta_graph(
            ["serve_quantized"],
            signature_def_map={"serving_default": _signature({"x": x}, {"y": int8_y})})
        builder.save()
    return path


def slow_model(path: Path) -> Path:
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        x = v1.placeholder(tf.float32, [None], name="x")
        n = v1.placeholder(tf.int32, [], name="n")
        _, spins = tf.while_loop(lambda i, s: i < n, lambda i, s: (i + 1, s + 1.0),
                                 [tf.constant(0), tf.constant(0.0)])
        y = tf.identity(x + 0.0 * spins, name="y")
        examples = v1.placeholder(tf.string, [None], name="examples")
        features = tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([], tf.float32),
                                                  "n": tf.io.FixedLenFeature([], tf.int64)})
        _, example_spins = tf.while_loop(
            lambda i, s: i < tf.cast(tf.reduce_max(features["n"]), tf.int32),
            lambda i, s: (i + 1, s + 1.0), [tf.constant(0), tf.constant(0.0)])
        outputs = tf.identity(features["x"] + 0.0 * example_spins, name="outputs")
        regress = v1.saved_model.signature_def_utils.regression_signature_def(examples, outputs)
        scores = tf.expand_dims(outputs, 1, name="scores")
        classify = v1.saved_model.signature_def_utils.classification_signature_def(
            examples, None, scores)
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(
            sess, ["serve"],
            signature_def_map={"serving_default": _signature({"x": x, "n": n}, {"y": y}),
                               "regress": regress, "classify": classify})
        builder.save()
    return path
