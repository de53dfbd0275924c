"""query_sm, cancel_sm and replace_sm on the front (SMPP 3.4 4.8-4.10).

An upstream account names one of its own messages by an id a submit_sm_resp gave it: the
message's id, or the id of one part of a long message (``<message id>-<seq>``, see
gateway.front.server). Another account's message, or an id smsgw never gave, is
ESME_RINVMSGID: an account learns nothing about messages that are not its own.

- query_sm: the message's state as message_state (ENROUTE while under way; DELIVERED,
  EXPIRED, UNDELIVERABLE, REJECTED as its receipt says; DELETED once cancelled), the
  final_date of a final state (UTC), error_code 0 when delivered or under way, 1 otherwise
  (as the receipts' err). A part id gets the state of the carrier parts carrying its
  text (as its receipt will): ENROUTE while it waits for its siblings, REJECTED when its
  joined message was refused.
- cancel_sm: a message none of whose parts has been handed to a carrier (accepted, queued
  or scheduled) is cancelled: status failed, error ``CANCELLED``, receipt stat DELETED if
  one was asked for. A part id cancels its whole message. Too late (a part is being sent or
  was sent, or the message is final), or a part still waiting for its siblings:
  ESME_RCANCELFAIL. cancel_sm without a message_id (every message from one address to
  another) is not supported: ESME_RCANCELFAIL.
- replace_sm: the same condition; the new short_message replaces the text (read as the
  original's alphabet: UCS-2 if it was stored as UCS-2, else the SMSC default alphabet),
  schedule_delivery_time and validity_period replace the original's when given (empty
  keeps them), registered_delivery replaces the receipt request. A long message's part ids
  are refused (its text came in several PDUs; one replace_sm cannot say which).
  ESME_RREPLACEFAIL otherwise; ESME_RINVSCHED / ESME_RINVEXPIRY for unreadable times.

Cancel and replace first take the message out of the dispatcher's queues
(``Outbound.withdraw``), then edit it in one store transaction that checks again that no
part has been handed over, then tell the dispatcher the outcome (``settle``): the
dispatcher never sends a message the store has cancelled, nor the old text of one the store
has replaced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from gateway.core.model import FINAL_STATUSES, MessageStatus, Replacement
from gateway.core.validation import MAX_VALIDITY, MIN_VALIDITY
from gateway.front.outgoing import message_state
from gateway.front.submits import smpp_time
from gateway.logs import log_event
from gateway.smpp.constants import Status
from gateway.smpp.pdu import CancelSm, Pdu, QuerySm, ReplaceSm
from gateway.smpp.receipt import MessageState
from gateway.smpp.smsc import receipt_requested
from gateway.smpp.text import decode_short_message
from gateway.store.base import (
    EDIT_DONE,
    EDIT_UNKNOWN,
    FRONT_CALLBACK_SCHEME,
    FRONT_PART_FAILED,
    FRONT_PART_HELD,
    MessageSummary,
)

if TYPE_CHECKING:
    from gateway.front.server import FrontServer

log = logging.getLogger("smsgw.front")

UCS2: Final = 0x08
SMSC_DEFAULT: Final = 0x00
_FINAL: Final = frozenset(s.value for s in FINAL_STATUSES)


@dataclass(slots=True)
class Answer:
    """The response to send, and the reason logged when it is a refusal."""

    pdu: Pdu
    reason: str = ""


@dataclass(slots=True)
class _Found:
    """What an id names: a committed message, or a part not joined (or refused)."""

    message: MessageSummary | None
    part_state: str = ""
    part_of_long: bool = False


def smpp_absolute(at: float) -> str:
    """An SMPP absolute time (spec 7.1.1) in UTC: YYMMDDhhmmss, tenths, 00 quarter hours, +."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%y%m%d%H%M%S") + f"{moment.microsecond // 100_000}00+"


async def _find(front: FrontServer, account: str, given: str) -> _Found | None:
    """The message or part ``given`` names, if it is ``account``'s."""
    if not given:
        return None
    store = front.store
    summary = await store.message_summary(given)
    if summary is not None:
        return _Found(summary) if summary.account == account else None
    part = await store.front_part(given)
    if part is None or part.account != account:
        return None
    if part.state in (FRONT_PART_HELD, FRONT_PART_FAILED):
        return _Found(None, part.state, True)
    summary = await store.message_summary(part.message_id)
    if summary is None or summary.account != account:
        return None
    return _Found(summary, part.state, True)


async def query(front: FrontServer, account: str, pdu: QuerySm) -> Answer:
    given = pdu.message_id
    store = front.store
    message = await store.message_summary(given) if given else None
    if message is not None:
        if message.account != account:
            return Answer(pdu.make_response(Status.RINVMSGID), "unknown message_id")
        status, error, final_at = message.status, message.error, message.updated_at
    else:
        # A part of a long message: the state of the carrier parts carrying its text.
        part = await store.front_part_status(given) if given else None
        if part is None or part.part.account != account:
            return Answer(pdu.make_response(Status.RINVMSGID), "unknown message_id")
        status, error, final_at = part.status.value, None, part.final_at or 0.0
        if status == MessageStatus.FAILED.value:  # cancelled? the message says
            whole = await store.message_summary(part.part.message_id)
            error = whole.error if whole is not None else None
    state = message_state(status, error)
    final = status in _FINAL
    return Answer(
        pdu.make_response(
            message_id=given,
            final_date=smpp_absolute(final_at) if final else "",
            message_state=int(state),
            error_code=1 if final and state is not MessageState.DELIVERED else 0,
        )
    )


