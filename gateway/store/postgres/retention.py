"""Retention on PostgreSQL: the ``[retention]`` pruner (gateway.store.retention) over the
shared database, in bounded batches.

The same kinds and ages as on SQLite: messages in a final state made before the cutoff with
their parts (``ON DELETE CASCADE``), receipts, history and SMPP-front part records; receipts
that never matched; idempotency answers; finished interactions with their survey answers and
courtesy-reply marks; finished campaigns with their audience and digest records, and
finished imports. Never: opt-outs, contacts, lists, tags, inbound numbers, callbacks owed.

How: one round every ``interval`` seconds; a round runs transactions of at most ``batch``
records of each kind until nothing is left, pausing between two so the traffic's
transactions go first. Rows are found by their keys as on SQLite (messages by the id range
below the cutoff's id, interactions walking the id order, the rest by indexes on their
time), and picked ``FOR UPDATE SKIP LOCKED``: a row another node's transaction holds (a late
receipt settling it) is left for the next round, so pruning never waits for the traffic and
two nodes pruning at once split the work instead of deleting the same rows. Ids are never
given twice (identity sequences, and message ids the caller's), so no id floor is kept.

The tables of interactions and campaigns are pruned where they exist (migrations 2 and 3:
the inbound and campaign sides); a database without them prunes the rest.

Space: PostgreSQL's autovacuum makes the deleted rows' space reusable for new rows, so the
database stops growing once pruning keeps up; giving space back to the file system takes a
``VACUUM FULL`` (or ``pg_repack``) the operator schedules, as with any PostgreSQL database:
``smsgw_retention_reclaimed_pages`` stays 0 on this backend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from gateway.config import RetentionConfig
from gateway.logs import log_event
from gateway.store.retention import (
    INTERACTIONS_PRUNED,
    KINDS,
    PAUSE_SECONDS,
    RECIPIENTS_PER_BATCH,
    Cutoffs,
    Pruning,
    Scan,
    message_id_before,
)

log = logging.getLogger("smsgw.retention")

FINAL: Final = ["delivered", "undeliverable", "expired", "rejected", "failed"]
CAMPAIGN_DONE: Final = ["done", "cancelled"]
MESSAGE_CHILDREN: Final = ("receipts", "events", "front_parts")
"""Tables keyed by ``message_id`` deleted with their message (``parts`` cascade)."""
CAMPAIGN_CHILDREN: Final = (
    "campaign_audience_fixed",
    "campaign_deferred",
    "digests_sent",
    "link_clicks",
)


class PgRetention(Pruning):
    """The background pruner of one PostgreSQL database (one per node; nodes share work)."""

    def __init__(
        self,
        pool: Callable[[], Any],
        config: RetentionConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, clock)
        self._pool = pool
        """The store's pool, when asked (the store opens after the pruner is made)."""

    async def run_once(self) -> dict[str, int]:
        cutoffs = Cutoffs.at(self.config, self.clock())
        total = dict.fromkeys(KINDS, 0)
        scan = Scan(done=cutoffs.interactions is None)
        tables = await self._tables()
        while True:
            done = await self.prune_batch(cutoffs, scan, tables)
            for kind, n in done.items():
                total[kind] += n
                self.stats.deleted[kind] += n
            if not any(done.values()) and scan.done:
                break
            await asyncio.sleep(PAUSE_SECONDS)
        self.stats.rounds += 1
        if any(total.values()):
            log_event(log, "retention.round", **total)
        return total

    async def _tables(self) -> set[str]:
        rows = await self._pool().fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        return {r[0] for r in rows}

    async def prune_batch(self, cutoffs: Cutoffs, scan: Scan, tables: set[str]) -> dict[str, int]:
        """One transaction: up to ``batch`` records of each kind (interactions: ``batch``
        looked at from where ``scan`` stands). How many of each went."""
        batch = self.config.batch
        done = dict.fromkeys(KINDS, 0)
        async with self._pool().acquire() as conn, conn.transaction():
            if cutoffs.messages is not None:
                ids = [
                    r[0]
                    for r in await conn.fetch(
                        "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                        " WHERE id < $1 AND status = ANY($2::text[]) ORDER BY id LIMIT $3"
                        " FOR UPDATE SKIP LOCKED) RETURNING id",
                        message_id_before(cutoffs.messages),
                        FINAL,
                        batch,
                    )
                ]
                if ids:
                    for table in MESSAGE_CHILDREN:
                        if table in tables:
                            await conn.execute(
                                f"DELETE FROM {table} WHERE message_id = ANY($1::text[])", ids
                            )
                done["messages"] = len(ids)
                done["receipts"] = _count(
                    await conn.execute(
                        "DELETE FROM receipts WHERE id IN (SELECT id FROM receipts"
                        " WHERE message_id IS NULL AND received_at < $1 LIMIT $2"
                        " FOR UPDATE SKIP LOCKED)",
                        cutoffs.messages,
                        batch,
                    )
                )
            if cutoffs.idempotency is not None:
                done["idempotency"] = _count(
                    await conn.execute(
                        "DELETE FROM idempotency WHERE (account, key) IN (SELECT account, key"
                        " FROM idempotency WHERE created_at < $1 ORDER BY created_at LIMIT $2"
                        " FOR UPDATE SKIP LOCKED)",
                        cutoffs.idempotency,
                        batch,
                    )
                )
            if cutoffs.interactions is not None and "interactions" in tables:
                done["interactions"] = await _prune_interactions(
                    conn, tables, cutoffs.interactions, batch, scan
                )
            else:
                scan.done = True
            if cutoffs.campaigns is not None and "campaigns" in tables:
                done["campaigns"], done["recipients"] = await _prune_campaigns(
                    conn, tables, cutoffs.campaigns, batch
                )
                if "contact_imports" in tables:
                    done["imports"] = _count(
                        await conn.execute(
                            "DELETE FROM contact_imports WHERE id IN (SELECT id FROM"
                            " contact_imports WHERE status <> 'running' AND finished_at < $1"
                            " LIMIT $2 FOR UPDATE SKIP LOCKED)",
                            cutoffs.campaigns,
                            batch,
                        )
                    )
        return done


