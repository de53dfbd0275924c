"""A small asyncio ESME for tests, on our own Session and SmppConnection.

    client = await EsmeClient.connect("127.0.0.1", port)
    assert await client.bind("trx", "smsgw", "secret") == Status.ROK
    resp = await client.submit(source_addr="123", destination_addr="456", short_message=b"hi")
    receipt = await client.next_deliver()
    await client.unbind()

deliver_sm and data_sm from the SMSC are queued in ``delivers`` and answered at once with
``deliver_status`` (ROK by default); set ``auto_answer = False`` to hold them and answer
later with ``answer()`` (to fill the SMSC's window). Every wait takes ``within`` (seconds), so a
test never hangs on a peer that stays silent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import Status
from gateway.smpp.errors import DecodeError
from gateway.smpp.pdu import DeliverSm, Pdu, SubmitSm
from gateway.smpp.session import (
    BindFailed,
    BindType,
    Bound,
    Event,
    LinkFailed,
    ProtocolError,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
    Unbound,
)


class _CountingConnection(SmppConnection):
    """Counts the octets received, to prove a silent peer sent nothing at all (the session
    answers enquire_link_resp itself, without an event)."""

    bytes_received = 0

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        super().data_received(data)


class EsmeClient:
    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.conn: SmppConnection | None = None
        self.delivers: asyncio.Queue[Pdu] = asyncio.Queue()
        self.unanswered: list[Pdu] = []
        self.protocol_errors: list[DecodeError] = []
        self.auto_answer = True
        self.deliver_status: int = Status.ROK
        self.arrivals: list[str] = []
        """Names of the PDUs received, in order (responses and requests alike)."""
        self.closed = asyncio.Event()
        self.close_reason = ""
        self._bind_result: asyncio.Future[int] | None = None
        self._waiters: set[asyncio.Future[Pdu]] = set()

    # -- connecting ------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        window: int = 1000,
        response_timeout: float = 10.0,
        enquire_link_interval: float = 60.0,
    ) -> EsmeClient:
        client = cls(
            SessionConfig(
                window=window,
                response_timeout=response_timeout,
                enquire_link_interval=enquire_link_interval,
                bind_timeout=response_timeout,
            )
        )
        loop = asyncio.get_running_loop()
        _transport, _conn = await loop.create_connection(
            lambda: _CountingConnection(Session(Role.ESME, client.config, loop.time()), client),
            host,
            port,
        )
        return client

    @classmethod
    async def bound(
        cls,
        port: int,
        bind_type: BindType | str = BindType.TRX,
        system_id: str = "smsgw",
        password: str = "secret",
        host: str = "127.0.0.1",
        **kwargs: Any,
    ) -> EsmeClient:
        """Connect and bind; raises AssertionError if the bind is refused."""
        client = await cls.connect(host, port, **kwargs)
        status = await client.bind(bind_type, system_id, password)
        if status != Status.ROK:
            await client.close()
            raise AssertionError(f"bind refused with 0x{status:08x}")
        return client

    @property
    def bytes_received(self) -> int:
        return self.conn.bytes_received if isinstance(self.conn, _CountingConnection) else 0

    @property
    def session(self) -> Session:
        assert self.conn is not None
        return self.conn.session

    async def bind(
        self,
        bind_type: BindType | str,
        system_id: str,
        password: str,
        within: float = 5.0,
    ) -> int:
        """Bind; returns the bind_resp command_status (0 when bound)."""
        assert self.conn is not None
        loop = asyncio.get_running_loop()
        self._bind_result = loop.create_future()
        self.conn.session.bind(
            BindType(bind_type), self.conn.now(), system_id=system_id, password=password
        )
        self.conn.apply(None)
        return await asyncio.wait_for(self._bind_result, within)

    # -- requests --------------------------------------------------------------------------

    def request_nowait(self, pdu: Pdu) -> asyncio.Future[Pdu]:
        """Send a request; the future gets its response (or generic_nack)."""
        assert self.conn is not None
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        future.add_done_callback(self._waiters.discard)
        self.conn.send_request(pdu, future)
        return future

    async def request(self, pdu: Pdu, within: float = 5.0) -> Pdu:
        return await asyncio.wait_for(self.request_nowait(pdu), within)

    def submit_nowait(self, pdu: SubmitSm | None = None, **fields: Any) -> asyncio.Future[Pdu]:
        return self.request_nowait(pdu if pdu is not None else SubmitSm(**fields))

    async def submit(self, pdu: SubmitSm | None = None, within: float = 5.0, **fields: Any) -> Pdu:
        return await asyncio.wait_for(self.submit_nowait(pdu, **fields), within)

    async def submit_many(self, pdus: list[SubmitSm], within: float = 5.0) -> list[Pdu]:
        """Pipeline the whole list, then wait for every response."""
        futures = [self.submit_nowait(p) for p in pdus]
        return list(await asyncio.wait_for(asyncio.gather(*futures), within))

    def write_raw(self, data: bytes) -> None:
        assert self.conn is not None and self.conn.transport is not None
        self.conn.transport.write(data)

    # -- deliveries ------------------------------------------------------------------------

    async def next_deliver(self, within: float = 5.0) -> Pdu:
        return await asyncio.wait_for(self.delivers.get(), within)

    async def collect(self, count: int, within: float = 5.0) -> list[Pdu]:
        """The next ``count`` deliver_sm (or data_sm), in arrival order."""

        async def gather() -> list[Pdu]:
            return [await self.delivers.get() for _ in range(count)]

        return await asyncio.wait_for(gather(), within)

    def answer(self, pdu: Pdu, status: int = Status.ROK) -> None:
        assert self.conn is not None
        self.conn.send_response(pdu.make_response(status))

    # -- closing ---------------------------------------------------------------------------

    async def unbind(self, within: float = 5.0) -> None:
        if self.conn is None or not self.conn.session.is_bound:
            await self.close()
            return
        self.conn.session.unbind(self.conn.now())
        self.conn.apply(None)
        try:
            await asyncio.wait_for(self.closed.wait(), within)
        finally:
            await self.close()

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            await asyncio.wait_for(asyncio.shield(self.conn.closed), 5.0)

    async def wait_closed(self, within: float = 5.0) -> None:
        await asyncio.wait_for(self.closed.wait(), within)

    # -- SessionHandler --------------------------------------------------------------------

    def connection_made(self, conn: SmppConnection) -> None:
        self.conn = conn

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        self._finish(f"connection lost: {exc}" if exc else "connection closed")

    def events_received(self, conn: SmppConnection, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, ResponseReceived):
                self.arrivals.append(event.response.name)
                _settle(event.context, event.response)
            elif isinstance(event, RequestTimedOut):
                _settle(event.context, TimeoutError("no response"))
            elif isinstance(event, RequestReceived):
                pdu = event.pdu
                self.arrivals.append(pdu.name)
                if isinstance(pdu, DeliverSm) or pdu.RESPONSE is not None:
                    if self.auto_answer:
                        conn.send_response(pdu.make_response(self.deliver_status))
                    else:
                        self.unanswered.append(pdu)
                self.delivers.put_nowait(pdu)
            elif isinstance(event, Bound):
                if self._bind_result is not None and not self._bind_result.done():
                    self._bind_result.set_result(Status.ROK)
            elif isinstance(event, BindFailed):
                if self._bind_result is not None and not self._bind_result.done():
                    status = event.command_status
                    self._bind_result.set_result(-1 if status is None else status)
            elif isinstance(event, ProtocolError):
                self.protocol_errors.append(event.error)
            elif isinstance(event, LinkFailed | Unbound):
                self._finish(str(event))

    def _finish(self, reason: str) -> None:
        if not self.closed.is_set():
            self.close_reason = reason
            self.closed.set()
        if self._bind_result is not None and not self._bind_result.done():
            self._bind_result.set_exception(ConnectionError(reason))
        for future in list(self._waiters):
            if not future.done():
                future.set_exception(ConnectionError(reason))


def _settle(context: Any, outcome: Pdu | Exception) -> None:
    if isinstance(context, asyncio.Future) and not context.done():
        if isinstance(outcome, Exception):
            context.set_exception(outcome)
        else:
            context.set_result(outcome)
