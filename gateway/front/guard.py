"""Failed-bind back-off for the front: password guessing gets slow, then refused.

Pure code: time is passed in (seconds on any monotonic clock; the front uses the event
loop's), nothing sleeps, nothing logs. The front asks ``locked`` before it checks a bind's
password, reports every failed bind with ``failed`` (which says how long to hold the
bind_resp back: nothing for an address's first failure, ``delay`` for the next ones), and
counts what the guard did.

Two scopes, each counting per key the failures of the last ``window`` seconds (the times of
at most ``limit`` of them are kept): ``limit`` failures within ``window`` lock the key out;
a user who mistypes now and then never is.
- the client address: ``per_address`` failures lock the address out for ``lockout``
  seconds; every bind from it is then refused (ESME_RBINDFAIL) without its password being
  looked at, so a guess made while locked out tells the guesser nothing, even a right one.
- the system_id: ``per_system_id`` failures (from any addresses) lock the system_id out, so
  many addresses guessing together are stopped too. Only failures from an address the
  account allows count here: a bind from elsewhere is refused before its password is read
  and so guesses nothing, and an outsider cannot lock a partner's account out.

Memory stays bounded under many addresses: at most ``max_entries`` keys per scope are
kept; when full, keys with no failure in the window go first, then the least recently failed
unlocked ones. An IPv6 client is keyed by its /64 (one host usually holds a whole /64).
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Final

MAX_ENTRIES: Final = 10_000
"""Keys kept per scope: ten thousand addresses at about 200 bytes each, ~2 MB at worst."""


@dataclass(frozen=True, slots=True)
class GuardLimits:
    per_address: int
    per_system_id: int
    window: float
    lockout: float
    delay: float
    max_entries: int = MAX_ENTRIES


@dataclass(slots=True)
class _Entry:
    failures: deque[float]
    """When the last (at most ``limit``) failures were made."""
    locked_until: float = 0.0


@dataclass(frozen=True, slots=True)
class Lock:
    """Why a bind is refused before its password is checked."""

    scope: str  # "address" | "system_id"
    until: float


class _Scope:
    def __init__(self, name: str, limit: int, limits: GuardLimits) -> None:
        self.name = name
        self.limit = limit
        self.limits = limits
        self.entries: OrderedDict[str, _Entry] = OrderedDict()
        self.lockouts = 0
        """Lockouts started since start-up."""

    def _stale(self, entry: _Entry, now: float) -> bool:
        """Nothing left to remember: not locked, no failure within the window."""
        return entry.locked_until <= now and (
            not entry.failures or now - entry.failures[-1] > self.limits.window
        )

    def locked(self, key: str, now: float) -> float | None:
        entry = self.entries.get(key)
        if entry is not None and entry.locked_until > now:
            return entry.locked_until
        return None

    def fail(self, key: str, now: float) -> int:
        """Count a failure; returns the failures of ``key`` within the window."""
        entry = self.entries.get(key)
        if entry is None:
            self._make_room(now)
            entry = self.entries[key] = _Entry(deque(maxlen=self.limit))
        else:
            self.entries.move_to_end(key)
        failures = entry.failures
        failures.append(now)
        window = self.limits.window
        recent = sum(1 for at in failures if now - at <= window)
        if (
            len(failures) == self.limit
            and now - failures[0] <= self.limits.window
            and entry.locked_until <= now
        ):
            entry.locked_until = now + self.limits.lockout
            failures.clear()  # after the lockout, the count starts again
            self.lockouts += 1
        return recent

    def _make_room(self, now: float) -> None:
        limit = self.limits.max_entries
        if len(self.entries) < limit:
            return
        # Forget keys with nothing to remember first; if that frees too little, the least
        # recently failed unlocked keys (a flood of new addresses must not unlock the
        # ones already locked out), then, at worst, the oldest. Freeing a tenth at a time
        # keeps the sweep off most inserts.
        target = limit - max(1, limit // 10)
        for key in [k for k, e in self.entries.items() if self._stale(e, now)]:
            del self.entries[key]
        if len(self.entries) > target:
            for key in [k for k, e in self.entries.items() if e.locked_until <= now]:
                del self.entries[key]
                if len(self.entries) <= target:
                    break
        while len(self.entries) > target:
            self.entries.popitem(last=False)

    def locked_now(self, now: float) -> int:
        return sum(1 for e in self.entries.values() if e.locked_until > now)


class BindGuard:
    """Failed binds per client address and per system_id: a delay, then a lockout."""

    def __init__(self, limits: GuardLimits) -> None:
        self.limits = limits
        self.address = _Scope("address", limits.per_address, limits)
        self.system_id = _Scope("system_id", limits.per_system_id, limits)

    def locked(self, address: str, system_id: str | None, now: float) -> Lock | None:
        """The lock that refuses this bind now, if any. ``system_id``: None for one this
        front does not know (such ids are not tracked: any string would make a key)."""
        until = self.address.locked(address, now)
        if until is not None:
            return Lock("address", until)
        if system_id is not None:
            until = self.system_id.locked(system_id, now)
            if until is not None:
                return Lock("system_id", until)
        return None

    def failed(self, address: str, system_id: str | None, now: float) -> float:
        """A bind from ``address`` failed on its password (or an unknown system_id):
        count it. Returns the seconds to wait before answering it: nothing for an address's
        first failure in the window (a typo is answered at once), ``delay`` after that."""
        recent = self.address.fail(address, now)
        if system_id is not None:
            self.system_id.fail(system_id, now)
        return self.limits.delay if recent > 1 else 0.0

    def tracked(self) -> int:
        return len(self.address.entries) + len(self.system_id.entries)

    def locked_count(self, now: float) -> dict[str, int]:
        return {s.name: s.locked_now(now) for s in (self.address, self.system_id)}

    def lockouts(self) -> dict[str, int]:
        return {s.name: s.lockouts for s in (self.address, self.system_id)}


def client_key(ip: str) -> str:
    """The key of a client address: the address itself for IPv4, its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return ip


def retry_after(lock: Lock, now: float) -> int:
    """Whole seconds until ``lock`` ends (for the log line)."""
    return max(0, math.ceil(lock.until - now))


__all__ = ["BindGuard", "GuardLimits", "Lock", "client_key", "retry_after"]
