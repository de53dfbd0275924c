"""The store's ports: what the gateway keeps, by what it keeps, each behind a small protocol.

A consumer is typed against the narrowest ports it uses (the dispatcher: :class:`Queue` and
:class:`OptOuts`; the callback sender: :class:`CallbackOutbox`; ...), never against a
backend. A backend implements every port (SQLite: ``gateway.store.sqlite`` and its
companions); ``gateway.store.factory.open_store`` builds the configured one, and nothing
above ``gateway/store/`` names a backend. The values the ports take and give (messages,
callbacks, interactions, campaigns ...) and the store's errors are in
``gateway.store.base`` and ``gateway.store.campaign_base``; the contract every backend keeps
is ``tests/store_contract/``.

A call returns only once its effects are durable, so "accepted" is said after the commit.
Batching is the caller's friend: methods that write many rows of one kind take a sequence
(``accept``, ``record_outcomes``, ``record_receipts``, ``front_done`` ...), and the SQLite
backend also merges concurrent calls into one transaction (group commit).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gateway.core.model import (
    IncomingReceipt,
    MessageView,
    NewMessage,
    OutboundMessage,
    Replacement,
    StatusChange,
    SubmitOutcome,
)
from gateway.metrics import Histogram
from gateway.store.base import (
    Callback,
    CallbackView,
    CampaignCounts,
    Click,
    Contact,
    FrontItem,
    FrontPart,
    FrontPartStatus,
    IdempotentAnswer,
    Interaction,
    InteractionOutcome,
    Link,
    MessageQuery,
    MessageRow,
    MessageSummary,
    MoFacts,
    MoLookup,
    MoPart,
    NewInteraction,
    Periods,
    SurveyAnswer,
)
from gateway.store.campaign_base import (
    CampaignClick,
    CampaignRecord,
    ContactList,
    ImportJob,
    ImportRow,
    ListMembership,
    MessageTemplate,
    OptOutRecord,
    ReplyFigures,
)
from gateway.store.leases import ClusterView, LeaseRound, NodeInfo


class Lifecycle(Protocol):
    """Opening and closing a store."""

    async def open(self) -> None:
        """Create or migrate the schema; ready for calls when it returns."""

    async def close(self) -> None:
        """Finish pending writes and release the backend."""


class Claims(Protocol):
    """This node's claims on stored work (gateway.store.claims): renewed while it lives."""

    async def renew_claims(self, now: float) -> int:
        """Extend every claim this node holds to ``now`` plus its claim length; returns
        how many rows it holds."""

    async def release_claims(self) -> int:
        """Give up every claim this node holds (a clean stop); returns how many."""


class ClusterLeases(Protocol):
    """The node registry and the bind-slot leases (gateway.store.leases has the rule; the
    node is the store's ``[node] id``)."""

    shared: bool
    """Whether other nodes can hold these leases (a database several nodes share). False
    for a file only this process opens: a node that cannot renew then keeps its binds
    (nobody else could take them), and fencing is off."""

    async def lease_round(
        self,
        node: NodeInfo,
        wanted: Mapping[str, int],
        now: float,
        lease_seconds: float,
    ) -> LeaseRound:
        """One round, in one transaction: heartbeat ``node``, renew its slots, report the
        surplus over its share, take free or lapsed slots up to its share (``wanted``:
        slots per carrier). Two nodes never hold one slot."""

    async def release_slots(self, slots: Collection[tuple[str, int]]) -> int:
        """Give back these slots (held by this node: unbound first); how many."""

    async def leave(self, now: float) -> int:
        """A clean stop: give back every slot and mark this node not live at ``now``, so
        the others take its slots at their next round; how many slots it gave back."""

    async def cluster_view(self, now: float) -> ClusterView:
        """The registry and every slot (``smsgw status`` without a round)."""


