"""Shared pieces of the interop tests: independent SMPP peers run as node subprocesses.

The peers live in tests/interop/ and use the npm ``smpp`` package pinned in its
package.json (``npm install --prefix tests/interop``). A peer prints one JSON object per line
on stdout and reads JSON commands on stdin; ``NodePeer`` runs one, collects what it prints,
and always stops it, even when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import aiohttp
import pytest

from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import (
    CommandId,
    DataCoding,
    EsmClass,
    RegisteredDelivery,
    Status,
    Tag,
    status_name,
)
from gateway.smpp.pdu import DeliverSm, Pdu, SubmitSm, tlv_cstr, tlv_u8
from gateway.smpp.receipt import MessageState, format_receipt_text
from gateway.smpp.session import (
    BindRequested,
    BindType,
    LinkFailed,
    ProtocolError,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
    Unbound,
    UnexpectedResponse,
)
from gateway.smpp.session import Event as SessionEvent
from gateway.smpp.text import decode_short_message, gsm7_encode

INTEROP_DIR = Path(__file__).parent / "interop"
NODE = shutil.which("node")

PEER_START_TIMEOUT = 10.0
"""Seconds for a node peer to start and print its first line (node starts in ~50 ms)."""
PEER_STOP_TIMEOUT = 3.0
"""Seconds a peer gets to exit after its stdin closes and SIGTERM, before SIGKILL."""
EVENT_TIMEOUT = 5.0
"""Default wait for one expected event: generous for a loaded CI box, small for a hang."""


def node_skip_reason() -> str | None:
    """Why the node peers cannot run here, or None when they can."""
    if NODE is None:
        return "node is not on PATH (the npm smpp peers run under node)"
    if not (INTEROP_DIR / "node_modules" / "smpp" / "package.json").is_file():
        return "npm smpp is not installed: run `npm install --prefix tests/interop`"
    return None


_NODE_SKIP = node_skip_reason()
requires_node = pytest.mark.skipif(_NODE_SKIP is not None, reason=_NODE_SKIP or "")
"""Skip a test cleanly, with the reason, where node or node_modules is missing."""


Event = dict[str, Any]


class PeerError(AssertionError):
    """The peer did not print what the test waited for; carries its output for the report."""


class NodePeer:
    """One node script run as a subprocess speaking JSON lines.

    ``expect`` waits for the next matching line not yet taken by an earlier ``expect``, so a
    test can wait for events in any order without losing the ones that came first.
    """

    def __init__(self, script: str, *args: str) -> None:
        self.script = INTEROP_DIR / script
        self.args = args
        self.events: list[Event] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[bytes] | None = None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    async def start(self) -> None:
        """Start the process (once; a second call does nothing)."""
        if self._proc is not None:
            return
        if NODE is None:
            raise RuntimeError("node is not installed")
        self._proc = await asyncio.create_subprocess_exec(
            NODE,
            str(self.script),
            *self.args,
            cwd=INTEROP_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._reader = asyncio.create_task(self._read(self._proc.stdout))
        self._stderr = asyncio.create_task(self._proc.stderr.read())

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while True:
            line = await stream.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unparsed", "line": line.decode(errors="replace")}
            self.events.append(event)
            self._changed.set()
        self._changed.set()

    def send(self, command: dict[str, Any]) -> None:
        """Write one JSON command line to the peer's stdin."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command).encode() + b"\n")

    def matching(self, event: str, **fields: Any) -> list[Event]:
        """Every event printed so far with this name and these field values."""
        return [e for e in self.events if _matches(e, event, fields)]

    async def expect(
        self,
        event: str,
        within: float = EVENT_TIMEOUT,
        where: Callable[[Event], bool] | None = None,
        **fields: Any,
    ) -> Event:
        """The next untaken event with this name and these field values (and ``where``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for index, candidate in enumerate(self.events):
                if index in self._taken or not _matches(candidate, event, fields):
                    continue
                if where is not None and not where(candidate):
                    continue
                self._taken.add(index)
                return candidate
            if self._reader is not None and self._reader.done():
                raise PeerError(f"peer exited before {event} {fields}; {await self.output()}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PeerError(f"no {event} {fields} within {within} s; {await self.output()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def output(self) -> str:
        """What the peer printed, for failure messages."""
        stderr = b""
        if self._stderr is not None and self._stderr.done() and not self._stderr.cancelled():
            stderr = self._stderr.result()
        return f"events={self.events!r} stderr={stderr.decode(errors='replace')[-2000:]!r}"

    async def kill(self) -> None:
        """SIGKILL: the peer vanishes without closing anything politely."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), PEER_STOP_TIMEOUT)
        await self._finish_readers()

    async def stop(self) -> None:
        """Close stdin (the peer exits), then SIGTERM, then SIGKILL, each bounded."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), PEER_STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), PEER_STOP_TIMEOUT)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await asyncio.wait_for(proc.wait(), PEER_STOP_TIMEOUT)
        await self._finish_readers()

    async def _finish_readers(self) -> None:
        for task in (self._reader, self._stderr):
            if task is None:
                continue
            try:
                await asyncio.wait_for(task, PEER_STOP_TIMEOUT)
            except TimeoutError:
                pass  # wait_for has cancelled it
            except (OSError, ValueError):
                pass

    async def __aenter__(self) -> NodePeer:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _matches(candidate: Event, event: str, fields: dict[str, Any]) -> bool:
    if candidate.get("event") != event:
        return False
    return all(candidate.get(key) == value for key, value in fields.items())


async def wait_until(
    predicate: Callable[[], bool], within: float = EVENT_TIMEOUT, what: str = "condition"
) -> None:
    """Poll a cheap predicate every 10 ms until it holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.01)


