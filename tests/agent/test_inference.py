import threading
import time

import numpy as np
import pytest

from edgeseg.agent import protos
from edgeseg.agent.capture import Frame
from edgeseg.agent.config import ServerConfig
from edgeseg.agent.inference import InferenceLoop, build_request, read_response
from edgeseg.agent.metrics import AgentMetrics
from edgeseg.agent.queues import Closed, DropOldestQueue
from edgeseg.agent.tensors import from_tensor, to_tensor
from edgeseg.errors import InvalidArgument

from .conftest import free_port, wait_until
from .fake_model_server import serve


@pytest.mark.parametrize("frame_hw, input_size, sent_hw", [
    ((48, 64), None, (48, 64)), ((48, 64), (65, 65), (65, 65)), ((48, 64), (48, 64), (48, 64)),
])
def test_build_request_resizes_to_the_model_input(frame_hw, input_size, sent_hw):
    image = np.zeros((*frame_hw, 3), np.uint8)
    image[..., 0] = 200  # blue in BGR
    req = build_request(image, ServerConfig(), input_size)
    sent = from_tensor(req.inputs["images"])
    assert sent.shape == (1, *sent_hw, 3)
    assert (sent[0, ..., 2] == 200).all() and (sent[0, ..., 0] == 0).all()  # RGB on the wire


def test_build_request_jpeg_signature():
    req = build_request(np.zeros((8, 8, 3), np.uint8), ServerConfig(signature="predict_encoded"),
                        None)
    assert req.model_spec.signature_name == "predict_encoded"
    assert req.inputs["images"].string_val[0].startswith(b"\xff\xd8")


def response(class_map, key="segmentation_map", version=None):
    reply = protos.PredictResponse()
    reply.outputs[key].CopyFrom(to_tensor(class_map))
    if version is not None:
        reply.model_spec.version.value = version
    return reply


@pytest.mark.parametrize("class_map, frame_hw, version, expected", [
    (np.array([[[0, 15], [1, 2]]], np.uint8), (2, 2), 3, [[0, 15], [1, 2]]),
    (np.array([[[0, 15]]], np.int64), (1, 2), None, [[0, 15]]),  # predict_images' int64 map
    (np.array([[[0, 15], [1, 2]]], np.uint8), (4, 4), 1,
     [[0, 0, 15, 15], [0, 0, 15, 15], [1, 1, 2, 2], [1, 1, 2, 2]]),  # nearest: ids stay exact
])
def test_read_response_maps_the_mask_to_the_frame(class_map, frame_hw, version, expected):
    mask, got_version = read_response(response(class_map, version=version), frame_hw)
    assert mask.dtype == np.uint8 and mask.tolist() == expected
    assert got_version == version


@pytest.mark.parametrize("reply, match", [
    (response(np.array([[[300]]], np.int64)), "0..255"),
    (response(np.zeros((2, 2, 2, 2), np.uint8)), r"\[1, H, W\]"),
])
def test_read_response_refuses_bad_maps(reply, match):
    with pytest.raises(InvalidArgument, match=match):
        read_response(reply, (1, 1))


def test_read_response_needs_the_output_when_there_are_several():
    reply = response(np.zeros((1, 1, 1), np.uint8), key="a")
    reply.outputs["b"].CopyFrom(to_tensor(np.zeros((1, 1, 1), np.uint8)))
    with pytest.raises(InvalidArgument, match="segmentation_map"):
        read_response(reply, (1, 1))


def feed(frames: DropOldestQueue, stop: threading.Event, fps: float = 50):
    def run():
        i = 0
        while not stop.is_set():
            img = np.full((24, 32, 3), 200 if i % 2 else 20, np.uint8)
            frames.put(Frame(i, img, time.time(), time.monotonic()))
            i += 1
            time.sleep(1 / fps)
        frames.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def make_loop(port, metrics, **kw):
    cfg = ServerConfig(address=f"127.0.0.1:{port}", backoff_initial_s=0.1, backoff_max_s=0.5,
                       deadline_s=2, **kw)
    frames = DropOldestQueue(1, on_put=lambda f: metrics.ledger.enter(f.id),
                             on_drop=lambda f: metrics.ledger.drop(f.id, "capture_overwritten"))
    results = DropOldestQueue(64)
    return InferenceLoop(cfg, frames, results, metrics), frames, results


def test_requests_are_pipelined_up_to_max_in_flight():
    server, fake, port = serve(0, delay=0.2)
    metrics = AgentMetrics()
    loop, frames, results = make_loop(port, metrics, max_in_flight=3)
    stop = threading.Event()
    try:
        loop.start()
        feeder = feed(frames, stop)
        wait_until(lambda: len(results) >= 9, 10, what="9 results")
        stop.set()
        feeder.join()
        loop.join(5)
    finally:
        loop.close()
        server.stop(0)
    assert fake.max_active == 3  # overlapped, and never more than allowed
    res = [results.get(0) for _ in range(len(results))]
    # decoded where it was received: a class map at the frame's size, never a protobuf
    assert res[0].class_map.shape == (24, 32) and res[0].class_map.dtype == np.uint8
    assert res[0].version == 1
    assert res[0].frame.timings["inference"] >= 0.2
    assert res[0].frame.timings["postprocess"] >= 0  # the decode, measured
    # camera faster than 3/0.2 s
    assert metrics.ledger.snapshot().dropped["capture_overwritten"] > 0


def test_server_down_drops_and_counts_then_recovers():
    port = free_port()
    metrics = AgentMetrics()
    loop, frames, results = make_loop(port, metrics, max_in_flight=2)
    stop = threading.Event()
    server = None
    try:
        loop.start()
        feed(frames, stop)
        # 40 frames (0.8 s at 50 fps) offered to a server that is not there
        wait_until(lambda: sum(metrics.ledger.snapshot().dropped.values()) >= 40, 10,
                   what="40 frames dropped while the server is down")
        assert len(results) == 0
        errors = metrics.inference_errors.value
        dropped = metrics.ledger.snapshot().dropped["server_unavailable"]
        assert errors >= 2 and dropped >= errors
        assert errors <= 20  # backoff: not one failing call per frame
        server, fake, _ = serve(port)
        # results come back by themselves, within the (short) backoff cap
        wait_until(lambda: len(results) >= 3, 10, what="results after the server came up")
    finally:
        stop.set()
        loop.join(5)
        loop.close()
        if server:
            server.stop(0)
    assert metrics.frames_processed.value >= 3


def test_closing_the_frame_queue_finishes_in_flight_calls_then_closes_results():
    server, fake, port = serve(0, delay=0.3)
    metrics = AgentMetrics()
    loop, frames, results = make_loop(port, metrics, max_in_flight=2)
    try:
        loop.start()
        frames.put(Frame(0, np.zeros((4, 4, 3), np.uint8), time.time(), time.monotonic()))
        wait_until(lambda: fake.active == 1, 5, what="the call in flight")
        frames.close()
        loop.join(5)
        assert not loop._thread.is_alive()
        assert results.get(0).frame.id == 0
        with pytest.raises(Closed):
            results.get(0)
    finally:
        loop.close()
        server.stop(0)
