"""Contract: claims with expiry (gateway.store.claims). A row a node claims is not given to
another node until the claim lapses; renewing extends it; a lapsed claim is taken over; a
released one is free at once; two claimers never get the same row. Nodes "a" and "b" are
two stores over one database (``Harness.node``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from gateway.core.model import NewMessage
from gateway.store.base import InteractionOutcome, NewInteraction
from gateway.store.campaign_base import CampaignRecord, ImportJob, ImportRow, ListInUse
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


@pytest.mark.port("inbound")
async def test_renewing_keeps_pending_interactions_and_releasing_frees_them(
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
    done = await b.record_interactions([NewInteraction("sim", "+33", "+33", "X", 0, 1, 1, at, at)])
    await b.finish_interactions([InteractionOutcome(done[0], None, None, None, [], at)])
    assert await b.renew_claims(at + 20) == 3  # the pending ones only
    assert await a.pending_interactions(0, 10, now=at + LEASE + 1) == []  # renewed
    assert await b.release_claims() == 3
    assert [i.id for i in await a.pending_interactions(0, 10, now=at + 21)] == ids


@pytest.mark.port("inbound")
async def test_two_nodes_taking_over_pending_interactions_never_get_the_same_one(
    backend: Harness,
) -> None:
    """A dead node's interactions, taken over by four live nodes at once, each paging and
    finishing what it got as the inbound service does: every one is handled exactly once
    (on SQLite, two stores on one file race in SQLite itself)."""
    dead = await backend.node("dead", LEASE)
    nodes = [await backend.node(name, LEASE) for name in "abcd"]
    total = 400
    at = FUTURE
    logged = await dead.record_interactions(
        [
            NewInteraction("sim", f"+336{n:08d}", "+33700000000", "YES", 0, 1, 1, at, at)
            for n in range(total)
        ]
    )
    later = at + LEASE  # the dead node's claims have lapsed
    got: dict[str, list[int]] = {name: [] for name in "abcd"}

    async def handler(store: Any, name: str) -> None:
        while True:
            page = await store.pending_interactions(0, 5, now=later)
            if not page and not await store.interactions(state="pending", limit=1):
                return  # (a page may come back empty while the other node works)
            got[name] += [i.id for i in page]
            await store.finish_interactions(
                [InteractionOutcome(i.id, None, None, None, [], later) for i in page]
            )
            await asyncio.sleep(0)  # a turn for the other (a fake store never waits)

    await asyncio.gather(*(handler(store, name) for store, name in zip(nodes, "abcd", strict=True)))
    handled = [i for ids in got.values() for i in ids]
    assert sorted(handled) == sorted(logged), "an interaction was handled twice or never"
    assert sum(1 for ids in got.values() if ids) >= 2, "one node took all: no race tested"


@pytest.mark.port("inbound")
async def test_a_reader_paging_by_id_sees_every_interaction_two_nodes_log(
    backend: Harness,
) -> None:
    """Interaction ids grow in commit order, whichever node logs: a reader that pages the
    log by id while two nodes log (as the export's "new" interactions and the pending scan
    do) never passes an id that commits after a larger one."""
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    rounds = 60
    done = 0
    seen: list[int] = []

    async def logger(store: Any, name: str) -> list[int]:
        nonlocal done
        ids: list[int] = []
        for n in range(rounds):
            mo = NewInteraction("sim", f"+33{name}{n:08d}", "+33700000000", "HI", 0, 1, 1, 0, 0)
            batch = [mo] * (1 + n % 3)
            ids += await store.record_interactions(batch)
        done += 1
        return ids

    async def reader() -> None:
        after = 0
        while True:
            finished = done == 2  # read after both loggers returned: the last page
            page = await backend.store.interactions(after=after, limit=50)
            seen.extend(i.id for i in page)
            if page:
                after = page[-1].id
            elif finished:
                return
            await asyncio.sleep(0)

    ids_a, ids_b, _ = await asyncio.gather(logger(a, "1"), logger(b, "2"), reader())
    assert ids_a == sorted(ids_a) and ids_b == sorted(ids_b)
    assert sorted(seen) == sorted(ids_a + ids_b), "the reader passed an id that came later"
    assert seen == sorted(seen)


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


@pytest.mark.port("campaigns")
async def test_two_nodes_claiming_a_campaign_at_once_never_both_get_it(backend: Harness) -> None:
    """Nodes A and B claim the same campaigns at the same moment (on SQLite two stores on
    one file, each with its own writer; on PostgreSQL two pools): each campaign goes to
    exactly one, whether it was free or held by a node C whose claim lapsed."""
    a, b, c = [await backend.campaigns_node(name, LEASE) for name in "abc"]
    ids = [f"c{n}" for n in range(20)]
    for cid in ids:
        await a.save_campaign(CampaignRecord(cid, cid, "ACME", "hi", {}, "running", FUTURE))
    for cid in ids[10:]:
        assert await c.claim_campaign(cid, FUTURE)  # C runs these, then dies
    now = FUTURE + LEASE  # C's claims lapse now

    async def race(n: int, cid: str) -> tuple[bool, bool]:
        first, second = (a, b) if n % 2 else (b, a)  # each starts first half of the time
        got = await asyncio.gather(first.claim_campaign(cid, now), second.claim_campaign(cid, now))
        return (got[0], got[1]) if n % 2 else (got[1], got[0])

    won = await asyncio.gather(*(race(n, cid) for n, cid in enumerate(ids)))
    assert all(a_won != b_won for a_won, b_won in won), won  # one winner, never two
    # Each keeps its own: the other is refused until the winner's claim lapses.
    for cid, (a_won, _) in zip(ids, won, strict=True):
        loser = b if a_won else a
        assert not await loser.claim_campaign(cid, now + LEASE - 1)
        assert await loser.claim_campaign(cid, now + LEASE)


@pytest.mark.port("campaigns")
async def test_a_dead_nodes_campaign_is_resumed_from_its_cursor_messaging_nobody_twice(
    backend: Harness,
) -> None:
    """Node A runs a campaign as the runner does (claim, fix the audience, a chunk: its
    messages, then the cursor) and dies in its second chunk, after two of its three
    messages. Node B waits for A's claim to lapse, takes the campaign over from A's cursor,
    passes over the numbers A messaged, and finishes: each recipient has one message."""
    a_store, b_store = await backend.node("a", LEASE), await backend.node("b", LEASE)
    a, b = await backend.campaigns_of(a_store), await backend.campaigns_of(b_store)
    numbers = [f"+3360000{n:04d}" for n in range(8)]
    friends = await a.create_list("friends", FUTURE)
    await a.import_rows(friends.id, [ImportRow(n, None, {}) for n in numbers], "form", FUTURE)
    await a.save_campaign(CampaignRecord("c1", "c1", "ACME", "hi", {}, "running", FUTURE))

    async def send(store: Any, to: Sequence[str], at: float) -> None:
        await store.accept(
            [new_message(n, "hi", now=at, carrier="sim", campaign_id="c1") for n in to]
        )

    assert await a.claim_campaign("c1", FUTURE)
    assert await a.fix_audience("c1", [friends.id], []) == len(numbers)
    first = await a.recipients_after("c1", None, 3)
    await send(a_store, first, FUTURE + 1)
    await a.advance_campaign("c1", first[-1], len(first), 0, 0)
    second = await a.recipients_after("c1", first[-1], 3)
    await send(a_store, second[:2], FUTURE + 2)  # A dies here: no cursor move
    assert await a_store.renew_claims(FUTURE + 3) >= 1  # its last renewal: until +3 + LEASE

    assert not await b.claim_campaign("c1", FUTURE + 3 + LEASE - 1)
    assert await b.claim_campaign("c1", FUTURE + 3 + LEASE)
    assert not await a.claim_campaign("c1", FUTURE + 4 + LEASE)  # B's now
    assert await b.fix_audience("c1", [friends.id], []) == len(numbers)  # as A fixed it
    record = await b.get_campaign("c1")
    assert record is not None and (record.cursor, record.handled) == (first[-1], 3)
    cursor, at, chunks = record.cursor, FUTURE + 5 + LEASE, []
    while chunk := await b.recipients_after("c1", cursor, 3):
        chunks.append(chunk)
        already = await b.already_messaged("c1", chunk)
        await send(b_store, [n for n in chunk if n not in already], at)
        await b.advance_campaign("c1", chunk[-1], len(chunk), 0, 0)
        cursor = chunk[-1]
    assert chunks[0] == second
    statuses = await b.campaign_statuses("c1")
    assert sum(statuses.values()) == len(numbers), statuses  # nobody twice
    assert await b.already_messaged("c1", numbers) == set(numbers)  # nobody left out
    record = await b.get_campaign("c1")
    assert record is not None and (record.cursor, record.handled) == (numbers[-1], len(numbers))


@pytest.mark.port("campaigns")
async def test_a_live_node_keeps_its_campaign_and_import_by_renewing_and_frees_them_at_stop(
    backend: Harness,
) -> None:
    """The claims of a running campaign and a running import are renewed with the node's
    other claims (Claims.renew_claims of its message store) and released at a clean stop."""
    a_store = await backend.node("a", LEASE)
    a, b = await backend.campaigns_of(a_store), await backend.campaigns_node("b", LEASE)
    now = time.time()  # a running import is claimed from when it is saved
    list_id = (await a.create_list("l", now)).id
    await a.save_import(ImportJob("i1", list_id, "running", "import", now))
    await a.save_campaign(CampaignRecord("c1", "c1", "ACME", "hi", {}, "running", now))
    assert await a.claim_campaign("c1", now)
    assert await a_store.renew_claims(now + 20) == 2  # until now + 20 + LEASE
    later = now + LEASE + 10  # past the first claims (the import saved well before)
    assert not await b.claim_campaign("c1", later)
    assert await b.fail_running_imports("stopped", later) == 0
    job = await b.get_import("i1")
    assert job is not None and job.status == "running"
    assert await a_store.release_claims() == 2
    assert await b.claim_campaign("c1", later)
    assert await b.fail_running_imports("stopped", later) == 1


@pytest.mark.port("campaigns")
async def test_an_import_on_a_dead_node_is_failed_once_its_claim_lapses_freeing_its_list(
    backend: Harness,
) -> None:
    """While node A runs an import into a list, the list cannot be deleted and B leaves the
    import alone; A dies: once its claim lapses B fails the import, and the list goes."""
    a, b = await backend.campaigns_node("a", LEASE), await backend.campaigns_node("b", LEASE)
    now = time.time()
    list_id = (await a.create_list("l", now)).id
    job = ImportJob("i1", list_id, "running", "import", now, rows=1, imported=1)
    await a.import_rows(list_id, [ImportRow("+33600000001", "Ann", {})], "import", now, job)
    with pytest.raises(ListInUse, match="i1"):
        await b.delete_list(list_id, now)
    assert await b.fail_running_imports("stopped", now + 1) == 0
    saved = await b.get_import("i1")
    assert saved is not None and (saved.status, saved.imported) == ("running", 1)
    after = time.time() + LEASE  # A's last save (its claim) was before time.time()
    assert await b.fail_running_imports("the node stopped", after) == 1
    failed = await b.get_import("i1")
    assert failed is not None
    assert (failed.status, failed.failure, failed.finished_at) == (
        "failed",
        "the node stopped",
        after,
    )
    assert await b.delete_list(list_id, after) == 1


@pytest.mark.port("campaigns")
async def test_a_running_node_fails_only_other_nodes_lapsed_imports(backend: Harness) -> None:
    """While it runs (``foreign``), a node fails the imports another node left running once
    that node's claim lapsed, never its own (it is running them)."""
    a, b = await backend.campaigns_node("a", LEASE), await backend.campaigns_node("b", LEASE)
    list_id = (await a.create_list("l", FUTURE)).id
    for name, store in (("mine", a), ("theirs", b)):
        await store.save_import(ImportJob(name, list_id, "running", "import", FUTURE))
    now = time.time()
    assert await a.fail_running_imports("stopped", now, foreign=True) == 0  # B's is live
    assert await a.fail_running_imports("stopped", now + LEASE + 60, foreign=True) == 1
    mine, theirs = await a.get_import("mine"), await a.get_import("theirs")
    assert mine is not None and mine.status == "running"
    assert theirs is not None and theirs.status == "failed"


@pytest.mark.port("inbound")
async def test_a_running_node_takes_over_only_other_nodes_lapsed_interactions(
    backend: Harness,
) -> None:
    a, b = await backend.node("a", LEASE), await backend.node("b", LEASE)
    at = FUTURE

    def mo(n: int) -> NewInteraction:
        return NewInteraction("sim", f"+3360000000{n}", "+33700000000", "YES", 0, 1, 1, at, at)

    [mine] = await a.record_interactions([mo(1)])
    [theirs] = await b.record_interactions([mo(2)])
    assert await a.pending_interactions(0, 10, now=at + 1, foreign=True) == []  # B's live
    later = at + LEASE + 1  # both claims lapsed: A takes B's, never its own this way
    assert [i.id for i in await a.pending_interactions(0, 10, now=later, foreign=True)] == [theirs]
    # A's now; A's own lapsed one is B's to take over (A died, say), not A's again.
    assert [i.id for i in await b.pending_interactions(0, 10, now=later, foreign=True)] == [mine]
