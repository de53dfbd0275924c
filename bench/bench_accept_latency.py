"""How long ``Store.accept`` waits in the writer while outcomes and receipts are written.

    .venv/bin/python -m bench.bench_accept_latency [rate] [seconds] [per_request] [full|normal]
        [bulk_rate]

The store alone, driven as the daemon drives it at a paced rate: every ``per_request / rate``
seconds one accept of ``per_request`` messages (begun at acceptance, as the API does when a
bind has room); 2 ms after each accept returns, its submit outcomes (one record_outcomes per
accept, as the outcome writer's linger makes them); 200 ms later its receipts (the
simulator's receipt delay). With ``bulk_rate``, other messages (accepted before the run)
get their outcomes and receipts written meanwhile, every 0.1 s in one call each: the bulk
writes of a busy gateway that an accept may queue behind. Prints p50 / p90 / p99 / max of
the accept call (submit to commit), the commits made and the CPU microseconds per message
of this process. The SQLite file is in a temp dir under the current directory (the disk
the gateway uses), not /tmp.
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

OUTCOME_AFTER = 0.002
RECEIPT_AFTER = 0.2
BULK_EVERY = 0.1


def _messages(n: int, start: int, now: float) -> list[NewMessage]:
    return [
        NewMessage(
            id=new_message_id(now),
            to=f"+3361{start + i:08d}",
            sender="ACME",
            text="Latency probe",
            encoding="gsm7",
            parts=1,
            carrier="sim",
            created_at=now,
        )
        for i in range(n)
    ]


async def run(
    rate: float, seconds: float, per_request: int, synchronous: str, bulk_rate: float
) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-accept-", dir=".") as tmp:
        store = SqliteStore(Path(tmp) / "smsgw.db", synchronous)
        await store.open()
        waits: list[float] = []
        tasks: set[asyncio.Task[None]] = set()

        async def one(k: int) -> None:
            now = time.time()
            batch = _messages(per_request, k * per_request, now)
            t = time.perf_counter()
            await store.accept(batch, None, {m.id for m in batch})
            waits.append(time.perf_counter() - t)
            await asyncio.sleep(OUTCOME_AFTER)
            keys = [f"{k:08x}{i:04x}" for i in range(per_request)]
            await store.record_outcomes(
                [
                    SubmitOutcome(m.id, 1, "sim", MessageStatus.SUBMITTED, time.time(), key, key, 0)
                    for m, key in zip(batch, keys, strict=True)
                ]
            )
            await asyncio.sleep(RECEIPT_AFTER)
            at = time.time()
            await store.record_receipts(
                [
                    IncomingReceipt("sim", key, key, MessageStatus.DELIVERED, "DELIVRD", at)
                    for key in keys
                ]
            )

        bulk_chunk = int(bulk_rate * BULK_EVERY)
        bulk_batches = int(seconds / BULK_EVERY) + 1
        bulk = _messages(bulk_chunk * bulk_batches, 10_000_000, time.time())
        for i in range(0, len(bulk), 5000):
            await store.accept(bulk[i : i + 5000])

        async def bulk_writes() -> None:
            for b in range(bulk_batches if bulk_chunk else 0):
                chunk = bulk[b * bulk_chunk : (b + 1) * bulk_chunk]
                keys = [f"b{b:07x}{i:05x}" for i in range(len(chunk))]
                at = time.time()
                await store.record_outcomes(
                    [
                        SubmitOutcome(m.id, 1, "sim", MessageStatus.SUBMITTED, at, key, key, 0)
                        for m, key in zip(chunk, keys, strict=True)
                    ]
                )
                await store.record_receipts(
                    [
                        IncomingReceipt("sim", key, key, MessageStatus.DELIVERED, "DELIVRD", at)
                        for key in keys
                    ]
                )
                await asyncio.sleep(BULK_EVERY)

        background = asyncio.create_task(bulk_writes())
        requests = int(seconds * rate / per_request)
        interval = per_request / rate
        cpu0 = time.process_time()
        start = time.monotonic()
        for k in range(requests):
            delay = start + k * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*tasks)
        await background
        cpu = time.process_time() - cpu0
        commits = store.commits
        await store.close()
    waits.sort()

    def q(p: float) -> float:
        return waits[min(len(waits) - 1, int(p * len(waits)))] * 1000

    print(
        f"accept wait ms: p50 {q(0.5):.2f} p90 {q(0.9):.2f} p99 {q(0.99):.2f}"
        f" max {waits[-1] * 1000:.2f}; {len(waits)} accepts of {per_request} at {rate:g} msg/s;"
        f" {commits} commits; {cpu / (requests * per_request) * 1e6:.0f} us CPU per message"
    )


def main() -> None:
    args = sys.argv[1:]
    rate = float(args[0]) if args else 1787.0
    seconds = float(args[1]) if len(args) > 1 else 10.0
    per_request = int(args[2]) if len(args) > 2 else 9
    synchronous = args[3] if len(args) > 3 else "full"
    bulk_rate = float(args[4]) if len(args) > 4 else 0.0
    asyncio.run(run(rate, seconds, per_request, synchronous, bulk_rate))


if __name__ == "__main__":
    main()
