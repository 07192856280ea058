"""``edgeseg demo`` (what ``make demo`` runs): the whole kit on one machine.

exporter -> ``edgeseg serve`` -> ``edgeseg agent`` on a demo clip -> Mosquitto -> the
live preview in a browser. The model is the real PASCAL VOC DeepLab-v3 when it can be
had (the user cache, ../shared/models, or else fetched now, sha256-checked, from its
public address or ``$EDGESEG_MODELS_URL``); offline, the demo says in one line what it
would have fetched and how to place it by hand, then uses the built-in DeepLab-v3 with
random weights, said plainly. The clip and the calibration use the real photos the
package ships (edgeseg/data/photos). Each service runs as a child process in its own
session, so Ctrl-C reaches only the demo, which stops them in order: agent (publishes
offline), server, broker.
``--frames N`` is the bounded form: it returns once the agent has published N masks.
``--tflite`` shows the int8 path for CPU nodes: the server runs the export's
``model.tflite`` with LiteRT (``--prefer_tflite_model=true``); an export without one is
refused with a message saying so, rather than silently serving the SavedModel.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgeseg.errors import DataLoss, FailedPrecondition, NotFound, Unavailable
from edgeseg.model_contract import ASSETS_EXTRA, LABELS_FILE, TFLITE_FILE
from edgeseg.progress import Progress

REAL_MODEL = "deeplabv3-mnv2-voc"


def find_real_model(progress: Progress) -> Path | None:
    """A verified copy of the reference VOC model: the user cache, ../shared/models, or a
    download into the cache; None (said in one line) when none can be had."""
    from edgeseg import models

    spec = models.spec_for(REAL_MODEL)
    found = models.find(spec)
    if found is not None:
        return found
    url = models.download_url(spec)
    progress.say(f"the reference model {spec.name} is not cached: fetching it from {url}")
    try:
        return models.fetch(spec, url=url, timeout=20.0, progress=progress)
    except (Unavailable, DataLoss) as exc:
        reason = str(exc).split(". ")[0]
        progress.say(f"could not fetch {spec.filename} (sha256 {spec.sha256}) from {url}: "
                     f"{reason}. Place it by hand with 'edgeseg models fetch {spec.name} "
                     f"--from FILE'; using the built-in model for now")
        return None


def export_demo_model(base: Path, input_size: int, fresh: bool, builtin: bool,
                      progress: Progress) -> Path:
    from edgeseg.inspect import resolve_version_dir
    from exporters import command

    if not fresh:
        try:
            existing = resolve_version_dir(base)
        except NotFound:
            existing = None
        if existing is not None:
            progress.say(f"reusing the demo model at {existing} (--fresh to export again)")
            return existing
    real = None if builtin else find_real_model(progress)
    argv = ["--output", str(base), "--force"]
    photos = demo_photos()
    if real is not None and ".tflite" in command.FILE_SOURCES:
        progress.say(f"exporting the real PASCAL VOC DeepLab-v3 from {real}")
        argv = [str(real), *argv]
    else:
        why = ("--builtin given" if builtin
               else "no reference model at hand" if real is None
               else "this build has no TFLite importer")
        progress.say(f"{why}: exporting the built-in DeepLab-v3 with RANDOM weights "
                     "(the masks will be noise; the plumbing is real)")
        argv = ["deeplabv3", *argv, "--input-size", str(input_size)]
    if photos.is_dir():
        argv += ["--calibration-images", str(photos)]
    command.main(argv)
    return resolve_version_dir(base)


def demo_photos() -> Path:
    """The real photos the package ships, for calibration and the demo clip."""
    return Path(__file__).resolve().parent / "data" / "photos"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pick_port(preferred: int) -> int:
    if preferred and port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_alive()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise Unavailable(f"{child.name} did not open port {port} within {timeout:.0f} s; "
                      f"see {child.log}")


class Child:
    """One service of the demo: a process in its own session, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.log = name, log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._out = log.open("w")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise Unavailable(f"{self.name} exited with status {self.proc.returncode}; the "
                              f"end of {self.log}:\n{tail}")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


def find_mosquitto() -> str | None:
    """Debian's mosquitto (/usr/sbin is not on every user's PATH)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if os.access(p, os.X_OK)),
        None)


def mosquitto_binary() -> str:
    """Mosquitto's path; as root, installed with apt when missing."""
    found = find_mosquitto()
    if found is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "mosquitto"], check=False, env={**os.environ,
                                                         "DEBIAN_FRONTEND": "noninteractive"})
        found = find_mosquitto()
    if found:
        return found
    raise FailedPrecondition("Mosquitto is not installed; install it with: "
                             "sudo apt-get install -y mosquitto   (or pass --mqtt HOST:PORT "
                             "of a broker you run)")


