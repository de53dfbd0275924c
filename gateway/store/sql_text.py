"""SQL text both backends run as it stands, written once with SQLite's ``?`` placeholders;
the PostgreSQL backend takes each through ``numbered`` (``$1``, ``$2``, ...).

Only statements the two dialects read alike go here; where they differ (json_each against
unnest, x'' against ''::bytea, upserts, locking) each backend keeps its own text.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.store.base import CALLBACK_PARKED_AT


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
