"""Mobile-originated messages: text in, deliver_sm parts out.

The alphabet is chosen as the gateway chooses it (GSM 03.38 unpacked when the text fits,
else UCS-2) and the text is cut with ``gateway.smpp.text.split_message``. A test can ask
for more parts than the text needs (``parts``), to exercise reassembly with short texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.smpp.address import smpp_address
from gateway.smpp.pdu import DeliverSm
from gateway.smpp.smsc import mo_deliver_sm, mo_deliver_sms, sar_tlvs
from gateway.smpp.text import (
    ConcatMethod,
    Encoding,
    TextEncodingError,
    gsm7_encode,
    split_message,
)

MAX_PARTS: Final = 255
"""A concatenation header numbers parts with one octet."""

# Room for text beside each concatenation header (3GPP TS 23.040 9.2.3.24): 140 octets of
# user data less the UDH (6 octets with an 8-bit ref, 7 with a 16-bit ref; SAR parts keep
# room for the 7-octet UDH the SMSC builds on the air).
_UDH_OCTETS: Final = {ConcatMethod.UDH8: 6, ConcatMethod.UDH16: 7, ConcatMethod.SAR: 7}


class MoError(ValueError):
    """A message that cannot be built as asked; the text says which field is at fault."""


class NoReceiver(Exception):
    """An MO was asked for while no receiver or transceiver is bound."""


class UnknownAccount(ValueError):
    """An MO named a system_id the configuration does not know."""


@dataclass(frozen=True, slots=True)
class MoMessage:
    parts: list[DeliverSm]
    ref: int
    """The reference on the wire (low 8 bits with udh8); 0 for a single part."""


def address(value: str) -> tuple[int, int, str]:
    """(ton, npi, addr): the gateway's one rule (gateway.smpp.address): '+' numbers and
    long digit strings international, short codes (3-8 digits) TON 0 NPI 1, anything
    else alphanumeric."""
    return smpp_address(value.strip())


def _part_limit(encoding: Encoding, concat: ConcatMethod) -> int:
    octets = 140 - _UDH_OCTETS[concat]
    return octets * 8 // 7 if encoding is Encoding.GSM7 else octets


def _encode(text: str, encoding: Encoding) -> bytes:
    return gsm7_encode(text) if encoding is Encoding.GSM7 else text.encode("utf-16-be")


def _forced_chunks(text: str, parts: int, encoding: Encoding, concat: ConcatMethod) -> list[bytes]:
    if parts > len(text):
        raise MoError(f"parts: {parts} parts need at least {parts} characters of text")
    size, extra = divmod(len(text), parts)
    chunks: list[bytes] = []
    start = 0
    limit = _part_limit(encoding, concat)
    for n in range(parts):
        end = start + size + (1 if n < extra else 0)
        chunk = _encode(text[start:end], encoding)
        if len(chunk) > limit:
            raise MoError(f"parts: {parts} parts would not each fit in one SMS; ask for more")
        chunks.append(chunk)
        start = end
    return chunks


def _udh(concat: ConcatMethod, ref: int, total: int, seq: int) -> bytes:
    if concat is ConcatMethod.UDH8:
        return bytes((5, 0x00, 3, ref & 0xFF, total, seq))
    return bytes((6, 0x08, 4, ref >> 8, ref & 0xFF, total, seq))


def build_mo(
    text: str,
    *,
    source: str,
    destination: str,
    concat: ConcatMethod,
    ref: int,
    parts: int | None = None,
) -> MoMessage:
    """The deliver_sm parts of one MO, in order. Raises MoError."""
    if parts is not None and not 1 <= parts <= MAX_PARTS:
        raise MoError(f"parts: must be 1..{MAX_PARTS}, got {parts}")
    try:
        result = split_message(text, concat=concat, ref=ref)
    except TextEncodingError as exc:
        raise MoError(f"text: {exc}") from None
    src, dst = address(source), address(destination)

    if parts is not None and parts > len(result.parts):
        if concat is ConcatMethod.PAYLOAD:
            raise MoError("parts: concat 'payload' sends one PDU; use udh8, udh16 or sar")
        wire_ref = ref & 0xFF if concat is ConcatMethod.UDH8 else ref
        chunks = _forced_chunks(text, parts, result.encoding, concat)
        sar = concat is ConcatMethod.SAR
        forced = [
            mo_deliver_sm(
                source=src,
                destination=dst,
                data_coding=result.data_coding,
                short_message=chunk if sar else _udh(concat, wire_ref, parts, seq) + chunk,
                udhi=not sar,
                tlvs=sar_tlvs(wire_ref, parts, seq) if sar else (),
            )
            for seq, chunk in enumerate(chunks, 1)
        ]
        return MoMessage(forced, wire_ref)

    payload = concat is ConcatMethod.PAYLOAD
    out = mo_deliver_sms(source=src, destination=dst, split=result, payload=payload)
    return MoMessage(out, result.ref if len(out) > 1 else 0)
