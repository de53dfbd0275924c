"""gateway.store.leases.round_result: what a lease round leaves a node with, as every backend
(SQLite, PostgreSQL, the test fake) reports it."""

from __future__ import annotations

from gateway.store.leases import ClusterView, NodeRow, Plan, SlotRow, round_result


def test_a_round_owns_the_slots_it_holds_and_gives_back_only_owned_surplus() -> None:
    nodes = [
        NodeRow("a", "http://a", "", 0.0, 10.0, 40.0),
        NodeRow("b", "http://b", "", 0.0, 10.0, 25.0),
    ]
    slots = [
        SlotRow("c1", 0, "a", 1.0, 40.0),
        SlotRow("c1", 1, "a", 1.0, 5.0),  # lapsed: not owned
        SlotRow("c1", 2, "b", 1.0, 30.0),
        SlotRow("c2", 0, "a", 1.0, 40.0),
    ]
    plan = Plan(renew=(), take=(), surplus=(("c2", 0), ("c1", 1)))
    got = round_result("a", plan, 40.0, ("a", "b"), nodes, slots, 10.0)
    assert got.owned == {("c1", 0), ("c2", 0)}
    assert got.surplus == {("c2", 0)}
    assert got.until == 40.0 and got.live == ("a", "b")
    assert got.next_change == 25.0  # b's heartbeat lapses before its slot
    assert got.view == ClusterView(10.0, tuple(nodes), tuple(slots))
