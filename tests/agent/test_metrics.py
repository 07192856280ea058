import urllib.request

from edgeseg.agent.metrics import AgentMetrics, Histogram, MetricsServer


def test_histogram_buckets_are_cumulative():
    h = Histogram("x_seconds", "help", buckets=(0.1, 1.0), stage="total")
    for v in (0.05, 0.5, 5):
        h.observe(v)
    assert h.samples() == [
        'x_seconds_bucket{le="0.1",stage="total"} 1',
        'x_seconds_bucket{le="1",stage="total"} 2',
        'x_seconds_bucket{le="+Inf",stage="total"} 3',
        'x_seconds_sum{stage="total"} 5.55',
        'x_seconds_count{stage="total"} 3',
    ]


def test_render_has_each_family_once_with_labels():
    m = AgentMetrics()
    for i in range(3):
        m.ledger.enter(i)
    m.ledger.drop(0, "outbox_full")
    m.ledger.drop(1, "outbox_full")
    m.publish_failures.inc("Not authorized")
    text = m.render()
    assert text.count("# TYPE edgeseg_agent_frames_dropped_total counter") == 1
    assert 'edgeseg_agent_frames_dropped_total{reason="outbox_full"} 2' in text
    assert 'edgeseg_agent_frames_dropped_total{reason="shutdown"} 0' in text
    assert "edgeseg_agent_frames_captured_total 3" in text
    assert "edgeseg_agent_frames_in_flight 1" in text
    assert 'edgeseg_agent_publish_failures_total{reason="Not authorized"} 1' in text
    assert 'edgeseg_agent_status{status="online"} 1' in text
    assert 'edgeseg_agent_stage_latency_seconds_count{stage="inference"} 0' in text
    for name in ("publishes_total", "source_reconnects_total", "mqtt_connects_total"):
        assert f"edgeseg_agent_{name} 0" in text


def test_served_on_loopback():
    m = AgentMetrics()
    m.ledger.enter(7)
    m.ledger.acknowledge(7)
    server = MetricsServer(m, "127.0.0.1", 0)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "edgeseg_agent_frames_acknowledged_total 1" in reply.read().decode()
    finally:
        server.close()