class Wakeups(Protocol):
    """Work left for other nodes: the store says so when it commits it (gateway.store.claims).

    A commit that leaves work any node may take (messages accepted unclaimed, claims given
    back, new callbacks or front outbox items) wakes every node listening: once per
    commit and kind (and carrier or account), never per row. A wake carries no work: the
    woken node reads it with the claiming reads (``take_over_pending``, ``callbacks_due``,
    ``front_due``), and a lost wake costs only the polling interval."""

    async def listen(self, wake: Callable[[str, str], None]) -> None:
        """From now until ``close``, call ``wake(kind, key)`` (kind: ``WAKE_QUEUE``,
        ``WAKE_CALLBACKS``, ``WAKE_FRONT``; key: the carrier or account, "" for any) when
        such a commit is made, on any node. A backend that listens on a connection of its
        own reconnects when it drops, and then wakes every kind (what was said meanwhile
        is lost). A backend one node has to itself (SQLite) returns at once: nobody else
        leaves it work, and the polling covers a second store on the same file."""


class MessageIntake(Protocol):
    """New messages: accepted with the request's idempotent answer, in one commit."""

    async def accept(
        self,
        messages: Sequence[NewMessage],
        idempotency: IdempotentAnswer | None = None,
        begun: Collection[str] = (),
        unclaimed: Collection[str] = (),
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
        moment (the dispatcher still stops a staged part whose number opts out later).

        ``unclaimed``: ids of messages this node has no bind of the carrier of: committed
        claimed by nobody, for a node that has one (``take_over_pending``), which the commit
        wakes (``Wakeups``). Every other message is claimed by this node."""

    async def find_idempotent(self, account: str, key: str) -> IdempotentAnswer | None: ...


class MessageReads(Protocol):
    """Messages as the HTTP API and the console read them."""

    async def get_message(self, message_id: str) -> MessageView | None: ...

    async def list_messages(self, query: MessageQuery) -> list[MessageRow]:
        """At most ``query.limit`` messages matching every filter of ``query``, by id
        (newest first or oldest first), after ``query.after``."""

    async def minute_counts(self, since: float) -> list[tuple[int, str, int]]:
        """Messages made at or after ``since``: (the minute they were made, as epoch seconds
        of its start; their status now; how many), for the console's overview."""


class Queue(Protocol):
    """Messages' parts on their way to a carrier (the dispatcher)."""

    async def load_pending(
        self,
        after: str | None,
        limit: int,
        now: float | None = None,
        carriers: Collection[str] | None = None,
    ) -> list[OutboundMessage]:
        """Messages with parts still to submit, by id after ``after``: at start-up and
        whenever the dispatcher's memory queue runs low. Parts whose attempt began but
        never got an outcome (a crash mid-send) come back with possible_duplicate set.
        ``carriers``: only messages of those carriers (the ones this node has binds of);
        None: of every carrier.

        Claims (gateway.store.claims): a message is accepted claimed by the node that
        accepts it; this gives only messages this node may claim at ``now`` (default: the
        wall clock), and claims them: another node's, until its claim lapses, are passed
        over, and at open a store leaves their parts in flight alone."""

    async def take_over_pending(
        self,
        limit: int,
        now: float | None = None,
        carriers: Collection[str] | None = None,
    ) -> list[OutboundMessage]:
        """Messages with parts still to submit that this node does not hold and may claim
        at ``now`` (default: the wall clock), at most ``limit``, oldest first, of
        ``carriers`` (None: every carrier), claimed for this node: those nobody holds
        (accepted on a node with no bind of their carrier, given back at a clean stop) and
        those whose claim lapsed (their node died). What the running dispatcher takes up
        besides paging, when woken and at its polling rhythm; never this node's own.

        Parts the other node left in flight go back to queued, their message flagged
        possible_duplicate for good, as at start-up (``OutboundMessage.possible_duplicate``
        set). ``OutboundMessage.taken_from`` names the node whose lapsed claim was taken
        (None: nobody held it)."""

    async def release_messages(self, ids: Sequence[str]) -> int:
        """Give up this node's claims on these pending messages (it no longer holds them
        in memory: it holds no bind slot of their carrier now), so that a node with one
        takes them; the commit wakes those nodes (``Wakeups``). How many it held."""

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

    async def record_outcomes_and_begin(
        self, outcomes: Sequence[SubmitOutcome], parts: Sequence[tuple[str, int]]
    ) -> tuple[list[StatusChange], set[str] | None]:
        """``record_outcomes(outcomes)`` and ``begin_attempts(parts)`` in one transaction:
        both are committed, or neither. Returns the status changes and begin_attempts'
        refused ids; None instead of those when the store takes no new attempts (short of
        space: the outcomes are written, no part is begun)."""


class MessageEdits(Protocol):
    """query_sm, cancel_sm and replace_sm of the SMPP front."""

    async def message_summary(self, message_id: str) -> MessageSummary | None:
        """Owner, status, error and time of the last status change of a message."""

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


class Receipts(Protocol):
    """Delivery receipts and the receipt map."""

    async def record_receipts(self, receipts: Sequence[IncomingReceipt]) -> list[StatusChange]:
        """Persist every receipt; apply those that match a part. A receipt that matches
        nothing is kept as unmatched and applied if its submit outcome comes later.
        Returns the messages whose status changed."""

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


class CallbackOutbox(Protocol):
    """HTTP status callbacks and webhooks waiting to be POSTed."""

    async def enqueue_callbacks(
        self, callbacks: Sequence[tuple[str, str]], at: float, signer: str | None = None
    ) -> None:
        """Add (url, JSON payload) callbacks to the outbox, signed by ``signer``'s secrets
        when they are sent (gateway.signing)."""

    async def callbacks_due(self, now: float, limit: int) -> list[Callback]:
        """Up to ``limit`` callbacks due at ``now``, soonest first, claimed for this node
        (gateway.store.claims): those another node holds are not given out. This node's
        own claimed ones are (its sender keeps track of those in hand).
        ``callback_retry`` releases the claim; ``callback_done`` removes the row."""

    async def callback_done(self, callback_id: int) -> None: ...

    async def callbacks_done(self, callback_ids: Sequence[int]) -> None:
        """``callback_done`` for every id of ``callback_ids``, in one store call (one
        write): the sender records the callbacks delivered in a loop turn together. An id
        no longer in the outbox is passed over; an empty sequence writes nothing."""

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


class FrontOutbox(Protocol):
    """deliver_sm (receipts, MO) owed to upstream SMPP accounts (gateway.front)."""

    async def front_enqueue(self, items: Sequence[tuple[str, str, str]], at: float) -> None:
        """Add (account, kind, JSON payload) items to the front outbox. Receipts of
        messages whose callback_url uses FRONT_CALLBACK_SCHEME are added by the store itself,
        in the transaction that records the final status."""

    async def front_due(self, account: str, now: float, limit: int) -> list[FrontItem]:
        """Items of ``account`` due at ``now``, oldest first, claimed for this node as
        ``callbacks_due`` claims callbacks; ``front_retry`` releases them."""

    async def front_done(self, ids: Sequence[int]) -> None:
        """Delivered (deliver_sm_resp received) or given up: remove them."""

    async def front_retry(self, ids: Sequence[int], next_at: float) -> None:
        """Not delivered this time: count an attempt, due again at ``next_at``, for any
        node (the claim is released)."""

    async def front_pending(self) -> dict[str, int]:
        """Items held per account."""


class FrontParts(Protocol):
    """Parts of long messages from upstream SMPP accounts, held until joined."""

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


class OptOuts(Protocol):
    """Who must not be messaged, from which sender."""

    async def opted_out(self, numbers: Sequence[str], sender: str) -> set[str]:
        """Which of ``numbers`` must not be messaged from ``sender`` (opted out of that
        sender, or of everything)."""

    async def add_opt_out(self, number: str, sender: str | None, source: str, at: float) -> None:
        """Record an opt-out: from ``sender`` only, or from everything when None."""

    async def remove_opt_out(self, number: str, sender: str | None) -> None: ...

    async def lift_opt_out(self, number: str, sender: str) -> None:
        """Remove the opt-out of ``number`` from ``sender`` and its global one, if any
        (opt-outs from other senders stay)."""


class MoLog(Protocol):
    """What handling MO keeps: parts of long MO, the interaction log, survey answers and
    contact tags."""

    async def add_mo_part(self, part: MoPart) -> None:
        """Keep one part of an unfinished long MO (a duplicate part is ignored)."""

    async def mo_parts(self) -> list[MoPart]:
        """Every part kept, oldest first: what a restart reassembles from."""

    async def record_interaction(
        self, interaction: NewInteraction, consumed: Sequence[MoPart] = ()
    ) -> int:
        """Log an MO (state pending) and, in the same transaction, drop the kept parts it
        was made of. Returns its id."""

    async def record_interactions(self, interactions: Sequence[NewInteraction]) -> list[int]:
        """Log several whole MOs (state pending) in one transaction; their ids, in order.
        Ids grow: an interaction logged later has a larger id than every earlier one (the
        inbound service relies on it, as ``pending_interactions`` paging does)."""

    async def pending_interactions(
        self, after: int, limit: int, now: float | None = None, *, foreign: bool = False
    ) -> list[Interaction]:
        """Interactions whose actions have not run, by id after ``after``, that this node
        may claim at ``now`` (default: the wall clock), claimed (gateway.store.claims): an
        interaction is recorded claimed by the node that logs it, and another live node's
        are passed over (it is handling them). ``foreign``: only those this node does not
        hold (nobody's, or another node's whose claim lapsed): what a running node takes
        over from a node that stopped."""

    async def finish_interactions(self, outcomes: Sequence[InteractionOutcome]) -> None:
        """Record what was done about each interaction (keyword, rule, campaign, actions,
        when), in one transaction; they are no longer pending."""

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

    async def get_interaction(self, interaction_id: int) -> Interaction | None: ...

    async def mo_facts(
        self, lookups: Sequence[MoLookup], campaign_since: float, repeats_since: float
    ) -> list[MoFacts]:
        """For each lookup, in one read: whether ``source`` opted out of ``sender`` (or of
        everything); the campaign and creation time of the newest MT from ``sender`` to
        ``source`` made since ``campaign_since``; the loop guard's count: MOs from
        ``source`` to ``destination`` with exactly ``text`` received since
        ``repeats_since`` (the one being handled included); the contact with its tags."""

    async def claim_courtesy(self, scope: str, source: str, now: float, interval: float) -> bool:
        """True (and remembered) when no courtesy reply went to ``source`` in ``scope`` in
        the last ``interval`` seconds; False otherwise."""

    async def record_answer(self, answer: SurveyAnswer) -> None: ...

    async def tag_contact(self, number: str, tags: Sequence[str], at: float) -> None:
        """Add tags to a contact, creating it (no name) when it does not exist."""


class Interactions(Protocol):
    """The interaction log as customer care reads and marks it."""

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

    async def get_interaction(self, interaction_id: int) -> Interaction | None: ...

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


class InboundNumbers(Protocol):
    """Inbound numbers managed over the API."""

    async def inbound_numbers(self) -> list[tuple[str, dict[str, Any]]]:
        """(number, its settings as JSON) of every number added over the API."""

    async def put_inbound_number(self, number: str, config: dict[str, Any], at: float) -> None:
        """Create or replace a number's settings."""

    async def delete_inbound_number(self, number: str) -> bool:
        """Remove a number; False when there was none."""


class InteractionExport(Protocol):
    """What the interaction export reads and remembers."""

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


class CampaignReports(Protocol):
    """A campaign's figures and the daily digest's memory."""

    async def campaign_counts(self, campaign_id: str, since: float, until: float) -> CampaignCounts:
        """What the campaign did in [since, until) (see :class:`CampaignCounts`)."""

    async def campaign_series(
        self, campaign_id: str, axes: Sequence[Periods]
    ) -> list[list[CampaignCounts]]:
        """For each axis, the campaign's counts in each of its periods: what
        ``campaign_counts`` gives for that period, figure by figure (one definition; a
        recipient is in a distinct count of each period they acted in, so those periods add
        up to more than the whole when someone acted in two)."""

    async def campaign_interactions(
        self, campaign_id: str, since: float, until: float, after: int, limit: int
    ) -> list[Interaction]:
        """A campaign's interactions received in [since, until), by id above ``after``."""

    async def digest_sent(self, campaign_id: str, day: str) -> bool:
        """Whether the digest of ``day`` (ISO date) of this campaign went out."""

    async def record_digest(
        self, campaign_id: str, day: str, at: float, recipients: Sequence[str]
    ) -> bool:
        """Remember that the digest of ``day`` went out; False when it was already recorded."""


class Contacts(Protocol):
    """Contact lists, their members and opt-outs as the API lists them."""

    async def create_list(self, name: str, at: float, account: str = "") -> ContactList: ...

    async def contact_lists(self) -> list[ContactList]: ...

    async def get_list(self, list_id: int) -> ContactList | None: ...

    async def memberships(self, number: str) -> list[ListMembership]: ...

    async def opt_outs_of(self, number: str) -> list[OptOutRecord]: ...

    async def tags_of(self, number: str) -> list[str]: ...

    async def contacts_by_number(self, numbers: Sequence[str]) -> dict[str, Contact]: ...

    async def search_contacts(
        self, q: str | None, lists: Sequence[int] | None, after: str, limit: int
    ) -> list[Contact]:
        """Contacts by number above ``after``, at most ``limit``: with ``q``, those whose name
        holds it (ASCII case ignored) or, when it is digits (a '+' allowed), whose number
        does; with ``lists``, only members of those lists (None: every contact)."""

    async def update_contact(
        self, number: str, name: str | None, attributes: dict[str, str | None], at: float
    ) -> Contact | None:
        """Set the name (None: keep it) and merge ``attributes`` (a null removes that key);
        the contact as it now is, or None when there is no such contact."""

    async def delete_contact(self, number: str, lists: Sequence[int] | None) -> bool:
        """Take the number out of ``lists`` (None: out of every list); once it is in no list,
        forget the contact (name, attributes, tags). Opt-outs stay. False: nothing there."""

    async def delete_list(self, list_id: int, at: float) -> int | None:
        """Delete a list (its id is never reused) and its members; how many members went,
        None when there is no such list."""

    async def opt_outs(
        self, lists: Sequence[int] | None, after: tuple[str, str], limit: int
    ) -> list[tuple[str, OptOutRecord]]:
        """Opt-outs (number, record) by (number, sender) above ``after`` (sender '*' for
        every sender); with ``lists``, only of numbers in those lists."""


class Imports(Protocol):
    """CSV imports into contact lists."""

    async def import_rows(
        self,
        list_id: int,
        rows: Sequence[ImportRow],
        opt_in_source: str,
        at: float,
        progress: ImportJob | None = None,
    ) -> None:
        """Create or update the contacts (a name column replaces the name, attributes are
        merged) and make them members of the list with this opt-in record. With
        ``progress``, that import record is saved in the same transaction (as
        :meth:`save_import`), so the progress shown never runs ahead of the rows."""

    async def save_import(self, job: ImportJob) -> None:
        """Create or update an import's record (progress, status, errors)."""

    async def get_import(self, import_id: str) -> ImportJob | None: ...

    async def fail_running_imports(self, reason: str, at: float, *, foreign: bool = False) -> int:
        """Mark imports left running (by a stopped process) failed; how many. An import
        is saved running claimed by the node that runs it (gateway.store.claims): one
        another live node holds at ``at`` is that node's, running, and left alone.
        ``foreign``: only those of another node (nobody's, or whose claim lapsed), never
        this node's own: a running node's look for imports a dead node left (their file
        was on that node: they cannot be resumed elsewhere)."""

    async def deleted_lists_with_members(self) -> list[int]: ...

    async def purge_deleted_list(self, list_id: int) -> int:
        """Remove the members a deleted list still has (a stop during its deletion)."""


class Campaigns(Protocol):
    """Campaigns, their audience and progress."""

    async def save_campaign(self, campaign: CampaignRecord) -> None:
        """Create or replace a campaign's record."""

    async def replace_draft(self, campaign: CampaignRecord) -> bool:
        """Write a draft's name, sender, text, spec and start_at if it is still a draft
        (atomic); False when it is not (started meanwhile, or gone)."""

    async def get_campaign(self, campaign_id: str) -> CampaignRecord | None: ...

    async def campaigns(self, statuses: Sequence[str] | None = None) -> list[CampaignRecord]: ...

    async def claim_campaign(self, campaign_id: str, now: float) -> bool:
        """Claim a running or scheduled campaign for this node (gateway.store.claims)
        before working on it: False when another live node holds it (it runs it), or when
        it is neither running nor scheduled. Renewed with this node's other claims."""

    async def set_campaign_status(
        self, campaign_id: str, status: str, at: float, *, expect: Sequence[str]
    ) -> CampaignRecord | None:
        """Move a campaign to ``status`` if it is in one of ``expect`` (atomic). Sets
        started_at (running) and finished_at (done, cancelled) when first reached. None when
        the campaign was not in one of ``expect``."""

    async def fix_audience(
        self,
        campaign_id: str,
        lists: Sequence[int],
        tags: Sequence[str],
        responders_of: tuple[str, str | None] | None = None,
        clickers_of: str | None = None,
    ) -> int:
        """Write the campaign's recipients once (members of ``lists``, contacts with one of
        ``tags``, with ``responders_of`` = (campaign, keyword or None) the numbers that
        replied to that campaign, and with ``clickers_of`` the recipients of that campaign
        who clicked one of its short links, as ``CampaignCounts.unique_clickers`` counts
        them); returns how many distinct numbers. Called again it changes nothing and
        returns the same count."""

    async def recipients_after(self, campaign_id: str, cursor: str | None, limit: int) -> list[str]:
        """The next recipients in number order after ``cursor``."""

    async def already_messaged(self, campaign_id: str, numbers: Sequence[str]) -> set[str]:
        """Which of ``numbers`` already have a message of this campaign."""

    async def advance_campaign(
        self, campaign_id: str, cursor: str, handled: int, opted_out: int, invalid: int
    ) -> None:
        """Move the cursor past one chunk, adding its counts."""

    async def defer_recipients(
        self, campaign_id: str, waiting: Sequence[tuple[str, float]]
    ) -> None:
        """Keep (number, due_at) recipients outside their send window until due_at (a
        number already waiting gets the new time)."""

    async def due_recipients(self, campaign_id: str, now: float, limit: int) -> list[str]:
        """Waiting recipients whose time has come, earliest first."""

    async def next_due(self, campaign_id: str) -> float | None:
        """The earliest due_at of the campaign's waiting recipients; None when none wait."""

    async def deferred_count(self, campaign_id: str) -> int:
        """How many of the campaign's recipients wait for their send window."""

    async def advance_deferred(
        self,
        campaign_id: str,
        numbers: Sequence[str],
        now: float,
        handled: int,
        opted_out: int,
        invalid: int,
    ) -> None:
        """In one commit: ``numbers`` stop waiting (those due by ``now``; one deferred
        again to a later time stays) and the counts are added, the cursor unchanged."""

    async def unsent_count(self, campaign_id: str) -> int:
        """The campaign's messages not yet handed to a carrier (accepted or queued)."""

    async def campaign_statuses(self, campaign_id: str) -> dict[str, int]:
        """The campaign's messages by status."""

    async def campaign_clicks(
        self, campaign_id: str, after: tuple[float, int], limit: int
    ) -> list[CampaignClick]:
        """The campaign's click records (bots' too) by time, after ``after`` = (at, id)."""

    async def reply_figures(self, campaign_id: str) -> ReplyFigures: ...


class Templates(Protocol):
    """Saved message templates."""

    async def save_template(self, template: MessageTemplate) -> None:
        """Insert or replace (by id)."""

    async def get_template(self, template_id: str) -> MessageTemplate | None: ...

    async def templates(self, account: str | None) -> list[MessageTemplate]:
        """By id; ``account`` None: every account's."""

    async def delete_template(self, template_id: str) -> bool:
        """False when there was none."""


class Links(Protocol):
    """Short links (written by ``Messages.accept`` with their message) and their clicks."""

    async def find(self, code: str) -> Link | None:
        """The link with this code; None when there is none (never made, or pruned)."""

    async def record_clicks(self, clicks: Sequence[Click]) -> None: ...

    async def prune(self, before: float, limit: int) -> int:
        """Delete at most ``limit`` codes made before ``before`` (their clicks stay: they
        are the campaign's figures, deleted with the campaign). Returns how many."""


@dataclass(slots=True)
class StoreFigures:
    """What a backend says of its own work, for ``/metrics`` (gateway.app.observe)."""

    commits: int = 0
    """Transactions committed."""
    operations: int = 0
    """Write operations committed (a group commit carries several)."""
    commit_seconds: Histogram = field(default_factory=Histogram)
    """Seconds per commit."""


class StoreStats(Protocol):
    def figures(self) -> StoreFigures:
        """The counters and gauges as they are now (cheap: no I/O)."""


# -- what a backend gives, in one piece ----------------------------------------------------------


class GatewayStore(
    Lifecycle,
    Claims,
    Wakeups,
    MessageIntake,
    MessageReads,
    Queue,
    MessageEdits,
    Receipts,
    CallbackOutbox,
    FrontOutbox,
    FrontParts,
    OptOuts,
    MoLog,
    Interactions,
    InboundNumbers,
    InteractionExport,
    CampaignReports,
    Protocol,
):
    """Every port of the message side: what one backend object gives (the daemon wires its
    parts to each consumer under the narrow port each uses)."""


class CampaignSide(Contacts, Imports, Campaigns, Templates, Protocol):
    """Every port of the campaign side, on the message store's database."""

    async def open(self) -> None:
        """Create or migrate the campaign side's tables (the message store is open)."""


# -- what some consumers use together -------------------------------------------------------------


class Submits(MessageIntake, OptOuts, Protocol):
    """Whoever makes messages (the HTTP API, the front, replies to MO, campaigns): the
    opt-out check, then the accept."""


class FrontPorts(Submits, FrontOutbox, FrontParts, MessageEdits, Protocol):
    """The SMPP front (gateway.front): its submits, its outbox and held parts,
    query/cancel/replace_sm."""


class InboundPorts(MoLog, Submits, CallbackOutbox, InboundNumbers, Protocol):
    """The inbound service (gateway.inbound.service): the MO log, its replies (opt-outs,
    accepts), webhooks it enqueues, the numbers it routes by."""


class DispatchPorts(Queue, Receipts, Protocol):
    """The dispatcher: the queue, and the receipts its binds bring."""


@runtime_checkable
class InteractionReads(Interactions, InteractionExport, Protocol):
    """The interaction routes of the HTTP API: the log, customer care, exports."""


class HttpPorts(
    Submits,
    MessageReads,
    CallbackOutbox,
    InteractionReads,
    InboundNumbers,
    Protocol,
):
    """What the HTTP layer reads and writes on the message side (gateway.http.app.make_app);
    the campaign routes use :class:`CampaignSide`."""


class CampaignAudience(Campaigns, Contacts, Protocol):
    """The campaign runner and service: campaigns and the contacts they message."""
