"""Agent benchmark: end-to-end fps and capture->publish latency of `edgeseg agent`, beside
the tutorial's naive loop and the server's own maximum throughput, in one run.

    .venv/bin/python bench/bench_agent.py [--seconds 10] [--fps 30] [--frame 240x320]
                                          [--input-size 129] [--max-in-flight 2]

Everything is real and local: `edgeseg export` (random-weight DeepLab-v3), `edgeseg serve`,
Debian's mosquitto, the agent as a process, a plain paho subscriber. Rows:

* server max   K client threads sending uint8 frames back to back (no camera, no MQTT):
               the ceiling for this model on this machine.
* agent        `edgeseg agent` on a looped clip paced at --fps like a camera; latency is
               the subscriber's receive time minus the meta's capture_time.
* naive        the tutorial's loop: read a frame, Predict `predict_images` (float32 tensor,
               int64 map), resize, PNG, publish, repeat — sequential. Its latency is taken
               against the camera's timeline (frame i exists at t0 + i/fps): a live camera
               keeps delivering while the loop is busy, so what it reads next is stale
               (opencv #13145).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import grpc  # noqa: E402
import numpy as np  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402

from bench.common import table  # noqa: E402
from edgeseg import mqtt_contract as contract  # noqa: E402
from edgeseg.agent import protos  # noqa: E402
from edgeseg.agent.config import ServerConfig  # noqa: E402
from edgeseg.agent.inference import build_request, read_response  # noqa: E402
from edgeseg.agent.tensors import to_tensor  # noqa: E402
from edgeseg.model_contract import HEIGHT, IMAGES, PREDICT_IMAGES, WIDTH  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"bench_agent: timed out waiting for {what}")


def frames(count: int, h: int, w: int) -> list[np.ndarray]:
    shared = Path(os.environ.get("EDGESEG_SHARED") or REPO.parent / "shared")
    photos = sorted((shared / "models" / "images").glob("*.png"))
    out = []
    for i in range(count):
        if photos:
            img = cv2.resize(cv2.imread(str(photos[i % len(photos)])), (w + 40, h))
            out.append(np.ascontiguousarray(img[:, i % 40: i % 40 + w]))
        else:
            img = np.full((h, w, 3), 40, np.uint8)
            img[h // 4: 3 * h // 4, (i * 5) % (w // 2): (i * 5) % (w // 2) + w // 2] = 220
            out.append(img)
    return out


def percentile_ms(values: list[float], q: float) -> float:
    return 1000 * float(np.percentile(values, q)) if values else float("nan")


def rpc(channel):
    return channel.unary_unary(protos.PREDICT_METHOD,
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=protos.PredictResponse.FromString)


def server_max(address: str, frame: np.ndarray, seconds: float, threads: int) -> float:
    done = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    request = build_request(frame, ServerConfig(), None)

    def worker():
        with grpc.insecure_channel(address) as ch:
            predict = rpc(ch)
            while time.monotonic() < stop:
                predict(request, timeout=60)
                with lock:
                    done[0] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return done[0] / seconds


class Subscriber:
    def __init__(self, port: int) -> None:
        self.metas: list[tuple[float, dict]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self.metas.append(
            (time.time(), json.loads(m.payload)))
        self.client.on_connect = lambda c, *_: c.subscribe(contract.Topics("bench/+").meta, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_agent(args, server: str, broker: int, clip: Path, workdir: Path):
    sub = Subscriber(broker)
    time.sleep(0.3)
    agent = subprocess.Popen(
        [sys.executable, "-m", "edgeseg", "agent", "--source", str(clip), "--loop",
         "--pace", str(args.fps), "--server", server, "--mqtt", f"127.0.0.1:{broker}",
         "--topic-prefix", "bench/agent", "--max-in-flight", str(args.max_in_flight),
         "--log-level", "WARNING"], cwd=REPO, stderr=(workdir / "agent.log").open("w"))
    try:
        wait_for(lambda: sub.metas, 120, "the agent's first mask")
        warm = time.time() + 2
        time.sleep(2 + args.seconds)
        window = [(t, m) for t, m in sub.metas if t >= warm]
    finally:
        agent.terminate()
        agent.wait(20)
        sub.close()
    latency = [t - m["capture_time"] for t, m in window]
    span = window[-1][0] - window[0][0] if len(window) > 1 else float("nan")
    return (len(window) - 1) / span, latency


def run_naive(args, server: str, broker: int, clip_frames: list[np.ndarray]):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker)
    client.loop_start()
    h, w = clip_frames[0].shape[:2]
    latency, published = [], 0
    with grpc.insecure_channel(server) as ch:
        predict = rpc(ch)
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < args.seconds:
            frame = clip_frames[i % len(clip_frames)]
            exists_at = start + i / args.fps  # the camera's timeline
            wait = exists_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            req = protos.PredictRequest()
            req.model_spec.name = "deeplab"
            req.model_spec.signature_name = PREDICT_IMAGES
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32)[np.newaxis]
            req.inputs[IMAGES].CopyFrom(to_tensor(rgb))
            req.inputs[HEIGHT].CopyFrom(to_tensor(np.array([h], np.int32)))
            req.inputs[WIDTH].CopyFrom(to_tensor(np.array([w], np.int32)))
            class_map, _ = read_response(predict(req, timeout=60), (h, w))
            client.publish(contract.Topics("bench/naive").mask, contract.encode_mask(class_map),
                           0)
            latency.append(time.monotonic() - exists_at)
            published += 1
            i += 1  # the next frame in the camera's order: it is already old
    client.loop_stop()
    client.disconnect()
    return published / args.seconds, latency


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0, help="camera frame rate")
    ap.add_argument("--frame", default="240x320", help="HEIGHTxWIDTH of the camera frames")
    ap.add_argument("--input-size", type=int, default=129, help="model input (export)")
    ap.add_argument("--max-in-flight", type=int, default=2)
    ap.add_argument("--server-threads", type=int, default=4)
    args = ap.parse_args()
    h, w = (int(x) for x in args.frame.lower().split("x"))
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        work = Path(tmp)
        try:
            print(f"exporting DeepLab-v3 (input {args.input_size}) …", flush=True)
            subprocess.run([sys.executable, "-m", "edgeseg", "export", "deeplabv3", "--output",
                            str(work / "deeplab"), "--input-size", str(args.input_size)],
                           cwd=REPO, check=True, capture_output=True)
            grpc_port, broker = free_port(), free_port()
            log = (work / "serve.log").open("w")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "edgeseg", "serve", f"--port={grpc_port}",
                 "--grpc_bind_address=127.0.0.1", "--model_name=deeplab",
                 f"--model_base_path={work / 'deeplab'}"], cwd=REPO, stdout=log, stderr=log))
            (work / "m.conf").write_text(f"listener {broker} 127.0.0.1\nallow_anonymous true\n")
            procs.append(subprocess.Popen([mosquitto, "-c", str(work / "m.conf")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for(lambda: "listening" in (work / "serve.log").read_text(), 180, "the server")
            server = f"127.0.0.1:{grpc_port}"
            clip_frames = frames(60, h, w)
            clip = work / "clip.avi"
            writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), args.fps, (w, h))
            for f in clip_frames:
                writer.write(f)
            writer.release()
            print("measuring server max, agent, naive loop …", flush=True)
            server_max(server, clip_frames[0], 2, 1)  # warm-up
            max_fps = server_max(server, clip_frames[0], args.seconds, args.server_threads)
            agent_fps, agent_lat = run_agent(args, server, broker, clip, work)
            naive_fps, naive_lat = run_naive(args, server, broker, clip_frames)
        finally:
            for p in procs:
                p.terminate()
                p.wait(20)
    rows = [
        [f"server max ({args.server_threads} threads, uint8)", f"{max_fps:.1f}", "-", "-"],
        [f"edgeseg agent (max-in-flight {args.max_in_flight})", f"{agent_fps:.1f}",
         f"{percentile_ms(agent_lat, 50):.0f}", f"{percentile_ms(agent_lat, 99):.0f}"],
        ["naive tutorial loop (float32, int64)", f"{naive_fps:.1f}",
         f"{percentile_ms(naive_lat, 50):.0f}", f"{percentile_ms(naive_lat, 99):.0f}"],
    ]
    print(f"\nframes {w}x{h}, camera {args.fps:g} fps, model input {args.input_size}, "
          f"{args.seconds:g} s per row, CPU only\n")
    print(table(["pipeline", "masks/s", "capture->publish p50 ms", "p99 ms"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
