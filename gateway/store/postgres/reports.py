"""Reports on PostgreSQL: the ports ``InteractionExport`` (less the contact reads, in
gateway.store.postgres.inbound) and ``CampaignReports`` (gateway.store.ports), as a mixin
of :class:`~gateway.store.postgres.store.PgStore` (tables: migration 2).

The figures are those of the SQLite store (gateway.store.sqlite_reports), each written once
as SQL here in PostgreSQL's dialect; the rows they give are folded into
``CampaignCounts`` by gateway.store.rows' :class:`~gateway.store.rows.CampaignSeries`, the
one fold both backends use. The settled bound relies on interaction ids growing in commit
order (gateway.store.postgres.inbound).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from gateway.store import rows as store_rows
from gateway.store.base import INTERACTION_PENDING, CampaignCounts, Interaction, Periods
from gateway.store.rows import (
    FINAL_FIGURE_STATUSES,
    INTERACTION_COLUMNS,
    OPT_OUT_ACTION,
    RESUBSCRIPTION_RULES,
    CampaignSeries,
)

# The definitions of campaign figures (see CampaignCounts), as SQL over ``interactions i``.
FROM_RECIPIENT: Final = (
    "EXISTS (SELECT 1 FROM messages m WHERE m.dest = i.source AND m.campaign_id = i.campaign_id)"
)
"""The MO's sender is a recipient: the campaign made a message for that number."""
RESUBSCRIPTION: Final = (
    "coalesce(i.rule, '') IN (" + ", ".join(f"'{r}'" for r in RESUBSCRIPTION_RULES) + ")"
)
RESPONSE: Final = f"({FROM_RECIPIENT} AND NOT {RESUBSCRIPTION})"
"""An MO that makes its sender one of the campaign's responders."""
RAN_OPT_OUT: Final = (
    "EXISTS (SELECT 1 FROM jsonb_array_elements(i.actions::jsonb) a WHERE a ->> 'type' = '"
    + OPT_OUT_ACTION
    + "' AND coalesce(a -> 'ok', 'true') NOT IN ('false'::jsonb, '0'::jsonb))"
)
"""The MO ran an opt-out that was stored (an entry ``"ok": false`` was not)."""

_FINAL_STATUSES: Final = ", ".join(f"'{s}'" for s in FINAL_FIGURE_STATUSES)


