"""Rows to values and values to rows, shared by the store backends (SQLite, PostgreSQL).

Backend-neutral pieces only: each backend keeps its SQL and fetches the rows itself, then
hands them here in the column order its statement selects (named at each function). One
call a batch, never one a row, so the hot paths cost what they did.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from gateway.core import ledger
from gateway.core.ledger import SUBMITTING
from gateway.core.model import (
    FINAL_STATUSES,
    HistoryEntry,
    IncomingReceipt,
    MessageStatus,
    MessageView,
    NewMessage,
    OutboundMessage,
    PartView,
    Replacement,
    SubmitOutcome,
)
from gateway.store.base import (
    INTERACTION_DONE,
    INTERACTION_PENDING,
    UNDELIVERED_STATUSES,
    CampaignCounts,
    Contact,
    FrontPart,
    FrontPartStatus,
    IdempotentAnswer,
    Interaction,
    InteractionOutcome,
    MessageRow,
    MoKey,
    MoPart,
    NewInteraction,
    Periods,
)
from gateway.store.campaign_base import IMPORT_RUNNING, CampaignClick, CampaignRecord, ImportJob
from gateway.store.claims import ClaimSettings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Row = Sequence[Any]
Match = tuple[str, int]
Record = TypeVar("Record", bound="DataclassInstance")

_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def record(cls: type[Record], row: Row, **convert: Callable[[Any], Any]) -> Record:
    """A ``cls`` (a dataclass) from ``row``, whose columns are ``cls``'s fields in their
    declared order (a shorter row leaves the last fields at their defaults); ``convert``
    names the fields whose column is converted first (``bool`` for SQLite's 0 and 1,
    ``json.loads`` for JSON text)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    if len(row) > len(names):
        raise ValueError(f"{cls.__name__}: {len(row)} columns for {len(names)} fields")
    values = dict(zip(names, row, strict=False))
    for name, fn in convert.items():
        values[name] = fn(values[name])
    return cls(**values)


def _int_tuple(text: str) -> tuple[int, ...]:
    return tuple(json.loads(text))


def message_row(row: Row) -> MessageRow:
    """A message of a list from (id, status, dest, sender, encoding, parts, carrier,
    client_ref, campaign_id, possible_duplicate, error, created_at, updated_at, account
    [, text])."""
    return record(MessageRow, row, possible_duplicate=bool)


def interaction(row: Row) -> Interaction:
    """An interaction from its columns in ``Interaction``'s field order (``missing`` and
    ``actions`` as JSON text)."""
    return record(Interaction, row, missing=_int_tuple, actions=json.loads)


def campaign(row: Row) -> CampaignRecord:
    """A campaign from its columns in ``CampaignRecord``'s field order (``spec`` JSON)."""
    return record(CampaignRecord, row, spec=json.loads)


def import_job(row: Row) -> ImportJob:
    """An import from its columns in ``ImportJob``'s field order (``errors`` JSON)."""
    return record(ImportJob, row, errors=json.loads)


CAMPAIGN_COLUMNS = (
    "id, name, sender, text, spec, status, created_at, start_at, started_at, finished_at,"
    " recipients, cursor, handled, skipped_opted_out, skipped_invalid, account"
)
"""The ``campaigns`` columns in ``CampaignRecord``'s field order: what :func:`campaign`
reads and :func:`campaign_row` writes."""

IMPORT_COLUMNS = (
    "id, list_id, status, opt_in_source, created_at, rows, imported, rejected, errors,"
    " finished_at, failure, bytes_total, bytes_read"
)
"""The ``contact_imports`` columns in ``ImportJob``'s field order (:func:`import_job`)."""

IMPORT_RECORD_COLUMNS = (
    "id, list_id, status, opt_in_source, rows, imported, rejected, errors, failure,"
    " created_at, finished_at, claimed_by, claim_until, bytes_total, bytes_read"
)
"""The ``contact_imports`` columns :func:`import_record` writes."""


def campaign_row(c: CampaignRecord) -> tuple[Any, ...]:
    """The :data:`CAMPAIGN_COLUMNS` values of a campaign (``spec`` as JSON text)."""
    return (
        c.id,
        c.name,
        c.sender,
        c.text,
        json.dumps(c.spec, ensure_ascii=False),
        c.status,
        c.created_at,
        c.start_at,
        c.started_at,
        c.finished_at,
        c.recipients,
        c.cursor,
        c.handled,
        c.skipped_opted_out,
        c.skipped_invalid,
        c.account,
    )


