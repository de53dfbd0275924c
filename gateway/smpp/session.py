"""The SMPP session as a state machine over bytes and time: no sockets, no clocks, no logging.

The caller feeds received bytes with ``receive_data(data, now)`` and gets events back; it
queues PDUs with ``send_request`` / ``send_response`` and collects the wire bytes with
``data_to_send()``; it asks ``next_deadline()`` for the one moment the session needs to be
woken and calls ``handle_timer(now)`` then. Time is a float of seconds on any monotonic clock
the caller chooses, so tests drive timers without sleeping (the aioquic model).

Both roles live here: an ESME (the gateway towards a carrier) and an SMSC (the simulator,
and the gateway's own SMPP front). Which PDUs each side may receive in each state is one
table, ``_ACCEPTS``; everything the session answers by itself (enquire_link, unbind, PDUs in
the wrong state, undecodable PDUs) is answered here, so every adapter behaves the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from gateway.smpp.constants import (
    HEADER_LENGTH,
    MAX_PDU_LENGTH,
    MAX_SEQUENCE_NUMBER,
    RESPONSE_BIT,
    CommandId,
    Status,
)
from gateway.smpp.errors import DecodeError, LocalProtocolError, WindowFull
from gateway.smpp.pdu import (
    Bind,
    BindReceiver,
    BindResp,
    BindTransceiver,
    BindTransmitter,
    EnquireLink,
    Framer,
    GenericNack,
    Pdu,
    Unbind,
    decode,
    encode,
)


class Role(Enum):
    ESME = "esme"
    SMSC = "smsc"

    # Enum hashes by name in Python code; members are singletons compared by identity, so
    # the C identity hash is equivalent and 3x cheaper (a lookup per request sent).
    __hash__ = object.__hash__


class BindType(Enum):
    TX = "tx"
    RX = "rx"
    TRX = "trx"


class State(Enum):
    OPEN = "open"  # connected, not bound
    BINDING = "binding"  # ESME: bind sent, waiting for its response
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"  # unbind sent, waiting for unbind_resp; still draining
    CLOSED = "closed"  # the transport should be closed

    __hash__ = object.__hash__  # as Role's: is_bound and send_request ask per message


BOUND_STATES: Final = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})

BIND_CLASSES: Final[dict[BindType, type[Bind]]] = {
    BindType.TX: BindTransmitter,
    BindType.RX: BindReceiver,
    BindType.TRX: BindTransceiver,
}
_BOUND_STATE: Final = {
    BindType.TX: State.BOUND_TX,
    BindType.RX: State.BOUND_RX,
    BindType.TRX: State.BOUND_TRX,
}
_BIND_TYPE_OF: Final[dict[int, BindType]] = {
    CommandId.BIND_TRANSMITTER: BindType.TX,
    CommandId.BIND_RECEIVER: BindType.RX,
    CommandId.BIND_TRANSCEIVER: BindType.TRX,
}

C = CommandId
_BINDS: Final = frozenset({C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER})
_ALWAYS: Final = frozenset({C.ENQUIRE_LINK, C.GENERIC_NACK})
_ESME_FROM_SMSC_RX: Final = frozenset({C.DELIVER_SM, C.DATA_SM, C.ALERT_NOTIFICATION})
_SMSC_FROM_ESME_TX: Final = frozenset(
    {C.SUBMIT_SM, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM}
)

# Requests each side accepts from its peer in each state (spec 2.3 and 4). Responses are
# matched against what we sent, so they need no row. A request outside its row is answered
# with ESME_RINVBNDSTS (or ESME_RALYBND for a second bind), and the bind stays up.
_ACCEPTS: Final[dict[tuple[Role, State], frozenset[int]]] = {
    (Role.ESME, State.OPEN): _ALWAYS | {C.OUTBIND},
    (Role.ESME, State.BINDING): _ALWAYS,
    (Role.ESME, State.BOUND_TX): _ALWAYS | {C.UNBIND, C.DATA_SM},
    (Role.ESME, State.BOUND_RX): _ALWAYS | {C.UNBIND} | _ESME_FROM_SMSC_RX,
    (Role.ESME, State.BOUND_TRX): _ALWAYS | {C.UNBIND} | _ESME_FROM_SMSC_RX,
    (Role.ESME, State.UNBINDING): _ALWAYS | {C.UNBIND} | _ESME_FROM_SMSC_RX,
    (Role.SMSC, State.OPEN): _ALWAYS | _BINDS,
    (Role.SMSC, State.BOUND_TX): _ALWAYS | {C.UNBIND} | _SMSC_FROM_ESME_TX,
    (Role.SMSC, State.BOUND_RX): _ALWAYS | {C.UNBIND},
    (Role.SMSC, State.BOUND_TRX): _ALWAYS | {C.UNBIND} | _SMSC_FROM_ESME_TX,
    (Role.SMSC, State.UNBINDING): _ALWAYS | {C.UNBIND},
}

# Requests we may send in each state. Binds are sent through ``bind()``.
_SENDS: Final[dict[tuple[Role, State], frozenset[int]]] = {
    (Role.ESME, State.BOUND_TX): _SMSC_FROM_ESME_TX | {C.ENQUIRE_LINK},
    (Role.ESME, State.BOUND_RX): frozenset({C.ENQUIRE_LINK}),
    (Role.ESME, State.BOUND_TRX): _SMSC_FROM_ESME_TX | {C.ENQUIRE_LINK},
    (Role.SMSC, State.BOUND_TX): frozenset({C.ENQUIRE_LINK, C.DATA_SM}),
    (Role.SMSC, State.BOUND_RX): frozenset(
        {C.DELIVER_SM, C.DATA_SM, C.ALERT_NOTIFICATION, C.ENQUIRE_LINK}
    ),
    (Role.SMSC, State.BOUND_TRX): frozenset(
        {C.DELIVER_SM, C.DATA_SM, C.ALERT_NOTIFICATION, C.ENQUIRE_LINK}
    ),
}

# Requests that take a place in the window. enquire_link, bind and unbind never wait for
# room: a full window must not stop the keep-alive or the shutdown.
_WINDOWED: Final = frozenset(
    {C.SUBMIT_SM, C.DELIVER_SM, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM}
)

# Requests that carry no response.
_NO_RESPONSE: Final = frozenset({C.ALERT_NOTIFICATION, C.OUTBIND})


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Timers and limits of one session. Defaults are the field values in the notes."""

    window: int = 10
    """Requests in flight without a response. The spec sets no number; carriers ask 10-100."""
    response_timeout: float = 60.0
    """Seconds to wait for a response before reporting a timeout (field default 60 s)."""
    enquire_link_interval: float = 30.0
    """Send enquire_link after this many idle seconds (carriers ask for 20-60 s)."""
    bind_timeout: float = 30.0
    """ESME: wait this long for bind_resp. SMSC: wait this long for a bind after connect."""
    max_pdu_length: int = MAX_PDU_LENGTH


