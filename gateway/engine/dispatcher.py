"""The dispatcher: queued messages out through the binds, outcomes back into the store.

Shape
    One ``_Carrier`` per configured carrier holds two heaps of jobs (a job is a message's
    parts still to send): ``ready`` ordered by (priority desc, admission order), and
    ``delayed`` ordered by due time (scheduled messages and retries). One pump task per
    carrier, woken by an ``asyncio.Event`` (an enqueue, a response freeing window room, a
    bind coming up) or by one timer (a token refill, the next delayed job), never by polling.

A pump turn (synchronous, ``_pump_once``)
    moves due delayed jobs to ``ready``; sends ``staged`` parts (begun in the store, submit_sm
    built) over the bound binds, each taking ``min(window_free, bind tokens)`` within the
    carrier's account tokens; and tops ``staged`` up: it takes parts from ``ready`` in
    priority order, builds their submit_sm and makes one ``Queue.begin_attempts`` call for
    the batch (a task; at most ``MAX_CONCURRENT_BATCHES`` at once). Staging keeps commit
    latency off the wire (a window slot freed by a response is refilled in the same turn,
    from parts already durable as "submitting"), but only as far as the windows reach: the
    parts begun and not yet answered-and-committed never exceed window x live binds, so a
    crash flags at most that many parts possibly duplicated.
    Every part is begun in the store before its submit_sm leaves; a part staged but not sent
    (no bind left, stopping) gets a QUEUED outcome that sets it back.

Begun at acceptance
    The HTTP API asks ``reserve`` before it commits: messages that are due, whose carrier has
    nothing queued ahead and window and tokens to spare beyond what is staged, are committed
    by ``MessageIntake.accept`` with their first attempt begun, and ``enqueue`` sends them in
    the same call (the staged queue's tail). No begin_attempts commit stands between the 202 and the
    wire for them. Only window room is promised, so a crash flags at most the windows'
    worth of them as possibly duplicated.

Responses
    ``response`` / ``timeout`` / ``bind_down`` (the BindListener hooks) turn into
    ``SubmitOutcome`` values collected in a list; one writer task sends them to
    ``Queue.record_outcomes`` in batches (everything collected while the previous call ran,
    plus ``OUTCOME_LINGER_SECONDS``). A temporary failure requeues the part in memory at its
    retry time; throttling answers also slow the bind (gateway.engine.throttle).

Memory
    At most about ``max_parts`` parts are held. ``start()`` loads pending messages with
    ``Queue.load_pending`` by id cursor; when more are pending than fit, later messages stay
    in the store (enqueue() leaves them there too) and are loaded page by page as the queue
    drains below half.

Clocks
    Message times (scheduled_at, validity_until, retry_at, outcome times) use ``clock``
    (wall clock, ``time.time``); pacing uses the event loop's monotonic clock, the one the
    SMPP session stamps requests with.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Container, Sequence
from dataclasses import dataclass, field
from typing import Final

from gateway.binds import BindState, CarrierBind
from gateway.config import CarrierConfig, GatewayConfig
from gateway.engine.receipts import ChangesHook, MoHandler, ReceiptHandler
from gateway.engine.retry import (
    GENERIC_NACK,
    THROTTLE_STATUSES,
    TIMEOUT,
    Decision,
    RetryKey,
    RetryPolicy,
    Verdict,
)
from gateway.engine.throttle import UNLIMITED, BindThrottle, TokenBucket, account_bucket
from gateway.logs import log_event
from gateway.model import (
    MessageStatus,
    NewMessage,
    OutboundMessage,
    Replacement,
    SubmitOutcome,
)
from gateway.routing import Router
from gateway.smpp.constants import CommandId, EsmClass, Status, Tag
from gateway.smpp.errors import EncodeError, SmppError
from gateway.smpp.pdu import Pdu, SubmitSm, tlv_u8, tlv_u16
from gateway.smpp.receipt import IdForms
from gateway.smpp.session import RequestTimedOut, ResponseReceived
from gateway.smpp.text import ConcatMethod, Encoding, SplitResult, TextEncodingError, split_message
from gateway.smpp.times import relative_time
from gateway.store.base import StoreUnavailable
from gateway.store.ports import DispatchPorts

log = logging.getLogger("smsgw.dispatch")

MAX_PARTS_IN_MEMORY: Final = 200_000
"""Parts held in memory by default: ten seconds of traffic at 20,000/s, a few hundred bytes
each (tens of MB). Beyond it, messages wait in the store and are paged in."""

LOAD_PAGE_MESSAGES: Final = 2_000
"""Messages per ``load_pending`` call: big enough to amortise the query, small enough that one
page never holds up the event loop noticeably."""

MAX_BATCH_PARTS: Final = 1_000
"""Most parts in one begin_attempts call: bounds one pump turn's work (a few ms of building
submit_sm) so responses and receipts are not starved."""

MAX_CONCURRENT_BATCHES: Final = 2
"""begin_attempts calls per carrier under way at once: one being committed while the next
one collects; more would only wait in the store's queue."""

STAGE_SECONDS: Final = 0.5
"""Parts are begun ahead of the wire up to the room left in the windows (see
``_stage_target``), and for a rate-limited carrier at most about this much traffic at its
rate: half a second bounds how far a newly arrived higher-priority message can be
overtaken."""

MAX_STAGED_PARTS: Final = 10_000
"""Cap on staged parts per carrier: half a second at 20,000 parts/s."""

OUTCOME_LINGER_SECONDS: Final = 0.002
"""The outcome writer waits this long for more outcomes before a small batch is written: a
burst of responses becomes one commit, and 2 ms is nothing to a receipt's journey."""

OUTCOME_BATCH_TARGET: Final = 500
"""A batch of outcomes this large is written without lingering."""

STORE_RETRY_SECONDS: Final = 1.0
_STOP_MEMORY: Final = 600.0
"""How long the dispatcher remembers an opt-out it was told about: far longer than a part
stays staged, after which the store's own check (begin_attempts) is the only one needed."""
"""Wait after a failed store call before trying again (outcomes are kept in memory, parts
are requeued): a store error is usually a busy or full disk, not worth hammering."""

WRITE_BLOCKED_RECHECK_SECONDS: Final = 0.05
"""A bind whose socket buffer is full (the SMSC reads slowly) shows no window room and no
event will say when it drains: the pump looks again after this long."""

STOP_DRAIN_SECONDS: Final = 5.0
"""On stop, how long to wait for answers to the submits in flight before writing the last
outcomes (the binds then unbind with their own drain)."""

SHORT_CODE_MAX_DIGITS: Final = 8
"""A sender of at most this many digits (no '+') is a short code (TON 3 network specific):
short codes run 3-8 digits; longer digit strings are international numbers without '+'."""

SOURCE_ADDR_MAX: Final = 20
"""source_addr and destination_addr are C-octet strings of 21 octets with the NUL (5.2.8-9)."""

ADDR_DIGITS: Final = frozenset("0123456789")

_SOURCE_CACHE_SIZE: Final = 10_000
"""Distinct (sender, carrier) pairs remembered by ``_prepare`` before the memo starts over."""


# -- values -------------------------------------------------------------------------------


