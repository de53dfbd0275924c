"""``PgCampaignStore``: the campaign side (gateway.store.ports.CampaignSide) on PostgreSQL.

Contact lists and their members, contacts, CSV imports, campaigns with their audience and
cursor, recipients waiting for their send window, and message templates, over the asyncpg
pool of the node's :class:`~gateway.store.postgres.store.PgStore` (migration 3 of
gateway.store.postgres.migrations; opt-outs are migration 1's table, which ``PgStore``
writes). The semantics are those of
:class:`~gateway.store.sqlite_campaigns.SqliteCampaignStore`, the reference; the rows go
through the conversions both backends share (gateway.store.rows).

Several nodes share the database:

- A running or scheduled campaign is worked on by the node that claims it
  (:meth:`PgCampaignStore.claim_campaign`, gateway.store.claims): one ``UPDATE`` whose
  ``WHERE`` says "this node may claim it". Two nodes claiming at once queue on the row's
  lock, and PostgreSQL checks the ``WHERE`` again on the row the first one left, so the
  second finds it held and gets False: no ``SKIP LOCKED`` is needed for one row (it would
  only turn the owner's renewal, queued behind a pause, into a false "held elsewhere").
  The node renews the claim with its other ones (``PgStore.renew_claims``); once it dies
  and the claim lapses, another node claims the campaign and goes on from its cursor: the
  numbers of the chunk the dead node was in that already have a message of the campaign
  are passed over (:meth:`PgCampaignStore.already_messaged`; a message and the cursor are
  separate commits, the message first).
- A running import is claimed by the node that saves it (it reads the file, which is on
  that node's disk); :meth:`PgCampaignStore.fail_running_imports` fails only those no
  live node holds.
- Each call is one short transaction, except ``fix_audience`` (a page of numbers per
  transaction, then one to mark the audience fixed: a million-number audience never holds
  one transaction open for seconds) and ``purge_deleted_list`` (a page of members each).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from gateway.store import rows as store_rows
from gateway.store.base import Contact
from gateway.store.campaign_base import (
    IMPORT_FAILED,
    IMPORT_RUNNING,
    CampaignClick,
    CampaignRecord,
    ContactList,
    ImportJob,
    ImportRow,
    ListInUse,
    ListMembership,
    MessageTemplate,
    OptOutRecord,
    ReplyFigures,
)
from gateway.store.claims import ClaimSettings
from gateway.store.ports import CampaignSide
from gateway.store.postgres.migrations import migrate
from gateway.store.postgres.reports import RESPONSE

ALL_OPT_OUT: Final = "*"
"""``opt_outs.sender`` of an opt-out from every sender (as PgStore writes it)."""

CLAIMABLE: Final = "(claimed_by IS NULL OR claimed_by = $1 OR claim_until <= $2)"
"""This node may claim the row (parameters $1: node id, $2: now)."""

DELETE_PAGE: Final = 20_000
"""Members of a deleted list removed per transaction (as on SQLite): a million-member
list goes in fifty short transactions, not one that holds its row locks for seconds."""

AUDIENCE_PAGE: Final = 20_000
"""Numbers copied per transaction while a campaign's audience is fixed."""

_LIST: Final = (
    "SELECT l.id, l.name, (SELECT count(*) FROM list_members m WHERE m.list_id = l.id),"
    " l.created_at, l.account FROM contact_lists l WHERE l.deleted_at IS NULL"
)
_TEMPLATE: Final = "SELECT id, account, name, text, created_at, updated_at FROM message_templates"
_CAMPAIGN: Final = f"SELECT {store_rows.CAMPAIGN_COLUMNS} FROM campaigns"
_CONTACT: Final = "SELECT number, name, attributes, created_at FROM contacts"


def _contact(row: Sequence[Any]) -> Contact:
    return Contact(row[0], row[1], json.loads(row[2]), (), row[3])


def _opt_out(sender: str, source: str, at: float) -> OptOutRecord:
    return OptOutRecord(None if sender == ALL_OPT_OUT else sender, source, at)


def _count(status: str) -> int:
    """The row count of a command tag (``UPDATE 3``)."""
    return int(status.split()[-1])


