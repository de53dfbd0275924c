"""The embedded store: SQLite in WAL mode through aiosqlite, with group commit.

Writes: every write method becomes an *operation* for the writer task of
:class:`~gateway.store.sqlite_db.SqliteDb` (group commit, see there), which the campaign
tables, short links and the pruner share. Reads use its second connection: WAL lets it
read the last committed state while the writer works.

Schema notes:
- ``parts`` is the receipt map: (carrier, receipt_key) -> (message, part), indexed. It is
  written in the same transaction that records the submit_sm_resp, and never expires.
- every receipt is kept in ``receipts``; one that matches no part yet keeps a NULL
  message_id and is matched when its submit outcome is recorded (receipt before response).
- a part is marked ``submitting`` before its submit_sm leaves; a part still in that state at
  start-up was in flight at a crash and comes back flagged as a possible duplicate.

The rules of a message's journey (a part's moves, a final state sticks, receipts before their
response, a message's status from its parts, what a change emits) are the ledger's
(gateway.core.ledger): the store reads the rows a rule needs, calls it, and writes what it
says. On the hot path a few set-based statements do the same without a read; each names the
ledger function it transcribes, and tests/test_ledger_sql.py compares the two.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar, Unpack

import aiosqlite

from gateway.core import ledger
from gateway.core.ledger import SUBMITTING, PartState
from gateway.core.model import (
    CANCELLED,
    FINAL_STATUSES,
    IncomingReceipt,
    MessageStatus,
    MessageView,
    NewMessage,
    OutboundMessage,
    Replacement,
    StatusChange,
    SubmitOutcome,
)
from gateway.logs import log_event
from gateway.metrics import Histogram
from gateway.store import rows as store_rows
from gateway.store import sql_text
from gateway.store.base import (
    CALLBACK_PARKED_AT,
    EDIT_DONE,
    EDIT_REFUSED,
    EDIT_UNKNOWN,
    FRONT_PART_FAILED,
    FRONT_PART_HELD,
    FRONT_PART_JOINED,
    NO_RECEIPT,
    Callback,
    CallbackView,
    Contact,
    FrontItem,
    FrontPart,
    FrontPartStatus,
    IdempotencyConflict,
    IdempotentAnswer,
    Interaction,
    InteractionOutcome,
    LinkCodeTaken,
    MessageQuery,
    MessageRow,
    MessageSummary,
    MoFacts,
    MoLookup,
    MoPart,
    NewInteraction,
    StoreError,
    StoreUnavailable,
    SurveyAnswer,
)
from gateway.store.claims import CLAIMABLE, ClaimSettings
from gateway.store.health import FreeBytes
from gateway.store.ports import StoreFigures
from gateway.store.retention import INTERACTION_ID_FLOOR, message_id_before
from gateway.store.rows import INTERACTION_COLUMNS
from gateway.store.shared import FrontPartsSettling, log_requeued_taken
from gateway.store.sqlite_db import (
    DbOptions,
    Op,
    SqliteDb,
    SyncOp,
)
from gateway.store.sqlite_db import on_thread as _on_thread
from gateway.store.sqlite_leases import LEASES_SCHEMA
from gateway.store.sqlite_reports import REPORTS_SCHEMA, SqliteReports

log = logging.getLogger("smsgw.store")

T = TypeVar("T")


URGENT_INTERACTIONS: Final = 16
"""``record_interactions`` of at most this many MOs is an urgent write (it goes ahead of
bulk receipts and outcomes): at low rates that halves the p99 from MO to reply (1,000 MO/s:
62-68 ms instead of 140-161 ms); the large batches of a busy link stay in group commits,
where going alone would cost CPU (measured: 8-30 % more per MO when every one was urgent)."""

SCHEMA_VERSION: Final = 1

ADDED_COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    # The HTTP token's account that owns a list or a campaign (gateway.http.auth); '' for
    # those made before accounts, which only admin tokens see.
    ("contact_lists", "account", "TEXT NOT NULL DEFAULT ''"),
    ("campaigns", "account", "TEXT NOT NULL DEFAULT ''"),
    # Handling attempts of an MO that did not finish, and why the last one failed: an
    # interaction that keeps failing is quarantined (gateway.inbound.scheduling).
    ("interactions", "attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("interactions", "last_error", "TEXT"),
    # Whose secrets sign a callback (gateway.signing): the message's account, or the
    # webhook actions' signer; NULL (queued before signatures) goes unsigned.
    ("callbacks", "signer", "TEXT"),
    # A deleted contact list keeps its row (so its id is never given to a new list) with
    # the time it was deleted; its members go.
    ("contact_lists", "deleted_at", "REAL"),
    # Customer care of an MO (gateway.http.interactions): open, answered (a helpdesk reply
    # went) or closed, and who handles it; not its processing state.
    ("interactions", "care_state", "TEXT NOT NULL DEFAULT 'open'"),
    ("interactions", "assignee", "TEXT"),
    # How big an import's file is and how far its parsing got (its progress bar).
    ("contact_imports", "bytes_total", "INTEGER NOT NULL DEFAULT 0"),
    ("contact_imports", "bytes_read", "INTEGER NOT NULL DEFAULT 0"),
    # Claims (gateway.store.claims): the node working on a row, and until when.
    *(
        (table, column, declaration)
        for table in (
            "messages",
            "callbacks",
            "front_outbox",
            "interactions",
            "campaigns",
            "contact_imports",
        )
        for column, declaration in (("claimed_by", "TEXT"), ("claim_until", "REAL"))
    ),
)
"""Columns added to a table after its first release: (table, column, declaration). ``open``
adds each one a database lacks (``ALTER TABLE ... ADD COLUMN``), so a database made by an
earlier version keeps working; a new table needs nothing here (``CREATE TABLE IF NOT
EXISTS``). Append, never reorder; a declaration must be valid for ADD COLUMN (a constant
default, no PRIMARY KEY/UNIQUE)."""

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    client_ref TEXT,
    sender TEXT NOT NULL,
    dest TEXT NOT NULL,
    text TEXT NOT NULL,
    encoding TEXT NOT NULL,
    parts INTEGER NOT NULL,
    carrier TEXT NOT NULL,
    priority INTEGER NOT NULL,
    campaign_id TEXT,
    callback_url TEXT,
    validity_until REAL,
    scheduled_at REAL,
    registered_delivery INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    possible_duplicate INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    claimed_by TEXT,
    claim_until REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_pending ON messages(id)
    WHERE status IN ('accepted', 'queued');
-- Pending messages nobody holds (NULL) or by the end of their claim: what a node takes over
-- while it runs (take_over_pending) without reading the pending messages it holds itself.
CREATE INDEX IF NOT EXISTS messages_claim ON messages(claim_until)
    WHERE status IN ('accepted', 'queued');
CREATE INDEX IF NOT EXISTS messages_campaign ON messages(campaign_id)
    WHERE campaign_id IS NOT NULL;
-- GET /v1/messages?to= and ?client_ref=: one number's, one reference's messages by id.
CREATE INDEX IF NOT EXISTS messages_dest ON messages(dest);
CREATE INDEX IF NOT EXISTS messages_client_ref ON messages(client_ref)
    WHERE client_ref IS NOT NULL;
-- Messages waiting for a receipt, by carrier and end of validity: the no-receipt sweep.
CREATE INDEX IF NOT EXISTS messages_submitted ON messages(carrier, validity_until)
    WHERE status = 'submitted';
-- Short links of campaign messages (gateway.links): written with their message, in its
-- transaction; served by code (the primary key); pruned by age (links_created).
CREATE TABLE IF NOT EXISTS links (
    code TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    campaign_id TEXT,
    number TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_created ON links(created_at);
-- Every request for a short link: a click, or a prefetch (bot = 1: HEAD, known previews).
CREATE TABLE IF NOT EXISTS link_clicks (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL,
    campaign_id TEXT,
    number TEXT NOT NULL,
    at REAL NOT NULL,
    user_agent TEXT NOT NULL,
    bot INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS link_clicks_campaign ON link_clicks(campaign_id, at)
    WHERE campaign_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS parts (
    message_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    carrier TEXT,
    carrier_message_id TEXT,
    receipt_key TEXT,
    command_status INTEGER,
    submitted_at REAL,
    done_at REAL,
    retry_at REAL,
    error TEXT,
    PRIMARY KEY (message_id, part)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS parts_receipt ON parts(carrier, receipt_key)
    WHERE receipt_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY,
    carrier TEXT NOT NULL,
    receipt_key TEXT NOT NULL,
    carrier_message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    raw TEXT NOT NULL,
    received_at REAL NOT NULL,
    message_id TEXT,
    part INTEGER
);
CREATE INDEX IF NOT EXISTS receipts_unmatched ON receipts(carrier, receipt_key)
    WHERE message_id IS NULL;
CREATE INDEX IF NOT EXISTS receipts_message ON receipts(message_id)
    WHERE message_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    part INTEGER,
    at REAL NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_message ON events(message_id);
CREATE TABLE IF NOT EXISTS opt_outs (
    number TEXT NOT NULL,
    sender TEXT NOT NULL,  -- '*' for every sender
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (number, sender)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    account TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (account, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created_at);
CREATE TABLE IF NOT EXISTS callbacks (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    signer TEXT,
    claimed_by TEXT,
    claim_until REAL
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks(next_at);
-- Inbound (MO). Parts of long MOs wait here until their message is whole or times out.
CREATE TABLE IF NOT EXISTS mo_parts (
    carrier TEXT NOT NULL,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    ref INTEGER NOT NULL,
    total INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data_coding INTEGER NOT NULL,
    udh_length INTEGER NOT NULL,
    data BLOB NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (carrier, source, destination, ref, total, seq)
) WITHOUT ROWID;
-- Every MO, whole or timed out, and what was done about it (actions: JSON list).
CREATE TABLE IF NOT EXISTS interactions (
    id INTEGER PRIMARY KEY,
    carrier TEXT NOT NULL,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    text TEXT NOT NULL,
    data_coding INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    parts_received INTEGER NOT NULL,
    missing TEXT NOT NULL DEFAULT '[]',
    received_at REAL NOT NULL,
    completed_at REAL NOT NULL,
    state TEXT NOT NULL,
    keyword TEXT,
    rule TEXT,
    campaign_id TEXT,
    actions TEXT NOT NULL DEFAULT '[]',
    processed_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    care_state TEXT NOT NULL DEFAULT 'open',
    assignee TEXT,
    claimed_by TEXT,
    claim_until REAL
);
CREATE INDEX IF NOT EXISTS interactions_pending ON interactions(id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS interactions_source ON interactions(source, destination, received_at);
CREATE INDEX IF NOT EXISTS interactions_destination ON interactions(destination, id);
-- GET /v1/conversations: one subscriber's MOs by id (interactions_source puts our number
-- before the time, so it cannot give them in order without a sort).
CREATE INDEX IF NOT EXISTS interactions_subscriber ON interactions(source, id);
CREATE INDEX IF NOT EXISTS interactions_campaign ON interactions(campaign_id, id)
    WHERE campaign_id IS NOT NULL;
-- Campaign correlation: the newest MT from one of our numbers to a subscriber.
CREATE INDEX IF NOT EXISTS messages_reply_window ON messages(dest, sender, created_at)
    WHERE campaign_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS contacts (
    number TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contact_tags (
    number TEXT NOT NULL,
    tag TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (number, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contact_tags_tag ON contact_tags(tag, number);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    interaction_id INTEGER NOT NULL,
    number TEXT NOT NULL,
    source TEXT NOT NULL,
    campaign_id TEXT,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_question ON answers(question, campaign_id);
-- Courtesy replies sent, per scope (one of our numbers; later a campaign) and subscriber.
CREATE TABLE IF NOT EXISTS courtesy_replies (
    scope TEXT NOT NULL,
    source TEXT NOT NULL,
    last_at REAL NOT NULL,
    PRIMARY KEY (scope, source)
) WITHOUT ROWID;
-- Inbound numbers managed over the HTTP API (those of the TOML file are not kept here).
CREATE TABLE IF NOT EXISTS inbound_numbers (
    number TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""

FRONT_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS front_outbox (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    created_at REAL NOT NULL,
    claimed_by TEXT,
    claim_until REAL
);
CREATE INDEX IF NOT EXISTS front_outbox_due ON front_outbox(account, next_at);
CREATE TABLE IF NOT EXISTS front_parts (
    part_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    account TEXT NOT NULL,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    ref INTEGER NOT NULL,
    total INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    pdu BLOB NOT NULL,
    received_at REAL NOT NULL,
    state TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS front_parts_message ON front_parts(message_id, seq);
CREATE INDEX IF NOT EXISTS front_parts_held ON front_parts(message_id) WHERE state = 'held';
"""
"""deliver_sm owed to upstream SMPP accounts (gateway.front): receipts and MO; and the parts
of long messages from them, each answered with its own id (``FrontPart``)."""