# -- events -------------------------------------------------------------------------------


class Event:
    __slots__ = ()


@dataclass(slots=True)
class RequestReceived(Event):
    """A request from the peer for the application; it must answer it with send_response
    (alert_notification and outbind take no answer)."""

    pdu: Pdu


@dataclass(slots=True)
class BindRequested(Event):
    """SMSC role: an ESME asks to bind. Answer with accept_bind() or reject_bind()."""

    pdu: Bind
    bind_type: BindType


@dataclass(slots=True)
class ResponseReceived(Event):
    """The response (or generic_nack) to one of our requests."""

    request: Pdu
    response: Pdu
    context: Any
    sent_at: float


@dataclass(slots=True)
class RequestTimedOut(Event):
    """No response within response_timeout. The peer may or may not have acted on it."""

    request: Pdu
    context: Any
    sent_at: float


@dataclass(slots=True)
class Bound(Event):
    bind_type: BindType
    system_id: str


@dataclass(slots=True)
class BindFailed(Event):
    """ESME role: the bind was refused (command_status) or not answered (status None)."""

    command_status: int | None


@dataclass(slots=True)
class Unbound(Event):
    """The session is closed by an unbind handshake; close the transport after flushing."""

    by_peer: bool


@dataclass(slots=True)
class LinkFailed(Event):
    """The link cannot be trusted any more; close the transport."""

    reason: str


@dataclass(slots=True)
class ProtocolError(Event):
    """The peer sent a PDU we could not take; it was answered with generic_nack or an error
    response. Informational unless ``error.fatal`` (then LinkFailed follows)."""

    error: DecodeError