def _count(status: str) -> int:
    """The row count of a command status (``DELETE 3``)."""
    return int(status.split()[-1])


async def _prune_interactions(
    conn: Any, tables: set[str], cutoff: float, batch: int, scan: Scan
) -> int:
    """The next ``batch`` interactions after ``scan.after``: those old and finished go (with
    their answers); ``scan`` moves past all of them and is done at the first young one (ids
    grow with time) or at the end of the table. Courtesy-reply marks as old go too."""
    deleted = 0
    if not scan.done:
        rows = await conn.fetch(
            f"SELECT id, received_at, state IN {INTERACTIONS_PRUNED} FROM interactions"
            " WHERE id > $1 ORDER BY id LIMIT $2",
            scan.after,
            batch,
        )
        ids: list[int] = []
        for interaction_id, received_at, finished in rows:
            if received_at >= cutoff:
                scan.done = True
                break
            scan.after = interaction_id
            if finished:
                ids.append(interaction_id)
        else:
            if len(rows) < batch:
                scan.done = True
        if ids:
            if "answers" in tables:
                await conn.execute(
                    "DELETE FROM answers WHERE interaction_id = ANY($1::bigint[])", ids
                )
            # Still finished when deleted (a requeue between the read and now keeps it).
            deleted = _count(
                await conn.execute(
                    "DELETE FROM interactions WHERE id = ANY($1::bigint[])"
                    f" AND state IN {INTERACTIONS_PRUNED}",
                    ids,
                )
            )
    if "courtesy_replies" in tables:
        await conn.execute(
            "DELETE FROM courtesy_replies WHERE (scope, source) IN (SELECT scope, source"
            " FROM courtesy_replies WHERE last_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            cutoff,
            batch,
        )
    return deleted


async def _prune_campaigns(
    conn: Any, tables: set[str], cutoff: float, batch: int
) -> tuple[int, int]:
    """Finished campaigns: their audience in slices, then the campaign itself. Returns
    (campaigns, audience rows) deleted."""
    gone = 0
    budget = batch * RECIPIENTS_PER_BATCH
    campaigns = [
        r[0]
        for r in await conn.fetch(
            "SELECT id FROM campaigns WHERE status = ANY($1::text[]) AND finished_at < $2"
            " ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED",
            CAMPAIGN_DONE,
            cutoff,
            batch,
        )
    ]
    for campaign_id in campaigns:
        if "campaign_recipients" in tables:
            budget -= _count(
                await conn.execute(
                    "DELETE FROM campaign_recipients WHERE campaign_id = $1 AND number IN"
                    " (SELECT number FROM campaign_recipients WHERE campaign_id = $1 LIMIT $2)",
                    campaign_id,
                    budget,
                )
            )
            if budget <= 0:
                break  # more of this audience in the next transaction; the campaign goes last
        for table in CAMPAIGN_CHILDREN:
            if table in tables:
                await conn.execute(f"DELETE FROM {table} WHERE campaign_id = $1", campaign_id)
        await conn.execute("DELETE FROM campaigns WHERE id = $1", campaign_id)
        gone += 1
    return gone, batch * RECIPIENTS_PER_BATCH - budget
