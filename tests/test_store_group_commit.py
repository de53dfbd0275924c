"""Group commit with operations of both kinds: plain-sqlite3 operations that run whole on the
writer's thread (the hot writes) and async operations over aiosqlite (the rest, and what other
tables add). Concurrent calls share one transaction; one failing call is rolled back alone."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from gateway.core.model import MessageStatus
from gateway.store.base import IdempotencyConflict, IdempotentAnswer, StoreError
from gateway.store.sqlite import SqliteStore
from tests.test_store_sqlite import msg, receipt, submitted


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "smsgw.db", synchronous="normal")
    await s.open()
    yield s
    await s.close()


async def test_concurrent_calls_of_both_kinds_share_one_commit(store: SqliteStore) -> None:
    first, second = msg(), msg()
    commits = store.commits
    await store.accept([first])  # the writer is now idle: the next calls queue together
    before = store.commits
    await asyncio.gather(
        store.accept([second]),  # in-thread
        store.add_opt_out("+33600000001", None, "api", 1.0),  # async (aiosqlite)
        store.record_outcomes([submitted(first, 1, "k1")]),  # in-thread
        store.enqueue_callbacks([("http://127.0.0.1:9/cb", "{}")], 1.0),  # async
    )
    assert store.commits - before <= 2  # the first call may start alone; the rest join
    assert before == commits + 1
    assert (await store.get_message(second.id)) is not None
    assert await store.opted_out(["+33600000001"], "ACME") == {"+33600000001"}
    view = await store.get_message(first.id)
    assert view is not None and view.status == MessageStatus.SUBMITTED.value


async def test_one_failing_call_is_rolled_back_alone(store: SqliteStore) -> None:
    key = IdempotentAnswer("acct", "key-1", "h", 202, "{}", 1.0)
    await store.accept([msg()], key)
    kept, refused, other = msg(), msg(), msg()
    results = await asyncio.gather(
        store.accept([kept]),
        store.accept([refused], key),  # same idempotency key: IdempotencyConflict
        store.add_opt_out("+33600000002", "ACME", "api", 1.0),
        store.accept([other]),
        return_exceptions=True,
    )
    assert isinstance(results[1], IdempotencyConflict)
    assert [r for i, r in enumerate(results) if i != 1] == [None, None, None]
    assert await store.get_message(refused.id) is None
    assert await store.get_message(kept.id) is not None
    assert await store.get_message(other.id) is not None
    assert await store.opted_out(["+33600000002"], "ACME") == {"+33600000002"}


async def test_async_operation_can_use_the_in_thread_helpers(store: SqliteStore) -> None:
    """An async operation (as other store methods are written) awaits the refresh helper,
    which runs on the writer's thread inside the same transaction."""
    m = msg()
    await store.accept([m])
    await store.record_outcomes([submitted(m, 1, "k9")])

    async def op(db: aiosqlite.Connection) -> list[object]:
        await db.execute("UPDATE parts SET status = 'delivered' WHERE message_id = ?", (m.id,))
        return list(await store._refresh(db, {m.id}, 5.0))

    changes = await store._write(op)
    assert [c.status for c in changes] == [MessageStatus.DELIVERED]  # type: ignore[attr-defined]
    view = await store.get_message(m.id)
    assert view is not None and view.status == MessageStatus.DELIVERED.value


async def test_a_failed_commit_fails_every_caller_and_keeps_nothing(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.store.sqlite_db as module

    real = module._run_in_thread

    def broken(conn: sqlite3.Connection, fns: list[object]) -> object:
        real(conn, [])  # a real BEGIN/COMMIT cycle first, then a failure as COMMIT would
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO meta(key, value) VALUES ('x', 'y')")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(module, "_run_in_thread", broken)
    a, b = msg(), msg()
    results = await asyncio.gather(store.accept([a]), store.accept([b]), return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results)
    monkeypatch.setattr(module, "_run_in_thread", real)
    assert await store.get_message(a.id) is None
    assert await store.get_message(b.id) is None
    await store.accept([a])  # the store still works after the failure
    assert await store.get_message(a.id) is not None


async def test_a_receipt_before_its_response_still_matches(store: SqliteStore) -> None:
    m = msg()
    await store.accept([m])
    await store.begin_attempts([(m.id, 1)])
    assert await store.record_receipts([receipt("early")]) == []
    changes = await store.record_outcomes([submitted(m, 1, "early")])
    assert [c.status for c in changes] == [MessageStatus.DELIVERED]


async def test_callback_outcomes_keep_a_commit_on_the_writers_thread(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """callback_done and callback_retry join nearly every group commit when clients ask for
    callbacks: they run whole on the writer's thread, so a commit holding them with the hot
    writes is one call there (``_run_in_thread``), not a thread round trip per statement."""
    import gateway.store.sqlite_db as module

    real = module._run_in_thread
    whole: list[int] = []

    def counting(conn: sqlite3.Connection, fns: list[module.SyncOp]) -> object:
        whole.append(len(fns))
        return real(conn, fns)

    await store.enqueue_callbacks([("https://example.net/cb", "{}")] * 2, 1.0)
    done, retried = await store.callbacks_due(2.0, 10)
    first, second = msg(), msg()
    await store.accept([first])  # the writer is now idle: the next calls queue together
    monkeypatch.setattr(module, "_run_in_thread", counting)
    await asyncio.gather(
        store.callback_done(done.id),
        store.accept([second]),
        store.callback_retry(retried.id, 50.0, "HTTP 500"),
        store.record_outcomes([submitted(first, 1, "k1")]),
    )
    assert sum(whole) == 4  # every operation ran inside _run_in_thread
    assert [cb.id for cb in await store.callbacks_due(100.0, 10)] == [retried.id]
    [view] = await store.list_callbacks(None, None, 10)
    assert (view.attempts, view.next_at, view.last_error) == (1, 50.0, "HTTP 500")
    assert await store.get_message(second.id) is not None
