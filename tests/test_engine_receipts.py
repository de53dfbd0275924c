"""The deliver_sm router and the receipt handler without sockets: a stub bind records what
is answered, and when.

Ordering is the point: a deliver_sm_resp must not be sent before the store call holding its
receipt has returned; a failed store call must be answered with ESME_RX_T_APPN.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.config import CarrierConfig
from gateway.core.model import MessageStatus
from gateway.engine.receipts import ReceiptHandler
from gateway.net.classify import RECEIPT_STATUS, UNPARSABLE_KEY, from_tlvs, to_incoming
from gateway.net.deliver import DeliverSmRouter
from gateway.smpp.constants import EsmClass, Status, Tag
from gateway.smpp.pdu import AlertNotification, DataSm, DeliverSm, Pdu, tlv_cstr, tlv_u8
from gateway.smpp.receipt import IdForm, IdForms, MessageState, parse_receipt, stat_word
from tests.fakes import FakeStore


class StubConn:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.sent: list[tuple[Pdu, int]] = []
        """(response, record_receipts calls finished when it was sent)."""

    def send_response(self, pdu: Pdu) -> None:
        self.sent.append((pdu, len(self.store.receipts_committed)))


class StubBind:
    def __init__(self, store: FakeStore, carrier: str = "alpha") -> None:
        self.carrier = carrier
        self.conn = StubConn(store)

    def respond(self, pdu: Pdu) -> None:
        self.conn.send_response(pdu)


def carrier(**kw: Any) -> CarrierConfig:
    values: dict[str, Any] = {
        "name": "alpha",
        "host": "127.0.0.1",
        "port": 2775,
        "system_id": "gw",
        "password": "pw",
        "message_id_form": IdForm.HEX,
        "receipt_id_form": IdForm.DECIMAL,
    }
    values.update(kw)
    return CarrierConfig(**values)


def receipt(
    rid: str = "2587", state: MessageState = MessageState.DELIVERED, *, seq: int = 1
) -> DeliverSm:
    stat = {MessageState.DELIVERED: "DELIVRD", MessageState.UNDELIVERABLE: "UNDELIV"}.get(
        state, "UNKNOWN"
    )
    text = f"id:{rid} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:{stat}"
    return DeliverSm(
        sequence_number=seq,
        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
        short_message=(text + " err:001 text:hi").encode(),
    )


@pytest.fixture
async def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
async def handler(store: FakeStore) -> AsyncIterator[DeliverSmRouter]:
    h = DeliverSmRouter(ReceiptHandler(store, [carrier()]))
    await h.start()
    yield h
    await h.stop(drain=1.0)


async def test_deliver_sm_resp_waits_for_the_store(
    store: FakeStore, handler: DeliverSmRouter
) -> None:
    store.receipt_delay = 0.05
    bind = StubBind(store)
    for seq in range(1, 4):
        handler.request(bind, receipt(str(2586 + seq), seq=seq))  # type: ignore[arg-type]
    assert bind.conn.sent == []
    await store.wait_until(lambda: store.receipts_committed)
    await asyncio.sleep(0)
    assert [(p.sequence_number, p.command_status, done) for p, done in bind.conn.sent] == [
        (1, Status.ROK, 1),
        (2, Status.ROK, 1),
        (3, Status.ROK, 1),
    ]
    # One store call for the burst, and the ids keyed in the carrier's receipt form.
    assert [c[1] for c in store.calls if c[0] == "record_receipts"] == [3]
    assert [r.receipt_key for r in store.receipts] == ["a1b", "a1c", "a1d"]
    assert handler.stats.stored == 3


async def test_store_failure_is_answered_with_a_temporary_error(
    store: FakeStore, handler: DeliverSmRouter
) -> None:
    store.fail_receipts = 1
    bind = StubBind(store)
    handler.request(bind, receipt(seq=7))  # type: ignore[arg-type]
    await bind_answered(bind, 1)
    pdu, _ = bind.conn.sent[0]
    assert (pdu.sequence_number, pdu.command_status) == (7, Status.RX_T_APPN)
    assert handler.stats.store_errors == 1
    # The SMSC sends it again; this time it is stored and acknowledged.
    handler.request(bind, receipt(seq=8))  # type: ignore[arg-type]
    await bind_answered(bind, 2)
    assert bind.conn.sent[1][0].command_status == Status.ROK


async def bind_answered(bind: StubBind, n: int) -> None:
    async def wait() -> None:
        while len(bind.conn.sent) < n:  # noqa: ASYNC110 - the stub has no event to await
            await asyncio.sleep(0.001)

    await asyncio.wait_for(wait(), 5)


async def test_unparsable_receipt_is_kept_and_acknowledged(
    store: FakeStore, handler: DeliverSmRouter
) -> None:
    bind = StubBind(store)
    junk = DeliverSm(esm_class=EsmClass.SMSC_DELIVERY_RECEIPT, short_message=b"stat:DELIVRD")
    handler.request(bind, junk)  # type: ignore[arg-type]
    await bind_answered(bind, 1)
    assert bind.conn.sent[0][0].command_status == Status.ROK
    (kept,) = store.receipts
    assert kept.receipt_key == UNPARSABLE_KEY and kept.state == "unknown"
    assert kept.raw == "stat:DELIVRD" and kept.status is MessageStatus.SUBMITTED
    assert handler.stats.unparsable == 1
    assert store.unmatched  # kept unmatched


async def test_tlvs_and_states_map_to_statuses(store: FakeStore, handler: DeliverSmRouter) -> None:
    bind = StubBind(store)
    for seq, state in enumerate(MessageState, 1):
        pdu = DeliverSm(
            sequence_number=seq,
            esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
            tlvs=(tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, str(seq)), tlv_u8(Tag.MESSAGE_STATE, state)),
        )
        handler.request(bind, pdu)  # type: ignore[arg-type]
    await bind_answered(bind, len(MessageState))
    assert [r.status for r in store.receipts] == [RECEIPT_STATUS[s] for s in MessageState]
    final = {r.state: r.status for r in store.receipts}
    assert final["delivered"] is MessageStatus.DELIVERED
    assert final["deleted"] is MessageStatus.REJECTED
    assert final["accepted"] is MessageStatus.SUBMITTED  # not final for the client


async def test_receipt_error_text(store: FakeStore, handler: DeliverSmRouter) -> None:
    bind = StubBind(store)
    handler.request(bind, receipt("99", MessageState.UNDELIVERABLE))  # type: ignore[arg-type]
    await bind_answered(bind, 1)
    assert store.receipts[0].error == "stat:UNDELIV err:001"
    assert store.receipts[0].status is MessageStatus.UNDELIVERABLE


async def test_data_sm_receipt(store: FakeStore, handler: DeliverSmRouter) -> None:
    bind = StubBind(store)
    pdu = DataSm(
        sequence_number=3,
        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
        tlvs=(tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, "10"), tlv_u8(Tag.MESSAGE_STATE, 2)),
    )
    handler.request(bind, pdu)  # type: ignore[arg-type]
    await bind_answered(bind, 1)
    resp = bind.conn.sent[0][0]
    assert resp.name == "data_sm_resp" and resp.command_status == Status.ROK
    assert store.receipts[0].receipt_key == "a"


async def test_mo_without_handler_is_refused_temporarily(
    store: FakeStore, handler: DeliverSmRouter
) -> None:
    bind = StubBind(store)
    handler.request(bind, DeliverSm(sequence_number=4, short_message=b"hello"))  # type: ignore[arg-type]
    assert bind.conn.sent[0][0].command_status == Status.RX_T_APPN
    assert handler.stats.mo_refused == 1 and not store.receipts


async def test_mo_handler_answers(store: FakeStore) -> None:
    seen: list[tuple[bytes, str]] = []

    async def mo(pdu: Pdu, carrier_name: str) -> int:
        assert isinstance(pdu, DeliverSm)
        seen.append((pdu.short_message, carrier_name))
        return Status.ROK

    h = DeliverSmRouter(ReceiptHandler(store, [carrier()]), mo_handler=mo)
    await h.start()
    try:
        bind = StubBind(store)
        h.request(bind, DeliverSm(sequence_number=4, short_message=b"STOP"))  # type: ignore[arg-type]
        await bind_answered(bind, 1)
        assert seen == [(b"STOP", "alpha")]
        assert bind.conn.sent[0][0].command_status == Status.ROK
    finally:
        await h.stop(drain=1.0)


async def test_failing_mo_handler_is_a_temporary_error(store: FakeStore) -> None:
    async def mo(pdu: Pdu, carrier_name: str) -> int:
        raise RuntimeError("boom")

    h = DeliverSmRouter(ReceiptHandler(store, [carrier()]), mo_handler=mo)
    await h.start()
    try:
        bind = StubBind(store)
        h.request(bind, DeliverSm(sequence_number=4, short_message=b"x"))  # type: ignore[arg-type]
        await bind_answered(bind, 1)
        assert bind.conn.sent[0][0].command_status == Status.RX_T_APPN
    finally:
        await h.stop(drain=1.0)


async def test_alert_notification_is_counted_not_answered(
    store: FakeStore, handler: DeliverSmRouter
) -> None:
    bind = StubBind(store)
    handler.request(bind, AlertNotification())  # type: ignore[arg-type]
    assert handler.stats.alerts == 1 and bind.conn.sent == []


async def test_after_stop_receipts_are_refused_so_the_smsc_keeps_them(store: FakeStore) -> None:
    h = DeliverSmRouter(ReceiptHandler(store, [carrier()]))
    await h.start()
    await h.stop(drain=1.0)
    bind = StubBind(store)
    h.request(bind, receipt())  # type: ignore[arg-type]
    assert bind.conn.sent[0][0].command_status == Status.RX_T_APPN
    assert h.stats.refused_stopped == 1


async def test_stop_writes_and_answers_the_batch_in_hand(store: FakeStore) -> None:
    store.receipt_delay = 0.05
    h = DeliverSmRouter(ReceiptHandler(store, [carrier()]))
    await h.start()
    bind = StubBind(store)
    h.request(bind, receipt())  # type: ignore[arg-type]
    await h.stop(drain=1.0)
    assert [p.command_status for p, _ in bind.conn.sent] == [Status.ROK]
    assert len(store.receipts) == 1


def _pdu_variants() -> list[DeliverSm]:
    out = []
    for state in MessageState:
        for err in ("000", "0x1B"):
            for nec in (None, b"\x03\x00\x05", b"\x03\x00\x00"):
                text = (
                    f"id:0001F sub:001 dlvrd:000 submit date:2401011200 done date:2401011201 "
                    f"stat:{stat_word(state)} err:{err} text:stat:DELIVRD err:9"
                )
                tlvs = [
                    tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, "0001F"),
                    tlv_u8(Tag.MESSAGE_STATE, state),
                ]
                if nec is not None:
                    tlvs.append((Tag.NETWORK_ERROR_CODE, nec))
                out.append(
                    DeliverSm(
                        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
                        short_message=text.encode(),
                        tlvs=tuple(tlvs),
                    )
                )
    # TLVs only, and text only (the fast path declines the latter).
    out.append(
        DeliverSm(
            esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
            tlvs=(tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, "77"), tlv_u8(Tag.MESSAGE_STATE, 5)),
        )
    )
    return out


@pytest.mark.parametrize("pdu", _pdu_variants())
def test_tlv_fast_path_gives_what_parse_receipt_gives(pdu: DeliverSm) -> None:
    forms = IdForms(IdForm.HEX, IdForm.HEX)
    args = (pdu.receipted_message_id, pdu.message_state, pdu.network_error_code)
    fast = from_tlvs("alpha", forms, pdu.esm_class, pdu.short_message, *args, 5.0)
    parsed = parse_receipt(pdu.esm_class, pdu.short_message, *args)
    assert fast is not None and parsed is not None
    assert fast == to_incoming("alpha", forms, parsed, 5.0)


def test_fast_path_declines_without_both_tlvs() -> None:
    forms = IdForms()
    assert from_tlvs("a", forms, 4, b"id:1 stat:DELIVRD", None, 2, None, 0.0) is None
    assert from_tlvs("a", forms, 4, b"id:1 stat:DELIVRD", "1", None, None, 0.0) is None
    assert from_tlvs("a", forms, 4, b"", "1", 9, None, 0.0) is None  # SMPP 5 state
    assert from_tlvs("a", forms, 0, b"", "1", 2, None, 0.0) is None  # not a receipt
