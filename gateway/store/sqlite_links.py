"""The ``Links`` port (gateway.store.ports) in the SQLite store's file (tables in
gateway.store.sqlite's schema: ``links`` and ``link_clicks``). Codes are written by
``SqliteStore.accept`` with their message; this reads them for the redirect listener
(gateway.links.server) and records what it saw."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from gateway.store.base import Click, Link
from gateway.store.sqlite_db import SqliteDb


class SqliteLinks:
    def __init__(self, db: SqliteDb) -> None:
        self.db = db

    async def find(self, code: str) -> Link | None:
        rows = await self.db.read(
            "SELECT code, message_id, campaign_id, number, target, created_at FROM links"
            " WHERE code = ?",
            (code,),
        )
        return Link(*rows[0]) if rows else None

    async def record_clicks(self, clicks: Sequence[Click]) -> None:
        rows = [(c.code, c.campaign_id, c.number, c.at, c.user_agent, int(c.bot)) for c in clicks]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO link_clicks(code, campaign_id, number, at, user_agent, bot)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

        await self.db.write_in_thread(op)

    async def prune(self, before: float, limit: int) -> int:

        def op(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM links WHERE code IN (SELECT code FROM links WHERE created_at < ?"
                " ORDER BY created_at LIMIT ?)",
                (before, limit),
            )
            return cursor.rowcount

        deleted: int = await self.db.write_in_thread(op)
        return deleted
