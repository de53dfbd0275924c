"""What any SMSC role needs: the rules the front (smsgw as an SMSC to upstream ESMEs,
gateway.front) and the bundled simulator (smsc_simulator) share, in one place.

Pure code over PDUs and plain values, as the rest of ``gateway.smpp``: no I/O, no asyncio,
no logging, no store. Each role keeps what is its own (the front's password hashes,
address lists and lockouts; the simulator's bind types, outcomes and fault switches) and
takes from here what an SMSC does the same whoever runs it:

- Binds: the refusals both give in the same words and statuses (``BindRefusal``), which
  bind types receive deliver_sm (``receives``), and taking a bind with the account's
  deliver_sm window (``accept_bind``).
- Receipts: the receipt a submit_sm asks for (``receipt_requested``, the low two bits of
  registered_delivery), whether a final state gets one (``wants_receipt``), and the receipt
  deliver_sm itself (``receipt_deliver_sm``): esm_class 0x04, from the message's
  destination back to its sender, the Appendix B text (``gateway.smpp.receipt``'s
  formatter) in short_message, and the TLVs receipted_message_id, message_state and, when
  the role reports one, network_error_code.
- MOs: the deliver_sm parts of a mobile-originated message (``mo_deliver_sms``): one per
  part of its split (UDH with esm_class 0x40, or SAR TLVs), or the whole text in
  message_payload.
- Received messages: the user data of a submit_sm or data_sm and the concatenation its
  UDH gives (``user_data``); SAR TLVs are read by each role, which differ in how strictly.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Final, NamedTuple

from gateway.smpp.constants import EsmClass, RegisteredDelivery, Status, Tag
from gateway.smpp.pdu import (
    Bind,
    DataSm,
    DeliverSm,
    SubmitSm,
    Tlv,
    tlv_cstr,
    tlv_u8,
    tlv_u16,
)
from gateway.smpp.receipt import MessageState
from gateway.smpp.session import BindType, Session
from gateway.smpp.text import SplitResult, parse_udh

__all__ = [
    "BIND_STOPPING",
    "BIND_UNKNOWN_SYSTEM_ID",
    "BIND_WRONG_PASSWORD",
    "Address",
    "BindRefusal",
    "Concat",
    "Received",
    "accept_bind",
    "bind_type_refusal",
    "max_binds_refusal",
    "mo_deliver_sm",
    "mo_deliver_sms",
    "receipt_deliver_sm",
    "receipt_requested",
    "receives",
    "sar_tlvs",
    "user_data",
    "wants_receipt",
]

# -- binds -------------------------------------------------------------------------------------


class BindRefusal(NamedTuple):
    """A bind refused: the bind_resp's command_status, and the reason logged."""

    status: int
    reason: str


BIND_STOPPING: Final = BindRefusal(Status.RSYSERR, "stopping")
"""The SMSC is shutting down: temporary, the ESME binds again elsewhere or later."""

BIND_UNKNOWN_SYSTEM_ID: Final = BindRefusal(Status.RINVSYSID, "unknown system_id")
BIND_WRONG_PASSWORD: Final = BindRefusal(Status.RINVPASWD, "wrong password")


def max_binds_refusal(binds: int, max_binds: int) -> BindRefusal | None:
    """ESME_RBINDFAIL when the account already holds ``max_binds`` binds."""
    if binds >= max_binds:
        return BindRefusal(Status.RBINDFAIL, f"max_binds {max_binds} reached")
    return None


def bind_type_refusal(bind_type: BindType, allowed: Collection[BindType]) -> BindRefusal | None:
    """ESME_RBINDFAIL for a bind type the account may not use."""
    if bind_type not in allowed:
        return BindRefusal(Status.RBINDFAIL, f"bind type {bind_type.value} not allowed")
    return None


def receives(bind_type: BindType) -> bool:
    """Whether an SMSC may send deliver_sm (receipts, MO) on a bind of this type: RX and
    TRX do, TX does not (spec 2.2)."""
    return bind_type is not BindType.TX


def accept_bind(
    session: Session, pdu: Bind, system_id: str, now: float, deliver_window: int
) -> None:
    """Answer ``pdu`` with ROK and our ``system_id``, and let the bind carry at most
    ``deliver_window`` deliver_sm unanswered (the account's setting, not the listener's)."""
    session.accept_bind(pdu, system_id, now)
    session.config = replace(session.config, window=deliver_window)


# -- receipts ----------------------------------------------------------------------------------


def receipt_requested(registered_delivery: int) -> int:
    """The SMSC receipt a submit_sm asks for (spec 5.2.17): 0 none, 1 on success or
    failure, 2 on failure only (3 reserved; read as neither)."""
    return registered_delivery & RegisteredDelivery.RECEIPT_MASK


def wants_receipt(registered_delivery: int, state: MessageState) -> bool:
    """Whether a message that reached ``state`` gets a receipt: with 1 always, with 2 unless
    it was delivered."""
    wanted = registered_delivery & RegisteredDelivery.RECEIPT_MASK
    if wanted == RegisteredDelivery.SUCCESS_OR_FAILURE:
        return True
    return wanted == RegisteredDelivery.FAILURE_ONLY and state is not MessageState.DELIVERED


