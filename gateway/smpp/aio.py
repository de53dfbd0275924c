"""The thin asyncio adapter around a sans-IO Session (the uvicorn h11_impl model).

``SmppConnection`` is an ``asyncio.Protocol``: ``data_received`` feeds the session and hands
its events to a handler; one ``call_at`` timer serves every session deadline; everything the
session queues during one loop turn leaves in one ``transport.write`` (``call_soon`` flush),
so a burst of 500 submit_sm or deliver_sm_resp costs one system call, not 500.

The handler is the application (the gateway's bind, the simulator, the SMPP front). It is
called synchronously from the protocol callbacks and must not block; it answers requests
with ``send_response`` whenever it is ready (for example after a receipt is committed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Final, Protocol, cast

from gateway.smpp.errors import LocalProtocolError
from gateway.smpp.pdu import Pdu
from gateway.smpp.session import (
    Event,
    LinkFailed,
    Session,
    State,
)


class SessionHandler(Protocol):
    def connection_made(self, conn: SmppConnection) -> None: ...

    def events_received(self, conn: SmppConnection, events: list[Event]) -> None: ...

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None: ...


class SmppConnection(asyncio.Protocol):
    """One TCP connection carrying one SMPP session."""

    def __init__(self, session: Session, handler: SessionHandler) -> None:
        self.session = session
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_scheduled = False
        self._closing = False
        self.writable = True
        """False while the transport's write buffer is above its high-water mark."""
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCPTransport does not derive from
        # asyncio.Transport, though it implements it.
        self.transport = cast(asyncio.Transport, transport)
        self.peer = transport.get_extra_info("peername")
        self.handler.connection_made(self)
        self._after_input()

    def data_received(self, data: bytes) -> None:
        events = self.session.receive_data(data, self._loop.time())
        if events:
            self._deliver(events)
        self._after_input()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        was_closed = self.session.state is State.CLOSED
        lost: list[Event] = list(self.session.abandon())
        if not was_closed:
            lost.append(LinkFailed(f"connection lost: {exc}" if exc else "connection closed"))
        if lost:
            self.handler.events_received(self, lost)
        self.handler.connection_lost(self, exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True

    # -- the application's side ------------------------------------------------------------

    def now(self) -> float:
        return self._loop.time()

    def send_request(self, pdu: Pdu, context: Any = None) -> int:
        if self._closing:
            raise LocalProtocolError("connection is closing")
        now = self._loop.time()
        seq = self.session.send_request(pdu, now, context)
        self._schedule_flush()
        # The request adds one deadline, now + response_timeout; every other deadline was
        # armed when it was set. A timer already due by then needs no move (the hot path:
        # one deliver_sm per receipt would otherwise walk next_deadline() each time).
        timer_at = self._timer_at
        if timer_at is None or timer_at > now + self.session.config.response_timeout:
            self._arm(self.session.next_deadline())
        return seq

    def send_response(self, pdu: Pdu) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # the peer is gone; it will send the request again on its next bind
        self.session.send_response(pdu)
        self._schedule_flush()

    def apply(self, events: list[Event] | Event | None) -> None:
        """After calling a session method directly (bind, accept_bind, unbind): flush its
        output, re-arm the timer, and deliver any events it returned."""
        if isinstance(events, Event):
            events = [events]
        if events:
            self._deliver(events)
        self._after_input()

    def close(self) -> None:
        """Flush what is queued, then close the transport."""
        if self._closing:
            return
        self._closing = True
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    # -- internals -------------------------------------------------------------------------

    def _deliver(self, events: list[Event]) -> None:
        self.handler.events_received(self, events)
        if self.session.state is State.CLOSED and not self._closing:
            # Unbound, LinkFailed, BindFailed: flush what the session queued (an
            # unbind_resp, a generic_nack) and close on the next turn.
            self._loop.call_soon(self.close)

    def _after_input(self) -> None:
        self._flush()
        self._arm(self.session.next_deadline())

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _arm(self, deadline: float | None) -> None:
        # Keep one timer; move it only when the session needs waking earlier. A timer that
        # fires early costs one handle_timer() call that finds nothing to do.
        if deadline is None:
            return
        if self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        events = self.session.handle_timer(self._loop.time())
        if events:
            self._deliver(events)
        self._after_input()


ABORT_WAIT_SECONDS: Final = 1.0
"""After aborting a connection, how long ``unbind_all`` waits for its close to be seen (an
abort closes at once; this only bounds a stuck transport)."""


async def unbind_all(conns: Iterable[SmppConnection], grace: float) -> None:
    """A listener's stop (the front's and the simulator's): an unbind on every bound
    connection, a close on the others; those not closed within ``grace`` seconds (a peer
    that does not answer the unbind) are aborted."""
    loop = asyncio.get_running_loop()
    conns = list(conns)
    waiting: list[asyncio.Future[None]] = []
    for conn in conns:
        waiting.append(conn.closed)
        if conn.session.is_bound:
            try:
                conn.session.unbind(loop.time())
                conn.apply(None)
                continue
            except LocalProtocolError:
                pass
        conn.close()
    if waiting:
        _done, pending = await asyncio.wait(waiting, timeout=grace)
        if pending:
            for conn in conns:
                if not conn.closed.done():
                    conn.abort()
            await asyncio.wait(pending, timeout=ABORT_WAIT_SECONDS)
