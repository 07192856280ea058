"""GStreamer pipelines without a GStreamer-enabled OpenCV: PyGObject's appsink.

Contract:

* :func:`opencv_has_gstreamer` says whether ``cv2`` was built with GStreamer (the pip
  opencv-python(-headless) wheels are not; JetPack's OpenCV is).
* :func:`check_pipeline` is what ``--validate-config`` and the agent's start-up call for a
  pipeline source: it returns which backend will read it (``"opencv"`` or ``"pygobject"``)
  or raises :class:`~edgeseg.errors.FailedPrecondition` naming the packages to install.
  It only parses the pipeline (unknown elements and syntax errors are reported here); no
  camera is opened.
* :class:`GstCapture` has the part of ``cv2.VideoCapture``'s interface the capture thread
  uses (``grab``/``retrieve``/``read``/``get``/``set``/``release``). One thread uses it; no
  GLib main loop is needed (appsink is pulled, the bus is polled). Frames come out as
  BGR uint8 arrays; an appsink without caps is given the formats this converts (BGR
  preferred).
  Opening raises :class:`SourceUnavailable` with GStreamer's own error text.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from edgeseg.errors import FailedPrecondition

DEBIAN_PACKAGES = ("python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 "
                   "gstreamer1.0-plugins-base gstreamer1.0-plugins-good")


class SourceUnavailable(Exception):
    """A source that cannot be opened or read right now; the message says why."""


@functools.cache
def opencv_has_gstreamer() -> bool:
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        name, _, value = line.strip().partition(":")
        if name.strip() == "GStreamer":
            return value.strip().upper().startswith("YES")
    return False


@functools.cache
def _bindings() -> tuple[Any, str | None]:
    """(Gst, None) or (None, why not). PyGObject has no types: Gst objects are Any."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        from gi.repository import Gst, GstApp  # noqa: F401 - GstApp: appsink's methods
    except (ImportError, ValueError) as exc:
        return None, str(exc) or type(exc).__name__
    Gst.init(None)
    return Gst, None


def gst_module() -> Any:
    """GStreamer's Python module, or FailedPrecondition saying what to install."""
    gst, why = _bindings()
    if gst is None:
        import cv2

        raise FailedPrecondition(
            f"a GStreamer pipeline source needs OpenCV built with GStreamer or GStreamer's "
            f"Python bindings, and here there is neither: cv2 {cv2.__version__} is built "
            f"without GStreamer (the pip opencv wheels are), and `import gi` failed ({why}). "
            f"Install: sudo apt-get install {DEBIAN_PACKAGES}, then `make venv-gi` to let "
            f"the virtualenv see them (or pip install PyGObject); on a Jetson, keep "
            f"JetPack's OpenCV instead (docs/deploy.md, 'Cameras')")
    return gst


def check_pipeline(description: str, prefer_opencv: bool = True) -> str:
    """The backend that will read ``description``; raises FailedPrecondition if none can."""
    if prefer_opencv and opencv_has_gstreamer():
        return "opencv"
    gst = gst_module()
    pipeline = _parse(gst, description)
    pipeline.set_state(gst.State.NULL)
    return "pygobject"


def _parse(gst: Any, description: str) -> Any:
    from gi.repository import GLib

    try:
        pipeline = gst.parse_launch(description)
    except GLib.Error as exc:
        hint = ""
        if any(f'"{e}"' in exc.message for e in ("nvarguscamerasrc", "nvvidconv")):
            hint = " (JetPack's GStreamer elements: a CSI camera is read on a Jetson only)"
        raise FailedPrecondition(f"GStreamer pipeline {description!r}: {exc.message}"
                                 f"{hint}") from None
    if _appsink(gst, pipeline) is None:
        raise FailedPrecondition(f"GStreamer pipeline {description!r} has no appsink: end "
                                 f"it with `! appsink`")
    return pipeline


def _appsink(gst: Any, pipeline: Any) -> Any:
    if not isinstance(pipeline, gst.Bin):
        return pipeline if _factory(pipeline) == "appsink" else None
    it = pipeline.iterate_sinks()
    while True:
        ok, element = it.next()
        if ok != gst.IteratorResult.OK:
            return None
        if _factory(element) == "appsink":
            return element