def import_record(job: ImportJob, claims: ClaimSettings, now: float) -> tuple[Any, ...]:
    """The :data:`IMPORT_RECORD_COLUMNS` values of an import saved at ``now``: a running
    import is claimed by the node that saves it (it runs it), from ``now``."""
    running = job.status == IMPORT_RUNNING
    return (
        job.id,
        job.list_id,
        job.status,
        job.opt_in_source,
        job.rows,
        job.imported,
        job.rejected,
        json.dumps(job.errors, ensure_ascii=False),
        job.failure,
        job.created_at,
        job.finished_at,
        claims.node_id if running else None,
        claims.until(now) if running else None,
        job.bytes_total,
        job.bytes_read,
    )


def like_pattern(text: str) -> str:
    """``%text%`` for LIKE ... ESCAPE '\\', the pattern characters of ``text`` taken as is."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def campaign_click(row: Row) -> CampaignClick:
    """A click from (id, at, number, code, target, user_agent, bot)."""
    return record(CampaignClick, row, bot=bool)


def intake_rows(
    messages: Sequence[NewMessage],
    begun: Collection[str],
    node: str,
    lease: float,
    flag: Callable[[bool], Any],
    unclaimed: Collection[str] = (),
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows ``accept`` inserts: messages (in the column order id, account, client_ref,
    sender, dest, text, encoding, parts, carrier, priority, campaign_id, callback_url,
    validity_until, scheduled_at, registered_delivery, status, created_at, updated_at,
    claimed_by, claim_until), parts (message_id, part, status, attempts) and links (code,
    message_id, campaign_id, number, target, created_at). Claimed by ``node`` for ``lease``
    seconds (gateway.store.claims), but those of ``unclaimed`` (by nobody); ``flag`` writes
    registered_delivery as the backend stores a boolean."""
    msg_rows = [
        (
            m.id,
            m.account,
            m.client_ref,
            m.sender,
            m.to,
            m.text,
            m.encoding,
            m.parts,
            m.carrier,
            m.priority,
            m.campaign_id,
            m.callback_url,
            m.validity_until,
            m.scheduled_at,
            flag(m.registered_delivery),
            MessageStatus.ACCEPTED.value,
            m.created_at,
            m.created_at,
            *((None, None) if m.id in unclaimed else (node, m.created_at + lease)),
        )
        for m in messages
    ]
    # A message begun at acceptance: its parts start as they would after begin_attempts.
    part_rows = [
        (m.id, n, SUBMITTING, 1) if m.id in begun else (m.id, n, "accepted", 0)
        for m in messages
        for n in range(1, m.parts + 1)
    ]
    link_rows = [
        (code, m.id, m.campaign_id, m.to, target, m.created_at)
        for m in messages
        for code, target in m.links
    ]
    return msg_rows, part_rows, link_rows


def message_view(
    m: Row, part_rows: Iterable[Row], receipt_rows: Iterable[Row], event_rows: Iterable[Row]
) -> MessageView:
    """A message as ``get_message`` shows it, from its row (id, status, dest, sender,
    encoding, created_at, client_ref, campaign_id, carrier, possible_duplicate, error,
    account), its parts (part, status, carrier, carrier_message_id, attempts, error,
    submitted_at) in part order, its receipts (part, status, state, error, received_at,
    carrier_message_id) and its events (part, at, status, detail) in id order."""
    history = [HistoryEntry(at=m[5], status=MessageStatus.ACCEPTED.value)]
    parts: list[PartView] = []
    # Submit-time failures and retries are in ``events``; receipts in ``receipts``.
    for part, status, carrier, cmid, attempts, error, sub_at in part_rows:
        shown = ledger.counts_as(status).value  # submitting shows as queued
        parts.append(PartView(part, shown, carrier, cmid, attempts, error))
        if sub_at is not None:
            history.append(
                HistoryEntry(
                    at=sub_at,
                    status=MessageStatus.SUBMITTED.value,
                    part=part,
                    detail={"carrier": carrier, "carrier_message_id": cmid},
                )
            )
    for part, status, state, error, received_at, cmid in receipt_rows:
        history.append(
            HistoryEntry(
                at=received_at,
                status=status,
                part=part,
                detail={"receipt": state, "error": error, "carrier_message_id": cmid},
            )
        )
    for part, at, status, detail in event_rows:
        history.append(HistoryEntry(at=at, status=status, part=part, detail=json.loads(detail)))
    history.sort(key=lambda h: h.at)
    return MessageView(
        id=m[0],
        status=m[1],
        to=m[2],
        sender=m[3],
        encoding=m[4],
        parts=parts,
        history=history,
        created_at=m[5],
        client_ref=m[6],
        campaign_id=m[7],
        carrier=m[8],
        possible_duplicate=bool(m[9]),
        error=m[10],
        account=m[11],
    )


