"""One account (system_id) of the simulator: its limits, its binds, and the deliver_sm
(receipts and MO parts) held for it until a receiver has room."""

from __future__ import annotations

import random
from collections import deque
from typing import TYPE_CHECKING, Final

from gateway.smpp.pdu import DeliverSm
from gateway.smpp.receipt import MessageState
from gateway.smpp.session import BindType
from gateway.smpp.smsc import Received
from smsc_simulator.config import AccountConfig
from smsc_simulator.dlr import (
    NETWORK_ERROR,
    DelaySampler,
    OutcomePicker,
    ReceiptText,
    build_receipt,
)
from smsc_simulator.fastpath import FastConnection, network_error_tlv, receipt_body
from smsc_simulator.limits import DEFAULT_BURST_SECONDS, IdFormatter, TokenBucket

if TYPE_CHECKING:
    from smsc_simulator.esme import EsmeConnection
    from smsc_simulator.server import Simulator

_NETWORK_ERROR_TLV: Final[dict[int, bytes]] = {
    int(state): network_error_tlv(value) for state, value in NETWORK_ERROR.items()
}
_DEFAULT_NETWORK_ERROR_TLV: Final = network_error_tlv(b"\x03\x00\x00")

FastReceipt = tuple[int, bytes, float, int, bytes]
"""(number, addresses, submitted, state, text field) of a receipt to build."""


class Outgoing:
    """A deliver_sm on its way to the ESME: held, in flight, or queued again after a loss.

    Either a ``pdu`` (the general path) or ``raw``, the encoded body of a receipt built by
    the fast path (``fastpath.receipt_body``; the header is packed when it is sent)."""

    __slots__ = ("counted", "pdu", "raw", "state")

    def __init__(self, pdu: DeliverSm | None, state: int, raw: bytes | None = None) -> None:
        self.pdu = pdu
        self.raw = raw
        self.state = state
        """The receipt's MessageState, or 0 for a part of an MO."""
        self.counted = False


class Account:
    """One system_id: its limits, its binds, and the deliver_sm held for it."""

    def __init__(
        self, config: AccountConfig, sim: Simulator, rng: random.Random, now: float
    ) -> None:
        self.config = config
        self.system_id = config.system_id
        self.sim = sim
        self.bind_types = frozenset(BindType(b) for b in config.bind_types)
        ids = config.message_id
        self.format_id = IdFormatter(ids.base, ids.uppercase, ids.width)
        receipt_base = ids.base
        if config.receipts.id_in_other_base:
            receipt_base = "decimal" if ids.base == "hex" else "hex"
        self.format_receipt_id = IdFormatter(receipt_base, ids.uppercase, ids.width)
        self.bucket: TokenBucket | None = None
        if config.tps > 0:
            burst = config.tps_burst or config.tps * DEFAULT_BURST_SECONDS
            self.bucket = TokenBucket(config.tps, burst, now)
        self.window = config.window
        receipts = config.receipts
        self.receipt_text = ReceiptText(receipts.date_seconds) if receipts.text else None
        self.receipt_delay = DelaySampler(config.receipts.delay, rng)
        self.outcome = OutcomePicker(config.receipts.outcomes, rng)
        self.binds: list[EsmeConnection] = []
        self.peak_binds = 0
        """The most binds this account had at one time (a cluster of gateways must keep
        within the carrier's limit)."""
        self.receivers: list[EsmeConnection] = []
        self.held: deque[Outgoing] = deque()
        self._rr = 0

    # -- deliver_sm towards the ESME -------------------------------------------------------

    def deliver(self, item: Outgoing) -> EsmeConnection | None:
        """Send now if a receiver has room (round robin), else hold. Returns the receiver."""
        if not self.held:
            conn = self._send(item)
            if conn is not None:
                return conn
        self._hold(item)
        return None

    def requeue(self, item: Outgoing) -> None:
        """A deliver_sm lost in flight goes to the front of the queue."""
        self.held.appendleft(item)
        self.drain()

    def drain(self) -> None:
        """Send held deliver_sm to every receiver with room, oldest first."""
        if self.sim.faults.black_hole:
            return
        for conn in list(self.receivers):
            if not self.held:
                return
            self.drain_to(conn)

    def drain_to(self, conn: EsmeConnection) -> None:
        """Fill one receiver's window from the queue (after it answered a deliver_sm)."""
        held = self.held
        if self.sim.faults.black_hole:
            return
        fast = conn.conn
        if held and isinstance(fast, FastConnection):
            fast.send_held(held, self.sim.stats)
        while held and conn.push(held[0]):
            held.popleft()

    def _hold(self, item: Outgoing) -> None:
        if len(self.held) >= self.config.held_max:
            stats = self.sim.stats
            if item.state:
                stats.receipts_dropped += 1
            else:
                stats.mo_dropped += 1
            return
        self.held.append(item)

    def _send(self, item: Outgoing) -> EsmeConnection | None:
        if self.sim.faults.black_hole:
            return None
        receivers = self.receivers
        count = len(receivers)
        for offset in range(count):
            index = (self._rr + offset) % count
            conn = receivers[index]
            if conn.push(item):
                self._rr = index + 1
                return conn
        return None

    # -- scheduled work --------------------------------------------------------------------

    def receipt_due(self, arg: tuple[int, Received, float, MessageState]) -> EsmeConnection | None:
        """Build the receipt of one part and send it (or hold it). Returns the receiver."""
        number, submit, submitted, state = arg
        pdu = build_receipt(
            receipt_id=self.format_receipt_id(number),
            submit=submit,
            state=state,
            submitted=submitted,
            done=self.sim.wall_time(),
            text=self.receipt_text,
            tlvs=self.config.receipts.tlvs,
        )
        return self.deliver(Outgoing(pdu, state))

    def fast_receipts_due(self, entries: list[FastReceipt]) -> None:
        """The receipts of submit_sm taken by the fast path: built as bytes, sent or held,
        in order. Each entry is (number, addresses, submitted, state, original text)."""
        done = self.sim.wall_time()
        format_receipt_id = self.format_receipt_id
        text = self.receipt_text
        tlvs = self.config.receipts.tlvs
        items: list[Outgoing] = []
        add = items.append
        parts_key: tuple[float, int] | None = None
        head = tail = b""
        for number, addresses, submitted, state, original in entries:
            receipt_id = format_receipt_id(number)
            if text is not None:
                if (submitted, state) != parts_key:  # the same for a whole read, mostly
                    parts_key = (submitted, state)
                    head, tail = text.parts(state, submitted, done)
                short_message = b"".join((head, receipt_id.encode("ascii"), tail, original))
            else:
                short_message = b""
            body = receipt_body(
                addresses,
                short_message,
                receipt_id.encode("latin-1") if tlvs else None,
                state,
                _NETWORK_ERROR_TLV.get(state, _DEFAULT_NETWORK_ERROR_TLV),
            )
            add(Outgoing(None, state, body))
        # deliver() for each item, in bulk: sent round robin while a receiver has room, then
        # held (the first one held means every later one would be held too).
        held = self.held
        sent = 0
        if not held:
            send = self._send
            count = len(items)
            while sent < count and send(items[sent]) is not None:
                sent += 1
        if sent < len(items):
            rest = items[sent:]
            room = max(0, self.config.held_max - len(held))
            if len(rest) > room:
                self.sim.stats.receipts_dropped += len(rest) - room
                rest = rest[:room]
            held.extend(rest)
