"""Per-account limits: a smooth token bucket for TPS, and message id formatting."""

from __future__ import annotations

from typing import Final

DEFAULT_BURST_SECONDS: Final = 0.1
"""With no explicit burst, the bucket holds a tenth of a second of traffic (at least one
message): smooth enough that 10 s of traffic cannot arrive in the first 100 ms, loose enough
that a client pacing itself exactly at the limit is not throttled by scheduling jitter."""


class TokenBucket:
    """Tokens refill continuously at ``rate`` per second up to ``capacity``; a submit takes one."""

    __slots__ = ("_last", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self._tokens = self.capacity
        self._last = now

    def take(self, now: float) -> bool:
        tokens = self._tokens + (now - self._last) * self.rate
        self._last = now
        if tokens > self.capacity:
            tokens = self.capacity
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False


class IdFormatter:
    """Writes a numeric message id in a carrier's form: hex or decimal, case, zero padding."""

    __slots__ = ("spec",)

    def __init__(self, base: str, uppercase: bool = False, width: int = 0) -> None:
        if base not in ("hex", "decimal"):
            raise ValueError(f"base must be hex or decimal, got {base!r}")
        kind = "d" if base == "decimal" else ("X" if uppercase else "x")
        self.spec = f"0{width}{kind}" if width else kind
        """The ``format`` spec: ``format(number, spec)`` is the id (the fast path inlines it)."""

    def __call__(self, number: int) -> str:
        return format(number, self.spec)
