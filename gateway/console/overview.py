"""What the Overview page shows: the gateway's state now, from what /healthz and /metrics
already show without a token (binds, queues, receipts, the SMPP front, the store)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.binds import BindState, CarrierBind
from gateway.store.health import StoreHealth


@dataclass(frozen=True, slots=True)
class OverviewSources:
    """Where the overview's figures come from (the daemon's parts; a test gives fewer)."""

    binds: Sequence[CarrierBind]
    queue_depth: Callable[[], Mapping[str, int]] | None = None
    front: Callable[[], dict[str, Any]] | None = None
    receipts: Callable[[], dict[str, Any]] | None = None
    store: StoreHealth | None = None
    minutes: Callable[[float], Awaitable[list[tuple[int, str, int]]]] | None = None
    """The store's messages by minute made and status (MessageReads.minute_counts)."""


def _loop_time() -> float | None:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return None


def overview(sources: OverviewSources) -> dict[str, Any]:
    """The overview as JSON: one entry per carrier (its binds, queue and receipts), the
    front's accounts, the store's state and the last errors seen."""
    now = _loop_time()  # the binds' rate meters count on the loop's clock
    queued = dict(sources.queue_depth()) if sources.queue_depth is not None else {}
    receipts = sources.receipts() if sources.receipts is not None else {}
    carriers: dict[str, dict[str, Any]] = {}
    errors: list[dict[str, str]] = []
    for b in sources.binds:
        entry = carriers.setdefault(
            b.carrier,
            {
                "carrier": b.carrier,
                "binds": [],
                "queued": queued.get(b.carrier, 0),
                "receipts": receipts.get(b.carrier),
            },
        )
        window = b.settings.session.window
        entry["binds"].append(
            {
                "bind": b.name,
                "type": b.settings.bind_type.value,
                "state": b.state.value,
                "window": window,
                "window_used": window - b.window_free if b.state is BindState.BOUND else 0,
                "submit_rate": round(b.metrics.rate.rate(now), 1),
                "connects": b.connects,
                "last_error": b.last_error,
            }
        )
        if b.last_error and b.state is not BindState.STANDBY:  # standby: another node's
            errors.append({"where": f"bind {b.name}", "error": b.last_error})
    bound = bool(sources.binds) and all(
        b.state in (BindState.BOUND, BindState.STANDBY) for b in sources.binds
    )
    body: dict[str, Any] = {
        "status": "ok" if bound else "degraded",
        "carriers": list(carriers.values()),
        "front": sources.front() if sources.front is not None else None,
        "store": sources.store.as_json() if sources.store is not None else None,
        "errors": errors,
    }
    if sources.store is not None and sources.store.reasons:
        body["status"] = "degraded"
        errors.extend(
            {"where": "store", "error": f"{r}: {why}"} for r, why in sources.store.reasons.items()
        )
    return body


MINUTES: Final = 60
"""The overview's chart: the last hour, a point a minute."""
SENT: Final = frozenset({"submitted", "delivered", "undeliverable", "expired"})
"""Statuses a message reaches only once a carrier took it."""
DELIVERED: Final = frozenset({"delivered"})
FAILED: Final = frozenset({"undeliverable", "expired", "rejected", "failed"})
SERIES: Final = (
    ("sent", SENT, "#0b5cad"),
    ("delivered", DELIVERED, "#1a7f37"),
    ("failed", FAILED, "#b42318"),
)
"""Each line of the chart: its name, the statuses it counts, its colour."""


@dataclass(frozen=True, slots=True)
class MinuteSeries:
    """Messages made in each of the last :data:`MINUTES` minutes, by what became of them."""

    start: int
    """The first minute's start, epoch seconds."""
    counts: dict[str, list[int]]
    """Per series name, one count a minute, oldest first."""

    def totals(self) -> dict[str, int]:
        return {name: sum(values) for name, values in self.counts.items()}


def minute_series(rows: Sequence[tuple[int, str, int]], now: float) -> MinuteSeries:
    """The chart's series from ``MessageReads.minute_counts`` rows (the current minute last)."""
    start = (int(now) // 60 - (MINUTES - 1)) * 60
    counts = {name: [0] * MINUTES for name, _, _ in SERIES}
    for minute, status, n in rows:
        slot = (minute - start) // 60
        if 0 <= slot < MINUTES:
            for name, statuses, _ in SERIES:
                if status in statuses:
                    counts[name][slot] += n
    return MinuteSeries(start, counts)


def minutes_svg(series: MinuteSeries) -> str:
    """The series as an SVG line chart (drawn here: no script, no style attribute, so the
    console's Content-Security-Policy holds; numbers only, nothing from outside)."""
    width, height, left, right, top, bottom = 720, 240, 44, 12, 28, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((max(v) for v in series.counts.values()), default=0)
    scale = _nice_ceiling(peak)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for step in range(5):  # horizontal grid lines with their value
        value = scale * step / 4
        y = top + plot_h - plot_h * step / 4
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"'
            ' stroke="#d0d7de" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#59636e">'
            f"{value:g}</text>"
        )
    for ago in (60, 45, 30, 15, 0):  # minutes before now along the bottom
        x = left + plot_w * (MINUTES - 1 - min(ago, MINUTES - 1)) / (MINUTES - 1)
        label = "now" if ago == 0 else f"-{ago} min"
        out.append(
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" fill="#59636e">{label}</text>'
        )
    for index, (name, _, colour) in enumerate(SERIES):
        values = series.counts[name]
        points = " ".join(
            f"{left + plot_w * i / (MINUTES - 1):.1f},{top + plot_h - plot_h * v / scale:.1f}"
            for i, v in enumerate(values)
        )
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        x = left + index * 130
        out.append(f'<rect x="{x}" y="8" width="14" height="4" fill="{colour}"/>')
        out.append(f'<text x="{x + 20}" y="14" fill="#1b1f24">{name} ({sum(values)})</text>')
    out.append("</svg>")
    return "\n".join(out)


def _nice_ceiling(peak: int) -> float:
    """The top of the chart's scale: 1, 2 or 5 times a power of ten, at least 4."""
    if peak <= 4:
        return 4.0
    magnitude = 10 ** (len(str(peak)) - 1)
    for factor in (1, 2, 5, 10):
        if peak <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)
