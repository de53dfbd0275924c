"""What a PostgreSQL store says of itself (gateway.store.postgres.watch): the figures of
/metrics from what its pool commits, and its health for /healthz and refusals: the database
unreachable, read-only or replaced behind the DSN, instead of free disk space."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

from gateway.config import StoreConfig
from gateway.store.base import StoreUnavailable
from gateway.store.health import DB_READ_ONLY, DB_REPLACED, DB_UNREACHABLE, DISK_FULL
from gateway.store.postgres.store import PgStore
from gateway.store.postgres.watch import Pending, PgWatch
from tests.pg_helpers import PgServer, pg_database, pg_server
from tests.store_contract.helpers import T0, message

__all__ = ["pg_database", "pg_server"]  # the fixtures, for pytest


@pytest.fixture
async def store(pg_server: PgServer, pg_database: str, tmp_path: Path) -> Any:
    pg_server.password_file(tmp_path)
    config = StoreConfig(
        backend="postgresql",
        dsn=pg_server.dsn(pg_database),
        password_file="pg-password",
        health_check_interval=0,  # the tests run each check themselves
    )
    s = PgStore(config, tmp_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_figures_count_what_this_node_commits(store: PgStore) -> None:
    f = store.figures()
    before = (f.commits, f.operations, f.commit_seconds.count)
    await store.accept([message(1, parts=2)])  # one transaction: two INSERT statements
    await store.add_opt_out("+33612340000", None, "api", T0)  # one statement on its own
    await store.get_message(message(1).id)  # reads commit nothing
    await asyncio.sleep(0)  # the query logger's callbacks run on the next turn of the loop
    f = store.figures()
    assert (f.commits, f.operations, f.commit_seconds.count) == (
        before[0] + 2,
        before[1] + 3,
        before[2] + 2,
    )


async def test_health_names_the_database_and_its_size(store: PgStore, pg_database: str) -> None:
    body = store.health.as_json()
    assert body["status"] == "ok" and body["accepting"] and body["sending"]
    assert body["path"].startswith("smsgw@127.0.0.1:") and body["path"].endswith(pg_database)
    assert body["file_bytes"] > 0 and body["free_bytes"] is None


async def test_another_database_behind_the_dsn_refuses_work_until_restart(
    store: PgStore, pg_server: PgServer, pg_database: str
) -> None:
    pg_server.psql("UPDATE store_identity SET id = gen_random_uuid()", pg_database)
    await store.watch.check(store.pool)
    assert DB_REPLACED in store.health.reasons and not store.health.accepting
    m = message(1)
    with pytest.raises(StoreUnavailable, match="db_replaced"):
        await store.accept([m])
    assert await store.get_message(m.id) is None
    assert store.health.refused == {DB_REPLACED: 1}
    await store.watch.check(store.pool)  # it stays so: only a restart takes the new one
    assert DB_REPLACED in store.health.reasons


async def test_a_read_only_server_refuses_work_until_it_takes_writes(
    store: PgStore, pg_server: PgServer, pg_database: str
) -> None:
    pg_server.psql(f'ALTER DATABASE "{pg_database}" SET default_transaction_read_only = on')
    await store.pool.expire_connections()  # new sessions take the setting
    await store.watch.check(store.pool)
    assert store.health.reason == DB_READ_ONLY and not store.health.accepting
    with pytest.raises(StoreUnavailable, match="db_read_only"):
        await store.accept([message(1)])
    pg_server.psql(f'ALTER DATABASE "{pg_database}" RESET default_transaction_read_only')
    await store.pool.expire_connections()
    await store.watch.check(store.pool)
    assert store.health.reasons == {} and store.health.accepting
    await store.accept([message(1)])


async def test_an_unreachable_database_refuses_work_until_it_answers_again(
    store: PgStore, pg_server: PgServer, pg_database: str
) -> None:
    pg_server.psql(f'ALTER DATABASE "{pg_database}" ALLOW_CONNECTIONS false')
    pg_server.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{pg_database}' AND pid <> pg_backend_pid()"
    )
    await store.pool.expire_connections()
    # The intake's first read (the opt-out check) finds out before any check runs: a
    # refusal with the reason (HTTP 503), not an internal error.
    with pytest.raises(StoreUnavailable, match="db_unreachable"):
        await store.opted_out(["+33612340000"], "ACME")
    assert store.health.reason == DB_UNREACHABLE and not store.health.accepting
    await store.watch.check(store.pool)
    assert store.health.reason == DB_UNREACHABLE and not store.health.accepting
    assert pg_database in store.health.reasons[DB_UNREACHABLE]
    with pytest.raises(StoreUnavailable, match="db_unreachable"):
        await store.accept([message(1)])
    pg_server.psql(f'ALTER DATABASE "{pg_database}" ALLOW_CONNECTIONS true')
    await store.watch.check(store.pool)
    assert store.health.reasons == {}
    m = message(1)
    await store.accept([m])
    assert await store.get_message(m.id) is not None


def test_a_statement_the_server_has_no_space_for_stops_new_work_until_a_commit() -> None:
    watch = PgWatch("smsgw@db:5432/smsgw", 0)
    conn = SimpleNamespace(is_closed=lambda: False, is_in_transaction=lambda: True)

    pending = Pending()

    def run(query: str, exc: BaseException | None = None) -> None:
        record = SimpleNamespace(query=query, exception=exc, elapsed=0.004)
        watch._statement(conn, pending, record)

    run("INSERT INTO parts VALUES ($1)", asyncpg.DiskFullError("could not extend file"))
    assert watch.health.reason == DISK_FULL
    assert not watch.health.accepting and not watch.health.sending
    run("INSERT INTO receipts VALUES ($1)")  # inside a transaction: not a commit yet
    assert watch.health.reason == DISK_FULL
    run("COMMIT;")
    assert watch.health.reasons == {}
    assert (watch.figures().commits, watch.figures().operations) == (1, 1)
