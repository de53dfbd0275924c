"""Delivery receipts (DLR): recognise, parse and format them, and key their message ids.

Pure code over plain values: no I/O, no logging, no imports from the rest of the gateway. The
session layer hands over the deliver_sm fields it decoded (esm_class, short_message, and the
receipted_message_id, message_state and network_error_code TLVs) and gets a `Receipt` back.

Rules, from the SMPP v3.4 specification (issue 1.2) and from what carriers send:

* The esm_class message type (bits 5-2, spec 5.2.12) says whether a deliver_sm is a receipt.
  It is checked first; text that merely looks like a receipt in an ordinary message is not one.
* TLVs win over text: receipted_message_id (0x001E, spec 5.3.2.12), message_state (0x0427,
  spec 5.3.2.35) and network_error_code (0x0423, spec 5.3.2.31). The text form of Appendix B,
  ``id:... sub:... dlvrd:... submit date:... done date:... stat:... err:... text:...``,
  fills in whatever the TLVs leave out. Vendors vary it, so it is read leniently.
* A receipt may name its message in another base, case or padding than the submit_sm_resp
  did. `IdForms` holds a carrier's setting and turns both sides into one canonical key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import NamedTuple

__all__ = [
    "ESM_MESSAGE_TYPE_MASK",
    "MAX_NUMERIC_ID_LENGTH",
    "READINGS",
    "IdForm",
    "IdForms",
    "IdReading",
    "MessageState",
    "NetworkError",
    "Receipt",
    "ReceiptKind",
    "ReceiptParseError",
    "format_receipt_text",
    "is_final",
    "is_receipt",
    "normalise_message_id",
    "parse_receipt",
    "parse_receipt_date",
    "receipt_kind",
    "stat_word",
    "state_from_stat",
]


class ReceiptParseError(ValueError):
    """A deliver_sm flagged as a receipt from which no message id can be read.

    The receipt cannot be matched to anything; the caller decides what happens next (answer
    the deliver_sm anyway and count the loss, or refuse it). The bind is never at fault.
    """


# --------------------------------------------------------------------------- message state


class MessageState(IntEnum):
    """message_state TLV values (SMPP 3.4 spec 5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


_FINAL_STATES = frozenset(
    {
        MessageState.DELIVERED,
        MessageState.EXPIRED,
        MessageState.DELETED,
        MessageState.UNDELIVERABLE,
        MessageState.ACCEPTED,
        MessageState.REJECTED,
    }
)


def is_final(state: MessageState) -> bool:
    """True when no further delivery attempt follows `state`.

    Follows the specification: DELIVERED, EXPIRED, DELETED, UNDELIVERABLE, ACCEPTED and
    REJECTED are final; ENROUTE and UNKNOWN ("may be intermediate or permanent") are not.
    ACCEPTED means an operator accepted the message on the subscriber's behalf, but some
    carriers send ACCEPTD/ACKED as "the SMSC has it" and a DELIVRD later; do not drop an id
    mapping on the strength of a final state alone.
    """
    return state in _FINAL_STATES


_CANONICAL_STAT: dict[MessageState, str] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}
"""The seven-letter stat words of spec Appendix B, plus ENROUTE."""

_STAT_WORDS: dict[str, MessageState] = {
    **{word: state for state, word in _CANONICAL_STAT.items()},
    # Seen in the field besides the Appendix B words.
    "ACKED": MessageState.ACCEPTED,
    "BUFFRED": MessageState.ENROUTE,
    # Spelled-out variants some vendors and aggregators send.
    "BUFFERED": MessageState.ENROUTE,
    "DELIVERED": MessageState.DELIVERED,
    "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "UNDELIVERED": MessageState.UNDELIVERABLE,
    "FAILED": MessageState.UNDELIVERABLE,
    "ACCEPTED": MessageState.ACCEPTED,
    "REJECTED": MessageState.REJECTED,
}


def stat_word(state: MessageState) -> str:
    """The canonical text stat word for `state`: DELIVRD, UNDELIV, ENROUTE..."""
    return _CANONICAL_STAT[state]


def state_from_stat(word: str) -> MessageState | None:
    """The state a text stat word names, case-insensitively; None for a word we do not know.

    Knows the Appendix B words (DELIVRD EXPIRED DELETED UNDELIV ACCEPTD UNKNOWN REJECTD),
    ENROUTE, ACKED, BUFFRED, and spelled-out forms (DELIVERED, UNDELIVERABLE, FAILED...).
    """
    return _STAT_WORDS.get(word.strip().strip("\x00").upper())


