"""Issue 17.4: slow clients cannot exhaust the HTTP port.

Read deadlines (headers, body, idle keep-alive), caps in total and per client address, the
cap held below the open-file limit, and room made for new clients by closing the connection
that has waited longest for its headers: /healthz and /metrics are answered while thousands
of slow connections hold the port. Unit tests drive ConnectionGuard over a small aiohttp app;
the last test runs the daemon as a process with a 1,024-descriptor limit against 1,500 slow
connections."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.http.connguard import (
    BODY_TIMEOUT,
    EVICTED,
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    REFUSED,
    ConnectionGuard,
    GuardSettings,
    descriptor_cap,
    serve_guarded,
)
from smsc_simulator.server import Simulator
from tests.test_ops_process import (
    Daemon,
    NotifySocket,
    config_text,
    metrics,
    simulator,  # noqa: F401 - the fixture
)

LIVENESS = 60.0
"""A bound on waiting for something that must happen (not a speed assertion)."""


class Served:
    def __init__(self, guard: ConnectionGuard, port: int, gate: asyncio.Event) -> None:
        self.guard = guard
        self.port = port
        self.gate = gate  # /hold waits on it

    async def connect(self, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, Any]:
        return await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))

    async def get(self, path: str, source: str = "127.0.0.1") -> int:
        connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
        async with (
            aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=LIVENESS)
            ) as http,
            http.get(f"http://127.0.0.1:{self.port}{path}") as r,
        ):
            await r.read()
            return r.status


@contextlib.asynccontextmanager
async def guarded_app(**settings: Any) -> AsyncIterator[Served]:
    guard = ConnectionGuard(GuardSettings(**settings))
    gate = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def hold(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(text="held")

    async def upload(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(text=str(len(body)))

    app = web.Application(middlewares=[guard.middleware()])
    app.router.add_get("/healthz", ok)
    app.router.add_get("/hold", hold)
    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=60)
    await runner.setup()
    server = await serve_guarded(runner, guard, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Served(guard, port, gate)
    finally:
        gate.set()
        server.close()
        await runner.cleanup()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing (b"" for a plain close, a reset, or a write of
    ours that met the closed connection)."""
    try:
        return await asyncio.wait_for(reader.read(), LIVENESS)
    except ConnectionError:
        return b""


async def until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + LIVENESS
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_headers_trickled_past_the_header_timeout_close_the_connection() -> None:
    async with guarded_app(header_timeout=0.5) as served:
        reader, writer = await served.connect()
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        trickle = asyncio.create_task(_trickle(writer))
        try:
            assert await closed_by_server(reader) == b""
        finally:
            trickle.cancel()
            writer.close()
        assert served.guard.closed[HEADER_TIMEOUT] == 1
        assert not served.guard.conns


async def _trickle(writer: Any) -> None:
    """One header line every 0.1 s: each one in time, the whole never complete."""
    n = 0
    with contextlib.suppress(ConnectionError):
        while True:
            await asyncio.sleep(0.1)
            writer.write(f"X-Slow-{n}: 1\r\n".encode())
            n += 1


async def test_a_body_that_stops_arriving_closes_the_connection_but_a_slow_handler_does_not() -> (
    None
):
    async with guarded_app(body_timeout=0.5, header_timeout=5) as served:
        reader, writer = await served.connect()
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        assert await closed_by_server(reader) == b""
        writer.close()
        assert served.guard.closed[BODY_TIMEOUT] == 1
        # A request whose handler takes longer than every timeout is not cut.
        reader, writer = await served.connect()
        writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: any(c.in_request for c in served.guard.conns.values()))
        await asyncio.sleep(1.0)  # twice body_timeout: the request is still under way
        assert any(c.in_request for c in served.guard.conns.values())
        served.gate.set()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), LIVENESS)
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
        assert served.guard.closed[BODY_TIMEOUT] == 1


async def test_an_idle_kept_alive_connection_is_closed_after_idle_timeout() -> None:
    async with guarded_app(idle_timeout=0.5) as served:
        reader, writer = await served.connect()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"ok"), LIVENESS)
        assert head.startswith(b"HTTP/1.1 200")
        assert await closed_by_server(reader) == b""
        writer.close()
        assert served.guard.closed[IDLE_TIMEOUT] == 1


