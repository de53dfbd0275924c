"""The PDU codec: round trips, golden bytes, tolerance, malformed input, framing, fuzz."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp.constants import HEADER_LENGTH, RESPONSE_BIT, CommandId, Status, Tag
from gateway.smpp.errors import DecodeError, EncodeError
from gateway.smpp.pdu import (
    CSTR,
    PDU_CLASSES,
    AlertNotification,
    Bind,
    BindReceiver,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    CancelSm,
    CancelSmResp,
    DataSm,
    DeliverSm,
    EnquireLink,
    Framer,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    ReplaceSmResp,
    ShortMessagePdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    decode,
    encode,
    tlv_cstr,
    tlv_u8,
    tlv_u16,
)
from gateway.smpp.session import BindRequested, BindType
from tests.strategies import (
    ALL_CLASSES,
    REQUEST_CLASSES,
    RESPONSE_CLASSES,
    any_pdu,
    byte_streams,
    chunked,
    frame,
    fuzz_settings,
    mutated_frames,
    pdus,
)

FIXTURES = Path(__file__).parent / "fixtures" / "golden_pdus.json"


def _cls_id(cls: type[Pdu]) -> str:
    return cls.__name__


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_cls_id)
@given(data=st.data())
def test_every_pdu_class_round_trips_through_encode_and_decode(
    cls: type[Pdu], data: st.DataObject
) -> None:
    pdu = data.draw(pdus(cls))
    wire = encode(pdu)
    assert struct.unpack_from(">I", wire)[0] == len(wire)
    assert decode(wire) == pdu


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=_cls_id)
def test_every_dataclass_field_of_a_pdu_is_on_the_wire(cls: type[Pdu]) -> None:
    # A field declared on the class but missing from BODY would silently never be sent.
    declared = {f.name for f in dataclasses.fields(cls)}
    on_wire = {name for name, _ in cls.BODY} | {"sequence_number", "command_status", "tlvs"}
    assert declared == on_wire


def test_pdu_classes_cover_every_command_id_except_the_unsupported_ones() -> None:
    unsupported = {
        CommandId.SUBMIT_MULTI,
        CommandId.SUBMIT_MULTI_RESP,
    }
    assert set(PDU_CLASSES) == set(CommandId) - unsupported
    for command_id, cls in PDU_CLASSES.items():
        assert cls.command_id == command_id
        if cls.RESPONSE is not None:
            assert cls.RESPONSE.command_id == command_id | RESPONSE_BIT


# -- golden bytes -------------------------------------------------------------------------

GOLDEN_VALUES: dict[str, Pdu] = {
    "bind_transceiver": BindTransceiver(sequence_number=1, system_id="smsgw", password="secret"),
    "bind_transceiver_resp": BindTransceiverResp(
        sequence_number=1, system_id="SMSC1", tlvs=(tlv_u8(Tag.SC_INTERFACE_VERSION, 0x34),)
    ),
    "submit_sm": SubmitSm(
        sequence_number=2,
        source_addr_ton=5,
        source_addr="ACME",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="447700900123",
        registered_delivery=1,
        short_message=b"Hello",
        tlvs=(
            tlv_u16(Tag.SAR_MSG_REF_NUM, 0x1234),
            tlv_u8(Tag.SAR_TOTAL_SEGMENTS, 2),
            tlv_u8(Tag.SAR_SEGMENT_SEQNUM, 1),
        ),
    ),
    "submit_sm_resp": SubmitSmResp(sequence_number=2, message_id="5f3a9c01"),
    "submit_sm_resp_error": SubmitSmResp(sequence_number=3, command_status=Status.RTHROTTLED),
    "submit_sm_resp_error_bare_header": SubmitSmResp(
        sequence_number=3, command_status=Status.RTHROTTLED
    ),
    "deliver_sm_receipt": DeliverSm(
        sequence_number=7,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="447700900123",
        dest_addr_ton=5,
        destination_addr="ACME",
        esm_class=0x04,
        short_message=b"id:5f3a9c01 stat:DELIVRD err:000",
        tlvs=(
            tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, "5f3a9c01"),
            tlv_u8(Tag.MESSAGE_STATE, 2),
            (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x00"),
        ),
    ),
    "enquire_link": EnquireLink(sequence_number=0x10),
    "generic_nack": GenericNack(sequence_number=5, command_status=Status.RINVCMDID),
    "unbind": Unbind(sequence_number=9),
    "data_sm": DataSm(
        sequence_number=10,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="447700900123",
        dest_addr_ton=5,
        destination_addr="ACME",
        data_coding=0x08,
        tlvs=((Tag.MESSAGE_PAYLOAD, "Hi".encode("utf-16-be")),),
    ),
    "query_sm_resp": QuerySmResp(
        sequence_number=11, message_id="5f3a9c01", final_date="240115123100000+", message_state=2
    ),
    "cancel_sm": CancelSm(
        sequence_number=13,
        message_id="5f3a9c01",
        source_addr_ton=5,
        source_addr="ACME",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="447700900123",
    ),
    "cancel_sm_resp": CancelSmResp(sequence_number=13),
    "replace_sm": ReplaceSm(
        sequence_number=14,
        message_id="5f3a9c01",
        source_addr_ton=5,
        source_addr="ACME",
        validity_period="000001000000000R",
        registered_delivery=1,
        short_message=b"New text",
    ),
    "replace_sm_resp_error": ReplaceSmResp(sequence_number=14, command_status=Status.RREPLACEFAIL),
    "alert_notification": AlertNotification(
        sequence_number=12,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="447700900123",
        esme_addr="ACME",
        tlvs=((Tag.MS_AVAILABILITY_STATUS, b"\x00"),),
    ),
    "outbind": Outbind(sequence_number=1, system_id="SMSC1", password="pw1"),
}


def _load_golden() -> dict[str, tuple[str, bytes]]:
    raw = json.loads(FIXTURES.read_text())
    return {
        name: (entry["direction"], bytes.fromhex("".join(h for h, _ in entry["wire"])))
        for name, entry in raw.items()
        if not name.startswith("_")
    }


GOLDEN = _load_golden()


def test_golden_fixtures_and_values_name_the_same_pdus() -> None:
    assert set(GOLDEN) == set(GOLDEN_VALUES)


@pytest.mark.parametrize("name", sorted(GOLDEN_VALUES))
def test_golden_bytes_decode_to_the_value(name: str) -> None:
    _direction, wire = GOLDEN[name]
    assert struct.unpack_from(">I", wire)[0] == len(wire), "fixture command_length is wrong"
    assert decode(wire) == GOLDEN_VALUES[name]


@pytest.mark.parametrize("name", sorted(n for n, (d, _) in GOLDEN.items() if d == "both"))
def test_golden_value_encodes_to_the_bytes(name: str) -> None:
    assert encode(GOLDEN_VALUES[name]).hex() == GOLDEN[name][1].hex()


def test_golden_receipt_exposes_its_tlvs_through_the_typed_accessors() -> None:
    pdu = decode(GOLDEN["deliver_sm_receipt"][1])
    assert pdu.receipted_message_id == "5f3a9c01"
    assert pdu.message_state == 2
    assert pdu.network_error_code == b"\x03\x00\x00"
    sm = decode(GOLDEN["submit_sm"][1])
    assert (sm.sar_msg_ref_num, sm.sar_total_segments, sm.sar_segment_seqnum) == (0x1234, 2, 1)
    assert sm.message_payload is None
    assert decode(GOLDEN["data_sm"][1]).message_payload == b"\x00H\x00i"


# -- tolerance ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [0x00000400, 0x0000FFFF, 0xDEADBEEF])
def test_unknown_command_status_passes_through_as_a_plain_int(status: int) -> None:
    pdu = decode(frame(CommandId.SUBMIT_SM_RESP, b"42\0", status=status, seq=4))
    assert pdu.command_status == status
    assert encode(pdu) == frame(CommandId.SUBMIT_SM_RESP, b"42\0", status=status, seq=4)


@pytest.mark.parametrize("cls", RESPONSE_CLASSES, ids=_cls_id)
def test_error_response_as_a_bare_header_decodes_with_default_fields(cls: type[Pdu]) -> None:
    pdu = decode(frame(cls.command_id, status=Status.RSYSERR, seq=77))
    assert pdu == cls(sequence_number=77, command_status=Status.RSYSERR)


@pytest.mark.parametrize("cls", [c for c in ALL_CLASSES if not c.HAS_TLVS], ids=_cls_id)
@given(data=st.data(), junk=st.binary(min_size=1, max_size=32))
def test_trailing_octets_after_a_pdu_without_tlvs_are_ignored(
    cls: type[Pdu], data: st.DataObject, junk: bytes
) -> None:
    pdu = data.draw(pdus(cls))
    wire = encode(pdu) + junk
    wire = len(wire).to_bytes(4, "big") + wire[4:]
    assert decode(wire) == pdu


def test_trailing_octets_after_a_pdu_with_tlvs_are_read_as_tlvs() -> None:
    wire = encode(SubmitSm(sequence_number=3)) + b"\x00\x01"
    wire = len(wire).to_bytes(4, "big") + wire[4:]
    with pytest.raises(DecodeError) as info:
        decode(wire)
    assert info.value.command_status == Status.RINVOPTPARSTREAM


# -- malformed input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command_id",
    [0x00000099, CommandId.SUBMIT_MULTI, CommandId.SUBMIT_MULTI_RESP, 0x80000099, 0xFFFFFFFF],
)
def test_unknown_command_id_raises_rinvcmdid_with_its_id_and_sequence(command_id: int) -> None:
    with pytest.raises(DecodeError) as info:
        decode(frame(command_id, b"\0\0\0", seq=0x1234))
    err = info.value
    assert err.command_status == Status.RINVCMDID
    assert (err.command_id, err.sequence_number, err.fatal) == (command_id, 0x1234, False)


@pytest.mark.parametrize("delta", [-1, 1, 100])
def test_command_length_not_matching_the_frame_raises_rinvcmdlen(delta: int) -> None:
    wire = encode(SubmitSmResp(sequence_number=8, message_id="x"))
    wire = (len(wire) + delta).to_bytes(4, "big") + wire[4:]
    with pytest.raises(DecodeError) as info:
        decode(wire)
    assert info.value.command_status == Status.RINVCMDLEN


@pytest.mark.parametrize("size", range(HEADER_LENGTH))
def test_frame_shorter_than_a_header_raises_fatal_rinvcmdlen(size: int) -> None:
    with pytest.raises(DecodeError) as info:
        decode(b"\0" * size)
    assert info.value.command_status == Status.RINVCMDLEN
    assert info.value.fatal


@pytest.mark.parametrize("cls", [c for c in REQUEST_CLASSES if c.BODY], ids=_cls_id)
def test_request_body_ending_before_a_mandatory_field_raises_rinvcmdlen(cls: type[Pdu]) -> None:
    # With default values every field is one octet (empty C-string, u8, sm_length 0),
    # so a body of k octets ends exactly before field k.
    full = encode(cls(sequence_number=5))[HEADER_LENGTH:]
    for k in range(len(cls.BODY)):
        with pytest.raises(DecodeError) as info:
            decode(frame(cls.command_id, full[:k], seq=5))
        err = info.value
        assert err.command_status == Status.RINVCMDLEN, cls.BODY[k][0]
        assert (err.command_id, err.sequence_number) == (cls.command_id, 5)


@pytest.mark.parametrize("cls", [SubmitSm, DeliverSm], ids=_cls_id)
@pytest.mark.parametrize("announced,present", [(1, 0), (10, 5), (254, 253), (255, 0)])
def test_sm_length_beyond_the_body_raises_rinvmsglen(
    cls: type[Pdu], announced: int, present: int
) -> None:
    body = encode(cls())[HEADER_LENGTH:-1] + bytes((announced,)) + b"x" * present
    with pytest.raises(DecodeError) as info:
        decode(frame(cls.command_id, body, seq=6))
    assert info.value.command_status == Status.RINVMSGLEN
    assert info.value.sequence_number == 6


@pytest.mark.parametrize(
    "tail",
    [
        b"\x02",  # one octet of a TLV header
        b"\x02\x0c\x00",  # three octets of a TLV header
        b"\x02\x0c\x00\x02\x12",  # announces 2 octets, 1 present
        b"\x00\x05\x00\x01\x07\x04\x24\xff\xff",  # a good TLV, then one announcing 65535
    ],
)
def test_broken_tlv_stream_raises_rinvoptparstream(tail: bytes) -> None:
    body = encode(SubmitSm())[HEADER_LENGTH:] + tail
    with pytest.raises(DecodeError) as info:
        decode(frame(CommandId.SUBMIT_SM, body, seq=9))
    err = info.value
    assert err.command_status == Status.RINVOPTPARSTREAM
    assert (err.command_id, err.sequence_number) == (CommandId.SUBMIT_SM, 9)


# The spec's status for each C-octet string field (5.1.3); fields without one of their own
# fall back to ESME_RINVPARLEN.
FIELD_STATUS = {
    "system_id": Status.RINVSYSID,
    "password": Status.RINVPASWD,
    "system_type": Status.RINVSYSTYP,
    "service_type": Status.RINVSERTYP,
    "source_addr": Status.RINVSRCADR,
    "destination_addr": Status.RINVDSTADR,
    "message_id": Status.RINVMSGID,
    "schedule_delivery_time": Status.RINVSCHED,
    "validity_period": Status.RINVEXPIRY,
    "address_range": Status.RINVPARLEN,
    "final_date": Status.RINVPARLEN,
    "esme_addr": Status.RINVPARLEN,
}
CSTR_FIELDS = [
    (cls, index, name)
    for cls in ALL_CLASSES
    for index, (name, kind) in enumerate(cls.BODY)
    if kind == CSTR
]


@pytest.mark.parametrize(
    "cls,index,name", CSTR_FIELDS, ids=[f"{c.__name__}.{n}" for c, _, n in CSTR_FIELDS]
)
def test_unterminated_c_string_raises_the_fields_own_status(
    cls: type[Pdu], index: int, name: str
) -> None:
    # Every earlier field is one octet with default values; then the string, no NUL.
    prefix = encode(cls())[HEADER_LENGTH : HEADER_LENGTH + index]
    with pytest.raises(DecodeError) as info:
        decode(frame(cls.command_id, prefix + b"abc", seq=21))
    err = info.value
    assert err.command_status == FIELD_STATUS[name]
    assert (err.command_id, err.sequence_number) == (cls.command_id, 21)


# -- encode errors ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SubmitSm, DeliverSm], ids=_cls_id)
def test_short_message_of_255_octets_is_an_encode_error(cls: type[ShortMessagePdu]) -> None:
    assert decode(encode(cls(short_message=b"x" * 254))) == cls(short_message=b"x" * 254)
    with pytest.raises(EncodeError, match="255"):
        encode(cls(short_message=b"x" * 255))


@pytest.mark.parametrize(
    "pdu",
    [
        SubmitSm(esm_class=256),
        SubmitSm(data_coding=-1),
        BindTransmitter(interface_version=0x100),
        QuerySmResp(message_state=1000),
        EnquireLink(sequence_number=2**32),
        EnquireLink(sequence_number=-1),
        GenericNack(command_status=2**32),
        SubmitSm(tlvs=((0x10000, b""),)),
        SubmitSm(tlvs=((-1, b""),)),
        SubmitSm(tlvs=((Tag.MESSAGE_PAYLOAD, b"x" * 65536),)),
    ],
    ids=[
        "esm_class=256",
        "data_coding=-1",
        "interface_version=0x100",
        "message_state=1000",
        "sequence_number=2**32",
        "sequence_number=-1",
        "command_status=2**32",
        "tlv_tag=0x10000",
        "tlv_tag=-1",
        "tlv_value=65536",
    ],
)
def test_out_of_range_integers_are_encode_errors(pdu: Pdu) -> None:
    with pytest.raises(EncodeError):
        encode(pdu)


def test_tlvs_on_a_pdu_without_a_tlv_section_are_an_encode_error() -> None:
    with pytest.raises(EncodeError):
        encode(SubmitSmResp(tlvs=((Tag.MESSAGE_STATE, b"\x02"),)))


@pytest.mark.parametrize(
    "pdu",
    [SubmitSm(source_addr="\u20ac"), BindTransceiver(system_id="\u0100")],
    ids=["euro_sign", "a_macron"],
)
def test_text_outside_latin_1_is_an_encode_error(pdu: Pdu) -> None:
    with pytest.raises(EncodeError):
        encode(pdu)


@pytest.mark.parametrize(
    "pdu",
    [
        SubmitSm(source_addr="ACME\0\x05"),
        SubmitSm(destination_addr="4477\0"),
        BindTransceiver(system_id="a\0b"),
        SubmitSmResp(message_id="\0"),
    ],
    ids=["source_addr", "destination_addr", "system_id", "message_id"],
)
def test_nul_inside_a_c_string_is_an_encode_error(pdu: Pdu) -> None:
    # Written out, the NUL would end the field early and shift every field after it:
    # "ACME\0\x05" as source_addr would arrive as source_addr "ACME", dest_addr_ton 5.
    with pytest.raises(EncodeError):
        encode(pdu)


@pytest.mark.parametrize("cls", [BindTransmitter, BindReceiver, BindTransceiver, Outbind])
def test_password_never_appears_in_repr_or_str_of_a_bind(cls: type[Bind | Outbind]) -> None:
    pdu = cls(sequence_number=1, system_id="esme1", password="Pa55-w0rd")
    for text in (repr(pdu), str(pdu), f"{pdu!r}", repr([pdu]), repr(decode(encode(pdu)))):
        assert "Pa55-w0rd" not in text
        assert "esme1" in text
    if isinstance(pdu, BindTransceiver):
        assert "Pa55-w0rd" not in repr(BindRequested(pdu, BindType.TRX))


# -- fuzz: decode -------------------------------------------------------------------------


@fuzz_settings
@given(st.binary(max_size=300))
def test_decode_of_random_bytes_raises_only_decode_error(data: bytes) -> None:
    try:
        decode(data)
    except DecodeError:
        pass


@fuzz_settings
@given(st.binary(max_size=200), st.sampled_from(sorted(PDU_CLASSES)), st.booleans())
def test_decode_of_random_bodies_behind_a_valid_header_raises_only_decode_error(
    body: bytes, command_id: int, error_status: bool
) -> None:
    try:
        pdu = decode(frame(command_id, body, status=8 if error_status else 0))
    except DecodeError:
        return
    assert pdu.command_id == command_id


@fuzz_settings
@given(mutated_frames())
def test_decode_of_mutated_valid_frames_raises_only_decode_error(data: bytes) -> None:
    try:
        pdu = decode(data)
    except DecodeError as err:
        assert isinstance(err.command_status, int)
        return
    # Whatever decodes must encode again (a value the codec produced is always writable).
    encode(pdu)


# -- framing ------------------------------------------------------------------------------


@given(
    st.lists(any_pdu.map(encode), max_size=8).flatmap(
        lambda fs: st.tuples(st.just(fs), chunked(b"".join(fs)))
    )
)
def test_framer_returns_exactly_the_frames_whatever_the_chunking(
    case: tuple[list[bytes], list[bytes]],
) -> None:
    frames, chunks = case
    framer = Framer()
    out: list[bytes | DecodeError] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    assert out == frames
    assert framer.buffered == 0


@fuzz_settings
@given(byte_streams.flatmap(lambda data: st.tuples(st.just(data), chunked(data))))
def test_framer_on_random_streams_raises_nothing_and_bounds_its_buffer(
    case: tuple[bytes, list[bytes]],
) -> None:
    data, chunks = case
    framer = Framer(max_length=512)
    yielded = 0
    for chunk in chunks:
        for item in framer.feed(chunk):
            if isinstance(item, DecodeError):
                assert item.command_status == Status.RINVCMDLEN
                continue
            assert HEADER_LENGTH <= len(item) <= framer.max_length
            assert int.from_bytes(item[:4], "big") == len(item)
            yielded += len(item)
            try:
                decode(item)
            except DecodeError:
                pass
        assert framer.buffered <= framer.max_length + HEADER_LENGTH
    assert yielded + framer.buffered <= len(data)


def test_framer_skips_a_hostile_length_without_buffering_it() -> None:
    framer = Framer()
    out = framer.feed(struct.pack(">IIII", 0xFFFFFFF0, CommandId.SUBMIT_SM, 0, 31))
    assert len(out) == 1 and isinstance(out[0], DecodeError)
    err = out[0]
    assert (err.command_status, err.fatal, err.sequence_number) == (Status.RINVCMDLEN, False, 31)
    chunk = b"\xff" * 65536
    for _ in range(160):  # 10 MiB of the announced 4 GiB
        assert framer.feed(chunk) == []
        assert framer.buffered == 0


@fuzz_settings
@given(
    announced=st.integers(1025, 20_000),
    prefix=st.binary(max_size=32),
    after=st.lists(any_pdu.map(encode).filter(lambda f: len(f) <= 1024), min_size=1, max_size=3),
    data=st.data(),
)
def test_framer_recovers_after_a_hostile_length_and_frames_the_next_pdu(
    announced: int, prefix: bytes, after: list[bytes], data: st.DataObject
) -> None:
    hostile = struct.pack(">IIII", announced, CommandId.SUBMIT_SM, 0, 7)
    filler = (prefix + bytes(range(256)) * (announced // 256 + 1))[: announced - HEADER_LENGTH]
    stream = hostile + filler + b"".join(after)
    framer = Framer(max_length=1024)
    out: list[bytes | DecodeError] = []
    for chunk in data.draw(chunked(stream)):
        out += framer.feed(chunk)
        assert framer.buffered <= framer.max_length + HEADER_LENGTH
    assert isinstance(out[0], DecodeError)
    assert (out[0].command_status, out[0].fatal) == (Status.RINVCMDLEN, False)
    assert out[1:] == after


@pytest.mark.parametrize("announced", range(HEADER_LENGTH))
def test_framer_reports_a_length_below_the_header_as_fatal_and_stops(announced: int) -> None:
    framer = Framer()
    good = encode(EnquireLink(sequence_number=1))
    out = framer.feed(good + struct.pack(">IIII", announced, CommandId.ENQUIRE_LINK, 0, 2))
    assert out[0] == good
    err = out[1]
    assert isinstance(err, DecodeError)
    assert (err.command_status, err.fatal, err.sequence_number) == (Status.RINVCMDLEN, True, 2)
    assert framer.feed(good) == []
    assert framer.buffered == 0


def test_framer_waits_for_a_split_header() -> None:
    framer = Framer()
    wire = encode(QuerySm(sequence_number=3, message_id="abc"))
    assert framer.feed(wire[:3]) == []
    assert framer.feed(wire[3:17]) == []
    assert framer.feed(wire[17:]) == [wire]


def test_pdu_values_of_different_classes_with_equal_fields_are_not_equal() -> None:
    # A decoded deliver_sm must never compare equal to a submit_sm of the same fields.
    submit: Pdu = SubmitSm(sequence_number=1)
    unbind: Pdu = Unbind(sequence_number=1)
    assert submit != DeliverSm(sequence_number=1)
    assert unbind != EnquireLink(sequence_number=1)
