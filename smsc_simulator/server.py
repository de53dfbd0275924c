"""The SMSC: accounts, binds, submit_sm handling, receipts, MO delivery and fault switches.

One ``EsmeConnection`` handler per TCP connection sits behind the shared
``gateway.smpp.aio.SmppConnection`` adapter and its sans-IO ``Session`` (SMSC role): the
session answers enquire_link, unbind and PDUs in the wrong state by itself, and hands the
handler bind requests, submit_sm/data_sm, and the responses to the deliver_sm we send.

Speed: a submit_sm costs a decode, a few counters, one response encode and, when a receipt
is asked for, one heap entry. Nothing on the way logs, creates a task or awaits; delayed
work (receipts, slow responses, subscriber replies) shares one timer (``Scheduler``).
In the common case of a bulk run, ``fastpath.FastConnection`` handles submit_sm, their
receipts and the deliver_sm_resp straight from the bytes, and everything else comes here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import zlib
from collections import deque
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from gateway.logs import log_event
from gateway.smpp.aio import SmppConnection, unbind_all
from gateway.smpp.constants import CommandId, EsmClass, Status, Tag
from gateway.smpp.errors import EncodeError, LocalProtocolError
from gateway.smpp.pdu import (
    DataSm,
    DataSmResp,
    DeliverSm,
    GenericNack,
    Pdu,
    QuerySm,
    SubmitSm,
    SubmitSmResp,
    decode,
)
from gateway.smpp.receipt import MessageState
from gateway.smpp.session import (
    BindRequested,
    BindType,
    Event,
    LinkFailed,
    ProtocolError,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Role,
    SessionConfig,
    State,
    Unbound,
    UnexpectedResponse,
)
from gateway.smpp.smsc import (
    BIND_STOPPING,
    BIND_UNKNOWN_SYSTEM_ID,
    BIND_WRONG_PASSWORD,
    BindRefusal,
    accept_bind,
    bind_type_refusal,
    max_binds_refusal,
    receipt_requested,
    receives,
    wants_receipt,
)
from gateway.smpp.text import ConcatMethod
from smsc_simulator.config import (
    AccountConfig,
    SimulatorConfig,
    SubscribersConfig,
    TlsListenerConfig,
)
from smsc_simulator.control import make_app
from smsc_simulator.dlr import (
    NETWORK_ERROR,
    DelaySampler,
    OutcomePicker,
    ReceiptText,
    Received,
    build_receipt,
    message_text,
)
from smsc_simulator.fastpath import (
    FastConnection,
    SimSession,
    network_error_tlv,
    receipt_body,
)
from smsc_simulator.faults import Faults
from smsc_simulator.limits import DEFAULT_BURST_SECONDS, IdFormatter, TokenBucket
from smsc_simulator.mo import MoError, NoReceiver, UnknownAccount, build_mo
from smsc_simulator.moload import MoLoad
from smsc_simulator.scheduler import Scheduler
from smsc_simulator.stats import GENERIC_NACK_KEY, Stats

log = logging.getLogger("smsc_sim")

UNBIND_GRACE_SECONDS: Final = 2.0
"""On stop, how long bound ESMEs get to answer our unbind before their links are cut."""

RESPONSE_AFTER_RECEIPT_SECONDS: Final = 0.02
"""receipt_before_response with the receipt on another bind: hold the submit_sm_resp this
long so the receipt is on the wire first (both are local writes; 20 ms is plenty)."""

GARBAGE_OCTETS: Final = (16, 64)
"""Length range of the random bytes the ``garbage`` fault writes instead of a response."""

_SUBMIT_SM: Final = int(CommandId.SUBMIT_SM)
_DATA_SM: Final = int(CommandId.DATA_SM)
_DELIVER_SM: Final = int(CommandId.DELIVER_SM)
_GENERIC_NACK: Final = int(CommandId.GENERIC_NACK)
_DELIVERED: Final = MessageState.DELIVERED


_NETWORK_ERROR_TLV: Final[dict[int, bytes]] = {
    int(state): network_error_tlv(value) for state, value in NETWORK_ERROR.items()
}
_DEFAULT_NETWORK_ERROR_TLV: Final = network_error_tlv(b"\x03\x00\x00")

FastReceipt = tuple[int, bytes, float, int, bytes]
"""(number, addresses, submitted, state, text field) of a receipt to build."""

_RETRY_LATER: Final = frozenset(
    {Status.RX_T_APPN, Status.RSYSERR, Status.RTHROTTLED, Status.RMSGQFUL}
)
"""deliver_sm_resp statuses after which an SMSC offers the deliver_sm again."""


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


class EsmeConnection:
    """The handler of one connection (``gateway.smpp.aio.SessionHandler``)."""

    __slots__ = ("account", "bound", "conn", "open", "outstanding", "peer", "sim")

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.conn: SmppConnection | None = None
        self.account: Account | None = None
        self.bound = False
        self.open = True
        self.outstanding = 0
        """submit_sm accepted whose response is not sent yet (slow_responses)."""
        self.peer = ""

    # -- SessionHandler --------------------------------------------------------------------

    def connection_made(self, conn: SmppConnection) -> None:
        self.conn = conn
        peer = conn.peer
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.sim.connections.add(self)
        self.sim.stats.connections += 1

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        self.open = False
        self._unregister("connection lost" if exc else "connection closed")
        self.sim.connections.discard(self)

    def events_received(self, conn: SmppConnection, events: list[Event]) -> None:
        sim = self.sim
        try:
            black_hole = sim.faults.black_hole
            for event in events:
                kind = type(event)
                if kind is RequestReceived:
                    assert isinstance(event, RequestReceived)
                    pdu = event.pdu
                    command_id = pdu.command_id
                    if black_hole:
                        if command_id == _SUBMIT_SM or command_id == _DATA_SM:
                            sim.stats.submit_sm += command_id == _SUBMIT_SM
                            sim.stats.data_sm += command_id == _DATA_SM
                            sim.stats.submit_sm_unanswered += 1
                    elif command_id == _SUBMIT_SM or command_id == _DATA_SM:
                        self._on_message(conn, pdu)  # type: ignore[arg-type]
                    else:
                        self._on_other_request(conn, pdu)
                elif kind is ResponseReceived:
                    assert isinstance(event, ResponseReceived)
                    self._on_response(event)
                elif kind is BindRequested:
                    assert isinstance(event, BindRequested)
                    if not black_hole:
                        self._on_bind(conn, event)
                elif kind is RequestTimedOut:
                    assert isinstance(event, RequestTimedOut)
                    self._on_timeout(conn, event)
                elif kind is Unbound or kind is LinkFailed:
                    self._unregister(str(event))
                elif kind is ProtocolError:
                    assert isinstance(event, ProtocolError)
                    sim.stats.protocol_errors[event.error.command_status] += 1
                elif kind is UnexpectedResponse:
                    sim.stats.unexpected_responses += 1
            if black_hole:
                conn.session.data_to_send()  # not even enquire_link_resp or generic_nack
        except Exception:  # never let one bad PDU take the simulator down
            sim.stats.internal_errors += 1
            log.exception("smpp.handler_failed peer=%s", self.peer)

    # -- binds -----------------------------------------------------------------------------

    def _on_bind(self, conn: SmppConnection, event: BindRequested) -> None:
        sim = self.sim
        pdu = event.pdu
        sim.stats.bind_attempts += 1
        account = sim.accounts.get(pdu.system_id)
        refusal: BindRefusal | None = None
        if sim.stopping:
            refusal = BIND_STOPPING
        elif account is None:
            refusal = BIND_UNKNOWN_SYSTEM_ID
        elif pdu.password != account.config.password:
            refusal = BIND_WRONG_PASSWORD
        else:
            refusal = bind_type_refusal(event.bind_type, account.bind_types) or (
                max_binds_refusal(len(account.binds), account.config.max_binds)
            )
        if refusal is not None:
            status, reason = refusal
            conn.session.reject_bind(pdu, status)
            sim.stats.bind_failures[status] += 1
            log_event(
                log,
                "smpp.bind_refused",
                peer=self.peer,
                system_id=pdu.system_id,
                bind_type=event.bind_type.value,
                reason=reason,
            )
            return
        assert account is not None  # refused above otherwise
        accept_bind(
            conn.session,
            pdu,
            sim.config.smpp.system_id,
            conn.now(),
            account.config.deliver_window,
        )
        self.account = account
        self.bound = True
        account.binds.append(self)
        if receives(event.bind_type):
            account.receivers.append(self)
        log_event(
            log,
            "smpp.bound",
            peer=self.peer,
            system_id=account.system_id,
            bind_type=event.bind_type.value,
            binds=len(account.binds),
        )
        if receives(event.bind_type):
            account.drain()

    def _unregister(self, reason: str) -> None:
        if not self.bound:
            return
        self.bound = False
        account = self.account
        assert account is not None
        if self in account.binds:
            account.binds.remove(self)
        if self in account.receivers:
            account.receivers.remove(self)
        log_event(log, "smpp.unbound", peer=self.peer, system_id=account.system_id, reason=reason)

    # -- deliver_sm out --------------------------------------------------------------------

    def push(self, item: Outgoing) -> bool:
        """Send a deliver_sm if this bind can take one now. True when the item is gone from
        the caller's hands: sent, or dropped because it cannot be encoded (counted)."""
        conn = self.conn
        if conn is None or not self.bound or conn.session.window_free <= 0:
            return False
        stats = self.sim.stats
        try:
            if item.pdu is None:
                assert isinstance(conn, FastConnection)
                if not conn.send_fast(item):
                    return False
            else:
                conn.send_request(item.pdu, item)
        except LocalProtocolError:  # closing, or unbinding
            return False
        except EncodeError:  # a value no SMPP peer could take: never let it block the queue
            stats.internal_errors += 1
            log.exception("smpp.deliver_sm_unencodable peer=%s", self.peer)
            return True
        if not item.counted:
            item.counted = True
            if item.state:
                stats.receipts_sent += 1
                stats.receipts_by_state[item.state] += 1
            else:
                stats.mo_parts_sent += 1
        return True

    def _on_response(self, event: ResponseReceived) -> None:
        stats = self.sim.stats
        response = event.response
        if response.command_id == _GENERIC_NACK:
            stats.deliver_sm_resp_by_status[GENERIC_NACK_KEY] += 1
        else:
            stats.deliver_sm_resp_by_status[response.command_status] += 1
        account = self.account
        item = event.context
        if (
            account is not None
            and isinstance(item, Outgoing)
            and response.command_status in _RETRY_LATER
        ):
            stats.deliver_sm_retried += 1
            self.sim.scheduler.call_later(account.config.deliver_retry_delay, account.requeue, item)
        if account is not None and account.held:
            account.drain_to(self)

    def fast_response(self, item: Outgoing, nack: bool, status: int) -> None:
        """The response to a deliver_sm sent by the fast path (``_on_response``'s work)."""
        stats = self.sim.stats
        stats.deliver_sm_resp_by_status[GENERIC_NACK_KEY if nack else status] += 1
        account = self.account
        if account is not None and status in _RETRY_LATER:
            stats.deliver_sm_retried += 1
            self.sim.scheduler.call_later(account.config.deliver_retry_delay, account.requeue, item)

    def fast_lost(self, conn: SmppConnection, item: Outgoing) -> None:
        """A deliver_sm (from either path) timed out or its link is gone: counted, and
        requeued for the account's next receiver."""
        if self.account is None:
            return
        if conn.session.state is not State.CLOSED:
            self.sim.stats.deliver_sm_timeouts += 1
        else:
            self._unregister("link lost")
        self.account.requeue(item)

    def _on_timeout(self, conn: SmppConnection, event: RequestTimedOut) -> None:
        item = event.context
        if isinstance(item, Outgoing):
            self.fast_lost(conn, item)  # the same accounting for both paths

    # -- requests --------------------------------------------------------------------------

    def _on_other_request(self, conn: SmppConnection, pdu: Pdu) -> None:
        if isinstance(pdu, QuerySm):
            # The simulator keeps no per-message state beyond the ring buffer.
            conn.send_response(pdu.make_response(Status.RQUERYFAIL))
        elif pdu.RESPONSE is not None:
            conn.send_response(pdu.make_response(Status.RINVCMDID))

    def _answer(self, conn: SmppConnection, pdu: Received, status: int) -> None:
        if pdu.command_id == _SUBMIT_SM:
            conn.send_response(
                SubmitSmResp(sequence_number=pdu.sequence_number, command_status=status)
            )
        else:
            conn.send_response(
                DataSmResp(sequence_number=pdu.sequence_number, command_status=status)
            )
        self.sim.stats.submit_sm_by_status[status] += 1

    def _on_message(self, conn: SmppConnection, pdu: Received) -> None:
        sim = self.sim
        stats = sim.stats
        now = conn.now()
        is_submit = pdu.command_id == _SUBMIT_SM
        if is_submit:
            stats.submit_sm += 1
            if sim.mo_load.waiting:
                sim.mo_load.submit_seen(pdu.destination_addr, time.monotonic())
        else:
            stats.data_sm += 1
        stats.submit_rate.tick(now)
        account = self.account
        assert account is not None  # the session passes submit_sm only once bound
        faults = sim.faults if sim.faults_affect_submit else None
        if faults is not None and self._fault_answered(conn, pdu, faults):
            return
        bucket = account.bucket
        if bucket is not None and not bucket.take(now):
            self._answer(conn, pdu, Status.RTHROTTLED)
            return
        if account.window and self.outstanding >= account.window:
            self._answer(conn, pdu, Status.RMSGQFUL)
            return

        number = sim.next_number()
        message_id = account.format_id(number)
        wall = now + sim.wall_offset
        stats.parts_received += 1
        if pdu.tlvs or pdu.esm_class & EsmClass.UDHI:
            self._count_long(pdu)
        if sim.messages is not None:
            sim.messages.append((wall, account.system_id, message_id, pdu))
        response: Pdu
        if is_submit:
            response = SubmitSmResp(sequence_number=pdu.sequence_number, message_id=message_id)
        else:
            response = DataSmResp(sequence_number=pdu.sequence_number, message_id=message_id)
        stats.submit_sm_by_status[0] += 1

        if sim.subscribers is not None:
            sim.subscribers.consider(account, pdu, now)
        registered = pdu.registered_delivery
        if receipt_requested(registered):
            state = account.outcome()
            if wants_receipt(registered, state):
                stats.receipts_scheduled += 1
                arg = (number, pdu, wall, state)
                if faults is not None and faults.receipt_before_response:
                    receiver = account.receipt_due(arg)
                    if receiver is not None and receiver is not self:
                        # Another bind carries the receipt: hold the response a little so
                        # the receipt is on the wire first.
                        delay = max(faults.slow_responses, RESPONSE_AFTER_RECEIPT_SECONDS)
                        self._respond_later(response, delay)
                        return
                else:
                    sim.scheduler.call_at(now + account.receipt_delay(), account.receipt_due, arg)
        if faults is not None and faults.slow_responses:
            self._respond_later(response, faults.slow_responses)
        else:
            conn.send_response(response)

    def _respond_later(self, response: Pdu, delay: float) -> None:
        self.outstanding += 1
        self.sim.scheduler.call_later(delay, self._respond_now, response)

    def _respond_now(self, response: Pdu) -> None:
        self.outstanding -= 1
        if self.open and self.conn is not None:
            self.conn.send_response(response)

    def _count_long(self, pdu: Received) -> None:
        stats = self.sim.stats
        if pdu.esm_class & EsmClass.UDHI or pdu.get_tlv(Tag.SAR_MSG_REF_NUM) is not None:
            stats.concat_parts_received += 1
        if pdu.get_tlv(Tag.MESSAGE_PAYLOAD) is not None:
            stats.payload_messages_received += 1

    def _fault_answered(self, conn: SmppConnection, pdu: Received, faults: Faults) -> bool:
        """Apply the switches that replace the normal answer; True when one did."""
        sim = self.sim
        stats = sim.stats
        rng = sim.rng
        if faults.garbage and rng.random() < faults.garbage:
            stats.submit_sm_garbage += 1
            transport = conn.transport
            if transport is not None and not transport.is_closing():
                # In order: whatever the session has queued, then the junk.
                junk = rng.randbytes(rng.randint(*GARBAGE_OCTETS))
                transport.write(conn.session.data_to_send() + junk)
            return True
        if faults.generic_nack and rng.random() < faults.generic_nack:
            stats.submit_sm_generic_nack += 1
            conn.send_response(
                GenericNack(sequence_number=pdu.sequence_number, command_status=Status.RSYSERR)
            )
            return True
        if faults.throttle and rng.random() < faults.throttle:
            self._answer(conn, pdu, Status.RTHROTTLED)
            return True
        if faults.queue_full and rng.random() < faults.queue_full:
            self._answer(conn, pdu, Status.RMSGQFUL)
            return True
        error = faults.submit_error
        if error is not None and error.probability and rng.random() < error.probability:
            self._answer(conn, pdu, error.status)
            return True
        return False


