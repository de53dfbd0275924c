"""deliver_sm towards upstream accounts: receipts for their messages, and MO. Pure code.

Receipt (gateway.smpp.smsc.receipt_deliver_sm, shared with the simulator): esm_class 0x04,
from the message's destination to its sender, the Appendix B text
``id:<smsgw id> sub:001 dlvrd:00N submit date:yyMMddHHmm done date:yyMMddHHmm stat:...
err:... text:`` (dates in UTC, ``text`` empty: smsgw does not keep the first 20 characters
with the status) and the TLVs receipted_message_id (smsgw's id) and message_state.

MO: the text as GSM 03.38 when it fits, UCS-2 otherwise; a long one as 8-bit-reference UDH
parts (the common form).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from gateway.core.model import CANCELLED, MessageStatus
from gateway.smpp.address import smpp_address
from gateway.smpp.pdu import DeliverSm
from gateway.smpp.receipt import MessageState, format_receipt_text
from gateway.smpp.smsc import mo_deliver_sms, receipt_deliver_sm, wants_receipt
from gateway.smpp.text import ConcatMethod, split_message

MESSAGE_STATE: Final[dict[str, MessageState]] = {
    MessageStatus.DELIVERED.value: MessageState.DELIVERED,
    MessageStatus.UNDELIVERABLE.value: MessageState.UNDELIVERABLE,
    MessageStatus.EXPIRED.value: MessageState.EXPIRED,
    MessageStatus.REJECTED.value: MessageState.REJECTED,
    # smsgw gave up (permanent submit error, retries exhausted, validity over): the
    # message did not reach the handset.
    MessageStatus.FAILED.value: MessageState.UNDELIVERABLE,
}
"""smsgw's final statuses as SMPP message_state."""


def message_state(status: str, error: str | None = None) -> MessageState:
    """A message's status as SMPP message_state: a final one as its receipt says it, a
    message cancelled by its sender (cancel_sm) DELETED, one still under way ENROUTE."""
    if status == MessageStatus.FAILED.value and error == CANCELLED:
        return MessageState.DELETED
    found = MESSAGE_STATE.get(status)
    if found is not None:
        return found
    try:
        MessageStatus(status)
    except ValueError:
        return MessageState.UNKNOWN
    return MessageState.ENROUTE  # accepted, queued, submitted


ERR_CODE: Final[dict[MessageState, str]] = {MessageState.DELIVERED: "000"}
"""The receipt's err field: 000 when delivered; 001 otherwise (smsgw keeps the carrier's
error as text, not as a code)."""


def registered_delivery_of(url: str) -> int:
    """The ``rd`` of a ``smpp:<account>?rd=<n>`` callback URL (1 when absent)."""
    _, _, query = url.partition("?")
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key == "rd" and value.isdigit():
            return int(value)
    return 1


def created_at_of(message_id: str) -> float | None:
    """Creation time from an smsgw id (12 hex digits of epoch milliseconds first)."""
    try:
        return int(message_id[:12], 16) / 1000.0
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    message_id: str
    status: str
    done_at: float
    to: str
    sender: str
    submitted_at: float
    registered_delivery: int
    error: str | None = None


def receipt_info(payload: str) -> ReceiptInfo:
    """The receipt an outbox payload (written by the store with the final status) asks for:
    the callback payload plus the message's ``to``, ``sender`` and ``created_at``."""
    data: dict[str, Any] = json.loads(payload)
    message_id = str(data["id"])
    at = float(data["at"])
    created_at = data.get("created_at")
    submitted = float(created_at) if created_at else created_at_of(message_id) or at
    return ReceiptInfo(
        message_id=message_id,
        status=str(data["status"]),
        done_at=at,
        to=str(data.get("to") or ""),
        sender=str(data.get("sender") or ""),
        submitted_at=submitted,
        registered_delivery=registered_delivery_of(str(data.get("url", ""))),
        error=data.get("error"),
    )


def build_receipt(info: ReceiptInfo) -> DeliverSm | None:
    """The deliver_sm receipt, or None when registered_delivery did not ask for this one."""
    state = message_state(info.status, info.error)
    if not wants_receipt(info.registered_delivery, state):
        return None
    text = format_receipt_text(
        info.message_id,
        state,
        datetime.fromtimestamp(info.submitted_at, UTC),
        datetime.fromtimestamp(info.done_at, UTC),
        err=ERR_CODE.get(state, "001"),
    )
    return receipt_deliver_sm(
        source=smpp_address(info.to),
        destination=smpp_address(info.sender),
        short_message=text.encode("latin-1"),
        receipt_id=info.message_id,
        state=state,
    )


def mo_payload(source: str, destination: str, text: str, received_at: float) -> str:
    return json.dumps(
        {"source": source, "destination": destination, "text": text, "at": received_at}
    )


def build_mo(payload: str, ref: int, max_parts: int = 255) -> list[DeliverSm]:
    """The deliver_sm parts of one MO held in the outbox. One that needs more than
    ``max_parts`` parts (more than the receiver's window takes at once) goes whole in
    message_payload instead."""
    data: dict[str, Any] = json.loads(payload)
    text = str(data["text"])
    split = split_message(text, concat=ConcatMethod.UDH8, ref=ref)
    payload_pdu = len(split.parts) > max_parts
    if payload_pdu:
        split = split_message(text, split.encoding, concat=ConcatMethod.PAYLOAD, ref=ref)
    return mo_deliver_sms(
        source=smpp_address(str(data["source"])),
        destination=smpp_address(str(data["destination"])),
        split=split,
        payload=payload_pdu,
    )
