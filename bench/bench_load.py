"""Load benchmark: does the server's front door hold with many clients, idle sockets and
slow senders (issue 17)?

A real ``edgeseg serve`` with its default limits serves TF Serving's half_plus_two on
127.0.0.1 (REST and metrics on). Three phases: the well-behaved client alone (``--quiet``
seconds), under load (``--seconds``, default 60), alone again. The load comes from a second
process (this script, ``--role load``: asyncio, in bench/load_clients.py), so its own work
does not slow the measuring client's interpreter:

- 64 gRPC and 128 REST (keep-alive) clients, each sending Predict ``--rate`` times a second;
- 2,000 idle connections (every other one sent half a request head), reopened when dropped;
- 100 slow senders writing a request a byte a second, reopened when dropped.

The well-behaved client (``--role probe``, a third process) sends one gRPC and one REST
Predict every 20 ms all along; a sampler here reads the server's threads, RSS and fds (/proc)
and its metrics every 0.5 s. Prints p50/p99 per phase and the ratio of each p99 to the
unloaded one (both quiet phases' samples together; goal: under load <= 3x), rejections
(the server's metrics and what the clients saw), peaks, and plots it all over time (PNG).

    .venv/bin/python bench/bench_load.py [--seconds 60] [--quiet 20] [--rate 2]
                                         [--plot build/bench_load.png]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_serving import free_port, start_server, stop_server  # noqa: E402
from bench.common import table  # noqa: E402
from bench.load_clients import load_main, probe_main  # noqa: E402
from bench.load_plot import plot  # noqa: E402

MODEL = REPO.parent / "shared" / "tfserving-testdata" / "saved_model_half_plus_two_cpu"
METRICS = "/monitoring/prometheus/metrics"


# --- the measuring process -------------------------------------------------------------


def usage(pid: int) -> tuple[int, int, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    field = dict(line.split(":", 1) for line in status.splitlines())
    field = {name: value.split()[0] for name, value in field.items() if value.split()}
    return int(field["Threads"]), len(os.listdir(f"/proc/{pid}/fd")), int(field["VmRSS"]) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (/proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def scrape(port: int) -> dict[str, float]:
    """Metric samples of interest, 'name{labels}' -> value."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", METRICS)
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    keep = ("edgeseg_serving_rejections_total", "edgeseg_serving_open_connections",
            "edgeseg_serving_queued_requests", "edgeseg_serving_active_requests")
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(keep)}