async def cancel(front: FrontServer, account: str, pdu: CancelSm) -> Answer:
    if not pdu.message_id:
        return Answer(pdu.make_response(Status.RCANCELFAIL), "cancel by address is not supported")
    found = await _find(front, account, pdu.message_id)
    if found is None:
        return Answer(pdu.make_response(Status.RINVMSGID), "unknown message_id")
    message = found.message
    if message is None:
        return Answer(pdu.make_response(Status.RCANCELFAIL), "long message not complete")
    if message.status in _FINAL:
        return Answer(pdu.make_response(Status.RCANCELFAIL), f"message final: {message.status}")
    outbound = front.outbound
    if not outbound.withdraw(message.id):
        return Answer(pdu.make_response(Status.RCANCELFAIL), "being sent")
    answer = ""
    try:
        answer, changes = await front.store.cancel_message(message.id, account, front.clock())
    finally:
        outbound.settle(message.id, removed=answer == EDIT_DONE)
    if answer == EDIT_UNKNOWN:
        return Answer(pdu.make_response(Status.RINVMSGID), "unknown message_id")
    if answer != EDIT_DONE:
        return Answer(pdu.make_response(Status.RCANCELFAIL), "already handed to a carrier")
    front.notify_changes(changes)  # the receipt (DELETED) is in the outbox: send it
    log_event(log, "front.cancelled", account=account, id=message.id)
    return Answer(pdu.make_response())


def _times(
    pdu: ReplaceSm, message: MessageSummary, now: float
) -> tuple[float | None, float | None] | Answer:
    """The replacement's schedule and validity end, or the refusal of an unreadable one."""
    scheduled_at = message.scheduled_at
    if pdu.schedule_delivery_time:
        try:
            scheduled_at = smpp_time(pdu.schedule_delivery_time, now)
        except ValueError:
            return Answer(pdu.make_response(Status.RINVSCHED), "unreadable schedule")
        if scheduled_at <= now:
            scheduled_at = None  # a time past means now
    validity_until = message.validity_until
    if pdu.validity_period:
        try:
            seconds = smpp_time(pdu.validity_period, now) - now
        except ValueError:
            return Answer(pdu.make_response(Status.RINVEXPIRY), "unreadable validity_period")
        start = now if scheduled_at is None else max(now, scheduled_at)
        validity_until = start + min(max(seconds, MIN_VALIDITY), MAX_VALIDITY)
    return scheduled_at, validity_until


async def replace(front: FrontServer, account: str, pdu: ReplaceSm) -> Answer:
    found = await _find(front, account, pdu.message_id)
    if found is None:
        return Answer(pdu.make_response(Status.RINVMSGID), "unknown message_id")
    message = found.message
    if message is None or found.part_of_long:
        return Answer(
            pdu.make_response(Status.RREPLACEFAIL), "a part of a long message cannot be replaced"
        )
    if message.status not in (MessageStatus.ACCEPTED.value, MessageStatus.QUEUED.value):
        return Answer(pdu.make_response(Status.RREPLACEFAIL), f"message {message.status}: too late")
    if not pdu.short_message:
        return Answer(pdu.make_response(Status.RREPLACEFAIL), "empty short_message")
    now = front.clock()
    times = _times(pdu, message, now)
    if isinstance(times, Answer):
        return times
    scheduled_at, validity_until = times
    alphabet = UCS2 if message.encoding == "ucs2" else SMSC_DEFAULT
    text = decode_short_message(pdu.short_message, alphabet)
    counted = front.intake.count(text, message.carrier)
    if isinstance(counted, list):
        reason = "; ".join(f"{e.path}: {e.message}" for e in counted)
        return Answer(pdu.make_response(Status.RINVMSGLEN), reason)
    encoding, parts = counted
    registered = receipt_requested(pdu.registered_delivery)
    callback_url = message.callback_url
    if callback_url is None or callback_url.startswith(FRONT_CALLBACK_SCHEME):
        callback_url = f"{FRONT_CALLBACK_SCHEME}{account}?rd={registered}" if registered else None
    replacement = Replacement(text, encoding, parts, scheduled_at, validity_until, callback_url)
    outbound = front.outbound
    if not outbound.withdraw(message.id):
        return Answer(pdu.make_response(Status.RREPLACEFAIL), "being sent")
    answer = ""
    try:
        answer = await front.store.replace_message(message.id, account, replacement, now)
    finally:
        done = answer == EDIT_DONE
        outbound.settle(message.id, removed=done, replacement=replacement if done else None)
    if answer == EDIT_UNKNOWN:
        return Answer(pdu.make_response(Status.RINVMSGID), "unknown message_id")
    if answer != EDIT_DONE:
        return Answer(pdu.make_response(Status.RREPLACEFAIL), "already handed to a carrier")
    log_event(log, "front.replaced", account=account, id=message.id, parts=parts)
    return Answer(pdu.make_response())


__all__ = ["Answer", "cancel", "query", "replace", "smpp_absolute"]
