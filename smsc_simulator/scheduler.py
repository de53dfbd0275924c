"""One timer for every delayed action of the simulator: a heap under a single ``call_at``.

Receipts, delayed submit_sm_resp and subscriber replies are all "do this at time t". At
50,000 messages a second a task (or even a ``TimerHandle``) per action costs more than the
action itself, so they share one heap; the loop holds at most one timer, armed at the
earliest entry, and each firing runs every entry that is due.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from typing import Any, Final

log = logging.getLogger("smsc_sim.scheduler")

SLACK: Final = 0.0005
"""Run entries due within half a millisecond of now, rather than rearming for them (the
loop's clock resolution is about a millisecond on Linux anyway)."""


class Scheduler:
    """``call_at(when, fn, arg)`` without cancellation: callbacks check their own validity."""

    __slots__ = ("_counter", "_handle", "_handle_at", "_heap", "_loop", "_stopped")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Callable[[Any], object], Any]] = []
        self._counter = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = 0.0
        self._stopped = False

    def __len__(self) -> int:
        return len(self._heap)

    def time(self) -> float:
        return self._loop.time()

    def call_at(self, when: float, fn: Callable[[Any], object], arg: Any = None) -> None:
        if self._stopped:
            return
        heapq.heappush(self._heap, (when, next(self._counter), fn, arg))
        if self._handle is None or when < self._handle_at:
            self._arm(when)

    def call_later(self, delay: float, fn: Callable[[Any], object], arg: Any = None) -> None:
        self.call_at(self._loop.time() + delay, fn, arg)

    def stop(self) -> None:
        """Drop every pending entry and the timer."""
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._heap.clear()

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle_at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        heap = self._heap
        limit = self._loop.time() + SLACK
        pop = heapq.heappop
        while heap and heap[0][0] <= limit:
            _when, _n, fn, arg = pop(heap)
            try:
                fn(arg)
            except Exception:  # one broken entry must not stall every later one
                log.exception("scheduler.callback_failed")
        if heap and not self._stopped:
            self._arm(heap[0][0])