class Probe:
    """The sampler, a thread of this process, and the well-behaved client's results."""

    def __init__(self, pid: int, rest_port: int) -> None:
        self.pid, self.rest_port = pid, rest_port
        self.latency: list[tuple[float, str, float]] = []  # (t, transport, seconds or -1)
        self.samples: list[tuple[float, int, int, float, dict]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def sampler(self) -> None:
        while not self.stop.wait(0.5):
            try:
                seen = scrape(self.rest_port)
                seen["cpu_s"] = cpu_seconds(self.pid)
                seen["loadavg"] = os.getloadavg()[0]
                self.samples.append((time.monotonic() - self.t0, *usage(self.pid), seen))
            except OSError:
                pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(probe: Probe, phases: list[tuple[str, float, float]], counts: dict) -> None:
    def answered(transport: str, start: float, end: float) -> tuple[list[float], int]:
        done = [s for t, tr, s in probe.latency if tr == transport and start <= t < end]
        return [s for s in done if s >= 0], sum(1 for s in done if s < 0)

    rows: list[tuple] = []
    for transport in ("grpc", "rest"):
        # the unloaded p99: both quiet phases together (twice the samples of one)
        quiet = [s for name, start, end in phases if name != "under load"
                 for s in answered(transport, start, end)[0]]
        if not quiet:
            continue
        unloaded = pct(quiet, 0.99)
        for name, start, end in [*phases, ("unloaded (alone + after)", 0, 0)]:
            ok, failed = answered(transport, start, end) if end else (quiet, 0)
            if ok:
                p99 = pct(ok, 0.99)
                rows.append((name, transport, len(ok), failed, f"{pct(ok, 0.5):.2f}",
                             f"{p99:.2f}", f"{p99 / unloaded:.2f}x"))
    print("\nwell-behaved client (one gRPC and one REST Predict every 20 ms)")
    print(table(["phase", "transport", "answered", "failed", "p50 ms", "p99 ms",
                 "p99 vs unloaded"], rows))
    rows = []
    for name, start, end in phases:
        inside = [s for s in probe.samples if start <= s[0] < end]
        if len(inside) > 1:
            cpu = (inside[-1][4]["cpu_s"] - inside[0][4]["cpu_s"]) / (inside[-1][0] - inside[0][0])
            rows.append((name, max(s[1] for s in inside), max(s[2] for s in inside),
                         f"{max(s[3] for s in inside):.0f}",
                         int(max(s[4].get('edgeseg_serving_open_connections{transport="rest"}',
                                          0) for s in inside)),
                         f"{100 * cpu:.0f}%", f"{max(s[4]['loadavg'] for s in inside):.1f}"))
    print("\nserver process (peaks per phase; CPU: its mean use, 100% = one core)")
    print(table(["phase", "threads", "fds", "RSS MiB", "open REST connections", "CPU",
                 "machine load avg"], rows))
    final = probe.samples[-1][4] if probe.samples else {}
    rejected = [(k.split("{")[1].rstrip("}"), int(v)) for k, v in sorted(final.items())
                if k.startswith("edgeseg_serving_rejections_total")]
    print("\nserver rejections (edgeseg_serving_rejections_total)")
    print(table(["labels", "count"], rejected or [("none", 0)]))
    print("\nload clients' view")
    print(table(["outcome", "count"], sorted(counts.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="load phase length")
    parser.add_argument("--quiet", type=float, default=20,
                        help="phases without load (20 s: ~1,000 samples, a p99 of 10)")
    parser.add_argument("--rate", type=float, default=2.0, help="Predicts/s per load client")
    parser.add_argument("--grpc-clients", type=int, default=64)
    parser.add_argument("--rest-clients", type=int, default=128)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--plot", type=Path, default=REPO / "build" / "bench_load.png")
    parser.add_argument("--load-nice", type=int, default=10,
                        help="the load process's nice value: it stands in for clients on "
                        "other machines, so its own CPU should not be the server's latency "
                        "(0: compete equally; the achieved offered rate is printed)")
    parser.add_argument("--server-flag", action="append", default=[],
                        help="an extra edgeseg serve flag (repeatable), e.g. to compare limits")
    parser.add_argument("--role", choices=["measure", "load", "probe"], default="measure")
    parser.add_argument("--grpc-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--rest-port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role != "measure":
        (load_main if args.role == "load" else probe_main)(args)
        return
    if not args.model.is_dir():
        raise SystemExit(f"no model at {args.model} (TF Serving's test data, see ../shared)")
    rest_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "monitoring.config"
        config.write_text(f'prometheus_config {{ enable: true path: "{METRICS}" }}\n')
        proc, grpc_port = start_server(args.model, Path(tmp) / "server.log",
                                       "--model_name=default", f"--rest_api_port={rest_port}",
                                       f"--monitoring_config_file={config}",
                                       *args.server_flag)
        try:
            run(args, proc.pid, grpc_port, rest_port)
        finally:
            stop_server(proc)


def spawn(role: str, *flags: str) -> subprocess.Popen:
    """This script in another role; returns once it printed "ready"."""
    child = subprocess.Popen([sys.executable, __file__, f"--role={role}", *flags],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        child.kill()
        raise SystemExit(f"the {role} process failed")
    return child


def run(args: argparse.Namespace, pid: int, grpc_port: int, rest_port: int) -> None:
    ports = (f"--grpc-port={grpc_port}", f"--rest-port={rest_port}")
    load = spawn("load", f"--seconds={args.seconds}", f"--rate={args.rate}",
                 f"--grpc-clients={args.grpc_clients}", f"--rest-clients={args.rest_clients}",
                 f"--idle={args.idle}", f"--slow={args.slow}", f"--load-nice={args.load_nice}",
                 *ports)
    client = spawn("probe", *ports)
    assert load.stdin and load.stdout and client.stdin and client.stdout
    probe = Probe(pid, rest_port)
    sampler = threading.Thread(target=probe.sampler)
    sampler.start()
    try:
        time.sleep(args.quiet)
        load_start = time.monotonic() - probe.t0
        load_cpu = -cpu_seconds(load.pid)  # its start-up (TensorFlow's import) not counted
        load.stdin.write("go\n")
        load.stdin.flush()
        out = load.stdout.readline()  # the clients' counts, when they are done
        load_end = time.monotonic() - probe.t0
        load_cpu += cpu_seconds(load.pid)
        load.wait(60)
        time.sleep(args.quiet)
        client.stdin.close()  # the client's cue to stop and print its latencies
        probe.latency = [(started - probe.t0, transport, seconds) for started, transport,
                         seconds in json.loads(client.stdout.readline())]
    finally:
        probe.stop.set()
        sampler.join()
        for child in (load, client):
            if child.poll() is None:
                child.kill()
    counts = json.loads(out)
    end = time.monotonic() - probe.t0
    report(probe, [("alone", 0.5, load_start), ("under load", load_start, load_end),
                   ("after", load_end + 1, end)], counts)
    seconds = load_end - load_start
    sent = sum(v for k, v in counts.items() if k.startswith(("grpc ", "rest ")))
    print(f"\nload: {sent} Predicts in {seconds:.0f} s ({sent / seconds:.0f}/s offered by "
          f"{args.grpc_clients}+{args.rest_clients} clients at {args.rate:g}/s each; "
          f"the load process used {100 * load_cpu / seconds:.0f}% of a core at nice "
          f"{args.load_nice})")
    plot(probe, (load_start, load_end), args.plot)


if __name__ == "__main__":
    main()
