"""The HTTP intake path alone: single-message POSTs into the API as the daemon serves it.

    .venv/bin/python -m bench.http_intake [--requests N] [--connections C] [--no-lane]
    .venv/bin/python -m bench.http_intake --callgrind [--requests N1,N2]

One process: the app (gateway.http.app.make_app) behind the connection guard, with the
fast lane in front of aiohttp (gateway.http.fastlane) or, with ``--no-lane``, aiohttp
alone; a real SQLite store (synchronous=normal, in a temp dir under the current directory);
no binds (a stub dispatcher takes the messages, as if none could leave yet); C keep-alive
connections of a raw asyncio client in the same process, closed loop, each POSTing one
message with a ``callback_url`` and waiting for its 202.

Prints the process's CPU per request (client included: compare runs, not absolutes). With
``--callgrind`` it runs itself under valgrind's callgrind at N1 and N2 requests, lane on
and off, and prints instructions per request ((count at N2 - count at N1) / (N2 - N1),
start-up cancelled out): repeatable to about 0.1 % where timings on a shared machine swing
2x. The client's share is the same in both modes, so the difference is the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from aiohttp import web

from gateway.config import load_config
from gateway.core.model import NewMessage
from gateway.core.routing import Router
from gateway.http.app import FAST_LANE_KEY, make_app
from gateway.http.connguard import ConnectionGuard, GuardSettings, serve_guarded
from gateway.store.sqlite import SqliteStore

from .configs import GatewaySettings, write_gateway

CALLBACKS = """
[callbacks]
allowed_networks = ["127.0.0.0/8"]
"""


PATIENCE = 3600.0
"""Connection deadlines in this bench (seconds)."""


class StubOutbound:
    """The dispatcher's intake side: the carrier is up, nothing leaves at once."""

    def __init__(self) -> None:
        self.enqueued = 0

    def enqueue(self, messages: Sequence[NewMessage], begun: Collection[str] = ()) -> None:
        self.enqueued += len(messages)

    def reserve(self, messages: Sequence[NewMessage]) -> set[str]:
        return set()

    def release(self, messages: Sequence[NewMessage], reserved: Collection[str]) -> None:
        pass

    def carriers_up(self) -> set[str]:
        return {"sim"}

    def opt_out(self, number: str, sender: str | None) -> None:
        pass


async def _client(port: int, token: str, count: int, first: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    length = re.compile(rb"Content-Length: (\d+)", re.IGNORECASE)
    try:
        for n in range(first, first + count):
            body = json.dumps(
                {
                    "to": f"+336{12000000 + n:08d}",
                    "from": "ACME",
                    "text": "Your code is 123456",
                    "callback_url": "http://127.0.0.1:9/cb",
                }
            ).encode()
            writer.write(
                b"POST /v1/messages HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
                + token.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            found = length.search(head)
            assert found is not None
            answer = await reader.readexactly(int(found.group(1)))
            if not head.startswith(b"HTTP/1.1 202"):
                raise RuntimeError(f"not accepted: {head[:12]!r} {answer[:300]!r}")
    finally:
        writer.close()


async def run(requests: int, connections: int, lane: bool) -> tuple[float, int]:
    """CPU seconds of this process over the requests, and how many the lane answered."""
    with tempfile.TemporaryDirectory(prefix="bench-intake-", dir=".") as tmp:
        files = write_gateway(
            Path(tmp), GatewaySettings(smsc_port=9, binds=1, window=100, extra_toml=CALLBACKS)
        )
        config = load_config(files.config)
        store = SqliteStore(files.db_path, "normal")
        await store.open()
        outbound = StubOutbound()
        app = make_app(
            (),
            config=config,
            store=store,  # type: ignore[arg-type]
            outbound=outbound,
            router=Router([], [c.name for c in config.carriers]),
        )
        # Deadlines out of the way: under callgrind the process runs ~50x slower.
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, keepalive_timeout=PATIENCE
        )
        await runner.setup()
        guard = ConnectionGuard(
            GuardSettings(header_timeout=PATIENCE, body_timeout=PATIENCE, idle_timeout=PATIENCE)
        )
        fast = app[FAST_LANE_KEY]
        server = await serve_guarded(runner, guard, "127.0.0.1", 0, fast if lane else None)
        port = server.sockets[0].getsockname()[1]
        try:
            per = requests // connections
            started = time.process_time()
            await asyncio.gather(
                *(_client(port, files.token, per, i * per) for i in range(connections))
            )
            cpu = time.process_time() - started
        finally:
            server.close()
            await fast.close(10.0)
            await runner.cleanup()
            await store.close()
        if outbound.enqueued != per * connections:
            raise RuntimeError(f"{outbound.enqueued} enqueued of {per * connections}")
        return cpu, fast.answered


_COLLECTED = re.compile(r"Collected : (\d+)")


def _instructions(requests: int, connections: int, lane: bool) -> int:
    args = [sys.executable, "-m", "bench.http_intake", "--requests", str(requests)]
    args += ["--connections", str(connections)] + ([] if lane else ["--no-lane"])
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_intake")
    parser.add_argument("--requests", default="", help="N (run) or N1,N2 (--callgrind)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--no-lane", action="store_true", help="aiohttp alone")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    args = parser.parse_args()
    if args.callgrind:
        if shutil.which("valgrind") is None:
            raise SystemExit("valgrind is not installed")
        n1, n2 = (int(n) for n in (args.requests or "1000,3000").split(","))
        for lane in (False, True):
            low = _instructions(n1, args.connections, lane)
            high = _instructions(n2, args.connections, lane)
            print(
                f"lane {'on ' if lane else 'off'}: {(high - low) / (n2 - n1):,.0f} instructions"
                f" per request ({low:,} at {n1}, {high:,} at {n2})",
                flush=True,
            )
        return
    requests = int(args.requests or 10_000)
    cpu, answered = asyncio.run(run(requests, args.connections, not args.no_lane))
    print(
        f"lane {'off' if args.no_lane else 'on '}: {requests:,} requests,"
        f" {cpu / requests * 1e6:,.1f} us CPU per request (client included),"
        f" {answered:,} answered by the lane"
    )


if __name__ == "__main__":
    main()
