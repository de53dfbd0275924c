"""The store's values and errors: what the ports (gateway.store.ports) take and give.

SQLite (``gateway.store.sqlite``) is the embedded default; a PostgreSQL backend will follow so
that several gateway nodes share one queue and one receipt map. Nothing above the store
knows SQL, threads or which backend runs: callers use the ports and await them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.core.model import (
    MessageStatus,
)


class StoreError(Exception):
    """The store could not do what was asked (I/O error, corrupt file)."""


class StoreUnavailable(StoreError):
    """The store refuses new work for now (disk short of space, database file gone): nothing
    was written; the same request can succeed later (gateway.store.health)."""


class LinkCodeTaken(StoreError):
    """``accept``: a message's short link code is already in use; nothing was committed
    (draw new codes and accept again)."""


class IdempotencyConflict(StoreError):
    """Another request with the same idempotency key committed first."""


@dataclass(slots=True)
class IdempotentAnswer:
    """The first answer to a request, replayed to retries with the same key."""

    account: str
    key: str
    request_hash: str
    status: int
    body: str  # JSON text
    created_at: float


@dataclass(slots=True)
class Callback:
    """A status callback waiting in the outbox."""

    id: int
    """Sent as ``X-Smsgw-Callback-Id``, on which receivers deduplicate: a backend never
    gives one id to two callbacks for the life of its database (SQLite: a high-water mark
    in ``meta``; a PostgreSQL backend: a sequence, started above a migrated database's
    mark), whatever was delivered and deleted meanwhile."""
    url: str
    payload: str  # JSON text
    attempts: int
    next_at: float
    signer: str | None = None
    taken_from: str | None = None
    """The node whose lapsed claim on it ``callbacks_due`` took over (a backend several
    nodes share says so; None: nobody held it, or this node did)."""
    """Whose secrets sign it (gateway.signing): the message's account for a status
    callback, ``WEBHOOK_SIGNER`` for a webhook action; None: unsigned."""


CALLBACK_PARKED_AT: Final = 253402300799.0
"""``next_at`` of a parked callback (9999-12-31T23:59:59Z): never due again until re-armed
(``retry_callbacks``)."""


@dataclass(slots=True)
class CallbackView:
    """A callback in the outbox, as an operator lists it (``list_callbacks``)."""

    id: int
    url: str
    payload: str  # JSON text
    attempts: int
    next_at: float
    last_error: str | None
    created_at: float

    @property
    def parked(self) -> bool:
        return self.next_at >= CALLBACK_PARKED_AT


@dataclass(frozen=True, slots=True)
class Link:
    """A short link (gateway.links): written with its message by ``Messages.accept``."""

    code: str
    message_id: str
    campaign_id: str | None
    number: str
    target: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Click:
    """One request for a short link: a click, or (``bot``) a prefetch or a preview."""

    code: str
    campaign_id: str | None
    number: str
    at: float
    user_agent: str
    bot: bool


NO_RECEIPT: Final = "no_receipt"
"""The error of a part made ``expired`` because its receipt never came
(``Receipts.expire_unreceipted``, gateway.store.ports)."""

FRONT_CALLBACK_SCHEME = "smpp:"
"""A message's callback_url starting with this (``smpp:<account>?rd=<registered_delivery>``)
names an upstream SMPP account of the front (gateway.front): its final status goes to the
front outbox (``front_due``), not to the HTTP callbacks outbox. The HTTP API accepts only
http(s) callback URLs, so no HTTP client can write one."""


@dataclass(slots=True)
class FrontItem:
    """A deliver_sm (receipt or MO) owed to an upstream SMPP account, held until sent."""

    id: int
    account: str
    kind: str  # "receipt" | "mo"
    payload: str  # JSON text
    attempts: int
    created_at: float
    taken_from: str | None = None
    """The node whose lapsed claim on it ``front_due`` took over, as ``Callback``'s."""


FRONT_PART_HELD: Final = "held"
FRONT_PART_JOINED: Final = "joined"
FRONT_PART_FAILED: Final = "failed"
"""States of a ``FrontPart``: waiting for its siblings; its message is committed; refused
when joined (its receipt says so)."""


@dataclass(slots=True)
class FrontPart:
    """One part of a long message from an upstream SMPP account (gateway.front), durable
    from before its submit_sm_resp. ``part_id`` is the id that response gave; the message,
    once its parts are joined, is committed with id ``message_id``, and its final status
    comes back as one receipt per part, each with its part's id."""

    part_id: str
    message_id: str
    account: str
    source: str
    destination: str
    ref: int
    total: int
    seq: int
    pdu: bytes  # the submit_sm or data_sm as received (gateway.smpp.pdu.encode)
    received_at: float
    state: str = FRONT_PART_HELD


