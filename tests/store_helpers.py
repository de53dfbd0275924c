"""What tests read or set up in a store that no gateway code does: status counts, held
receipts, survey answers, a contact with its tags, contacts put in place.

Through the ports where they can say it (``minute_counts``, ``mo_facts``); straight in the
SQLite tables where no port does (held receipts, survey answers, contacts made whole).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from gateway.store.base import Contact, MoLookup, SurveyAnswer
from gateway.store.sqlite import SqliteStore


async def status_counts(store: Any) -> dict[str, int]:
    """Messages by status (any MessageReads: SQLite or tests.fakes.FakeStore)."""
    counts: dict[str, int] = {}
    for _, status, n in await store.minute_counts(0.0):
        counts[status] = counts.get(status, 0) + n
    return counts


async def contact_with_tags(store: Any, number: str) -> Contact | None:
    """The contact of ``number`` with its tags, as handling an MO sees it (MoLog.mo_facts)."""
    [facts] = await store.mo_facts([MoLookup(number, "", "", "")], 0.0, 0.0)
    found: Contact | None = facts.contact
    return found


async def held_receipts(store: SqliteStore) -> list[tuple[str, str, str]]:
    """(carrier, receipt_key, status) of every receipt kept unmatched, oldest first."""
    rows = await store._read(
        "SELECT carrier, receipt_key, status FROM receipts WHERE message_id IS NULL ORDER BY id"
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def survey_answers(store: SqliteStore, question: str) -> list[SurveyAnswer]:
    """The survey answers recorded for ``question``, in order."""
    rows = await store._read(
        "SELECT interaction_id, number, source, question, answer, kind, at, campaign_id"
        " FROM answers WHERE question = ? ORDER BY id",
        (question,),
    )
    return [SurveyAnswer(*r) for r in rows]


async def put_contacts(store: SqliteStore, contacts: Sequence[Contact]) -> None:
    """Create or replace contacts whole (name, attributes, tags)."""
    now = time.time()

    def op(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO contacts(number, name, attributes, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(number) DO UPDATE SET"
            " name = excluded.name, attributes = excluded.attributes,"
            " updated_at = excluded.updated_at",
            [
                (
                    c.number,
                    c.name,
                    json.dumps(c.attributes, ensure_ascii=False),
                    c.created_at or now,
                    now,
                )
                for c in contacts
            ],
        )
        conn.executemany(
            "DELETE FROM contact_tags WHERE number = ?", [(c.number,) for c in contacts]
        )
        conn.executemany(
            "INSERT OR IGNORE INTO contact_tags(number, tag, created_at) VALUES (?, ?, ?)",
            [(c.number, tag, c.created_at or now) for c in contacts for tag in c.tags],
        )

    await store._write_in_thread(op)
