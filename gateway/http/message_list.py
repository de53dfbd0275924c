"""``GET /v1/messages``: messages listed and searched, a page at a time.

``GET /v1/messages?campaign_id=&status=&to=&client_ref=&since=&until=&after=&limit=&order=``
answers ``{"items": [...], "next": cursor | null}``: each item is a message's fate without
its parts and history (``GET /v1/messages/{id}`` has those). Filters combine (AND):

- ``campaign_id``, ``to`` (E.164; an unencoded ``+`` arrives as a space and is taken as
  ``+``), ``client_ref``: exact;
- ``status``: one status or several separated by commas (``failed,undeliverable``);
- ``since`` (inclusive) and ``until`` (exclusive): ISO-8601 with a UTC offset or epoch
  seconds, on the time the message was made (its id carries it: ids sort by that time).

``order`` is ``desc`` (newest first, the default) or ``asc`` (oldest first: what a program
following a batch or a campaign wants). ``next`` is an opaque cursor (the last id of the
page): pass it back as ``after`` with the same filters and order; null on the last page. A
token that is not admin sees only its account's messages (gateway.http.auth). Unknown
parameters are refused (400): a mistyped filter must not list everything.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from gateway.core.errors import FieldError
from gateway.core.model import MessageStatus
from gateway.core.validation import MAX_CAMPAIGN_ID, MAX_CLIENT_REF
from gateway.reports.csvfile import iso_utc
from gateway.store.base import MessageQuery, MessageRow

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
"""Messages per page: a page stays around half a megabyte of JSON."""
MAX_TO: Final = 32
"""A destination as stored: E.164 (at most 16 characters) or a non-numeric address."""
LATEST_TIME: Final = 253_402_300_799.0
"""9999-12-31T23:59:59Z: the last time an id's 12 hex digits of milliseconds hold, and the
last a date-time parser gives."""
PARAMS: Final = frozenset(
    {"campaign_id", "status", "to", "client_ref", "since", "until", "after", "limit", "order"}
)
STATUSES: Final = tuple(s.value for s in MessageStatus)

_CURSOR: Final = re.compile(r"[0-9a-f]{26}")  # gateway.core.model.new_message_id


def row_json(row: MessageRow) -> dict[str, Any]:
    """One item of ``GET /v1/messages``."""
    return {
        "id": row.id,
        "status": row.status,
        "to": row.to,
        "from": row.sender,
        "encoding": row.encoding,
        "parts": row.parts,
        "carrier": row.carrier,
        "client_ref": row.client_ref,
        "campaign_id": row.campaign_id,
        "possible_duplicate": row.possible_duplicate,
        "error": row.error,
        "created_at": iso_utc(row.created_at),
        "updated_at": iso_utc(row.updated_at),
    }


def _text(
    query: Mapping[str, str], name: str, longest: int, errors: list[FieldError]
) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if not value or len(value) > longest:
        errors.append(FieldError(f"query.{name}", f"must be 1 to {longest} characters"))
        return None
    return value


def _to(query: Mapping[str, str], errors: list[FieldError]) -> str | None:
    value = query.get("to")
    if value is not None and value[:1] == " " and value[1:].isdigit():
        return "+" + value[1:]  # an unencoded '+' arrives as a space
    return _text(query, "to", MAX_TO, errors)


def _statuses(query: Mapping[str, str], errors: list[FieldError]) -> tuple[str, ...]:
    value = query.get("status")
    if value is None:
        return ()
    wanted = tuple(dict.fromkeys(s.strip() for s in value.split(",")))
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown or not wanted:
        errors.append(
            FieldError(
                "query.status",
                f"unknown status {', '.join(map(repr, unknown))}; one or more of"
                f" {', '.join(STATUSES)}, separated by commas",
            )
        )
        return ()
    return wanted


def _time(query: Mapping[str, str], name: str, errors: list[FieldError]) -> float | None:
    value = query.get(name)
    if value is None:
        return None
    at: float | None = None
    try:
        at = float(value)
    except ValueError:
        for text in (value, value.replace(" ", "+")):  # an unencoded '+' of an offset
            try:
                moment = datetime.datetime.fromisoformat(text)
            except ValueError:
                continue
            if moment.tzinfo is not None and moment.utcoffset() is not None:
                at = moment.timestamp()
            break
    if at is None or not math.isfinite(at) or not 0 <= at <= LATEST_TIME:
        errors.append(
            FieldError(
                f"query.{name}",
                "must be an ISO-8601 date and time with a UTC offset (2030-01-02T03:04:05Z)"
                " or epoch seconds, from 1970 to 9999",
            )
        )
        return None
    return at


def _limit(query: Mapping[str, str], errors: list[FieldError]) -> int:
    value = query.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_LIMIT:
        return int(value)
    errors.append(FieldError("query.limit", f"must be an integer 1..{MAX_LIMIT}"))
    return DEFAULT_LIMIT


def parse_query(query: Mapping[str, str], account: str | None) -> MessageQuery | list[FieldError]:
    """The store's query for a request's parameters (``account`` None: every account's),
    or every error in them."""
    errors = [
        FieldError(f"query.{name}", f"unknown parameter; allowed: {', '.join(sorted(PARAMS))}")
        for name in query
        if name not in PARAMS
    ]
    campaign_id = _text(query, "campaign_id", MAX_CAMPAIGN_ID, errors)
    to = _to(query, errors)
    client_ref = _text(query, "client_ref", MAX_CLIENT_REF, errors)
    statuses = _statuses(query, errors)
    since = _time(query, "since", errors)
    until = _time(query, "until", errors)
    after = query.get("after")
    if after is not None and not _CURSOR.fullmatch(after):
        errors.append(FieldError("query.after", "must be the 'next' of a previous page"))
    limit = _limit(query, errors)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        errors.append(FieldError("query.order", "must be asc or desc"))
    if errors:
        return errors
    return MessageQuery(
        account=account,
        campaign_id=campaign_id,
        statuses=statuses,
        to=to,
        client_ref=client_ref,
        since=since,
        until=until,
        after=after,
        limit=limit,
        newest_first=order == "desc",
    )
