"""A soak with faults: the whole kit for N minutes while brokers, servers and cameras fail.

    .venv/bin/python -m bench.soak --minutes 60 --workdir build/soak        (by hand)
    .venv/bin/python -m bench.soak --minutes 3 --compressed --workdir DIR   (make test)

It exports the built-in DeepLab (small input, so the soak measures the plumbing, not the
model), starts Mosquitto with persistence, ``edgeseg serve`` (config file polled), two
MJPEG-over-HTTP cameras on looped clips, two agents (QoS 1 masks) and a paho subscriber
with a persistent session, then runs the fault schedule (FULL, or COMPRESSED to fit
three minutes):

    broker restart every 3 min, server SIGKILL + restart every 7 min, a camera gone for
    20 s every 5 min, a new model version every 4 min, a config reload every 2 min.

Every SAMPLE_S it samples RSS, open fds and threads of every process (samples.csv) and
the masks received per camera (rates.csv); it draws soak.png. At the end it stops the
agents (SIGTERM: they finish or count what they hold) and checks, per camera, the
agent's own ledger (captured = acknowledged + dropped + in flight, in flight 0) against
what the subscriber received: every acknowledged mask arrived, none beyond them, no frame
id twice. report.json holds the figures; the exit status says whether every check held.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.soak_parts import Child, Subscriber, proc_sample

REPO = Path(__file__).resolve().parents[1]
EDGESEG = [sys.executable, "-m", "edgeseg"]
DEVICE = "soak"
CAMERAS = ("cam0", "cam1")


@dataclass(frozen=True)
class Fault:
    name: str
    offset_s: float
    period_s: float
    duration_s: float = 0.0


FULL = (Fault("config reload", 120, 120), Fault("broker restart", 180, 180),
        Fault("new model version", 240, 240), Fault("camera gone", 300, 300, 20),
        Fault("server kill", 420, 420))
COMPRESSED = (Fault("config reload", 20, 45), Fault("new model version", 30, 60),
              Fault("broker restart", 40, 300), Fault("camera gone", 55, 90, 8),
              Fault("server kill", 75, 100))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc is None or child.proc.poll() is not None:
            raise SystemExit(f"soak: {child.name} exited while starting; see {child.log}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"soak: {child.name} did not open port {port} in {timeout:.0f} s")


class Soak:
    def __init__(self, workdir: Path, sample_s: float) -> None:
        self.dir = workdir
        self.sample_s = sample_s
        self.base = workdir / "models" / "deeplab"
        self.ports = {name: free_port() for name in ("mqtt", "grpc", *CAMERAS)}
        self.metrics_ports = {cam: free_port() for cam in CAMERAS}
        self.faults: list[tuple[float, str]] = []
        self.started = time.monotonic()
        self.started_unix = time.time()
        self.config_flip = False
        self.children: dict[str, Child] = {}

    # -- set-up ------------------------------------------------------------------------
    def prepare(self) -> None:
        from edgeseg.democlip import load_photos, write_clip

        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([*EDGESEG, "export", "deeplabv3", "--output", str(self.base),
                        "--input-size", "65", "--force"], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL)
        photos = load_photos(REPO / "edgeseg" / "data" / "photos")
        write_clip(self.dir / "clip.avi", photos, count=90, size=(240, 320))
        (self.dir / "mosquitto").mkdir(exist_ok=True)
        (self.dir / "mosquitto.conf").write_text(
            f"listener {self.ports['mqtt']} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.dir / 'mosquitto'}/\n"
            "autosave_interval 5\npersistent_client_expiration 1h\n"
            "max_queued_messages 100000\n")
        self.write_model_config()
        for cam in CAMERAS:
            (self.dir / f"agent-{cam}.yaml").write_text(json.dumps({
                "device_id": DEVICE, "camera": cam,
                "source": {"uri": f"http://127.0.0.1:{self.ports[cam]}/stream.mjpg",
                           "read_timeout_s": 3.0},
                "server": {"address": f"127.0.0.1:{self.ports['grpc']}", "model": "deeplab",
                           "deadline_s": 3.0},
                "mqtt": {"address": f"127.0.0.1:{self.ports['mqtt']}", "qos_mask": 1,
                         "qos_meta": 1, "outbox_size": 512},
                "health": {"metrics_port": self.metrics_ports[cam],
                           "ledger_file": str(self.dir / f"agent-{cam}.frames")}}, indent=1))

    def write_model_config(self) -> None:
        """Two configs that keep ``deeplab`` available; a reload flips between them."""
        policy = ("model_version_policy { latest { num_versions: 2 } }"
                  if self.config_flip else "")
        text = (f'model_config_list {{ config {{ name: "deeplab" base_path: "{self.base}" '
                f'model_platform: "tensorflow" {policy} }} }}\n')
        tmp = self.dir / "models.config.tmp"
        tmp.write_text(text)
        tmp.replace(self.dir / "models.config")

    def start(self) -> None:
        logs = self.dir / "logs"
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.children["broker"] = Child("broker", [mosquitto, "-c",
                                                   str(self.dir / "mosquitto.conf")],
                                        logs / "mosquitto.log")
        self.children["server"] = Child("server", [
            *EDGESEG, "serve", f"--port={self.ports['grpc']}", "--grpc_bind_address=127.0.0.1",
            f"--model_config_file={self.dir / 'models.config'}",
            "--model_config_file_poll_wait_seconds=2", "--file_system_poll_wait_seconds=1"],
            logs / "serve.log", env={"TF_CPP_MIN_LOG_LEVEL": "2"})
        for cam in CAMERAS:
            self.children[f"camera-{cam}"] = Child(f"camera-{cam}", [
                sys.executable, "-m", "bench.mjpeg_camera", "--port", str(self.ports[cam]),
                "--clip", str(self.dir / "clip.avi"), "--fps", "4"], logs / f"camera-{cam}.log")
        for name in ("broker", "server", *(f"camera-{c}" for c in CAMERAS)):
            self.children[name].start()
        wait_port(self.ports["mqtt"], self.children["broker"], 20)
        wait_port(self.ports["grpc"], self.children["server"], 180)
        self.subscriber = Subscriber(self.ports["mqtt"], DEVICE, self.dir / "received.log")
        for cam in CAMERAS:
            child = Child(f"agent-{cam}", [*EDGESEG, "agent", "--config",
                                           str(self.dir / f"agent-{cam}.yaml")],
                          logs / f"agent-{cam}.log")
            self.children[child.name] = child
            child.start()
        self.started = time.monotonic()
        self.started_unix = time.time()  # the agents' frame logs are in unix time

    # -- faults ------------------------------------------------------------------------
    def fault(self, fault: Fault) -> None:
        now = time.monotonic() - self.started
        self.faults.append((now, fault.name))
        print(f"soak: {now:6.0f} s  {fault.name}", flush=True)
        if fault.name == "broker restart":
            broker = self.children["broker"]
            broker.stop(signal.SIGTERM)
            broker.start()
            wait_port(self.ports["mqtt"], broker, 20)
        elif fault.name == "server kill":
            server = self.children["server"]
            server.stop(signal.SIGKILL)
            server.start()
        elif fault.name == "camera gone":
            cam = CAMERAS[len([f for f in self.faults if f[1] == fault.name]) % len(CAMERAS)]
            camera = self.children[f"camera-{cam}"]
            camera.stop(signal.SIGKILL)
            self.pending.append((time.monotonic() + fault.duration_s, camera.start))
        elif fault.name == "new model version":
            self.drop_in_version()
        elif fault.name == "config reload":
            self.config_flip = not self.config_flip
            self.write_model_config()

    def drop_in_version(self) -> None:
        """Copy the newest version to the next number and rename it into place, as an
        operator's rsync + mv would (the server must never see half of it)."""
        versions = sorted(int(p.name) for p in self.base.iterdir() if p.name.isdigit())
        staged = self.base / f".staging-{versions[-1] + 1}"
        shutil.copytree(self.base / str(versions[-1]), staged)
        staged.rename(self.base / str(versions[-1] + 1))

    # -- the run -----------------------------------------------------------------------
    def run(self, minutes: float, schedule: tuple[Fault, ...]) -> None:
        end = self.started + 60 * minutes
        due = {f: self.started + f.offset_s for f in schedule}
        self.pending: list[tuple[float, object]] = []
        next_sample = time.monotonic()
        with (self.dir / "samples.csv").open("w", newline="") as samples, \
                (self.dir / "rates.csv").open("w", newline="") as rates:
            sample_out, rate_out = csv.writer(samples), csv.writer(rates)
            sample_out.writerow(["t_s", "process", "pid", "rss_kb", "fds", "threads"])
            rate_out.writerow(["t_s", "camera", "masks_per_s"])
            last_counts = {cam: 0 for cam in CAMERAS}
            while time.monotonic() < end:
                now = time.monotonic()
                for when, action in [p for p in self.pending if p[0] <= now]:
                    self.pending.remove((when, action))
                    action()
                for fault, at in due.items():
                    if at <= now < end - 15:  # leave the end for recovery
                        self.fault(fault)
                        due[fault] = at + fault.period_s
                if now >= next_sample:
                    self.sample(now, sample_out, rate_out, last_counts)
                    samples.flush()  # a run cut short still leaves its figures
                    rates.flush()
                    next_sample += self.sample_s
                time.sleep(0.2)

    def sample(self, now: float, sample_out, rate_out, last_counts: dict[str, int]) -> None:
        t = round(now - self.started, 1)
        for name, child in self.children.items():
            child.check()
            pid = child.pid
            figures = proc_sample(pid) if pid else None
            if figures:
                sample_out.writerow([t, name, pid, figures["rss_kb"], figures["fds"],
                                     figures["threads"]])
        with self.subscriber.lock:
            counts = {cam: len(self.subscriber.masks[cam]) for cam in CAMERAS}
        for cam in CAMERAS:
            rate_out.writerow([t, cam, round((counts[cam] - last_counts[cam]) / self.sample_s,
                                             2)])
        last_counts.update(counts)

    def finish(self) -> dict:
        """Stop the agents cleanly, let the subscriber drain, stop the rest, check."""
        for cam in CAMERAS:
            self.children[f"agent-{cam}"].stop(signal.SIGTERM, timeout=60)
        settle, last = time.monotonic() + 30, -1
        while time.monotonic() < settle:  # until the subscriber has had it all
            count = self.subscriber.count()
            if count == last:
                break
            last = count
            time.sleep(2)
        self.subscriber.close()
        for name, child in self.children.items():
            if not name.startswith("agent-"):
                child.stop(signal.SIGTERM)
        from bench.soak_check import check

        return check(self)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--compressed", action="store_true",
                   help="the short schedule (every fault at least once in 3 minutes)")
    p.add_argument("--workdir", type=Path, default=REPO / "build" / "soak")
    p.add_argument("--sample-s", type=float, default=None, help="default 10 (2 compressed)")
    args = p.parse_args(argv)
    sample_s = args.sample_s or (2.0 if args.compressed else 10.0)
    soak = Soak(args.workdir.absolute(), sample_s)
    soak.prepare()
    try:
        soak.start()
        soak.run(args.minutes, COMPRESSED if args.compressed else FULL)
        report = soak.finish()
    finally:
        for child in soak.children.values():
            child.stop(signal.SIGKILL, timeout=5)
    (soak.dir / "report.json").write_text(json.dumps(report, indent=1))
    from bench.soak_check import render

    print(render(report))
    try:
        from bench.soak_plot import plot

        print(f"plot: {plot(soak.dir, soak.faults)}")
    except ImportError as exc:  # matplotlib is in the dev extra
        print(f"no plot: {exc}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