@dataclass(slots=True)
class FrontPartStatus:
    """Where a ``FrontPart`` stands (for query_sm on its id): accepted while it waits for
    its siblings, rejected when its joined message was refused, else the status of the
    carrier parts carrying its text (its message's once the message is final and they are
    not: what its receipt says). ``final_at``: when it became final."""

    part: FrontPart
    status: MessageStatus
    final_at: float | None


EDIT_DONE: Final = "done"
EDIT_UNKNOWN: Final = "unknown"
EDIT_REFUSED: Final = "refused"
"""Answers of ``cancel_message`` / ``replace_message``: done; no such message of that
account; too late (a part was handed to a carrier, or the message is final)."""


@dataclass(slots=True)
class MessageSummary:
    """What SMPP query_sm, cancel_sm and replace_sm need of a message."""

    id: str
    account: str
    status: str
    error: str | None
    updated_at: float
    encoding: str
    carrier: str
    scheduled_at: float | None
    validity_until: float | None
    callback_url: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """``GET /v1/messages``: which messages, a page at a time by id (ids sort by creation
    time, so a page by id is a page by time)."""

    account: str | None
    """Only this account's messages; None: every account's (an admin token)."""
    campaign_id: str | None = None
    statuses: tuple[str, ...] = ()
    """Any of these statuses; empty: any status."""
    to: str | None = None
    client_ref: str | None = None
    since: float | None = None
    """Made at or after this time (epoch seconds, as the id carries it)."""
    until: float | None = None
    """Made before this time."""
    after: str | None = None
    """The last id of the previous page."""
    limit: int = 100
    newest_first: bool = True


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One message of a list: its fate without its parts and history."""

    id: str
    status: str
    to: str
    sender: str
    encoding: str
    parts: int
    carrier: str | None
    client_ref: str | None
    campaign_id: str | None
    possible_duplicate: bool
    error: str | None
    created_at: float
    updated_at: float
    account: str
    text: str | None = None
    """The message's text (the conversation thread shows it; GET /v1/messages does not)."""


# -- inbound (MO) ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MoKey:
    """What ties the parts of one long MO together: (carrier, source, destination, ref), and
    the part count, so that a reference a phone reuses for a message of another length starts
    a group of its own."""

    carrier: str
    source: str  # the subscriber, normalised (E.164 when numeric)
    destination: str  # our number, as configured when it is one of ours
    ref: int
    total: int


@dataclass(frozen=True, slots=True)
class MoPart:
    """One part of a long MO as it came off the bind, kept until its message is whole."""

    key: MoKey
    seq: int  # 1-based
    data_coding: int
    data: bytes  # user data, any UDH taken off
    udh_length: int  # octets of UDH before ``data`` (UDHL included; 0 without): fill bits
    received_at: float


@dataclass(slots=True)
class NewInteraction:
    """A whole (or timed-out) MO, ready to log. Its actions run after it is stored."""

    carrier: str
    source: str
    destination: str
    text: str
    data_coding: int
    parts: int  # parts the message announced (1 for a single one)
    parts_received: int
    received_at: float  # the first part
    completed_at: float  # when it became whole, or timed out
    missing: tuple[int, ...] = ()  # part numbers that never came

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass(slots=True)
class Interaction:
    """One logged MO: what came in, and what the gateway did about it."""

    id: int
    carrier: str
    source: str
    destination: str
    text: str
    data_coding: int
    parts: int
    parts_received: int
    missing: tuple[int, ...]
    received_at: float
    completed_at: float
    state: str  # "pending" (actions not run yet), "done" or "quarantined"
    keyword: str | None = None
    rule: str | None = None
    campaign_id: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    processed_at: float | None = None
    attempts: int = 0
    """Handling attempts begun that did not finish (see gateway.inbound.scheduling)."""
    last_error: str | None = None
    """Why the last attempt failed; for a quarantined one, why it was quarantined."""
    care_state: str = "open"
    """Customer care, apart from ``state``: "open", "answered" (a helpdesk reply went)
    or "closed" (see gateway.http.interactions)."""
    assignee: str | None = None
    """Who in customer care handles it."""

    @property
    def complete(self) -> bool:
        return not self.missing


INTERACTION_PENDING: Final = "pending"
INTERACTION_DONE: Final = "done"
INTERACTION_QUARANTINED: Final = "quarantined"
"""Handling failed or did not finish ``[inbound].max_attempts`` times: set aside, never
handled again unless requeued (``POST /v1/interactions/{id}/retry``)."""


