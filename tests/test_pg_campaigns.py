"""The campaign side on PostgreSQL (gateway.store.postgres.campaigns) as its users drive it:
a CSV file through the importer, then a campaign run by the real runner on two nodes sharing
one database, the first dying between a chunk's messages and its cursor (the tests' own
PostgreSQL, tests/pg_helpers.py). The store's rules per port: tests/store_contract/."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.campaigns.imports import Importer
from gateway.campaigns.runner import CLAIMED_ELSEWHERE_WAIT
from gateway.config import StoreConfig
from gateway.core import validation as check
from gateway.core.intake import Intake
from gateway.store.campaign_base import CampaignRecord
from gateway.store.claims import ClaimSettings
from gateway.store.postgres.campaigns import PgCampaignStore
from gateway.store.postgres.store import PgStore
from tests.api_fakes import NOW, FakeOutbound, make_config, router_for
from tests.campaign_helpers import ManualRunner
from tests.pg_helpers import PgServer, pg_database, pg_server

__all__ = ["pg_database", "pg_server"]  # the fixtures, for pytest

LEASE = 30.0
NUMBERS = [f"+336123450{n:02d}" for n in range(10)]


class NodeDied(Exception):
    pass


class DiesBeforeTheCursor(PgCampaignStore):
    """A node that dies (every connection dropped) after ``chunks`` chunks: the next
    chunk's messages are committed, its cursor never is."""

    def __init__(self, store: PgStore, chunks: int) -> None:
        super().__init__(lambda: store.pool, store.claims)
        self.store = store
        self.chunks = chunks

    async def advance_campaign(self, *args: Any) -> None:
        if self.chunks == 0:
            self.store.terminate()
            raise NodeDied("killed between the messages and the cursor")
        self.chunks -= 1
        await super().advance_campaign(*args)


@contextlib.asynccontextmanager
async def _nodes(
    server: PgServer, database: str, root: Path, *names: str
) -> AsyncIterator[list[PgStore]]:
    server.password_file(root)
    config = StoreConfig(
        backend="postgresql", dsn=server.dsn(database), password_file="pg-password", pool_size=2
    )
    stores = [PgStore(config, root, ClaimSettings(name, LEASE)) for name in names]
    try:
        for store in stores:
            await store.open()
        yield stores
    finally:
        for store in stores:
            await store.close()


async def _csv(text: str) -> AsyncIterator[bytes]:
    data = text.encode()
    for start in range(0, len(data), 7):  # as an upload arrives: in pieces
        yield data[start : start + 7]


async def test_an_import_then_a_campaign_taken_over_from_a_dead_node_messages_each_once(
    pg_server: PgServer, pg_database: str, tmp_path: Path
) -> None:
    async with _nodes(pg_server, pg_database, tmp_path, "a", "b") as (a_store, b_store):
        a_campaigns = DiesBeforeTheCursor(a_store, chunks=1)
        b_campaigns = PgCampaignStore(lambda: b_store.pool, b_store.claims)
        await b_campaigns.open()
        clock = [NOW]
        ids = (f"imp-{n}" for n in itertools.count())
        importer = Importer(
            a_campaigns, check.Numbers("FR"), lambda: clock[0], lambda: next(ids), str(tmp_path)
        )
        friends = await a_campaigns.create_list("friends", NOW, account="acme")
        rows = "".join(
            f"0{n[3:]},Name {i},{'vip' if i % 2 else 'std'}\n" for i, n in enumerate(NUMBERS)
        )
        text = "number,name,plan\n" + rows + NUMBERS[0] + ",Again,gold\nnot a number,x,y\n"
        job = await importer.begin(friends.id, _csv(text), "web form")
        await importer.wait()
        done = await b_campaigns.get_import(job.id)
        assert done is not None and done.status == "done", done
        assert (done.rows, done.imported, done.rejected) == (12, 11, 1)
        assert done.bytes_read == done.bytes_total == len(text.encode())
        listed = await b_campaigns.get_list(friends.id)
        assert listed is not None and listed.contacts == len(NUMBERS)
        first = (await b_campaigns.contacts_by_number([NUMBERS[0]]))[NUMBERS[0]]
        assert (first.name, first.attributes) == ("Again", {"plan": "gold"})

        config = make_config(default_region="FR")
        campaign = CampaignRecord(
            "c1",
            "spring",
            "ACME",
            "Hi {name}",
            {"lists": [friends.id], "tps": 4},  # chunks of 4
            "running",
            NOW,
            started_at=NOW,
            account="acme",
        )
        await b_campaigns.save_campaign(campaign)

        def runner(store: PgStore, campaigns: PgCampaignStore) -> ManualRunner:
            return ManualRunner(
                campaigns,
                store,
                FakeOutbound([], {"alpha"}),
                Intake(config.messages, config.carriers, router_for(config)),
                lambda: clock[0],
            )

        on_a, on_b = runner(a_store, a_campaigns), runner(b_store, b_campaigns)
        await on_a.step("c1")  # the first chunk, its cursor moved
        with pytest.raises(NodeDied):
            await on_a.step("c1")  # the second chunk's messages, then A dies
        assert await on_b.step("c1") == CLAIMED_ELSEWHERE_WAIT  # A's claim is live
        clock[0] += LEASE  # A's claim lapses: B takes the campaign over
        for _ in range(10):
            delay = await on_b.step("c1")
            if delay is None:
                break
            clock[0] += delay
        record = await b_campaigns.get_campaign("c1")
        assert record is not None and record.status == "done"
        assert (record.recipients, record.handled) == (len(NUMBERS), len(NUMBERS))
        sent = await b_store.pool.fetch(
            "SELECT dest, count(*), min(text) FROM messages WHERE campaign_id = 'c1'"
            " GROUP BY dest ORDER BY dest"
        )
        assert [(r[0], r[1]) for r in sent] == [(n, 1) for n in NUMBERS]  # each once
        assert sent[1][2] == "Hi Name 1"
