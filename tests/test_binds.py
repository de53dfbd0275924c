"""CarrierBind: connect, bind, keep alive, reconnect with backoff, unbind on stop."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.binds import Backoff, BindSettings, BindState, CarrierBind, RefusingListener
from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import Status
from gateway.smpp.pdu import DeliverSm, Pdu, SubmitSm
from gateway.smpp.session import (
    BindRequested,
    BindType,
    Event,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
    Unbound,
)


class TinySmsc:
    """A bare SMSC on our own session: accepts one password, answers submit_sm."""

    def __init__(self, password: str = "secret") -> None:
        self.password = password
        self.server: asyncio.Server | None = None
        self.port = 0
        self.conns: list[SmppConnection] = []
        self.submits: list[SubmitSm] = []
        self.unbinds = 0
        self.binds = 0

    async def start(self, port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SmppConnection(Session(Role.SMSC, SessionConfig(), loop.time()), self),
            "127.0.0.1",
            port,
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for conn in self.conns:
            conn.abort()
        await self.server.wait_closed()

    def connection_made(self, conn: SmppConnection) -> None:
        self.conns.append(conn)

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        self.conns.remove(conn)

    def events_received(self, conn: SmppConnection, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, BindRequested):
                if event.pdu.password == self.password:
                    self.binds += 1
                    conn.apply(conn.session.accept_bind(event.pdu, "TINY", conn.now()))
                else:
                    conn.session.reject_bind(event.pdu, Status.RINVPASWD)
                    conn.apply(None)
            elif isinstance(event, RequestReceived) and isinstance(event.pdu, SubmitSm):
                self.submits.append(event.pdu)
                conn.send_response(event.pdu.make_response(message_id=f"m{len(self.submits)}"))
            elif isinstance(event, Unbound):
                self.unbinds += 1


class Recorder(RefusingListener):
    def __init__(self) -> None:
        self.responses: list[ResponseReceived] = []
        self.requests: list[Pdu] = []
        self.downs: list[list[RequestTimedOut]] = []

    def response(self, bind: CarrierBind, event: ResponseReceived) -> None:
        self.responses.append(event)

    def request(self, bind: CarrierBind, pdu: Pdu) -> None:
        self.requests.append(pdu)
        bind.respond(pdu.make_response())

    def bind_down(self, bind: CarrierBind, lost: list[RequestTimedOut]) -> None:
        self.downs.append(lost)


def settings(port: int, password: str = "secret", **kw: float) -> BindSettings:
    return BindSettings(
        carrier="tiny",
        name="tiny-1",
        host="127.0.0.1",
        port=port,
        system_id="smsgw",
        password=password,
        bind_type=BindType.TRX,
        session=SessionConfig(
            window=10, enquire_link_interval=kw.get("enquire", 30.0), bind_timeout=2.0
        ),
        reconnect_initial=kw.get("initial", 0.02),
        reconnect_max=kw.get("max", 0.1),
        reconnect_jitter=0.0,
    )


@pytest.fixture
async def smsc() -> AsyncIterator[TinySmsc]:
    s = TinySmsc()
    await s.start()
    yield s
    await s.stop()


async def wait_for(predicate: Callable[[], object], within: float = 5.0) -> None:
    """Poll a condition that no event signals (a socket's far side), bounded in time."""

    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the state lives in another object
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), within)


def test_backoff_grows_exponentially_to_the_cap() -> None:
    b = Backoff(1.0, 30.0, 0.0)
    assert [b.next_delay() for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    b.reset()
    assert b.next_delay() == 1.0


def test_backoff_jitter_stays_within_bounds() -> None:
    b = Backoff(1.0, 10.0, 0.2, random.Random(7))
    delays = [b.next_delay() for _ in range(200)]
    assert all(0.8 <= d <= 12.0 for d in delays)
    assert len({round(d, 6) for d in delays[10:]}) > 1  # jittered, not a fixed loop


async def test_binds_submits_and_unbinds_on_stop(smsc: TinySmsc) -> None:
    rec = Recorder()
    bind = CarrierBind(settings(smsc.port), rec)
    bind.start()
    await asyncio.wait_for(bind.became_bound.wait(), 5)
    assert bind.state is BindState.BOUND
    assert bind.window_free == 10
    bind.submit(SubmitSm(destination_addr="4912345", short_message=b"hi"), context="ctx-1")
    await wait_for(lambda: rec.responses)
    assert rec.responses[0].context == "ctx-1"
    assert rec.responses[0].response.message_id == "m1"  # type: ignore[attr-defined]
    await bind.stop(drain=2.0)
    assert bind.state is BindState.STOPPED
    await wait_for(lambda: smsc.unbinds == 1)


async def test_answers_deliver_sm_through_the_listener(smsc: TinySmsc) -> None:
    rec = Recorder()
    bind = CarrierBind(settings(smsc.port), rec)
    bind.start()
    await asyncio.wait_for(bind.became_bound.wait(), 5)
    conn = smsc.conns[0]
    got: list[Event] = []
    orig = smsc.events_received

    def capture(c: SmppConnection, events: list[Event]) -> None:
        got.extend(events)
        orig(c, events)

    smsc.events_received = capture  # type: ignore[method-assign]
    conn.send_request(DeliverSm(source_addr="1", destination_addr="2", short_message=b"MO"))
    await wait_for(lambda: any(isinstance(e, ResponseReceived) for e in got))
    assert rec.requests and isinstance(rec.requests[0], DeliverSm)
    await bind.stop()


async def test_reconnects_after_the_smsc_comes_back(smsc: TinySmsc) -> None:
    rec = Recorder()
    bind = CarrierBind(settings(smsc.port), rec)
    bind.start()
    await asyncio.wait_for(bind.became_bound.wait(), 5)
    port = smsc.port
    await smsc.stop()
    await wait_for(lambda: bind.state in (BindState.BACKOFF, BindState.CONNECTING))
    assert rec.downs, "bind_down was not reported"
    await asyncio.sleep(0.2)  # a few failed connects while the SMSC is away
    assert bind.connects >= 2
    again = TinySmsc()
    await again.start(port)
    try:
        await wait_for(lambda: bind.state is BindState.BOUND)
        assert again.binds == 1
    finally:
        await bind.stop()
        await again.stop()


async def test_in_flight_submits_are_reported_lost_when_the_link_drops(smsc: TinySmsc) -> None:
    rec = Recorder()
    bind = CarrierBind(settings(smsc.port), rec)
    bind.start()
    await asyncio.wait_for(bind.became_bound.wait(), 5)

    def swallow(conn: SmppConnection, events: list[Event]) -> None:
        pass  # a black hole: never answers

    smsc.events_received = swallow  # type: ignore[method-assign]
    for i in range(3):
        bind.submit(SubmitSm(destination_addr="1", short_message=b"x"), context=i)
    await asyncio.sleep(0.05)
    for conn in list(smsc.conns):
        conn.abort()
    await wait_for(lambda: rec.downs)
    assert sorted(e.context for e in rec.downs[0]) == [0, 1, 2]
    await bind.stop()


async def test_wrong_password_backs_off_and_says_why(smsc: TinySmsc) -> None:
    bind = CarrierBind(settings(smsc.port, password="wrong"), Recorder())
    bind.start()
    await wait_for(lambda: bind.state is BindState.BACKOFF)
    assert "ESME_RINVPASWD" in bind.last_error
    await bind.stop()
