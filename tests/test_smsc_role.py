"""gateway.smpp.smsc: the SMSC-role rules the front and the simulator share."""

from __future__ import annotations

import pytest

from gateway.smpp.constants import EsmClass, Status, Tag
from gateway.smpp.pdu import BindTransceiver, DataSm, SubmitSm, decode, encode, tlv_u8, tlv_u16
from gateway.smpp.receipt import MessageState, parse_receipt
from gateway.smpp.session import BindRequested, BindType, Role, Session, SessionConfig
from gateway.smpp.smsc import (
    BIND_STOPPING,
    BIND_UNKNOWN_SYSTEM_ID,
    BIND_WRONG_PASSWORD,
    accept_bind,
    bind_type_refusal,
    max_binds_refusal,
    receipt_deliver_sm,
    receipt_requested,
    receives,
    user_data,
    wants_receipt,
)


@pytest.mark.parametrize(
    ("registered", "delivered", "failed"),
    [
        (0x00, False, False),
        (0x01, True, True),
        (0x02, False, True),
        (0x03, False, False),  # reserved: neither
        (0x11, True, True),  # the intermediate bit does not change the SMSC receipt
        (0x12, False, True),
    ],
)
def test_wants_receipt_reads_the_low_two_bits(
    registered: int, delivered: bool, failed: bool
) -> None:
    assert wants_receipt(registered, MessageState.DELIVERED) is delivered
    for state in (MessageState.UNDELIVERABLE, MessageState.EXPIRED, MessageState.REJECTED):
        assert wants_receipt(registered, state) is failed
    assert receipt_requested(registered) == registered & 3


def test_bind_refusals_say_what_both_roles_said() -> None:
    assert BIND_STOPPING == (Status.RSYSERR, "stopping")
    assert BIND_UNKNOWN_SYSTEM_ID == (Status.RINVSYSID, "unknown system_id")
    assert BIND_WRONG_PASSWORD == (Status.RINVPASWD, "wrong password")
    assert max_binds_refusal(1, 2) is None
    assert max_binds_refusal(2, 2) == (Status.RBINDFAIL, "max_binds 2 reached")
    assert bind_type_refusal(BindType.RX, {BindType.TRX, BindType.RX}) is None
    assert bind_type_refusal(BindType.TX, {BindType.TRX}) == (
        Status.RBINDFAIL,
        "bind type tx not allowed",
    )
    assert [receives(t) for t in (BindType.TX, BindType.RX, BindType.TRX)] == [False, True, True]


def test_accept_bind_answers_rok_and_sets_the_deliver_window() -> None:
    session = Session(Role.SMSC, SessionConfig(window=10), 0.0)
    bind = BindTransceiver(sequence_number=3, system_id="crm", password="x")
    (event,) = session.receive_data(encode(bind), 0.0)
    assert isinstance(event, BindRequested)
    accept_bind(session, event.pdu, "smsgw", 0.0, 77)
    assert session.is_bound and session.config.window == 77
    response = decode(session.data_to_send())
    assert response.command_status == Status.ROK and response.sequence_number == 3
    assert getattr(response, "system_id") == "smsgw"  # noqa: B009


def test_receipt_deliver_sm_with_and_without_tlvs() -> None:
    text = b"id:42 sub:001 dlvrd:001 submit date:2609211413 done date:2609211414 stat:DELIVRD"
    pdu = receipt_deliver_sm(
        source=(1, 1, "33612345678"),
        destination=(5, 0, "ACME"),
        short_message=text,
        receipt_id="42",
        state=MessageState.DELIVERED,
        network_error=b"\x03\x00\x00",
    )
    assert pdu.esm_class == EsmClass.SMSC_DELIVERY_RECEIPT
    assert (pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr) == (1, 1, "33612345678")
    assert (pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr) == (5, 0, "ACME")
    assert [tag for tag, _ in pdu.tlvs] == [
        Tag.RECEIPTED_MESSAGE_ID,
        Tag.MESSAGE_STATE,
        Tag.NETWORK_ERROR_CODE,
    ]
    parsed = parse_receipt(
        pdu.esm_class,
        pdu.short_message,
        pdu.receipted_message_id,
        pdu.message_state,
        pdu.network_error_code,
    )
    assert parsed is not None and parsed.message_id == "42"
    assert parsed.state is MessageState.DELIVERED
    bare = receipt_deliver_sm(
        source=(1, 1, "1"),
        destination=(1, 1, "2"),
        short_message=text,
        receipt_id="42",
        state=MessageState.DELIVERED,
        tlvs=False,
        network_error=b"\x03\x00\x00",
    )
    assert bare.tlvs == ()
    no_error = receipt_deliver_sm(
        source=(1, 1, "1"),
        destination=(1, 1, "2"),
        short_message=b"",
        receipt_id="42",
        state=MessageState.UNDELIVERABLE,
    )
    assert [tag for tag, _ in no_error.tlvs] == [Tag.RECEIPTED_MESSAGE_ID, Tag.MESSAGE_STATE]


def test_user_data_takes_the_udh_off_and_leaves_sar_to_the_role() -> None:
    udh = bytes((5, 0, 3, 9, 2, 1))
    assert user_data(SubmitSm(esm_class=EsmClass.UDHI, short_message=udh + b"abc")) == (
        b"abc",
        (9, 2, 1),
    )
    # Without UDHI the octets are text, whatever they look like.
    assert user_data(SubmitSm(short_message=udh + b"abc")) == (udh + b"abc", None)
    sar = (tlv_u16(Tag.SAR_MSG_REF_NUM, 5), tlv_u8(Tag.SAR_TOTAL_SEGMENTS, 2))
    assert user_data(SubmitSm(short_message=b"x", tlvs=sar)) == (b"x", None)
    payload = DataSm(tlvs=((Tag.MESSAGE_PAYLOAD, b"whole"),))
    assert user_data(payload) == (b"whole", None)
    # short_message wins over message_payload; an empty one gives way to it.
    both = ((Tag.MESSAGE_PAYLOAD, b"payload"),)
    assert user_data(SubmitSm(short_message=b"sm", tlvs=both)) == (b"sm", None)
    assert user_data(SubmitSm(tlvs=both)) == (b"payload", None)
