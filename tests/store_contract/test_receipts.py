"""Contract: delivery receipts and the receipt map: matching, receipts before their response,
final states that stick, expiry of receipts that never come, and a crash in between."""

from __future__ import annotations

import pytest

from gateway.store.base import NO_RECEIPT
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, S, key, message, outcome, receipt, sent

pytestmark = pytest.mark.port("receipts")


async def test_a_receipt_matches_its_part_and_makes_the_message_final(backend: Harness) -> None:
    m = message(1, client_ref="r1")
    await sent(backend.store, m)
    changes = await backend.store.record_receipts([receipt(key(m, 1))])
    assert [(c.message_id, c.status, c.client_ref) for c in changes] == [(m.id, S.DELIVERED, "r1")]
    view = await backend.store.get_message(m.id)
    assert view is not None and view.status == "delivered"


async def test_a_long_message_is_delivered_when_every_part_is(backend: Harness) -> None:
    m = message(1, parts=2)
    await sent(backend.store, m)
    assert await backend.store.record_receipts([receipt(key(m, 1))]) == []
    changes = await backend.store.record_receipts([receipt(key(m, 2))])
    assert [c.status for c in changes] == [S.DELIVERED]


async def test_a_receipt_before_its_response_is_held_then_applied(backend: Harness) -> None:
    m = message(1)
    await backend.store.accept([m])
    await backend.store.begin_attempts([(m.id, 1)])
    early = receipt(key(m, 1))
    assert await backend.store.record_receipts([early]) == []
    assert early.matched_key is None
    assert await backend.store.still_unmatched([("sim", key(m, 1)), ("sim", "other")]) == {
        ("sim", key(m, 1))
    }
    changes = await backend.store.record_outcomes([outcome(m, 1)])
    assert [c.status for c in changes][-1] is S.DELIVERED
    assert await backend.store.still_unmatched([("sim", key(m, 1))]) == set()


async def test_a_held_receipt_survives_a_crash(backend: Harness) -> None:
    m = message(1)
    await backend.store.accept([m])
    await backend.store.begin_attempts([(m.id, 1)])
    await backend.store.record_receipts([receipt(key(m, 1))])
    await backend.crash()
    await backend.store.record_outcomes([outcome(m, 1)])
    view = await backend.store.get_message(m.id)
    assert view is not None and view.status == "delivered"


async def test_a_final_state_sticks(backend: Harness) -> None:
    m = message(1)
    await sent(backend.store, m)
    await backend.store.record_receipts([receipt(key(m, 1))])
    later = [receipt(key(m, 1), S.UNDELIVERABLE, T0 + 300), receipt(key(m, 1), S.SUBMITTED)]
    assert await backend.store.record_receipts(later) == []
    view = await backend.store.get_message(m.id)
    assert view is not None and view.status == "delivered"


async def test_a_final_state_sticks_through_a_late_response(backend: Harness) -> None:
    # A part sent twice (begun before a crash, sent again after it): the first copy's
    # receipt makes it final, then the second copy's response arrives. (The SQLite store's
    # outcome UPDATEs used to be unconditional and moved the message back to submitted.)
    m = message(1)
    await sent(backend.store, m)
    await backend.store.record_receipts([receipt(key(m, 1))])
    assert await backend.store.record_outcomes([outcome(m, 1, at=T0 + 400)]) == []
    view = await backend.store.get_message(m.id)
    assert view is not None and view.status == "delivered"


async def test_an_enroute_receipt_changes_nothing(backend: Harness) -> None:
    m = message(1)
    await sent(backend.store, m)
    assert await backend.store.record_receipts([receipt(key(m, 1), S.SUBMITTED)]) == []
    view = await backend.store.get_message(m.id)
    assert view is not None and view.status == "submitted"


async def test_receipts_that_never_come_expire(backend: Harness) -> None:
    old, valid, fresh, unasked = (
        message(1),
        message(2, validity_until=T0 + 150),
        message(3),
        message(4, registered_delivery=False),
    )
    await sent(backend.store, old, valid, fresh, unasked)
    # ``fresh`` was submitted at T0 + 100 too: only a cut-off after that expires it.
    changes = await backend.store.expire_unreceipted("sim", T0 + 160, T0 + 50, T0 + 500, 10)
    assert [(c.message_id, c.status, c.error) for c in changes] == [
        (valid.id, S.EXPIRED, NO_RECEIPT)
    ]
    changes = await backend.store.expire_unreceipted("sim", T0 + 160, T0 + 100, T0 + 500, 1)
    assert len(changes) == 1 and changes[0].message_id in {old.id, fresh.id}
    assert await backend.store.expire_unreceipted("other", T0 + 999, T0 + 999, T0 + 500, 10) == []
    view = await backend.store.get_message(unasked.id)
    assert view is not None and view.status == "submitted"
