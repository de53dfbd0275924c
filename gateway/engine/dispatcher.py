"""The dispatcher: queued messages out through the binds, outcomes back into the store.

It wires the outbound engine and owns its lifecycle, the pumps and the binds' outbound hooks;
each step is a module of its own:

=====================================  ==========================================================
gateway.engine.queue                   what is held in memory: one queue per carrier (``ready``
                                       by priority then admission order, ``delayed`` by due
                                       time), the binds, the counts
gateway.engine.loading                 which messages are in memory: enqueued after their commit,
                                       or paged in from the store
gateway.engine.admission               what may be sent now: windows, bind and account tokens,
                                       the bound on parts begun and not yet committed
gateway.engine.staging                 ready parts -> begun in the store -> staged -> the wire
gateway.engine.pdus                    a message's parts -> submit_sm PDUs
gateway.engine.outcomes                submit_sm_resp, errors, timeouts -> the store, in batches
gateway.engine.failover                which queue a job joins; parts back to a queue
gateway.engine.retry                   the retry rules (what a failure becomes)
gateway.engine.withdraw                cancel_sm / replace_sm holds from the SMPP front
=====================================  ==========================================================

A pump turn (synchronous, ``_pump_once``, one pump task per carrier woken by an
``asyncio.Event``: an enqueue, a response freeing window room, a bind coming up; or by one
timer: a token refill, the next delayed job; never by polling)
    moves due delayed jobs to ``ready``; sends ``staged`` parts over the bound binds, each
    taking ``min(window_free, bind tokens)`` within the carrier's account tokens; and tops
    ``staged`` up, at most ``MAX_CONCURRENT_BATCHES`` begin_attempts calls at once.

Begun at acceptance
    The HTTP API asks ``reserve`` before it commits: messages that are due, whose carrier has
    nothing queued ahead and window and tokens to spare beyond what is staged, are committed
    by ``MessageIntake.accept`` with their first attempt begun, and ``enqueue`` sends them in
    the same call (the staged queue's tail). No begin_attempts commit stands between the 202 and the
    wire for them. Only window room is promised, so a crash flags at most the windows'
    worth of them as possibly duplicated.

Responses
    ``response`` / ``timeout`` / ``bind_down`` (the binds' outbound hooks) become outcomes; a
    temporary failure requeues the part in memory at its retry time; throttling answers also
    slow the bind (gateway.engine.throttle).

Clocks
    Message times (scheduled_at, validity_until, retry_at, outcome times) use ``clock``
    (wall clock, ``time.time``); pacing uses the event loop's monotonic clock, the one the
    SMPP session stamps requests with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Final

from gateway.binds import BindHooks, CarrierBind
from gateway.config import CarrierConfig, GatewayConfig
from gateway.core.model import NewMessage, Replacement
from gateway.core.routing import Router
from gateway.engine.admission import MAX_BATCH_PARTS, Admission, release
from gateway.engine.failover import Failover
from gateway.engine.loading import LOAD_PAGE_MESSAGES, MAX_PARTS_IN_MEMORY, Loader
from gateway.engine.outcomes import Outcomes, OutcomeWriter
from gateway.engine.pdus import PduBuilder, source_address
from gateway.engine.queue import (
    BindPace,
    CarrierQueue,
    DispatchStats,
    Queues,
    Sent,
    carrier_queue,
    earliest_opt,
    is_live,
)
from gateway.engine.receipts import ChangesHook, ReceiptHandler
from gateway.engine.retry import GENERIC_NACK, THROTTLE_STATUSES, TIMEOUT, RetryPolicy
from gateway.engine.staging import MAX_CONCURRENT_BATCHES, Stager
from gateway.engine.throttle import BindThrottle, account_bucket
from gateway.engine.withdraw import Withdrawals
from gateway.logs import log_event
from gateway.net.deliver import DeliverSmRouter, MoHandler
from gateway.smpp.constants import CommandId, Status
from gateway.smpp.receipt import IdForms
from gateway.smpp.session import RequestTimedOut, ResponseReceived
from gateway.store.ports import DispatchPorts

log = logging.getLogger("smsgw.dispatch")

STOP_DRAIN_SECONDS: Final = 5.0
"""On stop, how long to wait for answers to the submits in flight before writing the last
outcomes (the binds then unbind with their own drain)."""

_GENERIC_NACK_ID: Final = int(CommandId.GENERIC_NACK)
_ROK: Final = int(Status.ROK)


class Dispatcher:
    """Sends queued messages through the binds.

    The constructor makes itself the outbound side of every bind's listener, and
    ``deliveries`` (gateway.net.deliver) its request side: deliver_sm never come here.
    Lifecycle: ``await start()`` (after the store is open; binds may start before or after),
    ``enqueue()`` from the HTTP API after each commit, ``await stop()`` before the binds are
    stopped (their unbind drain still delivers responses and receipts to us; what is left in
    flight after that is requeued by the store on the next start, marked possibly duplicated).
    """

    def __init__(
        self,
        config: GatewayConfig,
        store: DispatchPorts,
        binds: Sequence[CarrierBind],
        router: Router,
        clock: Callable[[], float] = time.time,
        *,
        mo_handler: MoHandler | None = None,
        on_changes: ChangesHook | None = None,
        max_parts: int = MAX_PARTS_IN_MEMORY,
        load_page: int = LOAD_PAGE_MESSAGES,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._store = store
        q = self._q = Queues(config.carriers, clock, rng or random.Random(os.urandom(16)))
        self.stats: DispatchStats = q.stats
        self.receipts = ReceiptHandler(store, config.carriers, clock=clock, on_changes=on_changes)
        self.deliveries = DeliverSmRouter(self.receipts, mo_handler=mo_handler)
        """deliver_sm, data_sm and alert_notification off the binds: receipts and MO."""
        self._pdus = PduBuilder(q.carriers)
        self._failover = Failover(q, router, self._pdus)
        self._writer = OutcomeWriter(store, q, on_changes)
        self._outcomes = Outcomes(
            q, self._writer, self._failover, RetryPolicy.from_config(config.messages)
        )
        self._stager = Stager(q, store, self._pdus, self._outcomes, self._failover)
        self._writer.joint = self._stager
        self._loader = Loader(
            q,
            store,
            router,
            self._pdus,
            self._outcomes,
            self._failover,
            self._stager,
            max_parts=max_parts,
            load_page=load_page,
        )
        self._admission = Admission(q, self._loader)
        self._withdrawals = Withdrawals(q, self._loader)
        now = time.monotonic()  # replaced by the loop's clock in start()
        for bind in binds:
            self._add_bind(bind, now)
        self._idle = asyncio.Event()
        self._account_shares: dict[str, float] = {}
        """Carrier -> this node's part of its ``account_tps`` (gateway.cluster: the slots
        it holds over the carrier's binds); 1 when absent (one node)."""

    def _add_bind(self, bind: CarrierBind, now: float) -> None:
        carrier = self._q.carriers.get(bind.carrier)
        if carrier is None:
            raise ValueError(f"bind {bind.name} belongs to unknown carrier {bind.carrier!r}")
        state = BindPace(bind, BindThrottle(carrier.config.tps, now))
        carrier.binds.append(state)
        self._q.binds[bind] = state
        bind.listener = BindHooks(self, self.deliveries)

    @property
    def policy(self) -> RetryPolicy:
        return self._outcomes.policy

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load pending messages (up to the memory bound) and start the pumps."""
        loop = asyncio.get_running_loop()
        q = self._q
        q.loop = loop
        now = loop.time()
        for carrier in q.carriers.values():
            carrier.account = account_bucket(self._account_tps(carrier.config), now)
            carrier.wake = asyncio.Event()
            for b in carrier.binds:
                b.throttle = BindThrottle(carrier.config.tps, now)
        self._idle = asyncio.Event()
        q.running = True
        q.stopping = False
        await self.deliveries.start()
        self._writer.start(loop)
        self._loader.loading_at_start = True
        try:
            await self._loader.refill(raise_errors=True)
        except BaseException:
            await self._abort_start()
            raise
        finally:
            self._loader.loading_at_start = False
        self._loader.after_start()
        for carrier in q.carriers.values():
            carrier.task = loop.create_task(self._pump(carrier), name=f"pump-{carrier.name}")
        log_event(
            log,
            "dispatch.started",
            queued=q.parts_in_memory,
            backlog=self._loader.backlog,
            carriers=len(q.carriers),
        )

    async def _abort_start(self) -> None:
        self._q.running = False
        self._q.stopping = True
        await self.deliveries.stop(0)
        await self._writer.abort()

    async def stop(
        self,
        drain: float = STOP_DRAIN_SECONDS,
        before_receipts: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Stop sending: no new submit_sm leaves. Wait up to ``drain`` seconds for answers to
        those in flight, run ``before_receipts`` (the daemon unbinds there: receipts that
        come while the binds drain are still stored and acknowledged), write every outcome
        collected, and stop the receipt handler. Queued messages stay in the store for the
        next start."""
        q = self._q
        if not q.running:
            return
        q.running = False
        q.stopping = True
        loader = self._loader
        if loader.retry is not None:
            loader.retry.cancel()
        tasks = [c.task for c in q.carriers.values() if c.task is not None]
        if loader.task is not None:
            tasks.append(loader.task)
        if loader.releasing is not None:  # what is not given back the lease keeper releases
            tasks.append(loader.releasing)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in q.carriers.values():
            c.task = None
        if self._stager.tasks:  # begin_attempts calls under way: let them land
            await asyncio.gather(*self._stager.tasks, return_exceptions=True)
        now = q.clock()
        for c in q.carriers.values():
            if c.staged:
                self._stager.unstage(c, now, "stopping", requeue=False)
        if q.in_flight > 0:
            self._idle.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), drain)
        if before_receipts is not None:
            await before_receipts()
        await self.deliveries.stop(drain)
        await self._writer.stop(drain)
        log_event(
            log,
            "dispatch.stopped",
            queued=q.parts_in_memory,
            in_flight=q.in_flight,
            unwritten=self._writer.pending,
        )

    def reconfigure(self, config: GatewayConfig, binds: Sequence[CarrierBind]) -> None:
        """Take new carrier settings, retry rules and the binds to send on (SIGHUP reload).

        A carrier no longer configured keeps its queue and pump with no bind to send on, so
        its messages fail over by the (already replaced) routes. Binds left out stop being
        used for sending; they stay this dispatcher's listener, so answers and receipts that
        come while they unbind are still taken."""
        q = self._q
        self.config = config
        self._outcomes.policy = RetryPolicy.from_config(config.messages)
        self.receipts.set_carriers(config.carriers)
        self._pdus.forget()
        now = q.loop.time() if q.loop is not None else time.monotonic()
        for cc in config.carriers:
            c = q.carriers.get(cc.name)
            if c is None:
                c = q.carriers[cc.name] = carrier_queue(cc, self._account_tps(cc), now)
                if q.running and q.loop is not None:
                    c.task = q.loop.create_task(self._pump(c), name=f"pump-{c.name}")
            elif c.config != cc:
                if c.config.account_tps != cc.account_tps:
                    c.account = account_bucket(self._account_tps(cc), now)
                if c.config.tps != cc.tps:
                    for b in c.binds:
                        b.throttle = BindThrottle(cc.tps, now)
                c.config = cc
                c.forms = IdForms(cc.message_id_form, cc.effective_receipt_id_form)
        q.retired = set(q.carriers) - {cc.name for cc in config.carriers}
        wanted = set(binds)
        for bind in list(q.binds):
            if bind not in wanted:
                del q.binds[bind]
                c = q.carriers[bind.carrier]
                c.binds = [b for b in c.binds if b.bind is not bind]
        for bind in binds:
            if bind not in q.binds:
                self._add_bind(bind, now)
        for c in q.carriers.values():
            c.scanned_up = None
            c.wake.set()

    def _account_tps(self, carrier: CarrierConfig) -> float:
        return carrier.account_tps * self._account_shares.get(carrier.name, 1.0)

    def set_account_share(self, carrier: str, share: float) -> None:
        """This node now holds ``share`` (0..1) of ``carrier``'s binds across the cluster
        (gateway.cluster): its ``account_tps`` bucket runs at that part of the account's
        rate from now on, so the nodes together stay within it. A share of 0 (no bind
        here) keeps the bucket as it is: nothing is sent without a bind.

        It also says which carriers this node loads messages of (``Loader.holds``): none of
        a carrier it holds no slot of (those are left to the nodes that do, or committed
        unclaimed for them), and the messages others left of one it comes to hold."""
        self._loader.holds(carrier, share > 0)
        if share <= 0 or self._account_shares.get(carrier, 1.0) == share:
            return
        self._account_shares[carrier] = share
        c = self._q.carriers.get(carrier)
        if c is None or c.config.account_tps <= 0:
            return
        q = self._q
        now = q.loop.time() if q.loop is not None else time.monotonic()
        rate = self._account_tps(c.config)
        if c.account is None:
            c.account = account_bucket(rate, now)
        else:
            c.account.set_rate(rate, now)
        c.wake.set()

    def account_rate(self, carrier: str) -> float | None:
        """The rate this node's ``account_tps`` bucket of ``carrier`` runs at (None:
        unlimited)."""
        c = self._q.carriers.get(carrier)
        return None if c is None or c.account is None else c.account.rate

    # -- what the API, the front and the health page use ---------------------------------------

    def enqueue(self, messages: Sequence[NewMessage], begun: Collection[str] = ()) -> None:
        """Messages the store has just committed. Held in memory when there is room and no
        older backlog; otherwise left in the store, where paging finds them.

        ``begun``: the ids ``reserve`` gave for these messages, committed begun
        (``MessageIntake.accept(begun=...)``). Their submit_sm are built and sent in this call, as
        far as windows and tokens allow (the rest wait first in line, staged)."""
        self._loader.enqueue(messages, begun)

    def reserve(self, messages: Sequence[NewMessage]) -> set[str]:
        """See ``Admission.reserve``."""
        return self._admission.reserve(messages)

    def release(self, messages: Sequence[NewMessage], reserved: Collection[str]) -> None:
        """The commit of messages ``reserve`` promised room to failed: free the room."""
        release(self._q.carriers, messages, reserved)
        self._loader.forget(messages)

    def unclaimed(self, messages: Sequence[NewMessage]) -> set[str]:
        """See ``Loader.unclaimed``: messages this node has no bind of the carrier of."""
        return self._loader.unclaimed(messages)

    def sendable(self) -> frozenset[str] | None:
        """See ``Loader.sendable``: the carriers this node loads messages of."""
        return self._loader.sendable()

    def take_over(self) -> bool:
        """Look now for pending messages other nodes left (``Loader.maybe_take_over``):
        woken by the store, or at the polling rhythm (gateway.takeover). Whether a look
        started (not while a load is under way, or memory is full)."""
        return self._loader.maybe_take_over()

    async def take_over_now(self) -> int:
        """One look, awaited (``Loader.take_over``): how many messages it took in."""
        return await self._loader.take_over()

    def wants(self, carrier: str) -> bool:
        """Whether a wake for messages of ``carrier`` ("": any) concerns this node."""
        sendable = self._loader.sendable()
        return not carrier or sendable is None or carrier in sendable

    @property
    def took_over(self) -> int:
        """Messages taken over from nodes whose claims lapsed."""
        return self._loader.took_over

    @property
    def handed_back(self) -> int:
        """Messages given back to the nodes with a bind slot of their carrier."""
        return self._loader.handed_back

    @property
    def picked_up(self) -> int:
        """Messages taken up that no node held (accepted where no bind of their carrier is,
        or given back by a node that stopped)."""
        return self._loader.picked_up

    def withdraw(self, message_id: str) -> bool:
        """See ``Withdrawals.withdraw`` (cancel_sm and replace_sm from the front)."""
        return self._withdrawals.withdraw(message_id)

    def settle(
        self, message_id: str, *, removed: bool, replacement: Replacement | None = None
    ) -> None:
        """See ``Withdrawals.settle``."""
        self._withdrawals.settle(message_id, removed=removed, replacement=replacement)

    def opt_out(self, number: str, sender: str | None) -> None:
        """``number`` just opted out (from ``sender``, or from every sender when None), and
        the store has it. The store refuses to begin parts for it from now on; this stops
        the parts whose attempt was begun already and that wait for the wire, so nothing
        accepted before the opt-out leaves after it but what was on the wire already.
        Messages accepted after it (a STOP's own confirmation) are not touched."""
        self._stager.opt_out(number, sender)

    def carriers_up(self) -> set[str]:
        """Carriers with at least one bound bind."""
        return self._q.carriers_up()

    def queue_depth(self) -> dict[str, int]:
        """Parts waiting per carrier (ready, scheduled and retrying; not in flight)."""
        return {name: c.queued_parts for name, c in self._q.carriers.items()}

    @property
    def in_flight(self) -> int:
        """submit_sm sent and not yet answered."""
        return self._q.in_flight

    @property
    def parts_in_memory(self) -> int:
        return self._q.parts_in_memory

    def bind_rate(self, bind: CarrierBind) -> float | None:
        """The bind's effective TPS now (None: unlimited), adaptive cuts included."""
        return self._q.binds[bind].throttle.effective_rate

    # -- the pump ------------------------------------------------------------------------------

    async def _pump(self, carrier: CarrierQueue) -> None:
        loop = asyncio.get_running_loop()
        wake = carrier.wake
        while True:
            wake.clear()
            delay = self._pump_once(carrier)
            if delay is not None and delay <= 0:
                await asyncio.sleep(0)  # let responses and other carriers in between turns
                continue
            timer = loop.call_later(delay, wake.set) if delay is not None else None
            try:
                await wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    def _pump_once(self, c: CarrierQueue) -> float | None:
        """Send staged parts the windows and tokens allow, and stage more. Returns 0.0 to go
        again at once, the seconds until something may be sent, or None to wait for an event
        (a response, a staged batch, a bind coming up)."""
        q = self._q
        now = q.clock()
        wait = self._failover.promote(c, now)
        live = [b for b in c.binds if is_live(b.bind)]
        if not live:
            if c.staged:
                self._stager.unstage(c, now, "no bind up", requeue=True)
            if c.ready:
                up = frozenset(q.carriers_up())
                if up and up != c.scanned_up:  # a full scan only when the picture changed
                    c.scanned_up = up
                    self._failover.scan(c, up)
                wait = earliest_opt(wait, self._stager.expire_ready(c, now))
            return wait
        c.scanned_up = None
        mono = q.mono()
        if c.staged:
            wait = self._stager.send(c, live, now, mono, wait)
        if not self._stager.fill(c, live, now, mono):
            return 0.0  # the head had expired; look again
        return wait

    # -- the binds' outbound hooks -------------------------------------------------------------

    def bind_up(self, bind: CarrierBind) -> None:
        # Every pump looks again: this carrier can send, and a carrier that is down may now
        # fail over to this one.
        for c in self._q.carriers.values():
            c.wake.set()

    def bind_down(self, bind: CarrierBind, lost: list[RequestTimedOut]) -> None:
        q = self._q
        now = q.clock()
        for event in lost:
            sent = event.context
            if isinstance(sent, Sent) and not sent.void:
                q.in_flight -= 1
                q.carriers[bind.carrier].unconfirmed -= 1
                q.stats.lost_on_link_down += 1
                # The link failed, not the message: retry at once (another bind, another
                # carrier), but count the attempt so a message that kills links runs out.
                self._outcomes.failed(sent, TIMEOUT, now, bind.carrier, immediate=True)
        self._after_answer()
        for c in q.carriers.values():
            c.wake.set()

    def response(self, bind: CarrierBind, event: ResponseReceived) -> None:
        sent = event.context
        if not isinstance(sent, Sent) or sent.void:
            return
        q = self._q
        q.in_flight -= 1
        b = q.binds.get(bind)
        resp = event.response
        status = resp.command_status
        carrier = q.carriers[bind.carrier]
        if resp.command_id == _GENERIC_NACK_ID or status != _ROK:
            carrier.unconfirmed -= 1  # an accepted part stays unconfirmed until committed
        if resp.command_id == _GENERIC_NACK_ID:
            self._outcomes.failed(
                sent, GENERIC_NACK, q.clock(), bind.carrier, command_status=status
            )
        elif status == _ROK:
            raw = getattr(resp, "message_id", "") or ""
            self._outcomes.submitted(sent, carrier, raw)
            if b is not None and b.throttle.cap is not None and q.loop is not None:
                b.throttle.succeeded(q.loop.time())
        else:
            if status in THROTTLE_STATUSES:
                q.stats.throttled += 1
                if b is not None and q.loop is not None:
                    b.throttle.throttled(q.loop.time(), event.sent_at)
            self._outcomes.failed(sent, status, q.clock(), bind.carrier, command_status=status)
        self._after_answer()
        carrier.wake.set()

    def timeout(self, bind: CarrierBind, event: RequestTimedOut) -> None:
        sent = event.context
        if not isinstance(sent, Sent) or sent.void:
            return
        q = self._q
        q.in_flight -= 1
        q.carriers[bind.carrier].unconfirmed -= 1
        q.stats.timeouts += 1
        self._outcomes.failed(sent, TIMEOUT, q.clock(), bind.carrier)
        self._after_answer()
        q.carriers[bind.carrier].wake.set()

    def _after_answer(self) -> None:
        if self._q.in_flight <= 0 and self._q.stopping:
            self._idle.set()


__all__ = [
    "LOAD_PAGE_MESSAGES",
    "MAX_BATCH_PARTS",
    "MAX_CONCURRENT_BATCHES",
    "MAX_PARTS_IN_MEMORY",
    "DispatchStats",
    "Dispatcher",
    "is_live",
    "source_address",
]
