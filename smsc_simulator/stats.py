"""Counters of the simulator: plain attributes and int-keyed dicts on the hot path; names
and shapes are made only when someone asks (``GET /v1/stats``)."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any, Final

from gateway.smpp.constants import status_name
from gateway.smpp.receipt import MessageState, stat_word

RATE_WINDOW_SECONDS: Final = 5
"""submit_rate is the mean over the last five whole seconds: long enough to smooth bursts,
short enough to follow a test that changes pace."""


GENERIC_NACK_KEY: Final = -1
"""Key under which a generic_nack is counted in a by-status counter."""
GENERIC_NACK_NAME: Final = "generic_nack"


class RateMeter:
    """Events per whole second for the last few seconds; ``tick`` is one comparison and one add."""

    __slots__ = ("_count", "_history", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._count = 0
        self._history: deque[tuple[int, int]] = deque(maxlen=RATE_WINDOW_SECONDS)

    def tick(self, now: float, n: int = 1) -> None:
        second = int(now)
        if second != self._second:
            if self._count:
                self._history.append((self._second, self._count))
            self._second = second
            self._count = 0
        self._count += n

    def rate(self, now: float, since: float) -> float:
        """Mean events per second over the last RATE_WINDOW_SECONDS (the current second
        included), or since ``since`` if that is more recent."""
        first = int(now) - RATE_WINDOW_SECONDS + 1
        total = sum(c for s, c in self._history if s >= first)
        if self._second >= first:
            total += self._count
        span = min(float(RATE_WINDOW_SECONDS), now - max(since, float(first)))
        return total / max(span, 0.001)

    def reset(self) -> None:
        self._second = -1
        self._count = 0
        self._history.clear()


class Stats:
    """Every counter of the simulator. ``reset`` zeroes counters, never gauges."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.submit_rate = RateMeter()
        self.reset()

    def reset(self, now: float | None = None) -> None:
        self.reset_at = self.started_at if now is None else now
        self.connections = 0
        self.bind_attempts = 0
        self.bind_failures: Counter[int] = Counter()
        self.submit_sm = 0
        self.data_sm = 0
        self.submit_sm_by_status: Counter[int] = Counter()
        self.submit_sm_unanswered = 0
        self.submit_sm_garbage = 0
        self.submit_sm_generic_nack = 0
        self.parts_received = 0
        self.concat_parts_received = 0
        self.payload_messages_received = 0
        self.receipts_scheduled = 0
        self.receipts_sent = 0
        self.receipts_by_state: Counter[int] = Counter()
        self.receipts_dropped = 0
        self.mo_sent = 0
        self.mo_parts_sent = 0
        self.mo_dropped = 0
        self.deliver_sm_resp_by_status: Counter[int] = Counter()
        self.deliver_sm_timeouts = 0
        self.deliver_sm_retried = 0
        """deliver_sm refused with a temporary error and offered again later."""
        self.subscriber_replies: Counter[str] = Counter()
        self.protocol_errors: Counter[int] = Counter()
        self.unexpected_responses = 0
        self.links_dropped = 0
        self.internal_errors = 0
        self.submit_rate.reset()

    def snapshot(
        self,
        now: float,
        *,
        binds: int,
        binds_by_account: dict[str, int],
        peak_binds_by_account: dict[str, int] | None = None,
        receipts_pending: int,
        mo_pending: int,
        connections_open: int,
        scheduled: int,
    ) -> dict[str, Any]:
        def by_status(counter: Counter[int]) -> dict[str, int]:
            return {
                GENERIC_NACK_NAME if k == GENERIC_NACK_KEY else status_name(k): v
                for k, v in sorted(counter.items())
            }

        return {
            "uptime": round(now - self.started_at, 3),
            "binds": binds,
            "binds_by_account": binds_by_account,
            "peak_binds_by_account": peak_binds_by_account or {},
            "connections_open": connections_open,
            "connections": self.connections,
            "bind_attempts": self.bind_attempts,
            "bind_failures_by_status": by_status(self.bind_failures),
            "submit_sm": self.submit_sm,
            "data_sm": self.data_sm,
            "submit_sm_by_status": by_status(self.submit_sm_by_status),
            "submit_sm_unanswered": self.submit_sm_unanswered,
            "submit_sm_garbage": self.submit_sm_garbage,
            "submit_sm_generic_nack": self.submit_sm_generic_nack,
            "submit_rate": round(self.submit_rate.rate(now, self.reset_at), 1),
            "parts_received": self.parts_received,
            "concat_parts_received": self.concat_parts_received,
            "payload_messages_received": self.payload_messages_received,
            "receipts_scheduled": self.receipts_scheduled,
            "receipts_sent": self.receipts_sent,
            "receipts_pending": receipts_pending,
            "receipts_dropped": self.receipts_dropped,
            "receipts_by_state": {
                stat_word(MessageState(k)): v for k, v in sorted(self.receipts_by_state.items())
            },
            "mo_sent": self.mo_sent,
            "mo_parts_sent": self.mo_parts_sent,
            "mo_pending": mo_pending,
            "mo_dropped": self.mo_dropped,
            "deliver_sm_resp_by_status": by_status(self.deliver_sm_resp_by_status),
            "deliver_sm_timeouts": self.deliver_sm_timeouts,
            "deliver_sm_retried": self.deliver_sm_retried,
            "subscriber_replies": dict(sorted(self.subscriber_replies.items())),
            "protocol_errors": sum(self.protocol_errors.values()),
            "protocol_errors_by_status": by_status(self.protocol_errors),
            "unexpected_responses": self.unexpected_responses,
            "links_dropped": self.links_dropped,
            "internal_errors": self.internal_errors,
            "timers_pending": scheduled,
        }
