"""The store's write path as the gateway drives it: many small group commits, not a few big ones.

    .venv/bin/python -m bench.bench_store_path [N] [batch] [full|normal]

For each batch of ``batch`` messages, one after the other: accept, begin_attempts,
record_outcomes (submitted, with a receipt key); then record_receipts (DELIVRD) batch by
batch. So there are about 4 x N / batch commits, as in the daemon at a few thousand msg/s
(``bench.bench_store`` instead gathers every batch at once into a handful of commits).

Prints msg/s (wall), CPU microseconds per message (every thread of this process, so SQLite's
work on aiosqlite's thread is included) and the time spent in each SQL statement, measured
inside the writer thread with a ``sqlite3.Connection`` subclass. The per-statement times are
wall-clock: on a busy machine compare the CPU figure.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiosqlite

import gateway.store.sqlite as store_module
from gateway.core.model import (
    IncomingReceipt,
    MessageStatus,
    NewMessage,
    SubmitOutcome,
    new_message_id,
)

SPENT: Counter[str] = Counter()
CALLS: Counter[str] = Counter()


def _key(sql: str) -> str:
    return " ".join(sql.split())[:80]


class TimedConnection(sqlite3.Connection):
    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        started = time.perf_counter()
        try:
            return super().execute(sql, *args)
        finally:
            SPENT[_key(sql)] += time.perf_counter() - started
            CALLS[_key(sql)] += 1

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        started = time.perf_counter()
        try:
            return super().executemany(sql, *args)
        finally:
            SPENT[_key(sql)] += time.perf_counter() - started
            CALLS[_key(sql)] += 1


_CONNECT = aiosqlite.connect


def _timed_connect(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
    return _CONNECT(*args, factory=TimedConnection, **kwargs)


async def main(n: int, batch: int, sync: str) -> None:
    store_module.aiosqlite.connect = _timed_connect  # this process only: time every statement
    with tempfile.TemporaryDirectory() as tmp:
        store = store_module.SqliteStore(Path(tmp) / "bench.db", synchronous=sync)
        await store.open()
        now = time.time()
        msgs = [
            NewMessage(
                new_message_id(), "+33612345678", "ACME", "hello world", "gsm7", 1, "sim", now
            )
            for _ in range(n)
        ]
        chunks = [msgs[i : i + batch] for i in range(0, n, batch)]
        wall, cpu = time.perf_counter(), time.process_time()
        for c in chunks:
            await store.accept(c)
            await store.begin_attempts([(m.id, 1) for m in c])
            await store.record_outcomes(
                [
                    SubmitOutcome(
                        m.id, 1, "sim", MessageStatus.SUBMITTED, now, m.id[-12:], m.id[-12:], 0
                    )
                    for m in c
                ]
            )
        for c in chunks:
            await store.record_receipts(
                [
                    IncomingReceipt(
                        "sim", m.id[-12:], m.id[-12:], MessageStatus.DELIVERED, "DELIVRD", now
                    )
                    for m in c
                ]
            )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        counts = dict(await store._read("SELECT status, count(*) FROM messages GROUP BY status"))
        await store.close()
    print(
        f"store path: {n} messages, batch {batch}, synchronous={sync}, "
        f"{store.commits} commits; final {counts}"
    )
    print(f"  {n / wall:,.0f} msg/s wall, {cpu / n * 1e6:.1f} us CPU per message")
    for sql, spent in SPENT.most_common(15):
        print(f"  {spent / n * 1e6:7.2f} us/msg {CALLS[sql]:6d} calls  {sql}")


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            int(args[0]) if args else 20_000,
            int(args[1]) if len(args) > 1 else 50,
            args[2] if len(args) > 2 else "full",
        )
    )
