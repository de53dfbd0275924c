"""Contract: the queue across nodes. A node loads only the carriers it has binds of; a
message accepted on a node with no bind of its carrier is committed unclaimed and taken by
one that has; a dead node's pending messages are taken over by a running node once their
claims lapse (its parts in flight flagged possible_duplicate, as at start-up); and on a
backend several nodes share, the commit that leaves such work wakes the other nodes.
Nodes "a" and "b" are two stores over one database (``Harness.node``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.core.model import NewMessage
from gateway.store.claims import WAKE_CALLBACKS, WAKE_FRONT, WAKE_QUEUE
from tests.fakes import new_message
from tests.store_contract.conftest import Harness

pytestmark = pytest.mark.port("queue")

LEASE = 30.0
FUTURE = 1_900_000_000.0
"""Messages made then: their claims are live when a store opens now (by the wall clock)."""


def _message(n: int, carrier: str = "sim", parts: int = 1) -> NewMessage:
    return new_message(
        f"+3361234{n:04d}", f"text {n}", now=FUTURE + n, carrier=carrier, parts=parts
    )


def _ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


async def test_load_pending_gives_only_the_carriers_asked_for(backend: Harness) -> None:
    a = await backend.node("a", LEASE)
    sim, other = [_message(n) for n in range(3)], [_message(10 + n, "other") for n in range(2)]
    await a.accept([*sim, *other])
    now = FUTURE + 20
    assert _ids(await a.load_pending(None, 100, now=now, carriers={"nobody"})) == []
    assert _ids(await a.load_pending(None, 100, now=now, carriers={"other"})) == _ids(other)
    assert _ids(await a.load_pending(None, 100, now=now, carriers=["sim", "x"])) == _ids(sim)
    assert _ids(await a.load_pending(None, 100, now=now)) == _ids([*sim, *other])  # None: all


async def test_a_message_accepted_unclaimed_is_taken_by_a_node_with_its_carrier(
    backend: Harness,
) -> None:
    """Node B has no bind of carrier "sim": it commits those messages claimed by nobody;
    node A, which has one, takes them over while both run; B's own stay B's."""
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    theirs = [_message(n, parts=2) for n in range(3)]
    own = _message(9, "other")
    await b.accept([*theirs, own], unclaimed={m.id for m in theirs})
    now = FUTURE + 10  # every claim B made is live
    assert _ids(await b.load_pending(None, 100, now=now, carriers={"other"})) == [own.id]
    assert await a.take_over_pending(100, now=now, carriers={"other"}) == []  # B's, live
    taken = await a.take_over_pending(100, now=now, carriers={"sim"})
    assert _ids(taken) == _ids(theirs)
    assert all(m.taken_from is None for m in taken)  # nobody held them: no takeover
    assert all(m.pending_parts == (1, 2) and not m.possible_duplicate for m in taken)
    # A's now: nobody else is given them while A's claim lasts, not even twice to A.
    assert await b.take_over_pending(100, now=now + 1) == []
    assert await a.take_over_pending(100, now=now + 1) == []
    assert _ids(await b.load_pending(None, 100, now=now + 1)) == [own.id]


async def test_a_dead_nodes_messages_are_taken_over_by_a_running_node(backend: Harness) -> None:
    """Both nodes run; A stops renewing (it died) with one message waiting and one on the
    wire. B takes them over once A's claims lapse, not before; the one in flight comes back
    flagged possible_duplicate (for good), with its part queued again."""
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    waiting, in_flight = _message(1), _message(2)
    await a.accept([waiting, in_flight], begun={in_flight.id})
    mine = _message(40)  # claimed by B until FUTURE + 40 + LEASE
    await b.accept([mine])
    assert await b.take_over_pending(100, now=FUTURE + LEASE) == []  # A's claims live
    taken = await b.take_over_pending(100, now=FUTURE + 2 + LEASE)
    assert _ids(taken) == [waiting.id, in_flight.id]  # never B's own
    assert [m.taken_from for m in taken] == ["a", "a"]
    assert [m.possible_duplicate for m in taken] == [False, True]
    assert taken[1].pending_parts == (1,)
    view = await b.get_message(in_flight.id)
    assert view is not None and view.possible_duplicate
    # B's now: A, coming back, finds them claimed; B's next look finds nothing new.
    assert await a.take_over_pending(100, now=FUTURE + 3 + LEASE) == []
    assert await a.load_pending(None, 100, now=FUTURE + 3 + LEASE) == []
    assert await b.take_over_pending(100, now=FUTURE + 3 + LEASE) == []
    # B's claim lasts until it lapses in turn.
    assert _ids(await a.take_over_pending(100, now=FUTURE + 2 + 2 * LEASE)) == _ids(
        [waiting, in_flight]
    )


async def test_take_over_pending_keeps_to_its_limit_and_the_carriers(backend: Harness) -> None:
    b = await backend.node("b", LEASE)
    messages = [_message(n, "sim" if n % 2 else "other") for n in range(10)]
    await backend.store.accept(messages, unclaimed={m.id for m in messages})
    first = await b.take_over_pending(2, now=FUTURE + 20, carriers={"sim"})
    assert len(first) == 2 and {m.carrier for m in first} == {"sim"}
    rest = await b.take_over_pending(100, now=FUTURE + 20, carriers={"sim"})
    assert len(rest) == 3 and not set(_ids(rest)) & set(_ids(first))


async def test_a_commit_that_leaves_work_wakes_another_nodes_listener(backend: Harness) -> None:
    """On a backend several nodes share, node B hears what node A's commits leave for
    others: messages accepted unclaimed (with their carrier), new callbacks and front
    outbox items (with their account), claims given back. Nothing for what A keeps."""
    if not backend.shared:
        pytest.skip("one node has this backend to itself: nobody to wake")
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    heard: list[tuple[str, str]] = []
    more = asyncio.Event()

    def wake(kind: str, key: str) -> None:
        heard.append((kind, key))
        more.set()

    await b.listen(wake)

    async def hear(expected: tuple[str, str]) -> None:
        async def wait() -> None:
            while expected not in heard:
                more.clear()
                await more.wait()

        await asyncio.wait_for(wait(), 60)  # a hang guard, not a timing

    await a.accept([_message(1)])  # claimed by A: wakes nobody
    left = [_message(2), _message(3)]
    await a.accept(left, unclaimed={m.id for m in left})
    await hear((WAKE_QUEUE, "sim"))
    await a.enqueue_callbacks([("https://example.net/cb", "{}")], FUTURE)
    await hear((WAKE_CALLBACKS, ""))
    await a.front_enqueue([("crm", "mo", "{}")], FUTURE)
    await hear((WAKE_FRONT, "crm"))
    await a.release_claims()
    await hear((WAKE_QUEUE, ""))
    assert heard.count((WAKE_QUEUE, "sim")) == 1  # one wake per commit and carrier
    assert all(kind != WAKE_QUEUE or key in ("sim", "") for kind, key in heard)


@pytest.mark.port("callbacks")
async def test_a_callback_taken_over_says_whose_claim_lapsed(backend: Harness) -> None:
    """On a backend several nodes share, the claiming read names the node whose lapsed
    claim it took (the sender counts it), once: read again, the row is this node's."""
    if not backend.shared:
        pytest.skip("one node has this backend to itself: nobody to take over from")
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    await a.enqueue_callbacks([("https://example.net/cb", "{}")] * 2, FUTURE)
    await b.enqueue_callbacks([("https://example.net/cb", "{}")], FUTURE)
    assert [cb.taken_from for cb in await a.callbacks_due(FUTURE, 10)] == [None] * 3
    assert [cb.taken_from for cb in await a.callbacks_due(FUTURE + 1, 10)] == [None] * 3
    taken = await b.callbacks_due(FUTURE + 1 + LEASE, 10)
    assert [cb.taken_from for cb in taken] == ["a"] * 3
    assert [cb.taken_from for cb in await b.callbacks_due(FUTURE + 2 + LEASE, 10)] == [None] * 3


