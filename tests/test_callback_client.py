"""The callback client (gateway.engine.callback_client) and its response reader
(gateway.engine.callback_http): keep-alive reuse, framing, limits, hostile receivers, TLS.

Receivers here are raw asyncio servers on 127.0.0.1 port 0 that answer each request with
scripted bytes, so every way a receiver can misbehave is one script."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.callback_policy import CallbackPolicy
from gateway.engine.callback_client import CallbackClient, ConnectFailed, ReceiverClosed
from gateway.engine.callback_http import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    Response,
    ResponseError,
    ResponseReader,
    request_head,
)
from gateway.engine.callbacks import CallbackSender
from tests.fakes import LOOPBACK_RECEIVERS, FakeStore
from tests.tls_certs import Pki, make_pki, needs_openssl

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

# -- the reader, without I/O -------------------------------------------------------------


def read(*chunks: bytes) -> Response | None:
    reader = ResponseReader()
    got = None
    for chunk in chunks:
        assert got is None, "bytes fed after the response was over"
        got = reader.feed(chunk)
    return got


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([OK], Response(200, True)),
        ([OK[:5], OK[5:20], OK[20:-1], OK[-1:]], Response(200, True)),
        ([b"HTTP/1.1 204 No Content\r\n\r\n"], Response(204, True)),
        ([b"HTTP/1.1 500 \r\nContent-Length: 0\r\n\r\n"], Response(500, True)),
        ([b"HTTP/1.1 302\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n"], Response(302, True)),
        (
            [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"],
            Response(200, False),
        ),
        (
            [b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n"],
            Response(200, False),
        ),
        ([b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"], Response(200, False)),
        (
            [b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"],
            Response(200, True),
        ),
        # A body framed by the close is not waited for: the status is all that counts.
        ([b"HTTP/1.1 200 OK\r\n\r\n"], Response(200, False)),
        # Chunked, with an extension and a trailer, in pieces.
        (
            [
                b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nab",
                b"cd\r\n0\r\nT: 1\r\n\r\n",
            ],
            Response(201, True),
        ),
        ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"], Response(200, False)),
        # Both framings: chunked wins, and the connection is not trusted with more.
        (
            [
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"0\r\n\r\n"
            ],
            Response(200, False),
        ),
        # 1xx interim answers come before the final one.
        (
            [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n" + OK],
            Response(200, True),
        ),
        # A body too long to read for nothing: done at the head, connection closed.
        (
            [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1)],
            Response(200, False),
        ),
        (
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY_BYTES + 1)],
            Response(200, False),
        ),
        # Bytes past the response that nobody asked for: not reused.
        ([OK + b"HTTP/1.1 200 OK\r\n"], Response(200, False)),
    ],
)
def test_the_reader_gives_the_status_and_whether_to_keep_the_connection(
    chunks: list[bytes], expected: Response
) -> None:
    assert read(*chunks) == expected


def test_the_reader_waits_for_the_whole_body() -> None:
    reader = ResponseReader()
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc") is None
    assert reader.feed(b"d") is None
    assert reader.feed(b"e") == Response(200, True)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"garbage\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/2 200\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status code"),
        (b"HTTP/1.1 OK\r\n\r\n", "bad status code"),
        (b"HTTP/1.1 099 x\r\n\r\n", "bad status code"),
        (b"HTTP/1.1 101 Switching\r\n\r\n", "101"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "two different"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "bad chunk size"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            "not followed by CRLF",
        ),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 header lines"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" * 9, "interim"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES, "response head over"),
    ],
)
def test_a_response_that_breaks_the_rules_is_an_error(data: bytes, error: str) -> None:
    with pytest.raises(ResponseError, match=error):
        read(data)


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_any_bytes_give_a_response_need_more_or_a_response_error(chunks: list[bytes]) -> None:
    reader = ResponseReader()
    for chunk in chunks:
        try:
            if reader.feed(chunk) is not None:
                return
        except ResponseError:
            return


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=60))
def test_a_valid_response_split_anywhere_reads_the_same(body: bytes, step: int) -> None:
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:7], body[7:]) if p)
    data = b"HTTP/1.1 207 M\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
    reader = ResponseReader()
    got = None
    for at in range(0, len(data), step):
        assert got is None
        got = reader.feed(data[at : at + step])
    assert got == Response(207, True)


def test_request_head_refuses_a_line_break_in_a_header() -> None:
    prefix = b"POST /cb HTTP/1.1\r\nHost: h\r\n"
    head = request_head(prefix, 2, [("X-Smsgw-Callback-Id", "7")])
    assert head == prefix + b"Content-Length: 2\r\nX-Smsgw-Callback-Id: 7\r\n\r\n"
    with pytest.raises(ValueError, match="line break"):
        request_head(prefix, 2, [("X-A", "1\r\nX-Injected: yes")])
    with pytest.raises(ValueError, match="line break"):
        request_head(prefix, 2, [("X-A\n", "1")])


# -- a scripted receiver ----------------------------------------------------------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]
"""Answers one request (already read); False closes the connection."""


def answer(data: bytes, keep: bool = True) -> Script:
    async def script(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return script


def trickle(data: bytes, every: float) -> Script:
    """A slowloris receiver: one byte every ``every`` seconds, then the rest never."""

    async def script(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)
        await asyncio.sleep(3600)
        return False

    return script


@dataclass
class Receiver:
    scripts: list[Script] = field(default_factory=list)
    """One per request, in turn; then 200 OK, kept alive."""
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    tls: ssl.SSLContext | None = None
    server: asyncio.Server | None = None

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def url(self, path: str = "/cb") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                script = self.scripts.pop(0) if self.scripts else answer(OK)
                if not await script(reader, writer):
                    return
        finally:
            writer.close()


async def _serve(receiver: Receiver) -> AsyncIterator[Receiver]:
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=receiver.tls)
    receiver.port = server.sockets[0].getsockname()[1]
    async with server:
        yield receiver
        server.close()


async def _serve_many(n: int) -> AsyncIterator[Receiver]:
    for _ in range(n):
        got = Receiver()
        server = await asyncio.start_server(got.handle, "127.0.0.1", 0)
        got.port = server.sockets[0].getsockname()[1]
        got.server = server
        yield got


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async for got in _serve(Receiver()):
        yield got


def client(**kw: object) -> CallbackClient:
    values: dict[str, object] = {"timeout": 5.0}
    values.update(kw)
    return CallbackClient(LOOPBACK_RECEIVERS, **values)  # type: ignore[arg-type]


# -- the client ---------------------------------------------------------------------------


async def test_requests_share_one_kept_alive_connection(receiver: Receiver) -> None:
    c = client()
    try:
        for n in range(5):
            assert await c.post(receiver.url("/cb?x=1"), b'{"n": %d}' % n, [("X-N", str(n))]) == 200
    finally:
        await c.close()
    assert receiver.connections == 1 and c.stats.connections == 1
    first = receiver.requests[0]
    assert first.startswith(b"POST /cb?x=1 HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{receiver.port}\r\n".encode() in first
    assert b"\r\nContent-Length: 8\r\n" in first and b"\r\nX-N: 0\r\n" in first
    assert first.endswith(b'\r\n\r\n{"n": 0}')


async def test_connection_close_and_http10_open_a_new_connection_each(receiver: Receiver) -> None:
    receiver.scripts = [
        answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", keep=False),
        answer(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", keep=False),
        answer(b"HTTP/1.1 200 OK\r\n\r\nbody until the close", keep=False),
    ]
    c = client()
    try:
        for _ in range(4):
            assert await c.post(receiver.url(), b"{}", []) == 200
    finally:
        await c.close()
    assert receiver.connections == 4 and len(receiver.requests) == 4


async def test_a_kept_alive_connection_closed_by_the_receiver_is_retried_once_fresh(
    receiver: Receiver,
) -> None:
    """The receiver drops a kept-alive connection as the next request arrives (its idle
    close racing our write): the request goes again on a new connection, not failed."""
    receiver.scripts = [answer(OK), answer(b"", keep=False)]
    c = client()
    try:
        assert await c.post(receiver.url(), b"{}", []) == 200
        assert await c.post(receiver.url(), b"{}", []) == 200
    finally:
        await c.close()
    assert c.stats.stale_retries == 1 and receiver.connections == 2
    assert len(receiver.requests) == 3


async def test_an_answer_cut_short_is_not_retried_at_once(receiver: Receiver) -> None:
    """Bytes of an answer came, then the close: that is the receiver's failure, reported."""
    receiver.scripts = [
        answer(OK),
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", False),
    ]
    c = client()
    try:
        assert await c.post(receiver.url(), b"{}", []) == 200
        with pytest.raises(ReceiverClosed):
            await c.post(receiver.url(), b"{}", [])
    finally:
        await c.close()
    assert c.stats.stale_retries == 0 and len(receiver.requests) == 2