def outbound_messages(rows: Iterable[Row]) -> dict[str, OutboundMessage]:
    """Messages ``load_pending`` claimed, by id, without their parts yet, from rows (id,
    dest, sender, text, encoding, carrier, priority, created_at, validity_until,
    scheduled_at, registered_delivery, possible_duplicate)."""
    by_id: dict[str, OutboundMessage] = {}
    for r in rows:
        by_id[r[0]] = OutboundMessage(
            id=r[0],
            to=r[1],
            sender=r[2],
            text=r[3],
            encoding=r[4],
            carrier=r[5],
            priority=r[6],
            created_at=r[7],
            validity_until=r[8],
            scheduled_at=r[9],
            registered_delivery=bool(r[10]),
            possible_duplicate=bool(r[11]),
            pending_parts=(),
        )
    return by_id


def taken_over(rows: Sequence[Row], requeued: Collection[str]) -> dict[str, OutboundMessage]:
    """Messages ``take_over_pending`` claimed, by id, without their parts yet, from rows (the
    columns of ``outbound_messages``, then the node whose claim lapsed, None for nobody's):
    each names whom it was taken from, and those whose parts in flight were queued again
    (``requeued``) are flagged possible_duplicate."""
    by_id = outbound_messages(tuple(r)[:-1] for r in rows)
    for r in rows:
        by_id[r[0]].taken_from = r[-1]
    for mid in requeued:
        by_id[mid].possible_duplicate = True
    return by_id


def add_pending_parts(by_id: dict[str, OutboundMessage], part_rows: Iterable[Row]) -> None:
    """Add to the messages of ``outbound_messages`` their parts still to send, from rows
    (message_id, part, status, attempts, retry_at) in part order: a part left
    ``submitting`` makes the message a possible duplicate, a retry time delays it."""
    for message_id, part, status, attempts, retry_at in part_rows:
        m = by_id[message_id]
        assert m.pending_parts is not None
        m.pending_parts = (*m.pending_parts, part)
        m.attempts = max(m.attempts, attempts)
        if status == SUBMITTING:
            m.possible_duplicate = True
        if retry_at is not None and (m.scheduled_at is None or retry_at > m.scheduled_at):
            m.scheduled_at = retry_at


def outcome_events(items: Iterable[SubmitOutcome]) -> list[tuple[Any, ...]]:
    """The ``events`` rows (message_id, part, at, status, detail) of submit outcomes: every
    outcome but a plain submitted one (that one is in its part's row)."""
    return [
        (
            o.message_id,
            o.part,
            o.at,
            o.status.value,
            json.dumps(
                {
                    "carrier": o.carrier,
                    "command_status": o.command_status,
                    "error": o.error,
                    "retry_at": o.retry_at,
                    "possible_duplicate": o.possible_duplicate,
                }
            ),
        )
        for o in items
        if o.status is not MessageStatus.SUBMITTED or o.possible_duplicate
    ]


def other_receipt_keys(
    items: Iterable[IncomingReceipt], owner: dict[tuple[str, str], Match]
) -> list[tuple[str, str]]:
    """The other readings of a receipt's id (``auto`` id forms) whose first key matched
    nothing in ``owner``: (carrier, key) pairs to look up in one more pass."""
    return [
        (r.carrier, key)
        for r in items
        if len(r.match_keys) > 1 and (r.carrier, r.match_keys[0]) not in owner
        for key in r.match_keys[1:]
    ]


