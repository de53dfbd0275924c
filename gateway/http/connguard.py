"""The HTTP API's connections: read deadlines, caps, and room kept for new clients.

aiohttp waits for a request's headers as long as the client likes: 19,985 connections
sending one header line every 10 s held every file descriptor of the daemon, and /healthz
and POST failed until they let go. The guard sits between the listening socket and aiohttp's
protocol (:class:`GuardedProtocol` wraps the ``web.Server`` protocol; a middleware tells it
when a request starts and ends) and enforces, per connection:

- ``header_timeout``: the request line and headers must be complete within this many
  seconds of the connection opening, or of the first byte of the next request on a kept-alive
  connection; trickling a header line every few seconds does not extend it.
- ``body_timeout``: a request body that stops arriving for this long is given up (a client
  that paused mid-body). Time while the gateway itself is not reading (flow control: the
  handler has not taken what came) does not count.
- ``idle_timeout``: a kept-alive connection with no request for this long is closed.

and, over all connections:

- ``max_connections`` in total and ``max_connections_per_client`` from one address. The
  total is also held below the process's open-file limit (``RLIMIT_NOFILE`` less
  ``FD_RESERVE`` for the store, the binds and the callbacks), so the daemon never runs out
  of descriptors.
- At a cap, a new connection takes the place of the connection that has waited longest
  for its request headers (a slow client, or an idle kept-alive one): no request under way
  is cut, and a health check or a scrape still gets in while thousands of slow clients
  hold the port. Only when every connection has a request under way is the new one
  answered ``503`` with ``Retry-After`` and closed.

Every connection closed or refused this way is counted by reason
(``smsgw_http_connections_closed_total{reason}``) and logged at most once per
``LOG_INTERVAL`` per reason, with the count since the last line.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from aiohttp import web

from gateway.logs import log_event
from gateway.metrics import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from gateway.http.fastlane import FastLane, LaneConnection

log = logging.getLogger("smsgw.http")

FD_RESERVE: Final = 256
"""File descriptors kept out of the HTTP API's reach: the SQLite files and their WAL, the
SMPP binds and the front's clients, the callback pool (32), SMTP, logs. The connection cap
is held at ``RLIMIT_NOFILE - FD_RESERVE``."""

MIN_CONNECTIONS: Final = 16
"""The cap never goes below this, however low the open-file limit."""

LOG_INTERVAL: Final = 10.0
"""Seconds between two log lines for one reason a connection was closed (a flood of slow
clients must not become a flood of log lines)."""

TOO_MANY_CONNECTIONS: Final = "too_many_connections"
"""Error code of the 503 a connection gets when every slot has a request under way."""

_REFUSAL_BODY: Final = (
    b'{"error":{"code":"too_many_connections","message":"every connection has a request'
    b' under way; retry","details":[]}}'
)
REFUSAL: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY
)
"""What such a connection gets: a fixed answer, no parsing, no handler."""

HEADER_TIMEOUT: Final = "header_timeout"
BODY_TIMEOUT: Final = "body_timeout"
IDLE_TIMEOUT: Final = "idle_timeout"
EVICTED: Final = "evicted"
REFUSED: Final = "refused"
REASONS: Final = (HEADER_TIMEOUT, BODY_TIMEOUT, IDLE_TIMEOUT, EVICTED, REFUSED)


@dataclass(frozen=True, slots=True)
class GuardSettings:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 30.0
    max_connections: int = 4096
    max_connections_per_client: int = 256

    @classmethod
    def from_config(cls, http: Any) -> GuardSettings:
        """From an ``HttpConfig`` (``gateway.config``)."""
        return cls(
            header_timeout=http.header_timeout,
            body_timeout=http.body_timeout,
            idle_timeout=http.idle_timeout,
            max_connections=http.max_connections,
            max_connections_per_client=http.max_connections_per_client,
        )


def descriptor_cap(wanted: int) -> int:
    """``wanted``, lowered to what the open-file limit leaves after ``FD_RESERVE``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(MIN_CONNECTIONS, min(wanted, soft - FD_RESERVE))


class Conn:
    """One connection as the guard sees it."""

    __slots__ = (
        "client",
        "guard",
        "head_since",
        "in_request",
        "last_rx",
        "request",
        "timer",
        "timer_at",
        "transport",
        "waiting_since",
    )

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport, client: str):
        self.guard = guard
        self.transport = transport
        self.client = client
        now = guard.clock()
        self.waiting_since = now  # since when it waits for a request (oldest: evicted first)
        self.head_since: float | None = now  # a request's head started; None: idle
        self.in_request = False
        self.request: web.BaseRequest | None = None
        self.last_rx = now
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0  # when the timer fires, in the guard's clock


