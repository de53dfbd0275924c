"""A fast lane for the hot routes: ``POST /v1/messages`` and ``/v1/messages/batch``, plain.

At one message per request, aiohttp's server around the handler (its request and response
objects, header multidicts, router, middleware, payload stream, writer) cost about as much
CPU as the whole message's path through the dispatcher and the store. This lane sits in
front of aiohttp on each connection of the daemon's listener (gateway.http.connguard's
:class:`~gateway.http.connguard.GuardedProtocol`) and answers the plain case itself:

- an ``HTTP/1.1`` ``POST`` of exactly ``/v1/messages`` or ``/v1/messages/batch``, its head
  in printable ASCII, every header once, a ``Content-Length`` within ``http.max_body_bytes``
  with the whole body already read, ``Content-Type: application/json`` (optionally
  ``; charset=utf-8``), a valid bearer token with the ``send`` scope, no
  ``Transfer-Encoding``, ``Expect`` or ``Upgrade``, no ``Connection`` but ``keep-alive``;
  the gateway not draining. With an ``Idempotency-Key``, the handler's steps for it: the
  stored answer replayed, or the answer committed with the messages.

Its answer is what aiohttp and the request middleware (gateway.http.pipeline) would send:
the handler's own steps (gateway.http.messages: the checks, the commit before the 202,
the enqueue), the same error answers (:func:`gateway.http.errors.error_answer`) and refusal
log lines, the same JSON text and headers (``Content-Type``, ``Content-Length``, ``Date``,
``Server``, any the error carries), the same counts in ``/metrics``, the same connection
deadlines (the guard sees the request start and end). Every other request (a missing or
wrong token, a draining gateway, a body still arriving, a header the lane does not read)
is aiohttp's: the lane hands the connection over, with the bytes of that request and
everything after, before doing anything for it, and stays out of the connection for the
rest of its life.

Requests of one connection are answered in order, one at a time (as aiohttp does); the
lane reads no further than ``READ_AHEAD`` bytes past the request it handles.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE

from gateway.http.auth import Authenticator
from gateway.http.drain import Drain
from gateway.http.errors import error_answer
from gateway.http.messages import MessagesApi, Prepared, checked_key
from gateway.http.reqlog import error_code, log_refusal
from gateway.http.request_metrics import HttpMetrics

if TYPE_CHECKING:
    from gateway.http.connguard import Conn, ConnectionGuard

log = logging.getLogger("smsgw.http")

ONE: Final = "/v1/messages"
BATCH: Final = "/v1/messages/batch"
_TARGETS: Final = {
    b"POST /v1/messages HTTP/1.1": ONE,
    b"POST /v1/messages/batch HTTP/1.1": BATCH,
}

MAX_HEAD: Final = 8190
"""Bytes of a request head the lane waits for before it leaves the request to aiohttp (its
own line limit, which answers a longer one)."""
MAX_HEADERS: Final = 64
"""Header lines of a plain request (a client library sends fewer than 15)."""
READ_AHEAD: Final = 256 * 1024
"""Bytes buffered past the request being answered before the lane stops reading the
connection (a client pipelining faster than the gateway commits): flow control, as
aiohttp's own reader has."""

