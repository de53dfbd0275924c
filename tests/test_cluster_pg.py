"""Two gateways, one PostgreSQL, the simulator (gateway.cluster, issue 14): a carrier's
``binds = 2`` is the account's total, one slot on each node; a node stopped hard (its tasks
cancelled, nothing given back) has its slot bound by the other once its lease lapses; the
simulator never sees more than two binds of the account at once; ``account_tps`` is split by
the slots each node holds.

The daemon cannot open a PostgreSQL store yet (``[store] backend = "postgresql"`` is refused
until every port is kept), so each gateway keeps its messages in its own SQLite file and
its leases (the node registry and the bind slots: the part under test) on the shared
PostgreSQL database, through ``PgLeases`` handed to its slot keeper before it starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app.daemon import Gateway
from gateway.config import ClusterConfig, StoreConfig
from gateway.store.claims import ClaimSettings
from gateway.store.postgres.leases import PgLeases
from gateway.store.postgres.store import PgStore
from smsc_simulator.server import Simulator
from tests.e2e_helpers import eventually, gateway_config, simulator_config
from tests.pg_helpers import PgServer, pg_database, pg_server

__all__ = ["pg_database", "pg_server"]

LEASE = 4.0
ACCOUNT_TPS = 100.0


class Cluster:
    def __init__(self, tmp_path: Path, pg: PgServer, database: str, sim: Simulator) -> None:
        self.tmp_path = tmp_path
        self.sim = sim
        self.pg = pg
        pg.password_file(tmp_path)
        self.store_config = StoreConfig(
            backend="postgresql",
            dsn=pg.dsn(database),
            password_file="pg-password",
            pool_size=2,
        )
        self.pg_stores: list[PgStore] = []
        self.gateways: dict[str, Gateway] = {}

    async def start_node(self, node_id: str, db_port: int | None = None) -> Gateway:
        """A gateway named ``node_id``; ``db_port``: reach PostgreSQL there (a proxy)."""
        assert self.sim.smpp_port
        config = gateway_config(
            self.tmp_path / node_id, self.sim.smpp_port, binds=2, account_tps=ACCOUNT_TPS
        )
        config = dataclasses.replace(
            config,
            node=dataclasses.replace(config.node, id=node_id),
            cluster=ClusterConfig(lease_seconds=LEASE),
        )
        gateway = Gateway(config)
        store_config = self.store_config
        if db_port is not None:
            dsn = store_config.dsn.replace(f":{self.pg.port}/", f":{db_port}/")
            store_config = dataclasses.replace(store_config, dsn=dsn)
        pg = PgStore(store_config, self.tmp_path, ClaimSettings(node_id))
        await pg.open()
        self.pg_stores.append(pg)
        gateway.slots.leases = PgLeases(pg)
        await gateway.start()
        self.gateways[node_id] = gateway
        return gateway

    async def stop(self) -> None:
        for gateway in self.gateways.values():
            await gateway.stop()
        for pg in self.pg_stores:
            await pg.close()


class FreezingProxy:
    """A TCP proxy to PostgreSQL that the test can freeze: bytes stop flowing both ways,
    with no error and no close (a network partition), until ``thaw``."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    async def stop(self) -> None:
        self.thaw()
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(simulator_config())  # max_binds 4: a third bind would be seen
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def cluster(
    tmp_path: Path, pg_server: PgServer, pg_database: str, sim: Simulator
) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, pg_server, pg_database, sim)
    try:
        yield c
    finally:
        await c.stop()


def bound(gateway: Gateway) -> set[int]:
    return {b.settings.slot for b in gateway.binds if b.bound}


async def healthz(gateway: Gateway) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{gateway.http_port}/healthz") as r,
    ):
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


