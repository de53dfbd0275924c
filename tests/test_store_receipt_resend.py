"""A receipt the SMSC sends again (its deliver_sm_resp was lost: a restart after the
receipt's commit, before the answer left) is kept once while it has no owner; a receipt with
the same id but another state is a new receipt; one that later finds its part is applied."""

from __future__ import annotations

from pathlib import Path

from gateway.core.model import IncomingReceipt, MessageStatus, NewMessage, SubmitOutcome
from gateway.store.sqlite import SqliteStore
from tests.store_helpers import held_receipts

S = MessageStatus


def _rec(key: str, status: MessageStatus, state: str, raw: str) -> IncomingReceipt:
    return IncomingReceipt("sim", key, key, status, state, 1000.0, None, raw)


async def test_resent_unmatched_receipt_is_one_row(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        delivered = _rec("abc", S.DELIVERED, "DELIVRD", "id:abc stat:DELIVRD")
        enroute = _rec("abc", S.SUBMITTED, "ENROUTE", "id:abc stat:ENROUTE")
        await store.record_receipts([delivered, delivered])  # twice in one batch
        await store.record_receipts([delivered])  # and again after a restart
        await store.record_receipts([enroute])  # the same id, another receipt
        unmatched = await held_receipts(store)
        assert sorted(status for _, _, status in unmatched) == ["delivered", "submitted"]

        # The part it belongs to shows up (receipt before response): the one row applies.
        message = NewMessage(
            id="m1",
            to="+33612345678",
            sender="ACME",
            text="hi",
            encoding="gsm7",
            parts=1,
            carrier="sim",
            created_at=999.0,
        )
        await store.accept([message])
        await store.begin_attempts([("m1", 1)])
        await store.record_outcomes(
            [SubmitOutcome("m1", 1, "sim", S.SUBMITTED, 1000.5, "abc", "abc", 0)]
        )
        view = await store.get_message("m1")
        assert view is not None and view.status == "delivered"
        assert await held_receipts(store) == []
    finally:
        await store.close()
