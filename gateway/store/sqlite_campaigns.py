"""The campaign ports (gateway.store.ports.CampaignSide) on the SQLite store's file.

It rides on the message store's :class:`~gateway.store.sqlite_db.SqliteDb`: the same writer
task (so list imports and campaign chunks go through group commit with everything else) and
the same reader connection. Its tables are created by :meth:`SqliteCampaignStore.open`, after the
message store's.

Schema notes:
- ``list_members`` holds the opt-in record (source, time) of each number in each list.
- ``campaign_recipients`` is the audience, written once when a campaign starts (a
  snapshot: an import into its lists afterwards does not change it). The runner walks it in
  number order with a cursor kept in ``campaigns``; after a crash, the numbers of the chunk
  in progress that already have a message of the campaign are skipped, so no one gets the
  campaign twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, Final

import aiosqlite

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
from gateway.store.claims import CLAIMABLE, ClaimSettings
from gateway.store.sqlite import (
    ADDED_COLUMNS,
    ALL_OPT_OUT,
    MAX_SQL_VARIABLES,
    add_missing_columns,
    read_contacts,
)
from gateway.store.sqlite_db import SqliteDb
from gateway.store.sqlite_reports import RESPONSE

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS contact_lists (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        created_at REAL NOT NULL,
        account TEXT NOT NULL DEFAULT '',
        deleted_at REAL
    )""",
    """CREATE TABLE IF NOT EXISTS list_members (
        list_id INTEGER NOT NULL,
        number TEXT NOT NULL,
        opt_in_source TEXT NOT NULL,
        opt_in_at REAL NOT NULL,
        PRIMARY KEY (list_id, number)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS list_members_number ON list_members(number)",
    """CREATE TABLE IF NOT EXISTS contact_imports (
        id TEXT PRIMARY KEY,
        list_id INTEGER NOT NULL,
        status TEXT NOT NULL,
        opt_in_source TEXT NOT NULL,
        rows INTEGER NOT NULL,
        imported INTEGER NOT NULL,
        rejected INTEGER NOT NULL,
        errors TEXT NOT NULL,
        failure TEXT,
        created_at REAL NOT NULL,
        finished_at REAL,
        claimed_by TEXT,
        claim_until REAL,
        bytes_total INTEGER NOT NULL DEFAULT 0,
        bytes_read INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS campaigns (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        spec TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        start_at REAL,
        started_at REAL,
        finished_at REAL,
        recipients INTEGER NOT NULL DEFAULT 0,
        cursor TEXT,
        handled INTEGER NOT NULL DEFAULT 0,
        skipped_opted_out INTEGER NOT NULL DEFAULT 0,
        skipped_invalid INTEGER NOT NULL DEFAULT 0,
        account TEXT NOT NULL DEFAULT '',
        claimed_by TEXT,
        claim_until REAL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS campaign_recipients (
        campaign_id TEXT NOT NULL,
        number TEXT NOT NULL,
        PRIMARY KEY (campaign_id, number)
    ) WITHOUT ROWID""",
    # Recipients outside their send window (recipient_local, [compliance] quiet_hours),
    # passed by the cursor, each waiting until due_at (gateway.campaigns.runner).
    """CREATE TABLE IF NOT EXISTS campaign_deferred (
        campaign_id TEXT NOT NULL,
        number TEXT NOT NULL,
        due_at REAL NOT NULL,
        PRIMARY KEY (campaign_id, number)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS campaign_deferred_due ON campaign_deferred(campaign_id, due_at)",
    # Saved message templates (gateway.campaigns.preview), each its account's.
    """CREATE TABLE IF NOT EXISTS message_templates (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        name TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID""",
    # Set once the audience is written, so that a restart never writes it again.
    """CREATE TABLE IF NOT EXISTS campaign_audience_fixed (
        campaign_id TEXT PRIMARY KEY,
        recipients INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

FEW_MEMBERS: Final = 50_000
"""Lists with fewer members in all are read whole for a search (some 10 ms at most)."""
DELETE_PAGE: Final = 20_000
"""Members of a deleted list removed per write: a million-member list goes in fifty short
transactions rather than one that holds the writer for seconds."""
AUDIENCE_PAGE: Final = 20_000
"""Numbers per write while a campaign's audience is fixed: tens of milliseconds each."""


def _delete_members_page(list_id: int, conn: sqlite3.Connection) -> int:
    return conn.execute(
        "DELETE FROM list_members WHERE list_id = ? AND number IN"
        " (SELECT number FROM list_members WHERE list_id = ? LIMIT ?)",
        (list_id, list_id, DELETE_PAGE),
    ).rowcount


def _marks(n: int) -> str:
    return ",".join("?" * n)


_quote: Final = json.encoder.encode_basestring
"""The string encoder json.dumps(..., ensure_ascii=False) uses (C, escapes quote, backslash
and control characters)."""


def _encode_attributes(attributes: dict[str, str]) -> str:
    """``json.dumps(attributes, ensure_ascii=False)`` for a dict of strings, the same text
    some five times faster: json.dumps builds an encoder per call and walks the dict in
    general code, which was a sixth of an import's CPU."""
    if not attributes:
        return "{}"
    return "{" + ", ".join([f"{_quote(k)}: {_quote(v)}" for k, v in attributes.items()]) + "}"


# The rows of a batch go in as one JSON array per statement, spread by json_each: SQLite
# reads the array in C instead of binding 4-5 parameters per row from Python tuples (with
# 5,000-row batches: 5.6 -> 4.2 us of CPU per contact for the two tables). The array keeps
# the batch's order, and a number twice in it conflicts with its first row as it would in
# executemany. "WHERE true": an upsert's SELECT needs a WHERE (SQLite's parser).
_UPSERT_NAMED: Final = (
    "INSERT INTO contacts(number, name, attributes, created_at, updated_at)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, ?, ? FROM json_each(?) WHERE true"
    " ON CONFLICT(number) DO UPDATE SET"
    " name = excluded.name,"
    " attributes = json_patch(contacts.attributes, excluded.attributes),"
    " updated_at = excluded.updated_at"
)
_UPSERT_UNNAMED: Final = (
    "INSERT INTO contacts(number, name, attributes, created_at, updated_at)"
    " SELECT value ->> 0, '', value ->> 1, ?, ? FROM json_each(?) WHERE true"
    " ON CONFLICT(number) DO UPDATE SET"
    " attributes = json_patch(contacts.attributes, excluded.attributes),"
    " updated_at = excluded.updated_at"
)
_UPSERT_MEMBER: Final = (
    "INSERT INTO list_members(list_id, number, opt_in_source, opt_in_at)"
    " SELECT ?, value, ?, ? FROM json_each(?) WHERE true"
    " ON CONFLICT(list_id, number) DO UPDATE SET"
    " opt_in_source = excluded.opt_in_source, opt_in_at = excluded.opt_in_at"
)
_json_array: Final = json.JSONEncoder(ensure_ascii=False).encode
_SAVE_IMPORT: Final = (
    f"INSERT OR REPLACE INTO contact_imports({store_rows.IMPORT_RECORD_COLUMNS})"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _copy_audience_page(
    campaign_id: str, source: str, key: Any, after: str, conn: sqlite3.Connection
) -> str | None:
    """Add the next ``AUDIENCE_PAGE`` numbers of ``source`` (a table and its condition on
    ``key``) after ``after`` to the campaign's recipients; the last number copied, or None
    when the source is exhausted."""
    last = conn.execute(
        f"SELECT number FROM {source} AND number > ? ORDER BY number LIMIT 1 OFFSET ?",
        (key, after, AUDIENCE_PAGE - 1),
    ).fetchone()
    bound = "" if last is None else " AND number <= ?"
    conn.execute(
        "INSERT OR IGNORE INTO campaign_recipients(campaign_id, number)"
        f" SELECT ?, number FROM {source} AND number > ?{bound}",
        (campaign_id, key, after) + (() if last is None else (last[0],)),
    )
    return None if last is None else str(last[0])


class SqliteCampaignStore:
    """Campaign tables next to the messages, written through ``store``'s group commit."""

    def __init__(self, db: SqliteDb, claims: ClaimSettings | None = None) -> None:
        self.db = db
        self.claims = claims or ClaimSettings()
        """This node's id and claim length (gateway.store.claims): the message store's."""

    async def open(self) -> None:
        """Create the tables (the message store must be open)."""

        async def op(db: aiosqlite.Connection) -> None:
            for statement in SCHEMA:
                await db.execute(statement)
            await add_missing_columns(db, ADDED_COLUMNS)  # these tables' added columns

        await self.db.write(op)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.db.read(sql, params)

    # -- lists, contacts, imports ------------------------------------------------------------

    async def create_list(self, name: str, at: float, account: str = "") -> ContactList:
        async def op(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "INSERT INTO contact_lists(name, created_at, account) VALUES (?, ?, ?)",
                (name, at, account),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        list_id: int = await self.db.write(op)
        return ContactList(list_id, name, 0, at, account)

    async def contact_lists(self) -> list[ContactList]:
        rows = await self._read(
            "SELECT l.id, l.name, (SELECT count(*) FROM list_members m WHERE m.list_id = l.id),"
            " l.created_at, l.account FROM contact_lists l WHERE l.deleted_at IS NULL"
            " ORDER BY l.id"
        )
        return [ContactList(*r) for r in rows]

    async def get_list(self, list_id: int) -> ContactList | None:
        rows = await self._read(
            "SELECT l.id, l.name, (SELECT count(*) FROM list_members m WHERE m.list_id = l.id),"
            " l.created_at, l.account FROM contact_lists l WHERE l.id = ?"
            " AND l.deleted_at IS NULL",
            (list_id,),
        )
        return ContactList(*rows[0]) if rows else None

    async def import_rows(
        self,
        list_id: int,
        rows: Sequence[ImportRow],
        opt_in_source: str,
        at: float,
        progress: ImportJob | None = None,
    ) -> None:
        self.db.refuse_new_work()  # an import is new work (disk short, file gone)
        # One operation on the writer's thread (plain sqlite3, see SqliteDb.write_in_thread):
        # the rows' JSON is built there too, and the import's record is saved in the same
        # transaction, so a batch costs one commit and one thread hop, not three and five.
        record = None
        if progress is not None:
            record = store_rows.import_record(progress, self.claims, time.time())

        def op(conn: sqlite3.Connection) -> None:
            named: list[tuple[str, str, str]] = []
            unnamed: list[tuple[str, str]] = []
            for r in rows:
                attributes = _encode_attributes(r.attributes)
                if r.name is None:
                    unnamed.append((r.number, attributes))
                else:
                    named.append((r.number, r.name, attributes))
            if named:
                conn.execute(_UPSERT_NAMED, (at, at, _json_array(named)))
            if unnamed:
                conn.execute(_UPSERT_UNNAMED, (at, at, _json_array(unnamed)))
            numbers = _json_array([r.number for r in rows])
            conn.execute(_UPSERT_MEMBER, (list_id, opt_in_source, at, numbers))
            if record is not None:
                conn.execute(_SAVE_IMPORT, record)

        await self.db.write_in_thread(op)

    async def save_import(self, job: ImportJob) -> None:
        row = store_rows.import_record(job, self.claims, time.time())

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(_SAVE_IMPORT, row)

        await self.db.write(op)

    async def get_import(self, import_id: str) -> ImportJob | None:
        rows = await self._read(
            f"SELECT {store_rows.IMPORT_COLUMNS} FROM contact_imports WHERE id = ?", (import_id,)
        )
        return store_rows.import_job(rows[0]) if rows else None

    async def fail_running_imports(self, reason: str, at: float, *, foreign: bool = False) -> int:
        me = self.claims.node_id
        claimable = (
            "(claimed_by IS NULL OR (claimed_by <> ? AND claim_until <= ?))"
            if foreign
            else CLAIMABLE
        )

        async def op(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "UPDATE contact_imports SET status = ?, failure = ?, finished_at = ?,"
                f" claimed_by = NULL, claim_until = NULL WHERE status = ? AND {claimable}",
                (IMPORT_FAILED, reason, at, IMPORT_RUNNING, me, at),
            )
            return cursor.rowcount

        count: int = await self.db.write(op)
        return count

    async def memberships(self, number: str) -> list[ListMembership]:
        rows = await self._read(
            "SELECT m.list_id, l.name, m.opt_in_source, m.opt_in_at FROM list_members m"
            " JOIN contact_lists l ON l.id = m.list_id WHERE m.number = ?"
            " AND l.deleted_at IS NULL ORDER BY m.list_id",
            (number,),
        )
        return [ListMembership(*r) for r in rows]

    async def opt_outs_of(self, number: str) -> list[OptOutRecord]:
        rows = await self._read(
            "SELECT sender, source, created_at FROM opt_outs WHERE number = ? ORDER BY created_at",
            (number,),
        )
        return [OptOutRecord(None if s == ALL_OPT_OUT else s, src, at) for s, src, at in rows]

    async def tags_of(self, number: str) -> list[str]:
        rows = await self._read(
            "SELECT tag FROM contact_tags WHERE number = ? ORDER BY created_at, tag", (number,)
        )
        return [r[0] for r in rows]

    async def contacts_by_number(self, numbers: Sequence[str]) -> dict[str, Contact]:
        return await read_contacts(self.db, numbers)

    async def search_contacts(
        self, q: str | None, lists: Sequence[int] | None, after: str, limit: int
    ) -> list[Contact]:
        where = ["c.number > ?"]
        params: list[Any] = [after]
        if q:
            digits = q.lstrip("+")
            clauses = ["c.name LIKE ? ESCAPE '\\'"]
            params.append(store_rows.like_pattern(q))
            if digits.isdigit():
                clauses.append("c.number LIKE ? ESCAPE '\\'")
                params.append(store_rows.like_pattern(digits))
            where.append(f"({' OR '.join(clauses)})")
        if lists is not None:
            if not lists:
                return []
            where.append(await self._members_of(lists, "c.number"))
            params.extend(lists)
        rows = await self._read(
            "SELECT c.number, c.name, c.attributes, c.created_at FROM contacts c"
            f" WHERE {' AND '.join(where)} ORDER BY c.number LIMIT ?",
            (*params, limit),
        )
        return [Contact(n, name, json.loads(a), (), at) for n, name, a, at in rows]

    async def _members_of(self, lists: Sequence[int], column: str) -> str:
        """A condition keeping ``column`` to members of ``lists`` (their ids bound after the
        query's other parameters), shaped so an account's search costs what its own lists
        hold, not what the whole table holds: lists under FEW_MEMBERS members are read
        whole (milliseconds) and the table probed by number; larger ones are checked row by
        row as the table is walked in number order, which stops once a page is full."""
        marks = _marks(len(lists))
        few = await self._read(
            f"SELECT count(*) FROM (SELECT 1 FROM list_members WHERE list_id IN ({marks}) LIMIT ?)",
            (*lists, FEW_MEMBERS),
        )
        if few[0][0] < FEW_MEMBERS:
            return f"{column} IN (SELECT number FROM list_members WHERE list_id IN ({marks}))"
        return (
            f"EXISTS (SELECT 1 FROM list_members m WHERE m.number = {column}"
            f" AND m.list_id IN ({marks}))"
        )

    async def update_contact(
        self, number: str, name: str | None, attributes: dict[str, str | None], at: float
    ) -> Contact | None:
        patch = json.dumps(attributes, ensure_ascii=False)

        def op(conn: sqlite3.Connection) -> Contact | None:
            row = conn.execute(
                "UPDATE contacts SET name = coalesce(?, name),"
                " attributes = json_patch(attributes, ?), updated_at = ?"
                " WHERE number = ? RETURNING number, name, attributes, created_at",
                (name, patch, at, number),
            ).fetchone()
            if row is None:
                return None
            return Contact(row[0], row[1], json.loads(row[2]), (), row[3])

        found: Contact | None = await self.db.write_in_thread(op)
        return found

    async def delete_contact(self, number: str, lists: Sequence[int] | None) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            if lists is None:
                left = 0
                removed = conn.execute(
                    "DELETE FROM list_members WHERE number = ?", (number,)
                ).rowcount
            else:
                removed = conn.execute(
                    f"DELETE FROM list_members WHERE number = ? AND list_id IN"
                    f" ({_marks(len(lists))})",
                    (number, *lists),
                ).rowcount
                left = conn.execute(
                    "SELECT count(*) FROM list_members m JOIN contact_lists l"
                    " ON l.id = m.list_id WHERE m.number = ? AND l.deleted_at IS NULL",
                    (number,),
                ).fetchone()[0]
            if left:
                return removed > 0
            # In no list any more: its name, attributes and tags are forgotten; its
            # opt-outs stay (compliance: a STOP outlives the contact).
            removed += conn.execute("DELETE FROM contacts WHERE number = ?", (number,)).rowcount
            conn.execute("DELETE FROM contact_tags WHERE number = ?", (number,))
            return removed > 0

        deleted: bool = await self.db.write_in_thread(op)
        return deleted

    async def delete_list(self, list_id: int, at: float) -> int | None:
        def mark(conn: sqlite3.Connection) -> str | None:
            """Why the list cannot go ("" when there is no such list), None once marked.
            Checked in the transaction that deletes: no import or campaign slips in between.
            (Refusals are returned, not raised: a raise here would read as a failed write.)"""
            running = conn.execute(
                "SELECT id FROM contact_imports WHERE list_id = ? AND status = ? LIMIT 1",
                (list_id, IMPORT_RUNNING),
            ).fetchone()
            if running is not None:
                return f"import {running[0]} is still running into this list"
            using = conn.execute(
                "SELECT id, status FROM campaigns WHERE status IN ('draft', 'scheduled')"
                " AND EXISTS (SELECT 1 FROM json_each(spec, '$.lists') WHERE value = ?)"
                " ORDER BY id LIMIT 1",
                (list_id,),
            ).fetchone()
            if using is not None:
                return (
                    f"campaign {using[0]} ({using[1]}) takes its audience from this list;"
                    " cancel it first"
                )
            marked = conn.execute(
                "UPDATE contact_lists SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (at, list_id),
            ).rowcount
            return None if marked else ""

        refused: str | None = await self.db.write_in_thread(mark)
        if refused == "":
            return None
        if refused is not None:
            raise ListInUse(refused)
        return await self.purge_deleted_list(list_id)

    async def purge_deleted_list(self, list_id: int) -> int:
        removed = 0
        while True:
            page: int = await self.db.write_in_thread(partial(_delete_members_page, list_id))
            removed += page
            if page < DELETE_PAGE:
                return removed

    async def deleted_lists_with_members(self) -> list[int]:
        rows = await self._read(
            "SELECT l.id FROM contact_lists l WHERE l.deleted_at IS NOT NULL"
            " AND EXISTS (SELECT 1 FROM list_members m WHERE m.list_id = l.id)"
        )
        return [r[0] for r in rows]

    async def opt_outs(
        self, lists: Sequence[int] | None, after: tuple[str, str], limit: int
    ) -> list[tuple[str, OptOutRecord]]:
        where = "(number, sender) > (?, ?)"
        params: list[Any] = list(after)
        if lists is not None:
            if not lists:
                return []
            where += " AND " + await self._members_of(lists, "o.number")
            params.extend(lists)
        rows = await self._read(
            f"SELECT number, sender, source, created_at FROM opt_outs o WHERE {where}"
            " ORDER BY number, sender LIMIT ?",
            (*params, limit),
        )
        return [
            (n, OptOutRecord(None if s == ALL_OPT_OUT else s, src, at)) for n, s, src, at in rows
        ]

    # -- message templates -------------------------------------------------------------------

    async def save_template(self, template: MessageTemplate) -> None:
        t = template
        row = (t.id, t.account, t.name, t.text, t.created_at, t.updated_at)

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT OR REPLACE INTO message_templates(id, account, name, text, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )

        await self.db.write(op)

    async def get_template(self, template_id: str) -> MessageTemplate | None:
        rows = await self._read(
            "SELECT id, account, name, text, created_at, updated_at FROM message_templates"
            " WHERE id = ?",
            (template_id,),
        )
        return MessageTemplate(*rows[0]) if rows else None

    async def templates(self, account: str | None) -> list[MessageTemplate]:
        if account is None:
            rows = await self._read(
                "SELECT id, account, name, text, created_at, updated_at FROM message_templates"
                " ORDER BY id"
            )
        else:
            rows = await self._read(
                "SELECT id, account, name, text, created_at, updated_at FROM message_templates"
                " WHERE account = ? ORDER BY id",
                (account,),
            )
        return [MessageTemplate(*r) for r in rows]

    async def delete_template(self, template_id: str) -> bool:
        async def op(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute("DELETE FROM message_templates WHERE id = ?", (template_id,))
            return cursor.rowcount == 1

        deleted: bool = await self.db.write(op)
        return deleted

    # -- campaigns ---------------------------------------------------------------------------

    async def save_campaign(self, campaign: CampaignRecord) -> None:
        row = store_rows.campaign_row(campaign)

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                f"INSERT OR REPLACE INTO campaigns({store_rows.CAMPAIGN_COLUMNS})"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )

        await self.db.write(op)

    async def replace_draft(self, campaign: CampaignRecord) -> bool:
        c = campaign
        row = (c.name, c.sender, c.text, json.dumps(c.spec, ensure_ascii=False), c.start_at, c.id)

        async def op(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute(
                "UPDATE campaigns SET name = ?, sender = ?, text = ?, spec = ?, start_at = ?"
                " WHERE id = ? AND status = 'draft'",
                row,
            )
            return cursor.rowcount == 1

        replaced: bool = await self.db.write(op)
        return replaced

    async def get_campaign(self, campaign_id: str) -> CampaignRecord | None:
        rows = await self._read(
            f"SELECT {store_rows.CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?", (campaign_id,)
        )
        return store_rows.campaign(rows[0]) if rows else None

    async def campaigns(self, statuses: Sequence[str] | None = None) -> list[CampaignRecord]:
        if statuses is None:
            rows = await self._read(
                f"SELECT {store_rows.CAMPAIGN_COLUMNS} FROM campaigns ORDER BY created_at, id"
            )
        else:
            rows = await self._read(
                f"SELECT {store_rows.CAMPAIGN_COLUMNS} FROM campaigns"
                f" WHERE status IN ({_marks(len(statuses))}) ORDER BY created_at, id",
                list(statuses),
            )
        return [store_rows.campaign(r) for r in rows]

    async def claim_campaign(self, campaign_id: str, now: float) -> bool:
        me = self.claims.node_id
        values = (me, self.claims.until(now), campaign_id, me, now)

        def op(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute(
                    "UPDATE campaigns SET claimed_by = ?, claim_until = ? WHERE id = ?"
                    f" AND status IN ('running', 'scheduled') AND {CLAIMABLE}",
                    values,
                ).rowcount
                == 1
            )

        claimed: bool = await self.db.write_in_thread(op)
        return claimed

    async def set_campaign_status(
        self, campaign_id: str, status: str, at: float, *, expect: Sequence[str]
    ) -> CampaignRecord | None:
        async def op(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute(
                "UPDATE campaigns SET status = ?,"
                " started_at = CASE WHEN ? = 'running' THEN coalesce(started_at, ?)"
                " ELSE started_at END,"
                " finished_at = CASE WHEN ? IN ('done', 'cancelled') THEN coalesce(finished_at, ?)"
                " ELSE finished_at END"
                f" WHERE id = ? AND status IN ({_marks(len(expect))})",
                (status, status, at, status, at, campaign_id, *expect),
            )
            return cursor.rowcount == 1

        changed: bool = await self.db.write(op)
        if not changed:
            return None
        return await self.get_campaign(campaign_id)

    async def fix_audience(
        self,
        campaign_id: str,
        lists: Sequence[int],
        tags: Sequence[str],
        responders_of: tuple[str, str | None] | None = None,
        clickers_of: str | None = None,
    ) -> int:
        fixed = await self._read(
            "SELECT recipients FROM campaign_audience_fixed WHERE campaign_id = ?", (campaign_id,)
        )
        if fixed:
            count: int = fixed[0][0]
            return count
        # Page by page (each its own short write), so that a million-number audience does
        # not hold the writer, and every other write, for seconds. A crash half-way is
        # harmless: the pages are INSERT OR IGNORE, and the audience is marked fixed last.
        # Each page is copied by SQLite itself (INSERT ... SELECT on the writer's thread):
        # the numbers never cross into Python.
        sources: list[tuple[str, Any]] = [
            ("list_members WHERE list_id = ?", list_id) for list_id in lists
        ]
        sources += [("contact_tags WHERE tag = ?", tag) for tag in tags]
        for source, key in sources:
            after: str | None = ""
            while after is not None:
                after = await self.db.write_in_thread(
                    partial(_copy_audience_page, campaign_id, source, key, after)
                )

        async def op(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "SELECT recipients FROM campaign_audience_fixed WHERE campaign_id = ?",
                (campaign_id,),
            )
            done = await cursor.fetchone()
            if done is not None:
                already: int = done[0]
                return already
            if responders_of is not None:
                source_campaign, keyword = responders_of
                # The responders, as campaign_counts defines them.
                sql = (
                    "INSERT OR IGNORE INTO campaign_recipients(campaign_id, number)"
                    f" SELECT ?, i.source FROM interactions i WHERE i.campaign_id = ?"
                    f" AND {RESPONSE}"
                )
                params: tuple[Any, ...] = (campaign_id, source_campaign)
                if keyword is not None:
                    sql += " AND upper(i.keyword) = upper(?)"
                    params += (keyword,)
                await db.execute(sql, params)
            if clickers_of is not None:
                # The clickers, as campaign_counts defines them (people's requests only).
                await db.execute(
                    "INSERT OR IGNORE INTO campaign_recipients(campaign_id, number)"
                    " SELECT DISTINCT ?, number FROM link_clicks WHERE campaign_id = ?"
                    " AND bot = 0",
                    (campaign_id, clickers_of),
                )
            cursor = await db.execute(
                "SELECT count(*) FROM campaign_recipients WHERE campaign_id = ?", (campaign_id,)
            )
            found = await cursor.fetchone()
            assert found is not None
            total: int = found[0]
            await db.execute(
                "INSERT INTO campaign_audience_fixed(campaign_id, recipients) VALUES (?, ?)",
                (campaign_id, total),
            )
            await db.execute(
                "UPDATE campaigns SET recipients = ? WHERE id = ?", (total, campaign_id)
            )
            return total

        result: int = await self.db.write(op)
        return result

    async def recipients_after(self, campaign_id: str, cursor: str | None, limit: int) -> list[str]:
        rows = await self._read(
            "SELECT number FROM campaign_recipients WHERE campaign_id = ? AND number > ?"
            " ORDER BY number LIMIT ?",
            (campaign_id, cursor or "", limit),
        )
        return [r[0] for r in rows]

    async def already_messaged(self, campaign_id: str, numbers: Sequence[str]) -> set[str]:
        found: set[str] = set()
        unique = list(dict.fromkeys(numbers))
        step = MAX_SQL_VARIABLES - 1
        for start in range(0, len(unique), step):
            chunk = unique[start : start + step]
            rows = await self._read(
                f"SELECT dest FROM messages WHERE dest IN ({_marks(len(chunk))})"
                " AND campaign_id = ?",
                (*chunk, campaign_id),
            )
            found.update(r[0] for r in rows)
        return found

    async def advance_campaign(
        self, campaign_id: str, cursor: str, handled: int, opted_out: int, invalid: int
    ) -> None:
        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                "UPDATE campaigns SET cursor = ?, handled = handled + ?,"
                " skipped_opted_out = skipped_opted_out + ?,"
                " skipped_invalid = skipped_invalid + ? WHERE id = ?",
                (cursor, handled, opted_out, invalid, campaign_id),
            )

        await self.db.write(op)

    async def defer_recipients(
        self, campaign_id: str, waiting: Sequence[tuple[str, float]]
    ) -> None:
        if not waiting:
            return

        async def op(db: aiosqlite.Connection) -> None:
            await db.executemany(
                "INSERT OR REPLACE INTO campaign_deferred(campaign_id, number, due_at)"
                " VALUES (?, ?, ?)",
                [(campaign_id, number, due) for number, due in waiting],
            )

        await self.db.write(op)

    async def due_recipients(self, campaign_id: str, now: float, limit: int) -> list[str]:
        rows = await self._read(
            "SELECT number FROM campaign_deferred WHERE campaign_id = ? AND due_at <= ?"
            " ORDER BY due_at, number LIMIT ?",
            (campaign_id, now, limit),
        )
        return [r[0] for r in rows]

    async def next_due(self, campaign_id: str) -> float | None:
        rows = await self._read(
            "SELECT min(due_at) FROM campaign_deferred WHERE campaign_id = ?", (campaign_id,)
        )
        due: float | None = rows[0][0] if rows else None
        return due

    async def deferred_count(self, campaign_id: str) -> int:
        rows = await self._read(
            "SELECT count(*) FROM campaign_deferred WHERE campaign_id = ?", (campaign_id,)
        )
        count: int = rows[0][0]
        return count

    async def advance_deferred(
        self,
        campaign_id: str,
        numbers: Sequence[str],
        now: float,
        handled: int,
        opted_out: int,
        invalid: int,
    ) -> None:
        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                "DELETE FROM campaign_deferred WHERE campaign_id = ? AND due_at <= ?"
                " AND number IN (SELECT value FROM json_each(?))",
                (campaign_id, now, json.dumps(list(numbers))),
            )
            await db.execute(
                "UPDATE campaigns SET handled = handled + ?,"
                " skipped_opted_out = skipped_opted_out + ?,"
                " skipped_invalid = skipped_invalid + ? WHERE id = ?",
                (handled, opted_out, invalid, campaign_id),
            )

        await self.db.write(op)

    async def unsent_count(self, campaign_id: str) -> int:
        # "+campaign_id": not by the campaign index (every message the campaign ever had)
        # but by the partial index of unsent messages, which the runner keeps short.
        rows = await self._read(
            "SELECT count(*) FROM messages WHERE status IN ('accepted', 'queued')"
            " AND +campaign_id = ?",
            (campaign_id,),
        )
        count: int = rows[0][0]
        return count

    async def campaign_statuses(self, campaign_id: str) -> dict[str, int]:
        rows = await self._read(
            "SELECT status, count(*) FROM messages WHERE campaign_id = ? GROUP BY status",
            (campaign_id,),
        )
        return {status: count for status, count in rows}

    async def campaign_clicks(
        self, campaign_id: str, after: tuple[float, int], limit: int
    ) -> list[CampaignClick]:
        # By the link_clicks_campaign index (campaign_id, at), whose entries end with the id.
        rows = await self._read(
            "SELECT c.id, c.at, c.number, c.code, l.target, c.user_agent, c.bot"
            " FROM link_clicks c LEFT JOIN links l ON l.code = c.code"
            " WHERE c.campaign_id = ? AND (c.at, c.id) > (?, ?) ORDER BY c.at, c.id LIMIT ?",
            (campaign_id, after[0], after[1], limit),
        )
        return [store_rows.campaign_click(r) for r in rows]

    async def reply_figures(self, campaign_id: str) -> ReplyFigures:
        # Responses (RESPONSE: a recipient's MO that is no re-subscription) by keyword, and
        # each responder's first response after the campaign's first message to them.
        per_keyword = {
            keyword: count
            for keyword, count in await self._read(
                "SELECT i.keyword, count(*) FROM interactions i WHERE i.campaign_id = ?"
                f" AND i.keyword IS NOT NULL AND i.keyword != '' AND {RESPONSE}"
                " GROUP BY i.keyword ORDER BY i.keyword",
                (campaign_id,),
            )
        }
        firsts = await self._read(
            "SELECT min(i.received_at) - (SELECT min(m.created_at) FROM messages m"
            "  WHERE m.dest = i.source AND +m.campaign_id = i.campaign_id)"
            f" FROM interactions i WHERE i.campaign_id = ? AND {RESPONSE} GROUP BY i.source",
            (campaign_id,),
        )
        seconds = sorted(max(0.0, r[0]) for r in firsts if r[0] is not None)
        return ReplyFigures(
            per_keyword=per_keyword,
            seconds_to_first_reply=seconds,
        )
