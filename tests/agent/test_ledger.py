"""The frame ledger on its own (pure), then the whole pipeline's accounting with drops:
a slow model server (frames overwritten in the slot) and a broker that is away (outbox
full), against a REAL Mosquitto and the fake model server."""

import threading
from pathlib import Path

import pytest

from edgeseg.agent.config import AgentConfig
from edgeseg.agent.ledger import REASONS, Ledger, LedgerFile
from edgeseg.agent.pipeline import Pipeline

from .conftest import Mosquitto, scrape, synthetic_frames, wait_until, write_clip
from .fake_model_server import serve


def test_every_frame_settles_once_and_the_equation_holds():
    ledger = Ledger()
    seen = []
    ledger.listeners.append(lambda frame_id, outcome: seen.append((frame_id, outcome)))
    for i in range(5):
        ledger.enter(i)
    ledger.acknowledge(0)
    ledger.drop(1, "capture_overwritten")
    ledger.drop(2, "broker_refused")
    s = ledger.snapshot()
    assert (s.captured, s.acknowledged, s.in_flight, s.errors) == (5, 1, 2, 0) and s.balanced
    assert ledger.in_flight_ids() == [3, 4]
    ledger.acknowledge(0)  # settled twice: a bug, counted, never double counted
    ledger.drop(99, "stale")  # never entered
    s = ledger.snapshot()
    assert (s.acknowledged, s.dropped["stale"], s.errors) == (1, 0, 2) and s.balanced
    closed = ledger.close()
    assert closed.in_flight == 0 and closed.dropped["shutdown"] == 2 and closed.balanced
    ledger.acknowledge(3)  # a late PUBACK after the stop: already counted as shutdown
    assert ledger.snapshot() == closed
    assert seen == [(0, "acknowledged"), (1, "capture_overwritten"), (2, "broker_refused"),
                    (3, "shutdown"), (4, "shutdown")]
    assert "captured=5 acknowledged=1 dropped=4 (capture_overwritten=1, broker_refused=1, " \
           "shutdown=2) in_flight=0" in closed.line()


def test_unknown_reason_is_refused():
    ledger = Ledger()
    ledger.enter(1)
    with pytest.raises(ValueError, match="unknown drop reason 'oops'"):
        ledger.drop(1, "oops")
    assert "outbox_full" in REASONS and ledger.snapshot().in_flight == 1


def read_frame_log(path) -> list[tuple[int, str]]:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# start ")
    return [(int(f), outcome) for _t, f, outcome in (line.split() for line in lines[1:])]


def test_the_frame_log_has_one_line_per_settlement(tmp_path):
    ledger = Ledger()
    ledger.listeners.append(frame_log := LedgerFile(tmp_path / "frames.log"))
    for i in range(3):
        ledger.enter(i)
    ledger.acknowledge(1)
    ledger.drop(0, "stale")
    ledger.acknowledge(1)  # an error: counted, not logged as a second settlement
    ledger.close()
    frame_log.close()
    assert read_frame_log(tmp_path / "frames.log") == [(1, "acknowledged"), (0, "stale"),
                                                       (2, "shutdown")]


def test_a_full_disk_stops_the_frame_log_and_nothing_else(caplog):
    ledger = Ledger()
    frame_log = LedgerFile(Path("/dev/full"))  # every write: ENOSPC
    ledger.listeners.append(frame_log)
    for i in range(3):
        ledger.enter(i)
        ledger.acknowledge(i)
    frame_log.close()
    assert ledger.snapshot().acknowledged == 3 and ledger.snapshot().balanced
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "cannot write /dev/full (No space left on device)" in errors[0]


def parse(metrics: dict[str, float]) -> tuple[float, float, float, float]:
    dropped = sum(v for k, v in metrics.items()
                  if k.startswith("edgeseg_agent_frames_dropped_total{"))
    return (metrics["edgeseg_agent_frames_captured_total"],
            metrics["edgeseg_agent_frames_acknowledged_total"], dropped,
            metrics["edgeseg_agent_frames_in_flight"])


