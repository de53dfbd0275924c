"""The ledger: what becomes of a message's parts and status as submit outcomes, receipts and
timeouts arrive, and what each status change emits.

Plain functions over plain values: no SQL, no I/O, no clock (the time is passed in). Every
store backend and the test fakes apply these rules; where the SQLite store does the same in
one set-based statement for speed, the statement's docstring names the function it
transcribes and ``tests/test_ledger_sql.py`` compares the two on generated inputs.

The rules, in one place:

- A part moves ``accepted``/``queued`` -> ``submitting`` (``begin_attempt``) -> its submit
  outcome's status (``apply_outcome``: ``submitted``, ``queued`` for a retry, or a final
  failure) -> the status of its first final receipt (``apply_receipt``), or ``expired`` with
  ``NO_RECEIPT`` when no receipt came in time (``expire_unreceipted``).
- **A final state sticks**: no event moves a part out of a final status (``FINAL_STATUSES``).
  A receipt that is not final (ENROUTE, ACCEPTD) is kept but changes no part.
- **Early receipts**: a receipt that arrives before its submit_sm_resp matches no part yet;
  it is held, and when the response is recorded the held receipts apply after the outcome,
  in the order they arrived (``answer``). So "receipt, then response" ends where "response,
  then receipt" does.
- A message's status is the aggregate of its parts' (``aggregate_status``): any failure is
  the message's failure, else the least advanced part decides. Its error, once final, is the
  first error found in part order (``message_error``). A store recomputes it once per batch
  of events (``settle``): a change is reported only when the status moved.
- What a change emits: an HTTP callback for a final status of a message with an http(s)
  callback_url (``callback_of``); receipts to an upstream ESME for a final status of a message
  that came in over the SMPP front (``front_receipts``, one per upstream part).
- A message waiting for its receipts times out (``unreceipted_due``) when it is ``submitted``,
  asked for a receipt, and its validity ended, or it has none and was submitted long enough ago.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

from gateway.core.model import FINAL_STATUSES, MessageStatus, StatusChange
from gateway.store.base import FRONT_CALLBACK_SCHEME, NO_RECEIPT

SUBMITTING: Final = "submitting"
"""A part's status between ``begin_attempt`` and its outcome: its submit_sm may be on the wire
(a part still in it at start-up was in flight at a crash). It counts as ``queued``."""

_COUNTS_AS: Final[dict[str, MessageStatus]] = {
    **{s.value: s for s in MessageStatus},
    SUBMITTING: MessageStatus.QUEUED,
}

FINAL: Final = frozenset(s.value for s in FINAL_STATUSES)
"""The final statuses as text (a part's status as stored)."""

PENDING: Final = frozenset({MessageStatus.ACCEPTED.value, MessageStatus.QUEUED.value, SUBMITTING})
"""Part statuses not yet answered by a carrier: what is still to send (or being sent)."""

# How a message's status follows from its parts: the worst part wins, in this order.
_SEVERITY: Final = (
    MessageStatus.FAILED,
    MessageStatus.REJECTED,
    MessageStatus.UNDELIVERABLE,
    MessageStatus.EXPIRED,
    MessageStatus.ACCEPTED,
    MessageStatus.QUEUED,
    MessageStatus.SUBMITTED,
    MessageStatus.DELIVERED,
)
_RANK: Final = {status: rank for rank, status in enumerate(_SEVERITY)}


class PartState(NamedTuple):
    """A part as the ledger sees it: its status (a ``MessageStatus``, or its text as
    stored, or ``SUBMITTING``) and its error. The rules return ``MessageStatus`` members
    (a StrEnum: equal to their text). A tuple, not a dataclass: stores make one per row on
    their hot path, and a NamedTuple costs a third of a frozen dataclass to build."""

    status: str
    error: str | None = None


# -- parts ------------------------------------------------------------------------------------


def counts_as(status: str) -> MessageStatus:
    """The message status a part's status counts as (``submitting`` counts as queued)."""
    return _COUNTS_AS[status]


def is_final(status: str) -> bool:
    return status in FINAL


def begin_attempt(part: PartState) -> PartState:
    """The part's submit_sm is about to leave. Every transition returns ``part`` itself
    when the event changes nothing (``new is part``: nothing to write)."""
    if part.status in FINAL or part.status == SUBMITTING:
        return part
    return PartState(SUBMITTING, part.error)


def apply_outcome(part: PartState, status: MessageStatus, error: str | None) -> PartState:
    """The carrier's answer to the part's submit_sm (or the dispatcher's verdict on it):
    ``submitted`` (the error clears), ``queued`` (a retry), or a final failure."""
    if part.status in FINAL:
        return part
    new = PartState(status, None if status is MessageStatus.SUBMITTED else error)
    return part if new == part else new


def apply_receipt(part: PartState, status: MessageStatus, error: str | None) -> PartState:
    """A delivery receipt matched to the part. Only a final receipt moves it, and only
    while it is not final: the first final receipt wins (a duplicate, or an ENROUTE after
    DELIVRD, changes nothing)."""
    if status not in FINAL_STATUSES or part.status in FINAL:
        return part
    return PartState(status, error)


def answer(
    part: PartState,
    status: MessageStatus,
    error: str | None,
    held: Iterable[tuple[MessageStatus, str | None]] = (),
) -> PartState:
    """``apply_outcome``, then, when the outcome is ``submitted``, the receipts held for
    the part (they arrived before this response) in the order they arrived."""
    part = apply_outcome(part, status, error)
    if status is MessageStatus.SUBMITTED:
        for r_status, r_error in held:
            part = apply_receipt(part, r_status, r_error)
    return part


def expire_unreceipted(part: PartState) -> PartState:
    """The part's message waited too long for its receipts: a part still ``submitted``
    becomes ``expired`` with ``NO_RECEIPT``; any other part stays as it is."""
    if part.status != MessageStatus.SUBMITTED.value:
        return part
    return PartState(MessageStatus.EXPIRED, NO_RECEIPT)


def requeue_in_flight(part: PartState) -> PartState:
    """At start-up: a part left ``submitting`` by a crash goes back to ``queued`` (its
    message is flagged a possible duplicate: its submit_sm may have reached the carrier)."""
    if part.status != SUBMITTING:
        return part
    return PartState(MessageStatus.QUEUED, part.error)


# -- messages ---------------------------------------------------------------------------------


def aggregate_status(parts: Iterable[MessageStatus]) -> MessageStatus:
    """A message's status from its parts' statuses (as ``counts_as``).

    A failure of any part is the message's failure (the recipient cannot read half a text);
    otherwise the least advanced part decides (two parts delivered and one submitted is
    submitted); all parts delivered is delivered. No parts: accepted.
    """
    return min(parts, key=_RANK.__getitem__, default=MessageStatus.ACCEPTED)


def message_status(parts: Iterable[PartState]) -> MessageStatus:
    """A message's status from its parts' states."""
    return aggregate_status(_COUNTS_AS[p.status] for p in parts)


def message_error(status: MessageStatus, parts: Iterable[PartState]) -> str | None:
    """A message's error: when its status is final, the first part's error in part order
    (whichever part it is); none while it is not final.

    It is taken when the status moves (``settle``), so for a message of several parts it can
    depend on the order their final states came in: a part rejected first gives its own
    error; rejected after another part's receipt carried one, that receipt's error. The
    SQLite store has always done so; changing it would change what clients are told."""
    if status not in FINAL_STATUSES:
        return None
    return next((p.error for p in parts if p.error is not None), None)


class Settled(NamedTuple):
    """A message's new status and error (``settle``)."""

    status: MessageStatus
    error: str | None


def settle(before: str, parts: Sequence[PartState]) -> Settled | None:
    """The message's new status and error from its parts (in part order) when its status
    moved from ``before``; None when it did not. A final message stays final: its parts'
    final states stick, so the aggregate can only go to a worse final status (a part
    rejected after another expired), never back."""
    status = message_status(parts)
    if status.value == before:
        return None
    return Settled(status, message_error(status, parts))


def settle_single(before: str, part: PartState) -> Settled | None:
    """``settle`` for a message of one part whose new state is known: its status is its
    part's. (The SQLite store runs this as one UPDATE per batch, with no read.)"""
    status = _COUNTS_AS[part.status]
    if status.value == before:
        return None
    return Settled(status, part.error if status in FINAL_STATUSES else None)


def unreceipted_due(
    status: str,
    registered_delivery: bool,
    validity_until: float | None,
    submitted_at: float,
    validity_before: float,
    submitted_before: float,
) -> bool:
    """Whether a message has waited long enough for its receipts: it is ``submitted``
    (every part answered, no final receipt yet), it asked for receipts, and its validity
    ended before ``validity_before``, or it has no validity and became submitted (at
    ``submitted_at``) no later than ``submitted_before``."""
    if status != MessageStatus.SUBMITTED.value or not registered_delivery:
        return False
    if validity_until is not None:
        return validity_until <= validity_before
    return submitted_at <= submitted_before


# -- what a change emits ----------------------------------------------------------------------


def callback_payload(change: StatusChange) -> dict[str, Any]:
    """The JSON body of a status callback (also the core of a front receipt)."""
    return {
        "id": change.message_id,
        "client_ref": change.client_ref,
        "status": change.status.value,
        "error": change.error,
        "carrier": change.carrier,
        "at": change.at,
    }


def wants_callback(change: StatusChange) -> bool:
    """Whether the change is POSTed to the message's callback_url: a final status of a
    message with an http(s) callback_url (receipts and final failures, not every step)."""
    url = change.callback_url
    return bool(url) and change.status in FINAL_STATUSES and not _is_front(url)


def callback_of(change: StatusChange) -> tuple[str, dict[str, Any]] | None:
    """The (url, payload) of the HTTP callback the change makes, or None. The message's
    account signs it (the store keeps that with the callback)."""
    if not wants_callback(change):
        return None
    assert change.callback_url is not None
    return change.callback_url, callback_payload(change)


def _is_front(url: str | None) -> bool:
    return url is not None and url.startswith(FRONT_CALLBACK_SCHEME)


def front_account(url: str | None) -> str | None:
    """The upstream SMPP account a front callback_url (``smpp:<account>?rd=<n>``) names;
    None for any other url."""
    if not _is_front(url):
        return None
    assert url is not None
    return url[len(FRONT_CALLBACK_SCHEME) :].split("?", 1)[0]


def wants_front_receipts(change: StatusChange) -> bool:
    """Whether the change sends receipts to an upstream ESME: a final status of a message
    that came in over the SMPP front asking for one."""
    return change.status in FINAL_STATUSES and _is_front(change.callback_url)


def front_receipts(
    change: StatusChange,
    to: str,
    sender: str,
    created_at: float,
    upstream: Sequence[tuple[str, MessageStatus]] | None,
) -> list[dict[str, Any]]:
    """The front outbox payloads (kind ``receipt``) of a change ``wants_front_receipts``:
    the receipt goes from the message's destination ``to`` back to its ``sender``.
    ``upstream``: for a long message the ESME sent in parts, each part's id with the status
    of the carrier parts that carry its text (``upstream_shares``), in order: one receipt
    per upstream part, each with its part's final state (the message's when that part is not
    final). None: the message came whole, one receipt."""
    url = change.callback_url or ""
    payload = {**callback_payload(change), "url": url, "to": to, "sender": sender}
    payload["created_at"] = created_at
    if upstream is None:
        return [payload]
    return [
        {
            **payload,
            "id": part_id,
            "status": (status if status in FINAL_STATUSES else change.status).value,
            "message_id": change.message_id,
        }
        for part_id, status in upstream
    ]


def share(k: int, count: int, total: int) -> tuple[int, int]:
    """The carrier parts [first, last) (0-based) whose share of the text overlaps upstream
    part k's (0-based) when ``count`` upstream parts became ``total`` carrier parts.

    The carrier may cut the text differently from the ESME (another encoding, another
    header), so upstream part k of U covers the carrier parts j of C whose share of the
    text [j/C, (j+1)/C) overlaps its own [k/U, (k+1)/U): one to one when the counts agree
    (the common case), else by position."""
    return k * total // count, -(-(k + 1) * total // count)


def upstream_shares(
    part_ids: Sequence[str], carrier: Sequence[MessageStatus]
) -> list[tuple[str, MessageStatus]]:
    """Each upstream part (in order) with the aggregate status of the carrier parts whose
    share of the text overlaps its own (``share``)."""
    count, total = len(part_ids), len(carrier)
    shares = []
    for k, part_id in enumerate(part_ids):
        first, last = share(k, count, total)
        shares.append((part_id, aggregate_status(carrier[first:last])))
    return shares
