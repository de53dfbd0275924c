"""MO on PostgreSQL: the ports ``MoLog``, ``Interactions`` and ``InboundNumbers``, and the
contact reads of ``InteractionExport`` (gateway.store.ports), as a mixin of
:class:`~gateway.store.postgres.store.PgStore` (tables: migration 2).

- Interaction ids grow in commit order. Each logging transaction takes the advisory lock
  :data:`INTERACTION_IDS_LOCK` (``pg_advisory_xact_lock``, released by its commit) before it
  draws its ids from the sequence ``interaction_ids``: two nodes logging at once commit one
  after the other, the smaller ids first. A plain sequence gives ids in the order rows are
  *inserted*, and a transaction holding a smaller id may commit after one holding a larger:
  a reader paging by id (pending interactions, the export's settled bound) would pass the
  smaller for good. The lock is held for one short insert; SQLite's single writer does the
  same.
- ``pending_interactions`` claims (gateway.store.claims) with ``UPDATE ... FROM (SELECT ...
  FOR UPDATE SKIP LOCKED LIMIT n) RETURNING``: two nodes taking over a dead node's
  interactions at once never get the same one, and neither waits for the other's rows.
- Row conversions are gateway.store.rows' (one definition for every backend).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Final

from gateway.store import rows as store_rows
from gateway.store import sql_text
from gateway.store.base import (
    INTERACTION_PENDING,
    Contact,
    Interaction,
    InteractionOutcome,
    MoFacts,
    MoLookup,
    MoPart,
    NewInteraction,
    SurveyAnswer,
)
from gateway.store.claims import ClaimSettings
from gateway.store.rows import INTERACTION_COLUMNS

INTERACTION_IDS_LOCK: Final = 0x736D_7367_7700_0002
"""The advisory lock key under which interaction ids are drawn and committed (``smsgw`` in
ASCII, then 2; migrations hold 1)."""

ALL_SENDERS: Final = "*"
"""``opt_outs.sender`` of an opt-out from every sender (gateway.store.postgres.store)."""

LAST_ERROR_CHARS: Final = 500
"""The longest ``last_error`` kept (as the SQLite store)."""

_CLAIMABLE: Final = "(claimed_by IS NULL OR claimed_by = $2 OR claim_until <= $3)"
"""This node may claim the row ($2: node id, $3: now)."""

_FOREIGN: Final = "(claimed_by IS NULL OR (claimed_by <> $2 AND claim_until <= $3))"
"""The row is nobody's, or another node's whose claim lapsed: what a running node takes
over (``pending_interactions(foreign=True)``), never its own."""

_INSERT_INTERACTION: Final = (
    "INSERT INTO interactions(id, carrier, source, destination, text, data_coding, parts,"
    " parts_received, missing, received_at, completed_at, state, claimed_by, claim_until)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
)

_MO_FACTS: Final = """
SELECT q.source,
    EXISTS (SELECT 1 FROM opt_outs o WHERE o.number = q.source AND o.sender IN (q.sender, $5)),
    lm.campaign_id,
    lm.created_at,
    (SELECT count(*) FROM interactions i WHERE i.source = q.source
        AND i.destination = q.destination AND i.received_at >= $6 AND i.text = q.text),
    c.name, c.attributes, c.created_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
    AS q(source, sender, destination, text, n)
LEFT JOIN contacts c ON c.number = q.source
LEFT JOIN LATERAL (SELECT m.campaign_id, m.created_at FROM messages m
    WHERE m.dest = q.source AND m.sender = q.sender
    AND m.campaign_id IS NOT NULL AND m.created_at >= $7
    ORDER BY m.created_at DESC LIMIT 1) lm ON true
