"""Contract: claims with expiry (gateway.store.claims). A row a node claims is not given to
another node until the claim lapses; renewing extends it; a lapsed claim is taken over; a
released one is free at once; two claimers never get the same row. Nodes "a" and "b" are
two stores over one database (``Harness.node``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.core.model import NewMessage
from gateway.store.base import NewInteraction
from gateway.store.campaign_base import CampaignRecord, ImportJob
from tests.fakes import new_message
from tests.store_contract.conftest import Harness

pytestmark = pytest.mark.port("callbacks")

LEASE = 30.0
T0 = 1_000_000.0
URL = "https://example.net/cb"


async def _ids(store: Any, now: float, limit: int = 100) -> list[int]:
    return [cb.id for cb in await store.callbacks_due(now, limit)]


async def test_a_claimed_callback_goes_to_no_other_node_until_the_claim_lapses(
    backend: Harness,
) -> None:
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
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


async def test_renewing_extends_a_claim_and_releasing_frees_it(backend: Harness) -> None:
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
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


async def test_a_retry_releases_the_claim(backend: Harness) -> None:
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    await a.enqueue_callbacks([(URL, "{}")], T0)
    [cid] = await _ids(a, T0)
    await a.callback_retry(cid, T0 + 5, "HTTP 500")
    assert await _ids(b, T0 + 4) == []  # not due yet
    assert await _ids(b, T0 + 5) == [cid]  # due again, for any node
    await b.callback_done(cid)
    assert await _ids(a, T0 + LEASE * 3) == []


async def test_two_concurrent_claimers_never_get_the_same_callback(backend: Harness) -> None:
    """Two nodes (on SQLite, two stores on one file, each with its own writer connection, so
    their claims race in SQLite itself), each taking small batches and delivering them, as
    a sender does: every callback goes out exactly once."""
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    total = 600
    await a.enqueue_callbacks([(URL, f'{{"n": {n}}}') for n in range(total)], T0)
    got: dict[str, list[int]] = {"a": [], "b": []}

    async def claimer(store: Any, name: str) -> None:
        while True:
            due = await store.callbacks_due(T0 + 1, 7)
            if not due:
                return
            for cb in due:
                got[name].append(cb.id)
                await store.callback_done(cb.id)
            await asyncio.sleep(0)  # a turn for the other (a fake store never waits)

    await asyncio.gather(claimer(a, "a"), claimer(b, "b"))
    both = got["a"] + got["b"]
    assert len(both) == total and len(set(both)) == total, "a callback went twice"
    assert got["a"] and got["b"], "one claimer starved the other: no race tested"


@pytest.mark.port("front")
async def test_front_items_are_claimed_like_callbacks(backend: Harness) -> None:
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
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
    assert [i.id for i in await b.front_due("crm", T0 + 20 + LEASE, 10)] == sorted([*first, *rest])


# -- pending messages (the queue) -----------------------------------------------------------

FUTURE = 1_900_000_000.0
"""Messages made then: their claims are live when a store opens now (it opens by the wall
clock)."""


def _message(n: int, **kw: object) -> NewMessage:
    return new_message(f"+3361234{n:04d}", f"text {n}", now=FUTURE + n, carrier="sim", **kw)  # type: ignore[arg-type]


async def _pending(store: Any, now: float) -> list[str]:
    return [m.id for m in await store.load_pending(None, 100, now=now)]


@pytest.mark.port("queue")
async def test_a_message_is_claimed_by_the_node_that_accepts_it(backend: Harness) -> None:
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    mine = [_message(n) for n in range(3)]
    await a.accept(mine)
    ids = sorted(m.id for m in mine)
    assert await _pending(b, FUTURE + 5) == []  # A's until FUTURE + n + LEASE
    assert await _pending(a, FUTURE + 5) == ids  # claimed again by A: until FUTURE + 5 + LEASE
    assert await _pending(b, FUTURE + 4 + LEASE) == []
    assert await _pending(b, FUTURE + 5 + LEASE) == ids  # lapsed: B's now
    assert await _pending(a, FUTURE + 6 + LEASE) == []
    assert await b.renew_claims(FUTURE + 30 + LEASE) == 3
    assert await _pending(a, FUTURE + 29 + 2 * LEASE) == []
    assert await b.release_claims() == 3
    assert await _pending(a, FUTURE + 31 + LEASE) == ids


@pytest.mark.port("queue")
async def test_at_start_only_parts_in_flight_nobody_else_holds_come_back_flagged(
    backend: Harness,
) -> None:
    """A store that opens takes back, as a crash's leftovers, the parts in flight that no
    other live node holds: its own previous life's are queued again and flagged, another
    node's are left to it until that node's claim lapses."""
    b = await backend.node("b", LEASE)
    ours, theirs = _message(1), _message(2)
    await backend.store.accept([ours], begun=[ours.id])  # this node, then a crash
    await b.accept([theirs], begun=[theirs.id])  # node B, alive, sending it
    await backend.crash()
    store = backend.store
    [back] = await store.load_pending(None, 100, now=FUTURE + 10)
    assert back.id == ours.id and back.possible_duplicate
    view = await store.get_message(theirs.id)
    assert view is not None and not view.possible_duplicate  # B's: not a leftover of ours
    # B dies too: once its claim lapses, its part in flight is a leftover, taken over.
    [taken] = await store.load_pending(ours.id, 100, now=FUTURE + 2 + LEASE)
    assert taken.id == theirs.id and taken.possible_duplicate


# -- pending MO, running campaigns and imports ------------------------------------------------


@pytest.mark.port("inbound")
async def test_a_pending_interaction_is_handled_by_the_node_that_logged_it(
    backend: Harness,
) -> None:
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    at = FUTURE
    ids = await b.record_interactions(
        [
            NewInteraction("sim", f"+3360000000{n}", "+33700000000", "YES", 0, 1, 1, at, at)
            for n in range(3)
        ]
    )
    assert await a.pending_interactions(0, 10, now=at + 1) == []  # B's, B handles them
    assert [i.id for i in await b.pending_interactions(0, 10, now=at + 1)] == ids
    assert await a.pending_interactions(0, 10, now=at + LEASE) == []  # B claimed again at +1
    # B dies: once its claims lapse, A takes the interactions over (as at a restart).
    assert [i.id for i in await a.pending_interactions(0, 10, now=at + 1 + LEASE)] == ids
    assert await b.pending_interactions(0, 10, now=at + 2 + LEASE) == []


@pytest.mark.port("campaigns")
async def test_a_running_campaign_is_run_by_one_node_at_a_time(backend: Harness) -> None:
    a, b = await backend.campaigns_node("a", LEASE), await backend.campaigns_node("b", LEASE)
    for n, status in enumerate(("running", "scheduled", "paused")):
        await a.save_campaign(CampaignRecord(f"c{n}", f"c{n}", "ACME", "hi", {}, status, FUTURE))
    assert await a.claim_campaign("c0", FUTURE)
    assert await a.claim_campaign("c0", FUTURE + 1)  # its own: renewed
    assert not await b.claim_campaign("c0", FUTURE + LEASE)
    assert await b.claim_campaign("c1", FUTURE)
    assert not await a.claim_campaign("c2", FUTURE)  # paused: nobody runs it
    assert await b.claim_campaign("c0", FUTURE + 1 + LEASE)  # A's lapsed: B takes over
    assert not await a.claim_campaign("c0", FUTURE + 2 + LEASE)


@pytest.mark.port("campaigns")
async def test_only_imports_no_live_node_runs_are_failed_at_start(backend: Harness) -> None:
    """At start a node fails the imports a stopped process left running: its own and those
    whose node's claim lapsed; one another live node runs is left running."""
    a, b = await backend.campaigns_node("a", LEASE), await backend.campaigns_node("b", LEASE)
    list_id = (await a.create_list("l", FUTURE)).id
    for name, store in (("mine", a), ("theirs", b)):
        await store.save_import(ImportJob(name, list_id, "running", "import", FUTURE))
    now = time.time()  # a running import is claimed from when it is saved
    assert await a.fail_running_imports("stopped", now) == 1
    mine, theirs = await a.get_import("mine"), await a.get_import("theirs")
    assert mine is not None and mine.status == "failed"
    assert theirs is not None and theirs.status == "running"
    assert await a.fail_running_imports("stopped", now + LEASE + 60) == 1  # B's lapsed
    theirs = await a.get_import("theirs")
    assert theirs is not None and theirs.status == "failed"
