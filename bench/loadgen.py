"""An HTTP load generator for the gateway's intake, in its own process (its CPU is not the
gateway's), as ``wrk`` with a Lua script would be, with the answers kept.

    python -m bench.loadgen --port P --token T --mode post --messages 20000 \\
        --connections 50 [--callback-url URL] --out answers.json

``--mode post``: one message per ``POST /v1/messages``; ``--mode batch``: ``--batch``
messages per ``POST /v1/messages/batch``. ``--connections`` keep-alive connections each send
a request, read its answer, and send the next, until every message has been sent (closed
loop, as wrk does). Every request is built before the first one leaves; the client is raw
asyncio over uvloop (no HTTP library), so at a few thousand requests a second it stays far
from being the bottleneck.

Each message's answer is stamped with ``time.monotonic()`` (CLOCK_MONOTONIC, the clock the
callback receiver stamps with) when the 202 has been read. Prints ``bench-loadgen done``
and writes ``{"first": t, "last": t, "accepted": n, "answers": [[id, t], ...],
"requests": r, "refused": {status: count}, "errors": [...]}`` to ``--out``. Anything but a
202 is counted as refused, never retried: the benchmark reports it as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SENDER = "BENCH"
TEXT = "Benchmark message: the quick brown fox jumps over the lazy dog"
"""62 GSM 03.38 characters, one part (the text bench.lab sends)."""

ID = re.compile(rb'"id":"([^"]+)"')
MAX_HEAD = 16_384


def destination(index: int) -> str:
    """As ``bench.lab.destination``: a distinct valid German mobile number per message."""
    return f"+49151{index % 100_000_000:08d}"


def message(index: int, callback_url: str | None) -> dict[str, str]:
    item = {"to": destination(index), "from": SENDER, "text": TEXT}
    if callback_url:
        item["callback_url"] = callback_url
    return item


def requests(
    mode: str, messages: int, batch: int, callback_url: str | None, port: int, token: str
) -> list[tuple[int, bytes]]:
    """(messages in it, the whole HTTP request) for every request of the run, in order."""
    head = (
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    out: list[tuple[int, bytes]] = []
    if mode == "post":
        for i in range(messages):
            body = json.dumps(message(i, callback_url), separators=(",", ":")).encode()
            path = "/v1/messages"
            text = head.format(path=path, port=port, token=token, length=len(body))
            out.append((1, text.encode() + body))
        return out
    for first in range(0, messages, batch):
        count = min(batch, messages - first)
        items = [message(i, callback_url) for i in range(first, first + count)]
        body = json.dumps({"messages": items}, separators=(",", ":")).encode()
        path = "/v1/messages/batch"
        text = head.format(path=path, port=port, token=token, length=len(body))
        out.append((count, text.encode() + body))
    return out


@dataclass
class Run:
    first: float = 0.0
    last: float = 0.0
    answers: list[tuple[str, float]] = field(default_factory=list)
    requests: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD:
        raise ValueError("answer headers too long")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _connection(port: int, queue: list[tuple[int, bytes]], run: Run) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue:
            count, request = queue.pop()
            writer.write(request)
            status, body = await _read_answer(reader)
            now = time.monotonic()
            run.requests += 1
            if status != 202:
                run.refused[status] += 1
                if len(run.errors) < 5:
                    run.errors.append(f"{status} {body[:300]!r}")
                continue
            ids = ID.findall(body)
            if len(ids) != count:
                run.errors.append(f"202 with {len(ids)} ids for {count} messages")
            run.answers.extend((i.decode(), now) for i in ids)
            run.last = now
    finally:
        writer.close()


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    built = requests(args.mode, args.messages, args.batch, args.callback_url, args.port, args.token)
    queue = list(reversed(built))
    run = Run()
    connections = min(args.connections, len(queue))
    run.first = time.monotonic()
    results = await asyncio.gather(
        *(_connection(args.port, queue, run) for _ in range(connections)),
        return_exceptions=True,
    )
    run.errors.extend(repr(r) for r in results if isinstance(r, BaseException))
    return {
        "first": run.first,
        "last": run.last,
        "accepted": len(run.answers),
        "answers": run.answers,
        "requests": run.requests,
        "refused": dict(run.refused),
        "errors": run.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--mode", choices=("post", "batch"), default="post")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--callback-url")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        document = asyncio.run(drive(args))
    else:
        document = uvloop.run(drive(args))
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, separators=(",", ":")))
    tmp.replace(args.out)
    print(f"bench-loadgen done accepted={document['accepted']}", flush=True)


if __name__ == "__main__":
    main()
