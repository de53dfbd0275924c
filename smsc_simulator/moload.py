"""MO load: many MOs at a steady rate from one control request, and the time to their replies.

``POST /v1/mo/load {"to", "text", "count", "rate", "first_from"?, "account"?}`` queues
``count`` single-part MOs to ``to``, ``rate`` per second (in 10 ms ticks), each from its own
sender: ``+<first_from + i>`` (default ``first_from`` 4915200000000), so no sender repeats a
text (a gateway's loop guard would rightly stay silent). Answers 202 at once; the MOs go in
the background. One load at a time: another request while one runs is refused (409).

Each MO's sender is remembered with the time its deliver_sm was queued on a bind
(``time.monotonic``). The first submit_sm whose destination is that sender (with or without
``+``) is its reply: the time from the MO to that submit_sm is recorded. ``GET /v1/stats``
shows ``mo_load``: MOs queued, replies matched, p50/p99/max in ms, and the times of the first
MO and the last reply (seconds since the load began), from which replies per second follow.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_COUNT = 10_000_000
MAX_RATE = 1_000_000.0
TICK = 0.01
"""Seconds between bursts: 10 ms keeps the rate smooth without a timer per MO."""
DEFAULT_FIRST_FROM = 4915200000000


def _nearest_rank(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    rank = max(1, math.ceil(fraction * len(values)))
    return values[min(rank, len(values)) - 1]


@dataclass
class MoLoad:
    """One load's bookkeeping: senders awaiting a reply, and the latencies seen."""

    count: int = 0
    queued: int = 0
    started_at: float = 0.0
    first_mo_at: float | None = None
    last_reply_at: float | None = None
    waiting: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def sent(self, source: str, now: float) -> None:
        if self.first_mo_at is None:
            self.first_mo_at = now
        self.waiting[source.lstrip("+")] = now
        self.queued += 1

    def submit_seen(self, destination: str, now: float) -> None:
        """Called for every submit_sm: cheap when no load waits (an empty dict lookup)."""
        sent = self.waiting.pop(destination.lstrip("+"), None)
        if sent is not None:
            self.latencies.append(now - sent)
            self.last_reply_at = now

    def to_json(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def ms(value: float | None) -> float | None:
            return None if value is None else value * 1000

        def since(value: float | None) -> float | None:
            return None if value is None else value - self.started_at

        return {
            "running": self.running,
            "count": self.count,
            "queued": self.queued,
            "replies": len(ordered),
            "unanswered": len(self.waiting),
            "p50_ms": ms(_nearest_rank(ordered, 0.50)),
            "p99_ms": ms(_nearest_rank(ordered, 0.99)),
            "max_ms": ms(ordered[-1] if ordered else None),
            "first_mo_s": since(self.first_mo_at),
            "last_reply_s": since(self.last_reply_at),
        }


def parse_load(body: Any) -> tuple[dict[str, Any], list[str]]:
    """Check a load request; returns its values and every error found."""
    if not isinstance(body, dict):
        return {}, ["body: must be a JSON object"]
    keys = {"to", "text", "count", "rate", "first_from", "account"}
    errors = [f"{key}: unknown field" for key in sorted(set(body) - keys)]
    to, text = body.get("to"), body.get("text")
    if not isinstance(to, str) or not to or len(to) > 20 or not to.isascii():
        errors.append("to: required, an address of at most 20 ASCII characters")
    if not isinstance(text, str) or not text or len(text) > 160:
        errors.append("text: required, 1..160 characters (one part)")
    count, rate = body.get("count"), body.get("rate")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        errors.append(f"count: must be an integer 1..{MAX_COUNT}")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= MAX_RATE:
        errors.append(f"rate: must be a number above 0 and at most {MAX_RATE:g}")
    first = body.get("first_from", DEFAULT_FIRST_FROM)
    if isinstance(first, bool) or not isinstance(first, int) or not 0 < first < 10**14:
        errors.append("first_from: must be a positive integer of at most 14 digits")
    account = body.get("account")
    if account is not None and not isinstance(account, str):
        errors.append("account: must be a system_id string")
    values = {
        "to": to,
        "text": text,
        "count": count,
        "rate": rate,
        "first_from": first,
        "account": account,
    }
    return values, errors


async def run_load(
    load: MoLoad, send: Callable[[str], None], first_from: int, count: int, rate: float
) -> None:
    """Call ``send(source)`` ``count`` times at ``rate`` per second, on 10 ms ticks."""
    started = time.monotonic()
    done = 0
    while done < count:
        due = min(count, math.floor((time.monotonic() - started) * rate) + 1)
        while done < due:
            source = f"+{first_from + done}"
            send(source)
            load.sent(source, time.monotonic())
            done += 1
        await asyncio.sleep(TICK)
