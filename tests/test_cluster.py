"""The slot keeper (gateway.cluster): binds run only on the slots a node leases, surplus is
unbound before it is given back, a dead node's slots are taken at its lease's lapse, and a
node that cannot renew fences before its leases can lapse. The leases are the fake store's
(tests.fakes.FakeLeases, the rule of gateway.store.leases); time is passed in; the binds are
real, to the bundled simulator, which counts them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app.daemon import bind_settings
from gateway.binds import BindState, CarrierBind, RefusingListener
from gateway.cluster import FENCE_AT, FENCE_DRAIN, SlotKeeper
from gateway.store.leases import NodeInfo
from smsc_simulator.server import Simulator
from tests.e2e_helpers import eventually, gateway_config, simulator_config
from tests.fakes import FakeLeases

LEASE = 10.0
T0 = 1_900_000_000.0


class Clocks:
    """A wall clock and a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 100.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(simulator_config())
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def binds_to(sim: Simulator, tmp_path: Path, count: int = 2) -> list[CarrierBind]:
    assert sim.smpp_port
    config = gateway_config(tmp_path, sim.smpp_port, binds=count)
    return [CarrierBind(s, RefusingListener()) for s in bind_settings(config.carriers[0])]


def keeper(
    leases: FakeLeases, binds: list[CarrierBind], clocks: Clocks, shares: dict[str, float]
) -> SlotKeeper:
    return SlotKeeper(
        leases,
        binds,
        LEASE,
        lambda: NodeInfo(leases.node_id, http="127.0.0.1:1", started_at=T0),
        on_share=lambda carrier, share: shares.__setitem__(carrier, share),
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )


def bound_at(sim: Simulator) -> int:
    return len(sim.accounts["smsgw"].binds)


async def settle(*keepers: SlotKeeper) -> None:
    """Wait for the binds' starts and stops under way (no timers involved)."""
    for k in keepers:
        await asyncio.gather(*list(k._transitions.values()), return_exceptions=True)


async def stop_all(*groups: list[CarrierBind]) -> None:
    for binds in groups:
        await asyncio.gather(*(b.stop(0.5) for b in binds))


async def test_a_node_binds_only_the_slots_it_leases_and_hands_over_its_surplus(
    sim: Simulator, tmp_path: Path
) -> None:
    clocks = Clocks()
    a_leases = FakeLeases("a")
    b_leases = a_leases.peer("b")
    a_binds, b_binds = binds_to(sim, tmp_path / "a"), binds_to(sim, tmp_path / "b")
    a_shares: dict[str, float] = {}
    b_shares: dict[str, float] = {}
    a = keeper(a_leases, a_binds, clocks, a_shares)
    b = keeper(b_leases, b_binds, clocks, b_shares)
    try:
        assert await a.round()
        await eventually(lambda: _true(all(x.bound for x in a_binds)))
        assert a.held == {("sim", 0), ("sim", 1)} and a_shares == {"sim": 1.0}
        clocks.advance(1)
        assert await b.round()  # B is live now, but nothing is free yet
        await settle(b)
        assert b.held == frozenset() and all(x.state is BindState.STANDBY for x in b_binds)
        assert b_shares == {"sim": 0.0}
        clocks.advance(1)
        assert await a.round()  # over its share: unbinds slot 1, then gives it back
        assert a.held == {("sim", 0)} and a_shares == {"sim": 0.5}
        await settle(a)
        assert a_binds[1].state is BindState.STANDBY and a_binds[0].bound
        assert a_leases.tables.slots[("sim", 1)].owner is None
        clocks.advance(1)
        assert await b.round()
        assert b.held == {("sim", 1)} and b_shares == {"sim": 0.5}
        await eventually(lambda: _true(b_binds[1].bound))
        assert b_binds[0].state is BindState.STANDBY
        assert sim.accounts["smsgw"].peak_binds == 2
        assert bound_at(sim) == 2

        # A dies without a word: B wakes at A's lapse, not a third of a lease later.
        dead_until = a_leases.tables.nodes["a"].until
        for x in a_binds:
            await x.stop(0)
        clocks.advance(dead_until - clocks.wall - 1)
        assert await b.round()
        assert b.next_delay() == pytest.approx(1.0)  # < a third of the lease
        clocks.advance(0.99)
        assert await b.round()
        assert b.held == {("sim", 1)}  # not yet lapsed
        clocks.advance(0.01)
        assert await b.round()
        assert b.held == {("sim", 0), ("sim", 1)} and b_shares == {"sim": 1.0}
        await eventually(lambda: _true(all(x.bound for x in b_binds)))
        assert sim.accounts["smsgw"].peak_binds == 2
    finally:
        await a.stop()
        await b.stop()
        await stop_all(a_binds, b_binds)


