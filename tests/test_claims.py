"""Claims around the store (their rules per backend: tests/store_contract/test_claims.py):
the lease keeper, the daemon renewing and releasing its claims, the [node] settings."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import gateway.store.sqlite as sqlite_module
from gateway.app.daemon import Gateway
from gateway.campaigns.runner import CLAIMED_ELSEWHERE_WAIT
from gateway.config import GatewayConfig
from gateway.config.loader import load_dataclass
from gateway.lease import LeaseKeeper
from gateway.store.base import NewInteraction, StoreUnavailable
from gateway.store.campaign_base import CampaignRecord, ImportJob, ImportRow
from gateway.store.claims import ClaimSettings
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_campaigns import SqliteCampaignStore
from tests.campaign_helpers import campaign_rig
from tests.e2e_helpers import eventually, gateway_config
from tests.fakes import new_message
from tests.test_campaigns import list_with, new_campaign

LEASE = 30.0
T0 = 1_000_000.0


class _FlakyStore:
    """Claims that renew or fail as told."""

    def __init__(self) -> None:
        self.fail = False
        self.renewed_at: list[float] = []
        self.released = 0

    async def renew_claims(self, now: float) -> int:
        if self.fail:
            raise StoreUnavailable("disk full")
        self.renewed_at.append(now)
        return 7

    async def release_claims(self) -> int:
        self.released += 1
        return 7


async def test_the_lease_keeper_counts_renewals_and_failures_and_releases_at_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _FlakyStore()
    keeper = LeaseKeeper(store, ClaimSettings("a", LEASE), clock=lambda: T0)
    assert await keeper.renew()
    assert (keeper.stats.renewals, keeper.stats.failures, keeper.stats.held) == (1, 0, 7)
    assert store.renewed_at == [T0]
    store.fail = True
    with caplog.at_level(logging.WARNING, logger="smsgw.lease"):
        assert not await keeper.renew()
        assert not await keeper.renew()
    assert (keeper.stats.renewals, keeper.stats.failures) == (1, 2)
    warnings = [r for r in caplog.records if "lease.renew_failed" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited: the second failure is counted, not logged
    await keeper.start()
    await keeper.stop()
    assert store.released == 1


async def test_the_daemon_renews_its_claims_and_releases_them_at_stop(tmp_path: Path) -> None:
    """Through the gateway itself: a claim taken by the running gateway's store is renewed by
    its keeper (counted in /metrics' source) and released when the gateway stops."""
    config = gateway_config(tmp_path, smsc_port=1)  # a carrier that is never up
    config = dataclasses.replace(
        config, node=dataclasses.replace(config.node, id="gw-a", claim_seconds=3.0)
    )
    gateway = Gateway(config)
    await gateway.start()
    try:
        store = gateway.store
        # An item for an upstream account no front serves: nothing else takes it.
        await store.front_enqueue([("nobody", "mo", "{}")], T0)
        [item] = await store.front_due("nobody", time.time(), 1)  # held by gw-a now
        renewed = asyncio.Event()
        real_renew = store.renew_claims

        async def renew_claims(now: float) -> int:
            held = await real_renew(now)
            renewed.set()
            return held

        gateway.lease.store = _Renewing(renew_claims, store.release_claims)
        await asyncio.wait_for(renewed.wait(), 10)  # the keeper's loop, every second
        assert gateway.lease.stats.held >= 1
    finally:
        await gateway.stop()
    other = SqliteStore(config.store_path, "normal", claims=ClaimSettings("gw-b", 3600.0))
    await other.open()
    try:
        assert [i.id for i in await other.front_due("nobody", time.time(), 10)] == [item.id]
    finally:
        await other.close()


@dataclasses.dataclass
class _Renewing:
    renew_claims: Callable[[float], Awaitable[int]]
    release_claims: Callable[[], Awaitable[int]]


def test_node_id_and_claim_seconds_are_checked() -> None:
    from tests.test_config import data, errors_of

    found = errors_of(data(**{"node.id": "n" * 65, "node.claim_seconds": 1}))
    assert any("node.id" in e for e in found), found
    assert any("node.claim_seconds" in e for e in found), found
    found = errors_of(data(**{"node.id": "gw 1/a"}))
    assert any("node.id" in e for e in found), found
    config = load_dataclass(GatewayConfig, data(**{"node.id": "gw-b.2", "node.claim_seconds": 12}))
    assert (config.node.id, config.node.claim_seconds) == ("gw-b.2", 12)
    default = load_dataclass(GatewayConfig, data())
    assert (default.node.id, default.node.claim_seconds) == ("smsgw-1", 30.0)


async def test_claims_are_renewed_and_released_in_chunks_each_row_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renewals go by id ranges of CLAIM_CHUNK rows (a large backlog never holds the writer
    long): every claimed row is renewed, whatever the chunking, and no other node's."""
    monkeypatch.setattr(sqlite_module, "CLAIM_CHUNK", 3)
    path = tmp_path / "chunks.db"
    a = SqliteStore(path, "normal", claims=ClaimSettings("a", 30.0))
    b = SqliteStore(path, "normal", claims=ClaimSettings("b", 30.0))
    await a.open()
    await b.open()
    try:
        now = time.time()
        mine = [new_message(f"+336123400{n:02d}", "x", now=now) for n in range(10)]
        theirs = [new_message(f"+336123410{n:02d}", "x", now=now) for n in range(4)]
        await a.accept(mine)
        await b.accept(theirs)
        await a.front_enqueue([("crm", "mo", "{}")] * 7, now)
        assert len(await a.front_due("crm", now, 100)) == 7
        assert await a.renew_claims(now + 100) == 17
        # Past the accept's claims, before the renewed ones lapse: only B's are free.
        later = now + 60
        assert sorted(m.id for m in await b.load_pending(None, 100, now=later)) == sorted(
            m.id for m in theirs
        )
        assert await b.front_due("crm", later, 100) == []
        assert await a.release_claims() == 17
        assert len(await b.load_pending(None, 100, now=later)) == 14
    finally:
        await a.close()
        await b.close()


async def test_the_runner_leaves_a_campaign_another_node_runs_until_its_claim_lapses(
    tmp_path: Path,
) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 3)
        campaign = await new_campaign(rig, list_id)
        await rig.post(f"/v1/campaigns/{campaign['id']}/start", None, 200)
        other = SqliteCampaignStore(rig.store.db, ClaimSettings("b", 30.0))
        assert await other.claim_campaign(campaign["id"], rig.now())  # node B runs it
        assert await rig.runner.step(campaign["id"]) == CLAIMED_ELSEWHERE_WAIT
        assert await rig.messages_of(campaign["id"]) == []
        rig.clock[0] += 30.0  # B's claim lapses (B died): this node takes the campaign over
        await rig.run_to_end(campaign["id"])
        assert len(await rig.messages_of(campaign["id"])) == 3
        assert not await other.claim_campaign(campaign["id"], rig.now())  # done