@pytest.mark.port("front")
async def test_a_front_item_taken_over_says_whose_claim_lapsed(backend: Harness) -> None:
    if not backend.shared:
        pytest.skip("one node has this backend to itself: nobody to take over from")
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    await a.front_enqueue([("crm", "mo", "{}")] * 2, FUTURE)
    assert [i.taken_from for i in await a.front_due("crm", FUTURE, 10)] == [None, None]
    assert [i.taken_from for i in await b.front_due("crm", FUTURE + LEASE, 10)] == ["a", "a"]
    assert [i.taken_from for i in await b.front_due("crm", FUTURE + LEASE + 1, 10)] == [
        None,
        None,
    ]


async def test_released_messages_are_any_nodes_at_once(backend: Harness) -> None:
    """A node that no longer sends a carrier gives back its messages of it: another node
    takes them at once, not after the claim would have lapsed; another node's are not
    this node's to give."""
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    mine, theirs = [_message(1), _message(2)], _message(3)
    await a.accept(mine)
    await b.accept([theirs])
    assert await a.release_messages([*(m.id for m in mine), theirs.id]) == 2
    taken = await b.take_over_pending(100, now=FUTURE + 5)
    assert _ids(taken) == _ids(mine) and all(m.taken_from is None for m in taken)
    assert await a.load_pending(None, 100, now=FUTURE + 5) == []  # B's now; B keeps its own
