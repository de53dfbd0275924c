"""Pacing of submit_sm, counted in parts: token buckets and an adaptive per-bind limit.

Pure code: time is passed in (seconds on any monotonic clock, the event loop's in the
dispatcher), nothing sleeps, nothing logs. The dispatcher asks how many parts it may send now
(``available``), takes them (``take``), and when nothing may go, arms one timer for
``time_until_available``.

Every submit_sm is one token: a three-part message costs three, because carriers count
submit_sm, not messages (the field notes list "throughput counted per message on one side and
per part on the other" among the classic mistakes).

A bind's rate adapts to the carrier (AIMD, as TCP does): an ESME_RTHROTTLED or ESME_RMSGQFUL
answer halves the bind's effective rate and pauses it briefly; answers that come back fine let
the rate grow again, doubling every ``RECOVERY_DOUBLING_SECONDS`` up to the configured TPS.
"""

from __future__ import annotations

import math
from typing import Final

BURST_SECONDS: Final = 0.005
"""A bucket holds one token plus 5 ms worth of tokens. The one token keeps a bind that wakes a
millisecond late (event loop timer granularity) from losing its turn, so the achieved rate
stays within a percent or two of the limit; 5 ms bounds what leaves at once after an idle
spell: 2 parts at 200/s, 101 at 20,000/s, never a whole second's worth."""

TOKEN_EPSILON: Final = 1e-9
"""Float slack when counting whole tokens: 0.9999999999 refilled tokens count as one, so a
timer armed for the exact refill moment never finds itself a hair short and spins."""

UNLIMITED: Final = 1 << 62
"""What ``available`` says when no limit applies: more than any window or batch."""

SLOWDOWN_FACTOR: Final = 0.5
"""A throttle answer multiplies the bind's effective rate by this (multiplicative decrease,
as in TCP congestion control: halving converges on a carrier's unknown limit in a few steps)."""

THROTTLE_PAUSE_SECONDS: Final = 0.25
"""After a throttle answer the bind sends nothing for this long. Carriers count TPS over a
second or a fraction of one; a quarter second lets their bucket refill a good part without
stalling the bind noticeably."""

RECOVERY_DOUBLING_SECONDS: Final = 2.0
"""While answers come back without throttling, a cut rate grows smoothly and doubles every
2 s: from 1/8 of the limit back to full in about 6 s, slow enough that a carrier that throttles
at 80% of the contract is probed gently rather than hit again at once."""

MIN_RATE: Final = 1.0
"""An adaptive cut never goes below one part per second per bind: progress never stops."""

RATE_METER_SECONDS: Final = 1.0
"""A bind without a configured TPS measures its own send rate over about this long, so a
throttle answer has a rate to halve."""

UNCAPPED_RELEASE_FACTOR: Final = 4.0
"""A bind without a configured TPS drops its adaptive cap once the cap has grown back to
four times the rate it was cut from: by then the carrier has plainly stopped throttling."""


class TokenBucket:
    """Tokens refill continuously at ``rate`` per second up to ``capacity``.

    ``take`` may take more than is available (the balance goes negative: debt that the refill
    pays back first); the dispatcher only does so by rounding.
    """

    __slots__ = ("_at", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, now: float, burst_seconds: float = BURST_SECONDS) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be above 0, got {rate}")
        self.rate = rate
        self.capacity = 1.0 + rate * burst_seconds
        self._tokens = self.capacity
        self._at = now

    def _refill(self, now: float) -> float:
        if now > self._at:
            tokens = self._tokens + (now - self._at) * self.rate
            self._tokens = tokens if tokens < self.capacity else self.capacity
            self._at = now
        return self._tokens

    def tokens(self, now: float) -> float:
        """The balance at ``now`` (fractional)."""
        return self._refill(now)

    def available(self, now: float) -> int:
        """Whole tokens that may be taken at ``now``."""
        tokens = self._refill(now)
        return int(tokens + TOKEN_EPSILON) if tokens > 0 else 0

    def take(self, n: int, now: float) -> None:
        self._refill(now)
        self._tokens -= n

    def time_until_available(self, now: float, n: int = 1) -> float:
        """Seconds from ``now`` until ``n`` tokens are there; 0.0 if they are now."""
        tokens = self._refill(now)
        missing = n - tokens
        if missing <= TOKEN_EPSILON:
            return 0.0
        return missing / self.rate

    def set_rate(self, rate: float, now: float, burst_seconds: float = BURST_SECONDS) -> None:
        """Change the rate from ``now`` on; what was earned so far is kept (up to the new
        capacity)."""
        if rate <= 0:
            raise ValueError(f"rate must be above 0, got {rate}")
        self._refill(now)
        self.rate = rate
        self.capacity = 1.0 + rate * burst_seconds
        if self._tokens > self.capacity:
            self._tokens = self.capacity


def account_bucket(tps: float, now: float) -> TokenBucket | None:
    """The bucket for a carrier's ``account_tps`` across its binds; None when 0 (unlimited)."""
    return TokenBucket(tps, now) if tps > 0 else None