class Subscribers:
    """Scripted handsets: a fixed share of destination numbers answer each MT with an MO."""

    def __init__(self, config: SubscribersConfig, sim: Simulator, rng: random.Random) -> None:
        self.config = config
        self.sim = sim
        self.rng = rng
        # crc32 spreads numbers evenly over 32 bits and is the same in every run and process.
        self._threshold = int(config.reply_share * 0x1_0000_0000)
        self._texts = [r.text for r in config.replies]
        self._weights = [r.weight for r in config.replies]
        self._delay = DelaySampler(config.delay, rng)
        self._per_number = config.reply_once == "number"
        self.replied: set[str] = set()

    def replies(self, number: str) -> bool:
        """Whether this number is one of the replying ones (a pure function of the number)."""
        return zlib.crc32(number.encode("latin-1")) < self._threshold

    def consider(self, account: Account, pdu: Received, now: float) -> None:
        number = pdu.destination_addr
        if not self.replies(number):
            return
        _text, concat = message_text(pdu)
        if concat is not None and concat[2] != 1:
            return  # one reply per message: on its first part
        if self._per_number:
            if number in self.replied:
                return
            self.replied.add(number)
        self.sim.scheduler.call_at(
            now + self._delay(), self._reply, (account, number, pdu.source_addr)
        )

    def _reply(self, arg: tuple[Account, str, str]) -> None:
        account, number, to = arg
        text = self.rng.choices(self._texts, self._weights)[0]
        try:
            self.sim.send_mo(account, source=number, destination=to, text=text)
        except MoError:
            self.sim.stats.internal_errors += 1
            return
        self.sim.stats.subscriber_replies[text] += 1


