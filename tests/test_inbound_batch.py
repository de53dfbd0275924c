"""The MO path in batches: MOs that arrive together are logged in one write and handled
together, with one sender's MOs still in order, and the replies durable before the
interactions are done. Over a real SqliteStore (the ``Bench`` of test_inbound.py)."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.smpp.constants import Status
from gateway.smpp.pdu import DeliverSm
from gateway.smpp.text import ConcatMethod
from gateway.store.base import (
    Contact,
    Interaction,
    InteractionOutcome,
    MoLookup,
    NewInteraction,
)
from smsc_simulator.mo import build_mo
from tests.store_helpers import put_contacts
from tests.test_inbound import INBOUND, LONG_TEXT, NUMBER, Bench, as_part, config_with, parts_of

ALICE = "+33612345678"
BOB = "+33699999999"


def mo(text: str, source: str = ALICE) -> DeliverSm:
    [pdu] = build_mo(text, source=source, destination=NUMBER, concat=ConcatMethod.UDH8, ref=1).parts
    return pdu


class Spy:
    """Counts the calls of one store method and the size of each."""

    def __init__(self, bench: Bench, name: str) -> None:
        self.sizes: list[int] = []
        real = getattr(bench.store, name)

        async def spy(items: Sequence[Any], *args: Any) -> Any:
            self.sizes.append(len(items))
            return await real(items, *args)

        setattr(bench.store, name, spy)


async def burst(bench: Bench, pdus: Sequence[DeliverSm]) -> None:
    """Feed deliver_sms as one read off the socket does: all in the same loop turn."""
    statuses = await asyncio.gather(*(bench.service.handle_pdu(p, "sim") for p in pdus))
    assert statuses == [Status.ROK] * len(pdus)


async def settled(bench: Bench) -> list[Interaction]:
    for _ in range(500):
        if bench.service.idle():
            break
        await asyncio.sleep(0.01)
    assert bench.service.idle()
    return await bench.store.interactions(limit=1000)


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = Bench(tmp_path)
    await b.start()
    yield b
    await b.stop()


async def test_a_burst_is_logged_in_one_write_and_handled_as_one_batch(bench: Bench) -> None:
    logged = Spy(bench, "record_interactions")
    read = Spy(bench, "mo_facts")
    finished = Spy(bench, "finish_interactions")
    senders = [f"+3361234{n:04d}" for n in range(40)]
    await burst(bench, [mo("vote 2", s) for s in senders])
    done = await settled(bench)
    assert logged.sizes == [40]
    assert read.sizes == [40] and finished.sizes == [40]
    assert [i.source for i in done] == senders
    assert all(i.state == "done" and i.rule == "vote" for i in done)
    for interaction in done:
        assert await bench.texts(interaction) == ["Thanks  ()", "Results soon"]
    assert len(bench.outbound.messages) == 80
    assert bench.service.stats.mo[(NUMBER, "vote")] == 40


async def test_one_senders_mos_in_one_burst_are_handled_in_order(bench: Bench) -> None:
    await burst(
        bench,
        [mo("STOP"), mo("vote 3"), mo("vote 3", BOB), mo("START"), mo("vote 4")],
    )
    done = await settled(bench)
    mine = [i for i in done if i.source == ALICE]
    assert [i.rule for i in mine] == ["opt_out", "vote", "opt_in", "vote"]
    assert mine[1].actions[1] == {"type": "reply", "ok": False, "not_sent": "opted_out"}
    assert mine[3].actions[1]["ok"] is True  # START came before: replies go again
    assert [i.processed_at is not None for i in mine] == [True] * 4
    [bobs] = [i for i in done if i.source == BOB]
    assert bobs.actions[1]["ok"] is True  # another sender's STOP is not his
    assert not await bench.store.opted_out([ALICE], NUMBER)


async def test_courtesy_reply_once_per_sender_within_a_burst(bench: Bench) -> None:
    await burst(bench, [mo(f"hello {n}") for n in range(5)] + [mo("hi", BOB)])
    done = await settled(bench)
    courtesy = [(i.source, i.actions) for i in done]
    sent = [s for s, actions in courtesy if actions[0].get("ok")]
    assert sorted(sent) == sorted([ALICE, BOB])
    limited = [a for s, a in courtesy if s == ALICE and not a[0]["ok"]]
    assert limited == [[{"type": "courtesy_reply", "ok": False, "not_sent": "rate_limited"}]] * 4


async def test_replies_are_durable_before_the_interaction_is_done(bench: Bench) -> None:
    """A crash between the two commits: the reply is kept, the MO is handled again."""
    real = bench.store.finish_interactions
    calls = 0

    async def crash(outcomes: Sequence[InteractionOutcome]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("power cut")

    bench.store.finish_interactions = crash  # type: ignore[method-assign]
    await burst(bench, [mo("vote 1")])
    [pending] = await settled(bench)
    assert calls == 1 and pending.state == "pending"
    first = set(bench.outbound.messages)
    assert len(first) == 2  # the reply and the follow-up, accepted before the crash
    for message_id in first:
        assert await bench.store.get_message(message_id) is not None
    bench.store.finish_interactions = real  # type: ignore[method-assign]
    await bench.restart()
    [again] = await settled(bench)
    assert again.id == pending.id and again.state == "done" and again.rule == "vote"
    assert again.actions[1]["message_id"] not in first  # at least once: a second reply


async def test_a_failed_reply_commit_leaves_the_batch_pending(bench: Bench) -> None:
    async def refuse(messages: Sequence[Any], idempotency: Any = None) -> None:
        raise RuntimeError("disk full")

    bench.store.accept = refuse  # type: ignore[method-assign]
    await burst(bench, [mo("vote 1"), mo("vote 2", BOB)])
    done = await settled(bench)
    assert [i.state for i in done] == ["pending", "pending"]
    assert bench.outbound.messages == {}


async def test_store_batch_reads_and_writes_match_the_single_ones(bench: Bench) -> None:
    store, now = bench.store, bench.clock.now
    await store.add_opt_out(BOB, NUMBER, "api", now)
    await put_contacts(store, [Contact(ALICE, name="Zoé", attributes={"city": "Lyon"})])
    await store.tag_contact(ALICE, ["vip"], now)
    sent = await bench.service.outbox.send(to=ALICE, sender=NUMBER, text="hi", campaign_id="c1")
    assert sent.sent
    news = [
        NewInteraction("sim", source, NUMBER, "same", 0, 1, 1, now - 5, now - 5)
        for source in (ALICE, ALICE, BOB)
    ]
    ids = await store.record_interactions(news)
    assert len(ids) == 3 and ids == sorted(ids)
    for new, interaction_id in zip(news, ids, strict=True):
        got = await store.get_interaction(interaction_id)
        assert got is not None and (got.source, got.text, got.state) == (
            new.source,
            "same",
            "pending",
        )
    lookups = [
        MoLookup(ALICE, NUMBER, NUMBER, "same"),
        MoLookup(BOB, NUMBER, NUMBER, "same"),
        MoLookup(ALICE, "OTHER", NUMBER, "other text"),
    ]
    facts = await store.mo_facts(lookups, now - 3600, now - 60)
    for lookup, fact in zip(lookups, facts, strict=True):
        assert fact.opted_out == bool(await store.opted_out([lookup.source], lookup.sender))
    assert [f.opted_out for f in facts] == [False, True, False]
    assert [f.repeats for f in facts] == [2, 1, 0]
    assert facts[0].last_campaign is not None and facts[0].last_campaign[0] == "c1"
    assert facts[0].contact is not None and facts[0].contact.tags == ("vip",)
    assert (facts[0].contact.name, facts[0].contact.attributes) == ("Zoé", {"city": "Lyon"})
    assert facts[2].contact == facts[0].contact and facts[1].contact is None
    # Only MTs from the lookup's sender name a campaign.
    assert facts[1].last_campaign is None and facts[2].last_campaign is None
    await store.finish_interactions(
        [
            InteractionOutcome(i, "VOTE", "vote", None, [{"type": "reply", "n": i}], now)
            for i in ids[:2]
        ]
    )
    states = [await store.get_interaction(i) for i in ids]
    assert [s.state if s else None for s in states] == ["done", "done", "pending"]
    assert states[0] is not None and states[0].actions == [{"type": "reply", "n": ids[0]}]
    assert [i.id for i in await store.pending_interactions(0, 10)] == [ids[2]]


GATE: threading.Event | None = None
"""A threading.Event: handlers run on threads of their own, with their own event loops
(gateway.inbound.handlers), so they share no asyncio object with the test's loop."""


