"""What only the PostgreSQL store does (the rest is the contract suite's,
tests/store_contract/ with the ``postgresql`` backend): two nodes loading the queue at
once share it out without waiting for each other (``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.config import StoreConfig
from gateway.store.claims import ClaimSettings
from gateway.store.postgres.store import PgStore
from tests.pg_helpers import PgServer, pg_database, pg_server
from tests.store_contract.helpers import T0, S, key, message, receipt, sent

__all__ = ["pg_database", "pg_server"]  # the fixtures, for pytest


async def test_two_nodes_loading_at_once_share_the_queue_out(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    pg_server.password_file(tmp_path)
    config = StoreConfig(
        backend="postgresql", dsn=pg_server.dsn(pg_database), password_file="pg-password"
    )
    a = PgStore(config, tmp_path, ClaimSettings("node-a"))
    b = PgStore(config, tmp_path, ClaimSettings("node-b"))
    await a.open()
    await b.open()
    try:
        messages = [message(n) for n in range(40)]
        await a.accept(messages)
        later = T0 + 3600  # node-a's claims from accepting them have lapsed
        # Rows the other node is claiming are skipped, not waited for nor given twice:
        # together the two pages hold every message.
        mine, theirs = await asyncio.gather(
            a.load_pending(None, 25, now=later), b.load_pending(None, 25, now=later)
        )
        got_a, got_b = {m.id for m in mine}, {m.id for m in theirs}
        assert not got_a & got_b
        assert got_a | got_b == {m.id for m in messages}
        claimed = pg_server.psql(
            "SELECT claimed_by, count(*) FROM messages GROUP BY claimed_by ORDER BY 1",
            pg_database,
        ).split()
        assert claimed == [f"node-a|{len(got_a)}", f"node-b|{len(got_b)}"]
    finally:
        await a.close()
        await b.close()


async def test_a_node_skips_the_rows_another_is_claiming_instead_of_waiting(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    import asyncpg

    pg_server.password_file(tmp_path)
    config = StoreConfig(
        backend="postgresql", dsn=pg_server.dsn(pg_database), password_file="pg-password"
    )
    store = PgStore(config, tmp_path, ClaimSettings("node-b"))
    await store.open()
    holder = await asyncpg.connect(pg_server.dsn(pg_database), password=pg_server.password)
    try:
        messages = [message(n) for n in range(40)]
        await store.accept(messages)
        # Another node's claiming transaction holds the first ten rows.
        busy = holder.transaction()
        await busy.start()
        await holder.execute(
            "SELECT id FROM messages ORDER BY id LIMIT 10 FOR UPDATE",
        )
        load = asyncio.create_task(store.load_pending(None, 25, now=T0 + 3600))
        while not load.done():
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                " AND wait_event_type = 'Lock'",
                pg_database,
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert load.done(), "load_pending waited for another node's locked rows"
        assert [m.id for m in load.result()] == [m.id for m in messages[10:35]]
        await busy.rollback()
    finally:
        await holder.close()
        await store.close()


async def _two_nodes(server: PgServer, database: str, root: Path) -> tuple[PgStore, PgStore]:
    server.password_file(root)
    config = StoreConfig(
        backend="postgresql", dsn=server.dsn(database), password_file="pg-password"
    )
    a = PgStore(config, root, ClaimSettings("node-a"))
    b = PgStore(config, root, ClaimSettings("node-b"))
    await a.open()
    await b.open()
    return a, b


async def test_receipts_arriving_on_any_node_settle_each_message_once(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    a, b = await _two_nodes(pg_server, pg_database, tmp_path)
    try:
        # Sent by node A: three-part messages with a callback each.
        messages = [message(n, parts=3, callback_url="https://example.net/cb") for n in range(30)]
        await sent(a, *messages)
        # Their receipts come in on both nodes' binds at once, in different orders, some
        # twice (the carrier resent them): each message is delivered once, one callback.
        receipts = [receipt(key(m, p)) for m in messages for p in (1, 2, 3)]
        batches = [
            receipts[0::2],
            list(reversed(receipts[1::2])),
            list(reversed(receipts[0::3])),
            receipts[1::3],
        ]
        results = await asyncio.gather(
            *((a if n % 2 else b).record_receipts(batch) for n, batch in enumerate(batches))
        )
        changes = [c for changed in results for c in changed]
        assert sorted(c.message_id for c in changes) == sorted(m.id for m in messages)
        assert {c.status for c in changes} == {S.DELIVERED}
        due = await b.callbacks_due(T0 + 1000, 100)
        assert sorted(json.loads(cb.payload)["id"] for cb in due) == sorted(m.id for m in messages)
        assert len({cb.id for cb in due}) == len(messages)
        assert await a.callbacks_due(T0 + 1000, 100) == []  # node B holds them
    finally:
        await a.close()
        await b.close()


async def test_the_pool_keeps_its_size_and_the_statement_timeout(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    pg_server.password_file(tmp_path)
    config = StoreConfig(
        backend="postgresql",
        dsn=pg_server.dsn(pg_database),
        password_file="pg-password",
        pool_size=3,
        statement_timeout=0.25,
    )
    store = PgStore(config, tmp_path, ClaimSettings("node-a"))
    await store.open()
    try:
        assert store.pool.get_max_size() == 3
        assert await store.pool.fetchval("SHOW statement_timeout") == "250ms"
        import asyncpg

        with pytest.raises(asyncpg.QueryCanceledError):
            await store.pool.execute("SELECT pg_sleep(5)")
        name = await store.pool.fetchval("SHOW application_name")
        assert name == "smsgw:node-a"
    finally:
        await store.close()


async def test_the_listening_connection_is_made_again_when_it_drops(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    """The server ends node B's LISTEN connection (a failover, an idle-connection killer):
    B makes another, wakes every kind (what was notified meanwhile is lost), and hears
    node A's next commits again."""
    from gateway.store.claims import WAKE_CALLBACKS, WAKE_FRONT, WAKE_QUEUE

    pg_server.password_file(tmp_path)
    config = StoreConfig(
        backend="postgresql", dsn=pg_server.dsn(pg_database), password_file="pg-password"
    )
    a = PgStore(config, tmp_path, ClaimSettings("node-a"))
    b = PgStore(config, tmp_path, ClaimSettings("node-b"))
    await a.open()
    await b.open()
    heard: list[tuple[str, str]] = []
    more = asyncio.Event()

    def wake(kind: str, key: str) -> None:
        heard.append((kind, key))
        more.set()

    async def hear(*expected: tuple[str, str]) -> None:
        async def wait() -> None:
            while not all(e in heard for e in expected):
                more.clear()
                await more.wait()

        await asyncio.wait_for(wait(), 60)  # a hang guard, not a timing

    try:
        await b.listen(wake)
        assert b.listen_connects == 1
        ended = pg_server.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'smsgw:node-b:listen'",
            pg_database,
        ).strip()
        assert ended == "1"
        await hear((WAKE_QUEUE, ""), (WAKE_CALLBACKS, ""), (WAKE_FRONT, ""))
        assert b.listen_connects == 2
        heard.clear()
        m = message(1)
        await a.accept([m], unclaimed={m.id})
        await hear((WAKE_QUEUE, m.carrier))
    finally:
        await a.close()
        await b.close()