async def test_a_trickling_receiver_is_cut_at_the_deadline(receiver: Receiver) -> None:
    receiver.scripts = [trickle(OK, 0.02)]
    c = client(timeout=0.3)
    try:
        with pytest.raises(TimeoutError, match=r"no complete answer within 0\.3 s"):
            await c.post(receiver.url(), b"{}", [])
        assert await c.post(receiver.url(), b"{}", []) == 200  # a new connection
    finally:
        await c.close()
    assert receiver.connections == 2


async def test_url_credentials_are_sent_as_basic_auth(receiver: Receiver) -> None:
    c = client()
    try:
        url = f"http://us%C3%A9r:p%40ss@127.0.0.1:{receiver.port}/cb"
        with pytest.raises(ValueError, match="Latin-1"):  # é is Latin-1: fine; this is not
            await c.post(url.replace("%C3%A9", "%E2%82%AC"), b"{}", [])
        assert await c.post(url, b"{}", []) == 200
    finally:
        await c.close()
    # base64("usér:p@ss" in Latin-1), as aiohttp's BasicAuth encodes it
    assert b"\r\nAuthorization: Basic dXPpcjpwQHNz\r\n" in receiver.requests[0]


async def test_a_refused_port_is_a_connect_failure() -> None:
    c = client(timeout=2.0)
    try:
        with pytest.raises(ConnectFailed, match=r"Cannot connect to host 127\.0\.0\.1:9"):
            await c.post("http://127.0.0.1:9/cb", b"{}", [])
    finally:
        await c.close()


