"""The ``ClusterLeases`` port (gateway.store.ports) in the SQLite store's file.

One SQLite file has one node (the default ``[node] id``): its share of every carrier is
every slot, so the rule of gateway.store.leases leases it all of them and the gateway binds
as it did before leases. Two stores opened on one file (the contract tests' second node)
follow the same rule: each round is one ``BEGIN IMMEDIATE`` transaction, and SQLite runs
one writer at a time, so two rounds never interleave.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from typing import Final

from gateway.store.claims import ClaimSettings
from gateway.store.leases import (
    NODE_RETENTION_SECONDS,
    ClusterView,
    LeaseRound,
    NodeInfo,
    NodeRow,
    SlotRow,
    live_ids,
    plan_round,
    round_result,
)
from gateway.store.sqlite_db import SqliteDb

LEASES_SCHEMA: Final = """
-- The node registry and the bind-slot leases (gateway.store.leases).
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    http TEXT NOT NULL,
    front TEXT NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    until REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bind_slots (
    carrier TEXT NOT NULL,
    slot INTEGER NOT NULL,
    owner TEXT,
    since REAL,
    until REAL,
    PRIMARY KEY (carrier, slot)
) WITHOUT ROWID;
"""


def _nodes(conn: sqlite3.Connection) -> list[NodeRow]:
    return [
        NodeRow(*r)
        for r in conn.execute(
            "SELECT id, http, front, started_at, heartbeat_at, until FROM nodes ORDER BY id"
        )
    ]


def _slots(conn: sqlite3.Connection) -> list[SlotRow]:
    return [
        SlotRow(*r)
        for r in conn.execute(
            "SELECT carrier, slot, owner, since, until FROM bind_slots ORDER BY carrier, slot"
        )
    ]


class SqliteLeases:
    shared = False
    """One process per data directory (gateway.app.lifecycle.DataDirLock): no other node
    can take a slot, so a round that fails (a disk error) fences nothing."""

    def __init__(self, db: SqliteDb, claims: ClaimSettings | None = None) -> None:
        self.db = db
        self.claims = claims or ClaimSettings()

    async def lease_round(
        self, node: NodeInfo, wanted: Mapping[str, int], now: float, lease_seconds: float
    ) -> LeaseRound:
        me = self.claims.node_id
        until = now + lease_seconds

        def op(conn: sqlite3.Connection) -> LeaseRound:
            conn.execute(
                "INSERT INTO nodes(id, http, front, started_at, heartbeat_at, until)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET http = excluded.http,"
                " front = excluded.front, started_at = excluded.started_at,"
                " heartbeat_at = excluded.heartbeat_at, until = excluded.until",
                (me, node.http, node.front, node.started_at, now, until),
            )
            conn.execute("DELETE FROM nodes WHERE until < ?", (now - NODE_RETENTION_SECONDS,))
            conn.executemany(
                "INSERT OR IGNORE INTO bind_slots(carrier, slot) VALUES (?, ?)",
                [(c, s) for c, n in sorted(wanted.items()) for s in range(n)],
            )
            nodes = _nodes(conn)
            live = live_ids(me, nodes, now)
            plan = plan_round(me, wanted, live, _slots(conn), now)
            conn.executemany(
                "UPDATE bind_slots SET until = ? WHERE carrier = ? AND slot = ? AND owner = ?",
                [(until, c, s, me) for c, s in plan.renew],
            )
            conn.executemany(
                "UPDATE bind_slots SET owner = ?, since = ?, until = ?"
                " WHERE carrier = ? AND slot = ? AND (owner IS NULL OR until IS NULL"
                " OR until <= ?)",
                [(me, now, until, c, s, now) for c, s in plan.take],
            )
            slots = _slots(conn)
            return round_result(me, plan, until, live, nodes, slots, now)

        result: LeaseRound = await self.db.write_in_thread(op, urgent=True)
        return result

    async def release_slots(self, slots: Collection[tuple[str, int]]) -> int:
        me = self.claims.node_id

        def op(conn: sqlite3.Connection) -> int:
            released = 0
            for carrier, slot in slots:
                released += conn.execute(
                    "UPDATE bind_slots SET owner = NULL, since = NULL, until = NULL"
                    " WHERE carrier = ? AND slot = ? AND owner = ?",
                    (carrier, slot, me),
                ).rowcount
            return released

        count: int = await self.db.write_in_thread(op)
        return count

    async def leave(self, now: float) -> int:
        me = self.claims.node_id

        def op(conn: sqlite3.Connection) -> int:
            conn.execute("UPDATE nodes SET until = ? WHERE id = ? AND until > ?", (now, me, now))
            return conn.execute(
                "UPDATE bind_slots SET owner = NULL, since = NULL, until = NULL WHERE owner = ?",
                (me,),
            ).rowcount

        count: int = await self.db.write_in_thread(op)
        return count

    async def cluster_view(self, now: float) -> ClusterView:
        def op(conn: sqlite3.Connection) -> ClusterView:
            return ClusterView(now, tuple(_nodes(conn)), tuple(_slots(conn)))

        view: ClusterView = await self.db.read_in_thread(op)
        return view
