"""Store throughput: the write path of N messages through the SQLite store, in batches.

    .venv/bin/python -m bench.bench_store [N] [batch] [full|normal]

Prints messages/s for each step (accept, begin_attempts, record_outcomes, record_receipts)
and for the whole path.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from gateway.core.model import (
    IncomingReceipt,
    MessageStatus,
    NewMessage,
    SubmitOutcome,
    new_message_id,
)
from gateway.store.sqlite import SqliteStore


async def main(n: int, batch: int, sync: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", synchronous=sync)
        await store.open()
        now = time.time()
        msgs = [
            NewMessage(
                new_message_id(), "+33612345678", "ACME", "hello world", "gsm7", 1, "sim", now
            )
            for _ in range(n)
        ]
        chunks = [msgs[i : i + batch] for i in range(0, n, batch)]
        timings: dict[str, float] = {}

        async def step(name: str, fn) -> None:  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            await asyncio.gather(*(fn(c) for c in chunks))
            timings[name] = time.perf_counter() - t0

        await step("accept", lambda c: store.accept(c))
        await step("begin_attempts", lambda c: store.begin_attempts([(m.id, 1) for m in c]))
        await step(
            "record_outcomes",
            lambda c: store.record_outcomes(
                [
                    SubmitOutcome(
                        m.id, 1, "sim", MessageStatus.SUBMITTED, now, m.id[-10:], m.id[-10:], 0
                    )
                    for m in c
                ]
            ),
        )
        await step(
            "record_receipts",
            lambda c: store.record_receipts(
                [
                    IncomingReceipt(
                        "sim", m.id[-10:], m.id[-10:], MessageStatus.DELIVERED, "DELIVRD", now
                    )
                    for m in c
                ]
            ),
        )
        counts = dict(await store._read("SELECT status, count(*) FROM messages GROUP BY status"))
        await store.close()
    total = sum(timings.values())
    print(f"store bench: {n} messages, batch {batch}, synchronous={sync}, commits={store.commits}")
    for name, secs in timings.items():
        print(f"  {name:16s} {n / secs:10.0f} msg/s  ({secs:.2f} s)")
    print(f"  {'whole path':16s} {n / total:10.0f} msg/s  ({total:.2f} s)  final: {counts}")


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            int(args[0]) if args else 50_000,
            int(args[1]) if len(args) > 1 else 500,
            args[2] if len(args) > 2 else "full",
        )
    )
