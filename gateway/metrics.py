"""Prometheus metrics, cheap on the hot path.

Hot paths keep plain integers and fixed-bucket histograms (``Histogram.observe`` is a bisect
and two additions, no lock, no label lookup); a custom collector turns them into metric
families only when Prometheus scrapes ``GET /metrics``. At 20,000 messages/s a
``prometheus_client`` labelled counter per event would cost a tenth of a core; this costs
next to nothing until scraped.

Names follow Prometheus conventions: ``smsgw_`` prefix, ``_total`` for counters, base units
(``_seconds``), bounded label sets (carrier, bind, status class, route).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Seconds, from half a millisecond (a loopback SMSC) to a minute (the response timeout)."""

RECEIPT_BUCKETS: Final = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
"""Seconds from submit to receipt: carriers answer in a second or in a day."""


class Histogram:
    """Fixed buckets, plain counts. ``observe`` is safe only from the event loop."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, +Inf last, as Prometheus wants them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((repr(float(bound)), float(running)))
        running += self.counts[-1]
        out.append(("+Inf", float(running)))
        return out


class RateMeter:
    """Events per second over the last few whole seconds (for an "achieved TPS" gauge)."""

    __slots__ = ("_counts", "_second", "span")

    def __init__(self, span: int = 5) -> None:
        self.span = span
        self._counts = [0] * span
        self._second = 0

    def add(self, n: int = 1, now: float | None = None) -> None:
        second = int(time.monotonic() if now is None else now)
        self._roll(second)
        self._counts[second % self.span] += n

    def rate(self, now: float | None = None) -> float:
        second = int(time.monotonic() if now is None else now)
        self._roll(second)
        # The current second is partial: average over the complete ones before it.
        total = sum(self._counts) - self._counts[second % self.span]
        return total / (self.span - 1)

    def _roll(self, second: int) -> None:
        if second == self._second:
            return
        if second - self._second >= self.span:
            self._counts = [0] * self.span
        else:
            for s in range(self._second + 1, second + 1):
                self._counts[s % self.span] = 0
        self._second = second


def status_class(status: int) -> str:
    """A bounded label for a command_status: ok, throttled, queue_full, temporary,
    permanent. Vendor-specific numbers do not each become a label value."""
    if status == 0:
        return "ok"
    if status == 0x58:
        return "throttled"
    if status == 0x14:
        return "queue_full"
    if status in (0x08, 0x64):
        return "temporary"
    return "permanent"


def histogram_family(
    name: str, doc: str, labels: Sequence[str], items: Iterable[tuple[Sequence[str], Histogram]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for values, hist in items:
        family.add_metric(list(values), hist.buckets(), hist.sum)
    return family


class FunctionCollector(Collector):
    """A collector whose metrics come from one function, called at scrape time."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


__all__ = [
    "CounterMetricFamily",
    "FunctionCollector",
    "GaugeMetricFamily",
    "Histogram",
    "HistogramMetricFamily",
    "RateMeter",
    "histogram_family",
    "status_class",
]
