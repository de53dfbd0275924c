"""Claims with expiry (gateway.store.claims): a row a node claims is not given to another
node until the claim lapses; renewing extends it; a lapsed claim is taken over; a released
one is free at once; two claimers never get the same row. Node A and node B are two store
objects over one database (two SqliteStore on one file; two views of one FakeStore)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from gateway.config import GatewayConfig
from gateway.confload import load_dataclass
from gateway.daemon import Gateway
from gateway.lease import LeaseKeeper
from gateway.store.base import StoreUnavailable
from gateway.store.claims import ClaimSettings
from gateway.store.sqlite import SqliteStore
from tests.e2e_helpers import gateway_config
from tests.fakes import FakeStore

LEASE = 30.0
T0 = 1_000_000.0
URL = "https://example.net/cb"

Nodes = Callable[[str], Any]
"""node id -> a store for that node over the shared database."""


@pytest.fixture(params=["sqlite", "fake"])
async def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Nodes]:
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            opened: dict[str, SqliteStore] = {}

            async def sqlite_node(node_id: str) -> SqliteStore:
                store = SqliteStore(
                    tmp_path / "shared.db", "normal", claims=ClaimSettings(node_id, LEASE)
                )
                await store.open()
                stack.push_async_callback(store.close)
                opened[node_id] = store
                return store

            yield sqlite_node
        else:
            base = FakeStore(claims=ClaimSettings("a", LEASE))

            async def fake_node(node_id: str) -> FakeStore:
                return base.peer(node_id)

            yield fake_node


async def _ids(store: Any, now: float, limit: int = 100) -> list[int]:
    return [cb.id for cb in await store.callbacks_due(now, limit)]


async def test_a_claimed_callback_goes_to_no_other_node_until_the_claim_lapses(
    nodes: Nodes,
) -> None:
    a, b = await nodes("a"), await nodes("b")
    await a.enqueue_callbacks([(URL, "{}")] * 3, T0)
    taken = await _ids(a, T0 + 1, limit=2)
    assert len(taken) == 2
    rest = await _ids(b, T0 + 2)
    assert len(rest) == 1 and not set(rest) & set(taken)
    assert await _ids(b, T0 + 1 + LEASE - 0.5) == rest  # its own only: none of A's lapsed
    # A's own claims come back to A (its sender keeps track of those in hand).
    assert sorted(await _ids(a, T0 + 3)) == sorted(taken)
    # Lapsed: B takes A's over (A's second claim at T0 + 3 lapses at T0 + 3 + LEASE).
    assert sorted(await _ids(b, T0 + 3 + LEASE)) == sorted([*taken, *rest])


async def test_renewing_extends_a_claim_and_releasing_frees_it(nodes: Nodes) -> None:
    a, b = await nodes("a"), await nodes("b")
    await a.enqueue_callbacks([(URL, "{}")] * 2, T0)
    taken = await _ids(a, T0)
    assert len(taken) == 2
    assert await a.renew_claims(T0 + 20) == 2
    assert await b.renew_claims(T0 + 20) == 0  # B holds nothing
    assert await _ids(b, T0 + LEASE + 1) == []  # lapsed without the renewal
    assert sorted(await _ids(b, T0 + 20 + LEASE)) == sorted(taken)
    # B's now; B releases them (a clean stop): A gets them at once.
    assert await b.release_claims() == 2
    assert sorted(await _ids(a, T0 + 20 + LEASE + 1)) == sorted(taken)


async def test_a_retry_releases_the_claim(nodes: Nodes) -> None:
    a, b = await nodes("a"), await nodes("b")
    await a.enqueue_callbacks([(URL, "{}")], T0)
    [cid] = await _ids(a, T0)
    await a.callback_retry(cid, T0 + 5, "HTTP 500")
    assert await _ids(b, T0 + 4) == []  # not due yet
    assert await _ids(b, T0 + 5) == [cid]  # due again, for any node
    await b.callback_done(cid)
    assert await _ids(a, T0 + LEASE * 3) == []


async def test_two_concurrent_claimers_never_get_the_same_callback(tmp_path: Path) -> None:
    """Two nodes on one SQLite file (each with its own writer connection, so their claims
    race in SQLite itself), each taking small batches and delivering them, as a sender
    does: every callback goes out exactly once."""
    path = tmp_path / "race.db"
    a = SqliteStore(path, "normal", claims=ClaimSettings("a", LEASE))
    b = SqliteStore(path, "normal", claims=ClaimSettings("b", LEASE))
    await a.open()
    await b.open()
    try:
        total = 600
        await a.enqueue_callbacks([(URL, f'{{"n": {n}}}') for n in range(total)], T0)
        got: dict[str, list[int]] = {"a": [], "b": []}

        async def claimer(store: SqliteStore, name: str) -> None:
            while True:
                due = await store.callbacks_due(T0 + 1, 7)
                if not due:
                    return
                for cb in due:
                    got[name].append(cb.id)
                    await store.callback_done(cb.id)

        await asyncio.gather(claimer(a, "a"), claimer(b, "b"))
        both = got["a"] + got["b"]
        assert len(both) == total and len(set(both)) == total, "a callback went twice"
        assert got["a"] and got["b"], "one claimer starved the other: no race tested"
    finally:
        await a.close()
        await b.close()


async def test_front_items_are_claimed_like_callbacks(tmp_path: Path) -> None:
    path = tmp_path / "front.db"
    a = SqliteStore(path, "normal", claims=ClaimSettings("a", LEASE))
    b = SqliteStore(path, "normal", claims=ClaimSettings("b", LEASE))
    await a.open()
    await b.open()
    try:
        await a.front_enqueue([("crm", "mo", "{}")] * 3, T0)
        first = [i.id for i in await a.front_due("crm", T0, 2)]
        assert len(first) == 2
        rest = [i.id for i in await b.front_due("crm", T0, 10)]
        assert len(rest) == 1 and not set(rest) & set(first)
        assert [i.id for i in await a.front_due("crm", T0 + 1, 10)] == first  # its own
        await a.front_retry(first[:1], T0 + 2)  # released, due again later
        assert [i.id for i in await b.front_due("crm", T0 + 2, 10)] == [first[0], *rest]
        await a.renew_claims(T0 + 20)
        assert [i.id for i in await b.front_due("crm", T0 + LEASE + 1, 10)] == [
            first[0],
            *rest,
        ]  # first[1] renewed by A
        assert [i.id for i in await b.front_due("crm", T0 + 20 + LEASE, 10)] == sorted(
            [*first, *rest]
        )
    finally:
        await a.close()
        await b.close()


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
