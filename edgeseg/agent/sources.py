"""What a ``--source`` string means, whether it is reachable, and how it is opened.

Contract:

* :func:`parse_source` is pure: a device index or /dev/videoN through V4L2; ``csi://N``
  (a Jetson CSI sensor: expanded to the usual ``nvarguscamerasrc`` pipeline); a GStreamer
  pipeline (anything with ``!`` in it); an rtsp/rtmp/http(s)/udp/tcp URL through FFmpeg;
  anything else a file.
* :func:`check_source` is run at start-up and by ``--validate-config``: a source that can
  never be read here (a pipeline with neither GStreamer-enabled OpenCV nor PyGObject)
  raises FailedPrecondition naming what to install, instead of retrying forever.
* :func:`probe` is the cheap test between full opens: a TCP connect for rtsp/rtmp/tcp
  URLs, the path's existence for files and devices. It returns None, or why not
  ("127.0.0.1:8554: Connection refused") — the cause a user should read. An http(s)
  camera is not probed before opening: a single-client server such as
  ``ffmpeg -listen 1`` would take the probe as its one client and exit; its full open is
  one request anyway, and a failed one is explained by a connect afterwards.
* :func:`open_source` returns an opened capture (cv2.VideoCapture or
  :class:`~edgeseg.agent.gst.GstCapture`) or raises SourceUnavailable with the reason.
  OpenCV's and FFmpeg's own messages go to stderr only when the agent logs at DEBUG
  (:func:`quiet_opencv`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from edgeseg.agent import gst
from edgeseg.agent.config import SourceConfig
from edgeseg.agent.gst import SourceUnavailable
from edgeseg.errors import InvalidArgument

__all__ = ["SourceSpec", "SourceUnavailable", "check_source", "expand_csi", "open_source",
           "diagnose", "parse_source", "probe", "quiet_opencv", "redact"]

log = logging.getLogger("edgeseg.agent.capture")

_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}
# FFmpeg's options for network streams unless OPENCV_FFMPEG_CAPTURE_OPTIONS is set: RTSP
# over TCP (no lost UDP packets, no firewall holes) and 0.5 s of stream analysis instead
# of FFmpeg's ~1.5 s, so a camera that comes back is streaming sooner.
FFMPEG_OPTIONS = "rtsp_transport;tcp|analyzeduration;500000"


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "device" | "gstreamer" | "stream" | "file"
    target: int | str
    api: int
    live: bool


def expand_csi(uri: str) -> str:
    """``csi://N[?width=W&height=H&fps=F]`` -> the nvarguscamerasrc pipeline for sensor N."""
    parts = urlsplit(uri)
    if not parts.netloc.isdigit() or parts.path not in ("", "/"):
        raise InvalidArgument(f"source {uri!r}: expected csi://SENSOR_ID, e.g. csi://0 "
                              f"(optionally ?width=1920&height=1080&fps=30)")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"width", "height", "fps"}
    if unknown or not all(v.isdigit() and int(v) > 0 for v in query.values()):
        raise InvalidArgument(f"source {uri!r}: the query takes positive integers width, "
                              f"height and fps only")
    w, h, fps = (int(query.get(k, d)) for k, d in (("width", 1920), ("height", 1080),
                                                   ("fps", 30)))
    return (f"nvarguscamerasrc sensor-id={int(parts.netloc)} ! "
            f"video/x-raw(memory:NVMM),width={w},height={h},framerate={fps}/1 ! "
            f"nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
            f"appsink drop=true max-buffers=1")


def parse_source(uri: str) -> SourceSpec:
    text = uri.strip()
    if re.fullmatch(r"\d+", text):
        return SourceSpec("device", int(text), cv2.CAP_V4L2, True)
    if re.fullmatch(r"/dev/video\d+", text):
        return SourceSpec("device", text, cv2.CAP_V4L2, True)
    if text.lower().startswith("csi://"):
        return SourceSpec("gstreamer", expand_csi(text), cv2.CAP_GSTREAMER, True)
    if "!" in text:
        return SourceSpec("gstreamer", text, cv2.CAP_GSTREAMER, True)
    if re.match(r"^(rtsps?|rtmp|https?|udp|tcp)://", text, re.IGNORECASE):
        return SourceSpec("stream", text, cv2.CAP_FFMPEG, True)
    return SourceSpec("file", text.removeprefix("file://"), cv2.CAP_ANY, False)


