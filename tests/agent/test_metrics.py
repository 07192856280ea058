import urllib.request

from edgeseg.agent.metrics import AgentMetrics, MetricsServer


def test_stage_latency_is_one_family_with_cumulative_buckets():
    m = AgentMetrics()
    for v in (0.004, 0.03, 20):
        m.latency["total"].observe(v)
    lines = m.render().splitlines()
    assert lines.count("# TYPE edgeseg_agent_stage_latency_seconds histogram") == 1
    name = "edgeseg_agent_stage_latency_seconds"
    assert f'{name}_bucket{{stage="total",le="0.005"}} 1' in lines
    assert f'{name}_bucket{{stage="total",le="0.05"}} 2' in lines
    assert f'{name}_bucket{{stage="total",le="10"}} 2' in lines
    assert f'{name}_bucket{{stage="total",le="+Inf"}} 3' in lines
    assert f'{name}_sum{{stage="total"}} 20.034' in lines
    assert f'{name}_count{{stage="queue"}} 0' in lines


def test_reasons_are_escaped():
    m = AgentMetrics()
    m.publish_failures.labels('a"b\\c\nd').inc(2)  # the broker's text could hold these
    assert ('edgeseg_agent_publish_failures_total{reason="a\\"b\\\\c\\nd"} 2'
            in m.render().splitlines())
    assert m.publish_failures.total() == 2


def test_render_has_each_family_once_with_labels():
    m = AgentMetrics()
    for i in range(3):
        m.ledger.enter(i)
    m.ledger.drop(0, "outbox_full")
    m.ledger.drop(1, "outbox_full")
    m.publish_failures.labels("Not authorized").inc()
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
