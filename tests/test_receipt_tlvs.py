"""The receipt hot path reads a deliver_sm's three receipt TLVs in one pass, and the text's
stat: and err: without a findall: it must give what the Pdu accessors and the regex give,
for any mix of TLVs (missing, repeated, empty, unterminated) and of receipt text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.net.classify import (
    _stat_err_slow,
    from_tlvs,
    receipt_tlvs,
    stat_err,
    to_incoming,
)
from gateway.smpp.constants import Tag
from gateway.smpp.pdu import DeliverSm
from gateway.smpp.receipt import IdForms, MessageState, parse_receipt

_TAGS = st.sampled_from(
    [
        Tag.RECEIPTED_MESSAGE_ID,
        Tag.MESSAGE_STATE,
        Tag.NETWORK_ERROR_CODE,
        Tag.USER_MESSAGE_REFERENCE,
    ]
)
_TLVS = st.lists(st.tuples(_TAGS.map(int), st.binary(max_size=6)), max_size=6)


@given(_TLVS)
def test_one_pass_gives_what_the_accessors_give(tlvs: list[tuple[int, bytes]]) -> None:
    pdu = DeliverSm(esm_class=4, tlvs=tuple(tlvs))
    assert receipt_tlvs(pdu.tlvs) == (
        pdu.receipted_message_id,
        pdu.message_state,
        pdu.network_error_code,
    )


def test_the_first_of_a_repeated_tag_wins() -> None:
    tlvs = (
        (int(Tag.MESSAGE_STATE), b"\x02"),
        (int(Tag.RECEIPTED_MESSAGE_ID), b"0A1B\x00junk"),
        (int(Tag.MESSAGE_STATE), b"\x05"),
        (int(Tag.RECEIPTED_MESSAGE_ID), b"ffff\x00"),
    )
    assert receipt_tlvs(tlvs) == ("0A1B", 2, None)


@given(st.integers(min_value=1, max_value=8), st.sampled_from([0x04, 0x08, 0x20, 0x44, 0x00, 0x10]))
def test_the_fast_path_agrees_with_parse_receipt(state: int, esm_class: int) -> None:
    text = b"id:0a1b sub:001 dlvrd:001 submit date:2611232100 done date:2611232101 stat:XX err:007"
    fast = from_tlvs("sim", IdForms(), esm_class, text, "0A1B", state, b"\x03\x00\x09", 5.0)
    slow = parse_receipt(esm_class, text, "0A1B", state, b"\x03\x00\x09")
    if slow is None:
        assert fast is None
        return
    assert fast == to_incoming("sim", IdForms(), slow, 5.0)
    assert slow.state is MessageState(state)
    assert fast.receipt_key == "a1b"


_PIECES = st.sampled_from(
    [
        "stat:",
        "STAT:",
        "Stat:",
        "err:",
        "ERR:",
        "xerr:",
        "stat: ",
        "err:\x00",
        " ",
        "\x00",
        ",",
        ";",
        "\xa0",
        "\t",
        "DELIVRD",
        "000",
        "UNDELIV",
        "id:1a",
        ":",
        "e",
        "s",
        "é",
        "text:",
    ]
)


@given(st.lists(_PIECES, max_size=12).map("".join))
def test_stat_err_gives_what_findall_gives(head: str) -> None:
    assert stat_err(head) == _stat_err_slow(head)


def test_stat_err_of_the_usual_layouts() -> None:
    text = (
        "id:0a1b sub:001 dlvrd:001 submit date:2611232100 done date:2611232101"
        " stat:DELIVRD err:000 "
    )
    assert stat_err(text) == ("DELIVRD", "000")
    assert stat_err("id:1 STAT:UNDELIV;ERR:0x45") == ("UNDELIV", "0x45")
    assert stat_err("stat: err:001") == ("err:001", None)  # the value swallows the next key
    assert stat_err("xstat:DELIVRD err:") == (None, None)