@dataclass(slots=True)
class DispatchStats:
    submitted: int = 0
    """Parts accepted by a carrier (submit_sm_resp ROK)."""
    retried: int = 0
    """Parts requeued after a temporary failure."""
    rejected: int = 0
    failed: int = 0
    expired: int = 0
    """Parts failed because the message's validity ran out before it could be sent."""
    opted_out: int = 0
    """Parts failed because their recipient opted out after the message was accepted."""
    timeouts: int = 0
    lost_on_link_down: int = 0
    throttled: int = 0
    """ESME_RTHROTTLED / ESME_RMSGQFUL answers."""
    moved: int = 0
    """Messages moved to another carrier (failover)."""
    outcome_batches: int = 0
    store_errors: int = 0
    begun_at_accept: int = 0
    """Parts begun in their accept transaction (``reserve``) rather than by begin_attempts."""
    begin_refused: int = 0
    """Parts the store would not begin (short of disk space): they wait and are tried again."""


def _priority_flag(flags: tuple[int, ...], priority: int) -> int:
    """The carrier's priority_flag for a message priority (0-9; out of range: the nearest)."""
    if 0 <= priority < len(flags):
        return flags[priority]
    return flags[-1] if priority > 0 and flags else 0


class _Msg:
    """A message in memory: the store's view, plus what the wire needs."""

    __slots__ = ("addr", "carrier", "m", "open_parts", "order", "ref", "split", "total")

    def __init__(self, m: OutboundMessage, ref: int, order: int, total: int | None) -> None:
        self.m = m
        self.total = total
        """Parts the store holds for this message, when known (intake's count)."""
        self.ref = ref
        """Concatenation reference, kept for every part and every retry in this process."""
        self.order = order
        """Admission order: FIFO among messages of the same priority."""
        self.split: SplitResult | None = None
        self.carrier = ""
        """The carrier ``split`` and ``addr`` were made for."""
        self.addr: tuple[int, int, str, int, int, str] = (0, 0, "", 0, 0, "")
        self.open_parts = 0
        """Parts in memory not yet final (submitted, rejected or failed)."""


class _Job:
    """Parts of one message waiting to be sent together (same attempt count)."""

    __slots__ = ("attempts", "dup", "msg", "parts")

    def __init__(self, msg: _Msg, parts: list[int], attempts: int, dup: bool) -> None:
        self.msg = msg
        self.parts = parts
        self.attempts = attempts
        """Attempts already made for these parts."""
        self.dup = dup


class _Sent:
    """The context of one submit_sm in flight: it comes back with its response."""

    __slots__ = ("attempt", "dup", "msg", "part", "void")

    def __init__(self, msg: _Msg, part: int, attempt: int, dup: bool) -> None:
        self.msg = msg
        self.part = part
        self.attempt = attempt
        self.dup = dup
        self.void = False
        """Failed when submit() raised: any event that still comes back for it is ignored."""


class _Withdrawn:
    """A message held back by ``withdraw``: its queued jobs (carrier, job, due or None for
    ready), and its store copy if paging met it meanwhile."""

    __slots__ = ("jobs", "msg", "paged")

    def __init__(self, msg: _Msg | None) -> None:
        self.msg = msg
        self.jobs: list[tuple[_Carrier, _Job, float | None]] = []
        self.paged: OutboundMessage | None = None


class _Bind:
    __slots__ = ("bind", "throttle")

    def __init__(self, bind: CarrierBind, throttle: BindThrottle) -> None:
        self.bind = bind
        self.throttle = throttle


@dataclass(slots=True)
class _Carrier:
    config: CarrierConfig
    forms: IdForms
    account: TokenBucket | None
    binds: list[_Bind] = field(default_factory=list)
    ready: list[tuple[int, int, int, _Job]] = field(default_factory=list)
    delayed: list[tuple[float, int, _Job]] = field(default_factory=list)
    staged: deque[tuple[_Sent, SubmitSm]] = field(default_factory=deque)
    """Parts whose attempt is begun in the store, in send order, waiting for the wire."""
    staging: int = 0
    """Parts in begin_attempts calls under way."""
    batches: int = 0
    """begin_attempts calls under way."""
    reserved: int = 0
    """Parts promised to messages being accepted (``reserve``), begun in their accept
    transaction: they take window room as soon as their commit returns."""
    rr: int = 0
    queued_parts: int = 0
    scanned_up: frozenset[str] | None = None
    """While no bind is up: the carriers up at the last failover scan of ``ready``."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    unconfirmed: int = 0
    """Parts on the wire, or accepted by the carrier with that outcome not yet committed:
    what a crash now would send again. Kept within the carrier's windows (window x binds),
    so the duplicates a crash can cause are bounded by the window, not by how far the
    outcome writer has fallen behind."""

    @property
    def name(self) -> str:
        return self.config.name


_GENERIC_NACK_ID: Final = int(CommandId.GENERIC_NACK)
_ROK: Final = int(Status.ROK)


def is_live(bind: CarrierBind) -> bool:
    """Bound and able to send. Asks the session, not only the bind's state: when a link
    drops, the bind still says BOUND until its loop runs again (bind_down included), while
    the session is closed at once."""
    conn = bind.conn
    return conn is not None and bind.state is BindState.BOUND and conn.session.is_bound


def source_address(sender: str, carrier: CarrierConfig) -> tuple[int, int, str]:
    """(TON, NPI, address) of a sender: '+' number 1/1 without the '+', short code 3/0,
    other digits 1/1, alphanumeric 5/0; the carrier's source_ton/npi win when set."""
    if sender.startswith("+") and ADDR_DIGITS.issuperset(sender[1:]) and len(sender) > 1:
        ton, npi, addr = 1, 1, sender[1:]
    elif sender and ADDR_DIGITS.issuperset(sender):
        ton, npi, addr = (3, 0, sender) if len(sender) <= SHORT_CODE_MAX_DIGITS else (1, 1, sender)
    else:
        ton, npi, addr = 5, 0, sender
    if carrier.source_ton is not None:
        ton = carrier.source_ton
    if carrier.source_npi is not None:
        npi = carrier.source_npi
    return ton, npi, addr


def _valid_address(addr: str) -> bool:
    return 0 < len(addr) <= SOURCE_ADDR_MAX and addr.isascii() and addr.isprintable()


_ENCODINGS: Final[dict[str, Encoding]] = {e.value: e for e in Encoding}
"""A message's encoding name to the alphabet; any other ("auto") lets split_message choose
from the text and the carrier's settings."""
_CONCAT: Final[dict[str, ConcatMethod]] = {c.value: c for c in ConcatMethod}


# -- the dispatcher -----------------------------------------------------------------------


