"""From a message's parts to submit_sm PDUs: the text split for a carrier, the addresses with
their TON/NPI, the concatenation and priority fields. Plain code over values (no I/O): the
stager calls ``prepare`` once per message and carrier, then ``build`` once per part."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from gateway.config import CarrierConfig
from gateway.engine.queue import CarrierQueue, Msg
from gateway.logs import log_event
from gateway.smpp.constants import EsmClass, Tag
from gateway.smpp.pdu import SubmitSm, tlv_u8, tlv_u16
from gateway.smpp.text import ConcatMethod, Encoding, TextEncodingError, split_message

log = logging.getLogger("smsgw.dispatch")

SHORT_CODE_MAX_DIGITS: Final = 8
"""A sender of at most this many digits (no '+') is a short code (TON 3 network specific):
short codes run 3-8 digits; longer digit strings are international numbers without '+'."""

SOURCE_ADDR_MAX: Final = 20
"""source_addr and destination_addr are C-octet strings of 21 octets with the NUL (5.2.8-9)."""

ADDR_DIGITS: Final = frozenset("0123456789")

_SOURCE_CACHE_SIZE: Final = 10_000
"""Distinct (sender, carrier) pairs remembered by ``prepare`` before the memo starts over."""

_ENCODINGS: Final[dict[str, Encoding]] = {e.value: e for e in Encoding}
"""A message's encoding name to the alphabet; any other ("auto") lets split_message choose
from the text and the carrier's settings."""
_CONCAT: Final[dict[str, ConcatMethod]] = {c.value: c for c in ConcatMethod}


def source_address(sender: str, carrier: CarrierConfig) -> tuple[int, int, str]:
    """(TON, NPI, address) of a sender: '+' number 1/1 without the '+', short code 3/0,
    other digits 1/1, alphanumeric 5/0; the carrier's source_ton/npi win when set."""
    if sender.startswith("+") and ADDR_DIGITS.issuperset(sender[1:]) and len(sender) > 1:
        ton, npi, addr = 1, 1, sender[1:]
    elif sender and ADDR_DIGITS.issuperset(sender):
        ton, npi, addr = (3, 0, sender) if len(sender) <= SHORT_CODE_MAX_DIGITS else (1, 1, sender)
    else:
        ton, npi, addr = 5, 0, sender
    if carrier.source_ton is not None:
        ton = carrier.source_ton
    if carrier.source_npi is not None:
        npi = carrier.source_npi
    return ton, npi, addr


def valid_address(addr: str) -> bool:
    return 0 < len(addr) <= SOURCE_ADDR_MAX and addr.isascii() and addr.isprintable()


def priority_flag(flags: tuple[int, ...], priority: int) -> int:
    """The carrier's priority_flag for a message priority (0-9; out of range: the nearest)."""
    if 0 <= priority < len(flags):
        return flags[priority]
    return flags[-1] if priority > 0 and flags else 0


class PduBuilder:
    """Splits messages and builds their submit_sm for the carriers of ``carriers``."""

    def __init__(self, carriers: Mapping[str, CarrierQueue]) -> None:
        self._carriers = carriers
        self._sources: dict[tuple[str, str], tuple[int, int, str, bool]] = {}
        """(sender, carrier) -> (TON, NPI, source_addr, valid): ``prepare``'s memo."""

    def forget(self) -> None:
        """Carrier settings changed (reload): work the source addresses out again."""
        self._sources.clear()

    def prepare(self, msg: Msg, carrier: CarrierConfig) -> str | None:
        """Split the text and work out the addresses for ``carrier``; an error text if the
        message cannot be sent there (and ``msg`` is left as it was)."""
        m = msg.m
        try:
            split = split_message(
                m.text,
                _ENCODINGS.get(m.encoding),
                concat=_CONCAT[carrier.concat],
                ref=msg.ref,
                packed=carrier.gsm7_packed,
                allow_latin1=carrier.latin1,
            )
        except TextEncodingError as exc:
            return f"cannot encode: {exc}"
        total = len(split.parts)
        if msg.total is not None and msg.total != total:
            # Intake split with other settings than this carrier's: the store has rows for
            # ``msg.total`` parts, and parts it does not know could never be correlated.
            # Fail the message visibly rather than send something nobody can track.
            log_event(
                log,
                "dispatch.parts_mismatch",
                logging.WARNING,
                message=m.id,
                carrier=carrier.name,
                stored=msg.total,
                split=total,
            )
            return f"intake counted {msg.total} parts, carrier {carrier.name} splits into {total}"
        if m.pending_parts and max(m.pending_parts) > total:
            return f"part {max(m.pending_parts)} of a {total}-part message"
        key = (m.sender, carrier.name)
        source = self._sources.get(key)
        if source is None:
            # Few senders per carrier: worked out once (reconfigure() forgets them).
            if len(self._sources) >= _SOURCE_CACHE_SIZE:
                self._sources.clear()
            ton, npi, addr = source_address(m.sender, carrier)
            source = self._sources[key] = (ton, npi, addr, valid_address(addr))
        src_ton, src_npi, src, src_ok = source
        dst = m.to[1:] if m.to.startswith("+") else m.to
        if not src_ok:
            return f"invalid sender {m.sender!r}"
        if not valid_address(dst):
            return f"invalid destination {m.to!r}"
        msg.split = split
        msg.carrier = carrier.name
        msg.addr = (src_ton, src_npi, src, carrier.dest_ton, carrier.dest_npi, dst)
        return None

    def build(self, msg: Msg, part: int) -> SubmitSm:
        """The submit_sm of part ``part`` (1-based) of a prepared message."""
        split = msg.split
        assert split is not None
        p = split.parts[part - 1]
        src_ton, src_npi, src, dst_ton, dst_npi, dst = msg.addr
        carrier = self._carriers[msg.carrier].config
        tlvs: tuple[tuple[int, bytes], ...] = ()
        short_message = p.short_message
        if split.concat is ConcatMethod.PAYLOAD:
            tlvs = ((Tag.MESSAGE_PAYLOAD, short_message),)
            short_message = b""
        elif p.sar is not None:
            ref, total, seq = p.sar
            tlvs = (
                tlv_u16(Tag.SAR_MSG_REF_NUM, ref),
                tlv_u8(Tag.SAR_TOTAL_SEGMENTS, total),
                tlv_u8(Tag.SAR_SEGMENT_SEQNUM, seq),
            )
        return SubmitSm(
            source_addr_ton=src_ton,
            source_addr_npi=src_npi,
            source_addr=src,
            dest_addr_ton=dst_ton,
            dest_addr_npi=dst_npi,
            destination_addr=dst,
            esm_class=EsmClass.UDHI if p.esm_class_udhi else 0,
            registered_delivery=carrier.registered_delivery if msg.m.registered_delivery else 0,
            priority_flag=priority_flag(carrier.priority_flag, msg.m.priority),
            data_coding=split.data_coding,
            short_message=short_message,
            tlvs=tlvs,
        )