_INSERT_CALLBACK: Final = (
    "INSERT INTO callbacks(id, url, payload, next_at, created_at, signer) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_STATUS_CALLBACK: Final = (
    "INSERT INTO callbacks(id, url, payload, next_at, created_at, signer)"
    " VALUES (?, ?, ?, ?, ?, (SELECT account FROM messages WHERE id = ?))"
)


CLAIM_TABLES: Final = (
    ("messages", "status IN ('accepted', 'queued')"),
    ("callbacks", ""),
    ("front_outbox", ""),
    ("interactions", "state = 'pending'"),
    ("campaigns", "status IN ('running', 'scheduled')"),
    ("contact_imports", "status = 'running'"),
)
"""Tables whose rows carry claims (gateway.store.claims), each with the condition of its
rows whose claim matters (work still to do; through the table's partial index where it has
one): renewals and releases touch only those."""

CLAIM_CHUNK: Final = 5_000
"""Rows (by id, of one table) per write when claims are renewed or released: ~50 ms of the
writer on a shared disk. 200,000 pending messages renew in ~0.5 s of CPU and 2.5 s of wall
time in 40 writes, with the accepts and outcomes of the moment going in between; in one
statement they held the writer for 2.3 s."""

_TEXT_IDS: Final = frozenset({"messages", "campaigns", "contact_imports"})
"""Tables of ``CLAIM_TABLES`` whose ``id`` is text (the others': an integer)."""

CALLBACK_ID_HWM: Final = "callback_id_hwm"
"""``meta`` key of the highest callback id ever handed out. Callback ids leave the process
(``X-Smsgw-Callback-Id``, on which receivers deduplicate), so they are never reused: each new
callback takes the next id above this mark, never ``max(id) + 1`` (which hands a deleted,
delivered callback's id out again)."""

ALL_OPT_OUT: Final = "*"
"""``opt_outs.sender`` for an opt-out from every sender."""

_EDITABLE: Final = frozenset({MessageStatus.ACCEPTED.value, MessageStatus.QUEUED.value})
"""Message statuses cancel_sm and replace_sm may act on (with no part handed over)."""

_UNSENT: Final = ("accepted", "queued", SUBMITTING)

_NOT_FINAL: Final = "NOT IN ('delivered', 'undeliverable', 'expired', 'rejected', 'failed')"
"""A status that is not final (``ledger.FINAL``), as SQL: a final state sticks. For a
statement run once over many rows: SQLite builds the IN list's lookup table once per run."""

_NOT_FINAL_ROW: Final = f"(status = '{SUBMITTING}' OR status {_NOT_FINAL})"
"""The same for a statement run once per row (executemany), where an IN list builds its
lookup table on every run (OpenEphemeral: twice the VM steps of the whole update): the row
an outcome finds is nearly always ``submitting`` (it was begun), which one comparison
settles, and SQLite evaluates (and builds) the IN list only when it does not."""

_SENT: Final = PartState(SUBMITTING)
"""The state of a part whose outcome is being recorded (it was begun), or at least not a
final one: a final part takes no outcome, and its message's status does not move either
(the single-part settle is sticky), so the new state folded from here is exact."""

_ANSWERED: Final = PartState(MessageStatus.SUBMITTED)
"""Likewise for a part a receipt matched (it has a receipt key: it was submitted)."""

Known = tuple[MessageStatus, str | None]
"""A single-part message's part's new state (``ledger.PartState``'s fields, as a plain
tuple: thousands a batch), for ``_SETTLE_SINGLE``."""

_RETURNING: Final = sqlite3.sqlite_version_info >= (3, 35, 0)
"""UPDATE ... RETURNING (SQLite 3.35): without it every refresh takes the joined read."""

_SETTLE_SINGLE: Final = (
    "UPDATE messages SET status = ?, updated_at = ?, error = ?"
    " WHERE id IN (SELECT value FROM json_each(?)) AND parts = 1 AND status <> ?"
    f" AND status {_NOT_FINAL} RETURNING id, client_ref, callback_url, carrier, campaign_id"
)
"""``ledger.settle_single`` of the messages in a JSON array whose one part's new state is
known, the same for all (status, error if final; now): a message takes its part's status
when that differs. A message of one part is final when its part is, and a final part
takes no event, so a final message keeps its status (``status NOT IN`` the finals). The
rows returned are the changes. Compared with the ledger in tests/test_ledger_sql.py."""

_SETTLE_SINGLE_OPEN: Final = _SETTLE_SINGLE.replace(f" AND status {_NOT_FINAL}", "")
"""``_SETTLE_SINGLE`` when none of the messages is final (every outcome of the batch took
its part's row, so no part was final, nor a message of one part): the same moves for ten
SQLite steps less a message."""
assert _SETTLE_SINGLE_OPEN != _SETTLE_SINGLE

_OUTCOME_SUBMITTED: Final = (
    "UPDATE parts SET status = 'submitted', carrier = ?, carrier_message_id = ?,"
    " receipt_key = ?, command_status = ?, submitted_at = ?, error = NULL,"
    f" retry_at = NULL WHERE message_id = ? AND part = ? AND {_NOT_FINAL_ROW}"
)
_OUTCOME_RETRY: Final = (
    "UPDATE parts SET status = 'queued', carrier = ?, command_status = ?,"
    f" error = ?, retry_at = ? WHERE message_id = ? AND part = ? AND {_NOT_FINAL_ROW}"
)
_OUTCOME_FINAL: Final = (
    "UPDATE parts SET status = ?, carrier = ?, command_status = ?, error = ?,"
    f" done_at = ? WHERE message_id = ? AND part = ? AND {_NOT_FINAL_ROW}"
)
"""``ledger.apply_outcome`` (status and error), with the row's other columns: a submitted
part's carrier id and receipt key, a retry's time, a final failure's time."""


_UPDATE_FROM: Final = sqlite3.sqlite_version_info >= (3, 33, 0)
"""UPDATE ... FROM (SQLite 3.33): the receipts' part updates as one statement over a JSON
array (a third less CPU per row than executemany in a micro-benchmark of this five-column
update; the submit outcome's one, with seven values a row, was slower so: each json_extract
parses its row again; it stays an executemany). executemany without it."""

_RECEIPT_PARTS: Final = (
    "UPDATE parts SET status = json_extract(j.value, '$[2]'),"
    " done_at = json_extract(j.value, '$[3]'), error = json_extract(j.value, '$[4]')"
    " FROM json_each(?) AS j WHERE parts.message_id = json_extract(j.value, '$[0]')"
    f" AND parts.part = json_extract(j.value, '$[1]') AND parts.status {_NOT_FINAL}"
)
"""``ledger.apply_receipt`` of the first final receipt of each part, as [message_id, part,
status, received_at, error] rows (``_apply_receipt_states_sync``): only a final receipt
moves a part, the first one wins, and a final part stays as it is."""

_RECEIPT_PART: Final = (
    "UPDATE parts SET status = ?, done_at = ?, error = ?"
    f" WHERE message_id = ? AND part = ? AND {_NOT_FINAL_ROW}"
)
"""``_RECEIPT_PARTS`` a row at a time, for SQLite before 3.33."""

_EXPIRE_UNRECEIPTED: Final = (
    "UPDATE parts SET status = 'expired', error = ?, done_at = ?"
    " WHERE message_id IN (SELECT value FROM json_each(?)) AND status = 'submitted'"
    " RETURNING message_id, part"
)
"""``ledger.expire_unreceipted`` of every part of the messages chosen (NO_RECEIPT, at)."""

_UNRECEIPTED_DUE_VALIDITY: Final = (
    "SELECT id FROM messages WHERE status = 'submitted' AND carrier = ?"
    " AND validity_until <= ? AND registered_delivery = 1 LIMIT ?"
)
_UNRECEIPTED_DUE_SUBMITTED: Final = (
    "SELECT id FROM messages WHERE status = 'submitted' AND carrier = ?"
    " AND validity_until IS NULL AND updated_at <= ? AND registered_delivery = 1 LIMIT ?"
)
"""``ledger.unreceipted_due`` of a carrier's messages, in its two cases, each a range of the
messages_submitted index: a validity that ended, or none and submitted (the message's last
status move, ``updated_at``) long enough ago."""


def _write_outcomes_sync(
    conn: sqlite3.Connection, items: Sequence[SubmitOutcome], distinct: bool
) -> bool:
    """``ledger.apply_outcome`` of each outcome in turn on its part's row. Outcomes of
    different parts commute, so they go as one executemany per kind; when a part has two in
    the batch (a retry at once after a link drop, then the answer to the resend, both
    collected while a commit ran) the runs keep their order, so its last outcome wins.
    ``distinct``: no part has two outcomes in ``items``. Returns whether every outcome
    found its part not final (each UPDATE took its row): then no message of one part in the
    batch was final either (see ``_SETTLE_SINGLE_OPEN``)."""
    if distinct:
        runs: list[list[SubmitOutcome]] = [
            [o for o in items if o.status is MessageStatus.SUBMITTED],
            [o for o in items if o.status is MessageStatus.QUEUED],
            [o for o in items if o.status in FINAL_STATUSES],
        ]
    else:
        runs = []
        for o in items:
            if runs and _outcome_kind(runs[-1][0]) == _outcome_kind(o):
                runs[-1].append(o)
            else:
                runs.append([o])
    taken = 0
    for run in runs:
        if not run:
            continue
        kind = _outcome_kind(run[0])
        if kind == 0:
            cursor = conn.executemany(
                _OUTCOME_SUBMITTED,
                [
                    (
                        o.carrier,
                        o.carrier_message_id,
                        o.receipt_key,
                        o.command_status or 0,
                        o.at,
                        o.message_id,
                        o.part,
                    )
                    for o in run
                ],
            )
        elif kind == 1:
            cursor = conn.executemany(
                _OUTCOME_RETRY,
                [
                    (o.carrier, o.command_status, o.error, o.retry_at, o.message_id, o.part)
                    for o in run
                ],
            )
        else:
            cursor = conn.executemany(
                _OUTCOME_FINAL,
                [
                    (
                        o.status.value,
                        o.carrier,
                        o.command_status,
                        o.error,
                        o.at,
                        o.message_id,
                        o.part,
                    )
                    for o in run
                ],
            )
        taken += cursor.rowcount
    return taken == len(items)