def run_pipeline(cfg: AgentConfig, during) -> Pipeline:
    pipeline = Pipeline(cfg, env={})
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(pipeline.run()))
    thread.start()
    try:
        during(pipeline)
    finally:
        pipeline.stop()
        thread.join(30)
    assert done == [0]
    return pipeline


def test_accounting_is_exact_through_a_slow_server_and_a_broker_outage(tmp_path,
                                                                      recorder_factory):
    server, _fake, port = serve(0, delay=0.15)  # ~6 answers/s, camera 25 fps
    broker = Mosquitto(tmp_path)
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(40, (48, 64)))
    cfg = AgentConfig.model_validate({
        "device_id": "d1", "camera": "acct", "source": {"uri": str(clip), "loop": True},
        "server": {"address": f"127.0.0.1:{port}", "max_in_flight": 1},
        "mqtt": {"address": broker.address, "outbox_size": 2, "reconnect_min_s": 0.5,
                 "reconnect_max_s": 1},
        "health": {"metrics_port": 0, "ledger_file": str(tmp_path / "frames.log")}})
    acknowledged: list[int] = []
    quiet_checks = []
    recorders, marks = [], []

    def during(pipeline: Pipeline) -> None:
        pipeline.ledger.listeners.append(
            lambda frame_id, outcome: outcome == "acknowledged" and acknowledged.append(frame_id))
        # the broker is away: frames pass the model and wait in the 2-frame outbox
        wait_until(lambda: pipeline.ledger.snapshot().dropped["outbox_full"] >= 3, 20,
                   what="outbox drops while the broker is away")
        broker.start()
        recorders.append(recorder_factory(broker.port, "edgeseg/d1/acct/#"))
        marks.append(len(acknowledged))  # acknowledged from here on: the subscriber is on
        wait_until(lambda: len(acknowledged) >= marks[0] + 5, 20,
                   what="masks after the broker came up")
        for _ in range(3):  # the page's numbers come from one snapshot: exact mid-run too
            quiet_checks.append(parse(scrape(pipeline.metrics_server.port)))

    try:
        pipeline = run_pipeline(cfg, during)
    finally:
        server.stop(0)
    try:
        totals = pipeline.ledger.snapshot()
        assert totals.in_flight == 0 and totals.errors == 0
        assert totals.captured == totals.acknowledged + sum(totals.dropped.values())
        assert totals.dropped["capture_overwritten"] > 0  # the slow server
        assert totals.dropped["outbox_full"] >= 3  # the outage
        assert totals.acknowledged == len(acknowledged) >= 5
        # the frame log: every captured frame settled exactly once, as the counts say
        settled = read_frame_log(tmp_path / "frames.log")
        assert sorted(f for f, _ in settled) == list(range(totals.captured))
        assert [f for f, outcome in settled if outcome == "acknowledged"] == acknowledged
        for captured, acked, dropped, in_flight in quiet_checks:
            assert captured == acked + dropped + in_flight
        # acknowledged means delivered: every acknowledged mask reached the subscriber
        (rec,) = recorders
        wait_until(lambda: set(acknowledged[marks[0]:]) <= {
            int(m["user"]["frame_id"]) for m in rec.of("mask")}, 5,
            what="every acknowledged mask at the subscriber")
    finally:
        broker.stop()


def test_exit_line_has_the_totals(tmp_path, mosquitto, caplog):
    server, _fake, port = serve(0)
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(20, (48, 64)))
    cfg = AgentConfig.model_validate({
        "device_id": "d1", "camera": "exit", "source": {"uri": str(clip), "loop": True},
        "server": {"address": f"127.0.0.1:{port}"}, "mqtt": {"address": mosquitto.address},
        "max_frames": 8})
    caplog.set_level("INFO", logger="edgeseg.agent")
    try:
        pipeline = Pipeline(cfg, env={})
        assert pipeline.run() == 0
    finally:
        server.stop(0)
    totals = pipeline.ledger.snapshot()
    assert totals.acknowledged == 8 and totals.in_flight == 0 and totals.balanced
    (line,) = [r.getMessage() for r in caplog.records if "stopped;" in r.getMessage()]
    assert f"frames captured={totals.captured} acknowledged=8 " in line
    assert line.endswith("in_flight=0")
