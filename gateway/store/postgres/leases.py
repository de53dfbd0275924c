"""The ``ClusterLeases`` port (gateway.store.ports) on PostgreSQL: the node registry and the
bind-slot leases shared by every node (tables of migration 5).

A round is one short transaction: the heartbeat (an upsert), the carriers' slot rows made if
missing, then every slot row locked with ``SELECT ... FOR UPDATE`` in (carrier, slot) order,
the rule of gateway.store.leases applied to them, and the renewals and takes written. Two
nodes' rounds on the same carriers queue on those row locks (rounds come every few seconds
and touch a handful of rows: the wait is a few milliseconds), so the second sees the
first's takes and two nodes never hold one slot; the take's ``UPDATE`` says again that the
slot is free or lapsed, so even a reader that did not lock could not take a held slot.
Locking in one order means two rounds never deadlock. A round's session is ended by the
server if the node goes silent inside it (``idle_in_transaction_session_timeout``, a tenth
of the lease), so a node cut off from the database never holds the others' rounds back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

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

_NODES = "SELECT id, http, front, started_at, heartbeat_at, until FROM nodes ORDER BY id"
_SLOTS = "SELECT carrier, slot, owner, since, until FROM bind_slots ORDER BY carrier, slot"


class PgLeases:
    """The leases on the database of ``store`` (a PgStore, open; its pool is used)."""

    shared = True

    def __init__(self, store: Any, claims: ClaimSettings | None = None) -> None:
        self.store = store
        self.claims = claims or store.claims

    async def lease_round(
        self, node: NodeInfo, wanted: Mapping[str, int], now: float, lease_seconds: float
    ) -> LeaseRound:
        me = self.claims.node_id
        until = now + lease_seconds
        keys = [(c, s) for c, n in sorted(wanted.items()) for s in range(n)]
        async with self.store.pool.acquire() as conn, conn.transaction():
            # A node cut off mid-round must not hold the slot rows' locks (the others could
            # not renew either): the server ends its session once it idles in the
            # transaction for a tenth of the lease, and a round waits for a lock at most a
            # fifth of it (it fails, and is tried again, instead).
            await conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', $1, true),"
                " set_config('lock_timeout', $2, true)",
                f"{max(1, round(lease_seconds * 100))}ms",
                f"{max(1, round(lease_seconds * 200))}ms",
            )
            await conn.execute(
                "INSERT INTO nodes(id, http, front, started_at, heartbeat_at, until)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET"
                " http = excluded.http, front = excluded.front,"
                " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
                " until = excluded.until",
                me,
                node.http,
                node.front,
                node.started_at,
                now,
                until,
            )
            await conn.execute("DELETE FROM nodes WHERE until < $1", now - NODE_RETENTION_SECONDS)
            if keys:
                await conn.execute(
                    "INSERT INTO bind_slots(carrier, slot)"
                    " SELECT c, s FROM unnest($1::text[], $2::int[]) AS k(c, s) ORDER BY c, s"
                    " ON CONFLICT DO NOTHING",
                    [c for c, _ in keys],
                    [s for _, s in keys],
                )
            rows = [SlotRow(*r) for r in await conn.fetch(_SLOTS + " FOR UPDATE")]
            nodes = [NodeRow(*r) for r in await conn.fetch(_NODES)]
            live = live_ids(me, nodes, now)
            plan = plan_round(me, wanted, live, rows, now)
            if plan.renew:
                await conn.execute(
                    "UPDATE bind_slots b SET until = $1"
                    " FROM unnest($2::text[], $3::int[]) AS k(c, s)"
                    " WHERE b.carrier = k.c AND b.slot = k.s AND b.owner = $4",
                    until,
                    [c for c, _ in plan.renew],
                    [s for _, s in plan.renew],
                    me,
                )
            if plan.take:
                await conn.execute(
                    "UPDATE bind_slots b SET owner = $1, since = $2, until = $3"
                    " FROM unnest($4::text[], $5::int[]) AS k(c, s)"
                    " WHERE b.carrier = k.c AND b.slot = k.s"
                    " AND (b.owner IS NULL OR b.until IS NULL OR b.until <= $2)",
                    me,
                    now,
                    until,
                    [c for c, _ in plan.take],
                    [s for _, s in plan.take],
                )
            slots = [SlotRow(*r) for r in await conn.fetch(_SLOTS)]
        return round_result(me, plan, until, live, nodes, slots, now)

    async def release_slots(self, slots: Collection[tuple[str, int]]) -> int:
        if not slots:
            return 0
        async with self.store.pool.acquire() as conn:
            done = await conn.execute(
                "UPDATE bind_slots b SET owner = NULL, since = NULL, until = NULL"
                " FROM unnest($1::text[], $2::int[]) AS k(c, s)"
                " WHERE b.carrier = k.c AND b.slot = k.s AND b.owner = $3",
                [c for c, _ in slots],
                [s for _, s in slots],
                self.claims.node_id,
            )
        return int(done.split()[-1])

    async def leave(self, now: float) -> int:
        me = self.claims.node_id
        async with self.store.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE nodes SET until = $2 WHERE id = $1 AND until > $2", me, now)
            done = await conn.execute(
                "UPDATE bind_slots SET owner = NULL, since = NULL, until = NULL WHERE owner = $1",
                me,
            )
        return int(done.split()[-1])

    async def cluster_view(self, now: float) -> ClusterView:
        async with self.store.pool.acquire() as conn:
            nodes = [NodeRow(*r) for r in await conn.fetch(_NODES)]
            slots = [SlotRow(*r) for r in await conn.fetch(_SLOTS)]
        return ClusterView(now, tuple(nodes), tuple(slots))
