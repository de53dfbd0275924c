"""The gateway's own values: messages, parts, receipts, and their statuses.

These are what the HTTP API, the dispatcher and the store exchange. They know nothing of
SMPP bytes, SQL or HTTP. Times are float seconds since the epoch (``time.time()``).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final


class MessageStatus(StrEnum):
    """A message's status as clients see it (the aggregate of its parts)."""

    ACCEPTED = "accepted"  # durable, not yet handed to a carrier
    QUEUED = "queued"  # waiting for a bind (after a temporary failure, or scheduled)
    SUBMITTED = "submitted"  # every part has a carrier message id; no final receipt yet
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"
    REJECTED = "rejected"  # refused by the carrier, at submit or in its receipt
    FAILED = "failed"  # we gave up: permanent submit error, retries exhausted, validity over


FINAL_STATUSES: Final = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERABLE,
        MessageStatus.EXPIRED,
        MessageStatus.REJECTED,
        MessageStatus.FAILED,
    }
)

_rng = random.Random(os.urandom(16))


def new_message_id(now: float | None = None) -> str:
    """A 26-character id that sorts by creation time: 12 hex digits of milliseconds since
    the epoch, then 14 random hex digits (56 bits: collisions within one millisecond are
    negligible at any rate one gateway reaches)."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{ms:012x}{_rng.getrandbits(56):014x}"


@dataclass(slots=True)
class NewMessage:
    """A message as accepted at intake, before it is stored."""

    id: str
    to: str  # E.164 with a leading '+', or as given for non-numeric destinations
    sender: str  # short code, long number (E.164) or alphanumeric sender id
    text: str
    encoding: str  # "gsm7" | "ucs2" | "latin1"
    parts: int
    carrier: str  # chosen at intake by the routing rules
    created_at: float
    client_ref: str | None = None
    callback_url: str | None = None
    validity_until: float | None = None
    scheduled_at: float | None = None
    priority: int = 0  # higher first
    campaign_id: str | None = None
    account: str = ""  # the API token's name (or the upstream SMPP account)
    registered_delivery: bool = True
    links: tuple[tuple[str, str], ...] = ()
    """(code, target) of each short link in the text (gateway.links): stored with the
    message, in its transaction, so no link is sent that does not exist."""


@dataclass(slots=True)
class OutboundMessage:
    """What the dispatcher needs to send a message (or the parts of it still unsent)."""

    id: str
    to: str
    sender: str
    text: str
    encoding: str
    carrier: str
    priority: int
    created_at: float
    validity_until: float | None = None
    scheduled_at: float | None = None
    attempts: int = 0
    registered_delivery: bool = True
    pending_parts: tuple[int, ...] | None = None  # None: every part
    possible_duplicate: bool = False
    taken_from: str | None = None
    """The node whose lapsed claim on it this node took over (``take_over_pending``)."""


CANCELLED: Final = "cancelled (cancel_sm)"
"""The error of a message its sender cancelled before it left (SMPP cancel_sm): its status
is ``failed``, and query_sm and receipts report it as DELETED."""


@dataclass(frozen=True, slots=True)
class Replacement:
    """What SMPP replace_sm changes in a message that has not left yet."""

    text: str
    encoding: str
    parts: int
    scheduled_at: float | None
    validity_until: float | None
    callback_url: str | None


@dataclass(slots=True)
class SubmitOutcome:
    """What became of one part's submit_sm."""

    message_id: str
    part: int  # 1-based
    carrier: str
    status: MessageStatus  # SUBMITTED, QUEUED (retry), REJECTED or FAILED
    at: float
    carrier_message_id: str | None = None  # raw, as in submit_sm_resp
    receipt_key: str | None = None  # normalised id the receipt will carry
    command_status: int | None = None
    error: str | None = None
    retry_at: float | None = None
    possible_duplicate: bool = False
    alt_keys: tuple[str, ...] = ()
    """Further keys under which a receipt held before this response may have been kept
    (a carrier with ``auto`` id forms: the id read in the other base); receipt_key first."""


@dataclass(slots=True)
class IncomingReceipt:
    """A delivery receipt as it came off a bind, before it is matched."""

    carrier: str
    receipt_key: str  # normalised carrier message id
    carrier_message_id: str  # raw
    status: MessageStatus  # DELIVERED, UNDELIVERABLE, EXPIRED, REJECTED, SUBMITTED (enroute)
    state: str  # the stat word or message_state name as received
    received_at: float
    error: str | None = None
    raw: str = ""
    match_keys: tuple[str, ...] = ()
    """The keys to try, in order, when more than one reading of the id is possible
    (``auto`` id forms); empty: ``receipt_key`` alone. A receipt matching none is kept
    under ``receipt_key``."""
    matched_key: str | None = None
    """Set by ``Receipts.record_receipts``: the key that matched a part, or None when the
    receipt was kept unmatched (held for a response still to come)."""


@dataclass(slots=True)
class StatusChange:
    """A message whose status moved; what callbacks and statistics are made of."""

    message_id: str
    status: MessageStatus
    at: float
    client_ref: str | None = None
    callback_url: str | None = None
    carrier: str | None = None
    error: str | None = None
    campaign_id: str | None = None


@dataclass(slots=True)
class HistoryEntry:
    at: float
    status: str
    part: int | None = None
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class PartView:
    part: int
    status: str
    carrier: str | None
    carrier_message_id: str | None
    attempts: int
    error: str | None


@dataclass(slots=True)
class MessageView:
    """GET /v1/messages/{id}."""

    id: str
    status: str
    to: str
    sender: str
    encoding: str
    parts: list[PartView]
    history: list[HistoryEntry]
    created_at: float
    client_ref: str | None = None
    campaign_id: str | None = None
    carrier: str | None = None
    possible_duplicate: bool = False
    error: str | None = None
    account: str = ""
    """The account that sent it (a token's account, ``campaigns``, ``inbound``); not shown
    in the API's answer, which only its account (or an admin token) gets."""