def _state_from_tlv(value: int) -> MessageState | None:
    try:
        return MessageState(value)
    except ValueError:  # 0 (SCHEDULED) and 9 (SKIPPED) are SMPP 5.0; others are junk.
        return None


# --------------------------------------------------------------------------- esm_class


ESM_MESSAGE_TYPE_MASK = 0x3C
"""esm_class bits 5-2 hold the message type of a deliver_sm (spec 5.2.12)."""


class ReceiptKind(IntEnum):
    """The esm_class message types that report on a message we submitted (spec 5.2.12)."""

    SMSC_DELIVERY_RECEIPT = 0x04
    SME_DELIVERY_ACK = 0x08
    INTERMEDIATE_NOTIFICATION = 0x20


def receipt_kind(esm_class: int) -> ReceiptKind | None:
    """Which kind of receipt a deliver_sm with this esm_class is, or None for any other message.

    The message type is a 4-bit field, not a set of flags: only the exact values 0x04, 0x08
    and 0x20 count, whatever the other bits (UDHI 0x40, reply path 0x80, messaging mode) say.
    SME manual/user acknowledgements (0x10) and conversation aborts (0x18) are not receipts.
    """
    try:
        return ReceiptKind(esm_class & ESM_MESSAGE_TYPE_MASK)
    except ValueError:
        return None


def is_receipt(esm_class: int) -> bool:
    """True when the esm_class marks a receipt of any `ReceiptKind`, not a mobile-originated SMS.

    The session uses this to route a deliver_sm: receipt or MO. `receipt_kind` says which
    receipt, for a caller that treats intermediate notifications or SME acks differently.
    """
    return receipt_kind(esm_class) is not None


# --------------------------------------------------------------------------- receipts


class NetworkError(NamedTuple):
    """The network_error_code TLV decoded (spec 5.3.2.31): network type and its error code."""

    network_type: int
    """1 ANSI-136, 2 IS-95, 3 GSM, 4 ANSI-41 (reserved in 3.4)."""
    error_code: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """What one delivery receipt says.

    `message_id` is the id as received (from the TLV if present, else from the text), with
    only surrounding blanks and NULs removed; it is not yet normalised: key it with
    `IdForms.receipt_key` before matching. `err` and `network_error_code` are kept as sent
    because their meaning is carrier-specific.
    Dates are naive: the SMSC writes its own wall clock and says nothing of the zone.
    """

    kind: ReceiptKind
    message_id: str
    state: MessageState
    stat: str | None
    """The text stat word as written (DELIVRD, NOROUTE...), None if the text had none."""
    err: str | None
    """The text err: value as written ("000", "0x1B", "Z"...), None if absent."""
    network_error_code: bytes | None
    """The network_error_code TLV octets as received, None if absent."""
    submit_date: datetime | None
    done_date: datetime | None
    sub: int | None
    dlvrd: int | None
    text: str
    """The text: field (spec: first 20 characters of the message), "" if absent."""
    raw_text: str
    """short_message decoded as Latin-1, unaltered."""

    @property
    def is_final(self) -> bool:
        """See `is_final`."""
        return is_final(self.state)

    @property
    def network_error(self) -> NetworkError | None:
        """The network_error_code TLV decoded, None if absent or not the 3 octets it must be."""
        code = self.network_error_code
        if code is None or len(code) != 3:
            return None
        return NetworkError(code[0], int.from_bytes(code[1:3], "big"))


# A key is a word at the start of the text or after a separator, directly followed by ':'.
# Known keys come first in the alternation so "submit date:" is one key, not "date:"; any
# other word counts too, only so that it ends the value before it (extra fields are ignored).
_KEY = re.compile(
    r"(?<![^\s\x00,;])"
    r"(submit[ _]?date|done[ _]?date|id|sub|dlvrd|stat|err|text|[a-z][a-z0-9_-]*):",
    re.IGNORECASE,
)
# A value is the first token after its key: leading blanks skipped, up to a blank or separator.
_VALUE = re.compile(r"[\s\x00]*([^\s\x00,;]*)")
_SMALL_INT = re.compile(r"[0-9]{1,9}")
_DATE = re.compile(r"[0-9]{10}|[0-9]{12}|[0-9]{14}")


@dataclass(slots=True)
class _TextFields:
    values: dict[str, str]
    text: str


