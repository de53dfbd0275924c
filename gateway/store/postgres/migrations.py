"""The PostgreSQL schema, as numbered migrations applied once each, in order.

``schema_migrations`` keeps the versions applied. :func:`migrate` takes a session advisory
lock (``pg_advisory_lock``) first, so nodes starting together apply each migration once:
the second waits for the first and then finds nothing left to do. Each migration runs in
its own transaction with its row in ``schema_migrations``. A database migrated by a newer
smsgw (a version this one does not know) is refused rather than written to.

A migration, once released, is never edited: a change is a new migration appended to
:data:`MIGRATIONS`. Times are epoch seconds (``double precision``), as the ports take them;
ids that leave the process come from sequences (never given twice, even after a rollback).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from gateway.logs import log_event
from gateway.store.base import StoreError

log = logging.getLogger(__name__)

LOCK_KEY: Final = 0x736D_7367_7700_0001
"""The advisory lock key of migrations (``smsgw`` in ASCII, then 1), one per database."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


class SchemaTooNew(StoreError):
    """The database was migrated by a newer smsgw."""


V1: Final = """
CREATE TABLE messages (
    id text PRIMARY KEY,
    account text NOT NULL,
    client_ref text,
    sender text NOT NULL,
    dest text NOT NULL,
    text text NOT NULL,
    encoding text NOT NULL,
    parts integer NOT NULL,
    carrier text NOT NULL,
    priority integer NOT NULL,
    campaign_id text,
    callback_url text,
    validity_until double precision,
    scheduled_at double precision,
    registered_delivery boolean NOT NULL,
    status text NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    possible_duplicate boolean NOT NULL DEFAULT false,
    error text,
    claimed_by text,
    claim_until double precision
);
CREATE INDEX messages_pending ON messages(id) WHERE status IN ('accepted', 'queued');
CREATE INDEX messages_claimed ON messages(claimed_by) WHERE claimed_by IS NOT NULL;
CREATE INDEX messages_campaign ON messages(campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX messages_dest ON messages(dest);
CREATE INDEX messages_client_ref ON messages(client_ref) WHERE client_ref IS NOT NULL;
CREATE INDEX messages_submitted ON messages(carrier, validity_until)
    WHERE status = 'submitted';
CREATE TABLE parts (
    message_id text NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    part integer NOT NULL,
    status text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    carrier text,
    carrier_message_id text,
    receipt_key text,
    command_status integer,
    submitted_at double precision,
    done_at double precision,
    retry_at double precision,
    error text,
    PRIMARY KEY (message_id, part)
);
CREATE INDEX parts_receipt ON parts(carrier, receipt_key) WHERE receipt_key IS NOT NULL;
CREATE TABLE links (
    code text PRIMARY KEY,
    message_id text NOT NULL,
    campaign_id text,
    number text NOT NULL,
    target text NOT NULL,
    created_at double precision NOT NULL
);
CREATE INDEX links_created ON links(created_at);
CREATE TABLE receipts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    carrier text NOT NULL,
    receipt_key text NOT NULL,
    carrier_message_id text NOT NULL,
    status text NOT NULL,
    state text NOT NULL,
    error text,
    raw text NOT NULL,
    received_at double precision NOT NULL,
    message_id text,
    part integer
);
CREATE INDEX receipts_unmatched ON receipts(carrier, receipt_key) WHERE message_id IS NULL;
CREATE INDEX receipts_message ON receipts(message_id) WHERE message_id IS NOT NULL;
CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id text NOT NULL,
    part integer,
    at double precision NOT NULL,
    status text NOT NULL,
    detail text NOT NULL
);
CREATE INDEX events_message ON events(message_id);
CREATE TABLE opt_outs (
    number text NOT NULL,
    sender text NOT NULL,
    source text NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (number, sender)
);
CREATE TABLE idempotency (
    account text NOT NULL,
    key text NOT NULL,
    request_hash text NOT NULL,
    status integer NOT NULL,
    body text NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (account, key)
);
CREATE INDEX idempotency_created ON idempotency(created_at);
CREATE TABLE callbacks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url text NOT NULL,
    payload text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_at double precision NOT NULL,
    last_error text,
    created_at double precision NOT NULL,
    signer text,
    claimed_by text,
    claim_until double precision
);
CREATE INDEX callbacks_due ON callbacks(next_at);
CREATE TABLE front_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account text NOT NULL,
    kind text NOT NULL,
    payload text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_at double precision NOT NULL,
    created_at double precision NOT NULL,
    claimed_by text,
    claim_until double precision
);
CREATE INDEX front_outbox_due ON front_outbox(account, next_at);
CREATE TABLE front_parts (
    part_id text PRIMARY KEY,
    message_id text NOT NULL,
    account text NOT NULL,
    source text NOT NULL,
    destination text NOT NULL,
    ref integer NOT NULL,
    total integer NOT NULL,
    seq integer NOT NULL,
    pdu bytea NOT NULL,
    received_at double precision NOT NULL,
    state text NOT NULL
);
CREATE INDEX front_parts_message ON front_parts(message_id, seq);
"""