Address = tuple[int, int, str]
"""(ton, npi, address) of one end of a PDU."""


def receipt_deliver_sm(
    *,
    source: Address,
    destination: Address,
    short_message: bytes,
    receipt_id: str,
    state: int,
    tlvs: bool = True,
    network_error: bytes | None = None,
) -> DeliverSm:
    """The receipt deliver_sm: from ``source`` (the message's destination) to
    ``destination`` (its sender), esm_class 0x04, ``short_message`` the text form. With
    ``tlvs``: receipted_message_id ``receipt_id`` and message_state ``state``, then the
    network_error_code value ``network_error`` when given (3 octets: network type, code);
    without, no TLV at all."""
    extra: tuple[Tlv, ...] = ()
    if tlvs:
        extra = (
            tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, receipt_id),
            tlv_u8(Tag.MESSAGE_STATE, state),
        )
        if network_error is not None:
            extra += ((Tag.NETWORK_ERROR_CODE, network_error),)
    return _deliver_sm(
        source,
        destination,
        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
        data_coding=0,
        short_message=short_message,
        tlvs=extra,
    )


def _deliver_sm(
    source: Address,
    destination: Address,
    *,
    esm_class: int,
    data_coding: int,
    short_message: bytes,
    tlvs: tuple[Tlv, ...],
) -> DeliverSm:
    """A deliver_sm from ``source`` to ``destination``, the rest of its fields at their
    defaults."""
    source_ton, source_npi, source_addr = source
    dest_ton, dest_npi, dest_addr = destination
    return DeliverSm(
        source_addr_ton=source_ton,
        source_addr_npi=source_npi,
        source_addr=source_addr,
        dest_addr_ton=dest_ton,
        dest_addr_npi=dest_npi,
        destination_addr=dest_addr,
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tlvs,
    )


# -- MOs ---------------------------------------------------------------------------------------


def mo_deliver_sm(
    *,
    source: Address,
    destination: Address,
    data_coding: int,
    short_message: bytes,
    udhi: bool = False,
    tlvs: tuple[Tlv, ...] = (),
) -> DeliverSm:
    """One deliver_sm of an MO from ``source`` (the subscriber) to ``destination`` (the
    number written to): esm_class 0x40 when ``short_message`` starts with a UDH."""
    return _deliver_sm(
        source,
        destination,
        esm_class=EsmClass.UDHI if udhi else 0,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tlvs,
    )


def mo_deliver_sms(
    *, source: Address, destination: Address, split: SplitResult, payload: bool = False
) -> list[DeliverSm]:
    """The deliver_sm of one MO, one per part of ``split`` (``gateway.smpp.text``'s
    ``split_message``), in order: the part's UDH (esm_class 0x40) or SAR TLVs as it has them.
    With ``payload`` (a split made with ``ConcatMethod.PAYLOAD``: one part) the octets go in
    message_payload and short_message stays empty."""
    out: list[DeliverSm] = []
    for part in split.parts:
        tlvs: tuple[Tlv, ...]
        if payload:
            short_message, tlvs = b"", ((Tag.MESSAGE_PAYLOAD, part.short_message),)
        else:
            short_message, tlvs = part.short_message, sar_tlvs(*part.sar) if part.sar else ()
        out.append(
            mo_deliver_sm(
                source=source,
                destination=destination,
                data_coding=split.data_coding,
                short_message=short_message,
                udhi=part.esm_class_udhi,
                tlvs=tlvs,
            )
        )
    return out


def sar_tlvs(ref: int, total: int, seq: int) -> tuple[Tlv, ...]:
    """The SAR TLVs of one part of a long message (sar_msg_ref_num, sar_total_segments,
    sar_segment_seqnum)."""
    return (
        tlv_u16(Tag.SAR_MSG_REF_NUM, ref),
        tlv_u8(Tag.SAR_TOTAL_SEGMENTS, total),
        tlv_u8(Tag.SAR_SEGMENT_SEQNUM, seq),
    )


# -- received messages -------------------------------------------------------------------------

Received = SubmitSm | DataSm
"""The requests that carry a message to an SMSC."""

Concat = tuple[int, int, int]
"""(ref, total, seq) of one part of a long message."""


def user_data(pdu: Received) -> tuple[bytes, Concat | None]:
    """The user data of a submit_sm or data_sm, UDH taken off, and the concatenation the
    UDH gives (8- or 16-bit reference), if any. The data is short_message, or
    message_payload when short_message is empty (data_sm has only message_payload)."""
    data = pdu.short_message if isinstance(pdu, SubmitSm) else b""
    if not data:
        data = pdu.get_tlv(Tag.MESSAGE_PAYLOAD) or b""
    if pdu.esm_class & EsmClass.UDHI:
        udh, data = parse_udh(data)
        if udh is not None:
            return data, (udh.ref, udh.total, udh.seq)
    return data, None
