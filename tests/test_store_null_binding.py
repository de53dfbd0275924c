"""None parameters reach SQLite through an adapter registered by the store (the sqlite3
module's slow path for them raises and formats two AttributeErrors per value), and still
arrive as NULL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import gateway.store.sqlite  # noqa: F401  (registers the adapter)
from gateway.core.model import NewMessage
from gateway.store.sqlite import SqliteStore


def test_none_has_an_adapter_and_binds_as_null() -> None:
    # Without a registered adapter, sqlite3.adapt(None) raises "can't adapt".
    assert sqlite3.adapt(None) is None
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t(a, b)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, None), (None, "x")])
        rows = conn.execute("SELECT a IS NULL, b IS NULL, typeof(a), typeof(b) FROM t").fetchall()
    finally:
        conn.close()
    assert rows == [(0, 1, "integer", "null"), (1, 0, "null", "text")]


async def test_a_message_without_optional_fields_is_stored_with_nulls(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    await store.open()
    try:
        m = NewMessage("m1", "+33612345678", "ACME", "hi", "gsm7", 1, "sim", 1000.0)
        await store.accept([m])
        view = await store.get_message("m1")
        assert view is not None and view.client_ref is None and view.campaign_id is None
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT typeof(client_ref), typeof(callback_url), typeof(validity_until),"
            " typeof(scheduled_at), typeof(campaign_id) FROM messages WHERE id = 'm1'"
        ).fetchone()
    finally:
        conn.close()
    assert row == ("null",) * 5
