"""The handler of one ESME connection: binds, submit_sm / data_sm, the responses to our
deliver_sm, and the fault switches that replace a normal answer.

It sits behind the shared ``gateway.smpp.aio.SmppConnection`` adapter and its sans-IO
``Session`` (SMSC role): the session answers enquire_link, unbind and PDUs in the wrong state
by itself, and hands the handler bind requests, submit_sm/data_sm, and the responses to the
deliver_sm we send. Bind acceptance, receipt wishes and bind-type rules are the SMSC role's
(``gateway.smpp.smsc``), shared with the gateway's SMPP server front.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

from gateway.logs import log_event
from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import CommandId, EsmClass, Status, Tag
from gateway.smpp.errors import EncodeError, LocalProtocolError
from gateway.smpp.pdu import (
    DataSmResp,
    GenericNack,
    Pdu,
    QuerySm,
    SubmitSmResp,
)
from gateway.smpp.session import (
    BindRequested,
    Event,
    LinkFailed,
    ProtocolError,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    State,
    Unbound,
    UnexpectedResponse,
)
from gateway.smpp.smsc import (
    BIND_STOPPING,
    BIND_UNKNOWN_SYSTEM_ID,
    BIND_WRONG_PASSWORD,
    BindRefusal,
    Received,
    accept_bind,
    bind_type_refusal,
    max_binds_refusal,
    receipt_requested,
    receives,
    wants_receipt,
)
from smsc_simulator.account import Account, Outgoing
from smsc_simulator.fastpath import FastConnection
from smsc_simulator.faults import Faults
from smsc_simulator.stats import GENERIC_NACK_KEY

if TYPE_CHECKING:
    from smsc_simulator.server import Simulator

log = logging.getLogger("smsc_sim")

RESPONSE_AFTER_RECEIPT_SECONDS: Final = 0.02
"""receipt_before_response with the receipt on another bind: hold the submit_sm_resp this
long so the receipt is on the wire first (both are local writes; 20 ms is plenty)."""

GARBAGE_OCTETS: Final = (16, 64)
"""Length range of the random bytes the ``garbage`` fault writes instead of a response."""

_SUBMIT_SM: Final = int(CommandId.SUBMIT_SM)
_DATA_SM: Final = int(CommandId.DATA_SM)
_GENERIC_NACK: Final = int(CommandId.GENERIC_NACK)

_RETRY_LATER: Final = frozenset(
    {Status.RX_T_APPN, Status.RSYSERR, Status.RTHROTTLED, Status.RMSGQFUL}
)
"""deliver_sm_resp statuses after which an SMSC offers the deliver_sm again."""


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
        account.peak_binds = max(account.peak_binds, len(account.binds))
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