async def slow_handler(message: Any, contact: Any, campaign: Any, reply: Any) -> object:
    """Waits until the test opens the gate: a handler calling a slow service."""
    assert GATE is not None
    await asyncio.to_thread(GATE.wait)
    return await reply.send("slow answer")


async def test_a_slow_handler_does_not_hold_the_rest_of_its_batch(tmp_path: Path) -> None:
    global GATE
    GATE = threading.Event()
    inbound = copy.deepcopy(INBOUND)
    inbound["numbers"][0]["rules"].append(
        {
            "name": "slow",
            "keyword": "SLOW",
            "actions": [{"type": "handler", "handler": "tests.test_inbound_batch:slow_handler"}],
        }
    )
    b = Bench(tmp_path)
    b.config = config_with(inbound, tmp_path)
    b.service = b._service()
    b.service.batches.straggler_seconds = 0.05
    await b.start()
    try:
        await burst(b, [mo("slow please"), mo("vote 1", BOB)])
        for _ in range(200):  # BOB's interaction is concluded without waiting for ALICE's
            [alice, bob] = await b.store.interactions()
            if bob.state == "done":
                break
            await asyncio.sleep(0.01)
        assert (alice.state, bob.state) == ("pending", "done")
        assert bob.actions[1]["ok"] is True
        assert await b.store.get_message(bob.actions[1]["message_id"]) is not None
        await burst(b, [mo("vote 2"), mo("vote 3", BOB)])  # ALICE's next MO waits its turn
        for _ in range(200):
            states = {i.id: i.state for i in await b.store.interactions()}
            if list(states.values()).count("done") == 2:
                break
            await asyncio.sleep(0.01)
        ids = sorted(states)
        assert [states[i] for i in ids] == ["pending", "done", "pending", "done"]
        assert not b.service.idle()
        GATE.set()
        done = await settled(b)
        assert [i.state for i in done] == ["done"] * 4
        alices = [i for i in done if i.source == ALICE]
        assert [i.rule for i in alices] == ["slow", "vote"]
        assert alices[0].processed_at is not None and alices[1].processed_at is not None
        assert alices[0].processed_at <= alices[1].processed_at
        assert alices[0].actions[0]["result"] is not None
    finally:
        GATE.set()
        await b.stop()


async def test_a_message_made_whole_at_start_is_handled_once(bench: Bench) -> None:
    """Its parts were kept but the stop came before it was logged: the start logs it, and
    the scan of pending interactions that follows must not queue it a second time."""
    for pdu in parts_of("vote 5 " + LONG_TEXT):
        await bench.store.add_mo_part(as_part(pdu))
    await bench.restart()
    [done] = await settled(bench)
    assert done.state == "done" and done.rule == "vote"
    assert len(bench.outbound.messages) == 2  # the reply and the follow-up, once each
