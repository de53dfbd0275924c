"""What the Overview page shows: the gateway's state now, from what /healthz and /metrics
already show without a token (binds, queues, receipts, the SMPP front, the store)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
        if b.last_error:
            errors.append({"where": f"bind {b.name}", "error": b.last_error})
    bound = bool(sources.binds) and all(b.state is BindState.BOUND for b in sources.binds)
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
