"""Delivery receipts off the binds: parse, persist in batches, and only then acknowledge.

``ReceiptHandler.take`` takes every receipt a bind receives (gateway.net.deliver tells
receipts from MO and reads them as an ``IncomingReceipt`` keyed by (carrier, normalised id),
gateway.net.classify). It joins the current batch; the
batch goes to ``Receipts.record_receipts`` in one call, and each deliver_sm_resp (ROK) is sent
only after that call returned: a receipt is durable before the SMSC may forget it. If the
store call fails, every deliver_sm of the batch is answered ESME_RX_T_APPN, a temporary
error, so the SMSC keeps the receipt and sends it again.

A deliver_sm flagged as a receipt whose message id cannot be read is not dropped: it is kept
as an unmatched receipt with state ``unknown`` (its raw text preserved) and acknowledged, and
counted in ``stats.unparsable``.

Correlation is watched per carrier. With ``auto`` id forms a receipt carries every reading
of its id (as given, decimal read as hex, hex read as decimal), the carrier's learned reading
first; the reading that matched is tallied, and the most frequent one leads from then on. A
receipt the store could not match is held (it may have beaten its submit_sm_resp); once the
carrier's ``response_timeout`` (plus ``HOLD_SLACK_SECONDS``) has passed, the store is asked
again: still unmatched, it is counted ``unmatched`` and a warning names the carrier and a
sample id (at most one line per carrier per ``UNMATCHED_LOG_SECONDS``). Counts are in
``correlation`` (``/metrics``, ``/healthz``).

No message waits forever for a receipt: every ``EXPIRY_CHECK_SECONDS`` the store turns
messages still ``submitted`` after their validity (plus the carrier's ``receipt_grace``), or
after the carrier's ``receipt_timeout`` when they have none, into ``expired`` with error
``no_receipt``, and their callbacks go out (``Receipts.expire_unreceipted``). Carriers that ask
for no receipt, or for failures only (``registered_delivery`` other than 1), are left out:
no receipt is expected from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.config import CarrierConfig
from gateway.core.model import IncomingReceipt, MessageStatus, StatusChange
from gateway.logs import log_event
from gateway.net.classify import UNPARSABLE_KEY
from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import Status
from gateway.smpp.pdu import Pdu
from gateway.smpp.receipt import (
    READINGS,
    IdForms,
    IdReading,
)
from gateway.store.ports import Receipts

log = logging.getLogger("smsgw.receipts")

ChangesHook = Callable[[Sequence[StatusChange]], None]
"""Told of the status changes a store call returned (the callback sender's ``notify``)."""

RECEIPT_LINGER_SECONDS: Final = 0.002
"""A batch waits this long for more receipts before it is written, unless it is big already:
receipts come in bursts (a carrier answers a burst of submits), and 2 ms is nothing to the
SMSC's response timeout (tens of seconds) but turns a burst into one commit."""

RECEIPT_BATCH_TARGET: Final = 500
"""A batch this large is written without lingering."""

STOP_DRAIN_SECONDS: Final = 5.0
"""On stop, how long the last batch may take to be written and answered."""

HOLD_SLACK_SECONDS: Final = 10.0
"""A receipt that matched nothing waits the carrier's response_timeout plus this for its
submit_sm_resp to be recorded (the outcome writer batches; a busy store lags a little)
before it counts as unmatched."""

MAX_HELD_TRACKED: Final = 100_000
"""Held receipts watched at once (about 150 bytes each). Beyond, the oldest are checked
before their hold is over: a flood of receipts that match nothing is what this watch is for,
and it must not cost unbounded memory."""

WATCH_SECONDS: Final = 5.0
"""How often held receipts past their hold are checked."""

EXPIRY_CHECK_SECONDS: Final = 60.0
"""How often messages that waited too long for a receipt are given up: the deadlines are
minutes to days, a minute late is nothing."""

EXPIRY_BATCH: Final = 1_000
"""Messages given up per store call (one transaction); calls repeat while batches are full."""

UNMATCHED_LOG_SECONDS: Final = 60.0
"""At most one ``receipts.unmatched`` warning per carrier this often (a misconfigured id
form makes every receipt unmatched: one line a minute, with the count, not one a receipt)."""


@dataclass(slots=True)
class ReceiptStats:
    received: int = 0
    """Receipts read off the binds (unparsable ones included)."""
    unparsable: int = 0
    """Receipts without a readable message id, kept as unmatched."""
    stored: int = 0
    """Receipts committed and acknowledged."""
    store_errors: int = 0
    """Batches the store refused (their receipts were answered ESME_RX_T_APPN)."""
    refused_stopped: int = 0
    """deliver_sm answered ESME_RX_T_APPN because the handler was not running."""
    mo_received: int = 0
    mo_refused: int = 0
    """MO answered ESME_RX_T_APPN: no mo_handler, or it failed."""
    alerts: int = 0


@dataclass(slots=True)
class CarrierReceipts:
    """One carrier's receipt correlation since start (``/metrics``, ``/healthz``)."""

    matched: int = 0
    """Receipts applied to a part: at once, or after being held for their response."""
    unmatched: int = 0
    """Receipts still matching nothing after their hold (and unparsable ones)."""
    held: int = 0
    """Receipts matching nothing yet, within their hold."""
    expired_no_receipt: int = 0
    """Messages given up as ``expired`` (``no_receipt``): their receipt never came."""
    reading: IdReading | None = None
    """The reading of the id that matched most (``auto`` id forms), tried first."""
    tally: dict[IdReading, int] = field(default_factory=dict)
    last_unmatched_id: str | None = None
    unlogged: int = 0
    """Unmatched receipts since the last warning."""
    last_warned: float | None = None

    def health(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "unmatched": self.unmatched,
            "held": self.held,
            "expired_no_receipt": self.expired_no_receipt,
            "id_reading": self.reading.value if self.reading is not None else None,
            "last_unmatched_id": self.last_unmatched_id,
        }


@dataclass(slots=True)
class _Waiting:
    conn: SmppConnection | None
    pdu: Pdu
    receipt: IncomingReceipt
    readings: tuple[IdReading, ...] = ()
    """The reading of each of ``receipt.match_keys`` (``auto`` id forms)."""


class ReceiptHandler:
    """Stores receipts read off the binds in batches, acknowledging each after its commit;
    watches their correlation."""

    def __init__(
        self,
        store: Receipts,
        carriers: Iterable[CarrierConfig],
        *,
        clock: Callable[[], float] = time.time,
        on_changes: ChangesHook | None = None,
        linger: float = RECEIPT_LINGER_SECONDS,
    ) -> None:
        self._store = store
        self._forms: dict[str, IdForms] = {}
        self._carriers: dict[str, CarrierConfig] = {}
        self.correlation: dict[str, CarrierReceipts] = {}
        self._order: dict[str, tuple[IdReading, ...]] = {}
        """Per carrier, the readings of an ``auto`` id in the order they are tried."""
        self._held: deque[tuple[float, str, str, str]] = deque()
        """(due, carrier, receipt_key, carrier_message_id) of receipts held unmatched."""
        self._watch_task: asyncio.Task[None] | None = None
        self._next_expiry = 0.0
        self.set_carriers(carriers)
        self.clock = clock
        self.on_changes = on_changes
        self._linger = linger
        self.stats = ReceiptStats()
        self._waiting: list[_Waiting] = []
        self._ready = asyncio.Event()
        self._running = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def set_carriers(self, carriers: Iterable[CarrierConfig]) -> None:
        """New carrier settings (reload); ids of carriers no longer configured still match."""
        for c in carriers:
            self._forms[c.name] = IdForms(c.message_id_form, c.effective_receipt_id_form)
            self._carriers[c.name] = c
            self.correlation.setdefault(c.name, CarrierReceipts())

    async def start(self) -> None:
        if self._task is not None:
            return
        self._running = True
        self._closing = False
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="receipts")
        self._watch_task = loop.create_task(self._watch(), name="receipts-watch")

    async def stop(self, drain: float = STOP_DRAIN_SECONDS) -> None:
        """Take no more receipts (they are refused with ESME_RX_T_APPN), write and answer
        the batch in hand within ``drain`` seconds."""
        self._running = False
        self._closing = True
        self._ready.set()
        watch, self._watch_task = self._watch_task, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), drain)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # Whatever is still waiting (the store hung) is refused: the SMSC will send it again.
        waiting, self._waiting = self._waiting, []
        for item in waiting:
            self._answer(item, Status.RX_T_APPN)

    @property
    def backlog(self) -> int:
        """Receipts waiting for their store call."""
        return len(self._waiting)

    # -- from the binds ----------------------------------------------------------------------

    def forms(self, carrier: str) -> IdForms:
        """How ``carrier`` writes message ids (its receipts' keys)."""
        return self._forms.get(carrier) or IdForms()

    @property
    def running(self) -> bool:
        return self._running

    def take(self, conn: SmppConnection | None, pdu: Pdu, incoming: IncomingReceipt) -> None:
        """A receipt read off a bind (gateway.net.deliver): stored with the next batch, then
        ``pdu`` is answered on ``conn``; refused (ESME_RX_T_APPN) when not running."""
        self.stats.received += 1
        if not self._running:
            self.stats.refused_stopped += 1
            if conn is not None:
                conn.send_response(pdu.make_response(Status.RX_T_APPN))
            return
        labels: tuple[IdReading, ...] = ()
        carrier = incoming.carrier
        forms = self._forms.get(carrier) or IdForms()
        if forms.auto and incoming.receipt_key != UNPARSABLE_KEY:
            readings = forms.receipt_readings(
                incoming.carrier_message_id, self._order.get(carrier, READINGS)
            )
            incoming.match_keys = tuple(key for _, key in readings)
            labels = tuple(reading for reading, _ in readings)
        self._waiting.append(_Waiting(conn, pdu, incoming, labels))
        self._ready.set()

    # -- the writer --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            if self._linger > 0 and len(self._waiting) < RECEIPT_BATCH_TARGET and not self._closing:
                await asyncio.sleep(self._linger)
            self._ready.clear()
            batch, self._waiting = self._waiting, []
            if batch:
                await self._write(batch)
            if self._closing and not self._waiting:
                return

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            changes = await self._store.record_receipts([w.receipt for w in batch])
        except Exception as exc:
            self.stats.store_errors += 1
            log_event(
                log,
                "receipts.store_failed",
                logging.WARNING,
                receipts=len(batch),
                error=repr(exc),
            )
            for item in batch:
                self._answer(item, Status.RX_T_APPN)
            return
        self.stats.stored += len(batch)
        for item in batch:
            self._answer(item, Status.ROK)
        if changes and self.on_changes is not None:
            self.on_changes(changes)
        self._correlate(batch)

    # -- correlation ---------------------------------------------------------------------

    def _stats_of(self, carrier: str) -> CarrierReceipts:
        stats = self.correlation.get(carrier)
        if stats is None:
            stats = self.correlation[carrier] = CarrierReceipts()
        return stats

    def _correlate(self, batch: list[_Waiting]) -> None:
        """Count what a stored batch matched, learn readings, hold the rest."""
        now = self.clock()
        for item in batch:
            r = item.receipt
            stats = self._stats_of(r.carrier)
            if r.matched_key is not None:
                stats.matched += 1
                if item.readings and len(item.readings) > 1:
                    reading = item.readings[r.match_keys.index(r.matched_key)]
                    self._learn(r.carrier, stats, reading)
            elif r.receipt_key == UNPARSABLE_KEY:
                self._unmatched(r.carrier, stats, r.raw[:40] or "(empty)", now)
            else:
                cfg = self._carriers.get(r.carrier)
                hold = (cfg.response_timeout if cfg is not None else 60.0) + HOLD_SLACK_SECONDS
                self._held.append((now + hold, r.carrier, r.receipt_key, r.carrier_message_id))
                stats.held += 1

    def _learn(self, carrier: str, stats: CarrierReceipts, reading: IdReading) -> None:
        tally = stats.tally
        tally[reading] = tally.get(reading, 0) + 1
        best = max(tally, key=tally.__getitem__)
        if best is not stats.reading:
            log_event(log, "receipts.id_reading", carrier=carrier, reading=best.value)
            stats.reading = best
            self._order[carrier] = (best, *(r for r in READINGS if r is not best))

    def _unmatched(self, carrier: str, stats: CarrierReceipts, sample: str, now: float) -> None:
        stats.unmatched += 1
        stats.unlogged += 1
        stats.last_unmatched_id = sample
        if stats.last_warned is None or now - stats.last_warned >= UNMATCHED_LOG_SECONDS:
            log_event(
                log,
                "receipts.unmatched",
                logging.WARNING,
                carrier=carrier,
                receipts=stats.unlogged,
                total=stats.unmatched,
                sample_id=sample,
                hint="receipts name ids no submit_sm_resp gave: check the carrier's"
                " message_id_form / receipt_id_form",
            )
            stats.unlogged = 0
            stats.last_warned = now

    async def check_held(self, now: float | None = None) -> None:
        """Held receipts whose hold is over at ``now`` (default: the clock): matched since
        (their response came), or unmatched for good. The oldest go early when more than
        MAX_HELD_TRACKED wait."""
        now = self.clock() if now is None else now
        held = self._held
        due: list[tuple[float, str, str, str]] = []
        while held and (held[0][0] <= now or len(held) > MAX_HELD_TRACKED):
            due.append(held.popleft())
        if not due:
            return
        try:
            still = await self._store.still_unmatched([(c, key) for _, c, key, _ in due])
        except Exception as exc:
            log_event(log, "receipts.check_failed", logging.WARNING, error=repr(exc))
            held.extendleft(reversed(due))  # asked again at the next watch
            return
        counted: set[tuple[str, str]] = set()
        for _, carrier, key, raw_id in due:
            stats = self._stats_of(carrier)
            stats.held -= 1
            if (carrier, key) in counted:
                continue  # the same receipt sent again (its answer was lost): one receipt
            counted.add((carrier, key))
            if (carrier, key) in still:
                self._unmatched(carrier, stats, raw_id, now)
            else:
                stats.matched += 1

    async def expire_overdue(self, now: float | None = None) -> int:
        """Give up messages that waited too long for a receipt at ``now`` (default: the
        clock; see the module's doc); returns how many."""
        now = self.clock() if now is None else now
        total = 0
        for name, cfg in list(self._carriers.items()):
            if cfg.registered_delivery & 0x03 != 1:
                continue  # no receipt asked for, or failures only: silence is no loss
            while True:
                try:
                    changes = await self._store.expire_unreceipted(
                        name, now - cfg.receipt_grace, now - cfg.receipt_timeout, now, EXPIRY_BATCH
                    )
                except Exception as exc:
                    log_event(
                        log,
                        "receipts.expiry_failed",
                        logging.WARNING,
                        carrier=name,
                        error=repr(exc),
                    )
                    break
                n = sum(1 for c in changes if c.status is MessageStatus.EXPIRED)
                if n:
                    self._stats_of(name).expired_no_receipt += n
                    total += n
                    log_event(
                        log,
                        "receipts.no_receipt_expired",
                        logging.WARNING,
                        carrier=name,
                        messages=n,
                    )
                if changes and self.on_changes is not None:
                    self.on_changes(changes)
                if len(changes) < EXPIRY_BATCH:
                    break
        return total

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            await self.check_held()
            now = self.clock()
            if now >= self._next_expiry:
                self._next_expiry = now + EXPIRY_CHECK_SECONDS
                await self.expire_overdue()

    def health(self) -> dict[str, Any]:
        """Per carrier: receipts matched, unmatched, held, messages expired for lack of a
        receipt, the id reading learned (``/healthz``)."""
        return {name: stats.health() for name, stats in sorted(self.correlation.items())}

    @staticmethod
    def _answer(item: _Waiting, status: int) -> None:
        # The connection the deliver_sm came on: after a reconnect its sequence number means
        # nothing on the new link, and send_response on a closed one is a no-op.
        if item.conn is not None:
            item.conn.send_response(item.pdu.make_response(status))