V2: Final = """
CREATE TABLE mo_parts (
    carrier text NOT NULL,
    source text NOT NULL,
    destination text NOT NULL,
    ref integer NOT NULL,
    total integer NOT NULL,
    seq integer NOT NULL,
    data_coding integer NOT NULL,
    udh_length integer NOT NULL,
    data bytea NOT NULL,
    received_at double precision NOT NULL,
    PRIMARY KEY (carrier, source, destination, ref, total, seq)
);
CREATE TABLE interactions (
    id bigint PRIMARY KEY,
    carrier text NOT NULL,
    source text NOT NULL,
    destination text NOT NULL,
    text text NOT NULL,
    data_coding integer NOT NULL,
    parts integer NOT NULL,
    parts_received integer NOT NULL,
    missing text NOT NULL DEFAULT '[]',
    received_at double precision NOT NULL,
    completed_at double precision NOT NULL,
    state text NOT NULL,
    keyword text,
    rule text,
    campaign_id text,
    actions text NOT NULL DEFAULT '[]',
    processed_at double precision,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    care_state text NOT NULL DEFAULT 'open',
    assignee text,
    claimed_by text,
    claim_until double precision
);
CREATE SEQUENCE interaction_ids AS bigint OWNED BY interactions.id;
CREATE INDEX interactions_pending ON interactions(id) WHERE state = 'pending';
CREATE INDEX interactions_source ON interactions(source, destination, received_at);
CREATE INDEX interactions_destination ON interactions(destination, id);
CREATE INDEX interactions_subscriber ON interactions(source, id);
CREATE INDEX interactions_campaign ON interactions(campaign_id, id)
    WHERE campaign_id IS NOT NULL;
CREATE INDEX interactions_campaign_source ON interactions(campaign_id, source)
    WHERE campaign_id IS NOT NULL;
CREATE INDEX messages_reply_window ON messages(dest, sender, created_at)
    WHERE campaign_id IS NOT NULL;
CREATE TABLE answers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    interaction_id bigint NOT NULL,
    number text NOT NULL,
    source text NOT NULL,
    campaign_id text,
    question text NOT NULL,
    answer text NOT NULL,
    kind text NOT NULL,
    at double precision NOT NULL
);
CREATE INDEX answers_question ON answers(question, campaign_id);
CREATE TABLE courtesy_replies (
    scope text NOT NULL,
    source text NOT NULL,
    last_at double precision NOT NULL,
    PRIMARY KEY (scope, source)
);
CREATE TABLE inbound_numbers (
    number text PRIMARY KEY,
    config text NOT NULL,
    updated_at double precision NOT NULL
);
CREATE TABLE export_marks (
    scope text PRIMARY KEY,
    last_id bigint NOT NULL,
    updated_at double precision NOT NULL
);
CREATE TABLE digests_sent (
    campaign_id text NOT NULL,
    day text NOT NULL,
    sent_at double precision NOT NULL,
    recipients text NOT NULL,
    PRIMARY KEY (campaign_id, day)
);
CREATE TABLE link_clicks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL,
    campaign_id text,
    number text NOT NULL,
    at double precision NOT NULL,
    user_agent text NOT NULL,
    bot boolean NOT NULL
);
CREATE INDEX link_clicks_campaign ON link_clicks(campaign_id, at)
    WHERE campaign_id IS NOT NULL;
"""
"""MO and the interaction log, survey answers, courtesy replies, API inbound numbers, the
export marks, digests sent, and short-link clicks (gateway.store.postgres.inbound, reports,
links). The contacts an MO tags and reads are migration 3's. As SQLite's tables, with these
choices:

- ``interactions.id`` comes from the sequence ``interaction_ids``, taken by the store under
  a transaction-level advisory lock held until commit (gateway.store.postgres.inbound), so
  ids grow in commit order: a reader paging by id (the export's settled bound, pending
  interactions) never sees a larger id before a smaller one commits.
- ``missing`` and ``actions`` are JSON text kept as written (the reports cast ``actions``
  to jsonb)."""