async def test_an_idle_connection_past_its_age_is_not_reused(receiver: Receiver) -> None:
    c = client(idle_seconds=-1.0)
    try:
        assert await c.post(receiver.url(), b"{}", []) == 200
        assert await c.post(receiver.url(), b"{}", []) == 200
    finally:
        await c.close()
    assert receiver.connections == 2 and c.stats.stale_retries == 0


async def test_idle_connections_are_bounded_in_all_and_swept() -> None:
    """Many receivers: at most max_idle idle connections in all, the longest idle closed
    first; the sweep drops those past idle_seconds whatever their origin."""
    receivers = [r async for r in _serve_many(3)]
    c = client(max_idle=2)
    try:
        for r in receivers:
            assert await c.post(r.url(), b"{}", []) == 200
        assert c.idle_connections() == 2
        assert await c.post(receivers[0].url(), b"{}", []) == 200  # its connection was closed
        assert [r.connections for r in receivers] == [2, 1, 1]
        c._idle_seconds = -1.0  # every idle connection is now past its age: swept
        c._next_sweep = 0.0
        assert await c.post(receivers[1].url(), b"{}", []) == 200
        assert c.idle_connections() == 1 and receivers[1].connections == 2
    finally:
        await c.close()
        for r in receivers:
            await r.stop()


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@needs_openssl
async def test_https_is_verified_and_kept_alive(pki: Pki) -> None:
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(pki.server_cert, pki.server_key)
    async for tls_receiver in _serve(Receiver(tls=server_side)):
        trusting = ssl.create_default_context(cafile=str(pki.ca))
        c = client(ssl_context=trusting)
        try:
            for _ in range(3):
                assert await c.post(tls_receiver.url(), b"{}", []) == 200
        finally:
            await c.close()
        assert tls_receiver.connections == 1 and len(tls_receiver.requests) == 3
        # The platform's trust store does not know the test CA: refused, nothing sent.
        c = client()
        try:
            with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
                await c.post(tls_receiver.url(), b"{}", [])
        finally:
            await c.close()
        assert len(tls_receiver.requests) == 3


# -- the sender over hostile receivers ------------------------------------------------------

