"""The simulator's fast path: the common case of a bulk run handled straight from the bytes.

At 50,000 submit_sm a second the general path (decode into a dataclass, one session event
per PDU, a DeliverSm per receipt, a ``_Pending`` and a deadline per deliver_sm) costs more
than the simulator's own work. For the common case, ``FastConnection`` does the same job
on the wire bytes:

- every complete frame of a read is cut with ``struct.unpack_from`` (no copy per frame);
- a well-formed submit_sm (no TLVs, no UDH; any data_coding) is parsed for the few fields
  the simulator needs; its submit_sm_resp is packed directly, in the order of the requests;
- the receipts of one read share one scheduler entry (the delay is fixed in a bulk run; a
  random delay gets one entry per receipt); each receipt is a ``bytes`` body built from
  pieces (``receipt_body``, octet for octet what ``encode(build_receipt(...))`` writes), the
  header with its sequence number packed when it is sent;
- a deliver_sm sent this way is tracked by sequence number in a plain dict (its deadline is
  the connection's one timer); its deliver_sm_resp is matched by header only.

Everything else takes the general path, in order, each run of such frames in one call to
the session (``SimSession`` is the gateway's ``Session`` plus a few primitives, so both
paths share one sequence counter, one window and one output queue): binds, enquire_link,
unbind, data_sm, query_sm, submit_sm with TLVs or UDH, odd PDUs, and every submit_sm while
an account has a TPS limit or a submit window in use, while subscribers are scripted, while
an MO load runs, or while a fault switch that changes answers is on (so every fault
behaves as before; only the responses to receipts the fast path already sent are still
matched by it). A connection that is not bound, and the rest of a stream after a frame
with an impossible command_length (the session's framer then owns the stream), go whole
through ``SmppConnection.data_received``.

Counters stay exact: the fast path adds to the same ``Stats`` fields the general path does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any, Final

from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import HEADER_LENGTH, CommandId, Tag
from gateway.smpp.errors import DecodeError
from gateway.smpp.pdu import decode
from gateway.smpp.receipt import MessageState
from gateway.smpp.session import Session, State
from gateway.smpp.text import decode_short_message
from smsc_simulator.dlr import RECEIPT_TEXT_CHARS, text_field

if TYPE_CHECKING:
    from collections import deque

    from smsc_simulator.account import Outgoing
    from smsc_simulator.esme import EsmeConnection
    from smsc_simulator.server import Simulator
    from smsc_simulator.stats import Stats

log = logging.getLogger("smsc_sim")

_TCP_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)
"""Linux only; elsewhere ``smpp.tcp_quickack`` does nothing."""
_HEADER: Final = struct.Struct(">IIII")
_U32: Final = struct.Struct(">I")
_TLV_HEAD: Final = struct.Struct(">HH")

_SUBMIT_SM: Final = int(CommandId.SUBMIT_SM)
_SUBMIT_SM_RESP: Final = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM: Final = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP: Final = int(CommandId.DELIVER_SM_RESP)
_GENERIC_NACK: Final = int(CommandId.GENERIC_NACK)
_UDHI: Final = 0x40
_DELIVERED: Final = int(MessageState.DELIVERED)

_SUBMIT_STATES: Final = frozenset({State.BOUND_TX, State.BOUND_TRX})
"""States in which the SMSC takes submit_sm (the session's ``_ACCEPTS`` table)."""
_DELIVER_STATES: Final = frozenset({State.BOUND_RX, State.BOUND_TRX})
"""States in which the SMSC may send deliver_sm (the session's ``_SENDS`` table)."""
_RESPONSE_STATES: Final = frozenset(
    {State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX, State.UNBINDING}
)

# deliver_sm fields between the addresses and sm_length, as build_receipt leaves them:
# esm_class 0x04 (SMSC receipt), protocol_id, priority_flag, schedule_delivery_time "",
# validity_period "", registered_delivery, replace_if_present_flag, data_coding,
# sm_default_msg_id.
_RECEIPT_MIDDLE: Final = b"\x04\x00\x00\x00\x00\x00\x00\x00\x00"


def _identity_bytes(data_coding: int) -> bytes:
    """The octets that decode to the same printable ASCII character in this data_coding."""
    return bytes(
        b for b in range(0x20, 0x7F) if decode_short_message(bytes((b,)), data_coding) == chr(b)
    )


_ASCII_SAFE: Final[dict[int, bytes]] = {dc: _identity_bytes(dc) for dc in (0x00, 0x01, 0x03)}
"""Per data_coding, the octets a short_message may hold for its receipt text to be the
octets themselves (GSM 03.38 differs from ASCII at @ $ [ \\ ] ^ _ ` { | } ~)."""


def receipt_text_field(short_message: bytes, data_coding: int) -> bytes:
    """The receipt's text: field for a short_message (``dlr.text_field`` of its text): the
    octets themselves when they mean exactly those ASCII characters, else decoded."""
    safe = _ASCII_SAFE.get(data_coding)
    if safe is not None and not short_message.translate(None, safe):
        return short_message[:RECEIPT_TEXT_CHARS]
    return text_field(decode_short_message(short_message, data_coding))


_STATE_TLV: Final[dict[int, bytes]] = {
    int(state): _TLV_HEAD.pack(Tag.MESSAGE_STATE, 1) + bytes((state,)) for state in MessageState
}


def network_error_tlv(value: bytes) -> bytes:
    return _TLV_HEAD.pack(Tag.NETWORK_ERROR_CODE, len(value)) + value


def receipt_body(
    addresses: bytes, short_message: bytes, receipt_id: bytes | None, state: int, neterr: bytes
) -> bytes:
    """The body of a receipt deliver_sm, octet for octet what ``encode(build_receipt(...))``
    writes after the header. ``addresses`` is the submit_sm's destination block then its
    source block (ton, npi, address, NUL each); ``receipt_id`` None leaves the TLVs out,
    else ``neterr`` is the network_error_code TLV."""
    if receipt_id is None:
        return b"".join(
            (b"\0", addresses, _RECEIPT_MIDDLE, bytes((len(short_message),)), short_message)
        )
    return b"".join(
        (
            b"\0",
            addresses,
            _RECEIPT_MIDDLE,
            bytes((len(short_message),)),
            short_message,
            _TLV_HEAD.pack(Tag.RECEIPTED_MESSAGE_ID, len(receipt_id) + 1),
            receipt_id,
            b"\0",
            _STATE_TLV[state],
            neterr,
        )
    )


class SimSession(Session):
    """The gateway's session, plus what the fast path needs to share its state: one output
    queue, one sequence counter, one window, one idle clock."""

    def output_queue(self) -> list[bytes]:
        """The queue ``data_to_send`` empties: append encoded PDUs to it, in order."""
        return self._out

    def queue_raw(self, data: bytes) -> None:
        """Queue encoded bytes behind whatever the session queued before."""
        self._out.append(data)

    def claim_sequence(self, also_taken: dict[int, Any]) -> int:
        """A sequence number for a request tracked outside the session, and its window place."""
        seq = self._next_sequence()
        while seq in self._pending or seq in also_taken:  # only after a wrap
            seq = self._next_sequence()
        self._in_window += 1
        return seq

    def release_window(self) -> None:
        if self._in_window > 0:
            self._in_window -= 1

    def touch(self, now: float) -> None:
        """Whole PDUs arrived at ``now`` (the keep-alive clock, as ``receive_data`` keeps it)."""
        self._last_rx = now


class FastConnection(SmppConnection):
    """``SmppConnection`` with the fast path in front of the session (see the module doc)."""

    def __init__(self, session: SimSession, handler: EsmeConnection, sim: Simulator) -> None:
        super().__init__(session, handler)
        self.sim_session = session
        self.esme = handler
        self.sim = sim
        self._buf = b""
        self._framing = True
        """False once a frame had an impossible command_length: the session frames the rest."""
        self.fast_pending: dict[int, tuple[Outgoing, float]] = {}
        """deliver_sm sent by the fast path: sequence number -> (item, deadline)."""
        self._quickack: Any = None
        """The socket, when ``smpp.tcp_quickack`` is on: TCP_QUICKACK is set after each read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.sim.config.smpp.tcp_quickack and _TCP_QUICKACK is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                self._quickack = sock
                self._ack_now()
        super().connection_made(transport)

    def _ack_now(self) -> None:
        try:
            self._quickack.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        except OSError:  # the socket is closing: nothing left to acknowledge
            self._quickack = None

    # -- input -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._quickack is not None:
            self._ack_now()
        if not self._framing:
            super().data_received(data)
            return
        if self._buf:
            data = self._buf + data
        total = len(data)
        pos = 0
        max_length = self.session.config.max_pdu_length
        unpack = _U32.unpack_from
        while total - pos >= HEADER_LENGTH:
            length = unpack(data, pos)[0]
            if length < HEADER_LENGTH or length > max_length:
                # Lost framing or a huge PDU: the session's framer reports and skips it,
                # and keeps the stream from here on.
                self._framing = False
                self._buf = b""
                super().data_received(data)
                return
            if total - pos < length:
                break
            pos += length
        self._buf = data[pos:] if pos < total else b""
        if not pos:
            return
        if pos < total:
            data = data[:pos]
        sim = self.sim
        if self.session.state not in _RESPONSE_STATES:
            super().data_received(data)
            return
        try:
            self._fast(data, pos)
        except Exception:
            sim.stats.internal_errors += 1
            log.exception("smpp.fast_path_failed peer=%s", self.esme.peer)
        self._after_input()

    def _fast(self, data: bytes, total: int) -> None:
        """Handle ``data`` (whole frames only) in order: what the fast path takes inline,
        each run of other frames through the session in one call."""
        session = self.sim_session
        now = self._loop.time()
        sim = self.sim
        stats = sim.stats
        handler = self.esme
        account = handler.account
        submit_ok = (
            account is not None
            and handler.bound
            and not sim.faults_affect_submit
            and account.bucket is None
            and sim.subscribers is None
            and not sim.mo_load.waiting
            and (not account.window or handler.outstanding < account.window)
        )
        pending = self.fast_pending
        queue = session.output_queue().append
        ascii_safe = _ASCII_SAFE
        unpack_header = _HEADER.unpack_from
        pack_header = _HEADER.pack
        find = data.find
        submits = 0
        responses = 0
        delivered = 0
        receipts: list[tuple[int, bytes, float, int, bytes]] = []
        if account is not None:
            id_spec = account.format_id.spec
            outcome = account.outcome
            only_state = None if outcome.only is None else int(outcome.only)
            fixed_delay = account.receipt_delay.fixed
            messages = sim.messages
            system_id = account.system_id
        wall = now + sim.wall_offset
        run = -1  # start of the frames waiting for the general path
        pos = 0
        while pos < total:
            length, command_id, status, seq = unpack_header(data, pos)
            end = pos + length
            if command_id == _SUBMIT_SM and submit_ok:
                assert account is not None
                # service_type, then source (ton, npi, addr) and destination (ton, npi, addr)
                nul = find(b"\0", pos + HEADER_LENGTH, end)
                src = nul + 1
                nul = find(b"\0", src + 2, end) if nul >= 0 else -1
                dst = nul + 1
                nul = find(b"\0", dst + 2, end) if nul >= 0 else -1
                q = nul + 1  # esm_class, protocol_id, priority_flag, schedule..., validity...
                nul = find(b"\0", q + 3, end) if nul >= 0 else -1
                nul = find(b"\0", nul + 1, end) if nul >= 0 else -1
                r = nul + 1  # registered_delivery, replace, data_coding, default_msg_id, sm_length
                if nul < 0 or r + 5 > end or data[q] & _UDHI or r + 5 + data[r + 4] != end:
                    # TLVs, UDH, or not well-formed: the session and the general handler.
                    if run < 0:
                        run = pos
                    pos = end
                    continue
                if run >= 0:
                    self._general(data[run:pos], now)
                    run = -1
                if session.state not in _SUBMIT_STATES:
                    run = pos
                    pos = end
                    continue
                submits += 1
                number = sim.next_number()
                message_id = format(number, id_spec)
                mid = message_id.encode("ascii")
                queue(pack_header(17 + len(mid), _SUBMIT_SM_RESP, 0, seq) + mid + b"\0")
                if messages is not None:
                    messages.append((wall, system_id, message_id, data[pos:end]))
                registered = data[r]
                # receipt_requested and wants_receipt (gateway.smpp.smsc), inlined: hot loop
                if registered & 3:
                    state = int(outcome()) if only_state is None else only_state
                    wanted = registered & 3
                    if wanted == 1 or (wanted == 2 and state != _DELIVERED):
                        stats.receipts_scheduled += 1
                        short_message = data[r + 5 : end]
                        safe = ascii_safe.get(data[r + 2])
                        if safe is not None and not short_message.translate(None, safe):
                            text = short_message[:RECEIPT_TEXT_CHARS]
                        else:
                            text = receipt_text_field(short_message, data[r + 2])
                        entry = (number, data[dst:q] + data[src:dst], wall, state, text)
                        if fixed_delay is None:
                            sim.scheduler.call_at(
                                now + account.receipt_delay(), account.fast_receipts_due, [entry]
                            )
                        else:
                            receipts.append(entry)
            elif (command_id == _DELIVER_SM_RESP or command_id == _GENERIC_NACK) and (
                seq in pending
            ):
                if run >= 0:
                    self._general(data[run:pos], now)
                    run = -1
                if session.state not in _RESPONSE_STATES:
                    run = pos  # unbound or closed by a PDU before it: nothing more is read
                    pos = end
                    continue
                if length > HEADER_LENGTH and not (length == 17 and data[pos + 16] == 0):
                    try:  # a message_id or a cut body: the codec says whether it is valid
                        decode(data[pos:end])
                    except DecodeError as exc:
                        stats.protocol_errors[exc.command_status] += 1
                        pos = end
                        continue
                item, _deadline = pending.pop(seq)
                session.release_window()
                responses += 1
                if status or command_id == _GENERIC_NACK:
                    handler.fast_response(item, command_id == _GENERIC_NACK, status)
                else:
                    delivered += 1  # ROK: counted below, nothing else to do
            elif run < 0:
                run = pos
            pos = end
        if run >= 0:
            self._general(data[run:total], now)
        if submits:
            stats.submit_sm += submits
            stats.parts_received += submits
            stats.submit_sm_by_status[0] += submits
            stats.submit_rate.tick(now, submits)
        if delivered:
            stats.deliver_sm_resp_by_status[0] += delivered
        if submits or responses:
            session.touch(now)
        if receipts:
            assert account is not None and fixed_delay is not None
            sim.scheduler.call_at(now + fixed_delay, account.fast_receipts_due, receipts)
        if responses and account is not None and account.held:
            account.drain_to(handler)

    def _general(self, frames: bytes, now: float) -> None:
        """Whole frames through the session and the general handler (the session's output
        joins the queue behind what the fast path queued before)."""
        events = self.session.receive_data(frames, now)
        if events:
            self._deliver(events)

    # -- deliver_sm out --------------------------------------------------------------------

    def send_fast(self, item: Outgoing) -> bool:
        """Send a receipt built by the fast path; False when this bind cannot send now."""
        session = self.sim_session
        if self._closing or session.state not in _DELIVER_STATES:
            return False
        body = item.raw
        assert body is not None
        pending = self.fast_pending
        seq = session.claim_sequence(pending)
        now = self._loop.time()
        deadline = now + session.config.response_timeout
        pending[seq] = (item, deadline)
        session.queue_raw(_HEADER.pack(HEADER_LENGTH + len(body), _DELIVER_SM, 0, seq) + body)
        self._schedule_flush()
        timer_at = self._timer_at
        if timer_at is None or timer_at > deadline:
            self._arm(deadline)
        return True

    def send_held(self, held: deque[Outgoing], stats: Stats) -> None:
        """``send_fast`` for the front of an account's queue, as many as the window takes,
        stopping at the first item of the general path (an MO part)."""
        session = self.sim_session
        if self._closing or session.state not in _DELIVER_STATES or not self.esme.bound:
            return
        room = session.window_free
        if room <= 0 or not held or held[0].raw is None:
            return
        pending = self.fast_pending
        claim = session.claim_sequence
        queue = session.output_queue().append
        pack = _HEADER.pack
        by_state = stats.receipts_by_state
        deadline = self._loop.time() + session.config.response_timeout
        sent = counted = 0
        while held and sent < room:
            item = held[0]
            body = item.raw
            if body is None:
                break
            held.popleft()
            seq = claim(pending)
            pending[seq] = (item, deadline)
            queue(pack(HEADER_LENGTH + len(body), _DELIVER_SM, 0, seq) + body)
            sent += 1
            if not item.counted:
                item.counted = True
                counted += 1
                by_state[item.state] += 1
        stats.receipts_sent += counted
        self._schedule_flush()
        timer_at = self._timer_at
        if timer_at is None or timer_at > deadline:
            self._arm(deadline)

    # -- time and loss ---------------------------------------------------------------------

    def _after_input(self) -> None:
        super()._after_input()
        if self.fast_pending:
            self._arm(next(iter(self.fast_pending.values()))[1])

    def _on_timer(self) -> None:
        pending = self.fast_pending
        if pending and self.session.state is not State.CLOSED:
            now = self._loop.time()
            expired: list[Outgoing] = []
            while pending:
                seq, (item, deadline) = next(iter(pending.items()))
                if deadline > now:
                    break
                del pending[seq]
                self.sim_session.release_window()
                expired.append(item)
            for item in expired:
                self.esme.fast_lost(self, item)
        super()._on_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        lost = list(self.fast_pending.values())
        self.fast_pending.clear()
        super().connection_lost(exc)
        for item, _deadline in lost:
            self.esme.fast_lost(self, item)


__all__ = [
    "FastConnection",
    "SimSession",
    "network_error_tlv",
    "receipt_body",
    "receipt_text_field",
]
