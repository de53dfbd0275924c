"""A receipt and its submit response recorded at the same moment on PostgreSQL (two
transactions, possibly two nodes): one of them must see the other, so the message settles.
Without a common lock each can read before the other commits: the receipt is kept as
unmatched and the response finds no receipt held, and the message stays ``submitted``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import StoreConfig
from gateway.store.claims import ClaimSettings
from gateway.store.postgres.store import PgStore
from tests.pg_helpers import PgServer, pg_database, pg_server
from tests.store_contract.helpers import key, message, outcome, receipt

__all__ = ["pg_database", "pg_server"]  # the fixtures, for pytest

MESSAGES = 60


async def test_a_receipt_racing_its_response_settles_the_message(
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
        messages = [message(n) for n in range(MESSAGES)]
        await a.accept(messages)
        await a.begin_attempts([(m.id, 1) for m in messages])
        # Each response on node a and its receipt on node b, at once.
        await asyncio.gather(
            *(a.record_outcomes([outcome(m, 1)]) for m in messages),
            *(b.record_receipts([receipt(key(m, 1))]) for m in messages),
        )
        statuses = {}
        for m in messages:
            view = await a.get_message(m.id)
            assert view is not None
            statuses[view.status] = statuses.get(view.status, 0) + 1
        assert statuses == {"delivered": MESSAGES}
        unmatched = await a.still_unmatched([("sim", key(m, 1)) for m in messages])
        assert unmatched == set()
    finally:
        await a.close()
        await b.close()
