"""The queue across nodes, in process: two dispatchers, each on its own store over one
PostgreSQL database, and the bundled simulator. Carrier "alpha" is bound on node 1 only.

- A message accepted on node 2 (no bind of alpha) is committed unclaimed; the commit's
  NOTIFY wakes node 1, which sends it. Node 1's polling interval is an hour, so only the
  wake can explain that it goes out.
- Node 2 dies with messages it accepted claimed (no release): node 1, running all along,
  takes them over at its polling rhythm once node 2's claims lapse, and counts them.
- With bind-slot leases, a carrier a node holds no slot of is left to the others (on the
  fake store).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gateway.app.daemon import bind_settings
from gateway.binds import CarrierBind, RefusingListener
from gateway.config import CarrierConfig, StoreConfig
from gateway.core.routing import Router
from gateway.core.submit import accept_and_enqueue
from gateway.engine.dispatcher import Dispatcher
from gateway.smpp.receipt import IdForm
from gateway.store.claims import WAKE_QUEUE, ClaimSettings
from gateway.store.postgres.store import PgStore
from gateway.takeover import Look, Takeover
from tests.e2e_helpers import eventually
from tests.fakes import FakeStore
from tests.pg_helpers import PgServer, pg_server
from tests.test_engine_dispatcher import carrier, gateway_config, messages
from tests.test_engine_sqlite import sim_config, simulator

__all__ = ["pg_server"]  # the fixture, for pytest

HOUR = 3600.0


@dataclass
class Node:
    store: PgStore
    dispatcher: Dispatcher
    binds: list[CarrierBind]
    takeover: Takeover

    async def stop(self) -> None:
        await self.takeover.stop()
        await self.dispatcher.stop(drain=1.0)
        await asyncio.gather(*(b.stop(drain=1.0) for b in self.binds))
        await self.store.close()


@contextlib.asynccontextmanager
async def node(
    pg: StoreConfig,
    root: Path,
    node_id: str,
    cfg: CarrierConfig,
    *,
    bound: bool,
    claim_seconds: float = 30.0,
    poll: float = HOUR,
) -> AsyncIterator[Node]:
    """A node: its store, a dispatcher with binds of ``cfg`` when ``bound`` (none
    otherwise), and the message look (the daemon's wiring, gateway.app.daemon)."""
    store = PgStore(pg, root, ClaimSettings(node_id, claim_seconds))
    await store.open()
    binds = [CarrierBind(s, RefusingListener()) for s in bind_settings(cfg)] if bound else []
    dispatcher = Dispatcher(gateway_config([cfg]), store, binds, Router([], [cfg.name]))

    async def look() -> None:
        dispatcher.take_over()

    takeover = Takeover(store, [Look("message", poll, look, WAKE_QUEUE, dispatcher.wants)])
    await dispatcher.start()
    await takeover.start()
    for b in binds:
        b.start()
    await asyncio.wait_for(asyncio.gather(*(b.became_bound.wait() for b in binds)), 10)
    running = Node(store, dispatcher, binds, takeover)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def pg(pg_server: PgServer, tmp_path: Path) -> StoreConfig:
    database = pg_server.create_database("cluster")
    pg_server.password_file(tmp_path)
    return StoreConfig(
        backend="postgresql",
        dsn=pg_server.dsn(database),
        password_file="pg-password",
        pool_size=4,
    )


def _carrier(port: int) -> CarrierConfig:
    return replace(
        carrier(binds=1, window=10, message_id_form=IdForm.HEX, receipt_id_form=IdForm.DECIMAL),
        port=port,
    )


async def test_a_message_accepted_where_its_carrier_has_no_bind_is_sent_by_a_woken_node(
    pg: StoreConfig, tmp_path: Path
) -> None:
    async with simulator(sim_config()) as sim:
        assert sim.smpp_port
        cfg = _carrier(sim.smpp_port)
        async with (
            node(pg, tmp_path, "node-1", cfg, bound=True) as one,
            node(pg, tmp_path, "node-2", cfg, bound=False) as two,
        ):
            batch = messages(20)
            assert two.dispatcher.unclaimed(batch) == {m.id for m in batch}
            assert one.dispatcher.unclaimed(batch) == set()
            for i in range(0, 20, 5):  # four commits, as the API would
                await accept_and_enqueue(two.store, two.dispatcher, batch[i : i + 5])

            async def all_sent() -> bool:
                return sim.stats.submit_sm >= 20

            await eventually(all_sent, within=60)  # a hang guard: the poll is an hour
            assert sim.stats.submit_sm == 20
            assert one.dispatcher.picked_up == 20 and one.dispatcher.took_over == 0
            assert two.dispatcher.parts_in_memory == 0 and two.dispatcher.picked_up == 0
            assert one.takeover.stats.wakes.get(WAKE_QUEUE, 0) >= 1
            view = await one.store.get_message(batch[0].id)
            assert view is not None and view.status in ("submitted", "delivered")


async def test_a_dead_nodes_messages_are_taken_over_while_the_other_node_runs(
    pg: StoreConfig, tmp_path: Path
) -> None:
    async with simulator(sim_config()) as sim:
        assert sim.smpp_port
        cfg = _carrier(sim.smpp_port)
        async with node(pg, tmp_path, "node-1", cfg, bound=True, poll=0.2) as one:
            # Node 2 accepts messages (claimed for a second) and dies: no release.
            dead = PgStore(pg, tmp_path, ClaimSettings("node-2", 1.0))
            await dead.open()
            batch = messages(12)
            await dead.accept(batch[:6], begun={batch[0].id})  # one was on the wire
            await dead.accept(batch[6:])
            dead.terminate()

            async def all_sent() -> bool:
                return sim.stats.submit_sm >= 12

            await eventually(all_sent, within=60)
            assert sim.stats.submit_sm == 12
            assert one.dispatcher.took_over == 12 and one.dispatcher.picked_up == 0
            view = await one.store.get_message(batch[0].id)
            assert view is not None and view.possible_duplicate  # in flight at the death
            other = await one.store.get_message(batch[1].id)
            assert other is not None and not other.possible_duplicate


async def test_a_carrier_this_node_holds_no_slot_of_is_left_to_the_nodes_that_do() -> None:
    """With bind-slot leases (gateway.cluster), a node whose binds of a carrier all wait in
    standby (its share is 0) commits that carrier's messages unclaimed and loads none; when
    it comes to hold a slot, it takes up at once those waiting unclaimed."""
    store = FakeStore()
    cfg = carrier()
    binds = [CarrierBind(s, RefusingListener()) for s in bind_settings(cfg)]
    dispatcher = Dispatcher(gateway_config([cfg]), store, binds, Router([], [cfg.name]))
    await dispatcher.start()
    try:
        assert dispatcher.sendable() is None  # one node: every carrier
        dispatcher.set_account_share(cfg.name, 0.0)  # the other node holds every slot
        assert dispatcher.sendable() == frozenset()
        batch = messages(3)
        await accept_and_enqueue(store, dispatcher, batch)
        assert all(store.messages[m.id].claimed_by is None for m in batch)
        assert dispatcher.parts_in_memory == 0
        dispatcher.set_account_share(cfg.name, 0.5)  # a slot of it is this node's now
        assert dispatcher.sendable() is None
        await store.wait_until(lambda: dispatcher.parts_in_memory == 3)
        assert dispatcher.picked_up == 3
        assert {store.messages[m.id].claimed_by for m in batch} == {store.claims.node_id}
    finally:
        await dispatcher.stop(drain=0)


async def test_a_message_committed_unclaimed_is_not_held_even_if_a_slot_came_meanwhile() -> None:
    """What ``unclaimed`` said before the commit is what ``enqueue`` keeps to: a message
    committed claimed by nobody is never held in this node's memory (another node may take
    it), even when this node came to hold a slot of its carrier during the commit; this
    node's next look takes it up, claimed."""
    store = FakeStore()
    cfg = carrier()
    binds = [CarrierBind(s, RefusingListener()) for s in bind_settings(cfg)]
    dispatcher = Dispatcher(gateway_config([cfg]), store, binds, Router([], [cfg.name]))
    await dispatcher.start()
    try:
        dispatcher.set_account_share(cfg.name, 0.0)
        batch = messages(2)
        unclaimed = dispatcher.unclaimed(batch)
        await store.accept(batch, unclaimed=unclaimed)
        store.take_over_pending = _never  # type: ignore[method-assign]  # no look yet
        dispatcher.set_account_share(cfg.name, 1.0)  # during the commit
        dispatcher.enqueue(batch)
        assert dispatcher.parts_in_memory == 0
        assert all(store.messages[m.id].claimed_by is None for m in batch)
    finally:
        await dispatcher.stop(drain=0)


async def _never(*args: object, **kw: object) -> list[object]:
    return []


async def test_a_node_that_loses_its_last_slot_of_a_carrier_gives_its_waiting_messages_back() -> (
    None
):
    """Node A holds messages of its carrier waiting in memory (its bind is down) when the
    slot round gives the carrier's last slot here to another node: A takes them out of
    memory and gives their claims back, and node B takes them over at once."""
    store = FakeStore()
    cfg = carrier()
    binds = [CarrierBind(s, RefusingListener()) for s in bind_settings(cfg)]
    dispatcher = Dispatcher(gateway_config([cfg]), store, binds, Router([], [cfg.name]))
    await dispatcher.start()
    try:
        batch = messages(3)
        await accept_and_enqueue(store, dispatcher, batch)
        assert dispatcher.parts_in_memory == 3  # no bind up: waiting in the queue
        dispatcher.set_account_share(cfg.name, 0.0)  # the last slot went to node B
        assert dispatcher.parts_in_memory == 0
        await store.wait_until(lambda: dispatcher.handed_back == 3)
        assert all(store.messages[m.id].claimed_by is None for m in batch)
        other = store.peer("node-b")
        taken = await other.take_over_pending(100, now=time.time())
        assert sorted(m.id for m in taken) == sorted(m.id for m in batch)
    finally:
        await dispatcher.stop(drain=0)
