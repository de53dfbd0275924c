"""What only the PostgreSQL store's MO side does (the rest is the contract suite's
``inbound`` and ``reports`` modules on the ``postgresql`` backend), with another session
holding locks to stop a node's transaction at a chosen point: interaction ids grow in
commit order across nodes, and a node taking pending interactions over skips the rows
another node is claiming instead of waiting for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import StoreConfig
from gateway.store.base import MoKey, MoLookup, MoPart, NewInteraction
from gateway.store.claims import ClaimSettings
from gateway.store.postgres.store import PgStore
from tests.pg_helpers import PgServer, pg_database, pg_server

__all__ = ["pg_database", "pg_server"]  # the fixtures, for pytest

US = "+33700000000"
T0 = 1_900_000_000.0


def mo(n: int, at: float = T0) -> NewInteraction:
    return NewInteraction("sim", f"+336{n:08d}", US, "YES", 0, 1, 1, at, at)


@pytest.fixture
async def nodes(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> AsyncIterator[tuple[PgStore, PgStore, Any]]:
    """Nodes A and B on one database, and a plain session (the lock holder)."""
    import asyncpg

    pg_server.password_file(tmp_path)
    config = StoreConfig(
        backend="postgresql", dsn=pg_server.dsn(pg_database), password_file="pg-password"
    )
    a = PgStore(config, tmp_path, ClaimSettings("node-a"))
    b = PgStore(config, tmp_path, ClaimSettings("node-b"))
    await a.open()
    await b.open()
    holder = await asyncpg.connect(pg_server.dsn(pg_database), password=pg_server.password)
    try:
        yield a, b, holder
    finally:
        await holder.close()
        await a.close()
        await b.close()


async def _waiting(holder: Any, node: str) -> bool:
    """Whether node ``node``'s session waits for a lock now."""
    count = await holder.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        " AND wait_event_type = 'Lock'",
        f"smsgw:{node}",
    )
    return bool(count)


async def _until_waiting(holder: Any, node: str, task: asyncio.Task[Any]) -> None:
    """Poll until ``task`` ends or node ``node`` waits for a lock (another session's state:
    no event of ours can say when it changes)."""
    while not task.done() and not await _waiting(holder, node):  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def test_an_interaction_id_taken_first_commits_first(
    nodes: tuple[PgStore, PgStore, Any],
) -> None:
    """Node A logs a long MO and stalls before its commit (dropping the MO's kept part
    waits for the holder's lock); node B logs one meanwhile. Whatever B's id, no id below
    one already visible may commit later: B waits for A, or takes a larger id."""
    a, b, holder = nodes
    part = MoPart(MoKey("sim", "+33600000001", US, 7, 2), 1, 0, b"half", 6, T0)
    await a.add_mo_part(part)
    lock = holder.transaction()
    await lock.start()
    await holder.execute("SELECT 1 FROM mo_parts FOR UPDATE")
    logging_a = asyncio.create_task(a.record_interaction(mo(1), [part]))
    await _until_waiting(holder, "node-a", logging_a)
    assert not logging_a.done()  # A stalls inside its transaction, its id drawn
    logging_b = asyncio.create_task(b.record_interactions([mo(2)]))
    await _until_waiting(holder, "node-b", logging_b)
    visible = [r[0] for r in await holder.fetch("SELECT id FROM interactions")]
    await lock.rollback()
    id_a = await logging_a
    [id_b] = await logging_b
    # Every id visible while A stalled is below A's (none: B waited for A's commit).
    assert all(n < id_a for n in visible), (visible, id_a)
    assert id_a < id_b
    assert await a.mo_parts() == []


async def test_pending_interactions_another_node_is_claiming_are_skipped_not_waited_for(
    nodes: tuple[PgStore, PgStore, Any],
) -> None:
    a, b, holder = nodes
    ids = await a.record_interactions([mo(n) for n in range(20)])
    later = T0 + 3600  # node A's claims from logging them have lapsed
    busy = holder.transaction()
    await busy.start()
    await holder.execute(
        "SELECT id FROM interactions WHERE id = ANY($1::bigint[]) FOR UPDATE", ids[:5]
    )
    taking = asyncio.create_task(b.pending_interactions(0, 10, now=later))
    await _until_waiting(holder, "node-b", taking)
    assert taking.done(), "pending_interactions waited for rows another node is claiming"
    assert [i.id for i in taking.result()] == ids[5:15]
    await busy.rollback()
    assert [i.id for i in await a.pending_interactions(0, 100, now=later)] == ids[:5] + ids[15:]


async def test_the_export_reads_contacts_attributes_from_jsonb(
    nodes: tuple[PgStore, PgStore, Any],
) -> None:
    """Contacts with attributes come from the campaign side (imports); written here as it
    writes them, they are what the export's columns and rows and an MO's facts read."""
    a, _, holder = nodes
    await holder.executemany(
        "INSERT INTO contacts(number, name, attributes, created_at, updated_at)"
        " VALUES ($1, $2, $3::jsonb, $4, $4)",
        [
            ("+33600000001", "Ann", '{"city": "Lyon", "plan": "gold"}', T0),
            ("+33600000002", "Bob", '{"zip": "69001", "city": "Nice"}', T0),
        ],
    )
    ann = NewInteraction("sim", "+33600000001", US, "YES", 0, 1, 1, T0, T0)
    bob = NewInteraction("sim", "+33600000002", "+33700000009", "NO", 0, 1, 1, T0, T0)
    [first, second] = await a.record_interactions([ann, bob])
    assert await a.interaction_attribute_keys() == ["city", "plan", "zip"]
    assert await a.interaction_attribute_keys(number=US) == ["city", "plan"]
    assert await a.interaction_attribute_keys(upto=first) == ["city", "plan"]
    assert await a.interaction_attribute_keys(after=first) == ["city", "zip"]
    assert await a.interaction_attribute_keys(ids=[second], limit=1) == ["city"]
    contacts = await a.contacts_of(["+33600000002", "+33600000003"])
    assert list(contacts) == ["+33600000002"]
    assert contacts["+33600000002"].attributes == {"zip": "69001", "city": "Nice"}
    await a.tag_contact("+33600000001", ["vip", "vip", "fr"], T0 + 1)
    [facts] = await a.mo_facts([MoLookup("+33600000001", US, US, "YES")], T0 - 1, T0 - 1)
    assert facts.contact is not None
    assert (facts.contact.name, facts.contact.attributes) == (
        "Ann",
        {"city": "Lyon", "plan": "gold"},
    )
    assert sorted(facts.contact.tags) == ["fr", "vip"]