def receipt_rows(
    items: Sequence[IncomingReceipt], owner: dict[tuple[str, str], Match]
) -> tuple[list[tuple[Any, ...]], list[Match | None]]:
    """The ``receipts`` rows (carrier, receipt_key, carrier_message_id, status, state,
    error, raw, received_at, message_id, part) of receipts and, in the same order, the part
    each matched (None: kept unmatched until its response). Sets ``matched_key``."""
    rows: list[tuple[Any, ...]] = []
    matches: list[Match | None] = []
    for r in items:
        match: Match | None = None
        r.matched_key = None
        for key in r.match_keys or (r.receipt_key,):
            match = owner.get((r.carrier, key))
            if match is not None:
                r.matched_key = key
                break
        matches.append(match)
        rows.append(
            (
                r.carrier,
                r.matched_key or r.receipt_key,
                r.carrier_message_id,
                r.status.value,
                r.state,
                r.error,
                r.raw,
                r.received_at,
                match[0] if match else None,
                match[1] if match else None,
            )
        )
    return rows, matches


def resent_key(row: Row) -> tuple[Any, ...] | None:
    """What makes an unmatched receipt row the same receipt sent again: (carrier, key,
    status, state, raw); None for a matched row."""
    if row[8] is not None:
        return None
    return (row[0], row[1], row[3], row[4], row[6])


def resent_once(
    rows: Iterable[tuple[Any, ...]],
) -> tuple[list[tuple[tuple[Any, ...], Any]], list[tuple[Any, ...]]]:
    """Receipt rows with their ``resent_key`` (None: matched), each unmatched receipt once
    (of rows with one key, the first), and those keys: a backend looks up which of them it
    already keeps unmatched and drops their rows (``not_kept``). Order is kept."""
    seen: set[tuple[Any, ...]] = set()
    out: list[tuple[tuple[Any, ...], Any]] = []
    keys: list[tuple[Any, ...]] = []
    for row in rows:
        key = resent_key(row)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
            keys.append(key)
        out.append((row, key))
    return out, keys