def redact(uri: str) -> str:
    """The URI with a password (rtsp://user:SECRET@host) replaced, for log lines."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", uri)


def check_source(spec: SourceSpec, cfg: SourceConfig) -> str:
    """The backend that will read the source; raises what can never work here."""
    if cfg.pace is not None and spec.live:
        raise InvalidArgument(f"source.pace: only a video file can be paced; "
                              f"{redact(cfg.uri)!r} is a live {spec.kind} source "
                              f"(use max_fps to cap it)")
    if spec.kind == "gstreamer":
        return "gstreamer-" + gst.check_pipeline(str(spec.target))
    return {"device": "v4l2", "stream": "ffmpeg", "file": "opencv"}[spec.kind]


def _endpoint(uri: str) -> tuple[str, int] | None:
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None or scheme == "udp":
        return None
    return parts.hostname, port


def connect_error(spec: SourceSpec, timeout: float) -> str | None:
    """Why a TCP connection to a stream's host fails, or None (also for non-TCP sources)."""
    endpoint = _endpoint(str(spec.target)) if spec.kind == "stream" else None
    if endpoint is None:
        return None
    host, port = endpoint
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror}"
    except TimeoutError:
        return f"{host}:{port}: no answer within {timeout:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def probe(spec: SourceSpec, timeout: float) -> str | None:
    """None if the source looks reachable (worth a full open), else why not."""
    if spec.kind == "stream" and urlsplit(str(spec.target)).scheme.lower() in ("http", "https"):
        return None
    return diagnose(spec, timeout)


def diagnose(spec: SourceSpec, timeout: float) -> str | None:
    """Why the source cannot be reached (after a failure: for every kind), or None."""
    if spec.kind == "stream":
        return connect_error(spec, timeout)
    if spec.kind in ("file", "device"):
        path = f"/dev/video{spec.target}" if isinstance(spec.target, int) else spec.target
        if not os.path.exists(path):
            return f"{path}: no such file"
    return None


def quiet_opencv(debug: bool) -> None:
    """OpenCV's and FFmpeg's stderr lines only when the agent logs at DEBUG. Call it before
    the first capture opens: OpenCV reads FFmpeg's level (AV_LOG_PANIC=0, AV_LOG_WARNING=24)
    once, when its FFmpeg backend starts. An OPENCV_FFMPEG_LOGLEVEL already set is kept
    (raised to warnings at DEBUG)."""
    levels = getattr(getattr(cv2, "utils", None), "logging", None)
    if levels is not None:
        levels.setLogLevel(levels.LOG_LEVEL_DEBUG if debug else levels.LOG_LEVEL_SILENT)
    elif (set_level := getattr(cv2, "setLogLevel", None)) is not None:
        # OpenCV wheels before 4.12 (numpy 1.x stacks, TF 2.17) have only the int form
        set_level(5 if debug else 0)  # LOG_LEVEL_DEBUG = 5, LOG_LEVEL_SILENT = 0
    if not debug:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "0")
    elif int(os.environ.get("OPENCV_FFMPEG_LOGLEVEL", "0") or 0) < 24:
        os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "24"  # asked for DEBUG: at least warnings


class FrameSource(Protocol):
    """What the capture uses of a ``cv2.VideoCapture`` (which :class:`gst.GstCapture` copies)."""

    def isOpened(self) -> bool: ...  # cv2's spelling

    def grab(self) -> bool: ...

    def retrieve(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop: int, /) -> float: ...

    def set(self, prop: int, value: float, /) -> bool: ...

    def release(self) -> None: ...


def open_source(spec: SourceSpec, cfg: SourceConfig) -> FrameSource:
    """An opened capture, or SourceUnavailable saying why not."""
    if spec.kind == "gstreamer" and not gst.opencv_has_gstreamer():
        return gst.GstCapture(str(spec.target), cfg.open_timeout_s, cfg.read_timeout_s)
    if spec.kind == "stream":
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", FFMPEG_OPTIONS)
    params: list[int] = []
    if spec.kind in ("stream", "file"):
        # FFmpeg's own read timeout is a backstop, twice ours: when it fires, OpenCV
        # flushes the decoder and returns a frame it held back — one stale frame per
        # timeout (why a hung camera took 3 x read_timeout_s to notice). The capture's
        # watchdog fires first and gives the reader up instead.
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout_s * 2000)]
    try:
        cap = cv2.VideoCapture(spec.target, spec.api, params)
    except cv2.error as exc:
        raise SourceUnavailable(f"OpenCV: {exc.err or exc}") from None
    if not cap.isOpened():
        cap.release()
        raise SourceUnavailable(_why_not_opened(spec, cfg))
    if spec.kind == "device":
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return cap


def _why_not_opened(spec: SourceSpec, cfg: SourceConfig) -> str:
    if spec.kind == "stream":
        return connect_error(spec, min(cfg.open_timeout_s, 2.0)) or (
            "the host answers but OpenCV/FFmpeg could not open the stream (check the "
            "path, credentials and codec; --log-level DEBUG shows FFmpeg's messages)")
    if spec.kind == "file":
        return "OpenCV cannot decode it (not a video file, or a codec it lacks)"
    if spec.kind == "device":
        return "V4L2 cannot open it (busy, no permission — the video group — or not a camera)"
    return "OpenCV's GStreamer backend could not start the pipeline"
