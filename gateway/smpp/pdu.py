"""SMPP 3.4 PDUs as typed values, and the codec: bytes <-> values, no I/O.

Every PDU is a slots dataclass. Its mandatory body is described once, in ``BODY``, as an
ordered tuple of (field name, kind); ``encode`` and ``decode`` walk that description, so a
PDU's wire layout is written in exactly one place. TLVs travel as ``(tag, value bytes)``
pairs in ``tlvs``, in wire order, with typed accessors for the ones the gateway reads.

Tolerance, because carriers differ (see shared/smpp-field-notes.md):
- any command_status passes through as a plain int;
- a response whose status is not ROK may omit its body (many SMSCs send a bare header);
- octets after the last mandatory field of a PDU that has no TLV section are ignored;
- C-octet strings are decoded as Latin-1, which maps every byte, so decoding text never fails.
Every malformed input raises ``DecodeError`` and nothing else.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from gateway.smpp.compiled import Decoder, Encoder, compile_decoder, compile_encoder
from gateway.smpp.constants import (
    HEADER_LENGTH,
    INTERFACE_VERSION_34,
    MAX_PDU_LENGTH,
    RESPONSE_BIT,
    CommandId,
    Status,
    Tag,
)
from gateway.smpp.errors import DecodeError, EncodeError

# Field kinds of a PDU body.
CSTR: Final = 0  # C-octet string, NUL terminated
U8: Final = 1  # one-octet integer
SM: Final = 2  # sm_length (one octet) followed by that many octets of short_message

MAX_SHORT_MESSAGE: Final = 254
"""short_message holds at most 254 octets (spec 5.2.22); longer texts use message_payload."""

_HEADER = struct.Struct(">IIII")
_U16 = struct.Struct(">H")
_TLV_HEAD = struct.Struct(">HH")

# The command_status we answer with when a C-octet string field is unterminated.
_FIELD_STATUS: Final[dict[str, int]] = {
    "system_id": Status.RINVSYSID,
    "password": Status.RINVPASWD,
    "source_addr": Status.RINVSRCADR,
    "destination_addr": Status.RINVDSTADR,
    "message_id": Status.RINVMSGID,
    "service_type": Status.RINVSERTYP,
    "system_type": Status.RINVSYSTYP,
    "schedule_delivery_time": Status.RINVSCHED,
    "validity_period": Status.RINVEXPIRY,
}

Tlv = tuple[int, bytes]


@dataclass(slots=True, kw_only=True)
class Pdu:
    """Header fields shared by every PDU, and the TLV accessors."""

    command_id: ClassVar[int]
    BODY: ClassVar[tuple[tuple[str, int], ...]] = ()
    HAS_TLVS: ClassVar[bool] = False
    RESPONSE: ClassVar[type[Pdu] | None] = None

    sequence_number: int = 0
    command_status: int = 0
    tlvs: tuple[Tlv, ...] = ()

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    @property
    def name(self) -> str:
        try:
            return CommandId(self.command_id).name.lower()
        except ValueError:
            return f"0x{self.command_id:08x}"

    def make_response(self, command_status: int = Status.ROK, **fields: Any) -> Pdu:
        """The response to this request, with its sequence number."""
        if self.RESPONSE is None:
            raise TypeError(f"{self.name} has no response PDU")
        return self.RESPONSE(
            sequence_number=self.sequence_number, command_status=command_status, **fields
        )

    # -- TLV accessors ------------------------------------------------------------------

    def get_tlv(self, tag: int) -> bytes | None:
        for t, value in self.tlvs:
            if t == tag:
                return value
        return None

    def _tlv_int(self, tag: int) -> int | None:
        value = self.get_tlv(tag)
        if value is None or not value:
            return None
        return int.from_bytes(value, "big")

    def _tlv_cstr(self, tag: int) -> str | None:
        value = self.get_tlv(tag)
        if value is None:
            return None
        end = value.find(b"\0")
        return (value if end < 0 else value[:end]).decode("latin-1")

    @property
    def receipted_message_id(self) -> str | None:
        return self._tlv_cstr(Tag.RECEIPTED_MESSAGE_ID)

    @property
    def message_state(self) -> int | None:
        return self._tlv_int(Tag.MESSAGE_STATE)

    @property
    def network_error_code(self) -> bytes | None:
        return self.get_tlv(Tag.NETWORK_ERROR_CODE)

    @property
    def sar_msg_ref_num(self) -> int | None:
        return self._tlv_int(Tag.SAR_MSG_REF_NUM)

    @property
    def sar_total_segments(self) -> int | None:
        return self._tlv_int(Tag.SAR_TOTAL_SEGMENTS)

    @property
    def sar_segment_seqnum(self) -> int | None:
        return self._tlv_int(Tag.SAR_SEGMENT_SEQNUM)

    @property
    def message_payload(self) -> bytes | None:
        return self.get_tlv(Tag.MESSAGE_PAYLOAD)

    @property
    def user_message_reference(self) -> int | None:
        return self._tlv_int(Tag.USER_MESSAGE_REFERENCE)


def tlv_u8(tag: int, value: int) -> Tlv:
    return (tag, bytes((value,)))


def tlv_u16(tag: int, value: int) -> Tlv:
    return (tag, _U16.pack(value))


def tlv_cstr(tag: int, value: str) -> Tlv:
    return (tag, value.encode("latin-1") + b"\0")


# -- header-only PDUs ---------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class GenericNack(Pdu):
    command_id: ClassVar[int] = CommandId.GENERIC_NACK


@dataclass(slots=True, kw_only=True)
class UnbindResp(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND_RESP


@dataclass(slots=True, kw_only=True)
class Unbind(Pdu):
    command_id: ClassVar[int] = CommandId.UNBIND
    RESPONSE: ClassVar[type[Pdu] | None] = UnbindResp


@dataclass(slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK_RESP


@dataclass(slots=True, kw_only=True)
class EnquireLink(Pdu):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK
    RESPONSE: ClassVar[type[Pdu] | None] = EnquireLinkResp


# -- binds --------------------------------------------------------------------------------

_BIND_BODY: Final = (
    ("system_id", CSTR),
    ("password", CSTR),
    ("system_type", CSTR),
    ("interface_version", U8),
    ("addr_ton", U8),
    ("addr_npi", U8),
    ("address_range", CSTR),
)


@dataclass(slots=True, kw_only=True)
class BindResp(Pdu):
    """Common shape of the three bind responses: system_id, then sc_interface_version TLV."""

    BODY: ClassVar[tuple[tuple[str, int], ...]] = (("system_id", CSTR),)
    HAS_TLVS: ClassVar[bool] = True
    system_id: str = ""


@dataclass(slots=True, kw_only=True)
class BindTransmitterResp(BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(slots=True, kw_only=True)
class BindReceiverResp(BindResp):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER_RESP


@dataclass(slots=True, kw_only=True)
class BindTransceiverResp(BindResp):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(slots=True, kw_only=True)
class Bind(Pdu):
    """Common shape of bind_transmitter, bind_receiver and bind_transceiver."""

    BODY: ClassVar[tuple[tuple[str, int], ...]] = _BIND_BODY
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def __repr__(self) -> str:
        # The password never reaches a log line through repr().
        return (
            f"{type(self).__name__}(sequence_number={self.sequence_number}, "
            f"system_id={self.system_id!r}, password='***', system_type={self.system_type!r}, "
            f"interface_version=0x{self.interface_version:02x})"
        )


@dataclass(slots=True, kw_only=True, repr=False)
class BindTransmitter(Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER
    RESPONSE: ClassVar[type[Pdu] | None] = BindTransmitterResp


@dataclass(slots=True, kw_only=True, repr=False)
class BindReceiver(Bind):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER
    RESPONSE: ClassVar[type[Pdu] | None] = BindReceiverResp


@dataclass(slots=True, kw_only=True, repr=False)
class BindTransceiver(Bind):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER
    RESPONSE: ClassVar[type[Pdu] | None] = BindTransceiverResp


@dataclass(slots=True, kw_only=True, repr=False)
class Outbind(Pdu):
    command_id: ClassVar[int] = CommandId.OUTBIND
    BODY: ClassVar[tuple[tuple[str, int], ...]] = (("system_id", CSTR), ("password", CSTR))
    system_id: str = ""
    password: str = ""

    def __repr__(self) -> str:
        return f"Outbind(sequence_number={self.sequence_number}, system_id={self.system_id!r})"


# -- messages -----------------------------------------------------------------------------

_SM_BODY: Final = (
    ("service_type", CSTR),
    ("source_addr_ton", U8),
    ("source_addr_npi", U8),
    ("source_addr", CSTR),
    ("dest_addr_ton", U8),
    ("dest_addr_npi", U8),
    ("destination_addr", CSTR),
    ("esm_class", U8),
    ("protocol_id", U8),
    ("priority_flag", U8),
    ("schedule_delivery_time", CSTR),
    ("validity_period", CSTR),
    ("registered_delivery", U8),
    ("replace_if_present_flag", U8),
    ("data_coding", U8),
    ("sm_default_msg_id", U8),
    ("short_message", SM),
)


@dataclass(slots=True, kw_only=True)
class MessageIdResp(Pdu):
    """submit_sm_resp, deliver_sm_resp: a message_id and nothing else."""

    BODY: ClassVar[tuple[tuple[str, int], ...]] = (("message_id", CSTR),)
    message_id: str = ""


@dataclass(slots=True, kw_only=True)
class SubmitSmResp(MessageIdResp):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM_RESP


@dataclass(slots=True, kw_only=True)
class DeliverSmResp(MessageIdResp):
    command_id: ClassVar[int] = CommandId.DELIVER_SM_RESP


@dataclass(slots=True, kw_only=True)
class ShortMessagePdu(Pdu):
    """Common shape of submit_sm and deliver_sm (spec 4.4.1 and 4.6.1)."""

    BODY: ClassVar[tuple[tuple[str, int], ...]] = _SM_BODY
    HAS_TLVS: ClassVar[bool] = True
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(slots=True, kw_only=True)
class SubmitSm(ShortMessagePdu):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM
    RESPONSE: ClassVar[type[Pdu] | None] = SubmitSmResp


@dataclass(slots=True, kw_only=True)
class DeliverSm(ShortMessagePdu):
    command_id: ClassVar[int] = CommandId.DELIVER_SM
    RESPONSE: ClassVar[type[Pdu] | None] = DeliverSmResp


@dataclass(slots=True, kw_only=True)
class DataSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.DATA_SM_RESP
    BODY: ClassVar[tuple[tuple[str, int], ...]] = (("message_id", CSTR),)
    HAS_TLVS: ClassVar[bool] = True
    message_id: str = ""


@dataclass(slots=True, kw_only=True)
class DataSm(Pdu):
    command_id: ClassVar[int] = CommandId.DATA_SM
    RESPONSE: ClassVar[type[Pdu] | None] = DataSmResp
    BODY: ClassVar[tuple[tuple[str, int], ...]] = (
        ("service_type", CSTR),
        ("source_addr_ton", U8),
        ("source_addr_npi", U8),
        ("source_addr", CSTR),
        ("dest_addr_ton", U8),
        ("dest_addr_npi", U8),
        ("destination_addr", CSTR),
        ("esm_class", U8),
        ("registered_delivery", U8),
        ("data_coding", U8),
    )
    HAS_TLVS: ClassVar[bool] = True
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0


@dataclass(slots=True, kw_only=True)
class QuerySmResp(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM_RESP
    BODY: ClassVar[tuple[tuple[str, int], ...]] = (
        ("message_id", CSTR),
        ("final_date", CSTR),
        ("message_state", U8),
        ("error_code", U8),
    )
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(slots=True, kw_only=True)
class QuerySm(Pdu):
    command_id: ClassVar[int] = CommandId.QUERY_SM
    RESPONSE: ClassVar[type[Pdu] | None] = QuerySmResp
    BODY: ClassVar[tuple[tuple[str, int], ...]] = (
        ("message_id", CSTR),
        ("source_addr_ton", U8),
        ("source_addr_npi", U8),
        ("source_addr", CSTR),
    )
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(slots=True, kw_only=True)
class CancelSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.CANCEL_SM_RESP


@dataclass(slots=True, kw_only=True)
class CancelSm(Pdu):
    """Cancel a message not yet delivered (spec 4.9.1). An empty message_id asks for every
    message from source_addr to destination_addr (with service_type)."""

    command_id: ClassVar[int] = CommandId.CANCEL_SM
    RESPONSE: ClassVar[type[Pdu] | None] = CancelSmResp
    BODY: ClassVar[tuple[tuple[str, int], ...]] = (
        ("service_type", CSTR),
        ("message_id", CSTR),
        ("source_addr_ton", U8),
        ("source_addr_npi", U8),
        ("source_addr", CSTR),
        ("dest_addr_ton", U8),
        ("dest_addr_npi", U8),
        ("destination_addr", CSTR),
    )
    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(slots=True, kw_only=True)
class ReplaceSmResp(Pdu):
    command_id: ClassVar[int] = CommandId.REPLACE_SM_RESP


@dataclass(slots=True, kw_only=True)
class ReplaceSm(Pdu):
    """Replace a message not yet delivered (spec 4.10.1): its text, and its schedule and
    validity when those are given (empty keeps the original's)."""

    command_id: ClassVar[int] = CommandId.REPLACE_SM
    RESPONSE: ClassVar[type[Pdu] | None] = ReplaceSmResp
    BODY: ClassVar[tuple[tuple[str, int], ...]] = (
        ("message_id", CSTR),
        ("source_addr_ton", U8),
        ("source_addr_npi", U8),
        ("source_addr", CSTR),
        ("schedule_delivery_time", CSTR),
        ("validity_period", CSTR),
        ("registered_delivery", U8),
        ("sm_default_msg_id", U8),
        ("short_message", SM),
    )
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(slots=True, kw_only=True)
class AlertNotification(Pdu):
    command_id: ClassVar[int] = CommandId.ALERT_NOTIFICATION
    BODY: ClassVar[tuple[tuple[str, int], ...]] = (
        ("source_addr_ton", U8),
        ("source_addr_npi", U8),
        ("source_addr", CSTR),
        ("esme_addr_ton", U8),
        ("esme_addr_npi", U8),
        ("esme_addr", CSTR),
    )
    HAS_TLVS: ClassVar[bool] = True
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""


PDU_CLASSES: Final[dict[int, type[Pdu]]] = {
    cls.command_id: cls
    for cls in (
        GenericNack,
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        EnquireLink,
        EnquireLinkResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        DataSm,
        DataSmResp,
        QuerySm,
        QuerySmResp,
        CancelSm,
        CancelSmResp,
        ReplaceSm,
        ReplaceSmResp,
        AlertNotification,
    )
}
"""Every command_id the codec decodes. Anything else is answered with ESME_RINVCMDID."""


# -- encoding -----------------------------------------------------------------------------


def _encode_tlvs(tlvs: Iterable[Tlv], out: list[bytes]) -> None:
    for tag, value in tlvs:
        if len(value) > 0xFFFF:
            raise EncodeError(f"TLV 0x{tag:04x} value of {len(value)} octets exceeds 65535")
        out.append(_TLV_HEAD.pack(tag, len(value)))
        out.append(value)


def encode(pdu: Pdu) -> bytes:
    """The wire bytes of one PDU, header included."""
    fast = _FAST_ENCODERS.get(type(pdu))
    if fast is not None:
        try:
            return fast(pdu)
        except Exception:  # the checked path below finds and names the fault
            pass
    parts: list[bytes] = [b""]
    try:
        for name, kind in pdu.BODY:
            value = getattr(pdu, name)
            if kind == CSTR:
                if "\0" in value:
                    # A NUL would end the field early and shift every field after it.
                    raise EncodeError(f"{pdu.name}.{name} contains NUL")
                parts.append(value.encode("latin-1"))
                parts.append(b"\0")
            elif kind == U8:
                parts.append(bytes((value,)))
            else:
                if len(value) > MAX_SHORT_MESSAGE:
                    raise EncodeError(
                        f"short_message of {len(value)} octets exceeds {MAX_SHORT_MESSAGE}; "
                        "split the message or use message_payload"
                    )
                parts.append(bytes((len(value),)))
                parts.append(value)
        if pdu.tlvs:
            if not pdu.HAS_TLVS:
                raise EncodeError(f"{pdu.name} carries no TLVs")
            _encode_tlvs(pdu.tlvs, parts)
        length = HEADER_LENGTH + sum(map(len, parts))
        parts[0] = _HEADER.pack(length, pdu.command_id, pdu.command_status, pdu.sequence_number)
    except EncodeError:
        raise
    except (ValueError, UnicodeError, struct.error, TypeError, AttributeError) as exc:
        raise EncodeError(f"{pdu.name}: {exc}") from exc
    return b"".join(parts)


# -- decoding -----------------------------------------------------------------------------


def decode_header(frame: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) of a frame."""
    if len(frame) < HEADER_LENGTH:
        raise DecodeError(
            f"{len(frame)} octets is shorter than a PDU header",
            command_status=Status.RINVCMDLEN,
            fatal=True,
        )
    length, command_id, status, seq = _HEADER.unpack_from(frame)
    return length, command_id, status, seq


def _decode_tlvs(body: bytes, pos: int, command_id: int, sequence_number: int) -> tuple[Tlv, ...]:
    tlvs: list[Tlv] = []
    end = len(body)
    while pos < end:
        if pos + 4 > end:
            raise DecodeError(
                "truncated TLV header",
                command_status=Status.RINVOPTPARSTREAM,
                command_id=command_id,
                sequence_number=sequence_number,
            )
        tag, length = _TLV_HEAD.unpack_from(body, pos)
        pos += 4
        if pos + length > end:
            raise DecodeError(
                f"TLV 0x{tag:04x} announces {length} octets, {end - pos} remain",
                command_status=Status.RINVOPTPARSTREAM,
                command_id=command_id,
                sequence_number=sequence_number,
            )
        tlvs.append((tag, body[pos : pos + length]))
        pos += length
    return tuple(tlvs)


def decode(frame: bytes) -> Pdu:
    """One PDU from one complete frame (header included, command_length already checked)."""
    length, command_id, status, seq = decode_header(frame)
    if length != len(frame):
        raise DecodeError(
            f"command_length {length} but frame has {len(frame)} octets",
            command_status=Status.RINVCMDLEN,
            command_id=command_id,
            sequence_number=seq,
        )
    cls = PDU_CLASSES.get(command_id)
    if cls is None:
        raise DecodeError(
            f"unknown command_id 0x{command_id:08x}",
            command_status=Status.RINVCMDID,
            command_id=command_id,
            sequence_number=seq,
        )
    body = frame[HEADER_LENGTH:]
    fast = _FAST_DECODERS.get(cls)
    if fast is not None:
        try:
            return fast(body, seq, status)  # type: ignore[no-any-return]
        except Exception:  # the checked path below finds and names the fault
            pass
    end = len(body)
    # A response with an error status may come as a bare header (or with its body cut short).
    lenient = bool(command_id & RESPONSE_BIT)
    values: dict[str, Any] = {}
    pos = 0
    for name, kind in cls.BODY:
        if pos >= end:
            if lenient:
                break
            raise DecodeError(
                f"{cls.__name__} body ends before {name}",
                command_status=Status.RINVCMDLEN,
                command_id=command_id,
                sequence_number=seq,
            )
        if kind == CSTR:
            nul = body.find(b"\0", pos)
            if nul < 0:
                raise DecodeError(
                    f"{cls.__name__}.{name} is not NUL-terminated",
                    command_status=_FIELD_STATUS.get(name, Status.RINVPARLEN),
                    command_id=command_id,
                    sequence_number=seq,
                )
            values[name] = body[pos:nul].decode("latin-1")
            pos = nul + 1
        elif kind == U8:
            values[name] = body[pos]
            pos += 1
        else:
            sm_length = body[pos]
            pos += 1
            if pos + sm_length > end:
                raise DecodeError(
                    f"sm_length {sm_length} but {end - pos} octets remain",
                    command_status=Status.RINVMSGLEN,
                    command_id=command_id,
                    sequence_number=seq,
                )
            values[name] = body[pos : pos + sm_length]
            pos += sm_length
    if cls.HAS_TLVS and pos < end:
        values["tlvs"] = _decode_tlvs(body, pos, command_id, seq)
    return cls(sequence_number=seq, command_status=status, **values)


_FAST_ENCODERS: Final[dict[type[Pdu], Encoder]] = {
    cls: compile_encoder(
        cls,
        cstr=CSTR,
        u8=U8,
        header=_HEADER,
        tlv_head=_TLV_HEAD,
        max_short_message=MAX_SHORT_MESSAGE,
    )
    for cls in PDU_CLASSES.values()
}
_FAST_DECODERS: Final[dict[type[Pdu], Decoder]] = {
    cls: compile_decoder(cls, cstr=CSTR, u8=U8, decode_tlvs=_decode_tlvs)
    for cls in PDU_CLASSES.values()
}
"""Straight-line codecs per class (gateway.smpp.compiled) for well-formed PDUs; whatever they
decline goes through the checked loops above, which name the fault."""


# -- framing ------------------------------------------------------------------------------


class Framer:
    """Cuts a byte stream into PDU frames, checking command_length before buffering a body.

    ``feed`` returns complete frames, and a ``DecodeError`` in place of each PDU that could
    not be framed:
    - command_length above ``max_length``: the announced octets are skipped as they arrive
      (never buffered) and a non-fatal error is reported, so the bind can answer with
      generic_nack and stay up;
    - command_length below the header size: the stream has lost its boundaries; a fatal
      error is reported and the framer takes no more input.
    """

    __slots__ = ("_broken", "_buffer", "_skip", "max_length")

    def __init__(self, max_length: int = MAX_PDU_LENGTH) -> None:
        self.max_length = max_length
        self._buffer = bytearray()
        self._skip = 0
        self._broken = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | DecodeError]:
        if self._broken:
            return []
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return []
            data = data[self._skip :]
            self._skip = 0
        buf = self._buffer
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data
        out: list[bytes | DecodeError] = []
        pos = 0
        total = len(view)
        max_length = self.max_length
        while total - pos >= HEADER_LENGTH:
            length = int.from_bytes(view[pos : pos + 4], "big")
            if length < HEADER_LENGTH or length > max_length:
                command_id, _status, seq = struct.unpack_from(">III", view, pos + 4)
                if length < HEADER_LENGTH:
                    out.append(
                        DecodeError(
                            f"command_length {length} is below the header size",
                            command_status=Status.RINVCMDLEN,
                            command_id=command_id,
                            sequence_number=seq,
                            fatal=True,
                        )
                    )
                    self._broken = True
                    self._buffer = bytearray()
                    return out
                out.append(
                    DecodeError(
                        f"command_length {length} exceeds the limit of {max_length}",
                        command_status=Status.RINVCMDLEN,
                        command_id=command_id,
                        sequence_number=seq,
                    )
                )
                remaining = total - pos
                if length <= remaining:
                    pos += length
                    continue
                self._skip = length - remaining
                pos = total
                break
            if total - pos < length:
                break
            out.append(bytes(view[pos : pos + length]))
            pos += length
        if view is buf:
            del buf[:pos]
        elif pos < total:
            self._buffer = bytearray(view[pos:])
        return out