def _split_text(raw: str) -> _TextFields:
    """Find the key:value fields of the text form.

    Fields may come in any order and in any case; the first of a repeated key wins. `text:`
    ends the scan: its value runs to the end of the message because it holds the start of the
    user's message, spaces and colons included (Appendix B puts it last). Fields after it are
    therefore read as text, which also keeps a user's "stat:DELIVRD" from posing as a status.
    """
    values: dict[str, str] = {}
    text = ""
    body = raw.rstrip("\x00")  # some SMSCs send the C-string terminator along
    matches = list(_KEY.finditer(body))
    for index, match in enumerate(matches):
        key = match.group(1).lower().replace(" ", "").replace("_", "")
        if key == "text":
            text = body[match.end() :]
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        value_match = _VALUE.match(body, match.end(), end)
        value = value_match.group(1) if value_match else ""
        if value and key not in values:
            values[key] = value
    return _TextFields(values, text)


def _small_int(value: str | None) -> int | None:
    if value is None or not _SMALL_INT.fullmatch(value):
        return None
    return int(value)


def parse_receipt_date(value: str) -> datetime | None:
    """Read a receipt date, or None if it is not one; never raises.

    Accepts yyMMddHHmm (10 digits, Appendix B), yyMMddHHmmss (12) and yyyyMMddHHmmss (14).
    Two-digit years are 20yy. A 12-digit value that is no valid yyMMddHHmmss is tried as
    yyyyMMddHHmm, which a few SMSCs send. The result is naive (SMSC wall clock).
    """
    if not _DATE.fullmatch(value):
        return None
    if len(value) == 14:
        return _date(value[0:4], value[4:])
    if len(value) == 10:
        return _date("20" + value[0:2], value[2:] + "00")
    return _date("20" + value[0:2], value[2:]) or _date(value[0:4], value[4:] + "00")


def _date(year: str, rest: str) -> datetime | None:
    """`rest` is MMddHHmmss, digits only."""
    try:
        return datetime(
            int(year),
            int(rest[0:2]),
            int(rest[2:4]),
            int(rest[4:6]),
            int(rest[6:8]),
            int(rest[8:10]),
        )
    except ValueError:  # month 13, 31 February, hour 24...
        return None


def _optional_date(value: str | None) -> datetime | None:
    return None if value is None else parse_receipt_date(value)


_ID_BLANKS = " \t\r\n\x0b\x0c\x00"


def parse_receipt(
    esm_class: int,
    short_message: bytes,
    receipted_message_id: str | None,
    message_state: int | None,
    network_error_code: bytes | None,
) -> Receipt | None:
    """Read a deliver_sm as a delivery receipt.

    Returns None when the esm_class says the deliver_sm is no receipt (see `receipt_kind`);
    the text is not consulted for that. Otherwise the TLVs win and the text form in
    `short_message` (decoded as Latin-1; pass message_payload here if short_message was empty)
    fills the gaps:

    * id: receipted_message_id if it is not blank, else the text's ``id:``;
    * state: message_state if it is a 3.4 value (1-8), else the text's ``stat:`` word, else
      UNKNOWN;
    * err, dates, sub, dlvrd and text come from the text only. A date that cannot be read
      is None, as is a sub or dlvrd that is not a number.

    Raises `ReceiptParseError` when neither gives a message id, and nothing else for any
    input: a broken receipt must never cost the bind.
    """
    kind = receipt_kind(esm_class)
    if kind is None:
        return None
    raw_text = bytes(short_message).decode("latin-1")
    fields = _split_text(raw_text)
    values = fields.values

    message_id = (receipted_message_id or "").strip(_ID_BLANKS) or values.get("id", "")
    if not message_id:
        raise ReceiptParseError(
            "delivery receipt without a message id: no receipted_message_id TLV and no id: "
            f"field in short_message {raw_text[:80]!r}"
        )

    stat = values.get("stat")
    state = _state_from_tlv(message_state) if message_state is not None else None
    if state is None and stat is not None:
        state = state_from_stat(stat)

    return Receipt(
        kind=kind,
        message_id=message_id,
        state=MessageState.UNKNOWN if state is None else state,
        stat=stat,
        err=values.get("err"),
        network_error_code=None if network_error_code is None else bytes(network_error_code),
        submit_date=_optional_date(values.get("submitdate")),
        done_date=_optional_date(values.get("donedate")),
        sub=_small_int(values.get("sub")),
        dlvrd=_small_int(values.get("dlvrd")),
        text=fields.text,
        raw_text=raw_text,
    )