async def test_a_running_gateway_takes_over_a_dead_nodes_mo_campaign_and_import(
    tmp_path: Path,
) -> None:
    """Through the gateway itself, on SQLite: another node ("gw-dead", a second store on
    the same file) left a pending MO, a running campaign and a running import, and stopped
    renewing. The running gateway takes each over at its own rhythm once the claims lapse,
    without a restart, and counts it (/metrics' source)."""
    config = gateway_config(tmp_path, smsc_port=1)  # a carrier that is never up
    config = dataclasses.replace(
        config,
        node=dataclasses.replace(config.node, id="gw-a", claim_seconds=3.0, takeover_seconds=0.1),
    )
    gateway = Gateway(config)
    await gateway.start()
    dead = SqliteStore(config.store_path, "normal", claims=ClaimSettings("gw-dead", 0.5))
    await dead.open()
    dead_side = SqliteCampaignStore(dead.db, dead.claims)
    try:
        now = time.time()
        [mo] = await dead.record_interactions(
            [NewInteraction("sim", "+33600000001", "+33700000000", "hello", 0, 1, 1, now, now)]
        )
        list_id = (await dead_side.create_list("l", now)).id
        rows = [ImportRow(f"+3361234{n:04d}", None, {}) for n in range(3)]
        await dead_side.import_rows(list_id, rows, "import", now)
        await dead_side.save_campaign(
            CampaignRecord("c1", "c1", "ACME", "hi", {"lists": [list_id]}, "running", now)
        )
        assert await dead_side.claim_campaign("c1", now)
        await dead_side.save_import(ImportJob("imp", list_id, "running", "import", now))
        assert not gateway.campaigns.runner.running("c1")  # started after the gateway

        async def all_taken() -> bool:
            interaction = await gateway.store.get_interaction(mo)
            campaign = await gateway.stores.campaigns.get_campaign("c1")
            job = await gateway.stores.campaigns.get_import("imp")
            return (
                interaction is not None
                and interaction.state != "pending"
                and campaign is not None
                and campaign.status == "done"
                and job is not None
                and job.status == "failed"
            )

        await eventually(all_taken, within=60)  # a hang guard: the claims lapse in 0.5 s
        assert gateway.taken_over() == {
            "message": 0,
            "interaction": 1,
            "campaign": 1,
            "import": 1,
            "callback": 0,
            "front": 0,
        }
        campaign = await gateway.stores.campaigns.get_campaign("c1")
        assert campaign is not None and campaign.handled == 3
        job = await gateway.stores.campaigns.get_import("imp")
        assert job is not None and "node running the import stopped" in (job.failure or "")
    finally:
        await dead.close()
        await gateway.stop()