V3: Final = """
CREATE TABLE contacts (
    number text COLLATE "C" PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    attributes jsonb NOT NULL DEFAULT '{}',
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
CREATE TABLE contact_tags (
    number text COLLATE "C" NOT NULL,
    tag text NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (number, tag)
);
CREATE INDEX contact_tags_tag ON contact_tags(tag, number);
CREATE TABLE contact_lists (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    created_at double precision NOT NULL,
    account text NOT NULL DEFAULT '',
    deleted_at double precision
);
CREATE TABLE list_members (
    list_id bigint NOT NULL,
    number text COLLATE "C" NOT NULL,
    opt_in_source text NOT NULL,
    opt_in_at double precision NOT NULL,
    PRIMARY KEY (list_id, number)
);
CREATE INDEX list_members_number ON list_members(number);
CREATE TABLE contact_imports (
    id text PRIMARY KEY,
    list_id bigint NOT NULL,
    status text NOT NULL,
    opt_in_source text NOT NULL,
    rows integer NOT NULL,
    imported integer NOT NULL,
    rejected integer NOT NULL,
    errors text NOT NULL,
    failure text,
    created_at double precision NOT NULL,
    finished_at double precision,
    claimed_by text,
    claim_until double precision,
    bytes_total bigint NOT NULL DEFAULT 0,
    bytes_read bigint NOT NULL DEFAULT 0
);
CREATE INDEX contact_imports_running ON contact_imports(list_id) WHERE status = 'running';
CREATE TABLE campaigns (
    id text PRIMARY KEY,
    name text NOT NULL,
    sender text NOT NULL,
    text text NOT NULL,
    spec json NOT NULL,
    status text NOT NULL,
    created_at double precision NOT NULL,
    start_at double precision,
    started_at double precision,
    finished_at double precision,
    recipients integer NOT NULL DEFAULT 0,
    cursor text COLLATE "C",
    handled integer NOT NULL DEFAULT 0,
    skipped_opted_out integer NOT NULL DEFAULT 0,
    skipped_invalid integer NOT NULL DEFAULT 0,
    account text NOT NULL DEFAULT '',
    claimed_by text,
    claim_until double precision
);
CREATE INDEX campaigns_live ON campaigns(id) WHERE status IN ('running', 'scheduled');
CREATE TABLE campaign_recipients (
    campaign_id text NOT NULL,
    number text COLLATE "C" NOT NULL,
    PRIMARY KEY (campaign_id, number)
);
CREATE TABLE campaign_deferred (
    campaign_id text NOT NULL,
    number text COLLATE "C" NOT NULL,
    due_at double precision NOT NULL,
    PRIMARY KEY (campaign_id, number)
);
CREATE INDEX campaign_deferred_due ON campaign_deferred(campaign_id, due_at);
CREATE TABLE campaign_audience_fixed (
    campaign_id text PRIMARY KEY,
    recipients integer NOT NULL
);
CREATE TABLE message_templates (
    id text PRIMARY KEY,
    account text NOT NULL,
    name text NOT NULL,
    text text NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
"""
"""The campaign side (gateway.store.postgres.campaigns): contacts and their tags, contact
lists (ids from a sequence: a deleted list's id is never given again) and their members,
CSV imports, campaigns with their audience (fixed once), the recipients waiting for their
send window, and message templates. Numbers walked by a cursor sort bytewise
(``COLLATE "C"``), as SQLite sorts them, whatever the database's locale. The opt-outs the
contact pages list are migration 1's ``opt_outs``."""

