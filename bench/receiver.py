"""A counting receiver of status callbacks: what a client's webhook endpoint does, and no more.

    python -m bench.receiver --out callbacks.json

Listens on 127.0.0.1 (port 0; prints ``bench-receiver ready port=N``) and speaks just
enough HTTP/1.1 for the gateway's callback sender: keep-alive, requests with a
``Content-Length`` body (pipelined or not), answered ``200`` with an empty body. For each
POST it stamps the moment its last byte was read with ``time.monotonic()`` (CLOCK_MONOTONIC:
the same clock in every process of the machine, so the load generator's stamps compare with
it), reads the message ``id`` and ``status`` from the JSON body and keeps the first arrival
per message id (a callback sent again, at least once delivery, is counted as a duplicate).

``GET /stats`` answers ``{"received": n, "messages": distinct ids, "duplicates": d,
"last": t}`` for the benchmark to poll. On SIGTERM it writes ``{"callbacks": {id: [t,
status]}, "received": n, "duplicates": d, "bad": b}`` to ``--out`` and exits.

A raw asyncio protocol, not aiohttp: at a few thousand callbacks a second the receiver stays
far from being the bottleneck, and it runs in its own process so its CPU is not counted as
the gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

MAX_HEAD = 16_384
MAX_BODY = 1 << 20
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Tally:
    def __init__(self) -> None:
        self.first: dict[str, tuple[float, str]] = {}
        self.received = 0
        self.duplicates = 0
        self.bad = 0
        self.last = 0.0

    def stats(self) -> bytes:
        body = json.dumps(
            {
                "received": self.received,
                "messages": len(self.first),
                "duplicates": self.duplicates,
                "bad": self.bad,
                "last": self.last,
            }
        ).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        return head.encode() + b"\r\n\r\n" + body


class Receiver(asyncio.Protocol):
    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buffer = self.buffer
        buffer += data
        out: list[bytes] = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._refuse(out)
                    return
                break
            head = bytes(buffer[:end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    try:
                        length = int(value.strip())
                    except ValueError:
                        length = -1
            if length < 0 or length > MAX_BODY:
                self._refuse(out)
                return
            if len(buffer) < end + 4 + length:
                break
            body = bytes(buffer[end + 4 : end + 4 + length])
            del buffer[: end + 4 + length]
            if head.startswith("GET /stats "):
                out.append(self.tally.stats())
            else:
                self._count(body, now)
                out.append(OK)
        self._flush(out)

    def _count(self, body: bytes, now: float) -> None:
        tally = self.tally
        tally.received += 1
        tally.last = now
        try:
            payload = json.loads(body)
            message_id = str(payload["id"])
            status = str(payload.get("status", ""))
        except (ValueError, KeyError, TypeError):
            tally.bad += 1
            return
        if message_id in tally.first:
            tally.duplicates += 1
        else:
            tally.first[message_id] = (now, status)

    def _flush(self, out: list[bytes]) -> None:
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def _refuse(self, out: list[bytes]) -> None:
        self.tally.bad += 1
        out.append(BAD)
        self._flush(out)
        self.buffer.clear()
        if self.transport is not None:
            self.transport.close()


async def serve(out: Path) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally()
    server = await loop.create_server(lambda: Receiver(tally), "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    print(f"bench-receiver ready port={port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    document: dict[str, Any] = {
        "callbacks": {k: [t, s] for k, (t, s) in tally.first.items()},
        "received": tally.received,
        "duplicates": tally.duplicates,
        "bad": tally.bad,
    }
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, separators=(",", ":")))
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(serve(args.out))
    else:
        uvloop.run(serve(args.out))


if __name__ == "__main__":
    main()