class PgReports:
    """The report ports over :class:`PgStore`'s pool (``pool`` is PgStore's)."""

    @property
    def pool(self) -> Any:
        raise NotImplementedError  # pragma: no cover - PgStore provides it

    # -- the interaction export ------------------------------------------------------------

    async def interactions_by_ids(self, ids: Sequence[int]) -> list[Interaction]:
        rows = await self.pool.fetch(
            f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE id = ANY($1::bigint[])"
            " ORDER BY id",
            sorted(set(ids)),
        )
        return [store_rows.interaction(r) for r in rows]

    async def settled_interaction_bound(self) -> int:
        first_pending, last = await self.pool.fetchrow(
            "SELECT (SELECT min(id) FROM interactions WHERE state = $1),"
            " (SELECT max(id) FROM interactions)",
            INTERACTION_PENDING,
        )
        if first_pending is not None:
            return int(first_pending) - 1
        return int(last or 0)

    async def export_mark(self, scope: str) -> int:
        mark = await self.pool.fetchval("SELECT last_id FROM export_marks WHERE scope = $1", scope)
        return int(mark or 0)

    async def advance_export_mark(self, scope: str, last_id: int, at: float) -> None:
        await self.pool.execute(
            "INSERT INTO export_marks(scope, last_id, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (scope) DO UPDATE SET"
            " last_id = greatest(export_marks.last_id, excluded.last_id),"
            " updated_at = excluded.updated_at",
            scope,
            last_id,
            at,
        )

    # -- campaign reports ------------------------------------------------------------------

    async def campaign_interactions(
        self, campaign_id: str, since: float, until: float, after: int, limit: int
    ) -> list[Interaction]:
        rows = await self.pool.fetch(
            f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE campaign_id = $1"
            " AND id > $2 AND received_at >= $3 AND received_at < $4 ORDER BY id LIMIT $5",
            campaign_id,
            after,
            since,
            until,
            limit,
        )
        return [store_rows.interaction(r) for r in rows]

    async def campaign_counts(self, campaign_id: str, since: float, until: float) -> CampaignCounts:
        [[counts]] = await self.campaign_series(campaign_id, [Periods(since, until - since, 1)])
        return counts

    async def campaign_series(
        self, campaign_id: str, axes: Sequence[Periods]
    ) -> list[list[CampaignCounts]]:
        """Each figure read once for every period of every axis (``_by_period``), in one
        snapshot (a repeatable-read transaction): the figures of one call agree."""
        if not axes:
            return []
        series = CampaignSeries(axes)
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # Sent: when a message's first part was submitted (a carrier accepted it).
            series.sent(
                await _by_period(
                    conn,
                    "SELECT min(p.submitted_at) AS t FROM messages m JOIN parts p"
                    " ON p.message_id = m.id WHERE m.campaign_id = $1"
                    " AND p.submitted_at IS NOT NULL GROUP BY m.id"
                    " HAVING min(p.submitted_at) >= $2 AND min(p.submitted_at) < $3",
                    campaign_id,
                    "count(*)",
                    "",
                    axes,
                    additive=True,
                )
            )
            # Delivered and undelivered: when the message's status became final
            # (updated_at is that change: a final status sticks).
            series.finals(
                await _by_period(
                    conn,
                    "SELECT updated_at AS t, status, coalesce(error, '') AS error FROM messages"
                    f" WHERE campaign_id = $1 AND status IN ({_FINAL_STATUSES})"
                    " AND updated_at >= $2 AND updated_at < $3",
                    campaign_id,
                    "status, error, count(*)",
                    ", status, error",
                    axes,
                    additive=True,
                )
            )
            # Replies: every MO logged under the campaign, by what it was.
            series.replies(
                await _by_period(
                    conn,
                    f"SELECT i.received_at AS t, i.source, {FROM_RECIPIENT} AS recipient,"
                    f" {RESPONSE} AS response, {RESUBSCRIPTION} AS resubscription,"
                    f" {RAN_OPT_OUT} AS opt_out FROM interactions i WHERE i.campaign_id = $1"
                    " AND i.received_at >= $2 AND i.received_at < $3",
                    campaign_id,
                    "count(*),"
                    " count(DISTINCT CASE WHEN response THEN source END),"
                    " count(DISTINCT CASE WHEN recipient AND opt_out THEN source END),"
                    " count(*) FILTER (WHERE resubscription),"
                    " count(*) FILTER (WHERE NOT recipient)",
                    "",
                    axes,
                    additive=False,
                )
            )
            # Requests for the campaign's short links: people's clicks and bots' requests.
            series.clicks(
                await _by_period(
                    conn,
                    "SELECT at AS t, number, bot FROM link_clicks WHERE campaign_id = $1"
                    " AND at >= $2 AND at < $3",
                    campaign_id,
                    "count(*) FILTER (WHERE NOT bot),"
                    " count(DISTINCT CASE WHEN NOT bot THEN number END),"
                    " count(*) FILTER (WHERE bot)",
                    "",
                    axes,
                    additive=False,
                )
            )
        return series.counts()

    # -- the daily digest's memory ---------------------------------------------------------

    async def digest_sent(self, campaign_id: str, day: str) -> bool:
        found = await self.pool.fetchval(
            "SELECT true FROM digests_sent WHERE campaign_id = $1 AND day = $2", campaign_id, day
        )
        return bool(found)

    async def record_digest(
        self, campaign_id: str, day: str, at: float, recipients: Sequence[str]
    ) -> bool:
        done = await self.pool.execute(
            "INSERT INTO digests_sent(campaign_id, day, sent_at, recipients)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            campaign_id,
            day,
            at,
            json.dumps(list(recipients)),
        )
        return bool(int(done.split()[-1]))


async def _by_period(
    conn: Any,
    rows: str,
    campaign_id: str,
    aggregates: str,
    group: str,
    axes: Sequence[Periods],
    *,
    additive: bool,
) -> list[Any]:
    """``aggregates`` of ``rows`` (a SELECT of the campaign's rows in [since, until) with
    parameters $1 campaign, $2 since, $3 until; their time as ``t``) in each period of each
    axis, as (axis, period index, values): the SQLite store's reading
    (gateway.store.sqlite_reports), in this dialect. Additive figures in one pass grouped by
    every axis's period at once; distinct counts one aggregate per axis over the same rows
    (PostgreSQL computes a CTE used more than once once)."""
    params: list[Any] = [
        campaign_id,
        min(a.since for a in axes),
        max(a.until for a in axes),
    ]

    def param(value: float) -> str:
        params.append(value)
        return f"${len(params)}::double precision"

    if additive:
        columns = ", ".join(
            f"CASE WHEN t >= {param(a.since)} AND t < {param(a.until)}"
            f" THEN floor((t - {param(a.since)}) / {param(a.width)})::bigint END AS b{k}"
            for k, a in enumerate(axes)
        )
        keys = ", ".join(f"b{k}" for k in range(len(axes)))
        found = await conn.fetch(
            f"WITH rows AS ({rows}) SELECT {columns}, {aggregates} FROM rows"
            f" GROUP BY {keys}{group}",
            *params,
        )
        n = len(axes)
        return [
            (k, row[k], *tuple(row)[n:]) for row in found for k in range(n) if row[k] is not None
        ]
    selects = [
        f"SELECT {k} AS axis, floor((t - {param(a.since)}) / {param(a.width)})::bigint"
        f" AS bucket, {aggregates} FROM rows WHERE t >= {param(a.since)}"
        f" AND t < {param(a.until)} GROUP BY bucket{group}"
        for k, a in enumerate(axes)
    ]
    return list(await conn.fetch(f"WITH rows AS ({rows}) " + " UNION ALL ".join(selects), *params))