def _factory(element: Any) -> str | None:
    factory = element.get_factory()
    return factory.get_name() if factory else None


_CHANNELS = {"BGR": 3, "RGB": 3, "BGRx": 4, "BGRA": 4, "RGBx": 4, "RGBA": 4, "GRAY8": 1}


class GstCapture:
    def __init__(self, description: str, open_timeout_s: float, read_timeout_s: float) -> None:
        self.gst = gst = gst_module()
        # a backstop: the capture's watchdog gives a hung read up at read_timeout_s
        self.read_timeout_ns = int(2 * read_timeout_s * gst.SECOND)
        self.pipeline = _parse(gst, description)
        self.sink = _appsink(gst, self.pipeline)
        if self.sink.get_property("caps") is None:  # BGR first: what cv2 uses
            self.sink.set_property("caps", gst.Caps.from_string(
                "video/x-raw,format={BGR,BGRx,BGRA,RGB,RGBx,RGBA,GRAY8}"))
        self._sample: Any = None
        self.fps = 0.0
        self.last_error: str | None = None
        ret = self.pipeline.set_state(gst.State.PLAYING)
        if ret != gst.StateChangeReturn.FAILURE:
            ret, _state, _pending = self.pipeline.get_state(int(open_timeout_s * gst.SECOND))
        if ret == gst.StateChangeReturn.FAILURE:
            why = self._bus_error() or "the pipeline would not start"
            self.release()
            raise SourceUnavailable(why)

    def isOpened(self) -> bool:  # cv2.VideoCapture's name
        return self.pipeline is not None

    def _bus_error(self) -> str | None:
        gst = self.gst
        msg = self.pipeline.get_bus().pop_filtered(gst.MessageType.ERROR)
        if msg is None:
            return None
        err, _debug = msg.parse_error()
        return f"{msg.src.get_name()}: {err.message}"

    def grab(self) -> bool:
        sample = self.sink.try_pull_sample(self.read_timeout_ns)
        self._sample = sample
        if sample is None:
            self.last_error = self._bus_error() or (
                "end of stream" if self.sink.is_eos() else "no frame within the read timeout")
        return sample is not None

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        sample, self._sample = self._sample, None
        if sample is None:
            return False, None
        return True, self._to_array(sample)

    def read(self) -> tuple[bool, np.ndarray | None]:
        return self.retrieve() if self.grab() else (False, None)

    def _to_array(self, sample: Any) -> np.ndarray:
        import cv2

        s = sample.get_caps().get_structure(0)
        width, height = s.get_value("width"), s.get_value("height")
        fmt = s.get_value("format")
        ok, num, den = s.get_fraction("framerate")
        if ok and den:
            self.fps = num / den
        channels = _CHANNELS.get(fmt)
        if channels is None:
            raise SourceUnavailable(f"appsink delivers {fmt}; end the pipeline with "
                                    f"`videoconvert ! video/x-raw,format=BGR ! appsink`")
        data: bytes = sample.get_buffer().extract_dup(0, sample.get_buffer().get_size())
        rows = np.frombuffer(data, np.uint8).reshape(height, -1)  # rows may be padded
        image = rows[:, :width * channels].reshape(height, width, channels)
        if fmt == "BGR":
            return image.copy()
        code = {"RGB": cv2.COLOR_RGB2BGR, "BGRx": cv2.COLOR_BGRA2BGR, "BGRA": cv2.COLOR_BGRA2BGR,
                "RGBx": cv2.COLOR_RGBA2BGR, "RGBA": cv2.COLOR_RGBA2BGR,
                "GRAY8": cv2.COLOR_GRAY2BGR}[fmt]
        return cv2.cvtColor(np.ascontiguousarray(image), code)

    def get(self, prop: int) -> float:
        import cv2

        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, _prop: int, _value: float) -> bool:
        return False

    def release(self) -> None:
        if self.pipeline is not None:
            self.pipeline.set_state(self.gst.State.NULL)
            self.pipeline = None
