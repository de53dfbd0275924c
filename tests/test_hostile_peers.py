"""Issue 7, hostile input on the SMPP sockets, both sides.

- the gateway's carrier side (CarrierBind) against fake SMSCs that answer a bind with random
  bytes, or bind properly and then announce a 4 GB command_length and keep streaming;
- the simulator's SMPP port fed random, truncated and hostile byte streams.

No crash, no hang (a link whose framing is lost is closed by the keep-alive and bound again),
bounded memory (a hostile command_length is never buffered: tracemalloc's peak stays far
below what the announced length would take).
"""

from __future__ import annotations

import asyncio
import random
import struct
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.binds import BindSettings, CarrierBind, RefusingListener
from gateway.smpp.constants import CommandId
from gateway.smpp.pdu import BindTransceiverResp, EnquireLink, SubmitSm, encode
from gateway.smpp.session import (
    BindType,
    LinkFailed,
    ProtocolError,
    Role,
    Session,
    SessionConfig,
    State,
)
from smsc_simulator.server import Simulator
from tests.e2e_helpers import simulator_config
from tests.smpp_client import EsmeClient

HOSTILE_LENGTH = 0xFFFFFFF0
"""A command_length of almost 4 GiB: buffering it would take the process down."""

STREAM_MIB = 8
"""How much a hostile peer streams after its header: 8 MiB in 64 KiB chunks."""

MEMORY_LIMIT = 4 * 1024 * 1024
"""Allowed tracemalloc peak while a hostile peer streams STREAM_MIB: half of what buffering
the stream would take, and a thousandth of the announced length."""


def _bound_esme(config: SessionConfig) -> Session:
    esme = Session(Role.ESME, config, 0.0)
    esme.bind(BindType.TRX, 0.0, system_id="smsgw", password="secret")
    esme.data_to_send()
    esme.receive_data(encode(BindTransceiverResp(sequence_number=1, system_id="X")), 0.0)
    assert esme.state is State.BOUND_TRX
    return esme


def test_a_session_whose_framing_is_lost_probes_and_closes_the_link() -> None:
    """Bytes that never form a PDU are no sign of life: the keep-alive still goes out and
    its timeout closes the link (before, any byte counted as activity, and a peer streaming
    junk after a hostile command_length kept a dead link "bound" forever)."""
    config = SessionConfig(window=10, response_timeout=5.0, enquire_link_interval=10.0)
    esme = _bound_esme(config)
    events = esme.receive_data(struct.pack(">IIII", HOSTILE_LENGTH, CommandId.SUBMIT_SM, 0, 9), 1)
    assert any(isinstance(e, ProtocolError) for e in events)
    esme.data_to_send()  # the generic_nack
    now = 1.0
    probes = 0
    closed = False
    while now < 30.0 and not closed:
        now += 0.5
        esme.receive_data(b"\x00" * 4096, now)  # the peer keeps streaming
        for event in esme.handle_timer(now):
            closed = closed or isinstance(event, LinkFailed)
        probes += sum(isinstance(p, EnquireLink) for p in _decode_all(esme.data_to_send()))
    assert probes == 1
    assert closed and esme.state is State.CLOSED
    assert now <= 1.0 + 10.0 + 5.0 + 1.0  # interval + response timeout after the last PDU


def _decode_all(data: bytes) -> list[object]:
    from gateway.smpp.pdu import decode

    out = []
    while len(data) >= 16:
        n = int.from_bytes(data[:4], "big")
        out.append(decode(data[:n]))
        data = data[n:]
    return out


# -- the gateway's carrier side against hostile SMSCs ---------------------------------------


class HostileSmsc:
    """A TCP server that reads what the ESME sends and answers with ``respond(data)``."""

    def __init__(self, respond: Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.respond = respond
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            header = await reader.readexactly(16)
            length = int.from_bytes(header[:4], "big")
            body = await reader.readexactly(length - 16)
            await self.respond(header + body, writer)
            while await reader.read(65536):  # keep reading whatever the ESME says
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await self.server.wait_closed()


def _settings(port: int, **session: float) -> BindSettings:
    return BindSettings(
        carrier="hostile",
        name="hostile-1",
        host="127.0.0.1",
        port=port,
        system_id="smsgw",
        password="secret",
        bind_type=BindType.TRX,
        session=SessionConfig(
            window=10,
            enquire_link_interval=session.get("enquire", 30.0),
            response_timeout=session.get("timeout", 60.0),
            bind_timeout=session.get("bind_timeout", 1.0),
        ),
        reconnect_initial=0.02,
        reconnect_max=0.1,
        reconnect_jitter=0.0,
    )


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Callable[[], Awaitable[None]]]]:
    stops: list[Callable[[], Awaitable[None]]] = []
    yield stops
    for stop in reversed(stops):
        await stop()