def _merged(rows: Sequence[ImportRow]) -> tuple[list[str], list[str | None], list[str]]:
    """One row per number of a batch, in number order: (numbers, names, attributes as
    JSON). A number twice in a batch ends as two rows in turn would leave it (the last name
    given, the attributes merged in order): PostgreSQL's upsert refuses to touch a row
    twice in one statement, and number order keeps concurrent imports from deadlocking."""
    by_number: dict[str, ImportRow] = {}
    for r in rows:
        seen = by_number.get(r.number)
        if seen is None:
            by_number[r.number] = ImportRow(r.number, r.name, dict(r.attributes))
        else:
            seen.name = r.name if r.name is not None else seen.name
            seen.attributes.update(r.attributes)
    ordered = sorted(by_number.values(), key=lambda r: r.number.encode())
    return (
        [r.number for r in ordered],
        [r.name for r in ordered],
        [json.dumps(r.attributes, ensure_ascii=False) for r in ordered],
    )


class PgCampaignStore:
    """The campaign side on the PostgreSQL database of ``pool()``, claiming as ``claims``.

    ``pool``: gives the node's asyncpg pool, the one its PgStore opened (the stores are
    built before any I/O, so it is read at each call): ``PgCampaignStore(lambda:
    store.pool, store.claims)``."""

    def __init__(self, pool: Callable[[], Any], claims: ClaimSettings | None = None) -> None:
        self._pool = pool
        self.claims = claims or ClaimSettings()
        """This node's id and claim length (gateway.store.claims): the message store's."""

    @property
    def pool(self) -> Any:
        return self._pool()

    async def open(self) -> None:
        """Bring the schema up to date (PgStore.open has done it already: then this finds
        nothing to do)."""
        async with self.pool.acquire() as conn:
            await migrate(conn)

    # -- lists, contacts, imports ------------------------------------------------------------

    async def create_list(self, name: str, at: float, account: str = "") -> ContactList:
        list_id = await self.pool.fetchval(
            "INSERT INTO contact_lists(name, created_at, account) VALUES ($1, $2, $3) RETURNING id",
            name,
            at,
            account,
        )
        return ContactList(list_id, name, 0, at, account)

    async def contact_lists(self) -> list[ContactList]:
        return [ContactList(*r) for r in await self.pool.fetch(_LIST + " ORDER BY l.id")]

    async def get_list(self, list_id: int) -> ContactList | None:
        row = await self.pool.fetchrow(_LIST + " AND l.id = $1", list_id)
        return ContactList(*row) if row is not None else None

    async def import_rows(
        self,
        list_id: int,
        rows: Sequence[ImportRow],
        opt_in_source: str,
        at: float,
        progress: ImportJob | None = None,
    ) -> None:
        numbers, names, attributes = _merged(rows)
        named = [i for i, name in enumerate(names) if name is not None]
        unnamed = [i for i, name in enumerate(names) if name is None]
        async with self.pool.acquire() as conn, conn.transaction():
            if named:
                await conn.execute(
                    "INSERT INTO contacts(number, name, attributes, created_at, updated_at)"
                    " SELECT n, nm, a::jsonb, $4, $4"
                    " FROM unnest($1::text[], $2::text[], $3::text[]) AS r(n, nm, a)"
                    " ON CONFLICT (number) DO UPDATE SET name = excluded.name,"
                    " attributes = contacts.attributes || excluded.attributes,"
                    " updated_at = excluded.updated_at",
                    [numbers[i] for i in named],
                    [names[i] for i in named],
                    [attributes[i] for i in named],
                    at,
                )
            if unnamed:
                await conn.execute(
                    "INSERT INTO contacts(number, name, attributes, created_at, updated_at)"
                    " SELECT n, '', a::jsonb, $3, $3 FROM unnest($1::text[], $2::text[]) AS r(n, a)"
                    " ON CONFLICT (number) DO UPDATE SET"
                    " attributes = contacts.attributes || excluded.attributes,"
                    " updated_at = excluded.updated_at",
                    [numbers[i] for i in unnamed],
                    [attributes[i] for i in unnamed],
                    at,
                )
            if numbers:
                await conn.execute(
                    "INSERT INTO list_members(list_id, number, opt_in_source, opt_in_at)"
                    " SELECT $1, n, $2, $3 FROM unnest($4::text[]) AS r(n)"
                    " ON CONFLICT (list_id, number) DO UPDATE SET"
                    " opt_in_source = excluded.opt_in_source, opt_in_at = excluded.opt_in_at",
                    list_id,
                    opt_in_source,
                    at,
                    numbers,
                )
            if progress is not None:
                await self._save_import(conn, progress)

    async def save_import(self, job: ImportJob) -> None:
        async with self.pool.acquire() as conn:
            await self._save_import(conn, job)

    async def _save_import(self, conn: Any, job: ImportJob) -> None:
        columns = store_rows.IMPORT_RECORD_COLUMNS
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in (name.strip() for name in columns.split(","))
        )
        await conn.execute(
            f"INSERT INTO contact_imports({columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
            f" $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (id) DO UPDATE SET {updates}",
            *store_rows.import_record(job, self.claims, time.time()),
        )

    async def get_import(self, import_id: str) -> ImportJob | None:
        row = await self.pool.fetchrow(
            f"SELECT {store_rows.IMPORT_COLUMNS} FROM contact_imports WHERE id = $1",
            import_id,
        )
        return store_rows.import_job(row) if row is not None else None

    async def fail_running_imports(self, reason: str, at: float, *, foreign: bool = False) -> int:
        # foreign: only another node's (nobody's, or lapsed), never this node's own.
        claimable = (
            "(claimed_by IS NULL OR (claimed_by <> $1 AND claim_until <= $2))"
            if foreign
            else CLAIMABLE
        )
        status = await self.pool.execute(
            "UPDATE contact_imports SET status = $3, failure = $4, finished_at = $2,"
            f" claimed_by = NULL, claim_until = NULL WHERE status = $5 AND {claimable}",
            self.claims.node_id,
            at,
            IMPORT_FAILED,
            reason,
            IMPORT_RUNNING,
        )
        return _count(status)

    async def memberships(self, number: str) -> list[ListMembership]:
        rows = await self.pool.fetch(
            "SELECT m.list_id, l.name, m.opt_in_source, m.opt_in_at FROM list_members m"
            " JOIN contact_lists l ON l.id = m.list_id WHERE m.number = $1"
            " AND l.deleted_at IS NULL ORDER BY m.list_id",
            number,
        )
        return [ListMembership(*r) for r in rows]

    async def opt_outs_of(self, number: str) -> list[OptOutRecord]:
        rows = await self.pool.fetch(
            "SELECT sender, source, created_at FROM opt_outs WHERE number = $1"
            " ORDER BY created_at, sender",
            number,
        )
        return [_opt_out(*r) for r in rows]

    async def tags_of(self, number: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT tag FROM contact_tags WHERE number = $1 ORDER BY created_at, tag", number
        )
        return [r[0] for r in rows]

    async def contacts_by_number(self, numbers: Sequence[str]) -> dict[str, Contact]:
        rows = await self.pool.fetch(
            _CONTACT + " WHERE number = ANY($1::text[])", list(dict.fromkeys(numbers))
        )
        return {r[0]: _contact(r) for r in rows}

    async def search_contacts(
        self, q: str | None, lists: Sequence[int] | None, after: str, limit: int
    ) -> list[Contact]:
        where = ["c.number > $1"]
        params: list[Any] = [after]
        if q:
            params.append(store_rows.like_pattern(q))
            clauses = [f"c.name ILIKE ${len(params)} ESCAPE '\\'"]
            digits = q.lstrip("+")
            if digits.isdigit():
                params.append(store_rows.like_pattern(digits))
                clauses.append(f"c.number LIKE ${len(params)} ESCAPE '\\'")
            where.append(f"({' OR '.join(clauses)})")
        if lists is not None:
            if not lists:
                return []
            params.append(list(lists))
            where.append(_member_of(len(params), "c.number"))
        params.append(limit)
        rows = await self.pool.fetch(
            "SELECT c.number, c.name, c.attributes, c.created_at FROM contacts c"
            f" WHERE {' AND '.join(where)} ORDER BY c.number LIMIT ${len(params)}",
            *params,
        )
        return [_contact(r) for r in rows]

    async def update_contact(
        self, number: str, name: str | None, attributes: dict[str, str | None], at: float
    ) -> Contact | None:
        # A null removes its key (json_patch on SQLite): merged, then the nulls stripped
        # (attributes hold strings only, so every null is one of the patch's).
        row = await self.pool.fetchrow(
            "UPDATE contacts SET name = coalesce($1, name),"
            " attributes = jsonb_strip_nulls(attributes || $2::jsonb), updated_at = $3"
            " WHERE number = $4 RETURNING number, name, attributes, created_at",
            name,
            json.dumps(attributes, ensure_ascii=False),
            at,
            number,
        )
        return _contact(row) if row is not None else None

    async def delete_contact(self, number: str, lists: Sequence[int] | None) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            if lists is None:
                left = 0
                removed = _count(
                    await conn.execute("DELETE FROM list_members WHERE number = $1", number)
                )
            else:
                removed = _count(
                    await conn.execute(
                        "DELETE FROM list_members WHERE number = $1"
                        " AND list_id = ANY($2::bigint[])",
                        number,
                        list(lists),
                    )
                )
                left = await conn.fetchval(
                    "SELECT count(*) FROM list_members m JOIN contact_lists l"
                    " ON l.id = m.list_id WHERE m.number = $1 AND l.deleted_at IS NULL",
                    number,
                )
            if left:
                return removed > 0
            # In no list any more: its name, attributes and tags are forgotten; its
            # opt-outs stay (compliance: a STOP outlives the contact).
            removed += _count(await conn.execute("DELETE FROM contacts WHERE number = $1", number))
            await conn.execute("DELETE FROM contact_tags WHERE number = $1", number)
            return removed > 0

    async def delete_list(self, list_id: int, at: float) -> int | None:
        async with self.pool.acquire() as conn, conn.transaction():
            # The list's row locked first: two deletions of one list queue; the checks
            # and the mark are one transaction.
            found = await conn.fetchval(
                "SELECT id FROM contact_lists WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
                list_id,
            )
            if found is None:
                return None
            running = await conn.fetchval(
                "SELECT id FROM contact_imports WHERE list_id = $1 AND status = $2"
                " ORDER BY id LIMIT 1",
                list_id,
                IMPORT_RUNNING,
            )
            if running is not None:
                raise ListInUse(f"import {running} is still running into this list")
            using = await conn.fetchrow(
                "SELECT id, status FROM campaigns WHERE status IN ('draft', 'scheduled')"
                " AND EXISTS (SELECT 1 FROM json_array_elements_text(spec -> 'lists') v"
                " WHERE v = $1::text) ORDER BY id LIMIT 1",
                str(list_id),
            )
            if using is not None:
                raise ListInUse(
                    f"campaign {using[0]} ({using[1]}) takes its audience from this list;"
                    " cancel it first"
                )
            await conn.execute(
                "UPDATE contact_lists SET deleted_at = $1 WHERE id = $2", at, list_id
            )
        return await self.purge_deleted_list(list_id)

    async def purge_deleted_list(self, list_id: int) -> int:
        removed = 0
        while True:
            page = _count(
                await self.pool.execute(
                    "DELETE FROM list_members WHERE list_id = $1 AND number IN"
                    " (SELECT number FROM list_members WHERE list_id = $1 LIMIT $2)",
                    list_id,
                    DELETE_PAGE,
                )
            )
            removed += page
            if page < DELETE_PAGE:
                return removed

    async def deleted_lists_with_members(self) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT l.id FROM contact_lists l WHERE l.deleted_at IS NOT NULL"
            " AND EXISTS (SELECT 1 FROM list_members m WHERE m.list_id = l.id) ORDER BY l.id"
        )
        return [r[0] for r in rows]

    async def opt_outs(
        self, lists: Sequence[int] | None, after: tuple[str, str], limit: int
    ) -> list[tuple[str, OptOutRecord]]:
        where = "(o.number, o.sender) > ($1, $2)"
        params: list[Any] = list(after)
        if lists is not None:
            if not lists:
                return []
            params.append(list(lists))
            where += " AND " + _member_of(len(params), "o.number")
        params.append(limit)
        rows = await self.pool.fetch(
            f"SELECT o.number, o.sender, o.source, o.created_at FROM opt_outs o WHERE {where}"
            f" ORDER BY o.number, o.sender LIMIT ${len(params)}",
            *params,
        )
        return [(n, _opt_out(s, src, at)) for n, s, src, at in rows]

    # -- message templates -------------------------------------------------------------------

    async def save_template(self, template: MessageTemplate) -> None:
        t = template
        await self.pool.execute(
            "INSERT INTO message_templates(id, account, name, text, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET"
            " account = excluded.account, name = excluded.name, text = excluded.text,"
            " created_at = excluded.created_at, updated_at = excluded.updated_at",
            t.id,
            t.account,
            t.name,
            t.text,
            t.created_at,
            t.updated_at,
        )

    async def get_template(self, template_id: str) -> MessageTemplate | None:
        row = await self.pool.fetchrow(_TEMPLATE + " WHERE id = $1", template_id)
        return MessageTemplate(*row) if row is not None else None

    async def templates(self, account: str | None) -> list[MessageTemplate]:
        if account is None:
            rows = await self.pool.fetch(_TEMPLATE + " ORDER BY id")
        else:
            rows = await self.pool.fetch(_TEMPLATE + " WHERE account = $1 ORDER BY id", account)
        return [MessageTemplate(*r) for r in rows]

    async def delete_template(self, template_id: str) -> bool:
        status = await self.pool.execute("DELETE FROM message_templates WHERE id = $1", template_id)
        return _count(status) == 1

    # -- campaigns ---------------------------------------------------------------------------

    async def save_campaign(self, campaign: CampaignRecord) -> None:
        # A replaced record is a new one: with no claim (as SQLite's INSERT OR REPLACE).
        columns = [c.strip() for c in store_rows.CAMPAIGN_COLUMNS.split(",")]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
        await self.pool.execute(
            f"INSERT INTO campaigns({store_rows.CAMPAIGN_COLUMNS}) VALUES ({marks})"
            f" ON CONFLICT (id) DO UPDATE SET {updates}, claimed_by = NULL, claim_until = NULL",
            *store_rows.campaign_row(campaign),
        )

    async def replace_draft(self, campaign: CampaignRecord) -> bool:
        c = campaign
        status = await self.pool.execute(
            "UPDATE campaigns SET name = $1, sender = $2, text = $3, spec = $4, start_at = $5"
            " WHERE id = $6 AND status = 'draft'",
            c.name,
            c.sender,
            c.text,
            json.dumps(c.spec, ensure_ascii=False),
            c.start_at,
            c.id,
        )
        return _count(status) == 1

    async def get_campaign(self, campaign_id: str) -> CampaignRecord | None:
        row = await self.pool.fetchrow(_CAMPAIGN + " WHERE id = $1", campaign_id)
        return store_rows.campaign(row) if row is not None else None

    async def campaigns(self, statuses: Sequence[str] | None = None) -> list[CampaignRecord]:
        if statuses is None:
            rows = await self.pool.fetch(_CAMPAIGN + " ORDER BY created_at, id")
        else:
            rows = await self.pool.fetch(
                _CAMPAIGN + " WHERE status = ANY($1::text[]) ORDER BY created_at, id",
                list(statuses),
            )
        return [store_rows.campaign(r) for r in rows]

    async def claim_campaign(self, campaign_id: str, now: float) -> bool:
        status = await self.pool.execute(
            "UPDATE campaigns SET claimed_by = $1, claim_until = $4 WHERE id = $3"
            f" AND status IN ('running', 'scheduled') AND {CLAIMABLE}",
            self.claims.node_id,
            now,
            campaign_id,
            self.claims.until(now),
        )
        return _count(status) == 1

    async def set_campaign_status(
        self, campaign_id: str, status: str, at: float, *, expect: Sequence[str]
    ) -> CampaignRecord | None:
        row = await self.pool.fetchrow(
            "UPDATE campaigns SET status = $1,"
            " started_at = CASE WHEN $1 = 'running' THEN coalesce(started_at, $2)"
            " ELSE started_at END,"
            " finished_at = CASE WHEN $1 IN ('done', 'cancelled') THEN coalesce(finished_at, $2)"
            " ELSE finished_at END"
            f" WHERE id = $3 AND status = ANY($4::text[]) RETURNING {store_rows.CAMPAIGN_COLUMNS}",
            status,
            at,
            campaign_id,
            list(expect),
        )
        return store_rows.campaign(row) if row is not None else None

    async def fix_audience(
        self,
        campaign_id: str,
        lists: Sequence[int],
        tags: Sequence[str],
        responders_of: tuple[str, str | None] | None = None,
        clickers_of: str | None = None,
    ) -> int:
        fixed = await self.pool.fetchval(
            "SELECT recipients FROM campaign_audience_fixed WHERE campaign_id = $1", campaign_id
        )
        if fixed is not None:
            return int(fixed)
        # Page by page, each its own transaction, copied by the server (the numbers never
        # cross into Python). A stop half-way is harmless: the pages skip numbers already
        # there, and the audience is marked fixed last.
        sources: list[tuple[str, Any]] = [
            ("list_members WHERE list_id = $2::bigint", list_id) for list_id in lists
        ]
        sources += [("contact_tags WHERE tag = $2::text", tag) for tag in tags]
        for source, key in sources:
            after = ""
            while True:
                row = await self.pool.fetchrow(
                    f"WITH page AS (SELECT number FROM {source} AND number > $3"
                    " ORDER BY number LIMIT $4), copied AS (INSERT INTO"
                    " campaign_recipients(campaign_id, number) SELECT $1, number FROM page"
                    ' ON CONFLICT DO NOTHING) SELECT max(number COLLATE "C"), count(*)'
                    " FROM page",
                    campaign_id,
                    key,
                    after,
                    AUDIENCE_PAGE,
                )
                if row[1] < AUDIENCE_PAGE:
                    break
                after = row[0]
        async with self.pool.acquire() as conn, conn.transaction():
            # The campaign's row locked: two nodes finishing at once (a takeover) queue,
            # and the second finds the audience fixed.
            await conn.execute("SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE", campaign_id)
            done = await conn.fetchval(
                "SELECT recipients FROM campaign_audience_fixed WHERE campaign_id = $1",
                campaign_id,
            )
            if done is not None:
                return int(done)
            if responders_of is not None:
                source_campaign, keyword = responders_of
                sql = (
                    "INSERT INTO campaign_recipients(campaign_id, number)"
                    " SELECT $1, i.source FROM interactions i WHERE i.campaign_id = $2"
                    f" AND {RESPONSE}"
                )
                params: list[Any] = [campaign_id, source_campaign]
                if keyword is not None:
                    sql += " AND upper(i.keyword) = upper($3)"
                    params.append(keyword)
                await conn.execute(sql + " ON CONFLICT DO NOTHING", *params)
            if clickers_of is not None:
                # The clickers, as campaign_counts defines them (people's requests only).
                await conn.execute(
                    "INSERT INTO campaign_recipients(campaign_id, number)"
                    " SELECT DISTINCT $1, number FROM link_clicks WHERE campaign_id = $2"
                    " AND NOT bot ON CONFLICT DO NOTHING",
                    campaign_id,
                    clickers_of,
                )
            total = await conn.fetchval(
                "SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1", campaign_id
            )
            await conn.execute(
                "INSERT INTO campaign_audience_fixed(campaign_id, recipients) VALUES ($1, $2)",
                campaign_id,
                total,
            )
            await conn.execute(
                "UPDATE campaigns SET recipients = $1 WHERE id = $2", total, campaign_id
            )
            return int(total)

    async def recipients_after(self, campaign_id: str, cursor: str | None, limit: int) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT number FROM campaign_recipients WHERE campaign_id = $1 AND number > $2"
            " ORDER BY number LIMIT $3",
            campaign_id,
            cursor or "",
            limit,
        )
        return [r[0] for r in rows]

    async def already_messaged(self, campaign_id: str, numbers: Sequence[str]) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT DISTINCT dest FROM messages WHERE dest = ANY($1::text[]) AND campaign_id = $2",
            list(dict.fromkeys(numbers)),
            campaign_id,
        )
        return {r[0] for r in rows}

    async def advance_campaign(
        self, campaign_id: str, cursor: str, handled: int, opted_out: int, invalid: int
    ) -> None:
        await self.pool.execute(
            "UPDATE campaigns SET cursor = $1, handled = handled + $2,"
            " skipped_opted_out = skipped_opted_out + $3,"
            " skipped_invalid = skipped_invalid + $4 WHERE id = $5",
            cursor,
            handled,
            opted_out,
            invalid,
            campaign_id,
        )

    async def defer_recipients(
        self, campaign_id: str, waiting: Sequence[tuple[str, float]]
    ) -> None:
        due = dict(waiting)  # a number twice: its last time, as rows in turn would leave it
        if not due:
            return
        numbers = sorted(due, key=str.encode)
        await self.pool.execute(
            "INSERT INTO campaign_deferred(campaign_id, number, due_at)"
            " SELECT $1, n, d FROM unnest($2::text[], $3::float8[]) AS r(n, d)"
            " ON CONFLICT (campaign_id, number) DO UPDATE SET due_at = excluded.due_at",
            campaign_id,
            numbers,
            [due[n] for n in numbers],
        )

    async def due_recipients(self, campaign_id: str, now: float, limit: int) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT number FROM campaign_deferred WHERE campaign_id = $1 AND due_at <= $2"
            " ORDER BY due_at, number LIMIT $3",
            campaign_id,
            now,
            limit,
        )
        return [r[0] for r in rows]

    async def next_due(self, campaign_id: str) -> float | None:
        due: float | None = await self.pool.fetchval(
            "SELECT min(due_at) FROM campaign_deferred WHERE campaign_id = $1", campaign_id
        )
        return due

    async def deferred_count(self, campaign_id: str) -> int:
        count = await self.pool.fetchval(
            "SELECT count(*) FROM campaign_deferred WHERE campaign_id = $1", campaign_id
        )
        return int(count)

    async def advance_deferred(
        self,
        campaign_id: str,
        numbers: Sequence[str],
        now: float,
        handled: int,
        opted_out: int,
        invalid: int,
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM campaign_deferred WHERE campaign_id = $1 AND due_at <= $2"
                " AND number = ANY($3::text[])",
                campaign_id,
                now,
                list(numbers),
            )
            await conn.execute(
                "UPDATE campaigns SET handled = handled + $1,"
                " skipped_opted_out = skipped_opted_out + $2,"
                " skipped_invalid = skipped_invalid + $3 WHERE id = $4",
                handled,
                opted_out,
                invalid,
                campaign_id,
            )

    async def unsent_count(self, campaign_id: str) -> int:
        count = await self.pool.fetchval(
            "SELECT count(*) FROM messages WHERE status IN ('accepted', 'queued')"
            " AND campaign_id = $1",
            campaign_id,
        )
        return int(count)

    async def campaign_statuses(self, campaign_id: str) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT status, count(*) FROM messages WHERE campaign_id = $1 GROUP BY status",
            campaign_id,
        )
        return {status: count for status, count in rows}

    async def campaign_clicks(
        self, campaign_id: str, after: tuple[float, int], limit: int
    ) -> list[CampaignClick]:
        rows = await self.pool.fetch(
            "SELECT c.id, c.at, c.number, c.code, l.target, c.user_agent, c.bot"
            " FROM link_clicks c LEFT JOIN links l ON l.code = c.code"
            " WHERE c.campaign_id = $1 AND (c.at, c.id) > ($2, $3) ORDER BY c.at, c.id LIMIT $4",
            campaign_id,
            after[0],
            after[1],
            limit,
        )
        return [store_rows.campaign_click(r) for r in rows]

    async def reply_figures(self, campaign_id: str) -> ReplyFigures:
        # Responses by keyword, and each responder's first response after the campaign's
        # first message to them (as on SQLite).
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            per_keyword = {
                keyword: count
                for keyword, count in await conn.fetch(
                    "SELECT i.keyword, count(*) FROM interactions i WHERE i.campaign_id = $1"
                    f" AND i.keyword IS NOT NULL AND i.keyword <> '' AND {RESPONSE}"
                    " GROUP BY i.keyword ORDER BY i.keyword",
                    campaign_id,
                )
            }
            firsts = await conn.fetch(
                "SELECT min(i.received_at) - (SELECT min(m.created_at) FROM messages m"
                "  WHERE m.dest = i.source AND m.campaign_id = $1)"
                f" FROM interactions i WHERE i.campaign_id = $1 AND {RESPONSE}"
                " GROUP BY i.source",
                campaign_id,
            )
        seconds = sorted(max(0.0, r[0]) for r in firsts if r[0] is not None)
        return ReplyFigures(per_keyword=per_keyword, seconds_to_first_reply=seconds)


def _member_of(list_param: int, column: str) -> str:
    """A condition keeping ``column`` to members of the lists in parameter ``list_param``
    (a bigint array): a semi-join the planner takes from either side."""
    return (
        f"EXISTS (SELECT 1 FROM list_members m WHERE m.number = {column}"
        f" AND m.list_id = ANY(${list_param}::bigint[]))"
    )


def _kept_ports(store: PgCampaignStore) -> CampaignSide:
    """The ports this store keeps, checked by mypy against gateway.store.ports (a
    signature that drifts from its port fails the type check)."""
    return store