_TOKEN = re.compile(r"[\x21-\x2b\x2d-\x3a\x3c-\x7e]+")
"""Printable ASCII without blanks, ',' (0x2c) or ';' (0x3b): what reads back as one value."""


def format_receipt_text(
    message_id: str,
    state: MessageState,
    submit_date: datetime,
    done_date: datetime,
    err: str = "000",
    text: str = "",
    sub: int = 1,
    dlvrd: int | None = None,
    *,
    seconds: bool = False,
) -> str:
    """The Appendix B text form of a receipt, as an SMSC (our simulator) writes it.

    ``id:{message_id} sub:001 dlvrd:001 submit date:yyMMddHHmm done date:yyMMddHHmm
    stat:DELIVRD err:000 text:{text}``. `dlvrd` defaults to 1 for DELIVERED and 0 otherwise.
    `seconds` writes 12-digit dates (yyMMddHHmmss), as some SMSCs do. Dates are written in
    their own wall clock (any tzinfo is ignored) with a two-digit year, so only years
    2000-2099 read back unchanged. `text` is written as given; the specification puts the
    first 20 characters of the original message there. Encode the result as Latin-1.

    Raises ValueError for a message_id or err that would not read back as one value, and for
    a negative sub or dlvrd.
    """
    for name, value in (("message_id", message_id), ("err", err)):
        if not _TOKEN.fullmatch(value):
            raise ValueError(f"{name} {value!r} must be printable ASCII without blanks , or ;")
    if dlvrd is None:
        dlvrd = 1 if state is MessageState.DELIVERED else 0
    if sub < 0 or dlvrd < 0:
        raise ValueError(f"sub ({sub}) and dlvrd ({dlvrd}) must not be negative")
    date_format = "%y%m%d%H%M%S" if seconds else "%y%m%d%H%M"
    return (
        f"id:{message_id} sub:{sub:03d} dlvrd:{dlvrd:03d}"
        f" submit date:{submit_date.strftime(date_format)}"
        f" done date:{done_date.strftime(date_format)}"
        f" stat:{stat_word(state)} err:{err} text:{text}"
    )


# --------------------------------------------------------------------------- message ids


class IdForm(StrEnum):
    """How a carrier writes a message id in one place (submit_sm_resp or receipt)."""

    AS_IS = "as_is"
    """An opaque string: matched ignoring case, blanks and leading-zero padding."""
    HEX = "hex"
    """A number written in base 16."""
    DECIMAL = "decimal"
    """A number written in base 10."""
    AUTO = "auto"
    """Not known: match the id as given, then read in the other base (see `IdForms`)."""


class IdReading(StrEnum):
    """How a receipt's id was read when it matched its submit_sm_resp's (``auto`` forms)."""

    AS_GIVEN = "as_given"
    """Both sides write the id alike (ignoring case and leading zeros)."""
    DECIMAL_TO_HEX = "decimal_to_hex"
    """The receipt writes in decimal what submit_sm_resp wrote in hex."""
    HEX_TO_DECIMAL = "hex_to_decimal"
    """The receipt writes in hex what submit_sm_resp wrote in decimal."""


READINGS: tuple[IdReading, ...] = tuple(IdReading)
"""Every reading, in the order they are tried when none was learned yet."""


MAX_NUMERIC_ID_LENGTH = 64
"""Longest id read as a number. message_id is a C-octet string of at most 65 octets with
its NUL (spec 5.2.23), so 64 characters; longer input is treated as opaque, which also
bounds the cost of base conversion on junk input."""

_HEX_DIGITS = re.compile(r"[0-9a-f]+")
_DECIMAL_DIGITS = re.compile(r"[0-9]+")


def _decimal_to_hex(key: str) -> str | None:
    """The key of an as-given key read as a decimal number, written in hex; None if it is
    no decimal number."""
    if len(key) <= MAX_NUMERIC_ID_LENGTH and _DECIMAL_DIGITS.fullmatch(key):
        return format(int(key, 10), "x")
    return None


def _hex_to_decimal(key: str) -> str | None:
    """The key of an as-given key read as a hex number, written in decimal; None if it is
    no hex number."""
    if len(key) <= MAX_NUMERIC_ID_LENGTH and _HEX_DIGITS.fullmatch(key):
        return str(int(key, 16))
    return None