@dataclass(slots=True)
class Contact:
    """Someone we message, with the fields templates may use."""

    number: str  # E.164 when numeric
    name: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    created_at: float = 0.0


@dataclass(slots=True)
class SurveyAnswer:
    interaction_id: int
    number: str  # ours, where the answer was sent
    source: str  # who answered
    question: str
    answer: str  # normalised: "3", "B", "YES", "NO", or the word as sent (folded)
    kind: str  # "number" | "letter" | "yes_no" | "text"
    at: float
    campaign_id: str | None = None


@dataclass(frozen=True, slots=True)
class MoLookup:
    """What handling one MO needs to know, asked for many MOs at once (``MoLog.mo_facts``)."""

    source: str  # the subscriber
    sender: str  # our number the replies go from (opt-outs, campaign correlation)
    destination: str  # our number the MO was written to (loop guard)
    text: str


@dataclass(frozen=True, slots=True)
class MoFacts:
    """The answers to one :class:`MoLookup`."""

    opted_out: bool  # ``source`` opted out of ``sender`` (or of everything)
    last_campaign: tuple[str, float] | None  # (campaign_id, created_at) of the newest MT
    repeats: int  # MOs source -> destination with exactly this text since ``repeats_since``
    contact: Contact | None


@dataclass(frozen=True, slots=True)
class InteractionOutcome:
    """What was done about one interaction (``MoLog.finish_interactions``)."""

    interaction_id: int
    keyword: str | None
    rule: str | None
    campaign_id: str | None
    actions: Sequence[dict[str, Any]]
    at: float


# -- reports: interaction export, campaign digests ----------------------------------------------


@dataclass(frozen=True, slots=True)
class CampaignCounts:
    """What a campaign did in one period [since, until): the one definition of each figure,
    used by the campaign statistics (API, CLI) and the daily digest alike.

    A *recipient* is a number the campaign made a message for. A *re-subscription* is an MO
    that opted its sender back in (START, or YES from an opted-out sender: the built-in
    rules ``opt_in`` and ``resubscribe``)."""

    sent: int = 0
    """Messages that reached a carrier (a part accepted by its submit_sm_resp), counted when
    the first part was; whatever came after (delivered, undeliverable, expired, rejected)."""
    delivered: int = 0
    """Messages whose status became delivered."""
    replies: int = 0
    """MOs logged under the campaign: every row of its interactions CSV."""
    unique_responders: int = 0
    """Recipients with at least one reply that is not a re-subscription."""
    opt_outs: int = 0
    """Recipients whose reply ran an opt-out (STOP ..., STOPALL) that was stored."""
    resubscriptions: int = 0
    """Replies that were a re-subscription (not answers, not responses)."""
    replies_from_others: int = 0
    """Replies from numbers the campaign never messaged (a campaign keyword texted by
    someone else): in ``replies``, never in the responders."""
    clicks: int = 0
    """Requests for the campaign's short links made by people: every one, repeats
    included. A request is a person's unless it is a bot's (``bot_requests``)."""
    unique_clickers: int = 0
    """Recipients with at least one click (a short link is its recipient's own)."""
    bot_requests: int = 0
    """Requests for the campaign's short links made by bots and link previews (HEAD, an
    empty User-Agent or one of ``[links] prefetchers``): never clicks."""
    undelivered: int = 0
    """Messages whose status became final without a delivery: undeliverable, expired,
    rejected (by the carrier, at submit or in its receipt) or failed (the gateway gave up),
    counted when it did. A message refused before it reached a carrier is undelivered
    without being sent."""
    undelivered_by_status: dict[str, int] = field(default_factory=dict)
    """``undelivered`` by that status (each of the four, 0 included)."""
    undelivered_by_error: dict[str, int] = field(default_factory=dict)
    """``undelivered`` by the error recorded with that status: the receipt's ``stat:``,
    ``err:`` and network error, the submit_sm_resp's status, or the gateway's reason ('' when
    none was recorded)."""


UNDELIVERED_STATUSES: Final = ("undeliverable", "expired", "rejected", "failed")
"""The final statuses of :attr:`CampaignCounts.undelivered` (gateway.core.model.MessageStatus)."""


@dataclass(frozen=True, slots=True)
class Periods:
    """``count`` consecutive periods of ``width`` seconds from ``since``: the axis of a
    timeline (``CampaignReports.campaign_series``). ``Periods(a, b - a, 1)`` is the one
    period [a, b), ``b`` infinite included."""

    since: float
    width: float
    count: int

    @property
    def until(self) -> float:
        return self.since + self.width * self.count
