"""The tests' own PostgreSQL (tests/pg_helpers.py): started from the Debian binaries,
reached over loopback TCP with a password, one database per test, and a missing server a
failure (not a skip) where ``SMSGW_REQUIRE_PG=1`` (CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pg_helpers import PgServer, pg_database, pg_server, skip_or_fail

__all__ = ["pg_database", "pg_server"]  # the fixtures, for pytest


async def test_the_server_takes_its_password_over_tcp_and_gives_each_test_a_database(
    pg_server: PgServer, pg_database: str
) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_server.dsn(pg_database), password=pg_server.password)
    try:
        assert await conn.fetchval("SELECT current_database()") == pg_database
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname='public'") == 0
    finally:
        await conn.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(pg_server.dsn(pg_database), password="wrong")


def test_the_server_is_not_run_as_root(pg_server: PgServer) -> None:
    status = Path(f"/proc/{pg_server.process.pid}/status").read_text()
    uid = int(status.split("Uid:")[1].split()[0])
    assert uid != 0  # initdb and postgres refuse root: as root, the tests drop to postgres
    assert pg_server.psql("SELECT current_user").strip() == "smsgw"


def test_a_missing_server_fails_where_ci_requires_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGW_REQUIRE_PG", "1")
    with pytest.raises(pytest.fail.Exception, match="SMSGW_REQUIRE_PG=1"):
        skip_or_fail("no binaries")
    monkeypatch.delenv("SMSGW_REQUIRE_PG")
    with pytest.raises(pytest.skip.Exception, match="no binaries"):
        skip_or_fail("no binaries")
