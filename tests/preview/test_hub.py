"""PreviewHub as a unit: the newest frame and mask, encoded only when a viewer asks, at
most once per frame and opacity; a fake clock for the frame rate. The page and stream
over real HTTP and Chromium: test_preview_server.py."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from edgeseg.preview import hub as hub_module
from edgeseg.preview.hub import PreviewHub

NAMES = ["background", "person", "cat"]
PALETTE = [(0, 0, 0), (192, 128, 128), (64, 0, 0)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(hub_module, "time", fake)
    return fake


def frame(grey: int, person_rows: int = 4) -> tuple[np.ndarray, np.ndarray]:
    image = np.full((16, 24, 3), grey, np.uint8)
    mask = np.zeros((16, 24), np.uint8)
    mask[:person_rows, :] = 1
    mask[-2:, :6] = 2
    return image, mask


def decoded(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_nothing_to_show_before_the_first_frame(clock):
    hub = PreviewHub(NAMES, PALETTE)
    assert hub.jpeg() is None
    assert hub.seq == 0 and hub.encoded_total == 0
    stats = hub.stats()
    assert stats["frames"] == 0 and stats["legend"] == [] and stats["fps"] == 0.0


def test_updates_store_without_encoding_and_viewers_see_the_newest(clock):
    hub = PreviewHub(NAMES, PALETTE)
    for grey in (10, 60, 200):
        hub.update(*frame(grey), {"frame_id": grey})
        clock.now += 0.1
    assert hub.encoded_total == 0, "a camera with no viewer pays for no encoding"
    seq, data = hub.jpeg(opacity=0.0)
    assert seq == 3
    # Opacity 0 shows the frame itself: the newest one (grey 200), not an older one.
    assert abs(float(decoded(data).mean()) - 200) < 3
    assert hub.stats()["frame_id"] == 200


def test_one_encoding_per_frame_and_opacity(clock):
    hub = PreviewHub(NAMES, PALETTE)
    hub.update(*frame(90))
    first = hub.jpeg(0.5)
    assert hub.jpeg(0.5) == first and hub.jpeg(0.501) == first  # same percent: cached
    assert hub.encoded_total == 1
    tinted = hub.jpeg(1.0)
    assert hub.encoded_total == 2 and tinted[1] != first[1]
    # Fully opaque: the person rows take the person's colour (BGR of RGB 192,128,128).
    top = decoded(tinted[1])[1, 12].astype(int)
    assert np.abs(top - [128, 128, 192]).max() < 12
    hub.update(*frame(91))
    assert hub.jpeg(0.5)[0] == 2 and hub.encoded_total == 3


def test_wait_next_wakes_on_a_newer_frame_and_times_out_without_one(clock):
    hub = PreviewHub(NAMES, PALETTE)
    hub.update(*frame(1))
    assert hub.wait_next(after=1, timeout=0.05) == 1  # nothing newer: the same seq
    started = threading.Event()

    def produce() -> None:
        started.wait()
        hub.update(*frame(2))

    thread = threading.Thread(target=produce)
    thread.start()
    started.set()
    assert hub.wait_next(after=1, timeout=30) == 2
    thread.join()


def test_stats_legend_follows_the_newest_mask_and_counts_viewers(clock):
    hub = PreviewHub(NAMES, PALETTE)
    hub.update(*frame(50, person_rows=12))
    with hub.viewer(), hub.viewer():
        stats = hub.stats()
        assert stats["viewers"] == 2
    assert hub.stats()["viewers"] == 0
    assert [row["name"] for row in stats["legend"]] == ["person", "background", "cat"]
    assert stats["legend"][0]["share"] == pytest.approx(12 / 16)
    assert stats["legend"][0]["color"] == "#c08080"
    assert (stats["width"], stats["height"]) == (24, 16)
    hub.update(*frame(50, person_rows=2))
    assert hub.stats()["legend"][0]["name"] == "background"


def test_fps_over_the_last_five_seconds(clock):
    hub = PreviewHub(NAMES, PALETTE)
    for _ in range(11):
        hub.update(*frame(5))
        clock.now += 0.25          # 4 frames a second
    assert hub.fps() == pytest.approx(4.0)
    clock.now += 10.0              # the camera stalled: no recent frames, no rate
    assert hub.fps() == 0.0


def test_fps_of_frames_within_one_clock_tick_is_not_a_division_by_zero(clock):
    hub = PreviewHub(NAMES, PALETTE)
    hub.update(*frame(5))
    hub.update(*frame(6))  # the fake clock did not move
    assert hub.fps() == 0.0
