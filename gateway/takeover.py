"""Work other nodes left, taken up while this node runs (gateway.store.claims).

A node takes up, besides what it finds at start-up, the work no live node holds: rows
nobody holds (a message accepted on a node with no bind of its carrier, claims given back
at a clean stop) and rows whose claim lapsed (their node died). Each kind of work has a
*look* that claims such rows and takes them in, at its own polling rhythm, and at once when
the store says a commit left work of its kind (``Wakeups``: PostgreSQL ``NOTIFY``; a wake
only wakes, the look reads the work). The polling covers lost wakes, a listening
connection being made again, and SQLite (where nobody else leaves work).

The looks (wired by the daemon, gateway.app.daemon):

=============  =========================================  ======================================
kind           what it takes                              rhythm
=============  =========================================  ======================================
message        pending messages of the carriers this      ``[node] takeover_seconds``, and woken
               node has binds of (``Dispatcher.           by ``WAKE_QUEUE`` for such a carrier
               take_over``)
interaction    pending MOs of a node that stopped         ``takeover_seconds``
               (``InboundService.take_over``)
campaign       running and scheduled campaigns this       twice ``takeover_seconds``
               node has no task for (the runner then
               claims each when its holder's claim lapses)
import         imports a dead node left running: failed   ``[node] claim_seconds``
               (their file was on that node)
=============  =========================================  ======================================

Callbacks and front outbox items need no look: their senders poll every second and their
claiming reads take lapsed claims; a wake (``WAKE_CALLBACKS``, ``WAKE_FRONT``) makes them
look at once (``hooks``). What each look takes over is counted by its component
(``smsgw_claims_taken_over_total{kind}``, gateway.app.observe) and logged; a look that
fails is counted here and logged at most once per ``FAILURE_LOG_SECONDS`` per kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from gateway.logs import log_event
from gateway.store.claims import DEFAULT_TAKEOVER_SECONDS
from gateway.store.ports import Wakeups

__all__ = ["DEFAULT_TAKEOVER_SECONDS", "Look", "Takeover", "TakeoverStats"]

log = logging.getLogger("smsgw.takeover")

FAILURE_LOG_SECONDS: Final = 60.0
"""At most one ``takeover.failed`` warning per kind this often (a database that is down
fails every look)."""


def _any(key: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Look:
    """One kind of work other nodes may leave."""

    kind: str
    """Names it in logs and metrics."""
    every: float
    """Seconds between looks when nothing wakes it."""
    run: Callable[[], Awaitable[object]]
    """One look: claim what is left and take it in."""
    wake: str | None = None
    """The store's wake kind (``claims.WAKE_*``) that makes it look at once."""
    wants: Callable[[str], bool] = _any
    """Whether a wake's key (carrier, account; "" for any) concerns this node."""


@dataclass(slots=True)
class TakeoverStats:
    looks: dict[str, int] = field(default_factory=dict)
    """Looks made, per kind."""
    failures: dict[str, int] = field(default_factory=dict)
    """Looks that failed, per kind."""
    wakes: dict[str, int] = field(default_factory=dict)
    """Wakes heard from the store, per wake kind."""


class Takeover:
    """Runs the looks: each its own task, woken by its timer or by the store."""

    def __init__(
        self,
        store: Wakeups,
        looks: Sequence[Look],
        hooks: Mapping[str, Callable[[str], None]] | None = None,
    ) -> None:
        """``hooks``: what else a wake kind wakes (the callback sender, the front's
        outbox), called with the wake's key."""
        self.store = store
        self.looks = list(looks)
        self.hooks = dict(hooks or {})
        self.stats = TakeoverStats()
        self._events: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_failure_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    async def start(self) -> None:
        """Listen for the store's wakes (a store that cannot listen yet keeps trying in
        the background; the polling covers meanwhile), then start the looks."""
        self._events = {look.kind: asyncio.Event() for look in self.looks}
        await self.store.listen(self.wake)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(look), name=f"takeover-{look.kind}") for look in self.looks
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self, kind: str, key: str) -> None:
        """The store's wake (``Wakeups.listen``): a commit left work of ``kind``."""
        self.stats.wakes[kind] = self.stats.wakes.get(kind, 0) + 1
        for look in self.looks:
            if look.wake == kind and look.wants(key):
                event = self._events.get(look.kind)
                if event is not None:
                    event.set()
        hook = self.hooks.get(kind)
        if hook is not None:
            hook(key)

    async def _run(self, look: Look) -> None:
        event = self._events[look.kind]
        loop = asyncio.get_running_loop()
        while True:
            handle = loop.call_later(look.every, event.set)
            try:
                await event.wait()
            finally:
                handle.cancel()
            event.clear()
            self.stats.looks[look.kind] = self.stats.looks.get(look.kind, 0) + 1
            try:
                await look.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.failures[look.kind] = self.stats.failures.get(look.kind, 0) + 1
                self._log_failure(look.kind, exc)

    def _log_failure(self, kind: str, exc: Exception) -> None:
        now = time.monotonic()
        last = self._last_failure_log.get(kind)
        if last is not None and now - last < FAILURE_LOG_SECONDS:
            self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
            return
        log_event(
            log,
            "takeover.failed",
            logging.WARNING,
            kind=kind,
            error=repr(exc),
            failures_since_last_log=self._unlogged.pop(kind, 0),
        )
        self._last_failure_log[kind] = now
