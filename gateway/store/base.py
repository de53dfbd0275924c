"""The store interface: everything the gateway keeps, behind a narrow async API.

SQLite (``gateway.store.sqlite``) is the embedded default; a PostgreSQL backend will follow so
that several gateway nodes share one queue and one receipt map. Nothing above this layer
knows SQL, threads or which backend runs: callers make batch calls and await them. A call
returns only once its effects are durable, so "accepted" is said after the commit.

Batching is the caller's friend: every method takes a sequence, and the SQLite backend also
merges concurrent calls into one transaction (group commit).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from gateway.model import (
    IncomingReceipt,
    MessageStatus,
    MessageView,
    NewMessage,
    OutboundMessage,
    Replacement,
    StatusChange,
    SubmitOutcome,
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


@dataclass(slots=True)
class UnmatchedReceipt:
    carrier: str
    receipt_key: str
    carrier_message_id: str
    status: str
    received_at: float


NO_RECEIPT: Final = "no_receipt"
"""The error of a part made ``expired`` because its receipt never came
(``Store.expire_unreceipted``)."""

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


class Store(Protocol):
    async def open(self) -> None:
        """Create or migrate the schema; ready for calls when it returns."""

    async def close(self) -> None:
        """Finish pending writes and release the backend."""

    # -- intake ----------------------------------------------------------------------------

    async def accept(
        self,
        messages: Sequence[NewMessage],
        idempotency: IdempotentAnswer | None = None,
        begun: Collection[str] = (),
    ) -> None:
        """Commit new messages (status accepted, one part row per part, a history entry)
        and, in the same transaction, the idempotent answer. Raises IdempotencyConflict
        when the key is already stored (nothing is committed then).

        ``begun``: ids of messages whose first attempt begins with their acceptance (the
        dispatcher has window and TPS room to send them at once): their parts are stored
        as :meth:`begin_attempts` would leave them (being submitted, one attempt), so no
        second commit stands between the accept and the wire. A crash before their
        outcome is recorded brings them back possibly duplicated, like any begun part. No
        opt-out check is made for them: the intake check just before is made at the same
        moment (the dispatcher still stops a staged part whose number opts out later)."""

    async def find_idempotent(self, account: str, key: str) -> IdempotentAnswer | None: ...

    async def opted_out(self, numbers: Sequence[str], sender: str) -> set[str]:
        """Which of ``numbers`` must not be messaged from ``sender`` (opted out of that
        sender, or of everything)."""

    async def add_opt_out(self, number: str, sender: str | None, source: str, at: float) -> None:
        """Record an opt-out: from ``sender`` only, or from everything when None."""

    async def remove_opt_out(self, number: str, sender: str | None) -> None: ...

    # -- dispatch --------------------------------------------------------------------------

    async def load_pending(self, after: str | None, limit: int) -> list[OutboundMessage]:
        """Messages with parts still to submit, by id after ``after``: at start-up and
        whenever the dispatcher's memory queue runs low. Parts whose attempt began but
        never got an outcome (a crash mid-send) come back with possible_duplicate set."""

    async def begin_attempts(self, parts: Sequence[tuple[str, int]]) -> set[str]:
        """Mark (message id, part) as being submitted, before the submit_sm leaves.

        Returns the ids of messages that must not leave: their recipient opted out (from
        their sender, or from every sender) at or after the time they were accepted: the
        intake check could not see it (a campaign's STOP racing its sends). Their parts are
        not marked; the caller fails them. Atomic with opt-out writes: an opt-out committed
        before this call is seen by it."""

    async def record_outcomes(self, outcomes: Sequence[SubmitOutcome]) -> list[StatusChange]:
        """Store submit results; for submitted parts write the receipt map entry, and
        apply any receipt that arrived before its response. Returns the messages whose
        status changed."""

    # -- receipts --------------------------------------------------------------------------

    async def record_receipts(self, receipts: Sequence[IncomingReceipt]) -> list[StatusChange]:
        """Persist every receipt; apply those that match a part. A receipt that matches
        nothing is kept as unmatched and applied if its submit outcome comes later.
        Returns the messages whose status changed."""

    async def unmatched_receipts(self, limit: int) -> list[UnmatchedReceipt]: ...

    async def still_unmatched(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (carrier, receipt_key) name a receipt still kept unmatched (the receipt
        handler asks once a held receipt's wait for its response is over)."""

    async def expire_unreceipted(
        self,
        carrier: str,
        validity_before: float,
        submitted_before: float,
        at: float,
        limit: int,
    ) -> list[StatusChange]:
        """Give up waiting for receipts: at most ``limit`` messages of ``carrier`` still
        ``submitted`` that asked for a receipt, whose validity ended before
        ``validity_before`` or, with no validity, that became submitted before
        ``submitted_before``: their parts still submitted become ``expired`` with error
        ``NO_RECEIPT`` (a history entry each), and the messages' status changes (with
        their callbacks) as any other. Returns those changes."""

    # -- callbacks -------------------------------------------------------------------------

    async def enqueue_callbacks(
        self, callbacks: Sequence[tuple[str, str]], at: float, signer: str | None = None
    ) -> None:
        """Add (url, JSON payload) callbacks to the outbox, signed by ``signer``'s secrets
        when they are sent (gateway.signing)."""

    async def callbacks_due(self, now: float, limit: int) -> list[Callback]: ...

    async def callback_done(self, callback_id: int) -> None: ...

    async def callback_retry(self, callback_id: int, next_at: float, error: str) -> None: ...

    async def list_callbacks(
        self, parked: bool | None, after: int | None, limit: int
    ) -> list[CallbackView]:
        """Callbacks in the outbox by id, after ``after``: only parked ones (True), only
        those still being tried (False), or all (None)."""

    async def retry_callbacks(self, ids: Sequence[int] | None, at: float) -> list[int]:
        """Re-arm callbacks: due at ``at``, with a new round of attempts (attempts back to
        0; their last error is kept until the next attempt). ``ids``: those callbacks
        (parked or waiting for their next attempt); None: every parked one. Returns the
        ids re-armed (an unknown id is left out)."""

    # -- SMPP front outbox (gateway.front) --------------------------------------------------

    async def front_enqueue(self, items: Sequence[tuple[str, str, str]], at: float) -> None:
        """Add (account, kind, JSON payload) items to the front outbox. Receipts of
        messages whose callback_url uses FRONT_CALLBACK_SCHEME are added by the store itself,
        in the transaction that records the final status."""

    async def front_due(self, account: str, now: float, limit: int) -> list[FrontItem]:
        """Items of ``account`` due at ``now``, oldest first."""

    async def front_done(self, ids: Sequence[int]) -> None:
        """Delivered (deliver_sm_resp received) or given up: remove them."""

    async def front_retry(self, ids: Sequence[int], next_at: float) -> None:
        """Not delivered this time: count an attempt, due again at ``next_at``."""

    async def front_pending(self) -> dict[str, int]:
        """Items held per account."""

    async def front_parts_add(self, parts: Sequence[FrontPart]) -> None:
        """Hold parts durably (before they are answered). A part whose ``part_id`` is held
        already replaces it (the ESME sent it again); one whose message was joined or
        refused meanwhile changes nothing."""

    async def front_parts_held(self) -> list[FrontPart]:
        """Parts still waiting for their siblings, at start-up. Those whose message is
        committed already (a stop between the two writes) are marked joined first."""

    async def front_parts_joined(self, message_ids: Sequence[str]) -> None:
        """The messages joined from these parts are committed: the parts' data is dropped;
        their ids stay, for the receipts and query_sm."""

    async def front_parts_failed(
        self, message_ids: Sequence[str], receipts: Sequence[tuple[str, str, str]], at: float
    ) -> None:
        """These parts' message was refused when joined: mark them failed and add their
        (account, "receipt", JSON payload) receipts to the front outbox, in one commit."""

    async def front_part_status(self, part_id: str) -> FrontPartStatus | None:
        """A part's status by its id (``FrontPartStatus``); None when no part has it."""

    async def front_part(self, part_id: str) -> FrontPart | None:
        """A part by the id its submit_sm_resp gave (``pdu`` empty once joined)."""

    async def cancel_message(
        self, message_id: str, account: str, at: float
    ) -> tuple[str, list[StatusChange]]:
        """Cancel a message of ``account`` none of whose parts has been handed to a carrier
        (every part accepted or queued): its parts and status become failed with error
        ``CANCELLED``, in one commit with its receipt or callback. Returns EDIT_DONE and the
        change, EDIT_UNKNOWN (no such message of ``account``) or EDIT_REFUSED."""

    async def replace_message(
        self, message_id: str, account: str, replacement: Replacement, at: float
    ) -> str:
        """Replace the text, schedule, validity and callback of a message of ``account``
        none of whose parts has been handed to a carrier; its part rows follow the new part
        count. EDIT_DONE, EDIT_UNKNOWN or EDIT_REFUSED, as ``cancel_message``."""

    # -- reads -----------------------------------------------------------------------------

    async def get_message(self, message_id: str) -> MessageView | None: ...

    async def message_summary(self, message_id: str) -> MessageSummary | None:
        """Owner, status, error and time of the last status change of a message."""

    async def list_messages(self, query: MessageQuery) -> list[MessageRow]:
        """At most ``query.limit`` messages matching every filter of ``query``, by id
        (newest first or oldest first), after ``query.after``."""

    async def status_counts(self) -> dict[str, int]:
        """Messages by status."""

    async def minute_counts(self, since: float) -> list[tuple[int, str, int]]:
        """Messages made at or after ``since``: (the minute they were made, as epoch seconds
        of its start; their status now; how many), for the console's overview."""


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
    """Handling attempts begun that did not finish (see gateway.inbound.service)."""
    last_error: str | None = None
    """Why the last attempt failed; for a quarantined one, why it was quarantined."""
    care_state: str = "open"
    """Customer care, apart from ``state``: "open", "answered" (a helpdesk reply went)
    or "closed" (see gateway.api.interactions)."""
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
    """What handling one MO needs to know, asked for many MOs at once (:meth:`mo_facts`)."""

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
    """What was done about one interaction (:meth:`finish_interactions`)."""

    interaction_id: int
    keyword: str | None
    rule: str | None
    campaign_id: str | None
    actions: Sequence[dict[str, Any]]
    at: float


class InboundStore(Store, Protocol):
    """What the inbound (MO) side keeps, on top of :class:`Store`."""

    # -- long MO parts -----------------------------------------------------------------------

    async def add_mo_part(self, part: MoPart) -> None:
        """Keep one part of an unfinished long MO (a duplicate part is ignored)."""

    async def mo_parts(self) -> list[MoPart]:
        """Every part kept, oldest first: what a restart reassembles from."""

    # -- the interaction log -----------------------------------------------------------------

    async def record_interaction(
        self, interaction: NewInteraction, consumed: Sequence[MoPart] = ()
    ) -> int:
        """Log an MO (state pending) and, in the same transaction, drop the kept parts it
        was made of. Returns its id."""

    async def pending_interactions(self, after: int, limit: int) -> list[Interaction]:
        """Interactions whose actions have not run, by id after ``after``."""

    async def finish_interaction(
        self,
        interaction_id: int,
        *,
        keyword: str | None,
        rule: str | None,
        campaign_id: str | None,
        actions: Sequence[dict[str, Any]],
        at: float,
    ) -> None:
        """Record what was done about an interaction; it is no longer pending."""

    async def get_interaction(self, interaction_id: int) -> Interaction | None: ...

    async def record_interactions(self, interactions: Sequence[NewInteraction]) -> list[int]:
        """Log several whole MOs (state pending) in one transaction; their ids, in order.
        Ids grow: an interaction logged later has a larger id than every earlier one (the
        inbound service relies on it, as ``pending_interactions`` paging does)."""

    async def finish_interactions(self, outcomes: Sequence[InteractionOutcome]) -> None:
        """:meth:`finish_interaction` for several interactions in one transaction."""

    async def begin_interaction_attempt(self, interaction_id: int, floor: int = 0) -> int:
        """Count one more handling attempt of a pending interaction, durably, before it
        starts: attempts become ``max(attempts, floor) + 1``, which is returned (0 when the
        interaction is not pending)."""

    async def fail_interaction(
        self, interaction_id: int, error: str, *, add: int, quarantine: bool, at: float
    ) -> int:
        """Keep why a pending interaction's handling failed, adding ``add`` to its attempts
        (1 for an attempt not counted when it began); with ``quarantine``, also set it aside
        (state quarantined, processed_at ``at``). Its attempts now (0: not pending)."""

    async def set_interaction_care(
        self,
        interaction_id: int,
        *,
        care_state: str | None = None,
        assignee: str | None = None,
        set_assignee: bool = False,
    ) -> Interaction | None:
        """Set an interaction's care state (None: unchanged) and, with ``set_assignee``, its
        assignee (None: nobody), in one write; the interaction as it now is (None: no such
        interaction)."""

    async def requeue_interaction(self, interaction_id: int) -> bool:
        """Make a quarantined interaction pending again with no attempts; False when it was
        not quarantined."""

    async def mo_facts(
        self, lookups: Sequence[MoLookup], campaign_since: float, repeats_since: float
    ) -> list[MoFacts]:
        """For each lookup, in one read: opt-out, the newest campaign MT from ``sender`` to
        ``source`` created since ``campaign_since`` (as :meth:`last_campaign`), the loop
        guard's count (as :meth:`repeated_texts`) and the contact with its tags."""

    async def interactions(
        self,
        *,
        number: str | None = None,
        source: str | None = None,
        campaign_id: str | None = None,
        after: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
        state: str | None = None,
    ) -> list[Interaction]:
        """A page of the log, filtered. Keyset paging: pass the last id of a page as
        ``after`` for the next (ids above it, or below it when ``newest_first``)."""

    async def repeated_texts(self, source: str, destination: str, text: str, since: float) -> int:
        """How many MOs from ``source`` to ``destination`` with exactly ``text`` were
        received since ``since`` (the one being handled included)."""

    async def last_campaign(self, sender: str, to: str, since: float) -> str | None:
        """The campaign of the newest MT from ``sender`` to ``to`` created since ``since``."""

    async def claim_courtesy(self, scope: str, source: str, now: float, interval: float) -> bool:
        """True (and remembered) when no courtesy reply went to ``source`` in ``scope`` in
        the last ``interval`` seconds; False otherwise."""

    # -- contacts and answers ----------------------------------------------------------------

    async def get_contact(self, number: str) -> Contact | None: ...

    async def put_contacts(self, contacts: Sequence[Contact]) -> None:
        """Create or replace contacts (name, attributes, tags)."""

    async def tag_contact(self, number: str, tags: Sequence[str], at: float) -> None:
        """Add tags to a contact, creating it (no name) when it does not exist."""

    async def record_answer(self, answer: SurveyAnswer) -> None: ...

    async def answers(
        self, question: str | None = None, campaign_id: str | None = None
    ) -> list[SurveyAnswer]: ...

    async def lift_opt_out(self, number: str, sender: str) -> None:
        """Remove the opt-out of ``number`` from ``sender`` and its global one, if any
        (opt-outs from other senders stay)."""

    # -- inbound numbers managed over the API --------------------------------------------------

    async def inbound_numbers(self) -> list[tuple[str, dict[str, Any]]]:
        """(number, its settings as JSON) of every number added over the API."""

    async def put_inbound_number(self, number: str, config: dict[str, Any], at: float) -> None:
        """Create or replace a number's settings."""

    async def delete_inbound_number(self, number: str) -> bool:
        """Remove a number; False when there was none."""


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
"""The final statuses of :attr:`CampaignCounts.undelivered` (gateway.model.MessageStatus)."""


@dataclass(frozen=True, slots=True)
class Periods:
    """``count`` consecutive periods of ``width`` seconds from ``since``: the axis of a
    timeline (:meth:`ReportStore.campaign_series`). ``Periods(a, b - a, 1)`` is the one
    period [a, b), ``b`` infinite included."""

    since: float
    width: float
    count: int

    @property
    def until(self) -> float:
        return self.since + self.width * self.count


@runtime_checkable
class ReportStore(InboundStore, Protocol):
    """What the interaction export and the daily digest read and remember."""

    async def interactions_by_ids(self, ids: Sequence[int]) -> list[Interaction]:
        """The interactions with these ids that exist, by id."""

    async def contacts_of(self, numbers: Sequence[str]) -> dict[str, Contact]:
        """The contacts (name, attributes; no tags) of those of ``numbers`` that have one."""

    async def interaction_attribute_keys(
        self,
        *,
        number: str | None = None,
        source: str | None = None,
        campaign_id: str | None = None,
        after: int = 0,
        upto: int | None = None,
        ids: Sequence[int] | None = None,
        limit: int = 1000,
    ) -> list[str]:
        """The attribute keys (sorted, at most ``limit``) of the contacts who sent the
        interactions an export selects: the filters of :meth:`interactions`, ids in
        (``after``, ``upto``], and with ``ids`` only those."""

    async def settled_interaction_bound(self) -> int:
        """The highest id at and below which no interaction is pending: what an export of
        "new" interactions may safely include (a pending one may still get its campaign)."""

    async def export_mark(self, scope: str) -> int:
        """The last interaction id exported as "new" in ``scope`` (0 when never)."""

    async def advance_export_mark(self, scope: str, last_id: int, at: float) -> None:
        """Remember ``last_id`` as exported in ``scope``; a mark never moves back."""

    async def campaign_interactions(
        self, campaign_id: str, since: float, until: float, after: int, limit: int
    ) -> list[Interaction]:
        """A campaign's interactions received in [since, until), by id above ``after``."""

    async def campaign_counts(self, campaign_id: str, since: float, until: float) -> CampaignCounts:
        """What the campaign did in [since, until) (see :class:`CampaignCounts`)."""

    async def campaign_series(
        self, campaign_id: str, axes: Sequence[Periods]
    ) -> list[list[CampaignCounts]]:
        """For each axis, the campaign's counts in each of its periods: what
        ``campaign_counts`` gives for that period, figure by figure (one definition; a
        recipient is in a distinct count of each period they acted in, so those periods add
        up to more than the whole when someone acted in two)."""

    async def responders(
        self, campaign_id: str, keyword: str | None = None, after: str = "", limit: int = 1000
    ) -> list[str]:
        """The campaign's responders (see :class:`CampaignCounts`; optionally only those whose
        response had ``keyword``, compared case-insensitively), sorted, above ``after``:
        keyset paging."""

    async def digest_sent(self, campaign_id: str, day: str) -> bool:
        """Whether the digest of ``day`` (ISO date) of this campaign went out."""

    async def record_digest(
        self, campaign_id: str, day: str, at: float, recipients: Sequence[str]
    ) -> bool:
        """Remember that the digest of ``day`` went out; False when it was already recorded."""
