"""TF Serving's warmup file: ``assets.extra/tf_serving_warmup_requests``.

A TFRecord of ``PredictionLog`` records, each a Predict request that the server replays
before it marks a version AVAILABLE, so the first real frame does not pay for graph
optimisation and memory allocation (tensorflow/serving#385).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.model_contract import IMAGES, SERVING_DEFAULT

WARMUP_FILE = "tf_serving_warmup_requests"


def warmup_frames(input_size: tuple[int, int]) -> list[np.ndarray]:
    """The network's own size and a VGA camera frame."""
    from exporters.deeplab import synthetic_image

    return [synthetic_image(*input_size, seed=1), synthetic_image(480, 640, seed=2)]


def write_warmup_requests(path: Path, input_size: tuple[int, int]) -> int:
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    frames = warmup_frames(input_size)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for frame in frames:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=SERVING_DEFAULT))
            request.inputs[IMAGES].CopyFrom(tf.make_tensor_proto(frame[None]))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return len(frames)
