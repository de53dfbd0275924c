"""The callback sender's HTTP/1.1 client: keep-alive connections per origin, one POST each.

Why not aiohttp's client: a callback is one small POST whose answer matters only by its
status, and aiohttp's request machinery (request and response objects, header multidicts,
a timer context, connector bookkeeping, traces) cost about a quarter of the gateway's CPU
at one callback per message (README, Performance). This client does what a callback needs
and nothing else:

- Connections are kept per origin (scheme, host, port) and reused while the receiver keeps
  them open (HTTP/1.1, no ``Connection: close``, the response read to its end); one idle
  longer than :data:`IDLE_SECONDS` is closed rather than reused (servers drop idle
  connections after 5-75 s, and a POST written into one they are closing is lost). At most
  ``max_idle`` idle connections in all, whatever the number of origins; the sender's
  workers bound the busy ones.
- A request is built as bytes (``callback_http.request_head``) and written in one call; the
  response is read by ``callback_http.ResponseReader`` (status line, framing headers, body
  skipped, limits on every length).
- One deadline per request (``timeout`` seconds from the start, connection included): a
  receiver that trickles its answer (slowloris) is cut at the deadline like a silent one.
- A request on a reused connection that the receiver closed before answering a byte (the
  race between its idle close and our write) is sent once more on a new connection, at
  once: a receiver deduplicates on ``X-Smsgw-Callback-Id`` anyway (delivery is at least
  once).
- https: the platform's trust store and host name check (``ssl.create_default_context``,
  ALPN ``http/1.1``, as aiohttp's default context), SNI the URL's host.
- Credentials in the URL (``https://user:pass@host/``) are sent as ``Authorization:
  Basic``, as aiohttp did; redirects are never followed (a 3xx is a failed attempt).

The callback policy (``gateway.callback_policy``) holds on every connection, whatever the
URL's spelling: the host read as at intake (yarl's normalised, IDNA form); a name's
resolved addresses filtered (``allowed_addresses``); each socket's target address checked
before ``connect()`` (:meth:`CallbackClient._may_connect`); the connected peer checked
before the TLS handshake and before a byte of the request (:meth:`CallbackClient._peer_ok`).

Every failure raises an exception whose text says what happened (stored as the callback's
``last_error``): :class:`ConnectFailed` (``OSError``, incl. ``CallbackRefused``),
``TimeoutError``, :class:`ReceiverClosed`, ``callback_http.ResponseError``, ``ValueError``
for a URL this client cannot use.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from yarl import URL

from gateway.callback_policy import CallbackPolicy, CallbackRefused, allowed_addresses
from gateway.engine.callback_http import Response, ResponseReader, request_head

IDLE_SECONDS: Final = 15.0
"""An idle kept-alive connection older than this is closed, not reused (aiohttp's client
default; below the 60-75 s of nginx and aiohttp servers, above Apache's 5 s, where the
retry on a fresh connection covers the race)."""

DNS_TTL_SECONDS: Final = 300.0
"""Resolved addresses kept per (host, port) this long (what the aiohttp session had:
``ttl_dns_cache=300``). The policy filters them again on every use."""

URL_CACHE: Final = 4096
"""Parsed callback URLs kept (most traffic goes to a few URLs); the cache is emptied when
full."""

USER_AGENT: Final = "smsgw"

Resolver = Callable[[str, int], Awaitable[Sequence[tuple[int, tuple[Any, ...]]]]]
"""(host, port) -> [(family, sockaddr)], as ``getaddrinfo`` gives for a TCP socket."""


class ConnectFailed(OSError):
    """No connection to the receiver: refused, unreachable, not allowed by the policy."""


class ReceiverClosed(ConnectionError):
    """The receiver closed the connection before its answer was over."""


@dataclass(frozen=True, slots=True)
class Target:
    """A callback URL as this client uses it."""

    origin: tuple[str, str, int]
    host: str
    """The host to resolve or connect to: yarl's normalised form, no brackets, no
    trailing dot."""
    port: int
    tls: bool
    prefix: bytes
    """The request line and the fixed headers (Host, User-Agent, Authorization)."""


def parse_target(url: str) -> Target:
    """``ValueError`` for a URL that is not http(s) with a host."""
    parsed = URL(url)
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("callback URL is not http:// or https://")
    raw_host = parsed.raw_host
    host = raw_host.rstrip(".").lower() if raw_host else ""
    port = parsed.port
    if not host or port is None:
        raise ValueError("callback URL names no host")
    path = parsed.raw_path_qs or "/"
    if not path.isascii() or not path.isprintable() or " " in path:
        raise ValueError("callback URL path is not plain ASCII")
    authority = parsed.host_port_subcomponent or host
    fixed = [("User-Agent", USER_AGENT)]
    if parsed.user is not None or parsed.password is not None:
        try:
            token = f"{parsed.user or ''}:{parsed.password or ''}".encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("callback URL credentials are not Latin-1") from None
        fixed.append(("Authorization", "Basic " + base64.b64encode(token).decode("ascii")))
    prefix = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in fixed
    )
    return Target((scheme, host, port), host, port, scheme == "https", prefix.encode("latin-1"))


def default_ssl_context() -> ssl.SSLContext:
    """Verified TLS as aiohttp's client had it: the platform's CAs, host names checked."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


