"""A deliver_sm or data_sm from a carrier: a delivery receipt, or a mobile-originated message.

``classify`` reads the PDU as the receipt handler stores it (an ``IncomingReceipt`` keyed by
the carrier's id forms) or says it is no receipt (None: an MO). The fast path takes a receipt
whose TLVs carry both the id and a 3.4 state; anything else goes through
``gateway.smpp.receipt.parse_receipt``. A PDU flagged as a receipt whose message id cannot be
read is not dropped: it becomes an unparsable receipt (``UNPARSABLE_KEY``, state
``unknown``, its raw text kept). Plain code over values: no I/O, no clock of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from gateway.core.model import IncomingReceipt, MessageStatus
from gateway.smpp.constants import Tag
from gateway.smpp.receipt import (
    ESM_MESSAGE_TYPE_MASK,
    IdForms,
    MessageState,
    Receipt,
    ReceiptKind,
    ReceiptParseError,
    parse_receipt,
    stat_word,
)

RAW_TEXT_LIMIT: Final = 512
"""Characters of a receipt's text kept in the store: a receipt's text form is about 100,
a message_payload receipt could be 64 K of junk."""

UNPARSABLE_KEY: Final = ""
"""receipt_key of a receipt with no readable id; never a part's key (those are not empty)."""

RECEIPT_STATUS: Final[dict[MessageState, MessageStatus]] = {
    MessageState.DELIVERED: MessageStatus.DELIVERED,
    MessageState.UNDELIVERABLE: MessageStatus.UNDELIVERABLE,
    MessageState.EXPIRED: MessageStatus.EXPIRED,
    MessageState.REJECTED: MessageStatus.REJECTED,
    MessageState.DELETED: MessageStatus.REJECTED,
    # Not final for the client: the carrier has it, the handset may not yet.
    MessageState.ENROUTE: MessageStatus.SUBMITTED,
    MessageState.ACCEPTED: MessageStatus.SUBMITTED,
    MessageState.UNKNOWN: MessageStatus.SUBMITTED,
}
"""How a receipt's state maps to a part's status."""

_STAT_ERR: Final = re.compile(r"(?i)(?<![^\s\x00,;])(stat|err):[\s\x00]*([^\s\x00,;]*)")
"""stat: and err: values of the text form, for the TLV fast path (text: is never reached by
it in practice: the two fields come before it in every vendor's layout we know)."""

_VALUE: Final = re.compile(r"[\s\x00]*([^\s\x00,;]*)")
"""What ``_STAT_ERR`` matches after a key's colon."""

_ID_BLANKS: Final = " \t\r\n\x0b\x0c\x00"

# The receipt hot path's lookups by plain int (an IntEnum call or class attribute costs
# several times a tuple index or a dict lookup).
_STATES: Final = {int(s): s for s in MessageState}
_STATE_NAMES: Final = {int(s): s.name.lower() for s in MessageState}
_RECEIPT_STATUS_BY_VALUE: Final = {int(s): RECEIPT_STATUS[s] for s in MessageState}
_RECEIPT_KINDS: Final = frozenset(int(k) for k in ReceiptKind)
_TAG_RECEIPTED_MESSAGE_ID: Final = int(Tag.RECEIPTED_MESSAGE_ID)
_TAG_MESSAGE_STATE: Final = int(Tag.MESSAGE_STATE)
_TAG_NETWORK_ERROR_CODE: Final = int(Tag.NETWORK_ERROR_CODE)


def receipt_error(receipt: Receipt) -> str | None:
    """The error a receipt reports, or None for a delivered one or a zero err."""
    if receipt.state is MessageState.DELIVERED:
        return None
    parts = [f"stat:{receipt.stat or stat_word(receipt.state)}"]
    if receipt.err and receipt.err.strip("0"):
        parts.append(f"err:{receipt.err}")
    network = receipt.network_error
    if network is not None and network.error_code:
        parts.append(f"network_error:{network.network_type}/{network.error_code}")
    return " ".join(parts)


def to_incoming(
    carrier: str, forms: IdForms, receipt: Receipt, received_at: float
) -> IncomingReceipt:
    return IncomingReceipt(
        carrier=carrier,
        receipt_key=forms.receipt_key(receipt.message_id),
        carrier_message_id=receipt.message_id,
        status=RECEIPT_STATUS[receipt.state],
        state=receipt.stat or receipt.state.name.lower(),
        received_at=received_at,
        error=receipt_error(receipt),
        raw=receipt.raw_text[:RAW_TEXT_LIMIT],
    )


