"""Prometheus metrics for every edgeseg process: one registry, one class per kind, one page.

Contract:

* :class:`Counter`, :class:`Gauge` and :class:`Histogram` are families: a name, a help text
  and label names fixed at construction. A family without labels records directly
  (``c.inc()``, ``g.set(1)``, ``h.observe(0.2)``); a family with labels records through
  ``family.labels(*values)``, which returns a view of the same family bound to one series.
  A series appears on the page once it has been recorded.
* Recording is thread-safe and cheap: one lock per family, held for an add.
* A counter or gauge may be *collected* instead: ``collect()`` is called at scrape time and
  returns ``(label values, value)`` pairs; such a family refuses recording.
  :meth:`Registry.per_scrape` wraps a reader so that every family of one page sees the same
  reading (the agent's ledger totals balance on every page).
* :meth:`Registry.render` writes the text exposition format 0.0.4 (:data:`CONTENT_TYPE`):
  families in the order they were added, one ``# HELP``/``# TYPE`` pair each, series sorted
  by label values, labels in declared order (``le`` last), label values escaped (backslash,
  double quote, newline), help texts escaped (backslash, newline), histogram buckets
  cumulative with ``+Inf``, ``_sum`` and ``_count``.
* :class:`MetricsServer` serves one page at ``/metrics`` from a daemon thread; servers with
  routes of their own answer their metrics path with :func:`exposition`.

No client library and no TensorFlow: the agent and the preview import this too.
"""

from __future__ import annotations

import bisect
import copy
import http.server
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Collect = Callable[[], Iterable[tuple[Sequence[object], float]]]
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_T = TypeVar("_T")
_M = TypeVar("_M", bound="Metric")


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Integers without a decimal point (exact at any size), others as Python's shortest repr."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() else repr(value)


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Metric:
    """What the three kinds share: name, help, labels, the lock and the series."""

    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = (),
                 collect: Collect | None = None) -> None:
        if not _NAME.match(name):
            raise ValueError(f"metric name {name!r} is not a Prometheus name "
                             "([a-zA-Z_:][a-zA-Z0-9_:]*)")
        for label in labels:
            if not _LABEL.match(label) or label.startswith("__") or label == "le":
                raise ValueError(f"{name}: label name {label!r} is not allowed "
                                 "([a-zA-Z_][a-zA-Z0-9_]*, not __* or le)")
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self.collect = collect
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], Any] = {}
        # views from labels(), shared; keyed by the values as given and as strings
        self._children: dict[tuple[object, ...], Self] = {}
        self._key: tuple[str, ...] | None = None if self.label_names else ()
        if self._key is not None and collect is None:
            self._series[()] = self._new()

    def _new(self) -> Any:
        return 0.0

    def labels(self, *values: object) -> Self:
        """This family bound to one series (shares its lock and values); the series is on
        the page from now on, at zero until recorded. Views are cached: a dict look-up."""
        child = self._children.get(values)  # label values are strings on the hot paths
        if child is not None:
            return child
        key = tuple(map(str, values))
        child = self._children.get(key)
        if child is not None:
            return child
        if len(key) != len(self.label_names):
            raise ValueError(f"{self.name} has labels {self.label_names}, got values {values}")
        child = copy.copy(self)
        child._key = key
        with self._lock:
            if self.collect is None and key not in self._series:
                self._series[key] = self._new()
            return self._children.setdefault(key, child)

    def _bound(self) -> tuple[str, ...]:
        if self.collect is not None:
            raise TypeError(f"{self.name} is collected at scrape time; it records nothing")
        if self._key is None:
            raise TypeError(f"{self.name} has labels {self.label_names}: record through "
                            ".labels(...)")
        return self._key

    def items(self) -> list[tuple[tuple[str, ...], Any]]:
        """(label values, value) of every series, sorted by label values."""
        if self.collect is not None:
            return sorted((tuple(str(v) for v in k), float(n)) for k, n in self.collect())
        with self._lock:
            return sorted((k, self._copy(v)) for k, v in self._series.items())

    def _copy(self, value: Any) -> Any:
        return value

    def samples(self) -> list[str]:
        return [f"{self.name}{_labels(self.label_names, k)} {format_value(v)}"
                for k, v in self.items()]

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {escape_help(self.help)}",
                f"# TYPE {self.name} {self.kind}", *self.samples()]


