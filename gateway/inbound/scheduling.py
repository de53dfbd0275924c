"""Which interactions are handled when: one queue per sender, batches, retries, quarantine.

Interactions are handled in batches (up to ``BATCH_MAX``, ``BATCHES_IN_FLIGHT`` at once)
holding at most one interaction per sender, so one subscriber's MOs are handled one after
the other in the order they were logged while others proceed.

Poisoned MOs (issue 17.2): an interaction whose handling failed, took longer than
``handling_timeout`` (``HANDLING_MARGIN_SECONDS`` + 2 x ``handler_timeout``), or was under way
when the process stopped (a crash, a kill -9 of a hung daemon: every interaction pending at
start counts as begun once) is retried *alone*, one retry at a time, its attempt counted in
the store before it begins, ``RETRY_DELAY_SECONDS`` x attempts after the last one. After
``[inbound].max_attempts`` attempts it is quarantined: state ``quarantined`` with its reason
(``last_error``), never handled again on this or any later start unless requeued
(``POST /v1/interactions/{id}/retry``); counted in ``smsgw_mo_quarantined_total`` and logged.
A poisoned MO therefore costs at most ``max_attempts`` handlings, whatever it does, and the
MOs that were handled beside it are not blamed (they are retried alone, where only their own
attempts count). Fresh MOs are not counted before they begin (no extra write on the hot
path): the count of an interrupted fresh attempt is taken at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final

from gateway.config import InboundConfig
from gateway.inbound.stats import InboundStats
from gateway.logs import log_event
from gateway.store.base import (
    INTERACTION_PENDING,
    Interaction,
    InteractionOutcome,
    NewInteraction,
)
from gateway.store.ports import MoLog

log = logging.getLogger("smsgw.inbound")

BATCH_MAX: Final = 256
"""Interactions handled together at most: one store read answers what they all need
(opt-outs, campaign correlation, loop guard, contacts), one commit accepts all their
replies and one more marks them done. A batch takes what has queued while the previous
ones ran, so batches grow with the load and a lone MO goes at once."""

BATCHES_IN_FLIGHT: Final = 4
"""Batches handled at once. More than one, so that a slow action (a Python handler, a
campaign directory) does not hold every MO up; few, so that batches stay large under load."""

RETRY_DELAY_SECONDS: Final = 2.0
"""A retried interaction waits this long times its attempts so far: a store hiccup gets time
to pass before the last attempt; a deterministic failure is quarantined within seconds."""

HandleBatch = Callable[
    [Sequence[Interaction], Callable[[Iterable[int]], None] | None],
    Awaitable[list[InteractionOutcome | None]],
]
"""Handles interactions of distinct senders (``Batches.handle``): for each its outcome, or
None when its handling failed (the reason in the shared ``errors``)."""


class Scheduler:
    """Per-sender queues feeding batches (see the module's doc)."""

    def __init__(
        self,
        inbound: InboundConfig,
        store: MoLog,
        handle: HandleBatch,
        errors: dict[int, str],
        stats: InboundStats,
        clock: Callable[[], float],
        *,
        batch_max: int = BATCH_MAX,
        batches_in_flight: int = BATCHES_IN_FLIGHT,
        retry_delay: float = RETRY_DELAY_SECONDS,
    ) -> None:
        self.inbound = inbound
        self.store = store
        self.handle = handle
        self.errors = errors
        """The last error of each failed interaction, by id (``Batches`` writes them)."""
        self.stats = stats
        self.clock = clock
        self._batch_max = max(1, batch_max)
        self._batches_max = max(1, batches_in_flight)
        self.retry_delay = retry_delay
        # Interactions waiting, per sender (oldest first); senders with one waiting and none
        # being handled, in the order they became ready; senders being handled.
        self._waiting: dict[str, deque[Interaction]] = {}
        self._ready: deque[str] = deque()
        self._handling: set[str] = set()
        self._batches = 0
        self._work_wake = asyncio.Event()
        self._idle_event = asyncio.Event()
        self._idle_event.set()
        self.batch_tasks: set[asyncio.Task[None]] = set()
        self._logged_from: int | None = None  # the first interaction id logged since start
        self._busy = 0  # interactions queued or being handled
        # Poisoned MOs: interactions to retry alone (pending at start, or failed), those
        # pending at start (their last attempt may not have been counted), and whether a
        # retry is under way (one at a time).
        self._retry_ids: set[int] = set()
        self._recovered: set[int] = set()
        self._retry_busy = False

    def reset(self) -> None:
        """Forget what a previous run left in memory: it is pending in the store."""
        self._waiting.clear()
        self._ready.clear()
        self._handling.clear()
        self._busy = 0
        self._idle_event.set()
        self._logged_from = None
        self._retry_ids.clear()
        self._recovered.clear()
        self.errors.clear()
        self._retry_busy = False

    def idle(self) -> bool:
        """No interaction queued or being handled."""
        return self._busy == 0

    async def wait_idle(self, timeout: float) -> None:  # noqa: ASYNC109 - a bounded drain
        """Wait until idle, at most ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle_event.wait(), timeout=timeout)

    def recovered(self, interaction: Interaction) -> None:
        """Queue an interaction found pending at start, unless it was logged since (it is
        queued already): it may be what stopped the last run, so it is retried alone."""
        if self._logged_from is None or interaction.id < self._logged_from:
            self._recovered.add(interaction.id)
            self.retry(interaction)

    def taken_over(self, interaction: Interaction) -> None:
        """Queue an interaction taken over from a node that stopped: as one pending at
        start (its last attempt there may not have been counted), retried alone."""
        self._recovered.add(interaction.id)
        self.retry(interaction)

    def retry(self, interaction: Interaction) -> None:
        """Queue an interaction to be handled alone, as a retry."""
        self._retry_ids.add(interaction.id)
        self.enqueue(interaction)

    def enqueue_logged(self, interaction_id: int, new: NewInteraction) -> None:
        """Queue an interaction just logged. Ids grow, so every interaction logged since
        the start has an id of at least ``_logged_from``: the start's scan of pending
        interactions, which runs while new MOs are logged, leaves those out (they would
        be handled twice)."""
        if self._logged_from is None or interaction_id < self._logged_from:
            self._logged_from = interaction_id
        self.enqueue(_pending(interaction_id, new))

    def enqueue(self, interaction: Interaction, *, first: bool = False) -> None:
        """Queue an interaction behind its sender's others, or at their head (``first``:
        a failed one, retried before its sender's next MO)."""
        source = interaction.source
        self._busy += 1
        self._idle_event.clear()
        waiting = self._waiting.get(source)
        if waiting is None:
            waiting = self._waiting[source] = deque()
            if source not in self._handling:
                self._ready.append(source)
        if first:
            waiting.appendleft(interaction)
        else:
            waiting.append(interaction)
        self._work_wake.set()

    async def run(self) -> None:
        """Form batches: at most one interaction per sender in all the batches being
        handled, so one sender's MOs are handled one after the other, in the order logged
        (a STOP then a START; the courtesy reply's interval; the loop guard's count)."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._ready or self._batches >= self._batches_max:
                self._work_wake.clear()
                await self._work_wake.wait()
            batch: list[Interaction] = []
            ready, waiting = self._ready, self._waiting
            later: list[str] = []  # senders whose next is a retry that cannot go now
            retry = False
            while ready and len(batch) < self._batch_max:
                source = ready.popleft()
                queue = waiting[source]
                if queue[0].id in self._retry_ids:  # alone, and one retry at a time
                    if batch or self._retry_busy:
                        later.append(source)
                        continue
                    retry = True
                batch.append(queue.popleft())
                if not queue:
                    del waiting[source]
                self._handling.add(source)
                if retry:
                    break
            ready.extendleft(reversed(later))
            if not batch:  # only retries are ready, and one is under way
                self._work_wake.clear()
                await self._work_wake.wait()
                continue
            self._batches += 1
            run = self._run_retry(batch[0]) if retry else self._run_batch(batch)
            task = loop.create_task(run)
            self.batch_tasks.add(task)
            task.add_done_callback(self.batch_tasks.discard)

    async def _run_batch(self, batch: list[Interaction]) -> None:
        left = {interaction.id: interaction for interaction in batch}
        slot = True  # this batch counts against BATCHES_IN_FLIGHT

        def release(ids: Iterable[int]) -> None:
            """These interactions are over (done, or failed and left pending)."""
            nonlocal slot
            released = [left.pop(i) for i in ids if i in left]
            for interaction in released:
                source = interaction.source
                self._handling.discard(source)
                if source in self._waiting:
                    self._ready.append(source)
            self._busy -= len(released)
            if left and slot:  # only stragglers remain: let the next batch start
                slot = False
                self._batches -= 1
            if self._busy == 0:
                self._idle_event.set()
            self._work_wake.set()

        failed: list[Interaction] = []
        try:
            outcomes = await self.handle(batch, release)
            failed = [i for i, o in zip(batch, outcomes, strict=True) if o is None]
        except Exception as exc:  # a store failure: pending, handled again on the next start
            log_event(
                log,
                "inbound.process_failed",
                logging.WARNING,
                interaction=",".join(str(i) for i in left),
                error=repr(exc),
            )
            failed = list(left.values())
        finally:
            # Only a failure of the handling itself (an action, a handler, a timeout) is the
            # MO's and counts; one of the store (its replies or its outcome not written)
            # leaves it pending, as before, until the next start.
            failed = [i for i in failed if i.id in self.errors]
            if slot:
                slot = False
                self._batches -= 1
            # Failed ones are retried before their sender's next MO (they keep the order).
            for interaction in failed:
                self._retry_ids.add(interaction.id)
                self.enqueue(interaction, first=True)
            release(list(left))
        for interaction in failed:  # this attempt was not counted when it began
            await self._record_failure(interaction, add=1)

    async def _record_failure(self, interaction: Interaction, *, add: int) -> int:
        """Keep why the attempt failed; the attempts now (0 when the store could not say)."""
        error = self.errors.get(interaction.id, "handling failed")
        try:
            attempts = await self.store.fail_interaction(
                interaction.id, error, add=add, quarantine=False, at=self.clock()
            )
        except Exception as exc:
            log_event(
                log,
                "inbound.record_failed",
                logging.WARNING,
                interaction=interaction.id,
                error=repr(exc),
            )
            return 0
        interaction.attempts = max(interaction.attempts, attempts)
        return attempts

    async def _run_retry(self, interaction: Interaction) -> None:
        """An interaction that failed, or was pending at start: alone, one at a time, its
        attempt counted in the store before it begins; quarantined after max_attempts."""
        self._retry_busy = True
        iid = interaction.id
        done = False
        try:
            self.stats.retried += 1
            floor = 1 if iid in self._recovered else 0
            attempts = max(interaction.attempts, floor)
            limit = self.inbound.max_attempts
            if attempts >= limit:
                await self._quarantine(interaction, attempts)
                done = True
                return
            if interaction.attempts:
                await asyncio.sleep(self.retry_delay * interaction.attempts)
            attempts = await self.store.begin_interaction_attempt(iid, floor)
            self._recovered.discard(iid)
            interaction.attempts = attempts
            if attempts == 0:  # no longer pending (requeued, handled elsewhere)
                done = True
                return
            try:
                [outcome] = await self.handle([interaction], None)
            except Exception as exc:
                outcome = None
                self.errors.setdefault(iid, repr(exc))
            if outcome is not None:
                done = True
                return
            if attempts >= limit:
                await self._quarantine(interaction, attempts)
                done = True
            else:
                await self._record_failure(interaction, add=0)
        except Exception as exc:  # the store failed: it stays pending for the next start
            log_event(
                log, "inbound.retry_failed", logging.WARNING, interaction=iid, error=repr(exc)
            )
            done = True
        finally:
            self._retry_busy = False
            self._batches -= 1
            if done:
                self._retry_ids.discard(iid)
                self.errors.pop(iid, None)
            else:
                self.enqueue(interaction, first=True)
            self._release_one(interaction)

    def _release_one(self, interaction: Interaction) -> None:
        source = interaction.source
        self._handling.discard(source)
        if source in self._waiting and source not in self._ready:
            self._ready.append(source)
        self._busy -= 1
        if self._busy == 0:
            self._idle_event.set()
        self._work_wake.set()

    async def _quarantine(self, interaction: Interaction, attempts: int) -> None:
        error = self.errors.get(interaction.id) or interaction.last_error
        reason = (
            f"quarantined after {attempts} attempts; last: {error}"
            if error
            else f"quarantined after {attempts} attempts that did not finish"
            " (the daemon stopped or hung while handling it)"
        )
        await self.store.fail_interaction(
            interaction.id, reason, add=0, quarantine=True, at=self.clock()
        )
        self.stats.quarantined += 1
        log_event(
            log,
            "inbound.quarantined",
            logging.ERROR,
            interaction=interaction.id,
            source=interaction.source,
            destination=interaction.destination,
            attempts=attempts,
            reason=reason,
        )


def _pending(interaction_id: int, new: NewInteraction) -> Interaction:
    """The interaction just logged, as the store would read it back."""
    return Interaction(
        id=interaction_id,
        carrier=new.carrier,
        source=new.source,
        destination=new.destination,
        text=new.text,
        data_coding=new.data_coding,
        parts=new.parts,
        parts_received=new.parts_received,
        missing=tuple(new.missing),
        received_at=new.received_at,
        completed_at=new.completed_at,
        state=INTERACTION_PENDING,
    )
