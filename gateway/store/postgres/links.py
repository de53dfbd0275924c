"""The ``Links`` port (gateway.store.ports) on PostgreSQL: short links and their clicks
(tables ``links``, migration 1, and ``link_clicks``, migration 2). Codes are written by
``PgStore.accept`` with their message; this reads them for the redirect listener
(gateway.links.server) and records what it saw, on the store's pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from gateway.store.base import Click, Link


class _Pooled(Protocol):
    @property
    def pool(self) -> Any: ...


class PgLinks:
    """Short links over ``store``'s pool (a :class:`PgStore`, open before any call)."""

    def __init__(self, store: _Pooled) -> None:
        self.store = store

    async def find(self, code: str) -> Link | None:
        row = await self.store.pool.fetchrow(
            "SELECT code, message_id, campaign_id, number, target, created_at FROM links"
            " WHERE code = $1",
            code,
        )
        return Link(*row) if row is not None else None

    async def record_clicks(self, clicks: Sequence[Click]) -> None:
        rows = [(c.code, c.campaign_id, c.number, c.at, c.user_agent, c.bot) for c in clicks]
        if rows:
            await self.store.pool.executemany(
                "INSERT INTO link_clicks(code, campaign_id, number, at, user_agent, bot)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                rows,
            )

    async def prune(self, before: float, limit: int) -> int:
        """Delete at most ``limit`` codes made before ``before``, oldest first (their
        clicks stay: they are the campaign's figures). Codes another node is deleting at
        the same moment are passed over, not waited for. Returns how many."""
        done = await self.store.pool.execute(
            "DELETE FROM links WHERE code IN (SELECT code FROM links WHERE created_at < $1"
            " ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            before,
            limit,
        )
        return int(done.split()[-1])