def from_tlvs(
    carrier: str,
    forms: IdForms,
    esm_class: int,
    text: bytes,
    receipted_message_id: str | None,
    message_state: int | None,
    network_error_code: bytes | None,
    received_at: float,
) -> IncomingReceipt | None:
    """The fast path: a receipt whose TLVs carry both the id and a 3.4 state. It gives what
    ``parse_receipt`` gives (TLVs win over the text there too) without parsing dates and
    counters nobody here reads; stat and err still come from the text. None when the TLVs
    do not suffice (or the esm_class says no receipt): use ``parse_receipt`` then."""
    if receipted_message_id is None or message_state is None or not 1 <= message_state <= 8:
        return None
    raw_id = receipted_message_id.strip(_ID_BLANKS)
    if not raw_id or esm_class & ESM_MESSAGE_TYPE_MASK not in _RECEIPT_KINDS:
        return None
    state = _STATES[message_state]
    raw = text.decode("latin-1")
    end = raw.find("text:")
    stat, err = stat_err(raw if end < 0 else raw[:end])
    error: str | None = None
    if state is not MessageState.DELIVERED:
        details = [f"stat:{stat or stat_word(state)}"]
        if err and err.strip("0"):
            details.append(f"err:{err}")
        if network_error_code is not None and len(network_error_code) == 3:
            code = int.from_bytes(network_error_code[1:3], "big")
            if code:
                details.append(f"network_error:{network_error_code[0]}/{code}")
        error = " ".join(details)
    return IncomingReceipt(
        carrier=carrier,
        receipt_key=forms.receipt_key(raw_id),
        carrier_message_id=raw_id,
        status=_RECEIPT_STATUS_BY_VALUE[message_state],
        state=stat or _STATE_NAMES[message_state],
        received_at=received_at,
        error=error,
        raw=raw[:RAW_TEXT_LIMIT],
    )


def stat_err(head: str) -> tuple[str | None, str | None]:
    """The first non-empty stat: and err: values of a receipt's text (``_STAT_ERR``).

    The usual text names each key once: then two ``find`` calls and an anchored match per
    key give the answer (a third of the time of ``findall``, which tries the pattern at
    every position). Anything else (a key repeated, in any case) takes ``findall``."""
    low = head.lower()  # same length and positions: latin-1 characters lower to one each
    i = low.find("stat:")
    j = low.find("err:")
    if (i >= 0 and low.find("stat:", i + 1) >= 0) or (j >= 0 and low.find("err:", j + 1) >= 0):
        return _stat_err_slow(head)
    # Each key starts a match if a separator (or the start) comes before it and the match
    # of the other key, if earlier, has not swallowed it (findall's matches never overlap).
    stat_at = i if i >= 0 and (i == 0 or _is_separator(head[i - 1])) else -1
    err_at = j if j >= 0 and (j == 0 or _is_separator(head[j - 1])) else -1
    stat_value = _VALUE.match(head, stat_at + 5) if stat_at >= 0 else None
    err_value = _VALUE.match(head, err_at + 4) if err_at >= 0 else None
    if stat_value is not None and err_value is not None:
        if stat_at < err_at < stat_value.end():
            err_value = None
        elif err_at < stat_at < err_value.end():
            stat_value = None
    return (
        (stat_value.group(1) or None) if stat_value is not None else None,
        (err_value.group(1) or None) if err_value is not None else None,
    )


def _is_separator(char: str) -> bool:
    return char.isspace() or char in "\x00,;"


def _stat_err_slow(head: str) -> tuple[str | None, str | None]:
    stat: str | None = None
    err: str | None = None
    for key, value in _STAT_ERR.findall(head):
        if key.lower() == "stat":
            stat = stat or value or None
        else:
            err = err or value or None
    return stat, err


def receipt_tlvs(tlvs: Iterable[tuple[int, bytes]]) -> tuple[str | None, int | None, bytes | None]:
    """receipted_message_id, message_state and network_error_code of a deliver_sm's TLVs in
    one pass: what ``Pdu.receipted_message_id``, ``.message_state`` and
    ``.network_error_code`` give (the first TLV of each tag), for the receipt hot path."""
    rid: bytes | None = None
    state: bytes | None = None
    nec: bytes | None = None
    for tag, value in tlvs:
        if tag == _TAG_RECEIPTED_MESSAGE_ID:
            if rid is None:
                rid = value
        elif tag == _TAG_MESSAGE_STATE:
            if state is None:
                state = value
        elif tag == _TAG_NETWORK_ERROR_CODE and nec is None:
            nec = value
    if rid is not None:
        end = rid.find(b"\0")
        rid_text: str | None = (rid if end < 0 else rid[:end]).decode("latin-1")
    else:
        rid_text = None
    return rid_text, int.from_bytes(state, "big") if state else None, nec


def unparsable(carrier: str, raw: bytes, received_at: float, why: str) -> IncomingReceipt:
    return IncomingReceipt(
        carrier=carrier,
        receipt_key=UNPARSABLE_KEY,
        carrier_message_id="",
        status=MessageStatus.SUBMITTED,
        state="unknown",
        received_at=received_at,
        error=why[:200],
        raw=raw.decode("latin-1")[:RAW_TEXT_LIMIT],
    )


def classify(
    carrier: str,
    forms: IdForms,
    esm_class: int,
    text: bytes,
    tlvs: Iterable[tuple[int, bytes]],
    now: float,
) -> tuple[IncomingReceipt | None, bool]:
    """The receipt a deliver_sm or data_sm (its esm_class, its short_message or
    message_payload, its TLVs) carries, received at ``now``, and whether it was unparsable
    (flagged as a receipt, no readable id: kept under ``UNPARSABLE_KEY``). (None, False)
    when it is no receipt: an MO."""
    rid, state, nec = receipt_tlvs(tlvs)
    fast = from_tlvs(carrier, forms, esm_class, text, rid, state, nec, now)
    if fast is not None:
        return fast, False
    try:
        receipt = parse_receipt(esm_class, text, rid, state, nec)
    except ReceiptParseError as exc:
        return unparsable(carrier, text, now, str(exc)), True
    if receipt is None:
        return None, False
    return to_incoming(carrier, forms, receipt, now), False