async def system_resolver(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to a receiver: a request out, its response read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.got_bytes = False
        self._reader = ResponseReader()
        self._waiter: asyncio.Future[Response] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.close()  # bytes nobody asked for: this connection carries nothing more
            return
        self.got_bytes = True
        try:
            response = self._reader.feed(data)
        except ValueError as exc:  # ResponseError
            waiter.set_exception(exc)
            self.close()
            return
        if response is not None:
            self._waiter = None
            waiter.set_result(response)

    def eof_received(self) -> bool:
        self.closed = True  # never handed out again, even before connection_lost
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(
                ReceiverClosed("the receiver closed the connection before its answer")
            )

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._reader = ResponseReader()
        self.got_bytes = False
        self.transport.write(data)
        return waiter

    def expire(self, seconds: float) -> None:
        """The request's deadline passed: fail it and drop the connection."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError(f"no complete answer within {seconds:g} s"))
        self.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


@dataclass(slots=True)
class ClientStats:
    requests: int = 0
    connections: int = 0
    """Connections opened (requests - connections were sent on a kept-alive one)."""
    stale_retries: int = 0
    """Requests sent again on a new connection after the receiver closed a reused one."""


class CallbackClient:
    def __init__(
        self,
        policy: CallbackPolicy,
        *,
        timeout: float,
        max_idle: int = 32,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        idle_seconds: float = IDLE_SECONDS,
        dns_ttl: float = DNS_TTL_SECONDS,
    ) -> None:
        self.policy = policy
        self.timeout = timeout
        self.stats = ClientStats()
        self._max_idle = max_idle
        self._resolver = resolver or system_resolver
        self._ssl = ssl_context if ssl_context is not None else default_ssl_context()
        self._idle_seconds = idle_seconds
        self._dns_ttl = dns_ttl
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        """Per origin, idle connections, the longest idle first."""
        self._idle_count = 0
        self._next_sweep = 0.0
        self._targets: dict[str, Target] = {}
        self._dns: dict[tuple[str, int], tuple[float, Sequence[tuple[int, tuple[Any, ...]]]]] = {}
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0

    async def post(self, url: str, body: bytes, headers: Sequence[tuple[str, str]]) -> int:
        """POST ``body`` to ``url``; the response's status. Raises on any failure (see the
        module's list)."""
        target = self._targets.get(url)
        if target is None:
            target = parse_target(url)
            if len(self._targets) >= URL_CACHE:
                self._targets.clear()
            self._targets[url] = target
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        data = request_head(target.prefix, len(body), headers) + body
        self.stats.requests += 1
        conn = self._checkout(target.origin)
        if conn is not None:
            try:
                return await self._exchange(target, conn, data, deadline)
            except ReceiverClosed:
                if conn.got_bytes:
                    raise
                self.stats.stale_retries += 1  # closed while idle: once more, on a new one
        async with asyncio.timeout_at(deadline):
            conn = await self._connect(target)
        return await self._exchange(target, conn, data, deadline)

    async def _exchange(
        self, target: Target, conn: _Connection, data: bytes, deadline: float
    ) -> int:
        loop = asyncio.get_running_loop()
        waiter = conn.send(data)
        timer = loop.call_at(deadline, conn.expire, self.timeout)
        try:
            response = await waiter
        except BaseException:
            conn.abort()
            raise
        finally:
            timer.cancel()
        if response.keep_alive and not conn.closed and not self._closed:
            self._checkin(target.origin, conn, loop.time())
        else:
            conn.close()
        return response.status

    # -- the pool -----------------------------------------------------------------------------

    def _checkout(self, origin: tuple[str, str, int]) -> _Connection | None:
        conns = self._idle.get(origin)
        if not conns:
            return None
        oldest = asyncio.get_running_loop().time() - self._idle_seconds
        conn = None
        while conns:
            candidate = conns.pop()  # the most recently used: the least likely to be closed
            self._idle_count -= 1
            if candidate.closed:
                continue
            if candidate.idle_since < oldest:
                candidate.close()
                continue
            conn = candidate
            break
        if not conns:
            del self._idle[origin]
        return conn

    def _checkin(self, origin: tuple[str, str, int], conn: _Connection, now: float) -> None:
        """Keep ``conn`` for the next request to ``origin``. At most ``max_idle`` idle
        connections in all (as aiohttp's connector limit had it: a gateway calling
        thousands of clients' URLs holds no more descriptors), the longest idle closed
        first; every ``idle_seconds`` those closed by their receiver or idle too long are
        dropped, whatever their origin."""
        if now >= self._next_sweep:
            self._sweep(now)
        if self._idle_count >= self._max_idle:
            self._drop_longest_idle()
        conn.idle_since = now
        self._idle.setdefault(origin, []).append(conn)
        self._idle_count += 1

    def idle_connections(self) -> int:
        return self._idle_count

    def _drop_longest_idle(self) -> None:
        origin = min(self._idle, key=lambda o: self._idle[o][0].idle_since)
        conns = self._idle[origin]
        conns.pop(0).close()
        self._idle_count -= 1
        if not conns:
            del self._idle[origin]

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self._idle_seconds
        oldest = now - self._idle_seconds
        for origin in list(self._idle):
            kept = []
            for conn in self._idle[origin]:
                if conn.closed or conn.idle_since < oldest:
                    conn.close()
                else:
                    kept.append(conn)
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]
        self._idle_count = sum(len(conns) for conns in self._idle.values())

    # -- connecting ---------------------------------------------------------------------------

    def _may_connect(self, address: str) -> bool:
        """The check on a socket's target address, before ``connect()``."""
        return self.policy.address_allowed(address)

    def _peer_ok(self, address: str) -> bool:
        """The check on the connected peer, before a byte is written."""
        return self.policy.address_allowed(address)

    async def _addresses(self, host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        try:
            ip = socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            ip = None
        if ip is not None:  # an IP literal: no resolver
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sockaddr: tuple[Any, ...] = (host, port, 0, 0) if ":" in host else (host, port)
            return [(family, sockaddr)]
        key = (host, port)
        now = time.monotonic()
        cached = self._dns.get(key)
        if cached is None or cached[0] < now:
            try:
                found = await self._resolver(host, port)
            except OSError as exc:
                raise ConnectFailed(f"Cannot resolve host {host}: {exc}") from exc
            if len(self._dns) >= URL_CACHE:
                self._dns.clear()
            self._dns[key] = (now + self._dns_ttl, found)
        else:
            found = cached[1]
        return allowed_addresses(self.policy, host, found)

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        where = f"{target.host}:{target.port}"
        try:
            addresses = await self._addresses(target.host, target.port)
        except CallbackRefused as exc:
            raise ConnectFailed(f"Cannot connect to host {where}: {exc.strerror}") from exc
        last: OSError | None = None
        for family, sockaddr in addresses:
            address = str(sockaddr[0])
            if not self._may_connect(address):
                last = CallbackRefused(f"callback connection to {address} refused by the policy")
                continue
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, sockaddr)
                peer = sock.getpeername()
                if not self._peer_ok(str(peer[0])):
                    raise CallbackRefused(f"callback connected to {peer[0]}: refused by the policy")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                context = self._ssl if target.tls else None
                _, conn = await loop.create_connection(
                    _Connection,
                    sock=sock,
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                )
            except OSError as exc:  # incl. ssl.SSLError and CallbackRefused
                with contextlib.suppress(OSError):
                    sock.close()
                last = exc
                continue
            except BaseException:
                with contextlib.suppress(OSError):
                    sock.close()
                raise
            self.stats.connections += 1
            return conn
        raise ConnectFailed(f"Cannot connect to host {where}: {last}")