class Dispatcher:
    """Sends queued messages through the binds; the binds' ``BindListener``.

    The constructor makes itself the listener of every bind given (``bind.listener = self``).
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
        self._router = router
        self._clock = clock
        self._on_changes = on_changes
        self._max_parts = max_parts
        self._load_page = load_page
        self._rng = rng or random.Random(os.urandom(16))
        self.policy = RetryPolicy.from_config(config.messages)
        self.stats = DispatchStats()
        self._sources: dict[tuple[str, str], tuple[int, int, str, bool]] = {}
        """(sender, carrier) -> (TON, NPI, source_addr, valid): ``_prepare``'s memo."""
        self._stops: dict[tuple[str, str], float] = {}
        """(number, sender or '*') -> when: opt-outs to apply to parts already staged."""
        self.receipts = ReceiptHandler(
            store, config.carriers, clock=clock, mo_handler=mo_handler, on_changes=on_changes
        )
        now = time.monotonic()  # replaced by the loop's clock in start()
        self._carriers: dict[str, _Carrier] = {
            c.name: _Carrier(
                c, IdForms(c.message_id_form, c.effective_receipt_id_form), account_bucket(0, now)
            )
            for c in config.carriers
        }
        self._binds: dict[CarrierBind, _Bind] = {}
        for bind in binds:
            carrier = self._carriers.get(bind.carrier)
            if carrier is None:
                raise ValueError(f"bind {bind.name} belongs to unknown carrier {bind.carrier!r}")
            state = _Bind(bind, BindThrottle(carrier.config.tps, now))
            carrier.binds.append(state)
            self._binds[bind] = state
            bind.listener = self
        self._loop: asyncio.AbstractEventLoop | None = None
        self._known: dict[str, _Msg] = {}
        self._parts_in_memory = 0
        self._order = 0
        self._tie = 0
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._running = False
        self._stopping = False
        # Paging from the store.
        self._cursor: str | None = None
        self._backlog = True  # the store may hold pending messages not in memory
        self._refill_task: asyncio.Task[None] | None = None
        self._refilling = False
        self._admitted_while_loading: set[str] = set()
        self._skipped_while_loading = False
        self._refill_retry: asyncio.TimerHandle | None = None
        self._loading_at_start = False
        self._withdrawn: dict[str, _Withdrawn] = {}
        """Messages taken out of the queues while the front cancels or replaces them."""
        # Outcomes.
        self._outcomes: list[SubmitOutcome] = []
        self._outcomes_ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._writer_closing = False
        self._batch_tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load pending messages (up to the memory bound) and start the pumps."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        now = loop.time()
        for carrier in self._carriers.values():
            carrier.account = account_bucket(carrier.config.account_tps, now)
            carrier.wake = asyncio.Event()
            for b in carrier.binds:
                b.throttle = BindThrottle(carrier.config.tps, now)
        self._idle = asyncio.Event()
        self._outcomes_ready = asyncio.Event()
        self._running = True
        self._stopping = False
        self._writer_closing = False
        await self.receipts.start()
        self._writer = loop.create_task(self._write_outcomes_loop(), name="outcomes")
        self._loading_at_start = True
        try:
            await self._refill(raise_errors=True)
        except BaseException:
            await self._abort_start()
            raise
        finally:
            self._loading_at_start = False
        for carrier in self._carriers.values():
            carrier.task = loop.create_task(self._pump(carrier), name=f"pump-{carrier.name}")
        log_event(
            log,
            "dispatch.started",
            queued=self._parts_in_memory,
            backlog=self._backlog,
            carriers=len(self._carriers),
        )

    async def _abort_start(self) -> None:
        self._running = False
        self._stopping = True
        await self.receipts.stop(0)
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

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
        if not self._running:
            return
        self._running = False
        self._stopping = True
        if self._refill_retry is not None:
            self._refill_retry.cancel()
        tasks = [c.task for c in self._carriers.values() if c.task is not None]
        if self._refill_task is not None:
            tasks.append(self._refill_task)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in self._carriers.values():
            c.task = None
        if self._batch_tasks:  # begin_attempts calls under way: let them land
            await asyncio.gather(*self._batch_tasks, return_exceptions=True)
        now = self._clock()
        for c in self._carriers.values():
            if c.staged:
                self._unstage(c, now, "stopping", requeue=False)
        if self._in_flight > 0:
            self._idle.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), drain)
        if before_receipts is not None:
            await before_receipts()
        await self.receipts.stop(drain)
        writer, self._writer = self._writer, None
        if writer is not None:
            self._writer_closing = True
            self._outcomes_ready.set()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(writer), drain)
            if not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        log_event(
            log,
            "dispatch.stopped",
            queued=self._parts_in_memory,
            in_flight=self._in_flight,
            unwritten=len(self._outcomes),
        )

    def reconfigure(self, config: GatewayConfig, binds: Sequence[CarrierBind]) -> None:
        """Take new carrier settings, retry rules and the binds to send on (SIGHUP reload).

        A carrier no longer configured keeps its queue and pump with no bind to send on, so
        its messages fail over by the (already replaced) routes. Binds left out stop being
        used for sending; they stay this dispatcher's listener, so answers and receipts that
        come while they unbind are still taken."""
        self.config = config
        self.policy = RetryPolicy.from_config(config.messages)
        self.receipts.set_carriers(config.carriers)
        self._sources.clear()
        now = self._loop.time() if self._loop is not None else time.monotonic()
        for cc in config.carriers:
            c = self._carriers.get(cc.name)
            if c is None:
                c = self._carriers[cc.name] = _Carrier(
                    cc,
                    IdForms(cc.message_id_form, cc.effective_receipt_id_form),
                    account_bucket(cc.account_tps, now),
                )
                if self._running and self._loop is not None:
                    c.task = self._loop.create_task(self._pump(c), name=f"pump-{c.name}")
            elif c.config != cc:
                if c.config.account_tps != cc.account_tps:
                    c.account = account_bucket(cc.account_tps, now)
                if c.config.tps != cc.tps:
                    for b in c.binds:
                        b.throttle = BindThrottle(cc.tps, now)
                c.config = cc
                c.forms = IdForms(cc.message_id_form, cc.effective_receipt_id_form)
        wanted = set(binds)
        for bind in list(self._binds):
            if bind not in wanted:
                del self._binds[bind]
                c = self._carriers[bind.carrier]
                c.binds = [b for b in c.binds if b.bind is not bind]
        for bind in binds:
            if bind in self._binds:
                continue
            c = self._carriers[bind.carrier]
            state = _Bind(bind, BindThrottle(c.config.tps, now))
            c.binds.append(state)
            self._binds[bind] = state
            bind.listener = self
        for c in self._carriers.values():
            c.scanned_up = None
            c.wake.set()

    # -- what the API and the health page use -------------------------------------------------

    def enqueue(self, messages: Sequence[NewMessage], begun: Collection[str] = ()) -> None:
        """Messages the store has just committed. Held in memory when there is room and no
        older backlog; otherwise left in the store, where paging finds them.

        ``begun``: the ids ``reserve`` gave for these messages, committed begun
        (``MessageIntake.accept(begun=...)``). Their submit_sm are built and sent in this call, as
        far as windows and tokens allow (the rest wait first in line, staged)."""
        if self._stopping:
            if begun:
                self._begun_not_sent(messages, begun)
            return
        now = self._clock()
        woken: set[str] = set()
        sending: dict[str, _Carrier] = {}
        for new in messages:
            early = bool(begun) and new.id in begun
            if new.id in self._known:
                if early:  # loaded by a page already (a race with paging): sent from there
                    self._carriers[new.carrier].reserved -= new.parts
                continue
            in_order = self._cursor is not None and new.id <= self._cursor
            if (
                not early
                and not in_order
                and (self._backlog or self._parts_in_memory >= self._max_parts)
            ):
                # Not ours to hold: paging will find it (after the cursor).
                if not self._backlog:
                    self._backlog = True
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
            carrier = self._admit(m, now, new.parts)
            if carrier is not None:
                woken.add(carrier)
        for c in sending.values():
            self._send_now(c)
        for name in woken:
            self._carriers[name].wake.set()
        self._maybe_refill()

    def reserve(self, messages: Sequence[NewMessage]) -> set[str]:
        """Called just before ``messages`` are committed: the ids of those that can leave at
        once, to be begun in the accept transaction (``MessageIntake.accept(begun=...)``), which
        takes the begin_attempts commit off their way to the wire.

        A message qualifies when it is due (not scheduled later, not expired), its carrier
        has nothing queued ahead of it, and a bound bind has window room and tokens for all
        its parts beyond those already staged or promised; in a batch, the first message
        that does not fit ends the promises for its carrier (FIFO), and one call promises at
        most ``MAX_BATCH_PARTS`` parts (the pump's bound on one turn). Every id returned must
        come back through ``enqueue(begun=...)`` after the commit, or ``release()`` when the
        commit failed. What a crash can flag as possibly duplicated stays within the
        windows: only parts with window room are promised."""
        loop = self._loop
        if (
            not self._running
            or self._stopping
            or loop is None
            or self._backlog
            or self._parts_in_memory >= self._max_parts
        ):
            return set()
        now = self._clock()
        mono = loop.time()
        rooms: dict[str, int] = {}
        out: set[str] = set()
        budget = MAX_BATCH_PARTS  # enqueue builds and sends them in one turn: bound its work
        for new in messages:
            c = self._carriers.get(new.carrier)
            if new.parts > budget:
                break
            if c is None:
                continue
            if (new.scheduled_at is not None and new.scheduled_at > now) or (
                new.validity_until is not None and new.validity_until <= now
            ):
                continue
            room = rooms.get(c.name)
            if room is None:
                room = self._room_now(c, mono)
            if new.parts > room:
                rooms[c.name] = 0
                continue
            rooms[c.name] = room - new.parts
            budget -= new.parts
            c.reserved += new.parts
            out.add(new.id)
        return out

    def release(self, messages: Sequence[NewMessage], reserved: Collection[str]) -> None:
        """The commit of messages ``reserve`` promised room to failed: free the room."""
        for new in messages:
            if new.id in reserved:
                c = self._carriers.get(new.carrier)
                if c is not None:
                    c.reserved -= new.parts

    def _room_now(self, c: _Carrier, mono: float) -> int:
        """Parts ``c`` could put on the wire now beyond those staged, staging or promised:
        0 when anything waits in its ready queue (it goes first)."""
        if c.ready:
            return 0
        room = 0
        for b in c.binds:
            bind = b.bind
            if is_live(bind):
                room += min(bind.window_free, b.throttle.available(mono))
        room = min(room, c.config.window * len(c.binds) - c.unconfirmed)
        if c.account is not None:
            room = min(room, c.account.available(mono))
        return room - len(c.staged) - c.staging - c.reserved

    def _admit_begun(self, m: OutboundMessage, now: float, count: int) -> _Carrier | None:
        """Take a message begun at acceptance: its submit_sm join ``staged`` at once (behind
        the parts begun before it). Returns its carrier, or None when it failed here."""
        c = self._carriers[m.carrier]
        c.reserved -= count
        self._order += 1
        msg = _Msg(m, self._rng.getrandbits(16), self._order, count)
        self._known[m.id] = msg
        msg.open_parts = count
        self._parts_in_memory += count
        parts = list(range(1, count + 1))
        error = self._prepare(msg, c.config)
        if error is not None:
            self._finish_job(_Job(msg, parts, 1, False), MessageStatus.FAILED, now, error)
            return None
        c.staged.extend((_Sent(msg, part, 1, False), self._build(msg, part)) for part in parts)
        self.stats.begun_at_accept += count
        return c

    def _send_now(self, c: _Carrier) -> None:
        """Send what ``c`` has staged, in this turn, then let its pump look again (it arms the
        timers and handles a carrier whose binds went down)."""
        loop = self._loop
        live = [b for b in c.binds if is_live(b.bind)]
        if live and loop is not None:
            self._send_staged(c, live, self._clock(), loop.time(), None)
        c.wake.set()

    def _begun_not_sent(self, messages: Sequence[NewMessage], begun: Collection[str]) -> None:
        """Messages begun at acceptance arrive while stopping: a QUEUED outcome sets them
        back (while the outcome writer still runs; else the next start flags them)."""
        self.release(messages, begun)  # their promised room is not taken
        if self._writer_closing:
            return
        now = self._clock()
        for new in messages:
            if new.id not in begun:
                continue
            for part in range(1, new.parts + 1):
                self._outcome(
                    SubmitOutcome(
                        message_id=new.id,
                        part=part,
                        carrier=new.carrier,
                        status=MessageStatus.QUEUED,
                        at=now,
                        error="not sent: stopping",
                    )
                )

    # -- cancel_sm and replace_sm (the SMPP front) -----------------------------------------

    def withdraw(self, message_id: str) -> bool:
        """Hold a message back while the front cancels or replaces it in the store; every
        True must be followed by ``settle``. True when none of its parts can leave until
        then: it was not in memory (paging will not take it meanwhile), or every part still
        open was waiting in a queue (now taken out). False when a part is staged, being
        begun or on the wire (too late), or another edit of it is under way."""
        if message_id in self._withdrawn:
            return False
        msg = self._known.get(message_id)
        held = _Withdrawn(msg)
        if msg is not None:
            queued = 0
            for c in self._carriers.values():
                for ready in c.ready:
                    if ready[3].msg is msg:
                        held.jobs.append((c, ready[3], None))
                        queued += len(ready[3].parts)
                for delayed in c.delayed:
                    if delayed[2].msg is msg:
                        held.jobs.append((c, delayed[2], delayed[0]))
                        queued += len(delayed[2].parts)
            if queued < msg.open_parts:
                return False
            for c in {id(c): c for c, _, _ in held.jobs}.values():
                c.ready = [e for e in c.ready if e[3].msg is not msg]
                heapq.heapify(c.ready)
                c.delayed = [e for e in c.delayed if e[2].msg is not msg]
                heapq.heapify(c.delayed)
            for c, job, _ in held.jobs:
                c.queued_parts -= len(job.parts)
        self._withdrawn[message_id] = held
        return True

    def settle(
        self, message_id: str, *, removed: bool, replacement: Replacement | None = None
    ) -> None:
        """The store's answer for a withdrawn message. ``removed`` False (the store refused
        or failed): it goes back as it was. True: cancelled, or replaced by
        ``replacement``, which is queued in its place."""
        held = self._withdrawn.pop(message_id, None)
        if held is None:
            return
        now = self._clock()
        if not removed:
            for c, job, due in held.jobs:
                if due is None:
                    self._push_ready(c, job)
                else:
                    self._push_delayed(c, job, due)
                c.wake.set()
            if held.paged is not None and message_id not in self._known:
                carrier = self._admit(held.paged, now)
                if carrier is not None:
                    self._carriers[carrier].wake.set()
            return
        base: OutboundMessage | None = held.paged
        if held.msg is not None:
            base = held.msg.m
            self._parts_in_memory -= held.msg.open_parts
            held.msg.open_parts = 0
            self._known.pop(message_id, None)
        if replacement is None or base is None or self._stopping:
            return  # cancelled; or replaced while not in memory: paging loads the new text
        m = dataclasses.replace(
            base,
            text=replacement.text,
            encoding=replacement.encoding,
            scheduled_at=replacement.scheduled_at,
            validity_until=replacement.validity_until,
            pending_parts=None,
        )
        carrier = self._admit(m, now, replacement.parts)
        if carrier is not None:
            self._carriers[carrier].wake.set()

    def carriers_up(self) -> set[str]:
        """Carriers with at least one bound bind."""
        return {b.bind.carrier for b in self._binds.values() if is_live(b.bind)}

    def queue_depth(self) -> dict[str, int]:
        """Parts waiting per carrier (ready, scheduled and retrying; not in flight)."""
        return {name: c.queued_parts for name, c in self._carriers.items()}

    @property
    def in_flight(self) -> int:
        """submit_sm sent and not yet answered."""
        return self._in_flight

    @property
    def parts_in_memory(self) -> int:
        return self._parts_in_memory

    def bind_rate(self, bind: CarrierBind) -> float | None:
        """The bind's effective TPS now (None: unlimited), adaptive cuts included."""
        return self._binds[bind].throttle.effective_rate

    # -- admission -----------------------------------------------------------------------------

    def _admit(self, m: OutboundMessage, now: float, expected: int | None = None) -> str | None:
        """Take a message into memory; the carrier whose queue it joined, or None when it
        failed at once. ``expected``: the part count intake stored, when known.

        Cheap on purpose (enqueue() runs in the API's request): the text is split and the
        addresses worked out when the pump takes the parts (``_prepare``), a batch at a time.
        """
        carrier = self._carriers.get(m.carrier)
        if carrier is None:  # a carrier removed from the configuration since intake
            m.carrier = self._router.pick(m.to, self.carriers_up())
            carrier = self._carriers[m.carrier]
        self._order += 1
        msg = _Msg(m, self._rng.getrandbits(16), self._order, expected)
        if m.pending_parts is not None:
            parts = sorted(set(m.pending_parts))
        elif expected is not None:
            parts = list(range(1, expected + 1))
        else:  # neither the store nor intake said: the split does
            error = self._prepare(msg, carrier.config)
            parts = [1] if msg.split is None else list(range(1, len(msg.split.parts) + 1))
            if error is not None:
                self._known[m.id] = msg
                msg.open_parts = len(parts)
                self._parts_in_memory += len(parts)
                self._finish_job(
                    _Job(msg, parts, m.attempts, False), MessageStatus.FAILED, now, error
                )
                return None
        if not parts:
            return None
        self._known[m.id] = msg
        msg.open_parts = len(parts)
        self._parts_in_memory += len(parts)
        job = _Job(msg, parts, m.attempts, m.possible_duplicate)
        due = m.scheduled_at
        if due is not None and due > now:
            self._push_delayed(carrier, job, due)
        else:
            carrier = self._queue_for(carrier, msg)
            self._push_ready(carrier, job)
        return carrier.name

    def _prepare(self, msg: _Msg, carrier: CarrierConfig) -> str | None:
        """Split the text and work out the addresses for ``carrier``; an error text if the
        message cannot be sent there (and ``msg`` is left as it was)."""
        m = msg.m
        try:
            split = split_message(
                m.text,
                _ENCODINGS.get(m.encoding),
                concat=_CONCAT[carrier.concat],
                ref=msg.ref,
                packed=carrier.gsm7_packed,
                allow_latin1=carrier.latin1,
            )
        except TextEncodingError as exc:
            return f"cannot encode: {exc}"
        total = len(split.parts)
        if msg.total is not None and msg.total != total:
            # Intake split with other settings than this carrier's: the store has rows for
            # ``msg.total`` parts, and parts it does not know could never be correlated.
            # Fail the message visibly rather than send something nobody can track.
            log_event(
                log,
                "dispatch.parts_mismatch",
                logging.WARNING,
                message=m.id,
                carrier=carrier.name,
                stored=msg.total,
                split=total,
            )
            return f"intake counted {msg.total} parts, carrier {carrier.name} splits into {total}"
        if m.pending_parts and max(m.pending_parts) > total:
            return f"part {max(m.pending_parts)} of a {total}-part message"
        key = (m.sender, carrier.name)
        source = self._sources.get(key)
        if source is None:
            # Few senders per carrier: worked out once (reconfigure() forgets them).
            if len(self._sources) >= _SOURCE_CACHE_SIZE:
                self._sources.clear()
            ton, npi, addr = source_address(m.sender, carrier)
            source = self._sources[key] = (ton, npi, addr, _valid_address(addr))
        src_ton, src_npi, src, src_ok = source
        dst = m.to[1:] if m.to.startswith("+") else m.to
        if not src_ok:
            return f"invalid sender {m.sender!r}"
        if not _valid_address(dst):
            return f"invalid destination {m.to!r}"
        msg.split = split
        msg.carrier = carrier.name
        msg.addr = (src_ton, src_npi, src, carrier.dest_ton, carrier.dest_npi, dst)
        return None

    def _push_ready(self, carrier: _Carrier, job: _Job) -> None:
        self._tie += 1
        heapq.heappush(carrier.ready, (-job.msg.m.priority, job.msg.order, self._tie, job))
        carrier.queued_parts += len(job.parts)

    def _push_delayed(self, carrier: _Carrier, job: _Job, due: float) -> None:
        validity = job.msg.m.validity_until
        if validity is not None and validity < due:
            due = validity  # it fails then, not later
        self._tie += 1
        heapq.heappush(carrier.delayed, (due, self._tie, job))
        carrier.queued_parts += len(job.parts)

    def _requeue(self, job: _Job, due: float | None, now: float) -> None:
        carrier = self._carriers[job.msg.m.carrier]
        if due is not None and due > now:
            self._push_delayed(carrier, job, due)
        else:
            carrier = self._queue_for(carrier, job.msg)
            self._push_ready(carrier, job)
        carrier.wake.set()

    # -- paging from the store ---------------------------------------------------------------

    def _maybe_refill(self) -> None:
        if (
            self._backlog
            and self._running
            and self._refill_task is None
            and not self._loading_at_start
            and self._parts_in_memory < self._max_parts // 2
        ):
            loop = asyncio.get_running_loop()
            self._refill_task = loop.create_task(self._refill_guarded(), name="refill")

    async def _refill_guarded(self) -> None:
        try:
            await self._refill()
        finally:
            self._refill_task = None

    async def _refill(self, raise_errors: bool = False) -> None:
        """Load pending messages after the cursor until memory is full or the store has no
        more."""
        while self._backlog and self._parts_in_memory < self._max_parts and not self._stopping:
            self._admitted_while_loading.clear()
            self._skipped_while_loading = False
            self._refilling = True
            try:
                page = await self._store.load_pending(self._cursor, self._load_page)
            except Exception as exc:
                if raise_errors:
                    raise
                self.stats.store_errors += 1
                log_event(log, "dispatch.load_failed", logging.WARNING, error=repr(exc))
                if self._running:
                    self._refill_retry = asyncio.get_running_loop().call_later(
                        STORE_RETRY_SECONDS, self._maybe_refill
                    )
                return
            finally:
                self._refilling = False
            now = self._clock()
            woken: set[str] = set()
            for m in page:
                if self._cursor is None or m.id > self._cursor:
                    self._cursor = m.id
                if m.id in self._known or m.id in self._admitted_while_loading:
                    continue
                held = self._withdrawn.get(m.id)
                if held is not None:  # being edited: settle() decides what becomes of it
                    held.paged = m
                    continue
                carrier = self._admit(m, now)
                if carrier is not None:
                    woken.add(carrier)
            for name in woken:
                self._carriers[name].wake.set()
            if len(page) < self._load_page and not self._skipped_while_loading:
                self._backlog = False
        self._admitted_while_loading.clear()

    # -- the pump ------------------------------------------------------------------------------

    async def _pump(self, carrier: _Carrier) -> None:
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

    def _pump_once(self, c: _Carrier) -> float | None:
        """Send staged parts the windows and tokens allow, and stage more. Returns 0.0 to go
        again at once, the seconds until something may be sent, or None to wait for an event
        (a response, a staged batch, a bind coming up)."""
        now = self._clock()
        wait = self._promote(c, now)
        live = [b for b in c.binds if is_live(b.bind)]
        if not live:
            if c.staged:
                self._unstage(c, now, "no bind up", requeue=True)
            if c.ready:
                up = frozenset(self.carriers_up())
                if up and up != c.scanned_up:  # a full scan only when the picture changed
                    c.scanned_up = up
                    self._failover(c, up)
                wait = _earliest_opt(wait, self._expire_ready(c, now))
            return wait
        c.scanned_up = None
        assert self._loop is not None
        mono = self._loop.time()
        if c.staged:
            wait = self._send_staged(c, live, now, mono, wait)
        if c.ready and c.batches < MAX_CONCURRENT_BATCHES:
            room = self._stage_target(c, live, mono) - len(c.staged) - c.staging
            if room > 0:
                taken = self._take(c, min(room, MAX_BATCH_PARTS), now)
                if taken:
                    self._stage(c, taken)
                elif c.ready:
                    return 0.0  # the head had expired; look again
        return wait

    def _send_staged(
        self, c: _Carrier, live: list[_Bind], now: float, mono: float, wait: float | None
    ) -> float | None:
        """Submit staged parts over the binds with window room and tokens, round robin."""
        staged = c.staged
        budget = UNLIMITED
        account = c.account
        if account is not None:
            budget = account.available(mono)
            if budget <= 0:
                return _earliest(wait, account.time_until_available(mono))
        # Sent parts whose outcome is not durable yet count against the windows too: a
        # response frees its window slot at once, but until its outcome is committed a crash
        # would send that part again.
        budget = min(budget, c.config.window * len(c.binds) - c.unconfirmed)
        if budget <= 0:
            return wait  # the outcome writer's commit wakes the pump
        n_live = len(live)
        c.rr = (c.rr + 1) % n_live
        sent_total = 0
        send_validity = c.config.send_validity
        for k in range(n_live):
            if not staged or budget <= 0:
                break
            b = live[(c.rr + k) % n_live]
            bind = b.bind
            free = bind.window_free
            if free <= 0:
                conn = bind.conn
                if conn is not None and not conn.writable:
                    wait = _earliest(wait, WRITE_BLOCKED_RECHECK_SECONDS)
                continue
            tokens = b.throttle.available(mono)
            if tokens <= 0:
                wait = _earliest(wait, b.throttle.time_until_available(mono))
                continue
            n = min(free, tokens, budget)
            sent = 0
            submit = bind.submit
            while sent < n and staged:
                s, pdu = staged.popleft()
                validity = s.msg.m.validity_until
                if validity is not None:
                    if validity <= now:
                        self._expired(s, now)
                        continue
                    if send_validity:  # what is left now, not what the client asked
                        pdu.validity_period = relative_time(int(validity - now))
                if self._stops and self._stopped_for(s.msg.m):
                    self._opted_out(s, c.name, now)
                    continue
                try:
                    submit(pdu, s)
                except EncodeError as exc:
                    # The PDU itself is bad (we check what we build, so this is a bug):
                    # retrying cannot help. The session keeps no trace of it; ``void``
                    # guards against any event that might still name it.
                    s.void = True
                    self._give_up(s, c.name, now, f"cannot encode submit_sm: {exc}")
                    continue
                except (RuntimeError, SmppError):
                    staged.appendleft((s, pdu))
                    break
                sent += 1
            if sent:
                b.throttle.take(sent, mono)
                budget -= sent
                sent_total += sent
        if sent_total:
            self._in_flight += sent_total
            c.unconfirmed += sent_total
            if account is not None:
                account.take(sent_total, mono)
            if staged and budget > 0:
                # Tokens or windows ran out with parts left: say when tokens come back
                # (window room comes with a response, which wakes the pump).
                for b in live:
                    if b.bind.window_free > 0:
                        wait = _earliest(wait, b.throttle.time_until_available(mono))
        return wait

    def _stage_target(self, c: _Carrier, live: list[_Bind], mono: float) -> int:
        """How many parts to hold begun (staged, or being begun): only what the windows can
        take soon. Every begun part counts against the live binds' windows until its outcome
        is committed (on the wire, answered and not yet committed, promised to an accept, or
        staged), so what a crash finds 'submitting', and flags possibly duplicated, stays
        within window x binds. With a rate limit, also no more than ``STAGE_SECONDS`` of
        traffic at that rate (the rest could not leave soon anyway)."""
        free = c.config.window * len(live) - c.unconfirmed - c.reserved
        rates = [b.throttle.effective_rate for b in live]
        rate: float | None = None
        if None not in rates:
            rate = sum(r for r in rates if r is not None)
        if c.account is not None:
            rate = c.account.rate if rate is None else min(rate, c.account.rate)
        if rate is not None:
            free = min(free, max(1, int(rate * STAGE_SECONDS)))
        return min(MAX_STAGED_PARTS, free)

    def _promote(self, c: _Carrier, now: float) -> float | None:
        """Move due delayed jobs to ready; seconds until the next one is due (or None)."""
        delayed = c.delayed
        while delayed and delayed[0][0] <= now:
            _, _, job = heapq.heappop(delayed)
            c.queued_parts -= len(job.parts)
            target = self._queue_for(c, job.msg)
            self._push_ready(target, job)
            if target is not c:
                target.wake.set()
        if delayed:
            return max(delayed[0][0] - now, 0.001)
        return None

    def _expire_ready(self, c: _Carrier, now: float) -> float | None:
        """Fail the ready jobs past their validity (a carrier that is down has no pump turns
        to notice); seconds until the next validity ends, or None."""
        keep: list[tuple[int, int, int, _Job]] = []
        nearest: float | None = None
        for entry in c.ready:
            job = entry[3]
            validity = job.msg.m.validity_until
            if validity is None:
                keep.append(entry)
            elif validity <= now:
                c.queued_parts -= len(job.parts)
                self.stats.expired += len(job.parts)
                self._finish_job(job, MessageStatus.FAILED, now, "validity expired")
            else:
                keep.append(entry)
                nearest = _earliest(nearest, validity - now)
        if len(keep) != len(c.ready):
            heapq.heapify(keep)
            c.ready = keep
        return nearest

    def _take(self, c: _Carrier, count: int, now: float) -> list[tuple[_Job, int]]:
        """Up to ``count`` parts from the head of the ready heap, failing expired messages."""
        out: list[tuple[_Job, int]] = []
        ready = c.ready
        name = c.config.name
        while ready and len(out) < count:
            job = ready[0][3]
            m = job.msg.m
            if m.validity_until is not None and m.validity_until <= now:
                heapq.heappop(ready)
                c.queued_parts -= len(job.parts)
                self.stats.expired += len(job.parts)
                self._finish_job(job, MessageStatus.FAILED, now, "validity expired")
                continue
            if job.msg.carrier != name:
                error = self._prepare(job.msg, c.config)
                if error is not None:
                    heapq.heappop(ready)
                    c.queued_parts -= len(job.parts)
                    self._finish_job(job, MessageStatus.FAILED, now, error)
                    continue
            room = count - len(out)
            if len(job.parts) <= room:
                heapq.heappop(ready)
                parts = job.parts
            else:
                parts, job.parts = job.parts[:room], job.parts[room:]
                job = _Job(job.msg, parts, job.attempts, job.dup)
            c.queued_parts -= len(parts)
            if len(parts) == 1:
                out.append((job, parts[0]))
            else:
                out.extend((job, p) for p in parts)
        return out

    def _stage(self, c: _Carrier, taken: list[tuple[_Job, int]]) -> None:
        """Build the submit_sm of ``taken`` parts and begin their attempts in one store call;
        they join ``staged`` when it returns."""
        items = [
            (_Sent(job.msg, part, job.attempts + 1, job.dup), self._build(job.msg, part))
            for job, part in taken
        ]
        c.batches += 1
        c.staging += len(items)
        assert self._loop is not None
        task = self._loop.create_task(self._begin(c, items))
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)

    def _build(self, msg: _Msg, part: int) -> SubmitSm:
        split = msg.split
        assert split is not None
        p = split.parts[part - 1]
        src_ton, src_npi, src, dst_ton, dst_npi, dst = msg.addr
        carrier = self._carriers[msg.carrier].config
        tlvs: tuple[tuple[int, bytes], ...] = ()
        short_message = p.short_message
        if split.concat is ConcatMethod.PAYLOAD:
            tlvs = ((Tag.MESSAGE_PAYLOAD, short_message),)
            short_message = b""
        elif p.sar is not None:
            ref, total, seq = p.sar
            tlvs = (
                tlv_u16(Tag.SAR_MSG_REF_NUM, ref),
                tlv_u8(Tag.SAR_TOTAL_SEGMENTS, total),
                tlv_u8(Tag.SAR_SEGMENT_SEQNUM, seq),
            )
        return SubmitSm(
            source_addr_ton=src_ton,
            source_addr_npi=src_npi,
            source_addr=src,
            dest_addr_ton=dst_ton,
            dest_addr_npi=dst_npi,
            destination_addr=dst,
            esm_class=EsmClass.UDHI if p.esm_class_udhi else 0,
            registered_delivery=carrier.registered_delivery if msg.m.registered_delivery else 0,
            priority_flag=_priority_flag(carrier.priority_flag, msg.m.priority),
            data_coding=split.data_coding,
            short_message=short_message,
            tlvs=tlvs,
        )

    async def _begin(self, c: _Carrier, items: list[tuple[_Sent, SubmitSm]]) -> None:
        count = len(items)  # ``staging`` took them all; the refused leave ``items`` below
        try:
            refused = await self._store.begin_attempts([(s.msg.m.id, s.part) for s, _ in items])
        except StoreUnavailable:
            # Short of space: the store logs its state and counts refusals; the parts wait.
            self.stats.begin_refused += len(items)
            retry_at = self._clock() + STORE_RETRY_SECONDS
            for s, _ in items:
                self._unsent(s, retry_at)
        except Exception as exc:
            self.stats.store_errors += 1
            log_event(
                log,
                "dispatch.begin_failed",
                logging.WARNING,
                carrier=c.name,
                parts=len(items),
                error=repr(exc),
            )
            retry_at = self._clock() + STORE_RETRY_SECONDS
            for s, _ in items:
                self._unsent(s, retry_at)
        else:
            if refused:  # the recipient opted out after the message was accepted
                now = self._clock()
                for s, _ in items:
                    if s.msg.m.id in refused:
                        self._opted_out(s, c.name, now)
                items = [item for item in items if item[0].msg.m.id not in refused]
            c.staged.extend(items)
        finally:
            c.batches -= 1
            c.staging -= count
            c.wake.set()

    def _unstage(self, c: _Carrier, now: float, reason: str, *, requeue: bool) -> None:
        """Staged parts that will not leave (no bind, stopping): their attempt was begun in
        the store, so a QUEUED outcome sets them back (and keeps a crash from flagging them
        possibly duplicated); in memory they go back to the ready queue."""
        staged, c.staged = c.staged, deque()
        for s, _ in staged:
            self._outcome(
                SubmitOutcome(
                    message_id=s.msg.m.id,
                    part=s.part,
                    carrier=c.name,
                    status=MessageStatus.QUEUED,
                    at=now,
                    error=f"not sent: {reason}",
                    possible_duplicate=s.dup,
                )
            )
            if requeue:
                self._unsent(s, None)
            else:
                self._part_done(s.msg, 1)

    def opt_out(self, number: str, sender: str | None) -> None:
        """``number`` just opted out (from ``sender``, or from every sender when None), and
        the store has it. The store refuses to begin parts for it from now on; this stops
        the parts whose attempt was begun already and that wait for the wire, so nothing
        accepted before the opt-out leaves after it but what was on the wire already.
        Messages accepted after it (a STOP's own confirmation) are not touched."""
        now = self._clock()
        self._stops[(number, sender or "*")] = now
        for key, at in list(self._stops.items()):
            if at + _STOP_MEMORY < now:
                del self._stops[key]

    def _opted_out(self, s: _Sent, carrier: str, now: float) -> None:
        self.stats.opted_out += 1
        self._give_up(s, carrier, now, "opted out after acceptance")

    def _stopped_for(self, m: OutboundMessage) -> bool:
        stops = self._stops
        at = stops.get((m.to, m.sender))
        if at is not None and m.created_at <= at:
            return True
        at = stops.get((m.to, "*"))
        return at is not None and m.created_at <= at

    def _expired(self, s: _Sent, now: float) -> None:
        self.stats.expired += 1
        self._give_up(s, s.msg.m.carrier, now, "validity expired")

    def _give_up(self, s: _Sent, carrier: str, now: float, error: str) -> None:
        self.stats.failed += 1
        self._outcome(
            SubmitOutcome(
                message_id=s.msg.m.id,
                part=s.part,
                carrier=carrier,
                status=MessageStatus.FAILED,
                at=now,
                error=error,
                possible_duplicate=s.dup,
            )
        )
        self._part_done(s.msg, 1)

    def _unsent(self, sent: _Sent, due: float | None) -> None:
        """A part that never left: back to the queue with its attempt count unchanged."""
        job = _Job(sent.msg, [sent.part], sent.attempt - 1, sent.dup)
        self._requeue(job, due, self._clock())

    def _failover(self, c: _Carrier, up: frozenset[str]) -> None:
        """No bind of ``c`` is bound: move ready messages whose route has a carrier up."""
        keep: list[tuple[int, int, int, _Job]] = []
        moved: set[str] = set()
        for entry in c.ready:
            job = entry[3]
            target = self._move_target(c, job.msg, up)
            if target is None:
                keep.append(entry)
                continue
            c.queued_parts -= len(job.parts)
            self._push_ready(target, job)
            moved.add(target.name)
        if moved:
            heapq.heapify(keep)
            c.ready = keep
            for name in moved:
                self._carriers[name].wake.set()

    def _move_target(self, c: _Carrier, msg: _Msg, up: Container[str]) -> _Carrier | None:
        """Where a message queued for ``c`` (which has no bind up) should go instead, or None
        to stay. Moves it (its carrier, split and addresses) when the answer is not None."""
        target = self._router.pick(msg.m.to, up)
        if target == c.name or target not in up or not self._can_move(msg, target):
            return None
        msg.m.carrier = target
        self.stats.moved += 1
        return self._carriers[target]

    def _queue_for(self, c: _Carrier, msg: _Msg) -> _Carrier:
        """The queue a job of ``msg`` should join: ``c``, unless ``c`` has no bind up and the
        message's route has a carrier that is up (failover, one message at a time)."""
        for b in c.binds:  # per message at enqueue: a plain loop, no generator
            if is_live(b.bind):
                return c
        up = self.carriers_up()
        if not up:
            return c
        return self._move_target(c, msg, up) or c

    def _can_move(self, msg: _Msg, target: str) -> bool:
        """A message may move only if it splits into as many parts there: the store holds one
        row per part, numbered at intake."""
        probe = _Msg(msg.m, msg.ref, msg.order, msg.total)
        if msg.total is None and msg.split is not None:
            probe.total = len(msg.split.parts)
        if self._prepare(probe, self._carriers[target].config) is not None:
            return False
        msg.split, msg.addr, msg.carrier = probe.split, probe.addr, probe.carrier
        return True

    # -- BindListener --------------------------------------------------------------------------

    def bind_up(self, bind: CarrierBind) -> None:
        # Every pump looks again: this carrier can send, and a carrier that is down may now
        # fail over to this one.
        for c in self._carriers.values():
            c.wake.set()

    def bind_down(self, bind: CarrierBind, lost: list[RequestTimedOut]) -> None:
        now = self._clock()
        for event in lost:
            sent = event.context
            if isinstance(sent, _Sent) and not sent.void:
                self._in_flight -= 1
                self._carriers[bind.carrier].unconfirmed -= 1
                self.stats.lost_on_link_down += 1
                # The link failed, not the message: retry at once (another bind, another
                # carrier), but count the attempt so a message that kills links runs out.
                self._failed(sent, TIMEOUT, now, bind.carrier, immediate=True)
        self._after_answer()
        for c in self._carriers.values():
            c.wake.set()

    def response(self, bind: CarrierBind, event: ResponseReceived) -> None:
        sent = event.context
        if not isinstance(sent, _Sent) or sent.void:
            return
        self._in_flight -= 1
        b = self._binds.get(bind)
        resp = event.response
        status = resp.command_status
        carrier = self._carriers[bind.carrier]
        if resp.command_id == _GENERIC_NACK_ID or status != _ROK:
            carrier.unconfirmed -= 1  # an accepted part stays unconfirmed until committed
        if resp.command_id == _GENERIC_NACK_ID:
            self._failed(sent, GENERIC_NACK, self._clock(), bind.carrier, command_status=status)
        elif status == _ROK:
            raw = getattr(resp, "message_id", "") or ""
            self._submitted(sent, carrier, raw)
            if b is not None and b.throttle.cap is not None and self._loop is not None:
                b.throttle.succeeded(self._loop.time())
        else:
            if status in THROTTLE_STATUSES:
                self.stats.throttled += 1
                if b is not None and self._loop is not None:
                    b.throttle.throttled(self._loop.time(), event.sent_at)
            self._failed(sent, status, self._clock(), bind.carrier, command_status=status)
        self._after_answer()
        carrier.wake.set()

    def timeout(self, bind: CarrierBind, event: RequestTimedOut) -> None:
        sent = event.context
        if not isinstance(sent, _Sent) or sent.void:
            return
        self._in_flight -= 1
        self._carriers[bind.carrier].unconfirmed -= 1
        self.stats.timeouts += 1
        self._failed(sent, TIMEOUT, self._clock(), bind.carrier)
        self._after_answer()
        self._carriers[bind.carrier].wake.set()

    def request(self, bind: CarrierBind, pdu: Pdu) -> None:
        self.receipts.handle(bind, pdu)

    # -- outcomes ------------------------------------------------------------------------------

    def _after_answer(self) -> None:
        if self._in_flight <= 0 and self._stopping:
            self._idle.set()

    def _submitted(self, sent: _Sent, carrier: _Carrier, raw_id: str) -> None:
        msg = sent.msg
        self.stats.submitted += 1
        forms = carrier.forms
        key = forms.response_key(raw_id) if raw_id else None
        self._outcome(
            SubmitOutcome(
                message_id=msg.m.id,
                part=sent.part,
                carrier=carrier.name,
                status=MessageStatus.SUBMITTED,
                at=self._clock(),
                carrier_message_id=raw_id,
                receipt_key=key,
                command_status=_ROK,
                possible_duplicate=sent.dup,
                alt_keys=forms.response_alt_keys(key) if key and forms.auto else (),
            )
        )
        self._part_done(msg, 1)

    def _failed(
        self,
        sent: _Sent,
        key: RetryKey,
        now: float,
        carrier: str,
        *,
        command_status: int | None = None,
        immediate: bool = False,
    ) -> None:
        decision: Decision = self.policy.decide(key, sent.attempt)
        msg = sent.msg
        dup = sent.dup or key == TIMEOUT
        if decision.verdict is Verdict.RETRY:
            self.stats.retried += 1
            retry_at = now if immediate else now + decision.delay
            self._outcome(
                SubmitOutcome(
                    message_id=msg.m.id,
                    part=sent.part,
                    carrier=carrier,
                    status=MessageStatus.QUEUED,
                    at=now,
                    command_status=command_status,
                    error=decision.error,
                    retry_at=retry_at,
                    possible_duplicate=dup,
                )
            )
            if not self._stopping:
                self._requeue(_Job(msg, [sent.part], sent.attempt, dup), retry_at, now)
            else:
                self._part_done(msg, 1)  # the store has it queued for the next start
            return
        if decision.verdict is Verdict.REJECT:
            self.stats.rejected += 1
        else:
            self.stats.failed += 1
        self._outcome(
            SubmitOutcome(
                message_id=msg.m.id,
                part=sent.part,
                carrier=carrier,
                status=decision.status,
                at=now,
                command_status=command_status,
                error=decision.error,
                possible_duplicate=dup,
            )
        )
        self._part_done(msg, 1)

    def _finish_job(self, job: _Job, status: MessageStatus, now: float, error: str) -> None:
        """Every part of ``job`` ends here without being sent (expired, unencodable)."""
        if status is MessageStatus.FAILED:
            self.stats.failed += len(job.parts)
        m = job.msg.m
        for part in job.parts:
            self._outcome(
                SubmitOutcome(
                    message_id=m.id,
                    part=part,
                    carrier=m.carrier,
                    status=status,
                    at=now,
                    error=error,
                    possible_duplicate=job.dup,
                )
            )
        self._part_done(job.msg, len(job.parts))

    def _part_done(self, msg: _Msg, n: int) -> None:
        msg.open_parts -= n
        self._parts_in_memory -= n
        if msg.open_parts <= 0:
            self._known.pop(msg.m.id, None)
        if self._backlog and self._refill_task is None:
            self._maybe_refill()

    def _outcome(self, outcome: SubmitOutcome) -> None:
        self._outcomes.append(outcome)
        if len(self._outcomes) == 1:
            self._outcomes_ready.set()

    async def _write_outcomes_loop(self) -> None:
        while True:
            await self._outcomes_ready.wait()
            if len(self._outcomes) < OUTCOME_BATCH_TARGET and not self._writer_closing:
                await asyncio.sleep(OUTCOME_LINGER_SECONDS)
            self._outcomes_ready.clear()
            batch, self._outcomes = self._outcomes, []
            if batch:
                await self._write_outcomes(batch)
            if self._writer_closing and not self._outcomes:
                return

    async def _write_outcomes(self, batch: list[SubmitOutcome]) -> None:
        """One record_outcomes call; on failure keep the batch and try again (outcomes are
        the only record of what the carrier said)."""
        while True:
            try:
                changes = await self._store.record_outcomes(batch)
            except Exception as exc:
                self.stats.store_errors += 1
                log_event(
                    log,
                    "dispatch.outcomes_failed",
                    logging.WARNING,
                    outcomes=len(batch),
                    error=repr(exc),
                )
                if self._writer_closing:
                    return  # stopping: the store requeues these parts on the next start
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            self.stats.outcome_batches += 1
            self._confirmed(batch)
            if changes and self._on_changes is not None:
                self._on_changes(changes)
            return

    def _confirmed(self, batch: list[SubmitOutcome]) -> None:
        """Submitted outcomes are durable: their parts no longer count against the windows."""
        woken: set[str] = set()
        for o in batch:
            if o.status is MessageStatus.SUBMITTED and o.command_status == _ROK:
                c = self._carriers.get(o.carrier)
                if c is not None:
                    c.unconfirmed -= 1
                    woken.add(o.carrier)
        for name in woken:
            self._carriers[name].wake.set()


def _earliest(a: float | None, b: float) -> float:
    return b if a is None or b < a else a


def _earliest_opt(a: float | None, b: float | None) -> float | None:
    return a if b is None else _earliest(a, b)


__all__ = [
    "LOAD_PAGE_MESSAGES",
    "MAX_PARTS_IN_MEMORY",
    "DispatchStats",
    "Dispatcher",
    "source_address",
]
