"""The soak's verdict: each agent's ledger against what the subscriber received, and the
processes' resources over time.

Per camera (the ledger the agent logs as it exits, docs/mqtt.md "Every frame counted"):
  captured == acknowledged + sum(dropped) + in_flight, and in_flight == 0 after SIGTERM;
  frame by frame (the agent's ``health.ledger_file``): every captured frame id settled
  once, and the subscriber received exactly the acknowledged ones, each once. A frame
  missing at the subscriber is listed with when it was acknowledged and the nearest
  fault before it. Over the run: no process exited unless the schedule
  stopped it; every fault of the schedule happened; from the fifth minute on (runs of
  ten minutes or more), each agent's RSS grew less than 5% and its fds and threads
  stayed flat.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from typing import Any

from edgeseg.agent.ledger import ACKNOWLEDGED

LEDGER_LINE = re.compile(r"frames captured=(\d+) acknowledged=(\d+) dropped=\d+ "
                         r"\(([^)]*)\) in_flight=(\d+)")
RSS_GROWTH_LIMIT = 0.05
STEADY_AFTER_S = 300.0  # runs of ten minutes or more
WARM_AFTER_S = 30.0     # shorter runs: past start-up at least


def parse_ledger(log_text: str) -> dict[str, Any] | None:
    """The agent's last ledger line (it logs one at exit), or None."""
    matches = list(LEDGER_LINE.finditer(log_text))
    if not matches:
        return None
    captured, acknowledged, dropped, in_flight = matches[-1].groups()
    drops = {k.strip(): int(v) for k, v in
             (item.split("=") for item in dropped.split(",") if "=" in item)}
    return {"captured": int(captured), "acknowledged": int(acknowledged),
            "in_flight": int(in_flight), "dropped": drops}


def parse_frame_log(text: str) -> list[tuple[float, int, str]]:
    """(unix time, frame id, outcome) per settlement, from the agent's last run."""
    runs = text.split("# start ")
    return [(float(t), int(f), outcome) for t, f, outcome in
            (line.split() for line in runs[-1].splitlines()[1:] if line.strip())]


def frame_checks(soak: Any, cam: str, ledger: dict[str, Any],
                 received: Counter[int]) -> tuple[dict[str, bool], list[dict[str, Any]]]:
    path = soak.dir / f"agent-{cam}.frames"
    if not path.exists():
        return {"frame log written": False}, []
    settled = parse_frame_log(path.read_text(errors="replace"))
    ids = Counter(f for _, f, _ in settled)
    acked = {f: t for t, f, outcome in settled if outcome == ACKNOWLEDGED}
    missing = []
    for frame_id in sorted(set(acked) - set(received)):
        at = acked[frame_id] - soak.started_unix
        before = [(ft, name) for ft, name in soak.faults if ft <= at]
        missing.append({"frame_id": frame_id, "acknowledged_s": round(at, 1),
                        "last_fault": before[-1] if before else None})
    checks = {
        "every captured frame settled once (frame log)":
            len(ids) == ledger["captured"] == len(settled),
        "the subscriber received exactly the acknowledged frames":
            set(received) == set(acked),
    }
    return checks, missing


def camera_checks(soak: Any, cam: str) -> dict[str, Any]:
    agent = soak.children[f"agent-{cam}"]
    ledger = parse_ledger(agent.log.read_text(errors="replace"))
    received = soak.subscriber.masks.get(cam, Counter())
    out: dict[str, Any] = {"ledger": ledger, "received_unique": len(received),
                           "received_total": sum(received.values()),
                           "duplicates": sum(n - 1 for n in received.values() if n > 1)}
    if ledger is None:
        out["checks"] = {"ledger logged at exit": False}
        return out
    dropped = sum(ledger["dropped"].values())
    beyond = [f for f in received if not 0 <= f < ledger["captured"]]
    out["checks"] = {
        "captured = acknowledged + dropped + in flight":
            ledger["captured"] == ledger["acknowledged"] + dropped + ledger["in_flight"],
        "in flight 0 after a clean stop": ledger["in_flight"] == 0,
        "every acknowledged mask received": len(received) == ledger["acknowledged"],
        "no frame id beyond the captured ones": not beyond,
        "no frame id received twice": out["duplicates"] == 0,
    }
    frames, out["missing"] = frame_checks(soak, cam, ledger, received)
    out["checks"].update(frames)
    return out