# -- our SMSC role, bare --------------------------------------------------------------------


@dataclass
class ReceivedSubmit:
    """One submit_sm an SMSC took, with the text our decoder reads from it."""

    pdu: SubmitSm
    message_id: str
    system_id: str
    text: str


@dataclass
class BindAttempt:
    bind_type: BindType
    system_id: str
    status: int


class SessionSmsc:
    """The smallest SMSC on gateway.smpp's Session in the SMSC role, with no simulator policy.

    It accepts binds whose credentials match, answers submit_sm with a hex message id, sends
    a receipt (text form and TLVs) when registered_delivery asks for one, and sends MO on
    ``inject_mo``. A receipt or MO goes to a bound receiver (the submitting bind if it is a
    transceiver); with none bound it is held until one binds.
    """

    def __init__(
        self,
        system_id: str = "smsgw",
        password: str = "secret",
        config: SessionConfig | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.system_id = system_id
        self.password = password
        # A short enquire_link interval, so every client also has to answer ours mid-stream.
        self.config = config or SessionConfig(
            response_timeout=5.0, bind_timeout=5.0, enquire_link_interval=0.2
        )
        self.binds: list[BindAttempt] = []
        self.submits: list[ReceivedSubmit] = []
        self.deliver_resps: list[tuple[DeliverSm, Pdu]] = []
        self.unbinds = 0
        self.protocol_errors: list[str] = []
        self.link_failures: list[str] = []
        self.conns: list[SmppConnection] = []
        self._held: list[DeliverSm] = []
        self._next_id = 0x5A000
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SmppConnection(Session(Role.SMSC, self.config, loop.time()), self),
            self.host,
            0,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.conns):
            conn.abort()
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), PEER_STOP_TIMEOUT)

    async def __aenter__(self) -> SessionSmsc:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def inject_mo(
        self, source_addr: str, destination_addr: str, text: str, ucs2: bool = False
    ) -> None:
        self._deliver(
            DeliverSm(
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=source_addr,
                destination_addr=destination_addr,
                data_coding=DataCoding.UCS2 if ucs2 else DataCoding.SMSC_DEFAULT,
                short_message=text.encode("utf-16-be") if ucs2 else gsm7_encode(text),
            )
        )

    async def received_texts(self) -> list[str]:
        return [submit.text for submit in self.submits]

    async def problems(self) -> list[str]:
        refused = [
            f"deliver_sm answered {status_name(resp.command_status)}"
            for _request, resp in self.deliver_resps
            if resp.command_status != Status.ROK
        ]
        return self.protocol_errors + self.link_failures + refused

    # -- SessionHandler ----------------------------------------------------------------------

    def connection_made(self, conn: SmppConnection) -> None:
        self.conns.append(conn)

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        self.conns.remove(conn)

    def events_received(self, conn: SmppConnection, events: list[SessionEvent]) -> None:
        for event in events:
            if isinstance(event, BindRequested):
                pdu = event.pdu
                if pdu.system_id != self.system_id:
                    status: int = Status.RINVSYSID
                elif pdu.password != self.password:
                    status = Status.RINVPASWD
                else:
                    status = Status.ROK
                self.binds.append(BindAttempt(event.bind_type, pdu.system_id, status))
                if status == Status.ROK:
                    conn.apply(conn.session.accept_bind(pdu, "sessionsmsc", conn.now()))
                    self._flush_held()
                else:
                    conn.session.reject_bind(pdu, status)
                    conn.apply(None)
            elif isinstance(event, RequestReceived) and isinstance(event.pdu, SubmitSm):
                self._on_submit(conn, event.pdu)
            elif isinstance(event, RequestReceived) and event.pdu.RESPONSE is not None:
                conn.send_response(event.pdu.make_response(Status.RINVCMDID))
            elif isinstance(event, ResponseReceived) and isinstance(event.request, DeliverSm):
                self.deliver_resps.append((event.request, event.response))
            elif isinstance(event, Unbound) and event.by_peer:
                self.unbinds += 1
            elif isinstance(event, ProtocolError):
                self.protocol_errors.append(str(event.error))
            elif isinstance(event, UnexpectedResponse):
                self.protocol_errors.append(f"unexpected {event.pdu.name}")
            elif isinstance(event, RequestTimedOut):
                self.protocol_errors.append(f"no answer to {event.request.name}")
            elif isinstance(event, LinkFailed) and not event.reason.startswith("connection "):
                # A peer closing its socket is no fault; a timer or a broken frame is.
                self.link_failures.append(event.reason)

    def _on_submit(self, conn: SmppConnection, pdu: SubmitSm) -> None:
        message_id = f"{self._next_id:X}"
        self._next_id += 1
        data = pdu.short_message or pdu.message_payload or b""
        text = decode_short_message(data, pdu.data_coding)
        self.submits.append(ReceivedSubmit(pdu, message_id, conn.session.system_id, text))
        conn.send_response(pdu.make_response(message_id=message_id))
        if pdu.registered_delivery & RegisteredDelivery.RECEIPT_MASK:
            now = datetime.now()
            body = format_receipt_text(
                message_id,
                MessageState.DELIVERED,
                now,
                now,
                text=text[:20].encode("ascii", "replace").decode(),
            )
            receipt = DeliverSm(
                source_addr_ton=pdu.dest_addr_ton,
                source_addr_npi=pdu.dest_addr_npi,
                source_addr=pdu.destination_addr,
                dest_addr_ton=pdu.source_addr_ton,
                dest_addr_npi=pdu.source_addr_npi,
                destination_addr=pdu.source_addr,
                esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
                data_coding=DataCoding.SMSC_DEFAULT,
                short_message=body.encode("latin-1"),
                tlvs=(
                    tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, message_id),
                    tlv_u8(Tag.MESSAGE_STATE, MessageState.DELIVERED),
                    (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x00"),
                ),
            )
            # After the submit_sm_resp, as SMSCs do (the call_soon flush keeps the order).
            self._deliver(receipt, prefer=conn)

    def _receivers(self, prefer: SmppConnection | None) -> list[SmppConnection]:
        able = [c for c in self.conns if c.session.can_send(CommandId.DELIVER_SM)]
        if prefer is not None and prefer in able:
            able.remove(prefer)
            able.insert(0, prefer)
        return able

    def _deliver(self, pdu: DeliverSm, prefer: SmppConnection | None = None) -> None:
        for conn in self._receivers(prefer):
            if conn.session.window_free > 0:
                conn.send_request(pdu)
                return
        self._held.append(pdu)

    def _flush_held(self) -> None:
        held, self._held = self._held, []
        for pdu in held:
            self._deliver(pdu)