ORDER BY q.n
"""
"""``mo_facts`` for arrays of (source, sender, destination, text): each lookup answered by
the indexes the single reads use (opt_outs' key, messages_reply_window, interactions_source,
contacts' key)."""


class PgInbound:
    """The MO ports over :class:`PgStore`'s pool (``pool`` and ``claims`` are PgStore's)."""

    claims: ClaimSettings

    @property
    def pool(self) -> Any:
        raise NotImplementedError  # pragma: no cover - PgStore provides it

    # -- long MO parts ---------------------------------------------------------------------

    async def add_mo_part(self, part: MoPart) -> None:
        # A part the SMSC sends again (our answer was lost) is the one already kept.
        await self.pool.execute(
            "INSERT INTO mo_parts(carrier, source, destination, ref, total, seq, data_coding,"
            " udh_length, data, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT DO NOTHING",
            *store_rows.mo_part_row(part),
        )

    async def mo_parts(self) -> list[MoPart]:
        rows = await self.pool.fetch(
            "SELECT carrier, source, destination, ref, total, seq, data_coding, udh_length,"
            " data, received_at FROM mo_parts ORDER BY received_at"
        )
        return [store_rows.mo_part(r) for r in rows]

    # -- logging interactions --------------------------------------------------------------

    async def record_interaction(
        self, interaction: NewInteraction, consumed: Sequence[MoPart] = ()
    ) -> int:
        gone = [store_rows.mo_part_row(p)[:6] for p in consumed]
        async with self.pool.acquire() as conn, conn.transaction():
            [new_id] = await self._log(conn, [interaction])
            if gone:
                await conn.execute(
                    "DELETE FROM mo_parts p USING unnest($1::text[], $2::text[], $3::text[],"
                    " $4::int[], $5::int[], $6::int[]) AS g(carrier, source, destination, ref,"
                    " total, seq) WHERE p.carrier = g.carrier AND p.source = g.source"
                    " AND p.destination = g.destination AND p.ref = g.ref"
                    " AND p.total = g.total AND p.seq = g.seq",
                    *(list(column) for column in zip(*gone, strict=True)),
                )
        return new_id

    async def record_interactions(self, interactions: Sequence[NewInteraction]) -> list[int]:
        if not interactions:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._log(conn, interactions)

    async def _log(self, conn: Any, interactions: Sequence[NewInteraction]) -> list[int]:
        """Insert new interactions in the caller's transaction, their ids drawn under
        :data:`INTERACTION_IDS_LOCK` (held until that transaction ends); their ids, in order."""
        await conn.execute("SELECT pg_advisory_xact_lock($1)", INTERACTION_IDS_LOCK)
        drawn = await conn.fetch(
            "SELECT nextval('interaction_ids') FROM generate_series(1, $1)", len(interactions)
        )
        ids = sorted(int(r[0]) for r in drawn)
        await conn.executemany(
            _INSERT_INTERACTION,
            [
                (n, *store_rows.interaction_row(i, self.claims))
                for n, i in zip(ids, interactions, strict=True)
            ],
        )
        return ids

    # -- handling them ---------------------------------------------------------------------

    async def pending_interactions(
        self, after: int, limit: int, now: float | None = None, *, foreign: bool = False
    ) -> list[Interaction]:
        now = time.time() if now is None else now
        columns = ", ".join(f"i.{c.strip()}" for c in INTERACTION_COLUMNS.split(","))
        claimable = _FOREIGN if foreign else _CLAIMABLE
        rows = await self.pool.fetch(
            "UPDATE interactions AS i SET claimed_by = $2, claim_until = $5"
            " FROM (SELECT id FROM interactions WHERE state = 'pending' AND id > $1"
            f" AND {claimable} ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) AS picked"
            " WHERE i.id = picked.id"
            f" RETURNING {columns}",
            after,
            self.claims.node_id,
            now,
            limit,
            self.claims.until(now),
        )
        return sorted((store_rows.interaction(r) for r in rows), key=lambda i: i.id)

    async def finish_interactions(self, outcomes: Sequence[InteractionOutcome]) -> None:
        rows = [store_rows.finished_row(o) for o in outcomes]
        if rows:
            await self.pool.executemany(
                "UPDATE interactions SET state = $1, keyword = $2, rule = $3, campaign_id = $4,"
                " actions = $5, processed_at = $6 WHERE id = $7",
                rows,
            )

    async def begin_interaction_attempt(self, interaction_id: int, floor: int = 0) -> int:
        attempts = await self.pool.fetchval(
            "UPDATE interactions SET attempts = greatest(attempts, $2) + 1"
            " WHERE id = $1 AND state = $3 RETURNING attempts",
            interaction_id,
            floor,
            INTERACTION_PENDING,
        )
        return int(attempts or 0)

    async def fail_interaction(
        self, interaction_id: int, error: str, *, add: int, quarantine: bool, at: float
    ) -> int:
        attempts = await self.pool.fetchval(
            "UPDATE interactions SET last_error = $2, attempts = attempts + $3,"
            " state = CASE WHEN $4 THEN 'quarantined' ELSE state END,"
            " processed_at = CASE WHEN $4 THEN $5 ELSE processed_at END"
            " WHERE id = $1 AND state = $6 RETURNING attempts",
            interaction_id,
            error[:LAST_ERROR_CHARS],
            add,
            quarantine,
            at,
            INTERACTION_PENDING,
        )
        return int(attempts or 0)

    async def requeue_interaction(self, interaction_id: int) -> bool:
        # Pending again, claimed by this node: its API asked, its inbound service handles
        # it now (gateway.inbound.service.requeued), and no other node takes it meanwhile.
        now = time.time()
        done = await self.pool.execute(
            "UPDATE interactions SET state = 'pending', attempts = 0, processed_at = NULL,"
            " claimed_by = $2, claim_until = $3 WHERE id = $1 AND state = 'quarantined'",
            interaction_id,
            self.claims.node_id,
            self.claims.until(now),
        )
        return bool(int(done.split()[-1]))

    async def mo_facts(
        self, lookups: Sequence[MoLookup], campaign_since: float, repeats_since: float
    ) -> list[MoFacts]:
        if not lookups:
            return []
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            rows = await conn.fetch(
                _MO_FACTS,
                [q.source for q in lookups],
                [q.sender for q in lookups],
                [q.destination for q in lookups],
                [q.text for q in lookups],
                ALL_SENDERS,
                repeats_since,
                campaign_since,
            )
            known = sorted({r[0] for r in rows if r[5] is not None})
            tags: dict[str, list[str]] = {}
            if known:
                for number, tag in await conn.fetch(
                    "SELECT number, tag FROM contact_tags WHERE number = ANY($1::text[])"
                    " ORDER BY number, created_at, tag",
                    known,
                ):
                    tags.setdefault(number, []).append(tag)
        return [
            MoFacts(
                opted_out=bool(r[1]),
                last_campaign=(r[2], r[3]) if r[2] is not None else None,
                repeats=int(r[4]),
                contact=store_rows.contact((r[0], r[5], r[6], r[7]), tags.get(r[0], ()))
                if r[5] is not None
                else None,
            )
            for r in rows
        ]

    async def claim_courtesy(self, scope: str, source: str, now: float, interval: float) -> bool:
        # One statement: two nodes claiming at once, one of them gets it.
        claimed = await self.pool.fetchval(
            "INSERT INTO courtesy_replies(scope, source, last_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (scope, source) DO UPDATE SET last_at = excluded.last_at"
            " WHERE courtesy_replies.last_at <= $3 - $4 RETURNING true",
            scope,
            source,
            now,
            interval,
        )
        return bool(claimed)

    async def record_answer(self, answer: SurveyAnswer) -> None:
        a = answer
        await self.pool.execute(
            "INSERT INTO answers(interaction_id, number, source, campaign_id, question,"
            " answer, kind, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            a.interaction_id,
            a.number,
            a.source,
            a.campaign_id,
            a.question,
            a.answer,
            a.kind,
            a.at,
        )

    async def tag_contact(self, number: str, tags: Sequence[str], at: float) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO contacts(number, created_at, updated_at) VALUES ($1, $2, $2)"
                " ON CONFLICT DO NOTHING",
                number,
                at,
            )
            if tags:
                await conn.execute(
                    "INSERT INTO contact_tags(number, tag, created_at)"
                    " SELECT $1, t, $3 FROM unnest($2::text[]) AS t ON CONFLICT DO NOTHING",
                    number,
                    list(dict.fromkeys(tags)),
                    at,
                )

    # -- the log as customer care reads it ---------------------------------------------------

    async def get_interaction(self, interaction_id: int) -> Interaction | None:
        row = await self.pool.fetchrow(
            f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE id = $1", interaction_id
        )
        return store_rows.interaction(row) if row is not None else None

    async def interactions(
        self,
        *,
        number: str | None = None,
        source: str | None = None,
        campaign_id: str | None = None,
        after: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
        state: str | None = None,
    ) -> list[Interaction]:
        sql, params = sql_text.interactions_page(
            number, source, campaign_id, state, after, limit, newest_first
        )
        rows = await self.pool.fetch(sql_text.numbered(sql), *params)
        return [store_rows.interaction(r) for r in rows]

    async def set_interaction_care(
        self,
        interaction_id: int,
        *,
        care_state: str | None = None,
        assignee: str | None = None,
        set_assignee: bool = False,
    ) -> Interaction | None:
        row = await self.pool.fetchrow(
            "UPDATE interactions SET care_state = coalesce($2, care_state),"
            " assignee = CASE WHEN $3 THEN $4 ELSE assignee END WHERE id = $1"
            f" RETURNING {INTERACTION_COLUMNS}",
            interaction_id,
            care_state,
            set_assignee,
            assignee,
        )
        return store_rows.interaction(row) if row is not None else None

    # -- what the export reads of contacts ----------------------------------------------------

    async def contacts_of(self, numbers: Sequence[str]) -> dict[str, Contact]:
        rows = await self.pool.fetch(
            "SELECT number, name, attributes, created_at FROM contacts"
            " WHERE number = ANY($1::text[])",
            list(dict.fromkeys(numbers)),
        )
        return {r[0]: store_rows.contact(r) for r in rows}

    async def interaction_attribute_keys(
        self,
        *,
        number: str | None = None,
        source: str | None = None,
        campaign_id: str | None = None,
        after: int = 0,
        upto: int | None = None,
        ids: Sequence[int] | None = None,
        limit: int = 1000,
    ) -> list[str]:
        where, params = sql_text.interaction_filter("i.", number, source, campaign_id)
        where.append("i.id > ?")
        params.append(after)
        if upto is not None:
            where.append("i.id <= ?")
            params.append(upto)
        if ids is not None:
            where.append("i.id = ANY(?::bigint[])")
            params.append(list(ids))
        rows = await self.pool.fetch(
            sql_text.numbered(
                "SELECT DISTINCT a.key FROM interactions i JOIN contacts c ON c.number = i.source,"
                f" jsonb_object_keys(c.attributes) AS a(key) WHERE {' AND '.join(where)}"
                " ORDER BY a.key LIMIT ?"
            ),
            *params,
            limit,
        )
        return [r[0] for r in rows]

    # -- inbound numbers managed over the API --------------------------------------------------

    async def inbound_numbers(self) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.pool.fetch("SELECT number, config FROM inbound_numbers ORDER BY number")
        return [(r[0], json.loads(r[1])) for r in rows]

    async def put_inbound_number(self, number: str, config: dict[str, Any], at: float) -> None:
        await self.pool.execute(
            "INSERT INTO inbound_numbers(number, config, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (number) DO UPDATE SET config = excluded.config,"
            " updated_at = excluded.updated_at",
            number,
            json.dumps(config, ensure_ascii=False),
            at,
        )

    async def delete_inbound_number(self, number: str) -> bool:
        done = await self.pool.execute("DELETE FROM inbound_numbers WHERE number = $1", number)
        return bool(int(done.split()[-1]))
