"""The preview page, stream and snapshot, served for real; the page in real Chromium."""

from __future__ import annotations

import shutil
import threading
import urllib.request

import cv2
import numpy as np
import pytest

from edgeseg.labels import VOC_CLASSES, voc_palette
from edgeseg.preview.hub import PreviewHub
from edgeseg.preview.server import PreviewServer
from tests.services import wait_until

H, W = 240, 320
GREY = 100


def frame_and_mask(i: int) -> tuple[np.ndarray, np.ndarray]:
    image = np.full((H, W, 3), GREY, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[40:200, 20 + i % 10:140 + i % 10] = 15   # a person, drifting
    mask[60:180, 200:300] = 8                     # a cat
    return image, mask


@pytest.fixture()
def preview():
    hub = PreviewHub(VOC_CLASSES, voc_palette(21), max_fps=15)
    server = PreviewServer(hub, port=0, title="test-cam").start()
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.wait(0.04):
            hub.update(*frame_and_mask(i), {"latency_ms": {"total": 42.0}, "frame_id": i})
            i += 1

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    wait_until(lambda: hub.seq >= 1, 5, what="the first frame at the hub")
    yield hub, server
    stop.set()
    feeder.join()
    server.stop()


def get(url: str, timeout: float = 5) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback
        return response.headers["Content-Type"], response.read()


def test_no_viewer_means_no_encoding(preview):
    hub, server = preview
    wait_until(lambda: hub.seq > 3, 5, what="frames at the hub")
    assert hub.encoded_total == 0  # frames came, nobody watched: none was encoded
    kind, metrics = get(server.url + "metrics")
    assert kind.startswith("text/plain; version=0.0.4")
    assert b"edgeseg_preview_jpeg_encoded_total 0" in metrics
    assert b"# TYPE edgeseg_preview_viewers gauge\nedgeseg_preview_viewers 0\n" in metrics
    get(server.url + "snapshot.jpg")
    assert hub.encoded_total == 1
    assert b"edgeseg_preview_jpeg_encoded_total 1\n" in get(server.url + "metrics")[1]


def test_snapshot_is_a_jpeg_of_the_frame_size(preview):
    _, server = preview
    kind, body = get(server.url + "snapshot.jpg?opacity=1")
    assert kind == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (H, W, 3)
    # cat region at full opacity: VOC cat is RGB (64, 0, 0) -> BGR (0, 0, 64)
    assert np.abs(image[120, 250].astype(int) - [0, 0, 64]).max() <= 8


def test_mjpeg_stream_yields_successive_jpegs(preview):
    _, server = preview
    with urllib.request.urlopen(server.url + "stream.mjpg", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        data = b""
        while data.count(b"--edgesegframe") < 4:
            data += response.read1(65536)
    parts = data.split(b"--edgesegframe")[1:4]
    for part in parts:
        body = part.split(b"\r\n\r\n", 1)[1]
        assert body.startswith(b"\xff\xd8")  # JPEG start of image
    assert len({p for p in parts}) == 3


def test_bad_opacity_and_unknown_path(preview):
    _, server = preview
    for path, code in (("snapshot.jpg?opacity=lots", 400), ("nope", 404)):
        with pytest.raises(urllib.error.HTTPError) as info:
            get(server.url + path)
        assert info.value.code == code


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(not shutil.which("chromium"),
                    reason="Debian's chromium is not installed (make test installs it)")
def test_page_in_headless_chromium(preview, tmp_path):
    from playwright.sync_api import sync_playwright

    hub, server = preview
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 500})
            page.goto(server.url)
            page.wait_for_function("document.querySelectorAll('#legend tr').length >= 3")
            frames_1 = int(page.inner_text("#frame"))
            fps_1 = page.inner_text("#fps")
            # the page polls /stats.json: wait for a later poll rather than a guessed time
            page.wait_for_function(
                f"+document.getElementById('frame').textContent > {frames_1}")
            frames_2 = int(page.inner_text("#frame"))
            names = page.locator("#legend .name").all_inner_texts()
            assert {"person", "cat", "background"} <= set(names)
            assert frames_2 > frames_1
            assert float(page.inner_text("#fps")) > 5 and fps_1 is not None
            assert page.inner_text("#latency") == "42"
            page.wait_for_function("document.getElementById('stream').naturalWidth > 0")
            shot = page.locator("#stream").screenshot(path=str(tmp_path / "preview.png"))
        finally:
            browser.close()
    image = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (H, W)
    # half-opacity person over grey: 0.5*100 + 0.5*(192,128,128) -> BGR (114, 114, 146)
    assert np.abs(image[120, 80].astype(int) - [114, 114, 146]).max() <= 10
    assert np.abs(image[10, 10].astype(int) - [GREY] * 3).max() <= 6  # background
    assert hub.encoded_total > 0