_JSON_TYPES: Final = frozenset(
    {b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"}
)
_TOKEN: Final = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""A header name (RFC 9110 token)."""
_BAD_HEAD_BYTE: Final = re.compile(rb"[^\t\r\n\x20-\x7e]")
"""Anything but printable ASCII, tab and the line ends: not the plain case."""
_DIGITS: Final = re.compile(rb"[0-9]{1,12}")
_LEFT_TO_AIOHTTP: Final = frozenset({b"transfer-encoding", b"expect", b"upgrade"})


@dataclass(frozen=True, slots=True)
class PlainRequest:
    """A request the lane may answer, as read from the connection's buffer."""

    route: str
    """``/v1/messages`` or ``/v1/messages/batch``."""
    authorization: str
    idempotency_key: str | None
    body: bytes
    size: int
    """Bytes of the buffer it took, head and body."""


NEED_MORE: Final = "need_more"
"""The head is not complete yet."""
NOT_PLAIN: Final = "not_plain"
"""aiohttp's to answer."""


def read_plain(buffer: bytes | bytearray, max_body: int) -> PlainRequest | str:
    """The plain request at the start of ``buffer`` (sans-IO: bytes in, a verdict out):
    a :class:`PlainRequest`, :data:`NEED_MORE` while its head is incomplete, or
    :data:`NOT_PLAIN` for anything the lane leaves to aiohttp (a body not yet complete
    included: aiohttp's reader has the body deadline and flow control for it)."""
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        return NEED_MORE if len(buffer) < MAX_HEAD + 4 else NOT_PLAIN
    head = bytes(buffer[:end])
    if _BAD_HEAD_BYTE.search(head) is not None:
        return NOT_PLAIN
    lines = head.split(b"\r\n")
    route = _TARGETS.get(lines[0])
    if route is None or len(lines) > MAX_HEADERS + 1:
        return NOT_PLAIN
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None or b"\r" in line or b"\n" in line:
            return NOT_PLAIN
        key = name.lower()
        if key in headers or key in _LEFT_TO_AIOHTTP:
            return NOT_PLAIN
        headers[key] = value.strip(b" \t")
    connection = headers.get(b"connection")
    if connection is not None and connection.lower() != b"keep-alive":
        return NOT_PLAIN
    content_type = headers.get(b"content-type")
    if content_type is None or content_type.lower() not in _JSON_TYPES:
        return NOT_PLAIN
    authorization = headers.get(b"authorization")
    length = headers.get(b"content-length")
    if authorization is None or length is None or _DIGITS.fullmatch(length) is None:
        return NOT_PLAIN
    size = int(length)
    start = end + 4
    if size > max_body or len(buffer) < start + size:
        return NOT_PLAIN
    body = bytes(buffer[start : start + size])
    idempotency = headers.get(b"idempotency-key")
    return PlainRequest(
        route,
        authorization.decode("ascii"),
        None if idempotency is None else idempotency.decode("ascii"),
        body,
        start + size,
    )


def response_bytes(response: web.Response) -> bytes:
    """``response`` (a JSON answer with its body set) as aiohttp writes it on an HTTP/1.1
    keep-alive connection."""
    body = response.body
    assert isinstance(body, bytes)
    head = [f"HTTP/1.1 {response.status} {response.reason}"]
    head.extend(f"{name}: {value}" for name, value in response.headers.items())
    head.append(f"Content-Length: {len(body)}")
    head.append(f"Date: {rfc822_formatted_time()}")
    head.append(f"Server: {SERVER_SOFTWARE}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


_ACCEPTED_HEAD: Final = (
    "HTTP/1.1 202 Accepted\r\n"
    "Content-Type: application/json; charset=utf-8\r\n"
    "Content-Length: {length}\r\n"
    "Date: {date}\r\n"
    f"Server: {SERVER_SOFTWARE}\r\n\r\n"
)


def accepted_bytes(text: str) -> bytes:
    """The 202 of an accepted POST, byte for byte as aiohttp writes
    ``web.Response(status=202, text=text, content_type="application/json")``."""
    body = text.encode("utf-8")
    head = _ACCEPTED_HEAD.format(length=len(body), date=rfc822_formatted_time())
    return head.encode("latin-1") + body


@dataclass(frozen=True, slots=True)
class _Asked:
    """What the error and log steps read of a request (they take aiohttp's request)."""

    method: str
    path: str
    remote: str | None


class FastLane:
    """The lane of one listener: what it answers with, and its requests under way."""

    def __init__(
        self,
        api: MessagesApi,
        auth: Authenticator,
        max_body_bytes: int,
        *,
        metrics: HttpMetrics | None = None,
        drain: Drain | None = None,
        log_refusals: bool = False,
    ) -> None:
        self.api = api
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.drain = drain
        self.log_refusals = log_refusals
        self.clock: Callable[[], float] = time.perf_counter
        self.answered = 0
        """Requests the lane answered (the rest went to aiohttp)."""
        self.handed_over = 0
        """Connections handed over to aiohttp."""
        self.tasks: set[asyncio.Task[None]] = set()
        self.connections: set[LaneConnection] = set()

    async def answer(self, plain: PlainRequest, remote: str | None) -> bytes | None:
        """The answer to ``plain`` as bytes, or None when aiohttp must answer it (nothing
        was written then)."""
        drain = self.drain
        if drain is not None and drain.draining:
            return None
        who = self.auth.principal_of(plain.authorization)
        if who is None or not who.may("send"):
            return None
        started = self.clock()
        api = self.api
        response: web.Response | None = None
        try:
            key = plain.idempotency_key
            submission = None
            if key is not None:  # the handler's steps with a key, in its order
                found = await api.keyed_submission(
                    who.account, checked_key(key), plain.route, plain.body
                )
                if isinstance(found, web.Response):
                    response = found  # a replay of the stored answer
                else:
                    submission = found
            if response is None:
                prepared: Prepared
                if plain.route == ONE:
                    prepared = await api.prepare_one(who, plain.body)
                else:
                    prepared = await api.prepare_batch(who, plain.body)
                messages, text, now = prepared
                if submission is not None:
                    response = await api.accept(messages, text, submission, now)
                else:
                    await api.accept_plain(messages, who.account)
        except Exception as exc:  # the middleware's error step, as it does it
            asked = _Asked("POST", plain.route, remote)
            response = error_answer(asked, exc, self.max_body_bytes)  # type: ignore[arg-type]
            status = response.status
            if self.log_refusals:
                log_refusal(asked, plain.route, status, error_code(response))  # type: ignore[arg-type]
            answer = response_bytes(response)
        else:
            if response is None:
                status = 202
                answer = accepted_bytes(text)
            else:
                status = response.status
                answer = response_bytes(response)
        metrics = self.metrics
        if metrics is not None:
            metrics.count(plain.route, "POST", status)
            metrics.histogram(plain.route).observe(self.clock() - started)
        self.answered += 1
        return answer

    def connection(
        self,
        transport: asyncio.Transport,
        guard: ConnectionGuard,
        conn: Conn,
        handover: Callable[[bytes], None],
    ) -> LaneConnection:
        return LaneConnection(self, transport, guard, conn, handover)

    async def close(self, within: float) -> None:
        """Wait up to ``within`` s for the requests under way (their messages may be
        committed: their answers go out), then close every connection still on the lane."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=within)
        for lane_conn in list(self.connections):
            lane_conn.transport.close()


class LaneConnection:
    """The lane on one connection, until it hands the connection over to aiohttp."""

    __slots__ = (
        "buffer",
        "busy",
        "conn",
        "done",
        "guard",
        "handover",
        "lane",
        "read_paused",
        "remote",
        "transport",
        "write_paused",
    )

    def __init__(
        self,
        lane: FastLane,
        transport: asyncio.Transport,
        guard: ConnectionGuard,
        conn: Conn,
        handover: Callable[[bytes], None],
    ) -> None:
        self.lane = lane
        self.transport = transport
        self.guard = guard
        self.conn = conn
        self.handover = handover
        self.buffer = bytearray()
        self.busy = False
        self.done = False
        self.read_paused = False
        self.write_paused = False
        peer = transport.get_extra_info("peername")
        self.remote: str | None = str(peer[0]) if peer else None
        lane.connections.add(self)

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()
        elif len(self.buffer) > READ_AHEAD and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def lost(self) -> None:
        self.done = True
        self.lane.connections.discard(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.busy and not self.done:
            self._next()

    def _next(self) -> None:
        if self.done or self.write_paused or not self.buffer:
            return
        plain = read_plain(self.buffer, self.lane.max_body_bytes)
        if plain is NEED_MORE:
            return
        if not isinstance(plain, PlainRequest):
            self._hand_over()
            return
        self.busy = True
        task = asyncio.get_running_loop().create_task(self._serve(plain))
        tasks = self.lane.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _serve(self, plain: PlainRequest) -> None:
        guard, conn = self.guard, self.conn
        guard.lane_request_started(conn)
        try:
            answer = await self.lane.answer(plain, self.remote)
        except Exception:
            # A bug of ours (answer() catches what it expects): its messages may be
            # committed, so the request is not handed over; the client sees the
            # connection close, as with a crash, and retries.
            log.exception("http.fast_lane_failed")
            self.transport.abort()
            return
        finally:
            guard.request_finished(conn)
        if answer is None:
            self._hand_over()
            return
        del self.buffer[: plain.size]
        if self.done:
            return
        self.transport.write(answer)
        self.busy = False
        if self.read_paused and len(self.buffer) <= READ_AHEAD:
            self.read_paused = False
            self.transport.resume_reading()
        self._next()

    def _hand_over(self) -> None:
        if self.done:
            return
        self.lost()
        self.lane.handed_over += 1
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        data, self.buffer = bytes(self.buffer), bytearray()
        self.handover(data)