def _outcome_kind(o: SubmitOutcome) -> int:
    """0: submitted, 1: a retry (queued), 2: a final failure (another status counts as
    one: the store writes it as given)."""
    if o.status is MessageStatus.SUBMITTED:
        return 0
    return 1 if o.status is MessageStatus.QUEUED else 2


def _outcome_states(
    items: Sequence[SubmitOutcome],
    held: dict[str, list[tuple[MessageStatus, str | None]]],
    distinct: bool,
) -> dict[str, Known]:
    """Per message, the new state of its part after the batch, as if it had one part and
    was not final (see ``_SENT``): ``ledger.answer``, the fold of its outcomes then of the
    receipts held for it (the error counts only once final). ``distinct``: no part has two
    outcomes in the batch (the common case), so a message of one part has one, and its
    state is that outcome's as it is, with no call a row (a call and a tuple each cost more
    than the rest of this). Compared with the ledger in tests/test_ledger_sql.py."""
    known: dict[str, Known]
    if distinct:
        known = {o.message_id: (o.status, o.error) for o in items}
    else:
        folded: dict[str, PartState] = {}
        for o in items:
            mid = o.message_id
            folded[mid] = ledger.apply_outcome(folded.get(mid, _SENT), o.status, o.error)
        known = {mid: (ledger.counts_as(p.status), p.error) for mid, p in folded.items()}
    for mid, receipts in held.items():
        state = PartState(*known[mid])
        for status, error in receipts:
            state = ledger.apply_receipt(state, status, error)
        known[mid] = (ledger.counts_as(state.status), state.error)
    return known


def _receipt_states(
    items: Sequence[IncomingReceipt], matches: Sequence[tuple[str, int] | None]
) -> dict[str, Known]:
    """Per message a final receipt matched, its part's new state after the batch, as if it
    had one part and was not final (see ``_ANSWERED``): ``ledger.apply_receipt`` folded over
    its receipts, written out (a call a receipt would cost more than the rest of this): the
    first final receipt sets the part, the others change nothing. Messages without a final
    receipt are left out (their status cannot move through this). Compared with the ledger
    in tests/test_ledger_sql.py."""
    known: dict[str, Known] = {}
    final = FINAL_STATUSES
    for r, match in zip(items, matches, strict=True):
        if match and r.status in final and match[0] not in known:
            known[match[0]] = (r.status, r.error)
    return known


def _apply_receipt_states_sync(
    conn: sqlite3.Connection, applied: Sequence[tuple[str, int, str, float, str | None]]
) -> None:
    """``ledger.apply_receipt`` of (message_id, part, status, received_at, error) receipts, in
    order, on their parts' rows: only a final receipt moves a part, and only the first one
    (it makes the part final), so one row per part goes in one statement."""
    first: dict[tuple[str, int], tuple[str, int, str, float, str | None]] = {}
    for row in applied:
        if row[2] in FINAL_STATUSES and (row[0], row[1]) not in first:
            first[(row[0], row[1])] = row
    if not first:
        return
    if _UPDATE_FROM:
        conn.execute(_RECEIPT_PARTS, (json.dumps(list(first.values())),))
        return
    conn.executemany(
        _RECEIPT_PART,
        [(status, at, error, mid, part) for mid, part, status, at, error in first.values()],
    )


def _change_id(change: StatusChange) -> str:
    return change.message_id


MAX_SQL_VARIABLES: Final = 30_000
"""SQLite's default SQLITE_MAX_VARIABLE_NUMBER is 32766 since 3.32; stay below it."""


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _by_carrier(pairs: Iterable[tuple[str, str | None]]) -> dict[str, list[str]]:
    """(carrier, key) pairs grouped as carrier -> distinct keys."""
    grouped: dict[str, dict[str, None]] = {}
    for carrier, key in pairs:
        if key:
            grouped.setdefault(carrier, {})[key] = None
    return {carrier: list(keys) for carrier, keys in grouped.items()}


def _per_carrier(pairs: Iterable[tuple[str, str | None]]) -> Iterator[tuple[str, str]]:
    """The parameters of a ``carrier = ? AND receipt_key IN (SELECT value FROM
    json_each(?))`` query for (carrier, key) pairs: each carrier with its distinct keys as
    one JSON array (in chunks). The statement's text never changes, so it is prepared once
    and reused from the statement cache."""
    for carrier, keys in _by_carrier(pairs).items():
        for chunk in _chunks(keys, MAX_SQL_VARIABLES - 1):
            yield carrier, json.dumps(list(chunk))


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


def _statuses_in(statuses: Sequence[str]) -> tuple[str, list[Any]]:
    return f"status IN ({_placeholders(len(statuses))})", list(statuses)


_FOREIGN: Final = "(claimed_by IS NULL OR (claimed_by <> ? AND claim_until <= ?))"
"""A row nobody holds, or whose claim by another node lapsed (parameters: the node id,
now): what this node takes over while it runs (``CLAIMABLE`` without its own)."""

_PENDING_COLUMNS: Final = (
    "id, dest, sender, text, encoding, carrier, priority, created_at, validity_until,"
    " scheduled_at, registered_delivery, possible_duplicate"
)
"""What ``load_pending`` reads of a message (``rows.outbound_messages``)."""


def _carrier_filter(carriers: Collection[str] | None) -> tuple[str, tuple[Any, ...]]:
    """The condition (with its parameters) of messages of ``carriers``; None: any."""
    if carriers is None:
        return "", ()
    return " AND carrier IN (SELECT value FROM json_each(?))", (json.dumps(sorted(carriers)),)


def _requeue_parts_in_flight(conn: sqlite3.Connection, ids: Sequence[str]) -> list[str]:
    """Of the messages ``ids``, those with parts left 'submitting' (by a node that stopped
    mid-send): those parts go back to 'queued', the messages flagged possible_duplicate for
    good (``ledger.requeue_in_flight``). In the caller's transaction."""
    if not ids:
        return []
    doc = json.dumps(list(ids))
    found = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT message_id FROM parts WHERE status = ?"
            " AND message_id IN (SELECT value FROM json_each(?)) ORDER BY message_id",
            (SUBMITTING, doc),
        )
    ]
    if found:
        flagged = json.dumps(found)
        conn.execute(
            "UPDATE messages SET possible_duplicate = 1"
            " WHERE id IN (SELECT value FROM json_each(?))",
            (flagged,),
        )
        conn.execute(
            "UPDATE parts SET status = 'queued' WHERE status = ?"
            " AND message_id IN (SELECT value FROM json_each(?))",
            (SUBMITTING, flagged),
        )
    return found


async def read_contacts(db: SqliteDb, numbers: Sequence[str]) -> dict[str, Contact]:
    """The contacts (name, attributes; no tags) of those of ``numbers`` that have one."""
    found: dict[str, Contact] = {}
    for chunk in _chunks(list(dict.fromkeys(numbers)), MAX_SQL_VARIABLES):
        rows = await db.read(
            "SELECT number, name, attributes, created_at FROM contacts"
            f" WHERE number IN ({_placeholders(len(chunk))})",
            chunk,
        )
        for number, name, attributes, created_at in rows:
            found[number] = Contact(number, name, json.loads(attributes), (), created_at)
    return found


async def add_missing_columns(
    db: aiosqlite.Connection, columns: tuple[tuple[str, str, str], ...]
) -> None:
    """Add each (table, column, declaration) that ``db`` lacks; see ``ADDED_COLUMNS``."""
    have: dict[str, set[str]] = {}
    for table, column, declaration in columns:
        if table not in have:
            async with db.execute(f"PRAGMA table_info({table})") as cur:
                have[table] = {row[1] for row in await cur.fetchall()}
        if not have[table]:
            continue  # not created yet: its CREATE TABLE, when it runs, has the column
        if column not in have[table]:
            await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            have[table].add(column)


async def _callback_hwm(db: aiosqlite.Connection, meta: dict[str, str]) -> int:
    """The callback ids' high-water mark at open, written to ``meta`` if it was missing.

    A database made before the mark existed gave each callback ``max(id) + 1``: the ids it
    handed out are unknown, but none exceeds the number of callbacks it ever made, far below
    the current time in milliseconds (a trillion and more). So such a database continues
    from there (or from its largest id, if larger); a new database starts at 1."""
    async with db.execute("SELECT coalesce(max(id), 0) FROM callbacks") as cur:
        row = await cur.fetchone()
    largest = int(row[0]) if row else 0
    if CALLBACK_ID_HWM in meta:
        mark = max(int(meta[CALLBACK_ID_HWM]), largest)
    elif "schema_version" in meta:  # made by an earlier version: ids were reused
        mark = max(largest, int(time.time() * 1000))
    else:
        mark = largest
    await db.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (CALLBACK_ID_HWM, str(mark))
    )
    return mark


async def _requeue_in_flight(db: aiosqlite.Connection, claims: ClaimSettings, now: float) -> None:
    """At open: parts the previous process left 'submitting' (it died mid-send, so their
    submit_sm may have reached the carrier) go back to 'queued', their messages flagged
    possible_duplicate for good. What is 'submitting' is then only what this process
    begins, which the dispatcher keeps within window x binds: the bound holds across
    restarts (a second crash before these were sent again would otherwise find both).
    Only messages this node may claim: its own (its previous life's), nobody's, or those
    whose claim lapsed; another live node's parts in flight are that node's."""
    async with db.execute(
        "SELECT DISTINCT p.message_id FROM messages m JOIN parts p ON p.message_id = m.id"
        f" WHERE m.status IN ('accepted', 'queued') AND p.status = ? AND {CLAIMABLE}",
        (SUBMITTING, claims.node_id, now),
    ) as cur:
        ids = [r[0] for r in await cur.fetchall()]
    if not ids:
        return
    doc = json.dumps(ids)
    await db.execute("BEGIN IMMEDIATE")
    try:
        await db.execute(
            "UPDATE messages SET possible_duplicate = 1"
            " WHERE id IN (SELECT value FROM json_each(?))",
            (doc,),
        )
        cur = await db.execute(
            "UPDATE parts SET status = 'queued' WHERE status = ?"
            " AND message_id IN (SELECT value FROM json_each(?))",
            (SUBMITTING, doc),
        )
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    log_event(
        log,
        "store.requeued_in_flight",
        logging.WARNING,
        messages=len(ids),
        parts=cur.rowcount,
        detail="begun before a crash: sent again, flagged possible_duplicate",
    )


