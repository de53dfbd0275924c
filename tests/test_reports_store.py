"""The report queries of the SQLite store: responders for "send to responders", export marks,
the settled bound, selected ids, and campaign counts kept apart per campaign."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store.base import (
    NewInteraction,
)
from gateway.store.ports import InteractionReads
from gateway.store.sqlite import SqliteStore
from tests.test_digest import mo


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "reports.db", synchronous="normal")
    await sqlite.open()
    try:
        yield sqlite
    finally:
        await sqlite.close()


def test_the_sqlite_store_keeps_interactions_for_the_api(tmp_path: Path) -> None:
    assert isinstance(SqliteStore(tmp_path / "x.db"), InteractionReads)


async def test_export_marks_only_move_forward(store: SqliteStore) -> None:
    assert await store.export_mark("s") == 0
    await store.advance_export_mark("s", 7, 1.0)
    await store.advance_export_mark("s", 3, 2.0)
    assert await store.export_mark("s") == 7
    assert await store.export_mark("other") == 0


async def test_the_settled_bound_stops_below_the_first_pending(store: SqliteStore) -> None:
    assert await store.settled_interaction_bound() == 0
    a = await mo(store, 1, "a", 1.0)
    assert await store.settled_interaction_bound() == a
    pending = await store.record_interaction(
        NewInteraction("alpha", "+1", "36180", "p", 0, 1, 1, 2.0, 2.0)
    )
    await mo(store, 2, "b", 3.0)
    assert await store.settled_interaction_bound() == pending - 1
    found = await store.interactions_by_ids([pending, a, 999, a])
    assert [i.id for i in found] == [a, pending]


def test_resubscription_rules_are_the_inbound_sides_built_in_opt_in_rules() -> None:
    from gateway.inbound.numbers import SYSTEM_OPT_IN, SYSTEM_RESUBSCRIBE
    from gateway.store.rows import RESUBSCRIPTION_RULES

    assert RESUBSCRIPTION_RULES == (SYSTEM_OPT_IN, SYSTEM_RESUBSCRIBE)