def make_clip(workdir: Path, progress: Progress) -> Path:
    from edgeseg.democlip import load_photos, write_clip

    clip = workdir / "demo-clip.avi"
    if clip.is_file():
        return clip
    with progress.step("making the demo clip from photos (pan, zoom, shake)"):
        return write_clip(clip, load_photos(demo_photos()))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="edgeseg demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("build/demo"))
    p.add_argument("--frames", type=int, help="stop after the agent published N masks")
    p.add_argument("--fresh", action="store_true", help="export the demo model again")
    p.add_argument("--builtin", action="store_true",
                   help="use the built-in DeepLab-v3 (random weights) even if the real one "
                        "is available")
    p.add_argument("--input-size", type=int, default=513,
                   help="input size of the built-in model when it is used")
    p.add_argument("--mqtt", metavar="HOST:PORT",
                   help="use this broker instead of starting Mosquitto")
    p.add_argument("--mqtt-port", type=int, default=1883, help="port of the demo's broker")
    p.add_argument("--grpc-port", type=int, default=8500)
    p.add_argument("--preview-port", type=int, default=8080)
    p.add_argument("--fps", type=float, default=10.0, help="camera frame rate of the clip")
    p.add_argument("--tflite", action="store_true",
                   help="serve the export's int8 model.tflite with LiteRT "
                        "(edgeseg serve --prefer_tflite_model=true), the CPU-node runtime")
    return p.parse_args(argv)


def tflite_flags(version_dir: Path, progress: Progress) -> list[str]:
    """The server flags for --tflite, or a clear refusal when the export has no file."""
    tflite = version_dir / TFLITE_FILE
    if not tflite.is_file():
        raise FailedPrecondition(
            f"--tflite: the export {version_dir} has no model.tflite, so there is no int8 "
            "LiteRT path to show; export again with an exporter that writes it "
            "(edgeseg demo --tflite --fresh), or run the demo without --tflite")
    progress.say(f"serving {tflite} ({tflite.stat().st_size / 1e6:.1f} MB) with LiteRT: "
                 "edgeseg serve --prefer_tflite_model=true")
    return ["--prefer_tflite_model=true"]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    progress = Progress(prefix="edgeseg demo")
    workdir = args.workdir.absolute()
    base = workdir / "models" / "deeplab"
    version_dir = export_demo_model(base, args.input_size, args.fresh, args.builtin, progress)
    serve_flags = tflite_flags(version_dir, progress) if args.tflite else []
    clip = make_clip(workdir, progress)
    logs = workdir / "logs"
    children: list[Child] = []
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        mqtt = args.mqtt
        if mqtt is None:
            port = pick_port(args.mqtt_port)
            conf = workdir / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
            with progress.step(f"starting Mosquitto on 127.0.0.1:{port}"):
                broker = Child("mosquitto", [mosquitto_binary(), "-c", str(conf)],
                               logs / "mosquitto.log")
                children.append(broker)
                wait_for_port(port, broker, 15)
            mqtt = f"127.0.0.1:{port}"
        grpc_port = pick_port(args.grpc_port)
        with progress.step(f"starting edgeseg serve on 127.0.0.1:{grpc_port} (loads the model)"):
            server = Child("edgeseg serve", [
                sys.executable, "-m", "edgeseg", "serve", f"--port={grpc_port}",
                "--grpc_bind_address=127.0.0.1", "--model_name=deeplab",
                f"--model_base_path={base}", *serve_flags], logs / "serve.log")
            children.append(server)
            wait_for_port(grpc_port, server, 300)
        preview_port = pick_port(args.preview_port)
        agent_argv = [sys.executable, "-m", "edgeseg", "agent", "--source", str(clip), "--loop",
                      "--pace", str(args.fps), "--server", f"127.0.0.1:{grpc_port}",
                      "--model", "deeplab", "--mqtt", mqtt, "--device-id", "demo",
                      "--camera", "cam0", "--labels",
                      str(version_dir / ASSETS_EXTRA / LABELS_FILE),
                      "--preview-port", str(preview_port), "--publish-frames", "1"]
        if args.frames:
            agent_argv += ["--max-frames", str(args.frames)]
        with progress.step("starting the camera agent"):
            agent = Child("edgeseg agent", agent_argv, logs / "agent.log")
            children.append(agent)
            wait_for_port(preview_port, agent, 60)
        host, _, mport = mqtt.rpartition(":")
        print(f"\n  live preview:   http://127.0.0.1:{preview_port}/\n"
              f"  masks on MQTT:  mosquitto_sub -h {host} -p {mport} -t 'edgeseg/demo/cam0/#' -v"
              f"\n  or:             edgeseg subscribe --mqtt {mqtt} --topic-prefix "
              f"edgeseg/demo/cam0\n  logs:           {logs}\n"
              + ("" if args.frames else "  Ctrl-C stops everything.\n"), flush=True)
        return _supervise(agent, children, stop, args.frames, progress)
    finally:
        for child in reversed(children):
            child.stop()
        signal.signal(signal.SIGINT, previous)


def _supervise(agent: Child, children: list[Child], stop: threading.Event,
               frames: int | None, progress: Progress) -> int:
    while not stop.wait(0.5):
        if agent.proc.poll() is not None:
            if frames and agent.proc.returncode == 0:
                progress.say(f"the agent published {frames} masks; stopping")
                return 0
            agent.check_alive()
        for child in children:
            child.check_alive()
    progress.say("stopping: agent, then server, then broker")
    return 0