class SqliteStore(SqliteReports, FrontPartsSettling):
    """The message side's ports (gateway.store.ports.GatewayStore) on one SQLite file
    (report queries: :class:`SqliteReports`), written through :class:`SqliteDb`, which the
    campaign tables, short links and the pruner share."""

    def __init__(
        self,
        path: Path | str,
        synchronous: str = "full",
        *,
        claims: ClaimSettings | None = None,
        **options: Unpack[DbOptions],
    ) -> None:
        """``path``, ``synchronous`` and ``options`` are the file's (:class:`SqliteDb`);
        ``claims``: this node's id and claim length (gateway.store.claims)."""
        self.claims = claims or ClaimSettings()
        self.db = SqliteDb(path, synchronous, **options)
        self.path = self.db.path
        self.synchronous = self.db.synchronous
        self.health = self.db.health
        self._callback_hwm = 0
        """The highest callback id handed out (``CALLBACK_ID_HWM``); the writer's alone."""

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        await self.db.open(self._prepare)

    async def _prepare(self, db: aiosqlite.Connection) -> None:
        """Schema, added columns, meta, the callback ids' mark, recovery (before the writer
        starts)."""
        await db.executescript(SCHEMA)
        await db.executescript(FRONT_SCHEMA)
        await db.executescript(REPORTS_SCHEMA)
        await db.executescript(LEASES_SCHEMA)
        await add_missing_columns(db, ADDED_COLUMNS)
        async with db.execute("SELECT key, value FROM meta") as cur:
            meta: dict[str, str] = {str(r[0]): str(r[1]) for r in await cur.fetchall()}
        await db.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        self._callback_hwm = await _callback_hwm(db, meta)
        await _requeue_in_flight(db, self.claims, time.time())

    async def close(self) -> None:
        await self.db.close()

    # -- the shared database (SqliteDb) ---------------------------------------------------------

    @property
    def free_bytes(self) -> FreeBytes:
        """Reads free space where the file lives (a test may replace it)."""
        return self.db.free_bytes

    @free_bytes.setter
    def free_bytes(self, value: FreeBytes) -> None:
        self.db.free_bytes = value

    @property
    def commits(self) -> int:
        return self.db.commits

    @property
    def ops_committed(self) -> int:
        return self.db.ops_committed

    @property
    def commit_latency(self) -> Histogram:
        return self.db.commit_latency

    def figures(self) -> StoreFigures:
        """gateway.store.ports.StoreStats: the writer's counters."""
        return self.db.figures()

    def check_health(self) -> None:
        """One health check now (see ``SqliteDb.check_health``)."""
        self.db.check_health()

    async def auto_vacuum(self) -> str:
        """The database's auto_vacuum mode: none, full or incremental."""
        return await self.db.auto_vacuum()

    def refuse_new_work(self) -> None:
        """Raise StoreUnavailable when the store takes no new work now (see
        gateway.store.health); every refusal is counted."""
        self.db.refuse_new_work()

    @property
    def _reader(self) -> aiosqlite.Connection | None:
        return self.db.reader

    async def _write(self, op: Op) -> Any:
        return await self.db.write(op)

    async def _write_in_thread(self, fn: SyncOp, urgent: bool = False) -> Any:
        return await self.db.write_in_thread(fn, urgent)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.db.read(sql, params)

    async def _execute(self, sql: str, params: Sequence[Any]) -> None:
        """One statement, whole on the writer's thread."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self._write_in_thread(op)

    # -- claims (gateway.store.claims) -------------------------------------------------------

    async def listen(self, wake: Callable[[str, str], None]) -> None:
        """One node has the file to itself (``smsgw.lock``): nobody else leaves it work, so
        nothing to listen for (gateway.store.ports.Wakeups)."""

    async def _claim_read(
        self, table: str, ids: list[Any], now: float, claimable: str = CLAIMABLE
    ) -> set[Any]:
        """Claim for this node the rows ``ids`` of ``table`` just read as ``claimable``
        (the condition, parameters: node id, now); one another node claimed since the read
        is left to it. The ids claimed."""
        me = self.claims.node_id
        claim = (me, self.claims.until(now), json.dumps(ids), me, now)
        sql = (
            f"UPDATE {table} SET claimed_by = ?, claim_until = ?"
            f" WHERE id IN (SELECT value FROM json_each(?)) AND {claimable} RETURNING id"
        )

        def op(conn: sqlite3.Connection) -> set[Any]:
            return {r[0] for r in conn.execute(sql, claim)}

        claimed: set[Any] = await self._write_in_thread(op)
        return claimed

    async def _claim_due(
        self,
        table: str,
        where: str,
        order: str,
        params: tuple[Any, ...],
        now: float,
        limit: int,
        returning: str,
    ) -> list[Any]:
        """Claim for this node at most ``limit`` claimable rows of ``table`` that match
        ``where`` (with ``params``), first by ``order``; their ``returning`` columns.

        A read first, so that the idle poll writes nothing; the claim itself chooses again,
        in the write transaction, so a row another node claimed meanwhile is passed over,
        not given twice nor hiding the rows behind it."""
        me = self.claims.node_id
        due = f"SELECT id FROM {table} WHERE {where} AND {CLAIMABLE} ORDER BY {order}"
        if not await self._read(f"{due} LIMIT 1", (*params, me, now)):
            return []
        claim = (me, self.claims.until(now), *params, me, now, limit)
        sql = (
            f"UPDATE {table} SET claimed_by = ?, claim_until = ? WHERE id IN ({due}"
            f" LIMIT ?) RETURNING {returning}"
        )

        def op(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(sql, claim).fetchall()

        rows: list[Any] = await self._write_in_thread(op)
        return rows

    async def renew_claims(self, now: float) -> int:
        """Extend every claim this node holds to ``now + claim_seconds``; how many rows."""
        return await self._claims_of_mine("claim_until = ?", (self.claims.until(now),))

    async def release_claims(self) -> int:
        """Give up every claim this node holds (a clean stop: another node may take the
        work at once, without waiting for the claims to lapse); how many rows."""
        return await self._claims_of_mine("claimed_by = NULL, claim_until = NULL", ())

    async def _claims_of_mine(self, assignments: str, values: tuple[Any, ...]) -> int:
        """Set ``assignments`` on every row this node claims, table by table, in id
        ranges of ``CLAIM_CHUNK`` rows, each its own write: a large backlog never holds the
        writer for long."""
        tables = {
            r[0] for r in await self._read("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        me = self.claims.node_id
        count = 0
        for table, live in CLAIM_TABLES:
            if table not in tables:
                continue
            where = f" AND {live}" if live else ""
            bound = (
                f"SELECT max(id) FROM (SELECT id FROM {table} WHERE id > ?{where}"
                f" ORDER BY id LIMIT {CLAIM_CHUNK})"
            )
            update = (
                f"UPDATE {table} SET {assignments}"
                f" WHERE id > ? AND id <= ? AND claimed_by = ?{where}"
            )
            after: Any = "" if table in _TEXT_IDS else 0
            while True:

                def op(
                    conn: sqlite3.Connection,
                    after: Any = after,
                    bound: str = bound,
                    update: str = update,
                ) -> tuple[int, Any]:
                    last = conn.execute(bound, (after,)).fetchone()[0]
                    if last is None:
                        return 0, None
                    return conn.execute(update, (*values, after, last, me)).rowcount, last

                done, last = await self._write_in_thread(op)
                count += done
                if last is None:
                    break
                after = last
        return count

    # -- intake ----------------------------------------------------------------------------

    async def accept(
        self,
        messages: Sequence[NewMessage],
        idempotency: IdempotentAnswer | None = None,
        begun: Collection[str] = (),
        unclaimed: Collection[str] = (),
    ) -> None:
        self.refuse_new_work()
        # Claimed by this node, which holds them (gateway.store.claims): its dispatcher
        # takes them at once, or later by load_pending; ``unclaimed`` for another node.
        me, lease = self.claims.node_id, self.claims.seconds
        msg_rows, part_rows, link_rows = store_rows.intake_rows(
            messages, begun, me, lease, int, unclaimed
        )

        def op(conn: sqlite3.Connection) -> None:
            if idempotency is not None:
                try:
                    conn.execute(
                        sql_text.INSERT_IDEMPOTENCY, store_rows.idempotency_row(idempotency)
                    )
                except sqlite3.IntegrityError:
                    raise IdempotencyConflict(idempotency.key) from None
            conn.executemany(
                "INSERT INTO messages(id, account, client_ref, sender, dest, text, encoding,"
                " parts, carrier, priority, campaign_id, callback_url, validity_until,"
                " scheduled_at, registered_delivery, status, created_at, updated_at,"
                " claimed_by, claim_until) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                msg_rows,
            )
            conn.executemany(
                "INSERT INTO parts(message_id, part, status, attempts) VALUES (?, ?, ?, ?)",
                part_rows,
            )
            if link_rows:
                try:
                    conn.executemany(
                        "INSERT INTO links(code, message_id, campaign_id, number, target,"
                        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        link_rows,
                    )
                except sqlite3.IntegrityError:
                    # Rolled back with the messages: the caller draws new codes.
                    raise LinkCodeTaken("a short link code is taken") from None

        await self._write_in_thread(op, urgent=True)

    async def find_idempotent(self, account: str, key: str) -> IdempotentAnswer | None:
        rows = await self._read(
            "SELECT account, key, request_hash, status, body, created_at FROM idempotency"
            " WHERE account = ? AND key = ?",
            (account, key),
        )
        return IdempotentAnswer(*rows[0]) if rows else None

    async def opted_out(self, numbers: Sequence[str], sender: str) -> set[str]:
        found: set[str] = set()
        unique = list(dict.fromkeys(numbers))
        for chunk in _chunks(unique, MAX_SQL_VARIABLES - 2):
            rows = await self._read(
                f"SELECT number FROM opt_outs WHERE number IN ({_placeholders(len(chunk))})"
                " AND sender IN (?, ?)",
                (*chunk, sender, ALL_OPT_OUT),
            )
            found.update(r[0] for r in rows)
        return found

    async def add_opt_out(self, number: str, sender: str | None, source: str, at: float) -> None:
        await self._execute(
            "INSERT OR REPLACE INTO opt_outs(number, sender, source, created_at)"
            " VALUES (?, ?, ?, ?)",
            (number, sender or ALL_OPT_OUT, source, at),
        )

    async def remove_opt_out(self, number: str, sender: str | None) -> None:
        async def op(db: aiosqlite.Connection) -> None:
            if sender is None:
                await db.execute("DELETE FROM opt_outs WHERE number = ?", (number,))
            else:
                await db.execute(
                    "DELETE FROM opt_outs WHERE number = ? AND sender = ?", (number, sender)
                )

        await self._write(op)

    # -- dispatch --------------------------------------------------------------------------

    async def load_pending(
        self,
        after: str | None,
        limit: int,
        now: float | None = None,
        carriers: Collection[str] | None = None,
    ) -> list[OutboundMessage]:
        now = time.time() if now is None else now
        me = self.claims.node_id
        of_carriers, carrier_params = _carrier_filter(carriers)
        rows = await self._read(
            f"SELECT {_PENDING_COLUMNS} FROM messages WHERE status IN ('accepted', 'queued')"
            f" AND id > ? AND {CLAIMABLE}{of_carriers} ORDER BY id LIMIT ?",
            (after or "", me, now, *carrier_params, limit),
        )
        if not rows:
            return []
        claimed = await self._claim_read("messages", [r[0] for r in rows], now)
        if len(claimed) < len(rows):
            rows = [r for r in rows if r[0] in claimed]
        return await self._with_parts(store_rows.outbound_messages(rows))

    async def take_over_pending(
        self,
        limit: int,
        now: float | None = None,
        carriers: Collection[str] | None = None,
    ) -> list[OutboundMessage]:
        now = time.time() if now is None else now
        me = self.claims.node_id
        of_carriers, carrier_params = _carrier_filter(carriers)
        # Two ranges of messages_claim: nobody's, and claims lapsed by now (not ours).
        pending = "FROM messages WHERE status IN ('accepted', 'queued')"
        rows = await self._read(
            f"SELECT * FROM (SELECT {_PENDING_COLUMNS}, NULL {pending}"
            f" AND claim_until IS NULL{of_carriers}"
            f" UNION ALL SELECT {_PENDING_COLUMNS}, claimed_by {pending}"
            f" AND claim_until <= ? AND claimed_by <> ?{of_carriers}) ORDER BY id LIMIT ?",
            (*carrier_params, now, me, *carrier_params, limit),
        )
        if not rows:
            return []
        claim = (me, self.claims.until(now), json.dumps([r[0] for r in rows]), me, now)

        def op(conn: sqlite3.Connection) -> tuple[set[str], list[str]]:
            # Chosen again while claiming: one another node took meanwhile is left to it.
            claimed = {
                r[0]
                for r in conn.execute(
                    "UPDATE messages SET claimed_by = ?, claim_until = ?"
                    f" WHERE id IN (SELECT value FROM json_each(?)) AND {_FOREIGN} RETURNING id",
                    claim,
                )
            }
            return claimed, _requeue_parts_in_flight(conn, sorted(claimed))

        claimed, requeued = await self._write_in_thread(op)
        by_id = store_rows.taken_over([r for r in rows if r[0] in claimed], requeued)
        log_requeued_taken(log, by_id, requeued)
        return await self._with_parts(by_id)

    async def release_messages(self, ids: Sequence[str]) -> int:
        params = (self.claims.node_id, json.dumps(list(ids)))

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE messages SET claimed_by = NULL, claim_until = NULL"
                " WHERE claimed_by = ? AND status IN ('accepted', 'queued')"
                " AND id IN (SELECT value FROM json_each(?))",
                params,
            ).rowcount

        released: int = await self._write_in_thread(op)
        return released

    async def _with_parts(self, by_id: dict[str, OutboundMessage]) -> list[OutboundMessage]:
        """The messages of ``by_id`` with their parts still to send (those with none left
        out)."""
        ids = list(by_id)
        for chunk in _chunks(ids, MAX_SQL_VARIABLES):
            part_rows = await self._read(
                "SELECT message_id, part, status, attempts, retry_at FROM parts"
                f" WHERE message_id IN ({_placeholders(len(chunk))})"
                " AND status IN ('accepted', 'queued', 'submitting') ORDER BY message_id, part",
                chunk,
            )
            store_rows.add_pending_parts(by_id, part_rows)
        return [m for m in by_id.values() if m.pending_parts]

    async def begin_attempts(self, parts: Sequence[tuple[str, int]]) -> set[str]:
        if not self.health.sending:  # the space left is for what is on the wire already
            raise StoreUnavailable(f"{self.health.reason}: no new attempts while space is short")
        refused: set[str] = await self._write_in_thread(self._begin_op(parts), urgent=True)
        return refused

    def _begin_op(
        self, parts: Sequence[tuple[str, int]]
    ) -> Callable[[sqlite3.Connection], set[str]]:
        rows = list(parts)
        ids = json.dumps(list(dict.fromkeys(mid for mid, _ in rows)))

        def op(conn: sqlite3.Connection) -> set[str]:
            # Only opt-outs made at or after a message's acceptance: the ones before were
            # refused at intake, or let through on purpose (a STOP's own confirmation).
            refused = {
                r[0]
                for r in conn.execute(
                    "SELECT m.id FROM messages m JOIN opt_outs o ON o.number = m.dest"
                    " AND o.sender IN (m.sender, ?) AND o.created_at >= m.created_at"
                    " WHERE m.id IN (SELECT value FROM json_each(?))",
                    (ALL_OPT_OUT, ids),
                )
            }
            conn.executemany(
                "UPDATE parts SET status = 'submitting', attempts = attempts + 1"
                " WHERE message_id = ? AND part = ?",
                [row for row in rows if row[0] not in refused] if refused else rows,
            )
            return refused

        return op

    async def record_outcomes(self, outcomes: Sequence[SubmitOutcome]) -> list[StatusChange]:
        result: list[StatusChange] = await self._write_in_thread(self._outcomes_op(outcomes))
        return result

    async def record_outcomes_and_begin(
        self, outcomes: Sequence[SubmitOutcome], parts: Sequence[tuple[str, int]]
    ) -> tuple[list[StatusChange], set[str] | None]:
        record = self._outcomes_op(outcomes)
        begin = self._begin_op(parts) if parts and self.health.sending else None

        def op(conn: sqlite3.Connection) -> tuple[list[StatusChange], set[str] | None]:
            changes = record(conn)
            if not parts:
                return changes, set()
            return changes, begin(conn) if begin is not None else None

        result: tuple[list[StatusChange], set[str] | None] = await self._write_in_thread(
            op, urgent=begin is not None
        )
        return result

    def _outcomes_op(
        self, outcomes: Sequence[SubmitOutcome]
    ) -> Callable[[sqlite3.Connection], list[StatusChange]]:
        items = list(outcomes)

        def op(conn: sqlite3.Connection) -> list[StatusChange]:
            distinct = len({(o.message_id, o.part) for o in items}) == len(items)
            none_final = _write_outcomes_sync(conn, items, distinct)
            events = store_rows.outcome_events(items)
            if events:
                conn.executemany(
                    "INSERT INTO events(message_id, part, at, status, detail)"
                    " VALUES (?, ?, ?, ?, ?)",
                    events,
                )
            dupes = list({o.message_id for o in items if o.possible_duplicate})
            if dupes:
                conn.executemany(
                    "UPDATE messages SET possible_duplicate = 1 WHERE id = ?",
                    [(d,) for d in dupes],
                )
            submitted = [o for o in items if o.status is MessageStatus.SUBMITTED]
            held = self._match_held_receipts_sync(conn, submitted) if submitted else {}
            now = max(o.at for o in items) if items else time.time()
            known = _outcome_states(items, held, distinct)
            ids = {o.message_id for o in items}
            return self._refresh_sync(conn, ids, now, known, sticky=not none_final)

        return op

    def _match_held_receipts_sync(
        self, conn: sqlite3.Connection, submitted: list[SubmitOutcome]
    ) -> dict[str, list[tuple[MessageStatus, str | None]]]:
        """Receipts that arrived before their submit_sm_resp, now that the map exists.
        Returns the messages they were applied to, each with the (status, error) of these
        receipts in the order they arrived."""
        keyed = {(o.carrier, o.receipt_key): o for o in submitted if o.receipt_key}
        if not keyed:
            return {}
        for o in submitted:  # other readings (``auto`` id forms): after every exact key
            for key in o.alt_keys:
                keyed.setdefault((o.carrier, key), o)
        held: list[Any] = []
        for params in _per_carrier(keyed):
            cursor = conn.execute(
                "SELECT id, carrier, receipt_key, status, received_at, error FROM receipts"
                " WHERE message_id IS NULL AND carrier = ?"
                " AND receipt_key IN (SELECT value FROM json_each(?)) ORDER BY id",
                params,
            )
            held.extend(cursor.fetchall())
        if not held:
            return {}
        applied: list[tuple[str, int, str, float, str | None]] = []
        links: list[tuple[str, int, int]] = []
        for rid, carrier, key, status, received_at, error in held:
            o = keyed[(carrier, key)]
            links.append((o.message_id, o.part, rid))
            applied.append((o.message_id, o.part, status, received_at, error))
        conn.executemany("UPDATE receipts SET message_id = ?, part = ? WHERE id = ?", links)
        _apply_receipt_states_sync(conn, applied)
        matched: dict[str, list[tuple[MessageStatus, str | None]]] = {}
        for message_id, _, status, _, error in applied:
            matched.setdefault(message_id, []).append((ledger.counts_as(status), error))
        return matched

    async def _refresh(
        self, db: aiosqlite.Connection, message_ids: set[str], now: float
    ) -> list[StatusChange]:
        return await _on_thread(db, self._refresh_sync, message_ids, now)

    def _refresh_single_sync(
        self, conn: sqlite3.Connection, known: dict[str, Known], now: float, sticky: bool = True
    ) -> list[StatusChange]:
        """``ledger.settle_single`` of messages whose one part's new state is known: one
        UPDATE ... RETURNING (``_SETTLE_SINGLE``) per (status, error) (most batches have
        one), no read. The rows returned are the changes; the other ids (messages of several
        parts, or whose status did not move) are left to the joined read of
        ``_refresh_sync``."""
        groups: dict[tuple[MessageStatus, str | None], list[str]] = {}
        for message_id, (status, error) in known.items():
            error = error if status in FINAL_STATUSES else None
            groups.setdefault((status, error), []).append(message_id)
        changes: list[StatusChange] = []
        for (status, error), ids in groups.items():
            cursor = conn.execute(
                _SETTLE_SINGLE if sticky else _SETTLE_SINGLE_OPEN,
                (status.value, now, error, json.dumps(ids), status.value),
            )
            # Positional: message_id, status, at, client_ref, callback_url, carrier, error,
            # campaign_id (a keyword call per row costs more, thousands of rows a batch).
            changes.extend(
                [
                    StatusChange(message_id, status, now, ref, url, carrier, error, campaign)
                    for message_id, ref, url, carrier, campaign in cursor.fetchall()
                ]
            )
        return changes

    def _refresh_sync(
        self,
        conn: sqlite3.Connection,
        message_ids: set[str],
        now: float,
        known: dict[str, Known] | None = None,
        sticky: bool = True,
    ) -> list[StatusChange]:
        """Recompute the status of these messages from their parts; report changes and
        queue callbacks for those that have a callback_url. ``known``: the new status of
        the part of messages that may have a single part (see ``_refresh_single_sync``)."""
        if not message_ids:
            return []
        done: list[StatusChange] = []
        if known and _RETURNING:
            done = self._refresh_single_sync(conn, known, now, sticky)
            if done:
                message_ids = message_ids - {c.message_id for c in done}
        if not message_ids:
            return self._after_refresh(conn, done)
        ids = list(message_ids)
        parts_of: dict[str, list[PartState]] = {}
        current: dict[str, tuple[Any, ...]] = {}
        # One statement, the same text every time (prepared once, from the statement cache):
        # the ids travel as one JSON array, whatever their number. It reads each message and
        # its parts in part order, and the ledger settles each (``ledger.settle``).
        cursor = conn.execute(
            "SELECT m.id, m.status, m.client_ref, m.callback_url, m.carrier, m.campaign_id,"
            " p.status, p.error FROM messages AS m LEFT JOIN parts AS p ON p.message_id = m.id"
            " WHERE m.id IN (SELECT value FROM json_each(?)) ORDER BY m.id, p.part",
            (json.dumps(ids),),
        )
        for found in cursor.fetchall():
            message_id = found[0]
            if message_id not in current:
                current[message_id] = found[:6]
                parts_of[message_id] = []
            if found[6] is not None:
                parts_of[message_id].append(PartState(found[6], found[7]))
        changes: list[StatusChange] = []
        for message_id, row in current.items():
            settled = ledger.settle(row[1], parts_of[message_id])
            if settled is None:
                continue
            changes.append(
                StatusChange(
                    message_id=message_id,
                    status=settled.status,
                    at=now,
                    client_ref=row[2],
                    callback_url=row[3],
                    carrier=row[4],
                    error=settled.error,
                    campaign_id=row[5],
                )
            )
        if changes:
            conn.executemany(
                "UPDATE messages SET status = ?, updated_at = ?, error = ? WHERE id = ?",
                [(c.status.value, c.at, c.error, c.message_id) for c in changes],
            )
        if done:
            changes = sorted(done + changes, key=_change_id)
        return self._after_refresh(conn, changes)

    def _after_refresh(
        self, conn: sqlite3.Connection, changes: list[StatusChange]
    ) -> list[StatusChange]:
        """Callbacks and front-outbox receipts of the status changes just written: what the
        ledger says each change emits (``callback_of``, ``front_receipts``). Both need a
        callback_url, so changes without one (most bulk traffic) are passed over at once."""
        with_url = [c for c in changes if c.callback_url]
        if not with_url:
            return changes
        # The signer is the message's account, read by the insert itself (its primary key).
        callbacks = []
        for c in with_url:
            callback = ledger.callback_of(c)
            if callback is not None:
                url, payload = callback
                callbacks.append((url, json.dumps(payload), c.at, c.at, c.message_id))
        if callbacks:
            self._insert_callbacks_sync(conn, callbacks, _INSERT_STATUS_CALLBACK)
        self._front_receipts_sync(conn, with_url)
        return changes

    def _insert_callbacks_sync(
        self,
        conn: sqlite3.Connection,
        rows: Sequence[tuple[str, str, float, float, str | None]],
        sql: str = _INSERT_CALLBACK,
    ) -> None:
        """Add (url, payload, next_at, created_at, signer) callbacks with ids above the
        high-water mark, and move the mark in the same transaction. A transaction rolled
        back leaves a gap in the ids, never a repeat. With ``_INSERT_STATUS_CALLBACK`` the
        last item is the message id, whose account signs."""
        first = self._callback_hwm + 1
        self._callback_hwm += len(rows)
        conn.executemany(sql, [(first + n, *row) for n, row in enumerate(rows)])
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = ?", (str(self._callback_hwm), CALLBACK_ID_HWM)
        )

    def _front_receipts_sync(self, conn: sqlite3.Connection, changes: list[StatusChange]) -> None:
        """Final statuses of messages from upstream SMPP accounts, into the front outbox."""
        wanted = [c for c in changes if ledger.wants_front_receipts(c)]
        if not wanted:
            return
        # The receipt goes from the message's destination to its sender: keep them with it.
        found: dict[str, tuple[str, str, float]] = {}
        for chunk in _chunks([c.message_id for c in wanted], MAX_SQL_VARIABLES):
            cursor = conn.execute(
                "SELECT id, dest, sender, created_at FROM messages"
                f" WHERE id IN ({_placeholders(len(chunk))})",
                chunk,
            )
            for message_id, dest, sender, created_at in cursor.fetchall():
                found[message_id] = (dest, sender, created_at)
        upstream = _front_part_states(conn, [c.message_id for c in wanted])
        rows = []
        for c in wanted:
            account = ledger.front_account(c.callback_url) or ""
            dest, sender, created_at = found.get(c.message_id, ("", "", c.at))
            for payload in ledger.front_receipts(
                c, dest, sender, created_at, upstream.get(c.message_id)
            ):
                rows.append((account, "receipt", json.dumps(payload), c.at, c.at))
        if rows:
            conn.executemany(sql_text.INSERT_FRONT_OUTBOX, rows)

    # -- receipts --------------------------------------------------------------------------

    async def record_receipts(self, receipts: Sequence[IncomingReceipt]) -> list[StatusChange]:
        items = list(receipts)

        def op(conn: sqlite3.Connection) -> list[StatusChange]:
            if not items:
                return []
            owner: dict[tuple[str, str], tuple[str, int]] = {}
            self._owners_sync(
                conn,
                ((r.carrier, r.match_keys[0] if r.match_keys else r.receipt_key) for r in items),
                owner,
            )
            # Receipts with other readings of their id (``auto`` id forms) whose first key
            # matched nothing: their other keys, in one more pass.
            others = store_rows.other_receipt_keys(items, owner)
            if others:
                self._owners_sync(conn, others, owner)
            rows, matches = store_rows.receipt_rows(items, owner)
            applied = [
                (m[0], m[1], r.status.value, r.received_at, r.error)
                for r, m in zip(items, matches, strict=True)
                if m
            ]
            if len(applied) < len(rows):
                rows = self._drop_resent_unmatched_sync(conn, rows)
            conn.executemany(
                "INSERT INTO receipts(carrier, receipt_key, carrier_message_id, status, state,"
                " error, raw, received_at, message_id, part) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            if not applied:
                return []
            _apply_receipt_states_sync(conn, applied)
            now = max(r.received_at for r in items)
            known = _receipt_states(items, matches)
            return self._refresh_sync(conn, {a[0] for a in applied}, now, known)

        result: list[StatusChange] = await self._write_in_thread(op)
        return result

    @staticmethod
    def _owners_sync(
        conn: sqlite3.Connection,
        pairs: Iterable[tuple[str, str]],
        owner: dict[tuple[str, str], tuple[str, int]],
    ) -> None:
        """Add to ``owner`` the part each (carrier, receipt_key) names, if any."""
        for params in _per_carrier(pairs):
            # One IN list per carrier walks the (carrier, receipt_key) index. The newest
            # part wins when a carrier has reused an id.
            cursor = conn.execute(
                "SELECT carrier, receipt_key, message_id, part FROM parts"
                " WHERE carrier = ? AND receipt_key IN (SELECT value FROM json_each(?))"
                " ORDER BY submitted_at",
                params,
            )
            for carrier, key, message_id, part in cursor.fetchall():
                owner[(carrier, key)] = (message_id, part)

    @staticmethod
    def _drop_resent_unmatched_sync(
        conn: sqlite3.Connection, rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """``store_rows.not_kept``: a receipt comes again when the answer to it was lost (a
        restart after the receipt's commit, before the answer left)."""
        candidates, keys = store_rows.resent_once(rows)
        kept = [k for k in keys if conn.execute(sql_text.UNMATCHED_KEPT, k).fetchone() is not None]
        return store_rows.not_kept(candidates, kept)

    async def still_unmatched(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for carrier, chosen in _per_carrier(keys):
            rows = await self._read(
                "SELECT DISTINCT receipt_key FROM receipts WHERE message_id IS NULL"
                " AND carrier = ? AND receipt_key IN (SELECT value FROM json_each(?))",
                (carrier, chosen),
            )
            found.update((carrier, r[0]) for r in rows)
        return found

    async def expire_unreceipted(
        self,
        carrier: str,
        validity_before: float,
        submitted_before: float,
        at: float,
        limit: int,
    ) -> list[StatusChange]:
        detail = json.dumps({"carrier": carrier, "error": NO_RECEIPT})

        def op(conn: sqlite3.Connection) -> list[StatusChange]:
            # ``ledger.unreceipted_due``, both cases through the messages_submitted index: a
            # range of validity ends, and the messages without one (NULL sorts first).
            ids = [
                r[0]
                for r in conn.execute(_UNRECEIPTED_DUE_VALIDITY, (carrier, validity_before, limit))
            ]
            if len(ids) < limit:
                ids += [
                    r[0]
                    for r in conn.execute(
                        _UNRECEIPTED_DUE_SUBMITTED,
                        (carrier, submitted_before, limit - len(ids)),
                    )
                ]
            if not ids:
                return []
            chosen = json.dumps(ids)
            parts = conn.execute(_EXPIRE_UNRECEIPTED, (NO_RECEIPT, at, chosen)).fetchall()
            conn.executemany(
                "INSERT INTO events(message_id, part, at, status, detail) VALUES (?, ?, ?, ?, ?)",
                [(mid, part, at, MessageStatus.EXPIRED.value, detail) for mid, part in parts],
            )
            return self._refresh_sync(conn, set(ids), at)

        result: list[StatusChange] = await self._write_in_thread(op)
        return result

    # -- callbacks -------------------------------------------------------------------------

    async def enqueue_callbacks(
        self, callbacks: Sequence[tuple[str, str]], at: float, signer: str | None = None
    ) -> None:
        rows = [(url, payload, at, at, signer) for url, payload in callbacks]

        def op(conn: sqlite3.Connection) -> None:
            self._insert_callbacks_sync(conn, rows)

        if rows:
            await self._write_in_thread(op)

    async def callbacks_due(self, now: float, limit: int) -> list[Callback]:
        rows = await self._claim_due(
            "callbacks",
            "next_at <= ?",
            "next_at",
            (now,),
            now,
            limit,
            "id, url, payload, attempts, next_at, signer",
        )
        return sorted((Callback(*r) for r in rows), key=lambda cb: (cb.next_at, cb.id))

    # callback_done and callback_retry run whole on the writer's thread (``_InThread``):
    # with a callback per message they join nearly every group commit, and one async
    # operation in a commit sends all of it down the statement-by-statement path (a thread
    # round trip per BEGIN, SAVEPOINT, operation, RELEASE and COMMIT).

    async def callback_done(self, callback_id: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM callbacks WHERE id = ?", (callback_id,))

        await self._write_in_thread(op)

    async def callbacks_done(self, callback_ids: Sequence[int]) -> None:
        if not callback_ids:
            return
        chosen = json.dumps(list(callback_ids))

        await self._execute(
            "DELETE FROM callbacks WHERE id IN (SELECT value FROM json_each(?))", (chosen,)
        )

    async def callback_retry(self, callback_id: int, next_at: float, error: str) -> None:
        await self._execute(
            "UPDATE callbacks SET attempts = attempts + 1, next_at = ?, last_error = ?,"
            " claimed_by = NULL, claim_until = NULL WHERE id = ?",
            (next_at, error, callback_id),
        )

    async def list_callbacks(
        self, parked: bool | None, after: int | None, limit: int
    ) -> list[CallbackView]:
        rows = await self._read(*sql_text.list_callbacks(parked, after, limit))
        return [CallbackView(*r) for r in rows]

    async def retry_callbacks(self, ids: Sequence[int] | None, at: float) -> list[int]:
        chosen = None if ids is None else json.dumps(list(ids))

        def op(conn: sqlite3.Connection) -> list[int]:
            if chosen is None:
                cursor = conn.execute(
                    "UPDATE callbacks SET next_at = ?, attempts = 0 WHERE next_at >= ?"
                    " RETURNING id",
                    (at, CALLBACK_PARKED_AT),
                )
            else:
                cursor = conn.execute(
                    "UPDATE callbacks SET next_at = ?, attempts = 0"
                    " WHERE id IN (SELECT value FROM json_each(?)) RETURNING id",
                    (at, chosen),
                )
            return sorted(r[0] for r in cursor.fetchall())

        result: list[int] = await self._write_in_thread(op)
        return result

    # -- SMPP front outbox -----------------------------------------------------------------

    async def front_enqueue(self, items: Sequence[tuple[str, str, str]], at: float) -> None:
        rows = store_rows.front_outbox_rows(items, at)

        async def op(db: aiosqlite.Connection) -> None:
            await db.executemany(sql_text.INSERT_FRONT_OUTBOX, rows)

        await self._write(op)

    async def front_due(self, account: str, now: float, limit: int) -> list[FrontItem]:
        rows = await self._claim_due(
            "front_outbox",
            "account = ? AND next_at <= ?",
            "id",
            (account, now),
            now,
            limit,
            "id, account, kind, payload, attempts, created_at",
        )
        return sorted((FrontItem(*r) for r in rows), key=lambda item: item.id)

    async def front_done(self, ids: Sequence[int]) -> None:
        chosen = list(ids)

        async def op(db: aiosqlite.Connection) -> None:
            for chunk in _chunks(chosen, MAX_SQL_VARIABLES):
                await db.execute(
                    f"DELETE FROM front_outbox WHERE id IN ({_placeholders(len(chunk))})", chunk
                )

        await self._write(op)

    async def front_retry(self, ids: Sequence[int], next_at: float) -> None:
        chosen = list(ids)

        async def op(db: aiosqlite.Connection) -> None:
            for chunk in _chunks(chosen, MAX_SQL_VARIABLES - 1):
                await db.execute(
                    "UPDATE front_outbox SET attempts = attempts + 1, next_at = ?,"
                    " claimed_by = NULL, claim_until = NULL"
                    f" WHERE id IN ({_placeholders(len(chunk))})",
                    (next_at, *chunk),
                )

        await self._write(op)

    async def front_pending(self) -> dict[str, int]:
        rows = await self._read("SELECT account, count(*) FROM front_outbox GROUP BY account")
        return {account: count for account, count in rows}

    async def front_parts_add(self, parts: Sequence[FrontPart]) -> None:
        self.refuse_new_work()  # parts of a new long message from an upstream ESME
        rows = store_rows.front_part_rows(parts)

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO front_parts(part_id, message_id, account, source, destination,"
                " ref, total, seq, pdu, received_at, state) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(part_id) DO UPDATE SET pdu = excluded.pdu,"
                " received_at = excluded.received_at WHERE state = 'held'",
                rows,
            )

        await self._write_in_thread(op, urgent=True)  # a submit_sm_resp waits for it

    async def front_parts_held(self) -> list[FrontPart]:
        def op(conn: sqlite3.Connection) -> list[FrontPart]:
            conn.execute(
                "UPDATE front_parts SET state = ?, pdu = x'' WHERE state = ?"
                " AND message_id IN (SELECT id FROM messages)",
                (FRONT_PART_JOINED, FRONT_PART_HELD),
            )
            cursor = conn.execute(
                "SELECT part_id, message_id, account, source, destination, ref, total, seq,"
                " pdu, received_at, state FROM front_parts WHERE state = ?"
                " ORDER BY message_id, seq",
                (FRONT_PART_HELD,),
            )
            return [FrontPart(*r) for r in cursor.fetchall()]

        result: list[FrontPart] = await self._write_in_thread(op)
        return result

    async def _settle_front_parts(
        self, message_ids: Sequence[str], state: str, outbox: list[tuple[Any, ...]]
    ) -> None:
        ids = json.dumps(list(message_ids))

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE front_parts SET state = ?, pdu = x''"
                " WHERE message_id IN (SELECT value FROM json_each(?)) AND state = ?",
                (state, ids, FRONT_PART_HELD),
            )
            conn.executemany(sql_text.INSERT_FRONT_OUTBOX, outbox)

        await self._write_in_thread(op)

    async def front_part_status(self, part_id: str) -> FrontPartStatus | None:
        part = await self.front_part(part_id)
        if part is None:
            return None
        if part.state == FRONT_PART_FAILED:
            return FrontPartStatus(part, MessageStatus.REJECTED, None)
        rows = await self._read(
            "SELECT status, updated_at FROM messages WHERE id = ?", (part.message_id,)
        )
        if not rows:  # held: accepted, waiting for its siblings
            return FrontPartStatus(part, MessageStatus.ACCEPTED, None)
        message_status, updated_at = MessageStatus(rows[0][0]), rows[0][1]
        ids = await self._read(
            "SELECT part_id FROM front_parts WHERE message_id = ? AND state != ? ORDER BY seq",
            (part.message_id, FRONT_PART_FAILED),
        )
        carrier = await self._read(
            "SELECT status, done_at FROM parts WHERE message_id = ? ORDER BY part",
            (part.message_id,),
        )
        order = [r[0] for r in ids]
        return store_rows.front_part_status(part, message_status, updated_at, order, carrier)

    async def front_part(self, part_id: str) -> FrontPart | None:
        rows = await self._read(
            "SELECT part_id, message_id, account, source, destination, ref, total, seq, pdu,"
            " received_at, state FROM front_parts WHERE part_id = ?",
            (part_id,),
        )
        return FrontPart(*rows[0]) if rows else None

    # -- cancel_sm and replace_sm (gateway.front) -------------------------------------------

    def _editable_sync(self, conn: sqlite3.Connection, message_id: str, account: str) -> str:
        """EDIT_DONE when the message is ``account``'s and none of its parts has been
        handed to a carrier (read in the writer's transaction, so no begin_attempts or
        outcome can come between this answer and the edit)."""
        row = conn.execute(
            "SELECT account, status FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None or row[0] != account:
            return EDIT_UNKNOWN
        if row[1] not in _EDITABLE:
            return EDIT_REFUSED
        busy = conn.execute(
            "SELECT 1 FROM parts WHERE message_id = ? AND status NOT IN ('accepted', 'queued')"
            " LIMIT 1",
            (message_id,),
        ).fetchone()
        return EDIT_REFUSED if busy else EDIT_DONE

    async def cancel_message(
        self, message_id: str, account: str, at: float
    ) -> tuple[str, list[StatusChange]]:
        def op(conn: sqlite3.Connection) -> tuple[str, list[StatusChange]]:
            answer = self._editable_sync(conn, message_id, account)
            if answer != EDIT_DONE:
                return answer, []
            conn.execute(
                "UPDATE parts SET status = ?, error = ?, done_at = ?, retry_at = NULL"
                " WHERE message_id = ?",
                (MessageStatus.FAILED.value, CANCELLED, at, message_id),
            )
            conn.execute(
                sql_text.INSERT_MESSAGE_EVENT,
                (message_id, at, MessageStatus.FAILED.value, json.dumps({"error": CANCELLED})),
            )
            return EDIT_DONE, self._refresh_sync(conn, {message_id}, at)

        result: tuple[str, list[StatusChange]] = await self._write_in_thread(op, urgent=True)
        return result

    async def replace_message(
        self, message_id: str, account: str, replacement: Replacement, at: float
    ) -> str:
        r = replacement

        def op(conn: sqlite3.Connection) -> str:
            answer = self._editable_sync(conn, message_id, account)
            if answer != EDIT_DONE:
                return answer
            conn.execute(sql_text.REPLACE_MESSAGE, store_rows.replacement_row(message_id, r, at))
            rows = conn.execute(
                "SELECT part, status, attempts, retry_at FROM parts WHERE message_id = ?"
                " ORDER BY part",
                (message_id,),
            ).fetchall()
            replaced = store_rows.replaced_parts(message_id, rows, r.parts)
            if replaced:
                conn.execute("DELETE FROM parts WHERE message_id = ?", (message_id,))
                conn.executemany(sql_text.INSERT_PARTS_REPLACED, replaced)
            event = store_rows.replaced_event(message_id, rows, r, at)
            conn.execute(sql_text.INSERT_MESSAGE_EVENT, event)
            return EDIT_DONE

        result: str = await self._write_in_thread(op, urgent=True)
        return result

    async def message_summary(self, message_id: str) -> MessageSummary | None:
        rows = await self._read(
            "SELECT id, account, status, error, updated_at, encoding, carrier, scheduled_at,"
            " validity_until, callback_url, created_at FROM messages WHERE id = ?",
            (message_id,),
        )
        return MessageSummary(*rows[0]) if rows else None

    # -- reads -----------------------------------------------------------------------------

    async def get_message(self, message_id: str) -> MessageView | None:
        rows = await self._read(
            "SELECT id, status, dest, sender, encoding, created_at, client_ref, campaign_id,"
            " carrier, possible_duplicate, error, account FROM messages WHERE id = ?",
            (message_id,),
        )
        if not rows:
            return None
        m = rows[0]
        part_rows = await self._read(
            "SELECT part, status, carrier, carrier_message_id, attempts, error, submitted_at"
            " FROM parts WHERE message_id = ? ORDER BY part",
            (message_id,),
        )
        receipt_rows = await self._read(
            "SELECT part, status, state, error, received_at, carrier_message_id FROM receipts"
            " WHERE message_id = ? ORDER BY id",
            (message_id,),
        )
        event_rows = await self._read(
            "SELECT part, at, status, detail FROM events WHERE message_id = ? ORDER BY id",
            (message_id,),
        )
        return store_rows.message_view(m, part_rows, receipt_rows, event_rows)

    async def list_messages(self, query: MessageQuery) -> list[MessageRow]:
        rows = await self._read(*sql_text.list_messages(query, _statuses_in))
        return [store_rows.message_row(r) for r in rows]

    async def minute_counts(self, since: float) -> list[tuple[int, str, int]]:
        # A range of the primary key (ids sort by creation time): the last hour's rows only.
        rows = await self._read(
            "SELECT CAST(created_at / 60 AS INTEGER) * 60, status, count(*) FROM messages"
            " WHERE id >= ? GROUP BY 1, 2",
            (message_id_before(since),),
        )
        return [(int(minute), str(status), int(count)) for minute, status, count in rows]

    # -- inbound (MO) ----------------------------------------------------------------------

    async def add_mo_part(self, part: MoPart) -> None:
        self.refuse_new_work()  # an MO is new work: refused, the carrier offers it again
        row = store_rows.mo_part_row(part)

        # A part the SMSC sends again (our answer was lost) is the one already kept.
        await self._execute(
            "INSERT OR IGNORE INTO mo_parts(carrier, source, destination, ref, total, seq,"
            " data_coding, udh_length, data, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            row,
        )

    async def mo_parts(self) -> list[MoPart]:
        rows = await self._read(
            "SELECT carrier, source, destination, ref, total, seq, data_coding, udh_length,"
            " data, received_at FROM mo_parts ORDER BY received_at"
        )
        return [store_rows.mo_part(r) for r in rows]

    async def record_interaction(
        self, interaction: NewInteraction, consumed: Sequence[MoPart] = ()
    ) -> int:
        if not consumed:  # a long MO whose parts are stored already is finished regardless
            self.refuse_new_work()
        row = store_rows.interaction_row(interaction, self.claims)
        gone = [
            (p.key.carrier, p.key.source, p.key.destination, p.key.ref, p.key.total, p.seq)
            for p in consumed
        ]

        def op(conn: sqlite3.Connection) -> int:
            new_id: int = conn.execute(_LAST_INTERACTION_ID).fetchone()[0] + 1
            conn.execute(_INSERT_INTERACTION, (new_id, *row))
            if gone:
                conn.executemany(
                    "DELETE FROM mo_parts WHERE carrier = ? AND source = ? AND destination = ?"
                    " AND ref = ? AND total = ? AND seq = ?",
                    gone,
                )
            return new_id

        result: int = await self._write_in_thread(op)
        return result

    async def pending_interactions(
        self, after: int, limit: int, now: float | None = None, *, foreign: bool = False
    ) -> list[Interaction]:
        now = time.time() if now is None else now
        me = self.claims.node_id
        claimable = _FOREIGN if foreign else CLAIMABLE
        rows = await self._read(
            f"SELECT {INTERACTION_COLUMNS} FROM interactions"
            f" WHERE state = 'pending' AND id > ? AND {claimable} ORDER BY id LIMIT ?",
            (after, me, now, limit),
        )
        if not rows:
            return []
        found = [store_rows.interaction(r) for r in rows]
        claimed = await self._claim_read("interactions", [i.id for i in found], now, claimable)
        return [i for i in found if i.id in claimed]

    async def begin_interaction_attempt(self, interaction_id: int, floor: int = 0) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "UPDATE interactions SET attempts = max(attempts, ?) + 1"
                " WHERE id = ? AND state = 'pending' RETURNING attempts",
                (floor, interaction_id),
            ).fetchone()
            return int(row[0]) if row else 0

        result: int = await self._write_in_thread(op, urgent=True)
        return result

    async def fail_interaction(
        self, interaction_id: int, error: str, *, add: int, quarantine: bool, at: float
    ) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "UPDATE interactions SET last_error = ?, attempts = attempts + ?,"
                " state = CASE WHEN ? THEN 'quarantined' ELSE state END,"
                " processed_at = CASE WHEN ? THEN ? ELSE processed_at END"
                " WHERE id = ? AND state = 'pending' RETURNING attempts",
                (error[:500], add, quarantine, quarantine, at, interaction_id),
            ).fetchone()
            return int(row[0]) if row else 0

        result: int = await self._write_in_thread(op)
        return result

    async def requeue_interaction(self, interaction_id: int) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE interactions SET state = 'pending', attempts = 0, processed_at = NULL"
                " WHERE id = ? AND state = 'quarantined'",
                (interaction_id,),
            )
            return cursor.rowcount == 1

        result: bool = await self._write_in_thread(op)
        return result

    async def set_interaction_care(
        self,
        interaction_id: int,
        *,
        care_state: str | None = None,
        assignee: str | None = None,
        set_assignee: bool = False,
    ) -> Interaction | None:
        def op(conn: sqlite3.Connection) -> Interaction | None:
            conn.execute(
                "UPDATE interactions SET care_state = coalesce(?, care_state),"
                " assignee = CASE WHEN ? THEN ? ELSE assignee END WHERE id = ?",
                (care_state, set_assignee, assignee, interaction_id),
            )
            row = conn.execute(
                f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE id = ?",
                (interaction_id,),
            ).fetchone()
            return store_rows.interaction(row) if row is not None else None

        result: Interaction | None = await self._write_in_thread(op)
        return result

    async def record_interactions(self, interactions: Sequence[NewInteraction]) -> list[int]:
        self.refuse_new_work()
        rows = [store_rows.interaction_row(i, self.claims) for i in interactions]

        def op(conn: sqlite3.Connection) -> list[int]:
            # Ids above every id given before (the writer's transaction is the only one).
            before: int = conn.execute(_LAST_INTERACTION_ID).fetchone()[0]
            ids = list(range(before + 1, before + 1 + len(rows)))
            conn.executemany(
                _INSERT_INTERACTION, [(n, *row) for n, row in zip(ids, rows, strict=True)]
            )
            return ids

        if not rows:
            return []
        # A few MOs (a quiet link) go as urgent: the SMSC waits for their deliver_sm_resp and
        # the subscribers for their replies; a large burst is bulk, grouped with the rest.
        urgent = len(rows) <= URGENT_INTERACTIONS
        result: list[int] = await self._write_in_thread(op, urgent=urgent)
        return result

    async def finish_interactions(self, outcomes: Sequence[InteractionOutcome]) -> None:
        rows = [store_rows.finished_row(o) for o in outcomes]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(_FINISH_INTERACTION, rows)

        if rows:
            await self._write_in_thread(op)

    async def mo_facts(
        self, lookups: Sequence[MoLookup], campaign_since: float, repeats_since: float
    ) -> list[MoFacts]:
        reader = self._reader
        if reader is None:
            raise StoreError("store is not open")
        if not lookups:
            return []

        queries = json.dumps([[q.source, q.sender, q.destination, q.text] for q in lookups])
        params = (ALL_OPT_OUT, repeats_since, queries, campaign_since)

        def read(conn: sqlite3.Connection) -> list[MoFacts]:
            # One hop to the reader's thread and two statements for the whole batch, in one
            # read transaction (one snapshot).
            conn.execute("BEGIN")
            try:
                rows = conn.execute(_MO_FACTS, params).fetchall()
                numbers = json.dumps([r[0] for r in rows if r[5] is not None])
                tags: dict[str, list[str]] = {}
                if len(numbers) > 2:
                    for number, tag in conn.execute(_MO_FACTS_TAGS, (numbers,)):
                        tags.setdefault(number, []).append(tag)
            finally:
                conn.execute("COMMIT")
            return [
                MoFacts(
                    opted_out=bool(r[1]),
                    last_campaign=(r[2], r[3]) if r[2] is not None else None,
                    repeats=r[4],
                    contact=Contact(
                        number=r[0],
                        name=r[5],
                        attributes=json.loads(r[6]),
                        tags=tuple(tags.get(r[0], ())),
                        created_at=r[7],
                    )
                    if r[5] is not None
                    else None,
                )
                for r in rows
            ]

        return await _on_thread(reader, read)

    async def get_interaction(self, interaction_id: int) -> Interaction | None:
        rows = await self._read(
            f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE id = ?",
            (interaction_id,),
        )
        return store_rows.interaction(rows[0]) if rows else None

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
        rows = await self._read(sql, params)
        return [store_rows.interaction(r) for r in rows]

    async def contacts_of(self, numbers: Sequence[str]) -> dict[str, Contact]:
        return await read_contacts(self.db, numbers)

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
        where, params = ["i.id > ?", *where], [after, *params]
        if upto is not None:
            where.append("i.id <= ?")
            params.append(upto)
        if ids is not None:
            where.append("i.id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(ids)))
        rows = await self._read(
            "SELECT DISTINCT a.key FROM interactions i JOIN contacts c ON c.number = i.source,"
            f" json_each(c.attributes) a WHERE {' AND '.join(where)} ORDER BY a.key LIMIT ?",
            (*params, limit),
        )
        return [r[0] for r in rows]

    async def claim_courtesy(self, scope: str, source: str, now: float, interval: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                "SELECT last_at FROM courtesy_replies WHERE scope = ? AND source = ?",
                (scope, source),
            ).fetchone()
            if found is not None and found[0] > now - interval:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO courtesy_replies(scope, source, last_at) VALUES (?, ?, ?)",
                (scope, source, now),
            )
            return True

        claimed: bool = await self._write_in_thread(op)
        return claimed

    async def tag_contact(self, number: str, tags: Sequence[str], at: float) -> None:
        rows = [(number, tag, at) for tag in tags]

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO contacts(number, name, attributes, created_at, updated_at)"
                " VALUES (?, '', '{}', ?, ?)",
                (number, at, at),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO contact_tags(number, tag, created_at) VALUES (?, ?, ?)",
                rows,
            )

        await self._write_in_thread(op)

    async def record_answer(self, answer: SurveyAnswer) -> None:
        a = answer
        row = (
            a.interaction_id,
            a.number,
            a.source,
            a.campaign_id,
            a.question,
            a.answer,
            a.kind,
            a.at,
        )

        await self._execute(
            "INSERT INTO answers(interaction_id, number, source, campaign_id, question,"
            " answer, kind, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )

    async def lift_opt_out(self, number: str, sender: str) -> None:
        await self._execute(
            "DELETE FROM opt_outs WHERE number = ? AND sender IN (?, ?)",
            (number, sender, ALL_OPT_OUT),
        )

    async def inbound_numbers(self) -> list[tuple[str, dict[str, Any]]]:
        rows = await self._read("SELECT number, config FROM inbound_numbers ORDER BY number")
        return [(r[0], json.loads(r[1])) for r in rows]

    async def put_inbound_number(self, number: str, config: dict[str, Any], at: float) -> None:
        row = (number, json.dumps(config, ensure_ascii=False), at)

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT OR REPLACE INTO inbound_numbers(number, config, updated_at)"
                " VALUES (?, ?, ?)",
                row,
            )

        await self._write(op)

    async def delete_inbound_number(self, number: str) -> bool:
        async def op(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute("DELETE FROM inbound_numbers WHERE number = ?", (number,))
            return cursor.rowcount > 0

        deleted: bool = await self._write(op)
        return deleted


def _front_part_states(
    conn: sqlite3.Connection, message_ids: list[str]
) -> dict[str, list[tuple[str, MessageStatus]]]:
    """For each of ``message_ids`` that came from upstream in parts (``front_parts``): its
    parts' ids in order, each with the status of the carrier parts that carry its text
    (``ledger.upstream_shares``)."""
    upstream: dict[str, list[str]] = {}
    for chunk in _chunks(message_ids, MAX_SQL_VARIABLES):
        cursor = conn.execute(
            "SELECT message_id, part_id FROM front_parts"
            f" WHERE message_id IN ({_placeholders(len(chunk))}) AND state != ?"
            " ORDER BY message_id, seq",
            (*chunk, FRONT_PART_FAILED),
        )
        for message_id, part_id in cursor.fetchall():
            upstream.setdefault(message_id, []).append(part_id)
    if not upstream:
        return {}
    carrier: dict[str, list[MessageStatus]] = {}
    for chunk in _chunks(list(upstream), MAX_SQL_VARIABLES):
        cursor = conn.execute(
            "SELECT message_id, status FROM parts"
            f" WHERE message_id IN ({_placeholders(len(chunk))}) ORDER BY message_id, part",
            chunk,
        )
        for message_id, status in cursor.fetchall():
            carrier.setdefault(message_id, []).append(ledger.counts_as(status))
    return {
        message_id: ledger.upstream_shares(part_ids, carrier.get(message_id, []))
        for message_id, part_ids in upstream.items()
    }


_INSERT_INTERACTION: Final = (
    "INSERT INTO interactions(id, carrier, source, destination, text, data_coding, parts,"
    " parts_received, missing, received_at, completed_at, state, claimed_by, claim_until)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)

_LAST_INTERACTION_ID: Final = (
    "SELECT max(coalesce((SELECT max(id) FROM interactions), 0),"
    f" coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{INTERACTION_ID_FLOOR}'),"
    " 0))"
)
"""The largest interaction id ever given: the table's, or the pruner's floor when it deleted
the newest (SQLite alone would give an emptied table's next row id 1 again)."""

_FINISH_INTERACTION: Final = (
    "UPDATE interactions SET state = ?, keyword = ?, rule = ?, campaign_id = ?,"
    " actions = ?, processed_at = ? WHERE id = ?"
)

_MO_FACTS: Final = """
SELECT q.value ->> 0,
    EXISTS (SELECT 1 FROM opt_outs o WHERE o.number = q.value ->> 0
        AND o.sender IN (q.value ->> 1, ?)),
    lm.campaign_id,
    lm.created_at,
    (SELECT count(*) FROM interactions i WHERE i.source = q.value ->> 0
        AND i.destination = q.value ->> 2 AND i.received_at >= ? AND i.text = q.value ->> 3),
    c.name, c.attributes, c.created_at
FROM json_each(?) q LEFT JOIN contacts c ON c.number = q.value ->> 0
LEFT JOIN messages lm ON lm.id = (SELECT m.id FROM messages m
    WHERE m.dest = q.value ->> 0 AND m.sender = q.value ->> 1
    AND m.campaign_id IS NOT NULL AND m.created_at >= ?
    ORDER BY m.created_at DESC LIMIT 1)
ORDER BY q.key
"""
"""mo_facts, for a JSON array of [source, sender, destination, text]: each lookup answered
with the indexes the single reads use (opt_outs' key, messages_reply_window,
interactions_source, contacts' key). The newest campaign MT is found once (its id) and
both its columns read from that row."""

_MO_FACTS_TAGS: Final = (
    "SELECT number, tag FROM contact_tags WHERE number IN (SELECT value FROM json_each(?))"
    " ORDER BY number, created_at, tag"
)
