"""What may be sent now: the carriers' windows, bind and account tokens (TPS), and the bound
on parts begun in the store and not yet answered-and-committed.

Every part is begun in the store ("submitting") before its submit_sm leaves. Parts begun and
not yet answered-and-committed (on the wire, answered but not committed, promised to an
accept, staged, or being begun) never exceed window x live binds, so a crash flags at most
that many parts possibly duplicated. Plain arithmetic over a carrier's queue and the clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from gateway.core.model import NewMessage
from gateway.engine.queue import BindPace, CarrierQueue, Queues, is_live
from gateway.engine.throttle import UNLIMITED

if TYPE_CHECKING:
    from gateway.engine.loading import Loader

MAX_BATCH_PARTS: Final = 1_000
"""Most parts in one begin_attempts call: bounds one pump turn's work (a few ms of building
submit_sm) so responses and receipts are not starved."""

STAGE_SECONDS: Final = 0.5
"""Parts are begun ahead of the wire up to the room left in the windows (see
``stage_target``), and for a rate-limited carrier at most about this much traffic at its
rate: half a second bounds how far a newly arrived higher-priority message can be
overtaken."""

MAX_STAGED_PARTS: Final = 10_000
"""Cap on staged parts per carrier: half a second at 20,000 parts/s."""


def stage_target(c: CarrierQueue, live: list[BindPace], mono: float, confirming: int = 0) -> int:
    """How many parts to hold begun (staged, or being begun): only what the windows can
    take soon. Every begun part counts against the live binds' windows until its outcome
    is committed (on the wire, answered and not yet committed, promised to an accept, or
    staged), so what a crash finds 'submitting', and flags possibly duplicated, stays
    within window x binds. With a rate limit, also no more than ``STAGE_SECONDS`` of
    traffic at that rate (the rest could not leave soon anyway).

    ``confirming``: accepted parts whose outcomes are committed in the same transaction
    as the parts begun now; they leave ``unconfirmed`` when it commits."""
    free = c.config.window * len(live) - (c.unconfirmed - confirming) - c.reserved
    rates = [b.throttle.effective_rate for b in live]
    rate: float | None = None
    if None not in rates:
        rate = sum(r for r in rates if r is not None)
    if c.account is not None:
        rate = c.account.rate if rate is None else min(rate, c.account.rate)
    if rate is not None:
        free = min(free, max(1, int(rate * STAGE_SECONDS)))
    return min(MAX_STAGED_PARTS, free)


def send_budget(c: CarrierQueue, mono: float) -> tuple[int, float | None]:
    """Parts ``c`` may put on the wire now over all its binds: account tokens, and the
    windows less the parts whose outcome is not durable yet (a response frees its window
    slot at once, but until its outcome is committed a crash would send that part again).
    With no budget: the seconds until account tokens come back, or None (the outcome
    writer's commit wakes the pump)."""
    budget = UNLIMITED
    account = c.account
    if account is not None:
        budget = account.available(mono)
        if budget <= 0:
            return 0, account.time_until_available(mono)
    return min(budget, c.config.window * len(c.binds) - c.unconfirmed), None


def room_now(c: CarrierQueue, mono: float) -> int:
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


def release(
    carriers: Mapping[str, CarrierQueue], messages: Sequence[NewMessage], reserved: Collection[str]
) -> None:
    """The commit of messages ``reserve`` promised room to failed: free the room."""
    for new in messages:
        if new.id in reserved:
            c = carriers.get(new.carrier)
            if c is not None:
                c.reserved -= new.parts


class Admission:
    """Room promised to messages about to be accepted (begun in their accept transaction)."""

    def __init__(self, queues: Queues, loader: Loader) -> None:
        self._q = queues
        self._loader = loader

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
        q = self._q
        loop = q.loop
        if not q.running or q.stopping or loop is None or self._loader.full():
            return set()
        now = q.clock()
        mono = loop.time()
        rooms: dict[str, int] = {}
        out: set[str] = set()
        budget = MAX_BATCH_PARTS  # enqueue builds and sends them in one turn: bound its work
        for new in messages:
            c = q.carriers.get(new.carrier)
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
                room = room_now(c, mono)
            if new.parts > room:
                rooms[c.name] = 0
                continue
            rooms[c.name] = room - new.parts
            budget -= new.parts
            c.reserved += new.parts
            out.add(new.id)
        return out
