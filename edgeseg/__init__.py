"""edgeseg: a kit for putting semantic-segmentation models on edge devices.

The kit's parts, by module (docs/architecture.md has the whole picture):

* ``exporters`` (top-level package) turns a trained model into ONE SavedModel with
  the tag-sets {serve} and {serve_quantized}.
* ``edgeseg.serving`` is a TensorFlow-Serving-compatible model server.
* ``edgeseg.agent`` is the camera agent: frames -> gRPC Predict -> masks over MQTT.
"""

__version__ = "0.1.0"
