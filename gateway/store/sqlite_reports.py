"""The SQLite side of the report ports (gateway.store.ports: ``InteractionExport``,
``CampaignReports``): interaction export marks, campaign counts for the daily digest, and
the digests already sent.

A mixin of :class:`~gateway.store.sqlite.SqliteStore` (it uses that class's reader and its
group-commit writer), kept in its own module with its own tables.

Schema notes:
- ``export_marks``: per export scope (an API account and its filters), the last interaction id
  exported as "new". It only moves forward.
- ``digests_sent``: one row per (campaign, local date) whose digest went out. Its primary key
  is what stops a restarted daemon from sending a day's digest twice.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import aiosqlite

from gateway.store import rows as store_rows
from gateway.store.base import (
    INTERACTION_PENDING,
    CampaignCounts,
    Interaction,
    Periods,
)
from gateway.store.rows import (
    FINAL_FIGURE_STATUSES,
    INTERACTION_COLUMNS,
    OPT_OUT_ACTION,
    RESUBSCRIPTION_RULES,
    CampaignSeries,
)

REPORTS_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS export_marks (
    scope TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS digests_sent (
    campaign_id TEXT NOT NULL,
    day TEXT NOT NULL,
    sent_at REAL NOT NULL,
    recipients TEXT NOT NULL,
    PRIMARY KEY (campaign_id, day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS interactions_campaign_source ON interactions(campaign_id, source)
    WHERE campaign_id IS NOT NULL;
"""

# The definitions of campaign figures (see CampaignCounts), as SQL over ``interactions i``:
# written once, used by campaign_counts, responders and the send-to-responders audience.
FROM_RECIPIENT: Final = (
    "EXISTS (SELECT 1 FROM messages m WHERE m.dest = i.source AND +m.campaign_id = i.campaign_id)"
)
"""The MO's sender is a recipient: the campaign made a message for that number. By the
messages_reply_window index (dest first: a number has few messages); the unary ``+`` keeps
SQLite from taking messages_campaign instead, which reads every message of the campaign
for each MO (a 200,000-message campaign with 20,000 replies: minutes instead of
milliseconds)."""
RESUBSCRIPTION: Final = (
    "coalesce(i.rule, '') IN (" + ", ".join(f"'{r}'" for r in RESUBSCRIPTION_RULES) + ")"
)
RESPONSE: Final = f"({FROM_RECIPIENT} AND NOT {RESUBSCRIPTION})"
"""An MO that makes its sender one of the campaign's responders."""
RAN_OPT_OUT: Final = (
    "EXISTS (SELECT 1 FROM json_each(i.actions) a WHERE json_extract(a.value, '$.type') = '"
    + OPT_OUT_ACTION
    + "' AND coalesce(json_extract(a.value, '$.ok'), 1) != 0)"
)

_FINAL_STATUSES: Final = ", ".join(f"'{s}'" for s in FINAL_FIGURE_STATUSES)


MAX_IDS: Final = 10_000
"""Ids per SQL statement in :meth:`SqliteReports.interactions_by_ids`; below SQLite's limit."""

_Op = Callable[[aiosqlite.Connection], Awaitable[Any]]