HOSTILE: list[tuple[Script, str]] = [
    (answer(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", keep=False), "not an HTTP/1.x status line"),
    (answer(b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_HEAD_BYTES + 10), keep=False), "head over"),
    (answer(b"HTTP/1.1 200 O", keep=False), "ReceiverClosed"),
    (answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", keep=False), "ReceiverClosed"),
    (answer(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", keep=False), "Content-Length"),
    (trickle(OK, 0.05), "TimeoutError"),
    (answer(b"HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n"), "HTTP 301"),
]


async def test_hostile_receivers_fail_each_attempt_counted_then_the_retry_delivers(
    receiver: Receiver,
) -> None:
    """Garbage, a huge head, a close mid-head or mid-body, a slowloris, a redirect: each
    callback's first attempt fails with a stored reason and is counted; the sender carries
    on and every callback is delivered on its retry."""
    receiver.scripts = [script for script, _ in HOSTILE]
    store = FakeStore()
    for n in range(len(HOSTILE)):
        # one at a time, so the receiver's scripts meet the callbacks in order
        await store.enqueue_callbacks([(receiver.url(), json.dumps({"id": f"m{n}"}))], time.time())
    sender = CallbackSender(
        store,
        client_factory=lambda: CallbackClient(LOOPBACK_RECEIVERS, timeout=0.5),
        base_delay=0.01,
        idle_poll=0.02,
        concurrency=1,
        policy=LOOPBACK_RECEIVERS,
    )
    errors: list[str] = []
    await sender.start()
    try:
        await store.wait_until(lambda: all(cb.done for cb in store.callbacks.values()))
    finally:
        await sender.stop()
    errors = [cb.last_error or "" for cb in sorted(store.callbacks.values(), key=lambda c: c.id)]
    for (_, expected), error in zip(HOSTILE, errors, strict=True):
        assert expected in error, (expected, error)
    assert sender.stats.failed_attempts == len(HOSTILE)
    assert sender.stats.delivered == len(HOSTILE)
    assert all(cb.attempts == 2 for cb in store.callbacks.values())


async def test_the_sender_resends_at_once_when_a_kept_alive_connection_was_dropped(
    receiver: Receiver,
) -> None:
    """A receiver that closes a kept-alive connection as the next callback arrives (a
    server's idle close racing the write) costs no failed attempt and no backoff delay.
    (With aiohttp's client that callback failed and waited base_delay.)"""
    receiver.scripts = [answer(OK), answer(b"", keep=False)]
    store = FakeStore()
    sender = CallbackSender(
        store, base_delay=30.0, idle_poll=0.02, concurrency=1, policy=LOOPBACK_RECEIVERS
    )
    await sender.start()
    try:
        for n in (1, 2):
            await store.enqueue_callbacks(
                [(receiver.url(), json.dumps({"id": f"m{n}"}))], time.time()
            )
            sender.notify()
            cb = store.callbacks[n]
            await store.wait_until(lambda: cb.done or cb.attempts > 0)  # noqa: B023
    finally:
        await sender.stop()
    assert [cb.done for cb in store.callbacks.values()] == [True, True]
    assert sender.stats.failed_attempts == 0


async def test_a_refused_policy_still_holds_on_the_default_client(receiver: Receiver) -> None:
    """The sender's own client (no factory) connects only where its policy allows."""
    store = FakeStore()
    await store.enqueue_callbacks([(receiver.url(), "{}")], time.time())
    sender = CallbackSender(
        store, allowed=lambda _: True, policy=CallbackPolicy(), idle_poll=0.02, max_attempts=1
    )
    await sender.start()
    try:
        await store.wait_until(lambda: store.callbacks[1].attempts == 1)
    finally:
        await sender.stop()
    assert receiver.connections == 0
    assert "refused by the policy" in (store.callbacks[1].last_error or "")


def test_the_client_under_uvloop_the_daemons_loop() -> None:
    """The daemon runs on uvloop (gateway.app.cli), whose transports and sockets differ from
    asyncio's: keep-alive, a dropped kept-alive connection, garbage and a slowloris there."""
    import uvloop

    async def scenario() -> None:
        async for got in _serve(Receiver()):
            got.scripts = [
                answer(OK),
                answer(b"", keep=False),
                answer(OK),  # the resent request, on a new connection
                answer(b"garbage\r\n\r\n", keep=False),
                trickle(OK, 0.02),
            ]
            c = client(timeout=0.3)
            try:
                assert await c.post(got.url(), b"{}", []) == 200
                assert await c.post(got.url(), b"{}", []) == 200  # resent on a new connection
                with pytest.raises(ResponseError):
                    await c.post(got.url(), b"{}", [])
                with pytest.raises(TimeoutError):
                    await c.post(got.url(), b"{}", [])
                for _ in range(3):
                    assert await c.post(got.url(), b"{}", []) == 200
            finally:
                await c.close()
            assert c.stats.stale_retries == 1 and got.connections == 4

    uvloop.run(scenario())
