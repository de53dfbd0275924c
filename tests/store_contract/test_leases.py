"""Contract: the node registry and the bind-slot leases (gateway.store.leases). Nodes "a",
"b", "c" are stores over one database (``Harness.leases``); time is passed in."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from gateway.store.leases import LeaseRound, NodeInfo

pytestmark = pytest.mark.port("leases")

LEASE = 10.0
T0 = 1_900_000_000.0


def info(node_id: str) -> NodeInfo:
    return NodeInfo(node_id, http=f"127.0.0.1:{8000 + ord(node_id[0])}", started_at=T0 - 60)


async def turn(nodes: dict[str, Any], wanted: dict[str, int], now: float) -> dict[str, LeaseRound]:
    """One round of every node, one after the other, at ``now``."""
    return {n: await leases.lease_round(info(n), wanted, now, LEASE) for n, leases in nodes.items()}


def disjoint(rounds: dict[str, LeaseRound]) -> None:
    seen = Counter(slot for r in rounds.values() for slot in r.owned)
    assert all(count == 1 for count in seen.values()), seen


async def test_one_node_leases_every_slot_of_every_carrier(backend: Any) -> None:
    a = await backend.leases("a")
    r = await a.lease_round(info("a"), {"sim": 2, "other": 3}, T0, LEASE)
    assert r.owned == {("sim", 0), ("sim", 1), ("other", 0), ("other", 1), ("other", 2)}
    assert r.surplus == frozenset() and r.until == T0 + LEASE and r.live == ("a",)
    view = await a.cluster_view(T0 + 1)
    [node] = view.nodes
    assert (node.node_id, node.http, node.heartbeat_at, node.until) == (
        "a",
        info("a").http,
        T0,
        T0 + LEASE,
    )
    assert {(s.carrier, s.slot, s.owner, s.since) for s in view.slots} == {
        (c, k, "a", T0) for c, k in r.owned
    }
    # Renewed by the next round, taken once (``since`` stays).
    again = await a.lease_round(info("a"), {"sim": 2, "other": 3}, T0 + 3, LEASE)
    assert again.owned == r.owned and again.until == T0 + 3 + LEASE
    view = await a.cluster_view(T0 + 3)
    assert {s.until for s in view.slots} == {T0 + 3 + LEASE}
    assert {s.since for s in view.slots} == {T0}


@pytest.mark.parametrize("count", [1, 2, 3])
async def test_slots_spread_evenly_over_the_live_nodes(backend: Any, count: int) -> None:
    names = ["a", "b", "c"][:count]
    nodes = {n: await backend.leases(n) for n in names}
    wanted = {"one": 1, "two": 2, "three": 3, "four": 4, "seven": 7}
    now = T0
    for _ in range(3):  # a node gives its surplus back between rounds (after its unbind)
        rounds = await turn(nodes, wanted, now)
        disjoint(rounds)
        for n, r in rounds.items():
            if r.surplus:
                assert await nodes[n].release_slots(r.surplus) == len(r.surplus)
        now += LEASE / 3
    rounds = await turn(nodes, wanted, now)
    disjoint(rounds)
    for carrier, total in wanted.items():
        counts = [sum(1 for c, _ in r.owned if c == carrier) for r in rounds.values()]
        assert sum(counts) == total, (carrier, counts)
        assert max(counts) - min(counts) <= 1, (carrier, counts)
        assert max(counts) == -(-total // count)  # ceil(N / live)
    assert all(not r.surplus for r in rounds.values())
    assert all(r.live == tuple(names) for r in rounds.values())


async def test_a_node_gives_back_its_surplus_when_another_comes(backend: Any) -> None:
    a, b = await backend.leases("a"), await backend.leases("b")
    first = await a.lease_round(info("a"), {"sim": 2}, T0, LEASE)
    assert first.owned == {("sim", 0), ("sim", 1)}
    joined = await b.lease_round(info("b"), {"sim": 2}, T0 + 1, LEASE)
    assert joined.owned == frozenset() and joined.live == ("a", "b")  # nothing free yet
    over = await a.lease_round(info("a"), {"sim": 2}, T0 + 2, LEASE)
    # Still A's (renewed) until A has unbound it and gives it back.
    assert over.owned == {("sim", 0), ("sim", 1)} and over.surplus == {("sim", 1)}
    assert (await b.lease_round(info("b"), {"sim": 2}, T0 + 3, LEASE)).owned == frozenset()
    assert await a.release_slots(over.surplus) == 1
    assert await b.release_slots(over.surplus) == 0  # not B's to give
    took = await b.lease_round(info("b"), {"sim": 2}, T0 + 4, LEASE)
    assert took.owned == {("sim", 1)}
    settled = await a.lease_round(info("a"), {"sim": 2}, T0 + 5, LEASE)
    assert settled.owned == {("sim", 0)} and settled.surplus == frozenset()


async def test_slots_of_a_dead_node_are_taken_once_its_lease_lapses(backend: Any) -> None:
    a, b = await backend.leases("a"), await backend.leases("b")
    await a.lease_round(info("a"), {"sim": 2}, T0, LEASE)
    waiting = await b.lease_round(info("b"), {"sim": 2}, T0 + 1, LEASE)
    assert waiting.owned == frozenset()
    assert waiting.next_change == T0 + LEASE  # when A's heartbeat and slots lapse
    # A dies: no more rounds. Just before its lease lapses, nothing moves.
    before = await b.lease_round(info("b"), {"sim": 2}, T0 + LEASE - 0.01, LEASE)
    assert before.owned == frozenset() and before.live == ("a", "b")
    after = await b.lease_round(info("b"), {"sim": 2}, T0 + LEASE, LEASE)
    assert after.owned == {("sim", 0), ("sim", 1)} and after.live == ("b",)
    view = await b.cluster_view(T0 + LEASE)
    assert {n.node_id: n.live(view.at) for n in view.nodes} == {"a": False, "b": True}
    # A comes back (a restart): it gets its share again through B's surplus.
    back = await a.lease_round(info("a"), {"sim": 2}, T0 + LEASE + 1, LEASE)
    assert back.owned == frozenset()
    over = await b.lease_round(info("b"), {"sim": 2}, T0 + LEASE + 2, LEASE)
    assert len(over.surplus) == 1


async def test_a_node_that_leaves_hands_its_slots_over_at_once(backend: Any) -> None:
    a, b = await backend.leases("a"), await backend.leases("b")
    await a.lease_round(info("a"), {"sim": 2}, T0, LEASE)
    assert (await b.lease_round(info("b"), {"sim": 2}, T0 + 1, LEASE)).owned == frozenset()
    assert await a.leave(T0 + 2) == 2
    took = await b.lease_round(info("b"), {"sim": 2}, T0 + 2, LEASE)
    assert took.owned == {("sim", 0), ("sim", 1)} and took.live == ("b",)


async def test_slots_beyond_the_configured_binds_are_surplus(backend: Any) -> None:
    a = await backend.leases("a")
    await a.lease_round(info("a"), {"sim": 3, "gone": 1}, T0, LEASE)
    fewer = await a.lease_round(info("a"), {"sim": 2}, T0 + 1, LEASE)
    assert fewer.surplus == {("sim", 2), ("gone", 0)}
    assert await a.release_slots(fewer.surplus) == 2
    again = await a.lease_round(info("a"), {"sim": 2}, T0 + 2, LEASE)
    assert again.owned == {("sim", 0), ("sim", 1)} and again.surplus == frozenset()


async def test_concurrent_rounds_never_give_one_slot_to_two_nodes(backend: Any) -> None:
    """Three fresh nodes start at the same moment: none sees the others live yet, so each
    wants every slot; whatever the interleaving (on SQLite, three stores on one file each
    with its own writer; on PostgreSQL, three pools), each slot goes to one node."""
    names = ["a", "b", "c"]
    wanted = {f"c{k}": 1 + k % 4 for k in range(12)}
    for step in range(4):
        nodes = {n: await backend.leases(f"{n}{step}") for n in names}
        now = T0 + 100 * step  # every earlier step's leases have lapsed
        results = await asyncio.gather(
            *(
                leases.lease_round(info(n), wanted, now + i * 1e-6, LEASE)
                for i, (n, leases) in enumerate(nodes.items())
            )
        )
        rounds = dict(zip(names, results, strict=True))
        disjoint(rounds)
        owned = {slot for r in results for slot in r.owned}
        assert owned == {(c, k) for c, n in wanted.items() for k in range(n)}
        view = await nodes["a"].cluster_view(now + 1)
        owners = {(s.carrier, s.slot): s.owner for s in view.slots}
        for n, r in rounds.items():
            assert all(owners[slot] == f"{n}{step}" for slot in r.owned)
