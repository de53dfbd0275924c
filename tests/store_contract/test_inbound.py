"""Contract: MO and the interaction log: long MO parts kept until whole, interactions logged
pending and finished, attempts and quarantine, ids that only grow (across restarts and
crashes), the courtesy-reply memory, what one MO's handling reads, inbound numbers."""

from __future__ import annotations

import pytest

from gateway.store.base import InteractionOutcome, MoKey, MoLookup, MoPart, NewInteraction
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0

pytestmark = pytest.mark.port("inbound")

US = "+33700000000"


def mo(source: str = "+33600000001", text: str = "YES", at: float = T0) -> NewInteraction:
    return NewInteraction("sim", source, US, text, 0, 1, 1, at, at)


def part(seq: int) -> MoPart:
    return MoPart(MoKey("sim", "+33600000001", US, 9, 2), seq, 0, b"half", 6, T0 + seq)


async def test_parts_are_kept_until_their_message_is_logged(backend: Harness) -> None:
    await backend.store.add_mo_part(part(1))
    await backend.store.add_mo_part(part(1))  # a duplicate is ignored
    await backend.crash()
    assert await backend.store.mo_parts() == [part(1)]
    await backend.store.add_mo_part(part(2))
    new_id = await backend.store.record_interaction(mo(text="halfhalf"), [part(1), part(2)])
    assert await backend.store.mo_parts() == []
    logged = await backend.store.get_interaction(new_id)
    assert logged is not None and (logged.text, logged.state) == ("halfhalf", "pending")


async def test_interaction_ids_only_grow_across_restarts_and_crashes(backend: Harness) -> None:
    ids = await backend.store.record_interactions([mo(at=T0), mo(at=T0 + 1)])
    ids.append(await backend.store.record_interaction(mo(at=T0 + 2)))
    await backend.reopen()
    ids += await backend.store.record_interactions([mo(at=T0 + 3)])
    await backend.crash()
    ids += await backend.store.record_interactions([mo(at=T0 + 4), mo(at=T0 + 5)])
    assert ids == sorted(set(ids)) and len(ids) == 6, ids


async def test_pending_interactions_page_and_finish(backend: Harness) -> None:
    ids = await backend.store.record_interactions([mo(at=T0 + n) for n in range(4)])
    first = await backend.store.pending_interactions(0, 2)
    assert [i.id for i in first] == ids[:2]
    assert [i.id for i in await backend.store.pending_interactions(ids[1], 10)] == ids[2:]
    await backend.store.finish_interactions(
        [InteractionOutcome(i, "YES", "yes", "c1", [{"type": "reply"}], T0 + 9) for i in ids[:3]]
    )
    assert [i.id for i in await backend.store.pending_interactions(0, 10)] == ids[3:]
    done = await backend.store.get_interaction(ids[0])
    assert done is not None and (done.state, done.keyword, done.campaign_id) == (
        "done",
        "YES",
        "c1",
    )
    assert done.actions == [{"type": "reply"}] and done.processed_at == T0 + 9


async def test_attempts_count_and_a_quarantined_one_comes_back_on_request(
    backend: Harness,
) -> None:
    [i] = await backend.store.record_interactions([mo()])
    assert await backend.store.begin_interaction_attempt(i) == 1
    assert await backend.store.begin_interaction_attempt(i, floor=3) == 4
    assert await backend.store.fail_interaction(i, "boom", add=0, quarantine=False, at=T0) == 4
    assert await backend.store.fail_interaction(i, "again", add=1, quarantine=True, at=T0) == 5
    assert await backend.store.pending_interactions(0, 10) == []
    assert await backend.store.begin_interaction_attempt(i) == 0  # not pending
    quarantined = await backend.store.get_interaction(i)
    assert quarantined is not None and (quarantined.state, quarantined.last_error) == (
        "quarantined",
        "again",
    )
    assert await backend.store.requeue_interaction(i)
    assert not await backend.store.requeue_interaction(i)
    [back] = await backend.store.pending_interactions(0, 10)
    assert (back.id, back.attempts) == (i, 0)


async def test_a_courtesy_reply_is_claimed_once_per_interval(backend: Harness) -> None:
    assert await backend.store.claim_courtesy("n1", "+33600000001", T0, 3600)
    assert not await backend.store.claim_courtesy("n1", "+33600000001", T0 + 10, 3600)
    assert await backend.store.claim_courtesy("n2", "+33600000001", T0 + 10, 3600)
    assert await backend.store.claim_courtesy("n1", "+33600000001", T0 + 3601, 3600)


async def test_what_handling_an_mo_reads(backend: Harness) -> None:
    alice, bob = "+33600000001", "+33600000002"
    await backend.store.add_opt_out(bob, US, "mo", T0)
    await backend.store.tag_contact(alice, ["vip"], T0)
    await backend.store.record_interactions([mo(alice, "same"), mo(alice, "same"), mo(bob)])
    facts = await backend.store.mo_facts(
        [MoLookup(alice, US, US, "same"), MoLookup(bob, US, US, "other")], T0 - 60, T0 - 60
    )
    assert [(f.opted_out, f.repeats, f.last_campaign) for f in facts] == [
        (False, 2, None),
        (True, 0, None),
    ]
    assert facts[0].contact is not None and facts[0].contact.tags == ("vip",)
    assert facts[1].contact is None
    await backend.store.lift_opt_out(bob, US)
    assert await backend.store.opted_out([bob], US) == set()


async def test_inbound_numbers_are_kept(backend: Harness) -> None:
    await backend.store.put_inbound_number(US, {"keywords": ["YES"]}, T0)
    await backend.store.put_inbound_number(US, {"keywords": ["NO"]}, T0 + 1)
    await backend.reopen()
    assert await backend.store.inbound_numbers() == [(US, {"keywords": ["NO"]})]
    assert await backend.store.delete_inbound_number(US)
    assert not await backend.store.delete_inbound_number(US)