class _Scalar(Metric):
    """A counter's or a gauge's series: one number each."""

    def _add(self, amount: float) -> None:
        key = self._bound()
        with self._lock:
            self._series[key] += amount

    @property
    def value(self) -> float:
        key = self._bound()
        with self._lock:
            return float(self._series[key])

    def total(self) -> float:
        """The sum over every series."""
        return float(sum(v for _, v in self.items()))


class Counter(_Scalar):
    """A total that only goes up (``inc`` refuses a negative amount)."""

    kind = "counter"

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot go down (inc by {amount})")
        self._add(amount)


class Gauge(_Scalar):
    """A value that goes up and down; set, or collected at scrape time."""

    kind = "gauge"

    def inc(self, amount: float = 1.0) -> None:
        self._add(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._add(-amount)

    def set(self, value: float) -> None:
        key = self._bound()
        with self._lock:
            self._series[key] = float(value)


class _Buckets:
    __slots__ = ("counts", "count", "sum")

    def __init__(self, counts: list[int], count: int = 0, total: float = 0.0) -> None:
        self.counts, self.count, self.sum = counts, count, total


class Histogram(Metric):
    """Observations counted into fixed upper bounds (``le``), with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = (),
                 buckets: Sequence[float] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                                             2.5, 5.0, 10.0)) -> None:
        bounds = [float(b) for b in buckets if not math.isinf(b)]
        if not bounds or bounds != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be distinct and ascending, got {buckets}")
        self.buckets = tuple(bounds)
        super().__init__(name, help_text, labels)

    def _new(self) -> Any:
        return _Buckets([0] * len(self.buckets))

    def observe(self, value: float) -> None:
        key = self._bound()
        index = bisect.bisect_left(self.buckets, value)  # the first bound >= value
        with self._lock:
            series = self._series[key]
            if index < len(self.buckets):
                series.counts[index] += 1
            series.sum += value
            series.count += 1

    def _copy(self, value: Any) -> Any:
        return _Buckets(list(value.counts), value.count, value.sum)

    def samples(self) -> list[str]:
        lines = []
        for key, series in self.items():
            running = 0
            for bound, count in zip(self.buckets, series.counts, strict=True):
                running += count
                le = _labels(self.label_names, key, f'le="{format_value(bound)}"')
                lines.append(f"{self.name}_bucket{le} {running}")
            inf = _labels(self.label_names, key, 'le="+Inf"')
            plain = _labels(self.label_names, key)
            lines += [f"{self.name}_bucket{inf} {series.count}",
                      f"{self.name}_sum{plain} {format_value(series.sum)}",
                      f"{self.name}_count{plain} {series.count}"]
        return lines


class Registry:
    """The families of one page, in the order they were added."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self._lock = threading.Lock()
        self._scrape = threading.local()

    def add(self, metric: _M, replace: bool = False) -> _M:
        """Register ``metric``; a second family of the same name is refused unless
        ``replace`` (it then takes the first one's place on the page)."""
        with self._lock:
            if metric.name in self._metrics and not replace:
                raise ValueError(f"metric {metric.name} is registered already")
            self._metrics[metric.name] = metric
        return metric

    def per_scrape(self, read: Callable[[], _T]) -> Callable[[], _T]:
        """``read`` called at most once per :meth:`render` (per thread), so that collected
        families read one consistent value; outside a render it is called every time."""
        def reading() -> _T:
            memo = getattr(self._scrape, "memo", None)
            if memo is None:
                return read()
            if reading not in memo:
                memo[reading] = read()
            return memo[reading]  # type: ignore[no-any-return]
        return reading

    def render(self) -> str:
        with self._lock:
            metrics = list(self._metrics.values())
        self._scrape.memo = {}
        try:
            return "".join(line + "\n" for m in metrics for line in m.render())
        finally:
            self._scrape.memo = None


class Renders(Protocol):
    def render(self) -> str: ...


def exposition(page: Renders) -> tuple[bytes, str]:
    """(body, Content-Type) of a metrics page, for servers with routes of their own."""
    return page.render().encode(), CONTENT_TYPE


class MetricsServer:
    """``GET /metrics`` (``path``) of ``page`` on (host, port), from a daemon thread; port 0
    picks a free one (see ``.port``). Anything else is 404."""

    def __init__(self, page: Renders, host: str = "127.0.0.1", port: int = 0,
                 path: str = "/metrics") -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's spelling
                if self.path.split("?")[0] != path:
                    self.send_error(404)
                    return
                body, content_type = exposition(page)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