class SqliteReports:
    """Report queries over the SqliteStore tables; ``_read`` and ``_write`` are the store's."""

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError  # pragma: no cover - SqliteStore provides it

    async def _write(self, op: _Op) -> Any:
        raise NotImplementedError  # pragma: no cover - SqliteStore provides it

    async def interactions_by_ids(self, ids: Sequence[int]) -> list[Interaction]:
        wanted = sorted(set(ids))
        found: list[Interaction] = []
        for start in range(0, len(wanted), MAX_IDS):
            chunk = wanted[start : start + MAX_IDS]
            marks = ",".join("?" * len(chunk))
            rows = await self._read(
                f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE id IN ({marks}) ORDER BY id",
                chunk,
            )
            found.extend(store_rows.interaction(r) for r in rows)
        return found

    async def settled_interaction_bound(self) -> int:
        rows = await self._read(
            "SELECT (SELECT min(id) FROM interactions WHERE state = ?),"
            " (SELECT max(id) FROM interactions)",
            (INTERACTION_PENDING,),
        )
        first_pending, last = rows[0]
        if first_pending is not None:
            return int(first_pending) - 1
        return int(last or 0)

    async def export_mark(self, scope: str) -> int:
        rows = await self._read("SELECT last_id FROM export_marks WHERE scope = ?", (scope,))
        return int(rows[0][0]) if rows else 0

    async def advance_export_mark(self, scope: str, last_id: int, at: float) -> None:
        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO export_marks(scope, last_id, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(scope) DO UPDATE SET last_id = max(last_id, excluded.last_id),"
                " updated_at = excluded.updated_at",
                (scope, last_id, at),
            )

        await self._write(op)

    async def campaign_interactions(
        self, campaign_id: str, since: float, until: float, after: int, limit: int
    ) -> list[Interaction]:
        rows = await self._read(
            f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE campaign_id = ?"
            " AND id > ? AND received_at >= ? AND received_at < ? ORDER BY id LIMIT ?",
            (campaign_id, after, since, until, limit),
        )
        return [store_rows.interaction(r) for r in rows]

    async def campaign_counts(self, campaign_id: str, since: float, until: float) -> CampaignCounts:
        """The campaign's figures in [since, until) (CampaignCounts says what each counts)."""
        [[counts]] = await self.campaign_series(campaign_id, [Periods(since, until - since, 1)])
        return counts

    async def campaign_series(
        self, campaign_id: str, axes: Sequence[Periods]
    ) -> list[list[CampaignCounts]]:
        """Each figure's SQL, written once (campaign_counts is this with one period), read
        for every period of every axis together (``_by_period``): the totals and the
        timelines of a campaign cost two reads of its messages (sent; final statuses), one
        of its replies and one of its clicks, whatever the number of axes."""
        if not axes:
            return []
        series = CampaignSeries(axes)
        # Sent: when a message's first part was submitted (a carrier accepted it).
        series.sent(
            await self._by_period(
                "SELECT min(p.submitted_at) AS t FROM messages m JOIN parts p"
                " ON p.message_id = m.id WHERE m.campaign_id = ? AND p.submitted_at IS NOT NULL"
                " GROUP BY m.id HAVING t >= ? AND t < ?",
                campaign_id,
                "count(*)",
                "",
                axes,
                additive=True,
            )
        )
        # Delivered and undelivered: when the message's status became final (updated_at is
        # that change: a final status sticks).
        series.finals(
            await self._by_period(
                "SELECT updated_at AS t, status, coalesce(error, '') AS error FROM messages"
                f" WHERE campaign_id = ? AND status IN ({_FINAL_STATUSES})"
                " AND updated_at >= ? AND updated_at < ?",
                campaign_id,
                "status, error, count(*)",
                ", status, error",
                axes,
                additive=True,
            )
        )
        # Replies: every MO logged under the campaign, by what it was.
        series.replies(
            await self._by_period(
                f"SELECT i.received_at AS t, i.source, {FROM_RECIPIENT} AS recipient,"
                f" {RESPONSE} AS response, {RESUBSCRIPTION} AS resubscription,"
                f" {RAN_OPT_OUT} AS opt_out FROM interactions i WHERE i.campaign_id = ?"
                " AND i.received_at >= ? AND i.received_at < ?",
                campaign_id,
                "count(*),"
                " count(DISTINCT CASE WHEN response THEN source END),"
                " count(DISTINCT CASE WHEN recipient AND opt_out THEN source END),"
                " coalesce(sum(resubscription), 0),"
                " coalesce(sum(NOT recipient), 0)",
                "",
                axes,
                additive=False,
            )
        )
        # Requests for the campaign's short links: people's clicks and bots' requests.
        series.clicks(
            await self._by_period(
                "SELECT at AS t, number, bot FROM link_clicks WHERE campaign_id = ?"
                " AND at >= ? AND at < ?",
                campaign_id,
                "coalesce(sum(bot = 0), 0), count(DISTINCT CASE WHEN bot = 0 THEN number END),"
                " coalesce(sum(bot), 0)",
                "",
                axes,
                additive=False,
            )
        )
        return series.counts()

    async def _by_period(
        self,
        rows: str,
        campaign_id: str,
        aggregates: str,
        group: str,
        axes: Sequence[Periods],
        *,
        additive: bool,
    ) -> list[Any]:
        """``aggregates`` of ``rows`` (a SELECT of the campaign's rows in [since, until),
        their time as ``t``) in each period of each axis, as (axis, period index, values).

        Additive figures (counts of rows, each row in one period of an axis) are read in one
        pass grouped by every axis's period at once: a row's period on each axis is a column,
        so the totals and both timelines of a 200,000-message campaign cost one read of its
        messages and a sort of a few hundred groups. Distinct counts cannot be added up
        across groups: they take one aggregate per axis over the same rows (SQLite reads a
        CTE used more than once into a temporary table once)."""
        since = min(a.since for a in axes)
        until = max(a.until for a in axes)
        params: list[Any] = [campaign_id, since, until]
        if additive:
            columns = ", ".join(
                f"CASE WHEN t >= ? AND t < ? THEN CAST((t - ?) / ? AS INTEGER) END AS b{k}"
                for k in range(len(axes))
            )
            for a in axes:
                params += [a.since, a.until, a.since, a.width]
            keys = ", ".join(f"b{k}" for k in range(len(axes)))
            found = await self._read(
                f"WITH rows AS ({rows}) SELECT {columns}, {aggregates} FROM rows"
                f" GROUP BY {keys}{group}",
                params,
            )
            n = len(axes)
            return [(k, row[k], *row[n:]) for row in found for k in range(n) if row[k] is not None]
        selects = [
            f"SELECT {k} AS axis, CAST((t - ?) / ? AS INTEGER) AS bucket, {aggregates}"
            f" FROM rows WHERE t >= ? AND t < ? GROUP BY bucket{group}"
            for k in range(len(axes))
        ]
        for a in axes:
            params += [a.since, a.width, a.since, a.until]
        return await self._read(f"WITH rows AS ({rows}) " + " UNION ALL ".join(selects), params)

    async def digest_sent(self, campaign_id: str, day: str) -> bool:
        rows = await self._read(
            "SELECT 1 FROM digests_sent WHERE campaign_id = ? AND day = ?", (campaign_id, day)
        )
        return bool(rows)

    async def record_digest(
        self, campaign_id: str, day: str, at: float, recipients: Sequence[str]
    ) -> bool:
        row = (campaign_id, day, at, json.dumps(list(recipients)))

        async def op(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO digests_sent(campaign_id, day, sent_at, recipients)"
                " VALUES (?, ?, ?, ?)",
                row,
            )
            return cursor.rowcount == 1

        recorded: bool = await self._write(op)
        return recorded
