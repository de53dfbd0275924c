"""The lease keeper: renews this node's claims on stored work while the node lives.

Every ``claim_seconds / 3`` (gateway.store.claims) it asks the store to extend each claim
this node holds to ``now + claim_seconds``. A renewal that fails (a busy or full disk, a
database failing over) is counted and logged, at most once per ``FAILURE_LOG_SECONDS`` with
the count since, and tried again at the next turn: a claim outlives two failed renewals in a
row. At a clean stop the keeper releases every claim, so another node can take the work at
once instead of waiting for the claims to lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gateway.logs import log_event
from gateway.store.claims import ClaimSettings
from gateway.store.ports import Claims

log = logging.getLogger("smsgw.lease")

FAILURE_LOG_SECONDS: Final = 60.0
"""At most one ``lease.renew_failed`` warning this often (with the failures since): a
database that is down fails every renewal."""


@dataclass(slots=True)
class LeaseStats:
    renewals: int = 0
    """Renewals that succeeded."""
    failures: int = 0
    """Renewals that failed."""
    held: int = 0
    """Rows this node held at its last renewal."""
    last_renewed: float | None = None
    """Wall-clock time of the last successful renewal."""


class LeaseKeeper:
    def __init__(
        self,
        store: Claims,
        settings: ClaimSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.stats = LeaseStats()
        self._task: asyncio.Task[None] | None = None
        self._failures_unlogged = 0
        self._last_failure_log: float | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="lease")

    async def stop(self, release: bool = True) -> None:
        """Stop renewing; ``release``: give every claim up (a clean stop)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if release:
            try:
                released = await self.store.release_claims()
            except Exception as exc:  # they lapse by themselves within claim_seconds
                log_event(log, "lease.release_failed", logging.WARNING, error=repr(exc))
            else:
                log_event(log, "lease.released", rows=released)

    async def renew(self) -> bool:
        """One renewal (the loop's turn; tests call it). Whether it succeeded."""
        try:
            held = await self.store.renew_claims(self.clock())
        except Exception as exc:
            self.stats.failures += 1
            self._log_failure(exc)
            return False
        self.stats.renewals += 1
        self.stats.held = held
        self.stats.last_renewed = self.clock()
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.renew_every)
            await self.renew()

    def _log_failure(self, exc: Exception) -> None:
        now = time.monotonic()
        last = self._last_failure_log
        if last is not None and now - last < FAILURE_LOG_SECONDS:
            self._failures_unlogged += 1
            return
        log_event(
            log,
            "lease.renew_failed",
            logging.WARNING,
            node=self.settings.node_id,
            error=repr(exc),
            failures_since_last_log=self._failures_unlogged,
            detail=f"claims lapse {self.settings.seconds:g} s after the last renewal",
        )
        self._last_failure_log = now
        self._failures_unlogged = 0