class RateMeter:
    """Parts sent per second over the last one to two ``window`` lengths: two fixed windows,
    the current and the previous one, so counting costs an addition."""

    __slots__ = ("_count", "_prev_count", "_prev_span", "_start", "window")

    def __init__(self, now: float, window: float = RATE_METER_SECONDS) -> None:
        self.window = window
        self._start = now
        self._count = 0
        self._prev_count = 0
        self._prev_span = 0.0

    def _roll(self, now: float) -> None:
        elapsed = now - self._start
        if elapsed >= self.window:
            if elapsed < 2 * self.window:
                self._prev_count, self._prev_span = self._count, elapsed
            else:  # idle for a whole window: the old count says nothing about now
                self._prev_count, self._prev_span = 0, 0.0
            self._start = now
            self._count = 0

    def add(self, n: int, now: float) -> None:
        self._roll(now)
        self._count += n

    def rate(self, now: float) -> float:
        self._roll(now)
        span = self._prev_span + (now - self._start)
        if span <= 0:
            return 0.0
        return (self._count + self._prev_count) / span


class BindThrottle:
    """One bind's pacing: its configured TPS (0 is unlimited) under an adaptive cap.

    ``throttled`` on ESME_RTHROTTLED / ESME_RMSGQFUL, ``succeeded`` on every ROK answer. A
    throttle answer to a request sent before the last cut does not cut again (the window
    in flight when the carrier first objected all comes back throttled, and that is one
    signal, not fifty): pass the request's send time as ``sent_at``.
    """

    __slots__ = (
        "_bucket",
        "_cut_from",
        "_last_cut",
        "_last_raise",
        "_meter",
        "cap",
        "configured",
        "paused_until",
        "throttles",
    )

    def __init__(self, tps: float, now: float) -> None:
        if tps < 0:
            raise ValueError(f"tps must be 0 (unlimited) or above, got {tps}")
        self.configured = tps
        self.cap: float | None = None
        """The adaptive limit in parts per second, None when no cut is in force."""
        self.paused_until = -math.inf
        self.throttles = 0
        self._bucket: TokenBucket | None = TokenBucket(tps, now) if tps > 0 else None
        self._meter = RateMeter(now)
        self._last_cut = -math.inf
        self._last_raise = now
        self._cut_from = 0.0

    @property
    def effective_rate(self) -> float | None:
        """Parts per second allowed now (ignoring a pause), None for unlimited."""
        if self.cap is None:
            return self.configured or None
        if self.configured and self.configured < self.cap:
            return self.configured
        return self.cap

    def available(self, now: float) -> int:
        if now < self.paused_until:
            return 0
        bucket = self._bucket
        return UNLIMITED if bucket is None else bucket.available(now)

    def time_until_available(self, now: float, n: int = 1) -> float:
        wait = self.paused_until - now
        bucket = self._bucket
        if bucket is not None:
            wait = max(wait, bucket.time_until_available(now, n))
        return wait if wait > 0 else 0.0

    def take(self, n: int, now: float) -> None:
        self._meter.add(n, now)
        if self._bucket is not None:
            self._bucket.take(n, now)

    def measured_rate(self, now: float) -> float:
        return self._meter.rate(now)

    def throttled(self, now: float, sent_at: float | None = None) -> None:
        """The carrier said slow down. Pause, and cut the rate unless this answer is to a
        request sent before the previous cut."""
        self.throttles += 1
        if now + THROTTLE_PAUSE_SECONDS > self.paused_until:
            self.paused_until = now + THROTTLE_PAUSE_SECONDS
        if sent_at is not None and sent_at < self._last_cut:
            return
        base = self.effective_rate
        if base is None:
            base = self._meter.rate(now)
        self._cut_from = base
        self.cap = max(MIN_RATE, base * SLOWDOWN_FACTOR)
        self._last_cut = now
        self._last_raise = now
        self._apply(now)

    def succeeded(self, now: float) -> None:
        """An answer without throttling: let a cut rate grow back, smoothly over time."""
        cap = self.cap
        if cap is None:
            return
        elapsed = now - self._last_raise
        if elapsed <= 0:
            return
        self._last_raise = now
        cap *= 2.0 ** (elapsed / RECOVERY_DOUBLING_SECONDS)
        if self.configured > 0:
            self.cap = None if cap >= self.configured else cap
        else:
            self.cap = None if cap >= self._cut_from * UNCAPPED_RELEASE_FACTOR else cap
        self._apply(now)

    def _apply(self, now: float) -> None:
        rate = self.effective_rate
        if rate is None:
            self._bucket = None
        elif self._bucket is None:
            self._bucket = TokenBucket(rate, now)
            # A fresh bucket starts empty: right after a cut, nothing extra leaves at once.
            self._bucket.take(self._bucket.available(now), now)
        elif rate != self._bucket.rate:
            self._bucket.set_rate(rate, now)
