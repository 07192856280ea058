"""Graph interpretation of an ``ops``-style architecture over folded weights.

Used by :func:`exporters.deeplab.deeplab_v3` at export time. Each convolution reads
``NAME/kernel`` and ``NAME/bias`` through the writer's context (so the int8 graph
gets per-channel fake-quantized kernels) and hands its output to
``ctx.activation`` (calibrated per-tensor fake quantization in the int8 graph).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from exporters.model import GraphContext


class GraphOps:
    def __init__(self, ctx: GraphContext) -> None:
        self.ctx = ctx

    def rescale(self, x: Any, scale: float, offset: float) -> Any:
        return x * scale + offset

    def conv(self, x: Any, name: str, filters: int, kernel: int, stride: int = 1,
             dilation: int = 1, activation: str | None = "relu6",
             batch_norm: bool = True) -> Any:
        w = self.ctx.weight(f"{name}/kernel", channel_axis=3)
        y = tf.nn.conv2d(x, w, strides=stride, padding="SAME", dilations=dilation, name=name)
        return self._finish(y, name, activation)

    def depthwise(self, x: Any, name: str, stride: int = 1, dilation: int = 1) -> Any:
        w = self.ctx.weight(f"{name}/kernel", channel_axis=2)
        y = tf.nn.depthwise_conv2d(x, w, strides=[1, stride, stride, 1], padding="SAME",
                                   dilations=[dilation, dilation], name=name)
        return self._finish(y, name, "relu6")

    def _finish(self, y: Any, name: str, activation: str | None) -> Any:
        y = tf.nn.bias_add(y, self.ctx.weight(f"{name}/bias"))
        if activation == "relu6":
            y = tf.nn.relu6(y)
        elif activation == "relu":
            y = tf.nn.relu(y)
        return self.ctx.activation(name, y)

    def add(self, a: Any, b: Any, name: str) -> Any:
        return self.ctx.activation(name, tf.add(a, b, name=name))

    def concat(self, xs: list[Any], name: str) -> Any:
        return self.ctx.activation(name, tf.concat(xs, axis=-1, name=name))

    def image_pool(self, x: Any, name: str, filters: int) -> Any:
        pooled = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        pooled = self.conv(pooled, name, filters, 1, activation="relu")
        shape = tf.concat([tf.shape(x)[:3], [filters]], axis=0)
        return tf.broadcast_to(pooled, shape)

    def resize(self, x: Any, size: tuple[int, int], name: str) -> Any:
        return tf.image.resize(x, size, method="bilinear", name=name)