async def test_requests_on_a_kept_alive_connection_do_not_remake_its_timer_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One timer per connection, moved only to an earlier deadline: 30 requests on one
    kept-alive connection make a timer or two, not three each (cancel + call_at on the
    request's first byte, its start and its end, as before). The deadlines still hold:
    after the requests, headers trickled past header_timeout close the connection."""
    loop = asyncio.get_running_loop()
    made: list[object] = []
    real_call_at = loop.call_at

    def call_at(when: float, callback: Any, *args: Any, **kw: Any) -> asyncio.TimerHandle:
        made.append(callback)
        return real_call_at(when, callback, *args, **kw)

    monkeypatch.setattr(loop, "call_at", call_at)
    async with guarded_app(header_timeout=1.0, idle_timeout=30) as served:
        reader, writer = await served.connect()
        for _ in range(30):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"ok"), LIVENESS)
            assert head.startswith(b"HTTP/1.1 200")
        guard_timers = [c for c in made if getattr(c, "__func__", None) is ConnectionGuard._due]
        assert 1 <= len(guard_timers) <= 3, len(guard_timers)
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # a head that never ends
        assert await closed_by_server(reader) == b""
        writer.close()
        assert served.guard.closed[HEADER_TIMEOUT] == 1


async def test_one_client_address_holds_at_most_its_cap_and_others_get_in() -> None:
    async with guarded_app(max_connections_per_client=5, header_timeout=30) as served:
        slow = [await served.connect("127.0.0.2") for _ in range(12)]
        for _, writer in slow:
            writer.write(b"GET /healthz HTTP/1.1\r\n")
        await until(lambda: len(served.guard.conns) == 5)
        assert set(served.guard.by_client) == {"127.0.0.2"}
        assert served.guard.closed[EVICTED] == 7  # the oldest went first
        for reader, _ in slow[:7]:
            assert await closed_by_server(reader) == b""
        assert await served.get("/healthz", "127.0.0.3") == 200
        # The same address gets in too: its oldest slow connection makes room.
        assert await served.get("/healthz", "127.0.0.2") == 200
        for _, writer in slow:
            writer.close()


async def test_when_every_connection_has_a_request_under_way_a_new_one_gets_503() -> None:
    async with guarded_app(max_connections=16) as served:
        served.guard.max_connections = 3  # the cap after the open-file limit, made small
        held = [await served.connect() for _ in range(3)]
        for _, writer in held:
            writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: sum(c.in_request for c in served.guard.conns.values()) == 3)
        reader, writer = await served.connect()
        answer = await closed_by_server(reader)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"Retry-After: 1" in answer and b"too_many_connections" in answer
        assert served.guard.closed[REFUSED] == 1
        served.gate.set()
        for reader, _ in held:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), LIVENESS)
            assert head.startswith(b"HTTP/1.1 200")  # no request under way was cut
        for _, w in [*held, (reader, writer)]:
            w.close()


def test_the_cap_stays_below_the_open_file_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert descriptor_cap(10**6) <= soft - 256 or soft == resource.RLIM_INFINITY
    assert descriptor_cap(100) == min(100, max(16, soft - 256))


# -- the reported case: thousands of slow connections against the daemon process --------------

SLOW_CONNECTIONS = 1500
DAEMON_NOFILE = 1024


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_NOFILE, DAEMON_NOFILE))


@pytest.fixture
def enough_files() -> None:
    """This process holds the attacking ends: raise its soft limit (never the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = SLOW_CONNECTIONS + 512
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


async def test_thousands_of_slow_connections_leave_healthz_and_metrics_answered(
    tmp_path: Path,
    simulator: Simulator,  # noqa: F811 - the fixture
    enough_files: None,
) -> None:
    assert simulator.smpp_port
    config = tmp_path / "gateway.toml"
    text = config_text(tmp_path / "data", simulator.smpp_port, "alpha")
    text = text.replace("port = 0\n", "port = 0\nheader_timeout = 3.0\n", 1)
    config.write_text(text)
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = Daemon(config, tmp_path / "daemon.log", notify.path, preexec=_limit_files)
    slow: list[tuple[asyncio.StreamReader, Any]] = []
    trickles: list[asyncio.Task[None]] = []
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
    try:
        await daemon.wait_started()
        await notify.wait_for("READY=1")
        for start in range(0, SLOW_CONNECTIONS, 100):
            batch = await asyncio.gather(
                *(
                    asyncio.open_connection("127.0.0.1", daemon.port)
                    for _ in range(start, min(start + 100, SLOW_CONNECTIONS))
                ),
                return_exceptions=True,
            )
            for got in batch:
                if isinstance(got, BaseException):
                    continue
                with contextlib.suppress(ConnectionError):  # evicted already: fine
                    got[1].write(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")
                slow.append(got)
                trickles.append(asyncio.create_task(_trickle_slowly(got[1])))
        assert len(slow) > DAEMON_NOFILE  # more than the daemon has descriptors for
        # Under that load: liveness, readiness and a scrape are answered.
        for _ in range(3):
            async with http.get(daemon.url + "/healthz") as r:
                assert r.status == 200
            found = await metrics(http, daemon.url)
            assert found["smsgw_http_connections"] <= DAEMON_NOFILE - 256
        # Every slow connection is closed by the daemon: evicted to make room, or at its
        # header deadline.
        closed = await asyncio.gather(*(closed_by_server(reader) for reader, _ in slow))
        assert closed == [b""] * len(slow)
        found = await metrics(http, daemon.url)
        by_reason = found["smsgw_http_connections_closed_total"]
        assert by_reason >= len(slow)
        log = daemon.log_path.read_text()
        assert '"event": "http.connection_closed"' in log
        assert log.count('"event": "http.connection_closed"') < 50  # rate-limited
    finally:
        for task in trickles:
            task.cancel()
        for _, writer in slow:
            writer.close()
        await http.close()
        daemon.kill()
        notify.close()


async def _trickle_slowly(writer: Any) -> None:
    n = 0
    with contextlib.suppress(ConnectionError, RuntimeError):
        while not writer.is_closing():
            await asyncio.sleep(1.0)
            writer.write(f"X-Slow-{n}: 1\r\n".encode())
            n += 1
