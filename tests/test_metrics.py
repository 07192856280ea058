"""edgeseg/metrics.py: the one registry, on tables, from threads and over HTTP."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from edgeseg.metrics import (
    CONTENT_TYPE,
    Counter,
    Gauge,
    Histogram,
    MetricsServer,
    Registry,
    format_value,
)

# One sample line of the text format 0.0.4: name, optional {label="value",...}, value.
_VALUE = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_SAMPLE = re.compile(rf'[a-zA-Z_:][a-zA-Z0-9_:]*(\{{[a-zA-Z_]\w*={_VALUE}(,[a-zA-Z_]\w*={_VALUE})*'
                     r'\})? (\S+)\Z')


def unescape(value: str) -> str:
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m[1], m[1]), value)


def test_text_exposition():
    registry = Registry()
    counter = registry.add(Counter("c_total", "Things.", ("model", "status")))
    counter.labels("m", "OK").inc()
    counter.labels("m", "OK").inc()
    counter.labels('we"ird\n', "NOT_FOUND").inc()
    histogram = registry.add(Histogram("h_seconds", "Time.", ("model",), (0.1, 1.0)))
    for value in (0.05, 0.5, 5.0):
        histogram.labels("m").observe(value)
    registry.add(Gauge("g", "Now.", ("state",), lambda: [(("AVAILABLE",), 2)]))
    assert registry.render().splitlines() == [
        "# HELP c_total Things.",
        "# TYPE c_total counter",
        'c_total{model="m",status="OK"} 2',
        'c_total{model="we\\"ird\\n",status="NOT_FOUND"} 1',
        "# HELP h_seconds Time.",
        "# TYPE h_seconds histogram",
        'h_seconds_bucket{model="m",le="0.1"} 1',
        'h_seconds_bucket{model="m",le="1"} 2',
        'h_seconds_bucket{model="m",le="+Inf"} 3',
        'h_seconds_sum{model="m"} 5.55',
        'h_seconds_count{model="m"} 3',
        "# HELP g Now.",
        "# TYPE g gauge",
        'g{state="AVAILABLE"} 2',
    ]


def test_label_values_and_help_are_escaped():
    nasty = 'a "quoted" C:\\path\nline two'
    registry = Registry()
    counter = registry.add(Counter("x_total", 'Help with \\ and\na newline, "quotes" kept.',
                                   ("reason",)))
    counter.labels(nasty).inc(3)
    lines = registry.render().splitlines()
    assert lines == [
        '# HELP x_total Help with \\\\ and\\na newline, "quotes" kept.',
        "# TYPE x_total counter",
        'x_total{reason="a \\"quoted\\" C:\\\\path\\nline two"} 3',
    ]
    match = _SAMPLE.match(lines[2])
    assert match, lines[2]
    value = re.search(r'reason="(.*)"\}', lines[2])[1]
    assert unescape(value) == nasty  # what a Prometheus parser reads back


def test_every_sample_line_parses_with_hostile_labels():
    registry = Registry()
    histogram = registry.add(Histogram("h", "H.", ("a", "b"), (1, 2)))
    for weird in ("\\", '"', "\n", '\\"\n', "", "ok", "}{,=", "\\n"):
        histogram.labels(weird, weird).observe(1.5)
    for line in registry.render().splitlines():
        assert line.startswith("#") or _SAMPLE.match(line), line


def test_histogram_buckets_sum_and_count():
    histogram = Histogram("lat_seconds", "L.", (), (0.1, 0.5, 1.0))
    for value in (0.1, 0.2, 0.5, 0.7, 3.0, 0.0):  # a value on a bound counts in that bucket
        histogram.observe(value)
    assert histogram.samples() == [
        'lat_seconds_bucket{le="0.1"} 2',
        'lat_seconds_bucket{le="0.5"} 4',
        'lat_seconds_bucket{le="1"} 5',
        'lat_seconds_bucket{le="+Inf"} 6',
        "lat_seconds_sum 4.5",
        "lat_seconds_count 6",
    ]


def test_unlabelled_families_start_at_zero_and_labelled_series_when_named():
    registry = Registry()
    registry.add(Counter("a_total", "A."))
    registry.add(Histogram("h", "H.", (), (1.0,)))
    labelled = registry.add(Counter("b_total", "B.", ("reason",)))
    text = registry.render()
    assert "a_total 0\n" in text and "h_count 0\n" in text and "b_total{" not in text
    labelled.labels("x")
    assert 'b_total{reason="x"} 0\n' in registry.render()


def test_values_and_totals():
    counter = Counter("c_total", "C.", ("reason",))
    counter.labels("a").inc(2)
    counter.labels("b").inc()
    assert counter.labels("a").value == 2 and counter.total() == 3
    assert counter.items() == [(("a",), 2.0), (("b",), 1.0)]
    gauge = Gauge("g", "G.")
    gauge.set(5)
    gauge.dec(2)
    gauge.inc(0.5)
    assert gauge.value == 3.5


@pytest.mark.parametrize(("value", "text"), [
    (3, "3"), (3.0, "3"), (2**53 + 1, str(2**53)), (12345678901, "12345678901"),
    (0.1, "0.1"), (1e-9, "1e-09"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"),
    (float("nan"), "NaN")])
def test_values_format(value, text):
    assert format_value(value) == text


def test_misuse_is_refused_with_the_reason():
    counter = Counter("c_total", "C.", ("reason",))
    with pytest.raises(TypeError, match=r"has labels \('reason',\): record through"):
        counter.inc()
    with pytest.raises(ValueError, match="has labels"):
        counter.labels("a", "b")
    with pytest.raises(ValueError, match="cannot go down"):
        Counter("d_total", "D.").inc(-1)
    collected = Gauge("g", "G.", collect=lambda: [((), 1)])
    with pytest.raises(TypeError, match="collected at scrape time"):
        collected.set(2)
    with pytest.raises(ValueError, match="not a Prometheus name"):
        Counter("bad-name", "x")
    with pytest.raises(ValueError, match="label name 'le'"):
        Histogram("h", "x", ("le",))
    with pytest.raises(ValueError, match="distinct and ascending"):
        Histogram("h", "x", (), (1.0, 0.5))
    registry = Registry()
    registry.add(Gauge("g", "G."))
    with pytest.raises(ValueError, match="registered already"):
        registry.add(Gauge("g", "again"))
    registry.add(Gauge("g", "Replaced."), replace=True)
    assert "# HELP g Replaced." in registry.render()


def test_counters_from_threads_sum_exactly():
    registry = Registry()
    plain = registry.add(Counter("plain_total", "P."))
    labelled = registry.add(Counter("lab_total", "L.", ("worker",)))
    histogram = registry.add(Histogram("h", "H.", ("worker",), (0.5,)))
    threads, per_thread = 8, 5000
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        start.wait()
        series, hist = labelled.labels(index % 2), histogram.labels(index % 2)
        for _ in range(per_thread):
            plain.inc()
            series.inc()
            hist.observe(1.0)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: a lost update would show
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert plain.value == threads * per_thread
    assert labelled.labels(0).value == labelled.labels(1).value == threads * per_thread / 2
    text = registry.render()
    assert f'h_count{{worker="0"}} {threads * per_thread // 2}' in text
    assert f'h_bucket{{worker="1",le="+Inf"}} {threads * per_thread // 2}' in text


def test_per_scrape_reads_once_per_page():
    registry = Registry()
    reads = []

    def read() -> int:
        reads.append(1)
        return len(reads)

    snap = registry.per_scrape(read)
    registry.add(Gauge("a", "A.", collect=lambda: [((), snap())]))
    registry.add(Gauge("b", "B.", collect=lambda: [((), snap())]))
    assert "a 1\n" in (first := registry.render()) and "b 1\n" in first
    assert "a 2\n" in (second := registry.render()) and "b 2\n" in second
    assert snap() == 3  # outside a page: every call reads


def test_served_over_http_on_loopback():
    registry = Registry()
    registry.add(Counter("served_total", "S.")).inc(4)
    server = MetricsServer(registry, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(base + "/metrics?x=1", timeout=5) as reply:
            assert reply.headers["Content-Type"] == CONTENT_TYPE
            assert reply.read().decode() == registry.render()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/other", timeout=5)
        assert missing.value.code == 404
    finally:
        server.close()


def test_imports_no_tensorflow():
    code = ("import sys, edgeseg.metrics, edgeseg.agent.metrics, edgeseg.preview.server; "
            "print('tensorflow' in sys.modules, 'google.protobuf' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]