def tls_context(config: TlsListenerConfig) -> ssl.SSLContext:
    """The TLS listener's server context; with ``client_ca``, a client certificate signed
    by one of those CAs is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.cert, config.key)
    if config.client_ca:
        context.load_verify_locations(config.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class Simulator:
    """The SMSC simulator: an SMPP listener and its JSON control API.

    ``await start()`` returns once both listen (``smpp_port`` and ``control_port`` then hold
    the actual ports, useful with port 0); ``await stop()`` unbinds every ESME, closes the
    listeners and cancels every timer.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.stats = Stats(0.0)
        self.faults = Faults()
        self.faults_affect_submit = False
        self.connections: set[EsmeConnection] = set()
        self.accounts: dict[str, Account] = {}
        keep = config.messages.keep
        # The parts received: the PDU, or the submit_sm's frame when the fast path took it.
        self.messages: deque[tuple[float, str, str, Received | bytes]] | None = (
            deque(maxlen=keep) if keep else None
        )
        # The MOs sent (scripted replies and injected ones), as many as ``messages.keep``.
        self.mo_log: deque[tuple[float, str, str, str]] | None = (
            deque(maxlen=keep) if keep else None
        )
        self.subscribers: Subscribers | None = None
        self.smpp_port: int | None = None
        self.smpp_tls_port: int | None = None
        """The TLS listener's port when ``[smpp.tls]`` is set."""
        self.control_port: int | None = None
        self.stopping = False
        self.wall_offset = 0.0
        self._number = 0
        self._ref = self.rng.randrange(0x10000)
        self.mo_load = MoLoad()
        """POST /v1/mo/load: MOs at a steady rate and the time to their replies (moload.py)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: Scheduler | None = None
        self._server: asyncio.Server | None = None
        self._tls_server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._drop_timer: asyncio.TimerHandle | None = None
        self._session_config = SessionConfig(
            response_timeout=config.smpp.response_timeout,
            enquire_link_interval=config.smpp.enquire_link_interval,
            bind_timeout=config.smpp.bind_timeout,
        )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def scheduler(self) -> Scheduler:
        assert self._scheduler is not None, "start() first"
        return self._scheduler

    def wall_time(self) -> float:
        assert self._loop is not None
        return self._loop.time() + self.wall_offset

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        now = loop.time()
        self.wall_offset = time.time() - now
        self.stats = Stats(now)
        self._scheduler = Scheduler(loop)
        # Message ids start from the clock so that a restarted simulator does not hand out
        # ids a gateway still holds mappings for.
        self._number = int(time.time()) << 20
        self.accounts = {a.system_id: Account(a, self, self.rng, now) for a in self.config.accounts}
        if self.config.subscribers.reply_share > 0:
            self.subscribers = Subscribers(self.config.subscribers, self, self.rng)
        smpp = self.config.smpp
        control = self.config.control
        self._server = await loop.create_server(
            self._new_connection, smpp.host, smpp.port, reuse_address=True, backlog=512
        )
        try:
            self.smpp_port = self._server.sockets[0].getsockname()[1]
            if smpp.tls is not None:
                self._tls_server = await loop.create_server(
                    self._new_connection,
                    smpp.host,
                    smpp.tls.port,
                    ssl=tls_context(smpp.tls),
                    ssl_handshake_timeout=smpp.bind_timeout,
                    reuse_address=True,
                    backlog=512,
                )
                self.smpp_tls_port = self._tls_server.sockets[0].getsockname()[1]
            app = make_app(self, max_body_bytes=control.max_body_bytes)
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            self._runner = runner
            site = web.TCPSite(runner, control.host, control.port, reuse_address=True)
            await site.start()
            address = runner.addresses[0]
            self.control_port = int(address[1])
        except BaseException:
            await self._close_listeners()
            raise
        self.set_faults(self.faults)
        tls: dict[str, Any] = {"smpp_tls": f"{smpp.host}:{self.smpp_tls_port}"} if smpp.tls else {}
        log_event(
            log,
            "sim.started",
            smpp=f"{smpp.host}:{self.smpp_port}",
            control=f"{control.host}:{self.control_port}",
            accounts=",".join(self.accounts),
            **tls,
        )

    async def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        log_event(log, "sim.stopping", connections=len(self.connections))
        if self._drop_timer is not None:
            self._drop_timer.cancel()
            self._drop_timer = None
        if self._scheduler is not None:
            self._scheduler.stop()
        if self._server is not None:
            self._server.close()
        if self._tls_server is not None:
            self._tls_server.close()
        await self._unbind_all()
        await self._close_listeners()
        log_event(log, "sim.stopped")

    async def _unbind_all(self) -> None:
        conns = [h.conn for h in list(self.connections) if h.conn is not None]
        await unbind_all(conns, UNBIND_GRACE_SECONDS)

    async def _close_listeners(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._tls_server is not None:
            self._tls_server.close()
            await self._tls_server.wait_closed()
            self._tls_server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _new_connection(self) -> SmppConnection:
        assert self._loop is not None
        session = SimSession(Role.SMSC, self._session_config, self._loop.time())
        return FastConnection(session, EsmeConnection(self), self)

    # -- state -----------------------------------------------------------------------------

    def next_number(self) -> int:
        self._number += 1
        return self._number

    def set_faults(self, faults: Faults) -> None:
        previous = self.faults
        self.faults = faults
        self.faults_affect_submit = faults.affects_submit
        if self._loop is None:
            return
        if faults.drop_link_every != previous.drop_link_every or self._drop_timer is None:
            if self._drop_timer is not None:
                self._drop_timer.cancel()
                self._drop_timer = None
            if faults.drop_link_every > 0 and not self.stopping:
                self._drop_timer = self._loop.call_later(faults.drop_link_every, self._drop_links)
        if previous.black_hole and not faults.black_hole:
            for account in self.accounts.values():
                account.drain()

    def _drop_links(self) -> None:
        self._drop_timer = None
        dropped = 0
        for handler in list(self.connections):
            if handler.conn is not None:
                handler.conn.close()
                dropped += 1
        self.stats.links_dropped += dropped
        if dropped:
            log_event(log, "sim.links_dropped", connections=dropped)
        every = self.faults.drop_link_every
        if every > 0 and not self.stopping and self._loop is not None:
            self._drop_timer = self._loop.call_later(every, self._drop_links)

    def binds(self) -> list[dict[str, Any]]:
        rows = []
        for handler in self.connections:
            conn = handler.conn
            if conn is None or not handler.bound or handler.account is None:
                continue
            bind_type = conn.session.bind_type
            rows.append(
                {
                    "system_id": handler.account.system_id,
                    "bind_type": bind_type.value if bind_type else None,
                    "peer": handler.peer,
                    "deliver_in_flight": conn.session.in_flight,
                    "submit_outstanding": handler.outstanding,
                }
            )
        return sorted(rows, key=lambda r: (r["system_id"], r["peer"]))

    def stats_snapshot(self) -> dict[str, Any]:
        assert self._loop is not None
        return self.stats.snapshot(
            self._loop.time(),
            binds=sum(len(a.binds) for a in self.accounts.values()),
            binds_by_account={a.system_id: len(a.binds) for a in self.accounts.values()},
            receipts_pending=sum(
                1 for a in self.accounts.values() for item in a.held if item.state
            ),
            mo_pending=sum(1 for a in self.accounts.values() for item in a.held if not item.state),
            connections_open=len(self.connections),
            scheduled=len(self.scheduler),
        )

    def reset_stats(self) -> None:
        assert self._loop is not None
        self.stats.reset(self._loop.time())
        if self.subscribers is not None:
            self.subscribers.replied.clear()

    def recent_mo(self, limit: int) -> list[dict[str, Any]]:
        if self.mo_log is None or limit <= 0:
            return []
        return [
            {
                "sent_at": datetime.fromtimestamp(wall).isoformat(timespec="milliseconds"),
                "source": source,
                "destination": destination,
                "text": text,
            }
            for wall, source, destination, text in list(self.mo_log)[-limit:]
        ]

    def recent_messages(self, limit: int) -> list[dict[str, Any]]:
        if self.messages is None or limit <= 0:
            return []
        items = list(self.messages)[-limit:]
        out = []
        for wall, system_id, message_id, received in items:
            pdu = decode(received) if isinstance(received, bytes) else received
            assert isinstance(pdu, SubmitSm | DataSm)
            text, concat = message_text(pdu)
            out.append(
                {
                    "message_id": message_id,
                    "system_id": system_id,
                    "command": "submit_sm" if isinstance(pdu, SubmitSm) else "data_sm",
                    "received_at": datetime.fromtimestamp(wall).isoformat(timespec="milliseconds"),
                    "source": pdu.source_addr,
                    "destination": pdu.destination_addr,
                    "text": text,
                    "data_coding": pdu.data_coding,
                    "esm_class": pdu.esm_class,
                    "registered_delivery": pdu.registered_delivery,
                    "priority_flag": pdu.priority_flag if isinstance(pdu, SubmitSm) else 0,
                    "validity_period": pdu.validity_period if isinstance(pdu, SubmitSm) else "",
                    "concat": (
                        {"ref": concat[0], "total": concat[1], "seq": concat[2]} if concat else None
                    ),
                    "payload": pdu.get_tlv(Tag.MESSAGE_PAYLOAD) is not None,
                }
            )
        return out

    # -- MO --------------------------------------------------------------------------------

    def account_for_mo(self, system_id: str | None) -> Account:
        if system_id is not None:
            account = self.accounts.get(system_id)
            if account is None:
                raise UnknownAccount(f"account: no account with system_id {system_id!r}")
            if not account.receivers:
                raise NoReceiver(f"no receiver or transceiver of {system_id!r} is bound")
            return account
        for account in self.accounts.values():
            if account.receivers:
                return account
        raise NoReceiver("no receiver or transceiver is bound")

    def send_mo(
        self,
        account: Account,
        *,
        source: str,
        destination: str,
        text: str,
        concat: ConcatMethod = ConcatMethod.UDH8,
        parts: int | None = None,
        shuffle: bool = False,
    ) -> tuple[int, int]:
        """Queue an MO to the account's receivers. Returns (parts, ref). Raises MoError."""
        self._ref = (self._ref + 1) & 0xFFFF
        mo = build_mo(
            text,
            source=source,
            destination=destination,
            concat=concat,
            ref=self._ref,
            parts=parts,
        )
        pdus = mo.parts
        if shuffle:
            self.rng.shuffle(pdus)
        for pdu in pdus:
            account.deliver(Outgoing(pdu, 0))
        self.stats.mo_sent += 1
        if self.mo_log is not None:
            self.mo_log.append((time.time(), source, destination, text))
        return len(pdus), mo.ref
