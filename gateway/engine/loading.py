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
import heapq
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
        self._look_again = False
        """A look for work other nodes left was asked for while a load was under way."""
        self._releasing: list[str] = []
        self.releasing: asyncio.Task[None] | None = None
        """Claims being given back (``hand_back``)."""
        self.handed_back = 0
        """Messages given back to the nodes with a bind slot of their carrier."""
        self._unclaimed: set[str] = set()
        """Ids ``unclaimed`` gave for messages being committed (enqueue leaves them out)."""
        self.retry: asyncio.TimerHandle | None = None
        self.loading_at_start = False
        self.took_over = 0
        """Messages taken over from a node whose claim lapsed (take_over_pending)."""
        self.picked_up = 0
        """Messages taken up that nobody held (accepted on a node with no bind of their
        carrier, or given back by a node that stopped)."""
        self.withdrawn: dict[str, Withdrawn] = {}
        """Messages being edited by the front (gateway.engine.withdraw): paging leaves them
        to ``settle``, keeping the store copy it met."""
        queues.parts_freed = self.parts_freed

    def sendable(self) -> frozenset[str] | None:
        """The carriers this node loads messages of: those it has binds of. None when that
        is every carrier it knows (one node, or a cluster whose nodes all bind every
        carrier): then it loads every carrier's, one no longer configured included (such a
        message is routed again when taken in)."""
        q = self._q
        carriers = q.carriers
        if not q.standby and all(c.binds for c in carriers.values()):  # one node's case
            return None
        return frozenset(
            name
            for name, c in carriers.items()
            if (c.binds and name not in q.standby) or name in q.retired
        )

    def unclaimed(self, messages: Sequence[NewMessage]) -> set[str]:
        """Of messages about to be accepted, those this node has no bind of the carrier of:
        committed claimed by nobody, for a node that has one (the store wakes it)."""
        q = self._q
        carriers = q.carriers
        if not q.standby and all(c.binds for c in carriers.values()):
            return set()
        ids = {
            new.id
            for new in messages
            if (c := carriers.get(new.carrier)) is not None
            and (not c.binds or new.carrier in q.standby)
            and new.carrier not in q.retired
        }
        # enqueue() leaves exactly these out, whatever the slots are by then: held here
        # while nobody's in the store, another node could take one too.
        self._unclaimed.update(ids)
        return ids

    def forget(self, messages: Sequence[NewMessage]) -> None:
        """Their commit failed: nothing ``unclaimed`` said of them holds."""
        if self._unclaimed:
            self._unclaimed.difference_update(new.id for new in messages)

    def holds(self, carrier: str, held: bool) -> None:
        """Whether this node holds a bind slot of ``carrier`` (gateway.cluster): without
        one its binds wait in standby and it neither loads nor claims at intake that
        carrier's messages, and gives back those waiting whole in its queue (``hand_back``);
        coming to hold one, it looks at once for those other nodes left."""
        standby = self._q.standby
        if not held:
            if carrier not in standby:
                standby.add(carrier)
                self.hand_back(carrier)
        elif carrier in standby:
            standby.discard(carrier)
            self.maybe_take_over()

    def hand_back(self, carrier: str) -> int:
        """Take out of memory the messages waiting in ``carrier``'s queue with every open
        part there (none begun, staged, on the wire, or queued on another carrier), and
        give their claims back (``Queue.release_messages``): a node with a bind slot of the
        carrier sends them. How many. The rest (begun, failed over) stay with this node."""
        q = self._q
        c = q.carriers.get(carrier)
        if c is None:
            return 0
        out: list[str] = []

        def whole(job: Job) -> bool:
            msg = job.msg
            if msg.open_parts != len(job.parts) or msg.m.id in self.withdrawn:
                return False
            out.append(msg.m.id)
            c.queued_parts -= len(job.parts)
            q.part_done(msg, len(job.parts))
            return True

        ready = [entry for entry in c.ready if not whole(entry[3])]
        delayed = [entry for entry in c.delayed if not whole(entry[2])]
        if out:
            heapq.heapify(ready)
            heapq.heapify(delayed)
            c.ready, c.delayed = ready, delayed
            self.release(out)
        return len(out)

    def release(self, ids: Sequence[str]) -> None:
        """Give these messages' claims back in the background (retried until it is done:
        until then they are this node's, out of its memory)."""
        self._releasing.extend(ids)
        if self.releasing is None and self._q.loop is not None:
            self.releasing = self._q.loop.create_task(self._release(), name="hand-back")

    async def _release(self) -> None:
        try:
            while self._releasing:
                batch = list(self._releasing)
                try:
                    released = await self._store.release_messages(batch)
                except Exception as exc:
                    self._q.stats.store_errors += 1
                    log_event(log, "dispatch.hand_back_failed", logging.WARNING, error=repr(exc))
                    await asyncio.sleep(STORE_RETRY_SECONDS)
                    continue
                del self._releasing[: len(batch)]
                self.handed_back += released
                log_event(
                    log,
                    "dispatch.handed_back",
                    messages=released,
                    detail="no bind slot of their carrier here: for the nodes that have one",
                )
        finally:
            self.releasing = None

    def full(self) -> bool:
        """Older messages wait in the store, or memory is full: new ones wait there too."""
        return self.backlog or self._q.parts_in_memory >= self._max_parts

    # -- from the API ------------------------------------------------------------------------

    def enqueue(self, messages: Sequence[NewMessage], begun: Collection[str]) -> None:
        """See ``Dispatcher.enqueue``."""
        q = self._q
        if q.stopping:
            self.forget(messages)
            if begun:
                release(q.carriers, messages, begun)  # their promised room is not taken
                self._outcomes.begun_not_sent(messages, begun)
            return
        now = q.clock()
        woken: set[str] = set()
        sending: dict[str, CarrierQueue] = {}
        unclaimed = self._unclaimed
        for new in messages:
            early = bool(begun) and new.id in begun
            if unclaimed and new.id in unclaimed:
                unclaimed.discard(new.id)
                continue  # committed unclaimed: a node with a bind of its carrier takes it
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
        if self._look_again:
            self.maybe_take_over()

    async def refill(self, raise_errors: bool = False) -> None:
        """Load pending messages after the cursor until memory is full or the store has no
        more."""
        q = self._q
        while self.backlog and q.parts_in_memory < self._max_parts and not q.stopping:
            self._admitted_while_loading.clear()
            self._skipped_while_loading = False
            self._refilling = True
            try:
                page = await self._store.load_pending(
                    self._cursor, self._load_page, carriers=self.sendable()
                )
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
            back: list[str] = []
            for m in page:
                if self._cursor is None or m.id > self._cursor:
                    self._cursor = m.id
                if m.id in q.known or m.id in self._admitted_while_loading:
                    continue
                if m.carrier in q.standby:  # its last slot went during this load
                    back.append(m.id)
                    continue
                held = self.withdrawn.get(m.id)
                if held is not None:  # being edited: settle() decides what becomes of it
                    held.paged = m
                    continue
                carrier = self.admit(m, now)
                if carrier is not None:
                    woken.add(carrier)
            q.wake(woken)
            if back:
                self.release(back)
            if len(page) < self._load_page and not self._skipped_while_loading:
                self.backlog = False
        self._admitted_while_loading.clear()

    # -- work other nodes left -------------------------------------------------------------

    def after_start(self) -> None:
        """The load at start is over: a wake that came during it is looked at now."""
        if self._look_again:
            self.maybe_take_over()

    def maybe_take_over(self) -> bool:
        """Take up pending messages nobody holds or whose node died (``take_over``) in the
        background, unless a load is under way or memory is full; whether it started. With
        a backlog, paging finds those after the cursor (``load_pending`` claims them too)."""
        q = self._q
        if not q.running or q.stopping:
            return False
        if self.task is not None or self.loading_at_start:
            self._look_again = True  # a wake during a load: look when it is over
            return False
        self._look_again = False
        if self.backlog:
            self.maybe_refill()
            return False
        if q.parts_in_memory >= self._max_parts:
            return False
        self.task = asyncio.get_running_loop().create_task(
            self._take_over_guarded(), name="take-over"
        )
        return True

    async def _take_over_guarded(self) -> None:
        try:
            await self.take_over()
        finally:
            self.task = None
        self._after_load()

    def _after_load(self) -> None:
        """A load ended: look again for work other nodes left if asked meanwhile, or page
        in more of this node's."""
        if self._look_again:
            self.maybe_take_over()
        else:
            self.maybe_refill()

    async def take_over(self) -> int:
        """Claim and take in, as far as memory allows, the pending messages of the carriers
        this node has binds of that no node holds: accepted on a node without such a bind,
        given back at a clean stop, or held by a node whose claim lapsed (it died). Returns
        how many messages were taken in.

        A message taken in with an id beyond the cursor moves the cursor, as ``enqueue``
        does, but only while nothing of this node waits in the store (no backlog): paging
        never loads again what left memory before its outcome was committed. With a backlog
        it is left to paging, which reaches it in order (it is this node's now)."""
        q = self._q
        taken = 0
        while not q.stopping and not self.backlog:
            room = self._max_parts - q.parts_in_memory
            if room <= 0:
                break
            limit = min(self._load_page, room)
            self._admitted_while_loading.clear()
            self._refilling = True
            try:
                page = await self._store.take_over_pending(limit, carriers=self.sendable())
            except Exception as exc:
                q.stats.store_errors += 1
                log_event(log, "dispatch.take_over_failed", logging.WARNING, error=repr(exc))
                return taken
            finally:
                self._refilling = False
            now = q.clock()
            woken: set[str] = set()
            took_over: dict[str, int] = {}
            picked_up = 0
            for m in page:
                beyond = self._cursor is None or m.id > self._cursor
                if beyond and self.backlog:
                    continue  # this node's now: paging takes it in order
                if beyond:
                    self._cursor = m.id
                if m.id in q.known or m.id in self._admitted_while_loading:
                    continue
                if m.carrier in q.standby:  # its last slot went during this look
                    self.release([m.id])
                    continue
                held = self.withdrawn.get(m.id)
                if held is not None:
                    held.paged = m
                    continue
                if m.taken_from is None:
                    picked_up += 1
                else:
                    took_over[m.taken_from] = took_over.get(m.taken_from, 0) + 1
                taken += 1
                carrier = self.admit(m, now)
                if carrier is not None:
                    woken.add(carrier)
            q.wake(woken)
            self.picked_up += picked_up
            if took_over:
                self.took_over += sum(took_over.values())
                log_event(
                    log,
                    "dispatch.took_over",
                    logging.WARNING,
                    messages=sum(took_over.values()),
                    nodes=",".join(sorted(took_over)),
                    detail="pending messages of nodes whose claims lapsed",
                )
            if len(page) < limit:
                break
        self._admitted_while_loading.clear()
        return taken