class ConnectionGuard:
    """Admission, deadlines and counts for the connections of one HTTP listener."""

    def __init__(
        self,
        settings: GuardSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        cap: int | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.max_connections = cap if cap is not None else descriptor_cap(settings.max_connections)
        self.per_client = min(settings.max_connections_per_client, self.max_connections)
        self.conns: dict[asyncio.BaseTransport, Conn] = {}
        self.by_client: dict[str, dict[asyncio.BaseTransport, Conn]] = {}
        self.closed: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}

    # -- the protocol's side -----------------------------------------------------------------

    def admit(self, transport: asyncio.Transport) -> Conn | None:
        """A new connection: its Conn, or None when it was refused (and closed)."""
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        mine = self.by_client.get(client, {})
        if len(mine) >= self.per_client and not self._evict(mine.values()):
            self._refuse(transport)
            return None
        if len(self.conns) >= self.max_connections and not self._evict(self.conns.values()):
            self._refuse(transport)
            return None
        conn = Conn(self, transport, client)
        self.conns[transport] = conn
        self.by_client.setdefault(client, {})[transport] = conn
        self._arm(conn, conn.waiting_since + self.settings.header_timeout)
        return conn

    def received(self, conn: Conn) -> None:
        now = self.clock()
        conn.last_rx = now
        if not conn.in_request and conn.head_since is None:  # the first byte of a request
            conn.head_since = now
            self._arm(conn, now + self.settings.header_timeout)

    def lost(self, conn: Conn) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self.conns.pop(conn.transport, None)
        mine = self.by_client.get(conn.client)
        if mine is not None:
            mine.pop(conn.transport, None)
            if not mine:
                del self.by_client[conn.client]

    # -- the middleware's side ---------------------------------------------------------------

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """The guard alone as a middleware (the daemon's request middleware,
        gateway.http.pipeline, calls :meth:`request_started` and :meth:`request_finished`
        itself)."""

        @web.middleware
        async def guard(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            conn = self.request_started(request)
            if conn is None:
                return await handler(request)
            try:
                return await handler(request)
            finally:
                self.request_finished(conn)

        return guard

    def request_started(self, request: web.BaseRequest) -> Conn | None:
        """A request's handling begins: its connection (None when it did not come through
        the guarded listener, as with tests' TestServer); pass it to
        :meth:`request_finished` when the handling ends, whatever the outcome."""
        transport = request.transport
        conn = self.conns.get(transport) if transport is not None else None
        if conn is not None:
            self._started(conn, request)
        return conn

    def request_finished(self, conn: Conn) -> None:
        self._finished(conn)

    def lane_request_started(self, conn: Conn) -> None:
        """A request the fast lane (gateway.http.fastlane) answers begins on ``conn``: its
        body is in already (no body deadline); :meth:`request_finished` when answered."""
        self._started(conn, None)

    def _started(self, conn: Conn, request: web.BaseRequest | None) -> None:
        conn.in_request = True
        conn.request = request
        conn.head_since = None
        self._arm(conn, conn.last_rx + self.settings.body_timeout)

    def _finished(self, conn: Conn) -> None:
        now = self.clock()
        conn.in_request = False
        conn.request = None
        conn.waiting_since = now
        conn.head_since = None
        self._arm(conn, now + self.settings.idle_timeout)

    # -- deadlines -----------------------------------------------------------------------------

    def _arm(self, conn: Conn, at: float) -> None:
        """The connection's one timer fires at ``at`` at the latest. A timer already due
        earlier is left as it is: ``_due`` finds the deadline of the connection's state
        when it fires and sets the timer again. So a kept-alive connection moves its
        timer about twice per ``header_timeout``, not three times per request (cancelling
        and making a timer was 2-3 % of the gateway's CPU at one message per POST)."""
        timer = conn.timer
        if timer is not None:
            if conn.timer_at <= at:
                return
            timer.cancel()
        loop = asyncio.get_running_loop()
        conn.timer_at = at
        conn.timer = loop.call_at(loop.time() + max(0.0, at - self.clock()), self._due, conn)

    def _due(self, conn: Conn) -> None:
        conn.timer = None
        if conn.transport not in self.conns:
            return
        now = self.clock()
        settings = self.settings
        if conn.in_request:
            request = conn.request
            if request is None or request.content.at_eof():
                return  # the body is in: a slow handler is not the client's fault
            if not conn.transport.is_reading():  # flow control: we are not reading
                self._arm(conn, now + settings.body_timeout)
                return
            deadline, reason = conn.last_rx + settings.body_timeout, BODY_TIMEOUT
        elif conn.head_since is not None:
            deadline, reason = conn.head_since + settings.header_timeout, HEADER_TIMEOUT
        else:
            deadline, reason = conn.waiting_since + settings.idle_timeout, IDLE_TIMEOUT
        if now < deadline:
            self._arm(conn, deadline)
            return
        self._close(conn, reason)

    # -- closing -------------------------------------------------------------------------------

    def _evict(self, candidates: Iterable[Conn]) -> bool:
        """Close the connection that has waited longest for a request; False when every
        one has a request under way."""
        oldest: Conn | None = None
        for conn in candidates:
            if not conn.in_request and (
                oldest is None or conn.waiting_since < oldest.waiting_since
            ):
                oldest = conn
        if oldest is None:
            return False
        self._close(oldest, EVICTED)
        return True

    def _close(self, conn: Conn, reason: str) -> None:
        self.lost(conn)  # its slot is free now, not when the transport says so
        conn.transport.abort()
        self._count(reason, conn.client)

    def _refuse(self, transport: asyncio.Transport) -> None:
        transport.write(REFUSAL)
        transport.close()
        peer = transport.get_extra_info("peername")
        self._count(REFUSED, str(peer[0]) if peer else "")

    def _count(self, reason: str, client: str) -> None:
        self.closed[reason] += 1
        self._unlogged[reason] += 1
        now = self.clock()
        if now - self._logged_at.get(reason, -LOG_INTERVAL) >= LOG_INTERVAL:
            self._logged_at[reason] = now
            log_event(
                log,
                "http.connection_closed",
                logging.WARNING,
                reason=reason,
                count=self._unlogged.pop(reason),
                client=client,
                open=len(self.conns),
                cap=self.max_connections,
            )

    # -- metrics -------------------------------------------------------------------------------

    def collect(self) -> list[Any]:
        open_ = GaugeMetricFamily("smsgw_http_connections", "HTTP API connections open")
        open_.add_metric([], len(self.conns))
        cap = GaugeMetricFamily(
            "smsgw_http_connections_max", "HTTP API connection cap (after the open-file limit)"
        )
        cap.add_metric([], self.max_connections)
        closed = CounterMetricFamily(
            "smsgw_http_connections_closed",
            "HTTP API connections the gateway closed or refused, by reason",
            labels=["reason"],
        )
        for reason in REASONS:
            closed.add_metric([reason], self.closed[reason])
        return [open_, cap, closed]


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the guard; with a fast ``lane``
    (gateway.http.fastlane), the lane reads the connection first and aiohttp's protocol is
    made only when the lane hands the connection over (else aiohttp's keep-alive timer
    would close a connection whose requests it never saw)."""

    def __init__(
        self,
        guard: ConnectionGuard,
        inner: Callable[[], asyncio.Protocol],
        lane: FastLane | None = None,
    ) -> None:
        self.guard = guard
        self.make_inner = inner
        self.inner: asyncio.Protocol | None = None
        self.lane = lane
        self.on_lane: LaneConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.conn: Conn | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, but is one).
        stream = cast(asyncio.Transport, transport)
        self.conn = self.guard.admit(stream)
        if self.conn is None:
            return
        self.transport = stream
        if self.lane is not None:
            self.on_lane = self.lane.connection(stream, self.guard, self.conn, self._hand_over)
        else:
            self.inner = self.make_inner()
            self.inner.connection_made(transport)

    def _hand_over(self, data: bytes) -> None:
        """The lane leaves the connection to aiohttp, with the bytes it has not answered."""
        self.on_lane = None
        inner = self.inner = self.make_inner()
        inner.connection_made(cast(asyncio.Transport, self.transport))
        if data:
            inner.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.conn is None:
            return  # refused: the 503 is on its way and the transport closing
        self.guard.received(self.conn)
        if self.on_lane is not None:
            self.on_lane.feed(data)
        elif self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        # aiohttp's protocol says None too: the transport closes its side.
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.guard.lost(self.conn)
            if self.on_lane is not None:
                self.on_lane.lost()
            if self.inner is not None:
                self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.on_lane is not None:
            self.on_lane.pause_writing()
        elif self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.on_lane is not None:
            self.on_lane.resume_writing()
        elif self.inner is not None:
            self.inner.resume_writing()


async def serve_guarded(
    runner: web.AppRunner,
    guard: ConnectionGuard,
    host: str,
    port: int,
    lane: FastLane | None = None,
) -> asyncio.Server:
    """Listen on (host, port) with ``runner``'s aiohttp server behind ``guard`` (and the
    fast ``lane`` in front of it, if given). The caller closes the returned server before
    ``runner.cleanup()``."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: GuardedProtocol(guard, server, lane),
        host,
        port,
        reuse_address=True,
        backlog=1024,
    )