async def test_a_node_that_cannot_renew_fences_before_its_leases_lapse(
    sim: Simulator, tmp_path: Path
) -> None:
    clocks = Clocks()
    leases = FakeLeases("a")
    binds = binds_to(sim, tmp_path)
    shares: dict[str, float] = {}
    k = keeper(leases, binds, clocks, shares)
    try:
        assert await k.round()
        renewed_at, until = clocks.mono, leases.tables.nodes["a"].until
        await eventually(lambda: _true(all(x.bound for x in binds)))
        deadline = k.fence_deadline
        assert deadline == renewed_at + LEASE * FENCE_AT
        # Closed, drain included, before the lease lapses (on the same clock).
        assert deadline + LEASE * FENCE_DRAIN < renewed_at + LEASE
        assert until == T0 + LEASE

        leases.tables.fail = 1000  # the database is out of reach
        clocks.advance(LEASE / 3)
        assert not await k.round()
        clocks.advance(LEASE / 3)
        assert not await k.round()
        assert k.stats.failures == 2 and not k.fenced
        assert not k.check_fence(deadline - 0.001)
        assert all(x.bound for x in binds)  # still within the lease: still sending
        assert k.check_fence(deadline)
        # At once: no bind takes a submit any more, before the unbind is even sent.
        assert not any(x.bound for x in binds) and all(x.window_free == 0 for x in binds)
        assert k.fenced and k.stats.fences == 1 and k.held == frozenset()
        assert not k.check_fence(deadline + 1)  # counted once
        await settle(k)
        assert all(x.state is BindState.STANDBY for x in binds)
        await eventually(lambda: _true(bound_at(sim) == 0))
        health = k.health()
        assert health["fenced"] is True and health["fences"] == 1 and health["held"] == []

        # The database is back before anyone took the slots: the node binds them again.
        leases.tables.fail = 0
        clocks.advance(1)
        assert await k.round()
        assert not k.fenced and k.held == {("sim", 0), ("sim", 1)}
        await eventually(lambda: _true(all(x.bound for x in binds)))
    finally:
        await k.stop()
        await stop_all(binds)


async def test_a_renewal_that_hangs_fences_by_the_timer(sim: Simulator, tmp_path: Path) -> None:
    """A statement that never returns (a frozen network) must not hold the fence back: the
    timer fires on its own (real clocks here, a one-second lease)."""
    leases = FakeLeases("a")
    binds = binds_to(sim, tmp_path)
    k = SlotKeeper(leases, binds, 1.0, lambda: NodeInfo("a"))
    stuck = asyncio.Event()
    try:
        await k.start()
        await eventually(lambda: _true(all(x.bound for x in binds)))

        async def hang(*args: object) -> object:
            await stuck.wait()
            raise AssertionError("unreachable")

        leases.lease_round = hang  # type: ignore[method-assign]
        await eventually(lambda: _true(k.fenced), within=10)
        await eventually(lambda: _true(bound_at(sim) == 0))
        assert k.stats.fences == 1
    finally:
        stuck.set()
        await k.stop()
        await stop_all(binds)


async def _true(value: bool) -> bool:
    return value


def test_binds_in_standby_leave_the_health_and_the_overview_ok(tmp_path: Path) -> None:
    """A bind whose slot another node holds is not a fault: /healthz and the console's
    overview stay ok (only its own binds count), and its last error is no current one."""
    from gateway.console.overview import OverviewSources, overview
    from gateway.http.app import health

    config = gateway_config(tmp_path, 2775, binds=2)
    binds = [CarrierBind(s, RefusingListener()) for s in bind_settings(config.carriers[0])]
    binds[0].state = BindState.BOUND
    binds[1].last_error = "unbound"
    binds[1].standby()
    assert binds[1].state is BindState.STANDBY and binds[1].settled.is_set()
    assert health(binds)["status"] == "ok"
    assert [b["state"] for b in health(binds)["binds"]] == ["bound", "standby"]
    shown = overview(OverviewSources(binds))
    assert shown["status"] == "ok" and shown["errors"] == []
    binds[0].state = BindState.BACKOFF
    assert health(binds)["status"] == "degraded"
    assert overview(OverviewSources(binds))["status"] == "degraded"


async def test_a_node_alone_on_its_file_keeps_its_binds_when_a_round_fails(
    sim: Simulator, tmp_path: Path
) -> None:
    """SQLite: one process per data directory, so nobody could take a slot: a failed round
    is counted, and the binds stay (as before leases)."""
    clocks = Clocks()
    leases = FakeLeases("a", shared=False)
    binds = binds_to(sim, tmp_path)
    k = keeper(leases, binds, clocks, {})
    try:
        assert await k.round()
        await eventually(lambda: _true(all(x.bound for x in binds)))
        leases.tables.fail = 10
        clocks.advance(LEASE)
        assert not await k.round()
        assert not k.check_fence(clocks.mono) and not k.fenced
        assert all(x.bound for x in binds) and k.stats.failures == 1
        leases.tables.fail = 0
        clocks.advance(1)
        assert await k.round()  # its lapsed slots are its own again
        assert k.held == {("sim", 0), ("sim", 1)} and all(x.bound for x in binds)
    finally:
        await k.stop()
        await stop_all(binds)
