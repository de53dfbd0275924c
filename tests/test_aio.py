"""The asyncio adapter over real loopback sockets on port 0: an SmppConnection on each end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from gateway.smpp.aio import SmppConnection, unbind_all
from gateway.smpp.constants import CommandId, Status
from gateway.smpp.pdu import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    EnquireLink,
    Framer,
    Pdu,
    SubmitSm,
    decode,
    encode,
)
from gateway.smpp.session import (
    BindRequested,
    BindType,
    Bound,
    Event,
    LinkFailed,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
    State,
    Unbound,
)

TIMEOUT = 10.0  # seconds; a hung test fails instead of blocking the run


class CountingTransport:
    """Wraps a transport and counts (and keeps) what is written through it."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner = inner
        self.writes = 0
        self.written = bytearray()
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.written += data
        self.wrote.set()
        self.inner.write(data)

    def sent_pdus(self) -> list[Pdu]:
        framer = Framer()
        return [decode(f) for f in framer.feed(bytes(self.written)) if isinstance(f, bytes)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Recorder:
    """A SessionHandler that records events and lets a test react to them."""

    def __init__(self, react: Callable[[SmppConnection, Event], None] | None = None) -> None:
        self.react = react
        self.events: list[Event] = []
        self.conn: SmppConnection | None = None
        self.counter: CountingTransport | None = None
        self.lost = asyncio.get_running_loop().create_future()
        self._changed = asyncio.Event()

    def connection_made(self, conn: SmppConnection) -> None:
        assert conn.transport is not None
        self.conn = conn
        self.counter = CountingTransport(conn.transport)
        conn.transport = cast(asyncio.Transport, self.counter)

    def events_received(self, conn: SmppConnection, events: list[Event]) -> None:
        for event in events:
            self.events.append(event)
            if self.react is not None:
                self.react(conn, event)
        self._changed.set()

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)
        self._changed.set()

    def of_type(self, cls: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    async def until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()


def smsc_react(answer_submits: bool = True) -> Callable[[SmppConnection, Event], None]:
    """The simulator's side: accept every bind, answer submit_sm with a fresh message_id."""
    counter = iter(range(1, 1 << 31))

    def react(conn: SmppConnection, event: Event) -> None:
        if isinstance(event, BindRequested):
            conn.apply(conn.session.accept_bind(event.pdu, "SIM", conn.now()))
        elif isinstance(event, RequestReceived) and event.pdu.command_id == CommandId.SUBMIT_SM:
            if answer_submits:
                conn.send_response(event.pdu.make_response(message_id=f"{next(counter):08x}"))
        elif isinstance(event, RequestReceived) and event.pdu.RESPONSE is not None:
            conn.send_response(event.pdu.make_response())

    return react


@asynccontextmanager
async def smsc_server(
    react: Callable[[SmppConnection, Event], None], config: SessionConfig
) -> AsyncIterator[tuple[int, list[Recorder]]]:
    loop = asyncio.get_running_loop()
    recorders: list[Recorder] = []

    def factory() -> SmppConnection:
        recorder = Recorder(react)
        recorders.append(recorder)
        return SmppConnection(Session(Role.SMSC, config, loop.time()), recorder)

    server = await loop.create_server(factory, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], recorders
    finally:
        for recorder in recorders:
            if recorder.conn is not None:
                recorder.conn.abort()
        server.close()
        await server.wait_closed()


async def bound_esme(
    port: int, config: SessionConfig, react: Callable[[SmppConnection, Event], None] | None = None
) -> tuple[SmppConnection, Recorder]:
    loop = asyncio.get_running_loop()
    recorder = Recorder(react)
    _, conn = await loop.create_connection(
        lambda: SmppConnection(Session(Role.ESME, config, loop.time()), recorder),
        "127.0.0.1",
        port,
    )
    conn.session.bind(BindType.TRX, conn.now(), system_id="esme1", password="secret")
    conn.apply(None)
    await recorder.until(lambda: bool(recorder.events))
    assert recorder.events[0] == Bound(BindType.TRX, "SIM")
    return conn, recorder


QUIET = SessionConfig(window=100, response_timeout=5.0, enquire_link_interval=60.0)


async def test_1000_pipelined_submits_in_a_window_of_100_are_all_answered_in_few_writes() -> None:
    total = 1000
    sent = 0
    peak = 0

    def top_up(conn: SmppConnection, event: Event) -> None:
        nonlocal sent, peak
        if not isinstance(event, Bound | ResponseReceived):
            return
        while sent < total and conn.session.window_free > 0:
            conn.send_request(SubmitSm(destination_addr="447700900123", short_message=b"hi"), sent)
            sent += 1
        peak = max(peak, conn.session.in_flight)

    async with asyncio.timeout(TIMEOUT), smsc_server(smsc_react(), QUIET) as (port, smscs):
        conn, esme = await bound_esme(port, QUIET, top_up)
        await esme.until(lambda: len(esme.of_type(ResponseReceived)) == total)

        responses = esme.of_type(ResponseReceived)
        assert sorted(r.context for r in responses) == list(range(total))
        assert all(r.response.command_status == Status.ROK for r in responses)
        assert len({r.response.message_id for r in responses}) == total
        assert peak == 100  # pipelined up to the window, never past it
        assert esme.of_type(RequestTimedOut) == []
        assert conn.session.in_flight == 0

        # One write per loop turn, not per PDU: 1,001 PDUs each way in far fewer writes.
        assert esme.counter is not None and smscs[0].counter is not None
        assert len(esme.counter.sent_pdus()) == total + 1
        assert len(smscs[0].counter.sent_pdus()) == total + 1
        assert esme.counter.writes <= total // 10, esme.counter.writes
        assert smscs[0].counter.writes <= total // 10, smscs[0].counter.writes


async def test_deliver_sm_from_the_smsc_is_answered_through_the_adapter() -> None:
    def answer(conn: SmppConnection, event: Event) -> None:
        if isinstance(event, RequestReceived):
            conn.send_response(event.pdu.make_response(message_id=""))

    async with asyncio.timeout(TIMEOUT), smsc_server(smsc_react(), QUIET) as (port, smscs):
        _conn, esme = await bound_esme(port, QUIET, answer)
        await smscs[0].until(lambda: bool(smscs[0].of_type(Bound)))
        smsc_conn = smscs[0].conn
        assert smsc_conn is not None
        for i in range(50):
            smsc_conn.send_request(DeliverSm(esm_class=0x04, short_message=b"id:%d" % i), i)
        await smscs[0].until(lambda: len(smscs[0].of_type(ResponseReceived)) == 50)
        assert sorted(r.context for r in smscs[0].of_type(ResponseReceived)) == list(range(50))
        assert len(esme.of_type(RequestReceived)) == 50


async def test_connection_closed_by_the_peer_fails_the_link_and_reports_pending() -> None:
    async with asyncio.timeout(TIMEOUT), smsc_server(smsc_react(False), QUIET) as (port, smscs):
        conn, esme = await bound_esme(port, QUIET)
        requests = [SubmitSm(short_message=b"%d" % i) for i in range(5)]
        for i, pdu in enumerate(requests):
            conn.send_request(pdu, context=i)
        smsc = smscs[0]
        await smsc.until(lambda: len(smsc.of_type(RequestReceived)) == 5)
        assert smsc.conn is not None
        smsc.conn.close()  # the peer goes away with five submits unanswered

        await asyncio.wait_for(conn.closed, TIMEOUT)
        timed_out = esme.of_type(RequestTimedOut)
        assert [e.context for e in timed_out] == [0, 1, 2, 3, 4]
        assert [e.request for e in timed_out] == requests
        assert isinstance(esme.events[-1], LinkFailed)
        assert esme.events.index(esme.events[-1]) > esme.events.index(timed_out[-1])
        assert conn.session.state is State.CLOSED
        assert esme.lost.done()


async def test_the_timer_sends_enquire_link_when_idle_and_the_peer_answers() -> None:
    config = SessionConfig(window=10, response_timeout=1.0, enquire_link_interval=0.05)
    async with asyncio.timeout(TIMEOUT), smsc_server(smsc_react(), QUIET) as (port, _):
        conn, esme = await bound_esme(port, config)
        counter = esme.counter
        assert counter is not None

        def probes() -> int:
            return sum(p.command_id == CommandId.ENQUIRE_LINK for p in counter.sent_pdus())

        while probes() < 3:  # three in a row: each answered, so the next one goes out
            counter.wrote.clear()
            await counter.wrote.wait()
        assert conn.session.state is State.BOUND_TRX
        assert esme.events == [Bound(BindType.TRX, "SIM")]  # answers are not app events


class BlackHoleSmsc(asyncio.Protocol):
    """Answers the bind, then reads and ignores everything (enquire_link included)."""

    def __init__(self) -> None:
        self.framer = Framer()
        self.eof = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        for item in self.framer.feed(data):
            if isinstance(item, bytes) and decode(item).command_id == CommandId.BIND_TRANSCEIVER:
                seq = int.from_bytes(item[12:16], "big")
                assert self.transport is not None
                self.transport.write(
                    encode(BindTransceiverResp(sequence_number=seq, system_id="SIM"))
                )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.eof.done():
            self.eof.set_result(None)


async def test_unanswered_enquire_link_fails_the_link_and_closes_the_socket() -> None:
    loop = asyncio.get_running_loop()
    peers: list[BlackHoleSmsc] = []

    def factory() -> BlackHoleSmsc:
        peers.append(BlackHoleSmsc())
        return peers[-1]

    server = await loop.create_server(factory, "127.0.0.1", 0)
    config = SessionConfig(window=10, response_timeout=0.1, enquire_link_interval=0.05)
    try:
        async with asyncio.timeout(TIMEOUT):
            conn, esme = await bound_esme(server.sockets[0].getsockname()[1], config)
            pending = SubmitSm(short_message=b"lost")
            conn.send_request(pending, "ctx")
            await asyncio.wait_for(conn.closed, TIMEOUT)
            await peers[0].eof  # the socket was really closed
            failed = esme.of_type(LinkFailed)
            assert len(failed) == 1
            assert [(e.request, e.context) for e in esme.of_type(RequestTimedOut)] == [
                (pending, "ctx")
            ]
    finally:
        server.close()
        await server.wait_closed()


async def test_unbind_over_sockets_closes_both_connections() -> None:
    async with asyncio.timeout(TIMEOUT), smsc_server(smsc_react(), QUIET) as (port, smscs):
        conn, esme = await bound_esme(port, QUIET)
        conn.session.unbind(conn.now())
        conn.apply(None)
        await asyncio.wait_for(conn.closed, TIMEOUT)
        assert smscs[0].conn is not None
        await asyncio.wait_for(smscs[0].conn.closed, TIMEOUT)
        assert esme.of_type(Unbound) == [Unbound(by_peer=False)]
        assert smscs[0].of_type(Unbound) == [Unbound(by_peer=True)]
        assert esme.of_type(LinkFailed) == [] and smscs[0].of_type(LinkFailed) == []


async def _read_pdu(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(16)
    return head + await reader.readexactly(int.from_bytes(head[:4], "big") - 16)


async def test_unbind_all_unbinds_the_bound_closes_the_rest_and_aborts_the_silent() -> None:
    async with asyncio.timeout(TIMEOUT), smsc_server(smsc_react(), QUIET) as (port, smscs):
        conn, esme = await bound_esme(port, QUIET)  # answers the unbind
        # A bound peer that never answers, and one that never binds.
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
        bind = BindTransceiver(sequence_number=1, system_id="silent", password="secret")
        silent_writer.write(encode(bind))
        await _read_pdu(silent_reader)  # bind_resp
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        idle_writer.write(encode(EnquireLink(sequence_number=1)))
        assert decode(await _read_pdu(idle_reader)).command_id == CommandId.ENQUIRE_LINK_RESP
        assert len(smscs) == 3
        await unbind_all([r.conn for r in smscs if r.conn is not None], grace=0.3)
        assert all(r.conn is not None and r.conn.closed.done() for r in smscs)
        await asyncio.wait_for(conn.closed, TIMEOUT)
        assert esme.of_type(Unbound) == [Unbound(by_peer=True)]
        framer = Framer()
        after_bind = [f for f in framer.feed(await silent_reader.read()) if isinstance(f, bytes)]
        assert [decode(f).command_id for f in after_bind] == [CommandId.UNBIND]  # then aborted
        assert await idle_reader.read() == b""  # closed without a word
        silent_writer.close()
        idle_writer.close()