async def test_two_nodes_share_the_binds_and_one_takes_over_from_a_dead_one(
    cluster: Cluster, sim: Simulator
) -> None:
    account = sim.accounts["smsgw"]
    one = await cluster.start_node("n1")
    await eventually(lambda: _true(bound(one) == {0, 1}))
    assert one.dispatcher.account_rate("sim") == ACCOUNT_TPS

    two = await cluster.start_node("n2")
    # n1 gives slot 1 back (after unbinding it), n2 takes it: one slot each.
    await eventually(lambda: _true(bound(one) == {0} and bound(two) == {1}), within=LEASE * 4)
    assert one.slots.held == {("sim", 0)} and two.slots.held == {("sim", 1)}
    assert one.dispatcher.account_rate("sim") == ACCOUNT_TPS / 2
    assert two.dispatcher.account_rate("sim") == ACCOUNT_TPS / 2
    assert account.peak_binds == 2

    # /healthz: both nodes, live, each with its bind and lease ages; the binds of the
    # other node's slots in standby, and the node ok.
    await two.slots.round()
    body = await healthz(two)
    assert body["status"] == "ok"
    assert {b["bind"]: b["state"] for b in body["binds"]} == {
        "sim-1": "standby",
        "sim-2": "bound",
    }
    nodes = {n["id"]: n for n in body["cluster"]["nodes"]}
    assert set(nodes) == {"n1", "n2"} and all(n["live"] for n in nodes.values())
    assert [(b["carrier"], b["slot"]) for b in nodes["n1"]["binds"]] == [("sim", 0)]
    assert [(b["carrier"], b["slot"]) for b in nodes["n2"]["binds"]] == [("sim", 1)]
    assert nodes["n2"]["http"] == f"127.0.0.1:{two.http_port}"
    for b in nodes["n1"]["binds"] + nodes["n2"]["binds"]:
        assert 0 <= b["lease_age"] <= LEASE and 0 < b["expires_in"] <= LEASE
    assert body["cluster"]["node"] == "n2" and body["cluster"]["fenced"] is False
    # What an operator types: ``smsgw status`` against n2 lists both nodes and their slots.
    smsgw = Path(sys.executable).parent / "smsgw"
    url = f"http://127.0.0.1:{two.http_port}"
    status = await asyncio.create_subprocess_exec(
        str(smsgw), "status", "--url", url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await status.communicate()
    assert status.returncode == 0
    lines = out.decode().splitlines()
    assert any(line.startswith("cluster: node n2, lease 4.0 s") for line in lines), lines
    assert any(line.startswith("n1 ") and " yes " in line and "sim/0: " in line for line in lines)
    assert any(line.startswith("n2 ") and " yes " in line and "sim/1: " in line for line in lines)

    # n1 stops hard: its rounds and binds cancelled, its leases not given back.
    await one.slots.stop()
    await asyncio.gather(*(b.stop(0) for b in one.binds))
    assert bound(one) == set()
    dead = await PgLeases(cluster.pg_stores[1]).cluster_view(0.0)
    n1_until = next(n.until for n in dead.nodes if n.node_id == "n1")
    await eventually(lambda: _true(bound(two) == {0, 1}), within=LEASE * 4)
    assert two.slots.held == {("sim", 0), ("sim", 1)}
    assert two.dispatcher.account_rate("sim") == ACCOUNT_TPS
    after = await PgLeases(cluster.pg_stores[1]).cluster_view(0.0)
    taken = next(s for s in after.slots if s.slot == 0)
    assert taken.owner == "n2"
    assert taken.since is not None and taken.since >= n1_until  # never while n1 held it
    assert account.peak_binds == 2  # never more than the carrier's binds at once
    assert not sim.stats.bind_failures


async def test_a_node_cut_off_from_the_database_unbinds_before_its_slot_is_taken(
    cluster: Cluster, sim: Simulator, pg_server: PgServer
) -> None:
    """n2 reaches PostgreSQL through a proxy that freezes (its statements hang, no error):
    it fences by its own timer and unbinds; n1 binds n2's slot once n2's lease lapses, never
    before (the simulator would count three binds); when the network comes back, n2 gets
    its share again."""
    account = sim.accounts["smsgw"]
    proxy = FreezingProxy(pg_server.host, pg_server.port)
    await proxy.start()
    try:
        one = await cluster.start_node("n1")
        await eventually(lambda: _true(bound(one) == {0, 1}))
        two = await cluster.start_node("n2", db_port=proxy.port)
        await eventually(lambda: _true(bound(one) == {0} and bound(two) == {1}), within=LEASE * 4)

        proxy.freeze()
        await eventually(lambda: _true(two.slots.fenced), within=LEASE * 3)
        await eventually(lambda: _true(bound(one) == {0, 1}), within=LEASE * 4)
        assert bound(two) == set() and two.slots.stats.fences == 1
        assert account.peak_binds == 2  # n2 had unbound before n1 bound its slot
        body = await healthz(two)
        assert body["status"] == "degraded" and body["cluster"]["fenced"] is True
        assert one.dispatcher.account_rate("sim") == ACCOUNT_TPS

        proxy.thaw()
        await eventually(lambda: _true(bound(one) == {0} and bound(two) == {1}), within=LEASE * 6)
        assert not two.slots.fenced
        assert account.peak_binds == 2
    finally:
        proxy.thaw()  # a clean stop gives the slots back through it
        for gateway in list(cluster.gateways.values()):
            await gateway.stop()
        cluster.gateways.clear()
        await proxy.stop()


async def _true(value: bool) -> bool:
    return value