@dataclass(slots=True)
class UnexpectedResponse(Event):
    """A response that matches no request in flight (late after a timeout, or bogus)."""

    pdu: Pdu


@dataclass(slots=True)
class _Pending:
    request: Pdu
    context: Any
    sent_at: float
    deadline: float
    windowed: bool


class Session:
    """One SMPP session, either role. Not thread-safe; one per connection."""

    def __init__(self, role: Role, config: SessionConfig | None = None, now: float = 0.0) -> None:
        self.role = role
        self.config = config or SessionConfig()
        self.state = State.OPEN
        self.bind_type: BindType | None = None
        self.system_id = ""  # ESME role: the SMSC's system_id; SMSC role: the ESME's
        self._framer = Framer(self.config.max_pdu_length)
        self._out: list[bytes] = []
        self._next_seq = 1
        self._pending: dict[int, _Pending] = {}
        self._in_window = 0
        self._last_rx = now
        self._bind_deadline: float | None = (
            now + self.config.bind_timeout if role is Role.SMSC else None
        )
        self._pending_bind: Pdu | None = None
        self._probe_in_flight = False

    # -- introspection ---------------------------------------------------------------------

    @property
    def is_bound(self) -> bool:
        return self.state in BOUND_STATES

    @property
    def window_free(self) -> int:
        """How many more windowed requests may be sent now."""
        return self.config.window - self._in_window

    @property
    def in_flight(self) -> int:
        return self._in_window

    def can_send(self, command_id: int) -> bool:
        return command_id in _SENDS.get((self.role, self.state), ())

    # -- output ----------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes queued since the last call, in order, for one write."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _next_sequence(self) -> int:
        seq = self._next_seq
        self._next_seq = 1 if seq >= MAX_SEQUENCE_NUMBER else seq + 1
        return seq

    def _track(self, pdu: Pdu, now: float, context: Any, timeout: float) -> int:
        seq = self._next_sequence()
        while seq in self._pending:  # only after a wrap with a request still unanswered
            seq = self._next_sequence()
        pdu.sequence_number = seq
        data = encode(pdu)  # first: a PDU that cannot be encoded leaves no trace
        windowed = pdu.command_id in _WINDOWED
        if windowed:
            self._in_window += 1
        if pdu.command_id not in _NO_RESPONSE:
            self._pending[seq] = _Pending(pdu, context, now, now + timeout, windowed)
        self._out.append(data)
        return seq

    def send_request(self, pdu: Pdu, now: float, context: Any = None) -> int:
        """Queue a request; returns its sequence number. ``context`` comes back with its
        response or timeout event. Raises WindowFull when no room is left in the window."""
        command_id = pdu.command_id
        if command_id not in _SENDS.get((self.role, self.state), ()):
            raise LocalProtocolError(f"cannot send {pdu.name} in state {self.state.value}")
        if command_id in _WINDOWED and self._in_window >= self.config.window:
            raise WindowFull(f"window of {self.config.window} is full")
        return self._track(pdu, now, context, self.config.response_timeout)

    def send_response(self, pdu: Pdu) -> None:
        """Queue a response; its sequence_number must be the request's (make_response)."""
        if not pdu.is_response:
            raise LocalProtocolError(f"{pdu.name} is not a response")
        self._out.append(encode(pdu))

    # -- bind, unbind ----------------------------------------------------------------------

    def bind(
        self,
        bind_type: BindType,
        now: float,
        *,
        system_id: str,
        password: str,
        system_type: str = "",
        interface_version: int = 0x34,
        addr_ton: int = 0,
        addr_npi: int = 0,
        address_range: str = "",
    ) -> int:
        """ESME role: send the bind. Bound or BindFailed follows."""
        if self.role is not Role.ESME or self.state is not State.OPEN:
            raise LocalProtocolError(f"cannot bind as {self.role.value} in {self.state.value}")
        pdu = BIND_CLASSES[bind_type](
            system_id=system_id,
            password=password,
            system_type=system_type,
            interface_version=interface_version,
            addr_ton=addr_ton,
            addr_npi=addr_npi,
            address_range=address_range,
        )
        self.state = State.BINDING
        self.bind_type = bind_type
        self._bind_deadline = now + self.config.bind_timeout
        return self._track(pdu, now, None, self.config.bind_timeout)

    def accept_bind(self, request: Bind, system_id: str, now: float) -> Event:
        """SMSC role: answer a BindRequested with ROK. Returns the Bound event."""
        bind_type = _BIND_TYPE_OF[request.command_id]
        self._pending_bind = None
        self._bind_deadline = None
        self._last_rx = now
        self.send_response(request.make_response(system_id=system_id))
        self.state = _BOUND_STATE[bind_type]
        self.bind_type = bind_type
        self.system_id = request.system_id
        return Bound(bind_type, request.system_id)

    def reject_bind(self, request: Bind, command_status: int) -> None:
        """SMSC role: refuse a BindRequested. The session stays open for another try."""
        self._pending_bind = None
        self.send_response(request.make_response(command_status))

    def unbind(self, now: float) -> None:
        """Start the unbind handshake. Responses and receipts keep flowing until Unbound."""
        if self.state not in BOUND_STATES:
            raise LocalProtocolError(f"cannot unbind in {self.state.value}")
        self.state = State.UNBINDING
        self._track(Unbind(), now, None, self.config.response_timeout)

    def abandon(self) -> list[RequestTimedOut]:
        """The transport is gone: close, and hand back every request still in flight."""
        self.state = State.CLOSED
        lost = [RequestTimedOut(p.request, p.context, p.sent_at) for p in self._pending.values()]
        self._pending.clear()
        self._in_window = 0
        self._out.clear()
        return lost

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed received bytes; returns the events they produce, in order."""
        if self.state is State.CLOSED:
            return []
        events: list[Event] = []
        for frame in self._framer.feed(data):
            # Activity is a whole PDU, not any byte: a peer whose stream lost its framing
            # (the framer skipping a huge command_length, or waiting for a body that never
            # ends) must still get the enquire_link whose timeout closes the link.
            if not isinstance(frame, DecodeError):
                self._last_rx = now
            if isinstance(frame, DecodeError):
                self._reject(frame, events)
                if frame.fatal:
                    self.state = State.CLOSED
                    events.append(LinkFailed(str(frame)))
                    break
                continue
            try:
                pdu = decode(frame)
            except DecodeError as exc:
                self._reject(exc, events)
                continue
            if self._dispatch(pdu, now, events):
                break  # unbound by the peer: nothing after its unbind is read
        return events

    def _reject(self, error: DecodeError, events: list[Event]) -> None:
        """Answer a PDU we cannot take. A response is never answered (spec 2.9: no reply to
        a response); a request gets generic_nack carrying the error status."""
        events.append(ProtocolError(error))
        if not error.command_id & RESPONSE_BIT or error.fatal:
            self._out.append(
                encode(
                    GenericNack(
                        sequence_number=error.sequence_number, command_status=error.command_status
                    )
                )
            )

    def _dispatch(self, pdu: Pdu, now: float, events: list[Event]) -> bool:
        """Handle one decoded PDU; True when the session is closed by it."""
        command_id = pdu.command_id
        if command_id & RESPONSE_BIT:
            self._on_response(pdu, now, events)
            return self.state is State.CLOSED
        if command_id not in _ACCEPTS.get((self.role, self.state), ()):
            if command_id in _BINDS and self.state in BOUND_STATES:
                status = Status.RALYBND
            else:
                status = Status.RINVBNDSTS
            err = DecodeError(
                f"{pdu.name} not allowed for {self.role.value} in {self.state.value}",
                command_status=status,
                command_id=command_id,
                sequence_number=pdu.sequence_number,
            )
            events.append(ProtocolError(err))
            if pdu.RESPONSE is not None:
                self._out.append(encode(pdu.make_response(status)))
            return False
        if command_id == C.ENQUIRE_LINK:
            self._out.append(encode(pdu.make_response()))
        elif command_id == C.UNBIND:
            self._out.append(encode(pdu.make_response()))
            self.state = State.CLOSED
            events.append(Unbound(by_peer=True))
            return True
        elif command_id in _BINDS:
            assert isinstance(pdu, Bind)
            if self._pending_bind is not None:
                self._out.append(encode(pdu.make_response(Status.RALYBND)))
                return False
            self._pending_bind = pdu
            events.append(BindRequested(pdu, _BIND_TYPE_OF[command_id]))
        else:
            events.append(RequestReceived(pdu))
        return False

    def _on_response(self, pdu: Pdu, now: float, events: list[Event]) -> None:
        pending = self._pending.get(pdu.sequence_number)
        if pending is None:
            events.append(UnexpectedResponse(pdu))
            return
        request = pending.request
        if pdu.command_id != GenericNack.command_id and (
            pdu.command_id != request.command_id | RESPONSE_BIT
        ):
            # A response of the wrong kind for this sequence number: keep waiting for the
            # right one (it may still come) and tell the application. The request stays in
            # place: _pending's insertion order is its deadline order.
            events.append(UnexpectedResponse(pdu))
            return
        del self._pending[pdu.sequence_number]
        if pending.windowed:
            self._in_window -= 1
        rid = request.command_id
        if rid in _BINDS:
            self._bind_deadline = None
            if pdu.command_status == Status.ROK and pdu.command_id != GenericNack.command_id:
                assert self.bind_type is not None
                self.state = _BOUND_STATE[self.bind_type]
                self.system_id = pdu.system_id if isinstance(pdu, BindResp) else ""
                events.append(Bound(self.bind_type, self.system_id))
            else:
                self.state = State.CLOSED
                events.append(BindFailed(pdu.command_status))
            return
        if rid == C.UNBIND:
            self.state = State.CLOSED
            events.append(Unbound(by_peer=False))
            return
        if rid == C.ENQUIRE_LINK:
            self._probe_in_flight = False
            return
        events.append(ResponseReceived(request, pdu, pending.context, pending.sent_at))

    # -- time ------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest time handle_timer() has something to do, or None."""
        if self.state is State.CLOSED:
            return None
        deadline: float | None = self._bind_deadline
        if self._pending:
            # Requests share one timeout and ``now`` never goes back, so the oldest request
            # in insertion order has the earliest deadline.
            first = next(iter(self._pending.values())).deadline
            deadline = first if deadline is None else min(deadline, first)
        if self.state in BOUND_STATES:
            keepalive = self._last_rx + self.config.enquire_link_interval
            deadline = keepalive if deadline is None else min(deadline, keepalive)
        return deadline

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        if self.state is State.CLOSED:
            return events
        if self._bind_deadline is not None and now >= self._bind_deadline:
            self._bind_deadline = None
            if self.role is Role.ESME:
                self._pending.clear()
                events.append(BindFailed(None))
            events.append(LinkFailed(f"no bind within {self.config.bind_timeout:g} s"))
            self.state = State.CLOSED
            return events
        pending = self._pending
        while pending:
            seq, first = next(iter(pending.items()))
            if first.deadline > now:
                break
            del pending[seq]
            rid = first.request.command_id
            if first.windowed:
                self._in_window -= 1
            if rid == C.ENQUIRE_LINK or rid == C.UNBIND:
                # The peer answers nothing, not even the keep-alive: the link is dead.
                events.extend(
                    RequestTimedOut(p.request, p.context, p.sent_at) for p in pending.values()
                )
                pending.clear()
                self._in_window = 0
                self.state = State.CLOSED
                what = "enquire_link" if rid == C.ENQUIRE_LINK else "unbind"
                events.append(
                    LinkFailed(f"no {what}_resp within {self.config.response_timeout:g} s")
                )
                return events
            events.append(RequestTimedOut(first.request, first.context, first.sent_at))
        if self.state in BOUND_STATES and now >= self._last_rx + self.config.enquire_link_interval:
            # Count the probe as activity so one idle period sends one enquire_link; while
            # it is unanswered no second probe goes out (its timeout closes the link).
            self._last_rx = now
            if not self._probe_in_flight:
                self._probe_in_flight = True
                self._track(EnquireLink(), now, None, self.config.response_timeout)
        return events


__all__ = [
    "BOUND_STATES",
    "HEADER_LENGTH",
    "BindFailed",
    "BindRequested",
    "BindType",
    "Bound",
    "Event",
    "LinkFailed",
    "ProtocolError",
    "RequestReceived",
    "RequestTimedOut",
    "ResponseReceived",
    "Role",
    "Session",
    "SessionConfig",
    "State",
    "Unbound",
    "UnexpectedResponse",
]
