"""What the outbound engine holds in memory: the carriers' queues, the binds, the messages.

``Queues`` is the state every part of the engine reads and changes (gateway.engine.dispatcher
wires them): one ``CarrierQueue`` per configured carrier with two heaps of jobs (a job is a
message's parts still to send): ``ready`` ordered by (priority desc, admission order), and
``delayed`` ordered by due time (scheduled messages and retries); the parts begun in the store
and waiting for the wire (``staged``); and the counts that keep what a crash could send twice
within the windows. Plain data and heap operations: no I/O, no store, no timers.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from gateway.binds import BindState, CarrierBind
from gateway.config import CarrierConfig
from gateway.core.model import OutboundMessage
from gateway.engine.throttle import BindThrottle, TokenBucket, account_bucket
from gateway.smpp.pdu import SubmitSm
from gateway.smpp.receipt import IdForms
from gateway.smpp.text import SplitResult

STORE_RETRY_SECONDS: Final = 1.0
"""Wait after a failed store call before trying again (outcomes are kept in memory, parts
are requeued): a store error is usually a busy or full disk, not worth hammering."""


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


class Msg:
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


class Job:
    """Parts of one message waiting to be sent together (same attempt count)."""

    __slots__ = ("attempts", "dup", "msg", "parts")

    def __init__(self, msg: Msg, parts: list[int], attempts: int, dup: bool) -> None:
        self.msg = msg
        self.parts = parts
        self.attempts = attempts
        """Attempts already made for these parts."""
        self.dup = dup


class Sent:
    """The context of one submit_sm in flight: it comes back with its response."""

    __slots__ = ("attempt", "dup", "msg", "part", "void")

    def __init__(self, msg: Msg, part: int, attempt: int, dup: bool) -> None:
        self.msg = msg
        self.part = part
        self.attempt = attempt
        self.dup = dup
        self.void = False
        """Failed when submit() raised: any event that still comes back for it is ignored."""


Staged = tuple[Sent, SubmitSm]
"""A part whose attempt is begun in the store, with its submit_sm built."""


class BindPace:
    """A bind the engine sends on, with its own pacing."""

    __slots__ = ("bind", "throttle")

    def __init__(self, bind: CarrierBind, throttle: BindThrottle) -> None:
        self.bind = bind
        self.throttle = throttle


@dataclass(slots=True)
class CarrierQueue:
    config: CarrierConfig
    forms: IdForms
    account: TokenBucket | None
    binds: list[BindPace] = field(default_factory=list)
    ready: list[tuple[int, int, int, Job]] = field(default_factory=list)
    delayed: list[tuple[float, int, Job]] = field(default_factory=list)
    staged: deque[Staged] = field(default_factory=deque)
    """Parts whose attempt is begun in the store, in send order, waiting for the wire."""
    staging: int = 0
    """Parts in store calls under way that begin them (begin_attempts, or the outcome
    writer's combined call)."""
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


def carrier_queue(config: CarrierConfig, account_tps: float, now: float) -> CarrierQueue:
    return CarrierQueue(
        config,
        IdForms(config.message_id_form, config.effective_receipt_id_form),
        account_bucket(account_tps, now),
    )


def is_live(bind: CarrierBind) -> bool:
    """Bound and able to send. Asks the session, not only the bind's state: when a link
    drops, the bind still says BOUND until its loop runs again (bind_down included), while
    the session is closed at once."""
    conn = bind.conn
    return conn is not None and bind.state is BindState.BOUND and conn.session.is_bound


def _nothing() -> None:
    pass


class Queues:
    """The engine's memory: carriers and their queues, the binds, the messages held, and
    the counts (parts in memory, submit_sm in flight) the whole engine keeps in step."""

    def __init__(
        self, carriers: Iterable[CarrierConfig], clock: Callable[[], float], rng: random.Random
    ) -> None:
        self.clock = clock
        """Wall clock for message times (scheduled_at, validity, outcomes)."""
        self.rng = rng
        self.stats = DispatchStats()
        now = time.monotonic()  # the buckets are made again on the loop's clock by start()
        self.carriers: dict[str, CarrierQueue] = {
            c.name: carrier_queue(c, 0, now) for c in carriers
        }
        self.binds: dict[CarrierBind, BindPace] = {}
        self.standby: set[str] = set()
        """Carriers this node holds no bind slot of (gateway.cluster): their binds wait in
        standby, and their messages are for the nodes that hold slots."""
        self.retired: set[str] = set()
        """Carriers no longer configured (a reload): their queues stay, with no bind, and
        their messages fail over by the routes; they are loaded as any sendable carrier's."""
        self.known: dict[str, Msg] = {}
        """Messages in memory by id."""
        self.parts_in_memory = 0
        self.in_flight = 0
        """submit_sm sent and not yet answered."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The running loop (set by start): its clock paces the binds."""
        self.running = False
        self.stopping = False
        self.parts_freed: Callable[[], None] = _nothing
        """Called when parts leave memory (the loader pages more in)."""
        self._order = 0
        self._tie = 0

    def new_msg(self, m: OutboundMessage, total: int | None) -> Msg:
        """A message entering memory, next in admission order, with a fresh concatenation
        reference."""
        self._order += 1
        return Msg(m, self.rng.getrandbits(16), self._order, total)

    def hold(self, msg: Msg, parts: int) -> None:
        """``msg`` is in memory with ``parts`` open."""
        self.known[msg.m.id] = msg
        msg.open_parts = parts
        self.parts_in_memory += parts

    def part_done(self, msg: Msg, n: int) -> None:
        msg.open_parts -= n
        self.parts_in_memory -= n
        if msg.open_parts <= 0:
            self.known.pop(msg.m.id, None)
        self.parts_freed()

    def push_ready(self, carrier: CarrierQueue, job: Job) -> None:
        self._tie += 1
        heapq.heappush(carrier.ready, (-job.msg.m.priority, job.msg.order, self._tie, job))
        carrier.queued_parts += len(job.parts)

    def push_delayed(self, carrier: CarrierQueue, job: Job, due: float) -> None:
        validity = job.msg.m.validity_until
        if validity is not None and validity < due:
            due = validity  # it fails then, not later
        self._tie += 1
        heapq.heappush(carrier.delayed, (due, self._tie, job))
        carrier.queued_parts += len(job.parts)

    def carriers_up(self) -> set[str]:
        """Carriers with at least one bound bind."""
        return {b.bind.carrier for b in self.binds.values() if is_live(b.bind)}

    def wake(self, names: Iterable[str]) -> None:
        for name in names:
            self.carriers[name].wake.set()

    def mono(self) -> float:
        """The event loop's clock (pacing), the one the SMPP session stamps requests with."""
        assert self.loop is not None
        return self.loop.time()


def earliest(a: float | None, b: float) -> float:
    return b if a is None or b < a else a


def earliest_opt(a: float | None, b: float | None) -> float | None:
    return a if b is None else earliest(a, b)
