"""A timestamping TCP relay between the gateway and the simulator (the latency probe).

    python -m bench.tap --upstream-port PORT --out marks.json

Listens on 127.0.0.1 (port 0; prints ``bench-tap ready port=N``); each connection the
gateway opens is relayed to the simulator at ``--upstream-port``, bytes untouched, both ways.
Every chunk read from the gateway is forwarded first and stamped with ``time.monotonic()``
(CLOCK_MONOTONIC: the same clock in every process of the machine, nanosecond resolution);
the relay then frames the chunk's PDUs and, for each submit_sm whose short_message carries a
marker ``LAT<9 digits>``, keeps the first time that marker was seen on the wire. On SIGTERM
it writes ``{"marks": {index: t}, "submit_sm": n}`` to ``--out`` and exits.

Why a relay and not the simulator's own ``received_at``: that one is written with
millisecond resolution, from the event loop's cached clock (uvloop's is 1 ms granular) and
through a wall-clock offset taken once at start; each of those is worth up to a millisecond
against a 5 ms target. The relay adds one loopback hop to the *response* path only; the
stamp is taken when the gateway's bytes arrive, before the relay does anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import time
from pathlib import Path

SUBMIT_SM = 0x00000004
HEADER = 16
MAX_PDU = 1 << 16
"""A longer command_length means we lost the framing: stop parsing, keep relaying."""
MARK = re.compile(rb"LAT(\d{9})")


def mark_text(index: int) -> str:
    """The marker the latency run writes into a message's text (GSM 03.38-safe ASCII)."""
    return f"LAT{index:09d}"


class Marks:
    def __init__(self) -> None:
        self.first_seen: dict[int, float] = {}
        self.submit_sm = 0


class Upstream(asyncio.Protocol):
    """The simulator's side: whatever it says goes back to the gateway."""

    def __init__(self, downstream: asyncio.Transport) -> None:
        self.downstream = downstream
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.downstream.is_closing():
            self.downstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.downstream.close()


class Downstream(asyncio.Protocol):
    """The gateway's side: relay, stamp, frame, look for markers."""

    def __init__(self, upstream_port: int, marks: Marks) -> None:
        self.upstream_port = upstream_port
        self.marks = marks
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.buffer = bytearray()
        self.framed = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(
                lambda: Upstream(self.transport),  # type: ignore[arg-type]
                "127.0.0.1",
                self.upstream_port,
            )
        except OSError:
            self.transport.close()
            return
        self.upstream = upstream
        if self.pending:
            upstream.write(b"".join(self.pending))
            self.pending.clear()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.upstream is not None:
            self.upstream.write(data)
        else:
            self.pending.append(data)
        if self.framed:
            self._scan(data, now)

    def _scan(self, data: bytes, now: float) -> None:
        buffer = self.buffer
        buffer += data
        first_seen = self.marks.first_seen
        offset = 0
        size = len(buffer)
        while size - offset >= HEADER:
            length = int.from_bytes(buffer[offset : offset + 4], "big")
            if length < HEADER or length > MAX_PDU:
                self.framed = False
                buffer.clear()
                return
            if size - offset < length:
                break
            if int.from_bytes(buffer[offset + 4 : offset + 8], "big") == SUBMIT_SM:
                self.marks.submit_sm += 1
                match = MARK.search(buffer, offset + HEADER, offset + length)
                if match is not None:
                    first_seen.setdefault(int(match.group(1)), now)
            offset += length
        del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def serve(upstream_port: int, out: Path) -> None:
    loop = asyncio.get_running_loop()
    marks = Marks()
    server = await loop.create_server(
        lambda: Downstream(upstream_port, marks), "127.0.0.1", 0, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    print(f"bench-tap ready port={port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"marks": marks.first_seen, "submit_sm": marks.submit_sm}, separators=(",", ":"))
    )
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(serve(args.upstream_port, args.out))
    else:
        uvloop.run(serve(args.upstream_port, args.out))


if __name__ == "__main__":
    main()