class SmscUnderTest(Protocol):
    """What the client interop scenarios need from an SMSC: where it listens, a way to make
    it send an MO, and what it decoded from the submits it took."""

    host: str
    port: int

    async def inject_mo(
        self, source_addr: str, destination_addr: str, text: str, ucs2: bool = False
    ) -> None: ...

    async def received_texts(self) -> list[str]: ...

    async def problems(self) -> list[str]:
        """What the SMSC saw go wrong on the wire (protocol errors, unanswered deliver_sm,
        unexpected responses, internal errors); empty when the peer spoke clean SMPP."""
        ...


class SimulatorSmsc:
    """The simulator (smsc_simulator), driven only through its public API: start/stop, the
    actual ports, and the JSON control API (POST /v1/mo, GET /v1/messages, GET /v1/stats)."""

    def __init__(self, system_id: str = "smsgw", password: str = "secret") -> None:
        from smsc_simulator.config import (
            AccountConfig,
            ControlConfig,
            LogConfig,
            SimulatorConfig,
            SmppConfig,
        )
        from smsc_simulator.server import Simulator

        self.host = "127.0.0.1"
        self.port = 0
        self.config = SimulatorConfig(
            # A short enquire_link interval, so every client also has to answer the
            # simulator's mid-stream.
            smpp=SmppConfig(host=self.host, port=0, enquire_link_interval=0.2),
            control=ControlConfig(host=self.host, port=0),
            log=LogConfig(level="warning"),
            accounts=(AccountConfig(system_id=system_id, password=password),),
            seed=34,
        )
        self.simulator = Simulator(self.config)
        self._http: aiohttp.ClientSession | None = None
        self.base_url = ""

    async def start(self) -> None:
        await asyncio.wait_for(self.simulator.start(), PEER_START_TIMEOUT)
        assert self.simulator.smpp_port and self.simulator.control_port
        self.port = self.simulator.smpp_port
        self.base_url = f"http://{self.host}:{self.simulator.control_port}"
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=EVENT_TIMEOUT))

    async def stop(self) -> None:
        try:
            if self._http is not None:
                await self._http.close()
        finally:
            await asyncio.wait_for(self.simulator.stop(), 10.0)

    async def __aenter__(self) -> SimulatorSmsc:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self._http is not None
        async with self._http.request(method, self.base_url + path, json=body) as response:
            return response.status, await response.json()

    async def inject_mo(
        self, source_addr: str, destination_addr: str, text: str, ucs2: bool = False
    ) -> None:
        # The simulator picks the alphabet from the text: UCS-2 whenever GSM 03.38 cannot
        # carry it, so ``ucs2`` needs no field of its own.
        status, body = await self.control(
            "POST", "/v1/mo", {"from": source_addr, "to": destination_addr, "text": text}
        )
        assert status == 202, (status, body)

    async def received_texts(self) -> list[str]:
        status, body = await self.control("GET", "/v1/messages?limit=1000")
        assert status == 200, (status, body)
        return [message["text"] for message in body["messages"]]

    async def problems(self) -> list[str]:
        stats = await self.stats()
        found = [
            f"{key}={stats[key]}"
            for key in (
                "protocol_errors",
                "unexpected_responses",
                "internal_errors",
                "deliver_sm_timeouts",
                "receipts_dropped",
                "mo_dropped",
                "submit_sm_garbage",
                "submit_sm_generic_nack",
            )
            if stats[key]
        ]
        found += [
            f"deliver_sm_resp {status}={count}"
            for status, count in stats["deliver_sm_resp_by_status"].items()
            if status != "ESME_ROK"
        ]
        return found

    async def stats(self) -> dict[str, Any]:
        status, body = await self.control("GET", "/v1/stats")
        assert status == 200, (status, body)
        result: dict[str, Any] = body
        return result


@contextlib.asynccontextmanager
async def smsc_under_test(kind: str) -> AsyncIterator[SmscUnderTest]:
    """A running SMSC for the client scenarios: ``session`` (SessionSmsc) or ``simulator``."""
    target: SessionSmsc | SimulatorSmsc
    if kind == "session":
        target = SessionSmsc()
    elif kind == "simulator":
        target = SimulatorSmsc()
    else:
        raise ValueError(kind)
    async with target:
        yield target
