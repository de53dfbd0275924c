"""The generated fast codec (gateway.smpp.compiled) agrees with the checked codec: same bytes
out, same PDUs in, and whatever the checked codec refuses is refused with its own error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
from hypothesis import given

from gateway.smpp import pdu as codec
from gateway.smpp.errors import DecodeError, EncodeError
from gateway.smpp.pdu import PDU_CLASSES, DeliverSm, Pdu, SubmitSm, decode, encode
from tests.strategies import any_pdu, frame, fuzz_settings, mutated_frames


@contextmanager
def checked_only() -> Iterator[None]:
    """Run encode/decode without their fast paths (the loops over BODY)."""
    encoders = dict(codec._FAST_ENCODERS)
    decoders = dict(codec._FAST_DECODERS)
    codec._FAST_ENCODERS.clear()
    codec._FAST_DECODERS.clear()
    try:
        yield
    finally:
        codec._FAST_ENCODERS.update(encoders)
        codec._FAST_DECODERS.update(decoders)


def _outcome(fn: object, arg: object) -> tuple[str, object]:
    try:
        return "ok", fn(arg)  # type: ignore[operator]
    except (DecodeError, EncodeError) as exc:
        return type(exc).__name__, (str(exc), getattr(exc, "command_status", None))


def test_every_class_has_a_fast_encoder_and_decoder() -> None:
    assert set(codec._FAST_ENCODERS) == set(PDU_CLASSES.values())
    assert set(codec._FAST_DECODERS) == set(PDU_CLASSES.values())


@fuzz_settings
@given(any_pdu)
def test_fast_encode_gives_the_checked_bytes(pdu: Pdu) -> None:
    fast = codec._FAST_ENCODERS[type(pdu)](pdu)
    with checked_only():
        checked = encode(pdu)
    assert fast == checked


@fuzz_settings
@given(any_pdu)
def test_fast_decode_gives_the_checked_pdu(pdu: Pdu) -> None:
    data = encode(pdu)
    fast = codec._FAST_DECODERS[type(pdu)](data[16:], pdu.sequence_number, pdu.command_status)
    assert fast == pdu
    with checked_only():
        assert decode(data) == fast


@fuzz_settings
@given(mutated_frames())
def test_broken_frames_get_the_checked_answer(data: bytes) -> None:
    expected = None
    with checked_only():
        expected = _outcome(decode, data)
    assert _outcome(decode, data) == expected


@pytest.mark.parametrize(
    "pdu",
    [
        SubmitSm(destination_addr="33612\x00345"),  # NUL inside a C-string
        SubmitSm(short_message=b"x" * 255),  # longer than short_message allows
        SubmitSm(esm_class=256),  # not one octet
        DeliverSm(tlvs=((0x0424, b"x" * 0x10000),)),  # TLV value too long
        replace(SubmitSm(), source_addr=12),  # type: ignore[arg-type]  # wrong type
    ],
    ids=["nul", "long-sm", "u8-range", "long-tlv", "wrong-type"],
)
def test_bad_pdus_get_the_checked_encode_error(pdu: Pdu) -> None:
    with pytest.raises(EncodeError) as fast:
        encode(pdu)
    with checked_only(), pytest.raises(EncodeError) as checked:
        encode(pdu)
    assert str(fast.value) == str(checked.value)


def test_a_bare_error_response_still_decodes_leniently() -> None:
    """submit_sm_resp with an error status and no body: the fast decoder declines (no
    message_id), the checked one accepts it with the field's default."""
    resp = decode(frame(0x80000004, status=0x45, seq=7))
    assert resp.command_status == 0x45
    assert resp.sequence_number == 7
    assert getattr(resp, "message_id", None) == ""