def not_kept(
    candidates: Iterable[tuple[tuple[Any, ...], Any]], kept: Iterable[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """The rows of ``resent_once`` less those whose key the store already keeps: one
    unmatched receipt is one row however often an SMSC sends it (it sends it again when its
    deliver_sm_resp was lost). Matched rows pass through."""
    known = set(kept)
    return [row for row, key in candidates if key is None or key not in known]


def idempotency_row(answer: IdempotentAnswer) -> tuple[Any, ...]:
    """The ``idempotency`` row (account, key, request_hash, status, body, created_at)."""
    return (
        answer.account,
        answer.key,
        answer.request_hash,
        answer.status,
        answer.body,
        answer.created_at,
    )


def replacement_row(message_id: str, r: Replacement, at: float) -> tuple[Any, ...]:
    """The parameters of ``sql_text.REPLACE_MESSAGE``: a replace_sm's values, then the id."""
    return (
        r.text,
        r.encoding,
        r.parts,
        r.scheduled_at,
        r.validity_until,
        r.callback_url,
        at,
        message_id,
    )


def replaced_parts(message_id: str, rows: Sequence[Row], parts: int) -> list[tuple[Any, ...]]:
    """The part rows (message_id, part, status, attempts, retry_at) of a message replaced
    with ``parts`` parts, from its part rows (part, status, attempts, retry_at): none when
    the count is the same (its rows stay); else as many as the new text has, each queued
    if one was, with the most attempts and the latest retry_at of the old ones."""
    if len(rows) == parts:
        return []
    status = "queued" if any(row[1] == "queued" for row in rows) else "accepted"
    attempts = max((row[2] for row in rows), default=0)
    retry_at = max((row[3] for row in rows if row[3] is not None), default=None)
    return [(message_id, n, status, attempts, retry_at) for n in range(1, parts + 1)]


def replaced_event(
    message_id: str, rows: Sequence[Row], r: Replacement, at: float
) -> tuple[Any, ...]:
    """The history entry (``sql_text.INSERT_MESSAGE_EVENT``) of a replace_sm, from the
    message's part rows (part, status, ...) before it."""
    status = MessageStatus.QUEUED.value if rows and rows[0][1] == "queued" else "accepted"
    detail = {
        "replaced": "replace_sm",
        "parts": r.parts,
        "scheduled_at": r.scheduled_at,
        "validity_until": r.validity_until,
    }
    return (message_id, at, status, json.dumps(detail))


def front_outbox_rows(receipts: Iterable[tuple[str, str, str]], at: float) -> list[tuple[Any, ...]]:
    """The ``front_outbox`` rows (account, kind, payload, next_at, created_at) of receipts
    (account, kind, payload) owed to upstream ESMEs, due at once."""
    return [(account, kind, payload, at, at) for account, kind, payload in receipts]


def front_part_rows(parts: Iterable[FrontPart]) -> list[tuple[Any, ...]]:
    """The ``front_parts`` rows (part_id, message_id, account, source, destination, ref,
    total, seq, pdu, received_at, state) of parts."""
    return [
        (
            p.part_id,
            p.message_id,
            p.account,
            p.source,
            p.destination,
            p.ref,
            p.total,
            p.seq,
            p.pdu,
            p.received_at,
            p.state,
        )
        for p in parts
    ]


def front_part_status(
    part: FrontPart,
    message_status: MessageStatus,
    updated_at: float,
    order: list[str],
    carrier: Sequence[Row],
) -> FrontPartStatus:
    """The status of a front part of a message in the store: ``order`` is the message's
    front part ids in sequence (refused ones left out), ``carrier`` its parts' (status,
    done_at) rows in part order. The part's share of carrier parts gives its status, unless
    the message's final status (from a receipt) says more."""
    if part.part_id not in order:
        return FrontPartStatus(part, message_status, None)
    first, last = ledger.share(order.index(part.part_id), len(order), len(carrier))
    share = carrier[first:last]
    status = ledger.aggregate_status([ledger.counts_as(r[0]) for r in share])
    final_at = max((r[1] or 0.0 for r in share), default=0.0) or None
    if message_status in FINAL_STATUSES and status not in FINAL_STATUSES:
        status, final_at = message_status, updated_at  # as its receipt says
    return FrontPartStatus(part, status, final_at if status in FINAL_STATUSES else None)


# -- MO and the interaction log -------------------------------------------------------------------

INTERACTION_COLUMNS: Final = (
    "id, carrier, source, destination, text, data_coding, parts, parts_received, missing,"
    " received_at, completed_at, state, keyword, rule, campaign_id, actions, processed_at,"
    " attempts, last_error, care_state, assignee"
)
"""An interaction's columns in ``Interaction``'s field order, as :func:`interaction`
reads them (``missing`` and ``actions``: JSON text)."""


def interaction_row(i: NewInteraction, claims: ClaimSettings) -> tuple[Any, ...]:
    """A new (pending) interaction's row after its id: carrier, source, destination, text,
    data_coding, parts, parts_received, missing, received_at, completed_at, state,
    claimed_by, claim_until; claimed by this node (which handles it) from its completion."""
    return (
        i.carrier,
        i.source,
        i.destination,
        i.text,
        i.data_coding,
        i.parts,
        i.parts_received,
        json.dumps(list(i.missing)) if i.missing else "[]",
        i.received_at,
        i.completed_at,
        INTERACTION_PENDING,
        claims.node_id,
        claims.until(i.completed_at),
    )


def finished_row(o: InteractionOutcome) -> tuple[Any, ...]:
    """What finishing an interaction writes: state, keyword, rule, campaign_id, actions
    (JSON text), processed_at, then the interaction's id."""
    return (
        INTERACTION_DONE,
        o.keyword,
        o.rule,
        o.campaign_id,
        json.dumps(list(o.actions), ensure_ascii=False),
        o.at,
        o.interaction_id,
    )


def mo_part_row(part: MoPart) -> tuple[Any, ...]:
    """A kept MO part's row: carrier, source, destination, ref, total, seq, data_coding,
    udh_length, data, received_at (:func:`mo_part` reads it back)."""
    k = part.key
    return (
        k.carrier,
        k.source,
        k.destination,
        k.ref,
        k.total,
        part.seq,
        part.data_coding,
        part.udh_length,
        part.data,
        part.received_at,
    )


def mo_part(row: Row) -> MoPart:
    """An MO part from its row (the columns of :func:`mo_part_row`)."""
    return MoPart(
        key=MoKey(row[0], row[1], row[2], row[3], row[4]),
        seq=row[5],
        data_coding=row[6],
        udh_length=row[7],
        data=bytes(row[8]),
        received_at=row[9],
    )


def contact(row: Row, tags: Sequence[str] = ()) -> Contact:
    """A contact from (number, name, attributes as JSON text, created_at) and its tags."""
    return Contact(row[0], row[1], json.loads(row[2]), tuple(tags), row[3])


# -- campaign figures ---------------------------------------------------------------------------

OPT_OUT_ACTION: Final = "opt_out"
"""The ``type`` of an opt-out entry in an interaction's ``actions`` (InboundActionConfig);
one with ``"ok": false`` (the opt-out could not be stored) is not counted."""

RESUBSCRIPTION_RULES: Final = ("opt_in", "resubscribe")
"""The built-in rules that opt a sender back in (gateway.inbound.numbers SYSTEM_OPT_IN and
SYSTEM_RESUBSCRIBE): START, and YES from an opted-out sender. Such an MO is a
re-subscription, not an answer to the campaign."""

DELIVERED: Final = "delivered"
FINAL_FIGURE_STATUSES: Final = (DELIVERED, *UNDELIVERED_STATUSES)
"""The statuses of the delivered and undelivered figures."""


@dataclass(slots=True)
class _Figures:
    """One period's figures while they are read (CampaignCounts once complete)."""

    sent: int = 0
    delivered: int = 0
    undelivered: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_error: dict[str, int] = field(default_factory=dict)
    replies: int = 0
    responders: int = 0
    opt_outs: int = 0
    resubs: int = 0
    others: int = 0
    clicks: int = 0
    clickers: int = 0
    bots: int = 0

    def counts(self) -> CampaignCounts:
        return CampaignCounts(
            sent=self.sent,
            delivered=self.delivered,
            replies=self.replies,
            unique_responders=self.responders,
            opt_outs=self.opt_outs,
            resubscriptions=self.resubs,
            replies_from_others=self.others,
            undelivered=self.undelivered,
            undelivered_by_status={s: self.by_status.get(s, 0) for s in UNDELIVERED_STATUSES},
            undelivered_by_error=dict(sorted(self.by_error.items())),
            clicks=self.clicks,
            unique_clickers=self.clickers,
            bot_requests=self.bots,
        )


class CampaignSeries:
    """A campaign's figures on each axis, filled from the rows of the four reads a backend
    makes (each row: axis index, period index, then that read's values), for
    ``CampaignReports.campaign_series``; :meth:`counts` gives the result."""

    def __init__(self, axes: Sequence[Periods]) -> None:
        self.axes = axes
        self.figures = [[_Figures() for _ in range(a.count)] for a in axes]

    def _each(self, rows: Iterable[Row]) -> Iterator[tuple[_Figures, Row]]:
        for axis, bucket, *values in rows:
            if bucket is not None and bucket >= 0:
                # A time just below the axis's end may round into the period after it.
                last = self.axes[axis].count - 1
                yield self.figures[axis][min(int(bucket), last)], values

    def sent(self, rows: Iterable[Row]) -> None:
        """Rows of (count): messages whose first part was submitted in the period."""
        for into, (count,) in self._each(rows):
            into.sent += count

    def finals(self, rows: Iterable[Row]) -> None:
        """Rows of (status, error, count): messages whose status became final."""
        for into, (status, error, count) in self._each(rows):
            if status == DELIVERED:
                into.delivered += count
            else:
                into.undelivered += count
                into.by_status[status] = into.by_status.get(status, 0) + count
                into.by_error[error] = into.by_error.get(error, 0) + count

    def replies(self, rows: Iterable[Row]) -> None:
        """Rows of (replies, responders, opt-outs, re-subscriptions, replies from others)."""
        for into, values in self._each(rows):
            into.replies, into.responders, into.opt_outs, into.resubs, into.others = (
                int(v) for v in values
            )

    def clicks(self, rows: Iterable[Row]) -> None:
        """Rows of (clicks, clickers, bot requests)."""
        for into, values in self._each(rows):
            into.clicks, into.clickers, into.bots = (int(v) for v in values)

    def counts(self) -> list[list[CampaignCounts]]:
        return [[f.counts() for f in axis] for axis in self.figures]