def resource_checks(soak: Any, minutes: float) -> dict[str, Any]:
    steady_from = STEADY_AFTER_S if minutes >= 10 else WARM_AFTER_S
    series: dict[str, list[tuple[float, int, int, int]]] = defaultdict(list)
    with (soak.dir / "samples.csv").open() as f:
        for row in csv.DictReader(f):
            if int(row["rss_kb"]) < 2048:
                continue  # sampled between fork and exec (the bare child), or as it exited
            series[row["process"]].append((float(row["t_s"]), int(row["rss_kb"]),
                                           int(row["fds"]), int(row["threads"])))
    summary, checks = {}, {}
    for name, rows in series.items():
        steady = [r for r in rows if r[0] >= steady_from] or rows
        growth = (steady[-1][1] - steady[0][1]) / steady[0][1]
        summary[name] = {"rss_mb_first": round(steady[0][1] / 1024, 1),
                         "rss_mb_last": round(steady[-1][1] / 1024, 1),
                         "rss_growth": round(growth, 4),
                         "fds": [min(r[2] for r in steady), max(r[2] for r in steady)],
                         "threads": [min(r[3] for r in steady), max(r[3] for r in steady)]}
        if name.startswith("agent-") and minutes >= 10:
            checks[f"{name} RSS growth < 5% after minute 5"] = growth < RSS_GROWTH_LIMIT
    return {"processes": summary, "checks": checks}


def check(soak: Any) -> dict[str, Any]:
    minutes = (soak.faults[-1][0] if soak.faults else 0) / 60
    cameras = {cam: camera_checks(soak, cam) for cam in soak.subscriber.masks.keys()
               | {c.split("-", 1)[1] for c in soak.children if c.startswith("agent-")}}
    resources = resource_checks(soak, minutes)
    kinds = {name for _, name in soak.faults}
    expected = {"broker restart", "server kill", "camera gone", "new model version",
                "config reload"}
    unexpected = [u for child in soak.children.values() for u in child.unexpected]
    checks = {"every fault happened": expected <= kinds,
              "no process died unless the schedule stopped it": not unexpected,
              **resources["checks"]}
    for cam, result in cameras.items():
        checks.update({f"{cam}: {k}": v for k, v in result["checks"].items()})
    return {"ok": all(checks.values()), "checks": checks, "cameras": cameras,
            "faults": soak.faults, "unexpected_exits": unexpected,
            "processes": resources["processes"]}


def render(report: dict[str, Any]) -> str:
    lines = ["soak: checks"]
    lines += [f"  {'ok  ' if ok else 'FAIL'}  {name}" for name, ok in report["checks"].items()]
    lines.append("soak: per camera (agent ledger vs subscriber)")
    for cam, result in sorted(report["cameras"].items()):
        ledger = result["ledger"] or {}
        lines.append(f"  {cam}: captured {ledger.get('captured')} acknowledged "
                     f"{ledger.get('acknowledged')} dropped {ledger.get('dropped')} in flight "
                     f"{ledger.get('in_flight')} | received {result['received_unique']} "
                     f"(+{result['duplicates']} duplicates)")
        for miss in result.get("missing", [])[:20]:
            lines.append(f"    not received: frame {miss['frame_id']} acknowledged at "
                         f"{miss['acknowledged_s']} s, last fault before it: "
                         f"{miss['last_fault']}")
    lines.append("soak: processes (from minute 5; from 30 s in runs under ten minutes)")
    for name, p in sorted(report["processes"].items()):
        lines.append(f"  {name:14} RSS {p['rss_mb_first']:7.1f} -> {p['rss_mb_last']:7.1f} MB "
                     f"({100 * p['rss_growth']:+.1f}%)  fds {p['fds'][0]}-{p['fds'][1]}  "
                     f"threads {p['threads'][0]}-{p['threads'][1]}")
    return "\n".join(lines)
