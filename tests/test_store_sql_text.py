"""gateway.store.sql_text: the SQL both store backends run, numbered for PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.store import sql_text
from gateway.store.base import CALLBACK_PARKED_AT, MessageQuery


def test_numbered_gives_each_placeholder_its_position() -> None:
    assert sql_text.numbered("SELECT ? WHERE a = ? AND b IN (?, ?)") == (
        "SELECT $1 WHERE a = $2 AND b IN ($3, $4)"
    )
    assert sql_text.numbered("SELECT 1") == "SELECT 1"
    assert sql_text.numbered(sql_text.UNMATCHED_KEPT).count("$") == 5
    assert "?" not in sql_text.numbered(sql_text.INSERT_IDEMPOTENCY)


def test_list_callbacks_filters_parked_and_pages_by_id() -> None:
    sql, params = sql_text.list_callbacks(None, None, 10)
    assert sql.endswith("WHERE id > ? ORDER BY id LIMIT ?") and params == [0, 10]
    sql, params = sql_text.list_callbacks(True, 7, 5)
    assert "id > ? AND next_at >= ?" in sql and params == [7, CALLBACK_PARKED_AT, 5]
    sql, params = sql_text.list_callbacks(False, 7, 5)
    assert "id > ? AND next_at < ?" in sql and params == [7, CALLBACK_PARKED_AT, 5]
    assert sql_text.numbered(sql).endswith("WHERE id > $1 AND next_at < $2 ORDER BY id LIMIT $3")


def test_interaction_filter_names_only_the_filters_given() -> None:
    assert sql_text.interaction_filter("", None, None, None) == ([], [])
    where, params = sql_text.interaction_filter("i.", "+2", None, "c1", "done")
    assert where == ["i.destination = ?", "i.campaign_id = ?", "i.state = ?"]
    assert params == ["+2", "c1", "done"]


def test_list_messages_filters_in_index_order_and_pages_by_id() -> None:
    def statuses_in(statuses: Sequence[str]) -> tuple[str, list[Any]]:
        return "status = ANY(?::text[])", [list(statuses)]

    query = MessageQuery("acct", statuses=("queued", "failed"), after="m9", newest_first=False)
    sql, params = sql_text.list_messages(query, statuses_in)
    assert sql_text.numbered(sql).endswith(
        " FROM messages WHERE account = $1 AND status = ANY($2::text[]) AND id > $3"
        " ORDER BY id ASC LIMIT $4"
    )
    assert params == ["acct", ["queued", "failed"], "m9", 100]
    sql, params = sql_text.list_messages(MessageQuery(None, limit=5), statuses_in)
    assert sql.endswith(" FROM messages ORDER BY id DESC LIMIT ?") and params == [5]
