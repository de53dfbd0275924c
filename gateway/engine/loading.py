"""Which messages the engine holds in memory: those the API enqueues after their commit,
and those paged in from the store.

At most about ``max_parts`` parts are held. ``start()`` loads pending messages with
``Queue.load_pending`` by id cursor; when more are pending than fit, later messages stay in
the store (``enqueue`` leaves them there too) and are loaded page by page as the queue drains
below half. A message taken in is cheap on purpose (``enqueue`` runs in the API's request):
its text is split and its addresses worked out when its parts are staged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Final

from gateway.core.model import MessageStatus, NewMessage, OutboundMessage
from gateway.core.routing import Router
from gateway.engine.admission import release
from gateway.engine.failover import Failover
from gateway.engine.outcomes import Outcomes
from gateway.engine.pdus import PduBuilder
from gateway.engine.queue import STORE_RETRY_SECONDS, CarrierQueue, Job, Queues, Sent
from gateway.engine.staging import Stager
from gateway.logs import log_event
from gateway.store.ports import Queue

if TYPE_CHECKING:
    from gateway.engine.withdraw import Withdrawn

log = logging.getLogger("smsgw.dispatch")

MAX_PARTS_IN_MEMORY: Final = 200_000
"""Parts held in memory by default: ten seconds of traffic at 20,000/s, a few hundred bytes
each (tens of MB). Beyond it, messages wait in the store and are paged in."""

LOAD_PAGE_MESSAGES: Final = 2_000
"""Messages per ``load_pending`` call: big enough to amortise the query, small enough that one
page never holds up the event loop noticeably."""


class Loader:
    def __init__(
        self,
        queues: Queues,
        store: Queue,
        router: Router,
        pdus: PduBuilder,
        outcomes: Outcomes,
        failover: Failover,
        stager: Stager,
        *,
        max_parts: int,
        load_page: int,
    ) -> None:
        self._q = queues
        self._store = store
        self._router = router
        self._pdus = pdus
        self._outcomes = outcomes
        self._failover = failover
        self._stager = stager
        self._max_parts = max_parts
        self._load_page = load_page
        self._cursor: str | None = None
        self.backlog = True
        """The store may hold pending messages not in memory."""
        self.task: asyncio.Task[None] | None = None
        """The refill under way."""
        self._refilling = False
        self._admitted_while_loading: set[str] = set()
        self._skipped_while_loading = False
        self.retry: asyncio.TimerHandle | None = None
        self.loading_at_start = False
        self.withdrawn: dict[str, Withdrawn] = {}
        """Messages being edited by the front (gateway.engine.withdraw): paging leaves them
        to ``settle``, keeping the store copy it met."""
        queues.parts_freed = self.parts_freed

    def full(self) -> bool:
        """Older messages wait in the store, or memory is full: new ones wait there too."""
        return self.backlog or self._q.parts_in_memory >= self._max_parts

    # -- from the API ------------------------------------------------------------------------

    def enqueue(self, messages: Sequence[NewMessage], begun: Collection[str]) -> None:
        """See ``Dispatcher.enqueue``."""
        q = self._q
        if q.stopping:
            if begun:
                release(q.carriers, messages, begun)  # their promised room is not taken
                self._outcomes.begun_not_sent(messages, begun)
            return
        now = q.clock()
        woken: set[str] = set()
        sending: dict[str, CarrierQueue] = {}
        for new in messages:
            early = bool(begun) and new.id in begun
            if new.id in q.known:
                if early:  # loaded by a page already (a race with paging): sent from there
                    q.carriers[new.carrier].reserved -= new.parts
                continue
            in_order = self._cursor is not None and new.id <= self._cursor
            if (
                not early
                and not in_order
                and (self.backlog or q.parts_in_memory >= self._max_parts)
            ):
                # Not ours to hold: paging will find it (after the cursor).
                if not self.backlog:
                    self.backlog = True
                if self._refilling:
                    self._skipped_while_loading = True
                continue
            m = OutboundMessage(
                id=new.id,
                to=new.to,
                sender=new.sender,
                text=new.text,
                encoding=new.encoding,
                carrier=new.carrier,
                priority=new.priority,
                created_at=new.created_at,
                validity_until=new.validity_until,
                scheduled_at=new.scheduled_at,
                registered_delivery=new.registered_delivery,
            )
            if self._refilling:
                self._admitted_while_loading.add(new.id)
            if self._cursor is None or new.id > self._cursor:
                self._cursor = new.id
            if early:
                staged_on = self._admit_begun(m, now, new.parts)
                if staged_on is not None:
                    sending[staged_on.name] = staged_on
                continue
            carrier = self.admit(m, now, new.parts)
            if carrier is not None:
                woken.add(carrier)
        for c in sending.values():
            self._stager.send_now(c)
        q.wake(woken)
        self.maybe_refill()

    def _admit_begun(self, m: OutboundMessage, now: float, count: int) -> CarrierQueue | None:
        """Take a message begun at acceptance: its submit_sm join ``staged`` at once (behind
        the parts begun before it). Returns its carrier, or None when it failed here."""
        q = self._q
        c = q.carriers[m.carrier]
        c.reserved -= count
        msg = q.new_msg(m, count)
        q.hold(msg, count)
        parts = list(range(1, count + 1))
        error = self._pdus.prepare(msg, c.config)
        if error is not None:
            self._outcomes.finish_job(Job(msg, parts, 1, False), MessageStatus.FAILED, now, error)
            return None
        build = self._pdus.build
        c.staged.extend((Sent(msg, part, 1, False), build(msg, part)) for part in parts)
        q.stats.begun_at_accept += count
        return c

    def admit(self, m: OutboundMessage, now: float, expected: int | None = None) -> str | None:
        """Take a message into memory; the carrier whose queue it joined, or None when it
        failed at once. ``expected``: the part count intake stored, when known."""
        q = self._q
        carrier = q.carriers.get(m.carrier)
        if carrier is None:  # a carrier removed from the configuration since intake
            m.carrier = self._router.pick(m.to, q.carriers_up())
            carrier = q.carriers[m.carrier]
        msg = q.new_msg(m, expected)
        if m.pending_parts is not None:
            parts = sorted(set(m.pending_parts))
        elif expected is not None:
            parts = list(range(1, expected + 1))
        else:  # neither the store nor intake said: the split does
            error = self._pdus.prepare(msg, carrier.config)
            parts = [1] if msg.split is None else list(range(1, len(msg.split.parts) + 1))
            if error is not None:
                q.hold(msg, len(parts))
                self._outcomes.finish_job(
                    Job(msg, parts, m.attempts, False), MessageStatus.FAILED, now, error
                )
                return None
        if not parts:
            return None
        q.hold(msg, len(parts))
        job = Job(msg, parts, m.attempts, m.possible_duplicate)
        due = m.scheduled_at
        if due is not None and due > now:
            q.push_delayed(carrier, job, due)
        else:
            carrier = self._failover.queue_for(carrier, msg)
            q.push_ready(carrier, job)
        return carrier.name

    # -- paging from the store ---------------------------------------------------------------

    def parts_freed(self) -> None:
        if self.backlog and self.task is None:
            self.maybe_refill()

    def maybe_refill(self) -> None:
        if (
            self.backlog
            and self._q.running
            and self.task is None
            and not self.loading_at_start
            and self._q.parts_in_memory < self._max_parts // 2
        ):
            loop = asyncio.get_running_loop()
            self.task = loop.create_task(self._refill_guarded(), name="refill")

    async def _refill_guarded(self) -> None:
        try:
            await self.refill()
        finally:
            self.task = None

    async def refill(self, raise_errors: bool = False) -> None:
        """Load pending messages after the cursor until memory is full or the store has no
        more."""
        q = self._q
        while self.backlog and q.parts_in_memory < self._max_parts and not q.stopping:
            self._admitted_while_loading.clear()
            self._skipped_while_loading = False
            self._refilling = True
            try:
                page = await self._store.load_pending(self._cursor, self._load_page)
            except Exception as exc:
                if raise_errors:
                    raise
                q.stats.store_errors += 1
                log_event(log, "dispatch.load_failed", logging.WARNING, error=repr(exc))
                if q.running:
                    self.retry = asyncio.get_running_loop().call_later(
                        STORE_RETRY_SECONDS, self.maybe_refill
                    )
                return
            finally:
                self._refilling = False
            now = q.clock()
            woken: set[str] = set()
            for m in page:
                if self._cursor is None or m.id > self._cursor:
                    self._cursor = m.id
                if m.id in q.known or m.id in self._admitted_while_loading:
                    continue
                held = self.withdrawn.get(m.id)
                if held is not None:  # being edited: settle() decides what becomes of it
                    held.paged = m
                    continue
                carrier = self.admit(m, now)
                if carrier is not None:
                    woken.add(carrier)
            q.wake(woken)
            if len(page) < self._load_page and not self._skipped_while_loading:
                self.backlog = False
        self._admitted_while_loading.clear()
