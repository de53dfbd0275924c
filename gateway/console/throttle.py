"""Failed console sign-ins, limited per client address.

Each address has a bucket of :data:`FAILURES_ALLOWED` failed sign-ins that refills at one
per :data:`REFILL_SECONDS`; when it is empty, a sign-in from that address is refused with
429 and ``Retry-After`` before its token is even looked at, so guessing tokens from one
address goes no faster than one try per REFILL_SECONDS. A successful sign-in empties the
address's record. Addresses are kept least recently failed first, at most
:data:`MAX_ADDRESSES` of them (memory stays bounded whoever sprays addresses; the oldest
records go first, and those are the ones closest to refilled). Time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

FAILURES_ALLOWED: Final = 10
"""A person mistyping or pasting the wrong token a few times never meets the limit."""
REFILL_SECONDS: Final = 90.0
"""One more try every 90 s once the bucket is empty: 10 a quarter of an hour, 960 a day.
Tokens are long random strings: at that rate a guess takes longer than any token lives."""
MAX_ADDRESSES: Final = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class SignInThrottle:
    def __init__(
        self,
        allowed: int = FAILURES_ALLOWED,
        refill_seconds: float = REFILL_SECONDS,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.allowed = allowed
        self.refill_seconds = refill_seconds
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, address: str, now: float) -> _Bucket | None:
        bucket = self._buckets.get(address)
        if bucket is None:
            return None
        bucket.tokens = min(
            float(self.allowed), bucket.tokens + max(0.0, now - bucket.at) / self.refill_seconds
        )
        bucket.at = now
        if bucket.tokens >= self.allowed:  # full again: forget it
            del self._buckets[address]
            return None
        return bucket

    def wait(self, address: str, now: float) -> float:
        """Seconds before ``address`` may try again; 0 when it may now."""
        bucket = self._level(address, now)
        if bucket is None or bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) * self.refill_seconds

    def failed(self, address: str, now: float) -> None:
        bucket = self._level(address, now)
        if bucket is None:
            bucket = _Bucket(float(self.allowed), now)
            self._buckets[address] = bucket
        bucket.tokens = max(0.0, bucket.tokens - 1)
        self._buckets.move_to_end(address)
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._buckets.pop(address, None)
