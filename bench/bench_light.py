"""Light install benchmark: disk size of `pip install edgeseg` (no extras) vs the full venv,
the RSS and Predict latency of `edgeseg serve` on the VOC model.tflite in each, and the
agent's RSS in each, side by side in one run.

    .venv/bin/python bench/bench_light.py [--seconds 10] [--requests 40] [--light .venv-light]

Servers: the real Coral PASCAL VOC DeepLab flatbuffer (shared/models) as the only
``model.tflite`` of a version folder, served with ``--prefer_tflite_model=true`` by the light
venv's and the full venv's `edgeseg serve`, both running at once; after 5 warm-up Predicts
each, RSS (VmRSS) is read, then Predicts of one 513x513 uint8 frame alternate between them
(one at a time, so they never compete for the CPUs). Goals: light server <= 150 MB; its
median latency no worse than the full server's.

Real and local: `edgeseg export` (random-weight DeepLab-v3, 65x65) and `edgeseg serve` from
the full venv, Debian's mosquitto, then `edgeseg agent` from the light venv and from the full
venv in turn on the same looped clip. RSS is VmRSS sampled every 0.25 s once masks flow
(after a 2 s warm-up). Goals (issue 12): light venv <= 20% of the full one; agent <= 100 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import table  # noqa: E402
from edgeseg.demo import find_mosquitto  # noqa: E402
from edgeseg.wire.apis import get_model_metadata_pb2, predict_pb2  # noqa: E402
from edgeseg.wire.services import PredictionServiceStub  # noqa: E402
from edgeseg.wire.tensors import encode  # noqa: E402
from tests.services import Mosquitto, Recorder, free_port, wait_port, wait_until  # noqa: E402


def disk_bytes(root: Path) -> int:
    """Bytes on disk under root (st_blocks, each inode once, symlinks not followed)."""
    seen, total = set(), 0
    for dirpath, _, files in os.walk(root.resolve()):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def biggest_packages(venv: Path, n: int = 6) -> list[tuple[str, int]]:
    site = next(venv.resolve().glob("lib/python*/site-packages"))
    sizes = [(p.name, disk_bytes(p)) for p in site.iterdir() if p.is_dir()]
    return sorted(sizes, key=lambda s: -s[1])[:n]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def write_clip(path: Path, count: int = 50) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    for i in range(count):
        frame = np.full((240, 320, 3), 40, np.uint8)
        cv2.circle(frame, (40 + 4 * i, 120), 40, (30, 200, 220), -1)
        writer.write(frame)
    writer.release()
    return path


def agent_rss(argv: list[str], env: dict, broker: Mosquitto, prefix: str, seconds: float,
              workdir: Path) -> list[float]:
    rec = Recorder(broker.port, f"{prefix}/#")
    log = (workdir / f"{prefix.replace('/', '-')}.log").open("w")
    proc = subprocess.Popen([*argv, "--topic-prefix", prefix, "--log-level", "WARNING"],
                            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: rec.of("mask") or proc.poll() is not None, 120, 0.1, "a mask")
        if proc.poll() is not None:
            raise SystemExit(f"bench_light: agent exited: {log.name}")
        time.sleep(2)
        samples, stop = [], time.monotonic() + seconds
        while time.monotonic() < stop:
            samples.append(rss_mib(proc.pid))
            time.sleep(0.25)
        return samples
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
        rec.close()


VOC = REPO.parent / "shared" / "models" / "deeplab" / "deeplabv3_mnv2_pascal_quant.tflite"
TF_LIBRARIES = ("libtensorflow_framework", "_pywrap_tensorflow")


def tensorflow_mapped(pid: int) -> bool:
    return any(lib in Path(f"/proc/{pid}/maps").read_text() for lib in TF_LIBRARIES)


def start_tflite_server(argv: list[str], env: dict, base: Path, log: Path):
    port = free_port()
    proc = subprocess.Popen([*argv, "serve", f"--port={port}", "--grpc_bind_address=127.0.0.1",
                             "--model_name=voc", f"--model_base_path={base}",
                             "--prefer_tflite_model=true"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))
    wait_until(lambda: proc.poll() is not None or "listening" in log.read_text(), 180, 0.2,
               "edgeseg serve to listen")
    if proc.poll() is not None:
        raise SystemExit(f"bench_light: edgeseg serve exited: {log.read_text()[-2000:]}")
    return proc, f"127.0.0.1:{port}"


def server_bench(args: argparse.Namespace, work: Path, light_env: dict, full_env: dict) -> None:
    """RSS after warm-up and Predict latency: light vs full `edgeseg serve`, VOC model.tflite."""
    import grpc

    if not VOC.is_file():
        print(f"\n(server figures skipped: {VOC} is absent)")
        return
    (work / "voc" / "1").mkdir(parents=True)
    (work / "voc" / "1" / "model.tflite").write_bytes(VOC.read_bytes())
    servers = {}
    try:
        for name, argv, env in [("light venv", [str(args.light / "bin" / "edgeseg")], light_env),
                                ("full venv", [sys.executable, "-m", "edgeseg"], full_env)]:
            servers[name] = start_tflite_server(argv, env, work / "voc",
                                                work / f"serve-{name.split()[0]}.log")
        frame = np.random.default_rng(0).integers(0, 255, (1, 513, 513, 3), dtype=np.uint8)
        channels = {n: grpc.insecure_channel(a) for n, (_, a) in servers.items()}
        stubs = {n: PredictionServiceStub(c) for n, c in channels.items()}
        meta = next(iter(stubs.values())).GetModelMetadata(
            get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec={"name": "voc"}, metadata_field=["signature_def"]), timeout=60)
        sigs = get_model_metadata_pb2.SignatureDefMap()
        meta.metadata["signature_def"].Unpack(sigs)
        (alias,) = sigs.signature_def["serving_default"].inputs
        request = predict_pb2.PredictRequest(model_spec={"name": "voc"})
        encode(frame, content=True, out=request.inputs[alias])
        for stub in stubs.values():
            for _ in range(5):
                stub.Predict(request, timeout=120)
        rss = {n: rss_mib(p.pid) for n, (p, _) in servers.items()}
        times: dict[str, list[float]] = {n: [] for n in stubs}
        for _ in range(args.requests):
            for name, stub in stubs.items():
                start = time.perf_counter()
                stub.Predict(request, timeout=120)
                times[name].append((time.perf_counter() - start) * 1000)
        for channel in channels.values():
            channel.close()
        light, full = (statistics.median(times[n]) for n in ("light venv", "full venv"))
        print(f"\n`edgeseg serve --prefer_tflite_model=true`, only the VOC model.tflite "
              f"(513x513 uint8, {args.requests} Predicts each, alternating):")
        print(table(["server", "RSS MB after warm-up", "TF imported", "Predict p50 ms",
                     "vs full", "goal"], [
            ["light venv", f"{rss['light venv']:.0f}",
             "yes" if tensorflow_mapped(servers["light venv"][0].pid) else "no",
             f"{light:.1f}", f"{light / full:.2f}x", "<= 150 MB; p50 no worse"],
            ["full venv", f"{rss['full venv']:.0f}",
             "yes" if tensorflow_mapped(servers["full venv"][0].pid) else "no",
             f"{full:.1f}", "1.00x", ""],
        ]))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--light", type=Path, default=REPO / ".venv-light")
    parser.add_argument("--full", type=Path, default=Path(sys.prefix))
    args = parser.parse_args()
    if not (args.light / "bin" / "edgeseg").exists():
        raise SystemExit(f"bench_light: {args.light} is absent; run `make light-venv`")

    light_bytes, full_bytes = disk_bytes(args.light), disk_bytes(args.full)
    print(table(["venv", "disk MB", "vs full", "goal"], [
        ["light (pip install edgeseg)", f"{light_bytes / 2**20:.0f}",
         f"{100 * light_bytes / full_bytes:.1f}%", "<= 20%"],
        ["full (edgeseg[dev])", f"{full_bytes / 2**20:.0f}", "100%", ""],
    ]))
    print("\nlargest packages in the light venv:")
    print(table(["package", "MB"], [[n, f"{b / 2**20:.0f}"]
                                    for n, b in biggest_packages(args.light)]))
    with tempfile.TemporaryDirectory(prefix="bench-light-") as tmp:
        work = Path(tmp)
        full_env = {**os.environ, "PYTHONPATH": str(REPO)}
        light_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        server_bench(args, work, light_env, full_env)
        if find_mosquitto() is None:
            print("\n(agent RSS skipped: Debian's mosquitto is not installed)")
            return
        subprocess.run([sys.executable, "-m", "edgeseg", "export", "deeplabv3", "--output",
                        str(work / "m"), "--input-size", "65", "--quiet"], cwd=REPO,
                       env=full_env, check=True, timeout=600)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "edgeseg", "serve", f"--port={port}",
             "--grpc_bind_address=127.0.0.1", "--model_name=deeplab",
             f"--model_base_path={work / 'm'}"], cwd=REPO, env=full_env,
            stderr=(work / "serve.log").open("w"))
        broker = Mosquitto(work)
        broker.start()
        try:
            wait_port(port, 180)
            clip = write_clip(work / "clip.avi")
            common = ["agent", "--source", str(clip), "--loop", "--fps", "10", "--server",
                      f"127.0.0.1:{port}", "--mqtt", broker.address, "--max-in-flight", "1"]
            rows = []
            for name, argv, env in [
                ("light venv", [str(args.light / "bin" / "edgeseg"), *common], light_env),
                ("full venv", [sys.executable, "-m", "edgeseg", *common], full_env),
            ]:
                samples = agent_rss(argv, env, broker, f"bench/{name.split()[0]}",
                                    args.seconds, work)
                rows.append([name, f"{statistics.median(samples):.0f}",
                             f"{max(samples):.0f}", len(samples), "<= 100 MB"])
            print(f"\nagent RSS after warm-up ({args.seconds:.0f} s, 320x240 clip at 10 fps):")
            print(table(["agent", "median MB", "max MB", "samples", "goal"], rows))
        finally:
            server.terminate()
            server.wait(30)
            broker.stop()


if __name__ == "__main__":
    main()