async def _until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the state lives in another object
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), within)


@pytest.mark.parametrize("seed", range(4))
async def test_a_bind_answered_with_garbage_fails_and_retries_with_backoff(
    seed: int, cleanup: list[Callable[[], Awaitable[None]]]
) -> None:
    rng = random.Random(seed)

    async def garbage(request: bytes, writer: asyncio.StreamWriter) -> None:
        if rng.random() < 0.5:  # a plausible header first, then junk
            writer.write(struct.pack(">IIII", rng.randrange(0, 1 << 32), 0x80000009, 0, 1))
        writer.write(rng.randbytes(rng.randrange(1, 300)))
        await writer.drain()

    smsc = HostileSmsc(garbage)
    await smsc.start()
    cleanup.append(smsc.stop)
    bind = CarrierBind(_settings(smsc.port, timeout=0.5), RefusingListener())
    bind.start()
    cleanup.append(bind.stop)
    await _until(lambda: smsc.connections >= 3)
    assert not bind.bound
    assert bind.last_error  # it says why (bind refused, no response, protocol error)


async def test_a_bound_carrier_that_announces_4gb_is_not_buffered_and_is_rebound(
    cleanup: list[Callable[[], Awaitable[None]]],
) -> None:
    async def bind_then_flood(request: bytes, writer: asyncio.StreamWriter) -> None:
        seq = int.from_bytes(request[12:16], "big")
        writer.write(encode(BindTransceiverResp(sequence_number=seq, system_id="EVIL")))
        writer.write(struct.pack(">IIII", HOSTILE_LENGTH, CommandId.DELIVER_SM, 0, 5))
        chunk = bytes(65536)
        for _ in range(STREAM_MIB * 16):
            writer.write(chunk)
            await writer.drain()

    smsc = HostileSmsc(bind_then_flood)
    await smsc.start()
    cleanup.append(smsc.stop)
    bind = CarrierBind(_settings(smsc.port, enquire=0.3, timeout=0.3), RefusingListener())
    tracemalloc.start()
    try:
        bind.start()
        cleanup.append(bind.stop)
        await asyncio.wait_for(bind.became_bound.wait(), 5)
        # The flood is skipped, never buffered; the keep-alive finds the link dead and
        # the bind connects again.
        await _until(lambda: smsc.connections >= 2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT
    assert bind.metrics.protocol_errors >= 1


# -- the simulator's socket --------------------------------------------------------------


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(simulator_config())
    await sim.start()
    yield sim
    await sim.stop()


async def _send_raw(port: int, data: bytes, read_for: float = 0.2) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(data)
        await writer.drain()
        try:
            received = await asyncio.wait_for(reader.read(65536), read_for)
        except TimeoutError:
            pass
    except ConnectionError:
        pass
    finally:
        writer.close()
    return received


async def _still_serves(sim: Simulator) -> None:
    assert sim.smpp_port is not None
    client = await EsmeClient.bound(sim.smpp_port)
    try:
        answer = await client.request(SubmitSm(destination_addr="33611111111", short_message=b"x"))
        assert answer.command_status == 0
    finally:
        await client.close()


async def test_simulator_survives_random_and_truncated_streams(simulator: Simulator) -> None:
    port = simulator.smpp_port
    assert port is not None
    rng = random.Random(11)
    good = encode(SubmitSm(sequence_number=2, destination_addr="336", short_message=b"hi"))
    cases: list[bytes] = []
    for _ in range(40):
        cases.append(rng.randbytes(rng.randrange(1, 2000)))  # pure noise
        cut = rng.randrange(1, len(good))
        cases.append(good[:cut])  # truncated PDU
        flipped = bytearray(good)
        flipped[rng.randrange(len(good))] ^= 1 << rng.randrange(8)
        cases.append(bytes(flipped))  # one bit off
    await asyncio.gather(*(_send_raw(port, c, 0.05) for c in cases))
    await _still_serves(simulator)
    assert simulator.stats.internal_errors == 0


async def test_simulator_does_not_buffer_a_hostile_command_length(simulator: Simulator) -> None:
    port = simulator.smpp_port
    assert port is not None
    tracemalloc.start()
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(struct.pack(">IIII", HOSTILE_LENGTH, CommandId.BIND_TRANSCEIVER, 0, 1))
        chunk = bytes(65536)
        for _ in range(STREAM_MIB * 16):
            writer.write(chunk)
            await writer.drain()
        _, peak = tracemalloc.get_traced_memory()
        writer.close()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT
    await _still_serves(simulator)
