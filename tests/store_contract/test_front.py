"""Contract: the SMPP front's outbox (deliver_sm owed to upstream accounts, receipts of its
messages among them) and the parts of long messages it holds until they are whole."""

from __future__ import annotations

import json

import pytest

from gateway.store.base import FRONT_PART_JOINED, FrontPart
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, key, message, receipt, sent

pytestmark = pytest.mark.port("front")


async def test_items_are_due_per_account_oldest_first(backend: Harness) -> None:
    await backend.store.front_enqueue([("crm", "mo", '{"n": 1}'), ("erp", "mo", "{}")], T0)
    await backend.store.front_enqueue([("crm", "receipt", '{"n": 2}')], T0 + 1)
    assert await backend.store.front_pending() == {"crm": 2, "erp": 1}
    due = await backend.store.front_due("crm", T0 + 5, 10)
    assert [(i.account, i.kind, json.loads(i.payload)["n"]) for i in due] == [
        ("crm", "mo", 1),
        ("crm", "receipt", 2),
    ]
    assert len(await backend.store.front_due("crm", T0 + 5, 1)) == 1
    await backend.store.front_done([due[0].id])
    await backend.store.front_retry([due[1].id], T0 + 60)
    assert await backend.store.front_due("crm", T0 + 59, 10) == []
    [again] = await backend.store.front_due("crm", T0 + 60, 10)
    assert (again.id, again.attempts) == (due[1].id, 1)
    assert await backend.store.front_pending() == {"crm": 1, "erp": 1}


async def test_a_front_message_gets_its_receipt_in_the_outbox_not_a_callback(
    backend: Harness,
) -> None:
    m = message(1, callback_url="smpp:crm?rd=1", account="crm")
    await sent(backend.store, m)
    await backend.store.record_receipts([receipt(key(m, 1))])
    assert await backend.store.callbacks_due(T0 + 10_000, 10) == []
    [item] = await backend.store.front_due("crm", T0 + 10_000, 10)
    assert item.kind == "receipt" and m.id in item.payload


def _part(seq: int, message_id: str = "joined-1") -> FrontPart:
    return FrontPart(
        part_id=f"p{seq}",
        message_id=message_id,
        account="crm",
        source="ACME",
        destination="+33612345678",
        ref=7,
        total=2,
        seq=seq,
        pdu=b"pdu-%d" % seq,
        received_at=T0 + seq,
    )


async def test_held_parts_survive_a_crash_and_are_joined_once(backend: Harness) -> None:
    await backend.store.front_parts_add([_part(1)])
    await backend.store.front_parts_add([_part(1)])  # sent again by the ESME
    await backend.crash()
    assert [(p.part_id, p.pdu) for p in await backend.store.front_parts_held()] == [
        ("p1", b"pdu-1")
    ]
    await backend.store.front_parts_add([_part(2)])
    await backend.store.front_parts_joined(["joined-1"])
    assert await backend.store.front_parts_held() == []
    part = await backend.store.front_part("p2")
    assert part is not None and part.state == FRONT_PART_JOINED and part.pdu == b""
    await backend.store.front_parts_add([_part(2)])  # too late: joined meanwhile
    assert await backend.store.front_parts_held() == []
    assert await backend.store.front_part("nope") is None


async def test_refused_parts_get_their_receipts_in_one_commit(backend: Harness) -> None:
    await backend.store.front_parts_add([_part(1, "m-refused"), _part(2, "m-refused")])
    receipts = [("crm", "receipt", json.dumps({"part": n})) for n in (1, 2)]
    await backend.store.front_parts_failed(["m-refused"], receipts, T0 + 10)
    assert await backend.store.front_parts_held() == []
    status = await backend.store.front_part_status("p1")
    assert status is not None and status.status.value == "rejected"
    assert len(await backend.store.front_due("crm", T0 + 10, 10)) == 2
