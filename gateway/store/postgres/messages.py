"""The PostgreSQL backend's message edits and lists: ``MessageEdits`` (query_sm, cancel_sm and
replace_sm of the SMPP front) and ``MessageReads.list_messages`` / ``minute_counts``.

:class:`PgMessages` is a mixin of :class:`~gateway.store.postgres.store.PgStore` (it uses the
store's pool and its ``_settle``): the rules are the SQLite store's, written once per backend
only where they are SQL.

- An edit is one transaction that first locks the message and then its parts ``FOR UPDATE``
  (in that order, as the queue's ``_lock`` does): a ``begin_attempts`` on another node either
  committed before (a part is ``submitting``: the edit is refused) or waits for the edit to
  commit and then finds the cancelled parts final (it leaves them alone) or the replaced
  rows.
- A cancel settles the message through the store's ``_settle`` (gateway.core.ledger): the
  status change and what it emits (the HTTP callback, the front's receipt) commit with it.
- Lists page by the primary key (ids sort by creation time), ``since``/``until`` being a
  range of it, as on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final, Protocol

from gateway.core.ledger import PartState
from gateway.core.model import CANCELLED, MessageStatus, Replacement, StatusChange
from gateway.store import rows as store_rows
from gateway.store import sql_text
from gateway.store.base import (
    EDIT_DONE,
    EDIT_REFUSED,
    EDIT_UNKNOWN,
    MessageQuery,
    MessageRow,
    MessageSummary,
)
from gateway.store.retention import message_id_before

EDITABLE: Final = ("accepted", "queued")
"""Message (and part) statuses cancel_sm and replace_sm may act on: nothing handed over."""


_REPLACE_MESSAGE: Final = sql_text.numbered(sql_text.REPLACE_MESSAGE)
_INSERT_PARTS_REPLACED: Final = sql_text.numbered(sql_text.INSERT_PARTS_REPLACED)
_INSERT_MESSAGE_EVENT: Final = sql_text.numbered(sql_text.INSERT_MESSAGE_EVENT)


def _statuses_in(statuses: Sequence[str]) -> tuple[str, list[Any]]:
    return "status = ANY(?::text[])", [list(statuses)]


class _Host(Protocol):
    """What the mixin uses of the store it is mixed into."""

    @property
    def pool(self) -> Any: ...

    async def _settle(
        self,
        conn: Any,
        messages: dict[str, Any],
        states: dict[str, dict[int, PartState]],
        now: float,
    ) -> list[StatusChange]: ...


async def _editable(conn: Any, message_id: str, account: str) -> tuple[str, list[Any]]:
    """EDIT_DONE when the message is ``account``'s and none of its parts has been handed
    to a carrier, with its part rows (part, status, attempts, retry_at), locked: the
    message first, then its parts, in the caller's transaction."""
    row = await conn.fetchrow(
        "SELECT account, status FROM messages WHERE id = $1 FOR UPDATE", message_id
    )
    if row is None or row[0] != account:
        return EDIT_UNKNOWN, []
    parts = await conn.fetch(
        "SELECT part, status, attempts, retry_at FROM parts WHERE message_id = $1"
        " ORDER BY part FOR UPDATE",
        message_id,
    )
    if row[1] not in EDITABLE or any(p[1] not in EDITABLE for p in parts):
        return EDIT_REFUSED, parts
    return EDIT_DONE, parts


class PgMessages:
    """``MessageEdits``, ``list_messages`` and ``minute_counts`` (mixed into PgStore)."""

    async def message_summary(self: _Host, message_id: str) -> MessageSummary | None:
        row = await self.pool.fetchrow(
            "SELECT id, account, status, error, updated_at, encoding, carrier, scheduled_at,"
            " validity_until, callback_url, created_at FROM messages WHERE id = $1",
            message_id,
        )
        return MessageSummary(*row) if row is not None else None

    async def cancel_message(
        self: _Host, message_id: str, account: str, at: float
    ) -> tuple[str, list[StatusChange]]:
        from gateway.store.postgres.store import _lock

        async with self.pool.acquire() as conn, conn.transaction():
            answer, _ = await _editable(conn, message_id, account)
            if answer != EDIT_DONE:
                return answer, []
            await conn.execute(
                "UPDATE parts SET status = $2, error = $3, done_at = $4, retry_at = NULL"
                " WHERE message_id = $1",
                message_id,
                MessageStatus.FAILED.value,
                CANCELLED,
                at,
            )
            await conn.execute(
                _INSERT_MESSAGE_EVENT,
                message_id,
                at,
                MessageStatus.FAILED.value,
                json.dumps({"error": CANCELLED}),
            )
            messages, states = await _lock(conn, [message_id])
            return EDIT_DONE, await self._settle(conn, messages, states, at)

    async def replace_message(
        self: _Host, message_id: str, account: str, replacement: Replacement, at: float
    ) -> str:
        r = replacement
        async with self.pool.acquire() as conn, conn.transaction():
            answer, rows = await _editable(conn, message_id, account)
            if answer != EDIT_DONE:
                return answer
            await conn.execute(_REPLACE_MESSAGE, *store_rows.replacement_row(message_id, r, at))
            replaced = store_rows.replaced_parts(message_id, rows, r.parts)
            if replaced:
                await conn.execute("DELETE FROM parts WHERE message_id = $1", message_id)
                await conn.executemany(_INSERT_PARTS_REPLACED, replaced)
            event = store_rows.replaced_event(message_id, rows, r, at)
            await conn.execute(_INSERT_MESSAGE_EVENT, *event)
        return EDIT_DONE

    async def list_messages(self: _Host, query: MessageQuery) -> list[MessageRow]:
        sql, params = sql_text.list_messages(query, _statuses_in)
        rows = await self.pool.fetch(sql_text.numbered(sql), *params)
        return [store_rows.message_row(r) for r in rows]

    async def minute_counts(self: _Host, since: float) -> list[tuple[int, str, int]]:
        # A range of the primary key (ids sort by creation time): the last hour's rows only.
        rows = await self.pool.fetch(
            "SELECT (floor(created_at / 60) * 60)::bigint, status, count(*) FROM messages"
            " WHERE id >= $1 GROUP BY 1, 2",
            message_id_before(since),
        )
        return [(int(minute), str(status), int(count)) for minute, status, count in rows]
