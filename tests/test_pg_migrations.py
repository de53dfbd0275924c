"""The PostgreSQL schema (gateway.store.postgres.migrations), ``smsgw migrate`` and the
daemon's refusal of a backend that keeps only part of the store, on the tests' own
PostgreSQL (tests/pg_helpers.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config import StoreConfig
from gateway.config.loader import ConfigError
from gateway.store.factory import open_store
from gateway.store.postgres import MISSING_PORTS
from gateway.store.postgres.migrations import (
    LOCK_KEY,
    MIGRATIONS,
    Migration,
    SchemaTooNew,
    migrate,
    schema_version,
)
from tests.pg_helpers import PgServer, pg_database, pg_server
from tests.test_config import MINIMAL_TOML, write

__all__ = ["pg_database", "pg_server"]  # the fixtures, for pytest

SMSGW = str(Path(sys.executable).with_name("smsgw"))


async def _connect(server: PgServer, database: str) -> Any:
    import asyncpg

    return await asyncpg.connect(server.dsn(database), password=server.password)


async def test_two_nodes_migrating_at_once_apply_each_migration_once(
    pg_server: PgServer, pg_database: str
) -> None:
    holder = await _connect(pg_server, pg_database)
    first, second = await _connect(pg_server, pg_database), await _connect(pg_server, pg_database)
    try:
        # Both start while the lock is held elsewhere: each must wait for it, not go ahead.
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        runs = [asyncio.create_task(migrate(first)), asyncio.create_task(migrate(second))]
        while True:
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if waiting == 2 or any(run.done() for run in runs):
                break
            await asyncio.sleep(0.01)
        assert not any(run.done() for run in runs)
        await holder.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        results = await asyncio.gather(*runs)
        everything = [m.version for m in MIGRATIONS]
        assert sorted(results, key=len) == [[], everything]
        rows = await holder.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == everything
        assert await schema_version(holder) == everything[-1]
        assert await migrate(holder) == []  # up to date: nothing again
    finally:
        for conn in (holder, first, second):
            await conn.close()


async def test_a_schema_newer_than_this_smsgw_is_refused(
    pg_server: PgServer, pg_database: str
) -> None:
    conn = await _connect(pg_server, pg_database)
    try:
        newer = (*MIGRATIONS, Migration(MIGRATIONS[-1].version + 1, "later", "SELECT 1"))
        await migrate(conn, newer)
        with pytest.raises(SchemaTooNew, match="newer than this smsgw"):
            await migrate(conn)
    finally:
        await conn.close()


def _config(tmp_path: Path, server: PgServer, database: str, password_file: str) -> Path:
    store = (
        '[store]\nbackend = "postgresql"\n'
        f'dsn = "{server.dsn(database)}"\npassword_file = "{password_file}"\n'
    )
    return write(tmp_path / "gw.toml", MINIMAL_TOML.replace("[store]\n", store))


def _smsgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SMSGW, *args], capture_output=True, text=True, timeout=120, check=False)


def test_smsgw_migrate_reads_the_password_file_and_applies_once(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    pg_server.password_file(tmp_path / "data")
    config = _config(tmp_path, pg_server, pg_database, "pg-password")
    first = _smsgw("migrate", "-c", str(config))
    assert first.returncode == 0, first.stderr
    every = ", ".join(str(m.version) for m in MIGRATIONS)
    assert f"applied migration(s) {every}; schema version {MIGRATIONS[-1].version}" in first.stdout
    again = _smsgw("migrate", "-c", str(config))
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr
    tables = pg_server.psql("SELECT count(*) FROM schema_migrations", pg_database).strip()
    assert tables == str(len(MIGRATIONS))


def test_a_wrong_password_is_an_error_that_never_shows_it(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pg-password").write_text("Wr0ng-s3cret\n")
    config = _config(tmp_path, pg_server, pg_database, "pg-password")
    failed = _smsgw("migrate", "-c", str(config))
    assert failed.returncode == 1
    assert "cannot connect to PostgreSQL smsgw@127.0.0.1" in failed.stderr
    assert "password authentication failed" in failed.stderr
    assert "Wr0ng-s3cret" not in failed.stderr + failed.stdout
    missing = _config(tmp_path, pg_server, pg_database, "nowhere")
    failed = _smsgw("migrate", "-c", str(missing))
    assert failed.returncode == 1 and "store.password_file: cannot read" in failed.stderr


def test_a_node_refuses_to_start_on_a_backend_missing_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backend that lacks a port (as this one did while it was built) is refused at start,
    # naming what it lacks: a node must not start half-working.
    import gateway.store.postgres as postgres

    monkeypatch.setattr(postgres, "MISSING_PORTS", ("links", "campaigns"))
    config = StoreConfig(backend="postgresql", dsn="postgresql://smsgw@127.0.0.1:1/smsgw")
    with pytest.raises(ConfigError) as info:
        open_store(config, tmp_path)
    [error] = info.value.errors
    assert error.startswith('store.backend: "postgresql" keeps only some of the store yet')
    assert error.endswith(
        'still missing: links, campaigns. A node needs all of them: use backend = "sqlite"'
        " until then (`smsgw migrate` already prepares a PostgreSQL database)"
    )


def test_a_node_is_refused_until_the_daemon_builds_the_postgresql_stores(
    tmp_path: Path,
) -> None:
    assert MISSING_PORTS == ()  # every port is kept
    path = write(
        tmp_path / "gw.toml",
        MINIMAL_TOML.replace(
            "[store]\n",
            '[store]\nbackend = "postgresql"\ndsn = "postgresql://smsgw@127.0.0.1:1/smsgw"\n',
        ),
    )
    for command in ("check-config", "run"):
        refused = _smsgw(command, "-c", str(path))
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert "does not build its stores yet" in refused.stderr, refused.stderr


def test_without_a_password_file_the_password_comes_from_pgpassword(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    store = f'[store]\nbackend = "postgresql"\ndsn = "{pg_server.dsn(pg_database)}"\n'
    config = write(tmp_path / "gw.toml", MINIMAL_TOML.replace("[store]\n", store))
    env = {**os.environ, "PGPASSWORD": pg_server.password}
    done = subprocess.run(
        [SMSGW, "migrate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0 and "applied migration(s) 1" in done.stdout, done.stderr
    assert pg_server.password not in done.stdout + done.stderr
