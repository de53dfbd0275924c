"""Short links and their clicks in the SQLite store's file (tables in gateway.store.sqlite's
schema: ``links`` and ``link_clicks``). Codes are written by ``SqliteStore.accept`` with
their message; this reads them for the redirect listener and records what it saw."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.store.sqlite import SqliteStore


@dataclass(frozen=True, slots=True)
class Link:
    code: str
    message_id: str
    campaign_id: str | None
    number: str
    target: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Click:
    """One request for a short link: a click, or (``bot``) a prefetch or a preview."""

    code: str
    campaign_id: str | None
    number: str
    at: float
    user_agent: str
    bot: bool


class SqliteLinks:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def find(self, code: str) -> Link | None:
        rows = await self.store._read(
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

        await self.store._write_in_thread(op)

    async def prune(self, before: float, limit: int) -> int:
        """Delete at most ``limit`` codes made before ``before`` (their clicks stay: they
        are the campaign's figures, deleted with the campaign). Returns how many."""

        def op(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM links WHERE code IN (SELECT code FROM links WHERE created_at < ?"
                " ORDER BY created_at LIMIT ?)",
                (before, limit),
            )
            return cursor.rowcount

        deleted: int = await self.store._write_in_thread(op)
        return deleted