def normalise_message_id(raw: str, form: IdForm) -> str:
    """The canonical key of a message id written in `form`.

    Ids that denote the same message give the same key, whichever form each side used:

    * a number (HEX, or DECIMAL) becomes lowercase hexadecimal without leading zeros:
      hex "001A2B", hex "1a2b" and decimal "6699" all give "1a2b"; zero gives "0";
    * AS_IS, and any id that is not valid in its stated base (hex letters in a "decimal" id,
      dashes, too long), is taken as opaque: lowercased and, if it consists only of hex
      digits, stripped of leading zeros. No error is raised.

    The two rules agree: an all-hex-digit id gets the same key AS_IS as HEX, so AS_IS means
    "the carrier writes the same thing on both sides" and mixes safely with HEX. DECIMAL
    must be stated, since "2587" as a decimal is a different number from "2587" as is.
    Blanks and NULs around the id are ignored everywhere. Lowercasing could merge two ids
    that differ only in case; no carrier is known to issue such ids side by side.
    """
    cleaned = raw.strip(_ID_BLANKS).lower()
    if form is IdForm.AUTO:
        form = IdForm.AS_IS
    if len(cleaned) <= MAX_NUMERIC_ID_LENGTH:
        if form is IdForm.DECIMAL and _DECIMAL_DIGITS.fullmatch(cleaned):
            return format(int(cleaned, 10), "x")
        if _HEX_DIGITS.fullmatch(cleaned):  # HEX, AS_IS, or a DECIMAL that holds letters
            return cleaned.lstrip("0") or "0"
    return cleaned


@dataclass(frozen=True, slots=True)
class IdForms:
    """A carrier's id forms: how its submit_sm_resp and its receipts write a message id.

    ``IdForms(response_form=IdForm.HEX, receipt_form=IdForm.DECIMAL)`` for a carrier that
    answers submit_sm with "0A1B" and reports on it as "2587": both keys are "a1b". The
    receipt form applies to the id `parse_receipt` returns (the TLV's, when there is one).
    """

    response_form: IdForm = IdForm.AS_IS
    receipt_form: IdForm = IdForm.AS_IS

    @property
    def auto(self) -> bool:
        """Either side is ``auto``: a receipt's id is tried in every reading."""
        return self.response_form is IdForm.AUTO or self.receipt_form is IdForm.AUTO

    def response_key(self, raw: str) -> str:
        """The key of a message_id from submit_sm_resp (or submit_multi_resp). ``auto``
        keys it as given (``as_is``)."""
        return normalise_message_id(raw, self.response_form)

    def receipt_key(self, raw: str) -> str:
        """The key of a `Receipt.message_id` as given (``auto``: ``as_is``)."""
        return normalise_message_id(raw, self.receipt_form)

    def receipt_readings(
        self, raw: str, order: Sequence[IdReading] = READINGS
    ) -> tuple[tuple[IdReading, str], ...]:
        """With ``auto`` forms: the keys a receipt's id may match, each with its reading,
        in ``order`` (a carrier's learned reading first), without repeats: as given, the
        decimal id in hex, the hex id in decimal. Leading zeros never matter: every key is
        written without them. Without ``auto``: the one key of `receipt_key`."""
        if not self.auto:
            return ((IdReading.AS_GIVEN, self.receipt_key(raw)),)
        plain = normalise_message_id(raw, IdForm.AS_IS)
        form = self.receipt_form
        keys = {
            IdReading.AS_GIVEN: plain,
            # A receipt form that is set rules out the reading that contradicts it.
            IdReading.DECIMAL_TO_HEX: None if form is IdForm.HEX else _decimal_to_hex(plain),
            IdReading.HEX_TO_DECIMAL: None if form is IdForm.DECIMAL else _hex_to_decimal(plain),
        }
        out: list[tuple[IdReading, str]] = []
        seen: set[str] = set()
        for reading in (*order, *READINGS):
            key = keys[reading]
            if key is not None and key not in seen:
                seen.add(key)
                out.append((reading, key))
        return tuple(out)

    def response_alt_keys(self, key: str) -> tuple[str, ...]:
        """With ``auto`` forms: besides ``key`` (a `response_key`), the as-given keys of
        receipts that match it in another reading (a receipt held before its response is
        kept under its as-given key): ``key`` read as hex in decimal, as decimal in hex."""
        if not self.auto:
            return ()
        out = [k for k in (_hex_to_decimal(key), _decimal_to_hex(key)) if k and k != key]
        return tuple(dict.fromkeys(out))