V4: Final = """
CREATE TABLE store_identity (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at double precision NOT NULL DEFAULT extract(epoch FROM now())
);
INSERT INTO store_identity DEFAULT VALUES;
CREATE INDEX receipts_unmatched_age ON receipts(received_at) WHERE message_id IS NULL;
CREATE INDEX messages_account ON messages(account, id);
"""
"""The database's identity (one random id made with the schema: a node that finds another id
behind its DSN than the one it opened refuses work, gateway.store.postgres.watch); the index
the pruner finds old unmatched receipts by; pages of one account's messages by id."""

V5: Final = """
CREATE TABLE nodes (
    id text PRIMARY KEY,
    http text NOT NULL,
    front text NOT NULL,
    started_at double precision NOT NULL,
    heartbeat_at double precision NOT NULL,
    until double precision NOT NULL
);
CREATE TABLE bind_slots (
    carrier text NOT NULL,
    slot integer NOT NULL,
    owner text,
    since double precision,
    until double precision,
    PRIMARY KEY (carrier, slot)
);
"""
"""The node registry and the bind-slot leases (gateway.store.leases)."""

V6: Final = """
CREATE INDEX messages_claim ON messages(claim_until) WHERE status IN ('accepted', 'queued');
"""
"""Pending messages nobody holds (NULL) or by the end of their claim: what a running node
takes over (``take_over_pending``) without reading the pending messages it holds itself."""

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "messages, parts, links, receipts, events, opt-outs, idempotency, callbacks,"
        " front outbox and parts",
        V1,
    ),
    Migration(
        2,
        "mo parts, interactions, answers, courtesy replies, inbound numbers, export marks,"
        " digests sent, link clicks",
        V2,
    ),
    Migration(
        3,
        "contacts, contact tags, lists and members, imports, campaigns and their audience,"
        " message templates",
        V3,
    ),
    Migration(
        4,
        "store identity; indexes of unmatched receipts by age and of messages by account",
        V4,
    ),
    Migration(5, "node registry and bind-slot leases", V5),
    Migration(6, "pending messages by the end of their claim (takeover)", V6),
)
"""Every migration, by version (append only)."""

CREATE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(conn: Any, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations ``conn``'s database lacks, in order, under the advisory lock;
    the versions this call applied (empty: it was up to date). SchemaTooNew when the
    database has a version this smsgw does not know."""
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(CREATE_TABLE)
        done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        known = {m.version for m in migrations}
        unknown = sorted(done - known)
        if unknown:
            raise SchemaTooNew(
                f"the database's schema has version {unknown[-1]}, newer than this smsgw's"
                f" {max(known)}: run the newer smsgw (or restore a backup)"
            )
        applied: list[int] = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations(version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration.version)
            log_event(
                log,
                "store.migrated",
                logging.INFO,
                version=migration.version,
                name=migration.name,
            )
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def schema_version(conn: Any) -> int:
    """The newest version applied (0: none)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
    return int(version)
