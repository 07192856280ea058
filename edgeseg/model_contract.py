"""The exported model's contract in names: tag-sets, signatures, tensors, files.

One home for every name a client, the exporters, the server's docs and the agent agree
on. Nothing here imports TensorFlow, so the agent (which never does) and the exporters
(which always do) spell these the same way; a renamed tensor is renamed here once.

What each signature takes and returns (docs/exporters.md has the long form):

* :data:`SERVING_DEFAULT`: :data:`IMAGES` uint8 [-1,-1,-1,3] -> :data:`SEGMENTATION_MAP`
  uint8 [-1,H,W] (int32 above 256 classes).
* :data:`PREDICT_IMAGES` (the DeepLab/TF Serving tutorial's contract): :data:`IMAGES`
  float32 [1,-1,-1,3] RGB 0..255, :data:`HEIGHT` and :data:`WIDTH` int32 [1] ->
  :data:`SEGMENTATION_MAP` int64 [1,height,width].
* :data:`PREDICT_ENCODED`: :data:`IMAGES` string [-1] of JPEG/PNG bytes, all of one size
  -> :data:`SEGMENTATION_MAP` uint8 [-1,H,W].

:data:`PREDICT_METHOD_NAME` is the SignatureDef ``method_name`` of a Predict signature
(TF Serving's ``kPredictMethodName``), not a gRPC path: those are
``edgeseg.wire.services.PREDICT_METHOD`` and its siblings.
"""

from __future__ import annotations

from typing import Final

# -- meta-graph tag-sets (one SavedModel holds both) ----------------------------------
TAG_FLOAT: Final = "serve"
TAG_QUANTIZED: Final = "serve_quantized"
TAGS: Final = (TAG_FLOAT, TAG_QUANTIZED)

# -- signatures ------------------------------------------------------------------------
SERVING_DEFAULT: Final = "serving_default"
PREDICT_IMAGES: Final = "predict_images"
PREDICT_ENCODED: Final = "predict_encoded"
SIGNATURES: Final = (SERVING_DEFAULT, PREDICT_IMAGES, PREDICT_ENCODED)
PREDICT_METHOD_NAME: Final = "tensorflow/serving/predict"
# What the camera agent can send: raw uint8 frames, or JPEG bytes (less to send).
AGENT_SIGNATURES: Final = (SERVING_DEFAULT, PREDICT_ENCODED)

# -- tensor keys (SignatureDef input/output aliases) ------------------------------------
IMAGES: Final = "images"
HEIGHT: Final = "height"
WIDTH: Final = "width"
SEGMENTATION_MAP: Final = "segmentation_map"

# -- files in a version folder ---------------------------------------------------------
TFLITE_FILE: Final = "model.tflite"  # TF Serving's kTfLiteModelFilename
ASSETS_EXTRA: Final = "assets.extra"
LABELS_FILE: Final = "labels.txt"    # under assets.extra/, one class name a line

__all__ = [
    "AGENT_SIGNATURES", "ASSETS_EXTRA", "HEIGHT",
    "IMAGES", "LABELS_FILE", "PREDICT_ENCODED", "PREDICT_IMAGES",
    "PREDICT_METHOD_NAME", "SEGMENTATION_MAP", "SERVING_DEFAULT", "SIGNATURES", "TAGS",
    "TAG_FLOAT", "TAG_QUANTIZED", "TFLITE_FILE", "WIDTH",
]
