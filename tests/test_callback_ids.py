"""Callback ids (``X-Smsgw-Callback-Id``) never repeat for the life of a database: not after
the outbox is drained, not across a restart, not after a database made by an earlier version
(which reused them) is opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.core.model import MessageStatus
from gateway.store.sqlite import SqliteStore
from tests.test_store_sqlite import msg, receipt, submitted

S = MessageStatus


async def _deliver_one(store: SqliteStore, key: str, at: float) -> int:
    """One message through to a receipt: the store queues its callback; deliver that
    callback (delete it) and return its id."""
    m = msg(callback="https://example.net/cb")
    await store.accept([m])
    await store.begin_attempts([(m.id, 1)])
    await store.record_outcomes([submitted(m, 1, key, at=at)])
    await store.record_receipts([receipt(key, at=at + 1)])
    due = await store.callbacks_due(at + 10, 100)
    assert len(due) == 1
    await store.callback_done(due[0].id)
    return due[0].id


async def test_callback_ids_never_repeat_with_deletions_and_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    seen: list[int] = []
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        for n in range(10):  # each delivered (deleted) before the next is queued
            seen.append(await _deliver_one(store, f"a{n}", 1000.0 + n))
        await store.enqueue_callbacks([("https://example.net/w", "{}")] * 3, 2000.0)
        for cb in await store.callbacks_due(2000.0, 10):
            seen.append(cb.id)
            await store.callback_done(cb.id)
    finally:
        await store.close()
    again = SqliteStore(path, synchronous="normal")
    await again.open()
    try:
        for n in range(5):
            seen.append(await _deliver_one(again, f"b{n}", 3000.0 + n))
    finally:
        await again.close()
    assert len(set(seen)) == len(seen), f"callback ids repeat: {seen}"
    assert seen == sorted(seen)


async def test_a_database_from_before_is_migrated_past_every_id_it_handed_out(
    tmp_path: Path,
) -> None:
    """An earlier version gave each new callback max(id) + 1: once the outbox was drained
    it handed out 1 again. Opening such a database moves the next id past anything it can
    have handed out, not only past the rows left."""
    path = tmp_path / "old.db"
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    await store.close()
    # What an earlier version left: no high-water mark, a few callbacks, the highest
    # ever handed out (7) already delivered and deleted.
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key LIKE 'callback%'")
        db.executemany(
            "INSERT INTO callbacks(id, url, payload, next_at, created_at) VALUES (?, ?, ?, ?, ?)",
            [(n, "https://example.net/cb", "{}", 1.0, 1.0) for n in (3, 5)],
        )
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        await store.enqueue_callbacks([("https://example.net/cb", "{}")], 10.0)
        ids = [cb.id for cb in await store.callbacks_due(10.0, 10)]
        assert ids[:2] == [3, 5]
        assert len(ids) == 3 and ids[2] > 7
    finally:
        await store.close()
