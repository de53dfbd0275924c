"""SQL text both backends run as it stands, written once with SQLite's ``?`` placeholders;
the PostgreSQL backend takes each through ``numbered`` (``$1``, ``$2``, ...).

Only statements the two dialects read alike go here; where they differ (json_each against
unnest, x'' against ''::bytea, upserts, locking) each backend keeps its own text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from gateway.store.base import CALLBACK_PARKED_AT, MessageQuery
from gateway.store.retention import message_id_before
from gateway.store.rows import INTERACTION_COLUMNS


def numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered ``$1``, ``$2``, ... in order (asyncpg's
    style). The text must hold no other ``?`` (none in a literal)."""
    pieces = sql.split("?")
    out = [pieces[0]]
    for n, piece in enumerate(pieces[1:], 1):
        out.append(f"${n}{piece}")
    return "".join(out)


INSERT_IDEMPOTENCY: Final = (
    "INSERT INTO idempotency(account, key, request_hash, status, body, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
"""A request's idempotent answer (``store_rows.idempotency_row``)."""

UNMATCHED_KEPT: Final = (
    "SELECT 1 FROM receipts WHERE message_id IS NULL AND carrier = ?"
    " AND receipt_key = ? AND status = ? AND state = ? AND raw = ? LIMIT 1"
)
"""Whether an unmatched receipt with this ``store_rows.resent_key`` is kept already."""

INSERT_FRONT_OUTBOX: Final = (
    "INSERT INTO front_outbox(account, kind, payload, next_at, created_at) VALUES (?, ?, ?, ?, ?)"
)
"""Receipts owed to upstream ESMEs (``store_rows.front_outbox_rows``)."""


def list_callbacks(parked: bool | None, after: int | None, limit: int) -> tuple[str, list[Any]]:
    """The ``list_callbacks`` query and its parameters: ids above ``after``, parked ones
    only (True), none of them (False) or all (None), by id, at most ``limit``."""
    where = ["id > ?"]
    params: list[Any] = [after or 0]
    if parked is not None:
        where.append("next_at >= ?" if parked else "next_at < ?")
        params.append(CALLBACK_PARKED_AT)
    sql = (
        "SELECT id, url, payload, attempts, next_at, last_error, created_at FROM callbacks"
        f" WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
    )
    return sql, [*params, limit]


def interaction_filter(
    prefix: str,
    number: str | None,
    source: str | None,
    campaign_id: str | None,
    state: str | None = None,
) -> tuple[list[str], list[Any]]:
    """The conditions (``AND``-joined by the caller) and parameters of the interaction
    filters (``Interactions.interactions``, the export): written to ``number``, from
    ``source``, of ``campaign_id``, in ``state``; None is any. Columns take ``prefix``
    (a table alias with its dot, or "")."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("destination", number),
        ("source", source),
        ("campaign_id", campaign_id),
        ("state", state),
    ):
        if value is not None:
            where.append(f"{prefix}{column} = ?")
            params.append(value)
    return where, params


REPLACE_MESSAGE: Final = (
    "UPDATE messages SET text = ?, encoding = ?, parts = ?, scheduled_at = ?,"
    " validity_until = ?, callback_url = ?, updated_at = ? WHERE id = ?"
)
"""A replace_sm's new values (``store_rows.replacement_row``)."""

INSERT_PARTS_REPLACED: Final = (
    "INSERT INTO parts(message_id, part, status, attempts, retry_at) VALUES (?, ?, ?, ?, ?)"
)
"""The part rows of a message replaced with another length (``store_rows.replaced_parts``)."""

INSERT_MESSAGE_EVENT: Final = (
    "INSERT INTO events(message_id, part, at, status, detail) VALUES (?, NULL, ?, ?, ?)"
)
"""A history entry of the whole message (message_id, at, status, detail JSON)."""


def list_messages(
    query: MessageQuery, statuses_in: Callable[[Sequence[str]], tuple[str, list[Any]]]
) -> tuple[str, list[Any]]:
    """The ``list_messages`` query and its parameters; ``statuses_in`` gives the dialect's
    condition "status is one of these" and its parameters.

    By the primary key (ids sort by creation time), so since/until are a range of it.
    account, campaign_id, to and client_ref each have an index whose entries end with the
    id (messages_campaign, messages_dest, messages_client_ref): a page of those reads only
    its rows. status and the account alone read the key
    range in order until the page is full."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("account", query.account),
        ("campaign_id", query.campaign_id),
        ("dest", query.to),
        ("client_ref", query.client_ref),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.statuses:
        condition, values = statuses_in(query.statuses)
        where.append(condition)
        params.extend(values)
    if query.since is not None:
        where.append("id >= ?")
        params.append(message_id_before(query.since))
    if query.until is not None:
        where.append("id < ?")
        params.append(message_id_before(query.until))
    if query.after is not None:
        where.append("id < ?" if query.newest_first else "id > ?")
        params.append(query.after)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    order = "DESC" if query.newest_first else "ASC"
    sql = (
        "SELECT id, status, dest, sender, encoding, parts, carrier, client_ref, campaign_id,"
        " possible_duplicate, error, created_at, updated_at, account, text"
        f" FROM messages{clause} ORDER BY id {order} LIMIT ?"
    )
    return sql, [*params, query.limit]


def interactions_page(
    number: str | None,
    source: str | None,
    campaign_id: str | None,
    state: str | None,
    after: int | None,
    limit: int,
    newest_first: bool,
) -> tuple[str, list[Any]]:
    """The ``Interactions.interactions`` query and its parameters: the filters of
    :func:`interaction_filter`, ids above ``after`` (below it, newest first), at most
    ``limit``, by id."""
    where, params = interaction_filter("", number, source, campaign_id, state)
    if after is not None:
        where.append("id < ?" if newest_first else "id > ?")
        params.append(after)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT {INTERACTION_COLUMNS} FROM interactions{clause} ORDER BY id {order} LIMIT ?"
    return sql, [*params, limit]
