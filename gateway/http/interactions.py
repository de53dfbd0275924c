"""``/v1/interactions``: the MO log as a paged JSON list and as a streamed CSV export.

``GET /v1/interactions?campaign_id=&number=&source=&after=&limit=&order=`` answers
``{"items": [...], "next": cursor | null}``. ``number`` is ours (the MO's destination),
``source`` the subscriber's. ``order`` is ``desc`` (newest first, the default: a list for
people) or ``asc`` (oldest first: what a program syncing the log wants). ``next`` is an opaque
cursor: pass it back as ``after`` with the same filters and order; it is null on the last page.

``GET /v1/interactions/export.csv`` streams CSV (:mod:`gateway.reports.csvfile`: UTF-8 with a
BOM unless ``bom=0``, formula injection neutralised), oldest first, with the same filters and:

- nothing else: every interaction;
- ``new=1``: those not yet exported in this *scope*: the calling token together with the
  filters (campaign_id, number, source). The mark of a scope is kept in the store and moves
  when an export of the scope (``new=1`` or all) was written to the end; an interrupted
  download moves nothing, so its rows come again next time. An interaction whose actions have
  not run yet (and so may not have its campaign yet) stops a ``new=1`` export just before
  it: it is in the next one, never skipped;
- ``ids=1,2,3`` (at most 1000): those interactions (combined with the filters); marks are
  left alone. ``ids`` and ``new`` do not go together.

The CSV's columns are the MO's, then its sender's contact (name, attributes; see
:mod:`gateway.reports.csvfile`). ``POST /v1/interactions/email {filters or ids, to}`` sends
the same CSV (at most ``MAX_ATTACHED_ROWS`` rows) as an e-mail attachment through the
digest's SMTP settings (:mod:`gateway.reports.mailout`).

Customer care (apart from the processing ``state`` above) is kept per interaction:

- ``care_state``: ``open`` (every MO starts so), ``answered`` (a helpdesk reply went through
  ``POST /v1/interactions/{id}/reply``, whatever the state before) or ``closed``; and
  ``assignee`` (null: nobody). ``PATCH /v1/interactions/{id}`` ``{"care_state", "assignee"}``
  sets either or both. A new MO from the same subscriber is a new interaction, open: it
  reopens the conversation without touching the earlier interactions (which keep who
  answered and closed them).
- ``GET /v1/interactions/{id}``: the interaction with its ``thread``: the MO, then every
  message sent for it (auto-replies, whose client_ref is ``mo-<id>``, and helpdesk replies,
  ``mo-<id>-reply``) with its delivery status, oldest first.
- ``GET /v1/conversations?number=&after=&limit=&order=``: a subscriber's whole thread across
  campaigns and numbers: every MO from ``number`` and every MT to it, by time (``asc``, the
  default, reads as a chat; ``desc`` newest first), with a keyset cursor of both positions.

Unknown query parameters are refused (400): a mistyped filter must not export everything.
A ``+`` written unencoded in a query string reaches us as a space; a number filter that
reads `` 33612345678`` is taken as ``+33612345678``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from aiohttp import web

from gateway.core.errors import FieldError
from gateway.http.auth import ACCOUNT_KEY
from gateway.http.body import parse_json, read_body
from gateway.http.errors import (
    CONFLICT,
    EMAIL_FAILED,
    EMAIL_UNAVAILABLE,
    NOT_FOUND,
    STORE_UNAVAILABLE,
    ApiError,
    invalid,
    json_response,
)
from gateway.http.message_list import row_json
from gateway.http.query import query_int
from gateway.logs import log_event
from gateway.reports import csvfile
from gateway.reports.digest import MAX_ATTACHED_ROWS, is_address
from gateway.reports.mailout import MAX_RECIPIENTS, Mailer, build_export_message
from gateway.store.base import (
    Interaction,
    MessageQuery,
    MessageRow,
    StoreError,
)
from gateway.store.ports import InteractionReads, MessageReads

log = logging.getLogger("smsgw.api")

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
"""Items per page: a page of long MOs stays around a megabyte of JSON."""
MAX_EXPORT_IDS: Final = 1000
"""Ids in one ``ids=`` export: about 8 KB of query string, aiohttp's request-line limit."""
EXPORT_PAGE: Final = 500
"""Rows read from the store and written to the client at a time: memory stays flat."""
MAX_FILTER: Final = 64

LIST_PARAMS: Final = frozenset(
    {"campaign_id", "number", "source", "after", "limit", "order", "state"}
)
STATES: Final = ("pending", "done", "quarantined")
EXPORT_PARAMS: Final = frozenset({"campaign_id", "number", "source", "new", "ids", "bom"})
EMAIL_FIELDS: Final = frozenset({"campaign_id", "number", "source", "ids", "to"})
CARE_STATES: Final = ("open", "answered", "closed")
MAX_ASSIGNEE: Final = 64
"""An agent's name, login or e-mail address."""
MAX_THREAD: Final = 1000
"""Messages of one kind (auto-replies, helpdesk replies) shown in one interaction's thread:
an MO gets a handful; a runaway exchange stays a bounded read."""
CONVERSATION_PARAMS: Final = frozenset({"number", "after", "limit", "order"})
_NO_CURSOR: Final = "-"


def interaction_json(item: Interaction) -> dict[str, Any]:
    """One item of ``GET /v1/interactions``."""
    return {
        "id": item.id,
        "source": item.source,
        "destination": item.destination,
        "text": item.text,
        "received_at": csvfile.iso_utc(item.received_at),
        "keyword": item.keyword,
        "campaign_id": item.campaign_id,
        "actions": item.actions,
        "rule": item.rule,
        "state": item.state,
        "carrier": item.carrier,
        "complete": item.complete,
        "attempts": item.attempts,
        "last_error": item.last_error,
        "care_state": item.care_state,
        "assignee": item.assignee,
    }


def reply_refs(interaction_id: int) -> tuple[str, str]:
    """The client_ref of an interaction's auto-replies and of its helpdesk replies
    (gateway.inbound.decision, gateway.http.inbound)."""
    return f"mo-{interaction_id}", f"mo-{interaction_id}-reply"


def _reply_of(row: MessageRow) -> tuple[int | None, str | None]:
    """(interaction id, "auto" | "helpdesk") of a message sent for an MO; (None, None)."""
    ref = row.client_ref or ""
    if row.account != "inbound" or not ref.startswith("mo-"):
        return None, None
    number, _, rest = ref[3:].partition("-")
    if not number.isdigit() or rest not in ("", "reply"):
        return None, None
    return int(number), "helpdesk" if rest else "auto"


def mo_item(item: Interaction) -> dict[str, Any]:
    """An MO in a thread."""
    return {
        "type": "mo",
        "at": csvfile.iso_utc(item.received_at),
        "from": item.source,
        "to": item.destination,
        "text": item.text,
        "interaction_id": item.id,
        "reply": None,
        "interaction": interaction_json(item),
        "message": None,
    }


def mt_item(row: MessageRow) -> dict[str, Any]:
    """An MT in a thread, with its delivery status (``message.status``)."""
    interaction_id, reply = _reply_of(row)
    return {
        "type": "mt",
        "at": csvfile.iso_utc(row.created_at),
        "from": row.sender,
        "to": row.to,
        "text": row.text,
        "interaction_id": interaction_id,
        "reply": reply,
        "interaction": None,
        "message": row_json(row),
    }


def _unknown(query: Mapping[str, str], allowed: frozenset[str]) -> list[FieldError]:
    return [
        FieldError(f"query.{name}", f"unknown parameter; allowed: {', '.join(sorted(allowed))}")
        for name in query
        if name not in allowed
    ]


def _filter(query: Mapping[str, str], name: str, errors: list[FieldError]) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if value[:1] == " " and value[1:].isdigit():
        value = "+" + value[1:]  # an unencoded '+' arrives as a space
    value = value.strip()
    if not value or len(value) > MAX_FILTER:
        errors.append(FieldError(f"query.{name}", f"must be 1 to {MAX_FILTER} characters"))
        return None
    return value


def _flag(query: Mapping[str, str], name: str, default: bool, errors: list[FieldError]) -> bool:
    value = query.get(name)
    if value is None:
        return default
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    errors.append(FieldError(f"query.{name}", "must be 0 or 1"))
    return default


def _ids(query: Mapping[str, str], errors: list[FieldError]) -> list[int] | None:
    value = query.get("ids")
    if value is None:
        return None
    ids: list[int] = []
    for n, piece in enumerate(value.split(",")):
        piece = piece.strip()
        if not piece.isdigit() or int(piece) < 1:
            errors.append(FieldError("query.ids", f"item {n + 1} ({piece!r}) is not an id"))
            return None
        ids.append(int(piece))
    if len(ids) > MAX_EXPORT_IDS:
        errors.append(FieldError("query.ids", f"at most {MAX_EXPORT_IDS} ids, got {len(ids)}"))
        return None
    return ids


def _stamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


class InteractionsApiPorts(InteractionReads, MessageReads, Protocol):
    """What the interaction routes read: the log and, for a conversation, the messages."""


class InteractionsApi:
    """The handlers, over a store that keeps interactions (``InteractionReads``)."""

    def __init__(
        self,
        store: MessageReads,
        clock: Callable[[], float] = time.time,
        requeued: Callable[[int], Awaitable[None]] | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.store: InteractionsApiPorts | None = (
            store if isinstance(store, InteractionReads) else None
        )
        self.clock = clock
        self.requeued = requeued
        self.mailer = mailer
        """The digest's SMTP settings, for ``POST /v1/interactions/email``; None without
        ``[digest]``."""
        """Told the id of an interaction made pending again (the inbound service queues it)."""
        self._exporting: dict[str, _ScopeLock] = {}
        """One export of "new" per scope at a time in this process: a double click gets
        the rows once (the second export starts where the first one's mark ended)."""

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/interactions", self.list_interactions, allow_head=False)
        router.add_get("/v1/interactions/export.csv", self.export, allow_head=False)
        router.add_post("/v1/interactions/email", self.email)
        router.add_post("/v1/interactions/{id}/retry", self.retry)
        router.add_get("/v1/interactions/{id}", self.get_one, allow_head=False)
        router.add_patch("/v1/interactions/{id}", self.patch_one)
        router.add_get("/v1/conversations", self.conversation, allow_head=False)

    async def _find(self, store: InteractionsApiPorts, raw: str) -> Interaction:
        ok = raw.isascii() and raw.isdigit() and len(raw) < 19
        interaction = await store.get_interaction(int(raw)) if ok else None
        if interaction is None:
            raise ApiError(404, NOT_FOUND, f"no interaction {raw}")
        return interaction

    async def get_one(self, request: web.Request) -> web.Response:
        """The interaction and its thread: the MO, then the replies sent for it."""
        store = self._store()
        interaction = await self._find(store, request.match_info["id"])
        rows: list[MessageRow] = []
        for ref in reply_refs(interaction.id):
            query = MessageQuery(account=None, client_ref=ref, limit=MAX_THREAD, newest_first=False)
            rows.extend(await store.list_messages(query))
        rows.sort(key=lambda r: r.id)
        thread = [mo_item(interaction), *(mt_item(r) for r in rows)]
        return json_response({**interaction_json(interaction), "thread": thread})

    async def patch_one(self, request: web.Request) -> web.Response:
        """``{"care_state", "assignee"}``: either or both."""
        store = self._store()
        body = parse_json(await read_body(request))
        if not isinstance(body, dict):
            raise invalid([FieldError("", "must be a JSON object")])
        errors = [
            FieldError(k, "unknown field; allowed: assignee, care_state")
            for k in body
            if k not in ("care_state", "assignee")
        ]
        care_state = body.get("care_state")
        if "care_state" in body and care_state not in CARE_STATES:
            errors.append(FieldError("care_state", f"must be one of {', '.join(CARE_STATES)}"))
        assignee = body.get("assignee")
        if assignee is not None and (
            not isinstance(assignee, str) or not assignee.strip() or len(assignee) > MAX_ASSIGNEE
        ):
            errors.append(
                FieldError(
                    "assignee", f"must be null or a string of 1 to {MAX_ASSIGNEE} characters"
                )
            )
        if not body and not errors:
            errors.append(FieldError("", "give care_state, assignee or both"))
        if errors:
            raise invalid(errors)
        raw = request.match_info["id"]
        await self._find(store, raw)
        updated = await store.set_interaction_care(
            int(raw),
            care_state=care_state if isinstance(care_state, str) else None,
            assignee=assignee.strip() if isinstance(assignee, str) else None,
            set_assignee="assignee" in body,
        )
        if updated is None:
            raise ApiError(404, NOT_FOUND, f"no interaction {raw}")
        log_event(
            log,
            "api.interaction_care",
            interaction=updated.id,
            care_state=updated.care_state,
            assignee=updated.assignee,
        )
        return json_response(interaction_json(updated))

    async def conversation(self, request: web.Request) -> web.Response:
        """Every MO from and MT to one number, merged by time, a page at a time. Each side
        is read through its own index by its own key (interactions_subscriber: source, id;
        messages_dest: dest, id), at most ``limit`` + 1 rows; the cursor keeps the last id
        taken from each side, so a page never repeats or skips an item."""
        store = self._store()
        query = request.query
        errors = _unknown(query, CONVERSATION_PARAMS)
        number = _filter(query, "number", errors)
        if number is None and "number" not in query:
            errors.append(FieldError("query.number", "required"))
        limit = query_int(query, "limit", 1, MAX_LIMIT, errors) or DEFAULT_LIMIT
        order = query.get("order", "asc")
        if order not in ("asc", "desc"):
            errors.append(FieldError("query.order", "must be asc or desc"))
        mo_after, mt_after = _conversation_cursor(query.get("after"), errors)
        if errors:
            raise invalid(errors)
        assert number is not None
        newest_first = order == "desc"
        mos = await store.interactions(
            source=number, after=mo_after, limit=limit + 1, newest_first=newest_first
        )
        mts = await store.list_messages(
            MessageQuery(
                account=None, to=number, after=mt_after, limit=limit + 1, newest_first=newest_first
            )
        )
        items: list[dict[str, Any]] = []
        m = t = 0
        while len(items) < limit and (m < len(mos) or t < len(mts)):
            take_mo = t >= len(mts) or (
                m < len(mos)
                and (
                    mos[m].received_at >= mts[t].created_at
                    if newest_first
                    else mos[m].received_at <= mts[t].created_at
                )
            )
            if take_mo:
                items.append(mo_item(mos[m]))
                mo_after = mos[m].id
                m += 1
            else:
                items.append(mt_item(mts[t]))
                mt_after = mts[t].id
                t += 1
        more = m < len(mos) or t < len(mts)
        next_cursor = None
        if more:
            next_cursor = (
                f"{mo_after if mo_after is not None else _NO_CURSOR}"
                f".{mt_after if mt_after is not None else _NO_CURSOR}"
            )
        return json_response({"number": number, "items": items, "next": next_cursor})

    async def retry(self, request: web.Request) -> web.Response:
        """A quarantined interaction, pending again with no attempts: handled once more."""
        store = self._store()
        raw = request.match_info["id"]
        ok = raw.isascii() and raw.isdigit() and len(raw) < 19
        interaction = await store.get_interaction(int(raw)) if ok else None
        if interaction is None:
            raise ApiError(404, NOT_FOUND, f"no interaction {raw}")
        if not await store.requeue_interaction(interaction.id):
            raise ApiError(
                409, CONFLICT, f"interaction {raw} is {interaction.state}, not quarantined"
            )
        if self.requeued is not None:
            await self.requeued(interaction.id)
        fresh = await store.get_interaction(interaction.id)
        assert fresh is not None
        return json_response(interaction_json(fresh), status=202)

    async def email(self, request: web.Request) -> web.Response:
        """The interactions selected (filters and/or ids) as a CSV attached to an e-mail
        to at most five addresses, through the digest's SMTP settings."""
        store = self._store()
        filters, ids, to = await _email_request(request)
        if self.mailer is None:
            raise ApiError(
                503,
                EMAIL_UNAVAILABLE,
                "no [digest] section: e-mails go through its SMTP settings",
            )
        columns = await _contact_columns(store, filters, 0, None, ids)
        chunks = [csvfile.header(True, columns)]
        rows = 0
        more = False
        async for page in _pages(store, filters, 0, None, ids):
            room = MAX_ATTACHED_ROWS - rows
            if len(page) > room:
                page, more = page[:room], True
            contacts = await store.contacts_of([i.source for i in page])
            chunks.append(csvfile.rows(page, columns, contacts))
            rows += len(page)
            if more or rows >= MAX_ATTACHED_ROWS:
                more = more or bool(await _pages_after(store, filters, page, ids))
                break
        now = self.clock()
        message = build_export_message(
            mailer=self.mailer,
            to=to,
            selection={**filters, "ids": ",".join(map(str, ids)) if ids is not None else None},
            attachment=b"".join(chunks),
            rows=rows,
            more=more,
            now=now,
        )
        try:
            await self.mailer.sender.send(message)
        except Exception as exc:  # refused, unreachable, TLS or login failure
            log_event(
                log,
                "api.interactions_email_failed",
                logging.WARNING,
                recipients=len(to),
                rows=rows,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise ApiError(
                502, EMAIL_FAILED, f"the mail server did not take the e-mail: {exc}"
            ) from None
        log_event(log, "api.interactions_emailed", recipients=len(to), rows=rows, truncated=more)
        return json_response({"to": to, "rows": rows, "truncated": more})

    def _store(self) -> InteractionsApiPorts:
        if self.store is None:
            raise ApiError(503, STORE_UNAVAILABLE, "this gateway's store keeps no interactions")
        return self.store

    async def list_interactions(self, request: web.Request) -> web.Response:
        store = self._store()
        query = request.query
        errors = _unknown(query, LIST_PARAMS)
        filters = {n: _filter(query, n, errors) for n in ("campaign_id", "number", "source")}
        after = query_int(query, "after", 1, None, errors)
        limit = query_int(query, "limit", 1, MAX_LIMIT, errors) or DEFAULT_LIMIT
        state = query.get("state")
        if state is not None and state not in STATES:
            errors.append(FieldError("query.state", f"must be one of {', '.join(STATES)}"))
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            errors.append(FieldError("query.order", "must be asc or desc"))
        if errors:
            raise invalid(errors)
        items = await store.interactions(
            number=filters["number"],
            source=filters["source"],
            campaign_id=filters["campaign_id"],
            after=after,
            limit=limit + 1,
            newest_first=order == "desc",
            state=state,
        )
        more = len(items) > limit
        items = items[:limit]
        next_cursor = str(items[-1].id) if more else None
        return json_response({"items": [interaction_json(i) for i in items], "next": next_cursor})

    async def export(self, request: web.Request) -> web.StreamResponse:
        store = self._store()
        query = request.query
        errors = _unknown(query, EXPORT_PARAMS)
        filters = {n: _filter(query, n, errors) for n in ("campaign_id", "number", "source")}
        new = _flag(query, "new", False, errors)
        bom = _flag(query, "bom", True, errors)
        ids = _ids(query, errors)
        if new and ids is not None:
            errors.append(FieldError("query.ids", "ids and new=1 do not go together"))
        if errors:
            raise invalid(errors)
        scope = json.dumps(
            [request[ACCOUNT_KEY], filters["campaign_id"], filters["number"], filters["source"]]
        )
        entry = self._exporting.setdefault(scope, _ScopeLock())
        entry.users += 1
        try:
            async with entry.lock:
                return await self._export(request, store, scope, filters, new, bom, ids)
        finally:
            entry.users -= 1
            if not entry.users:
                del self._exporting[scope]

    async def _export(
        self,
        request: web.Request,
        store: InteractionsApiPorts,
        scope: str,
        filters: Mapping[str, str | None],
        new: bool,
        bom: bool,
        ids: list[int] | None,
    ) -> web.StreamResponse:
        bound = await store.settled_interaction_bound()
        start = await store.export_mark(scope) if new else 0
        now = self.clock()
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="interactions-{_stamp(now)}.csv"',
                "Cache-Control": "no-store",
            }
        )
        columns = await _contact_columns(store, filters, start, bound if new else None, ids)
        await response.prepare(request)
        written = 0
        try:
            await response.write(csvfile.header(bom, columns))
            async for page in _pages(store, filters, start, bound if new else None, ids):
                written += len(page)
                contacts = await store.contacts_of([i.source for i in page])
                await response.write(csvfile.rows(page, columns, contacts))
            await response.write_eof()
        except Exception as exc:
            # The status line is gone: all we can do is cut the connection, so that the
            # client sees a truncated transfer rather than a file that looks whole.
            log_event(
                log,
                "api.export_interrupted",
                logging.WARNING,
                rows=written,
                error=f"{type(exc).__name__}: {exc}",
            )
            if request.transport is not None:
                request.transport.close()
            return response
        if ids is None and bound > start:
            try:
                await store.advance_export_mark(scope, bound, now)
            except StoreError as exc:  # the file went out whole; the next new=1 repeats it
                log_event(log, "api.export_mark_failed", logging.ERROR, error=str(exc))
        log_event(log, "api.export", rows=written, new=new, selected=ids is not None)
        return response


async def _contact_columns(
    store: InteractionsApiPorts,
    filters: Mapping[str, str | None],
    after: int,
    upto: int | None,
    ids: Sequence[int] | None,
) -> csvfile.ContactColumns:
    """The contact columns of an export: every attribute key of the contacts it holds."""
    keys = await store.interaction_attribute_keys(
        number=filters["number"],
        source=filters["source"],
        campaign_id=filters["campaign_id"],
        after=after,
        upto=upto,
        ids=ids,
        limit=csvfile.MAX_ATTRIBUTE_COLUMNS + 1,
    )
    return csvfile.ContactColumns.of(keys)


async def _pages_after(
    store: InteractionsApiPorts,
    filters: Mapping[str, str | None],
    last: list[Interaction],
    ids: Sequence[int] | None,
) -> bool:
    """Whether the selection goes on past ``last`` (the page where the attachment stopped)."""
    if ids is not None:
        return len(ids) > MAX_ATTACHED_ROWS
    page = await store.interactions(
        number=filters["number"],
        source=filters["source"],
        campaign_id=filters["campaign_id"],
        after=last[-1].id,
        limit=1,
    )
    return bool(page)


async def _pages(
    store: InteractionsApiPorts,
    filters: Mapping[str, str | None],
    after: int,
    upto: int | None,
    ids: Sequence[int] | None,
) -> AsyncIterator[list[Interaction]]:
    """The interactions an export selects, oldest first, a page at a time: ``ids`` (with
    the filters), or those after ``after`` (and at most ``upto``)."""
    if ids is not None:
        for n in range(0, len(ids), EXPORT_PAGE):
            page = await store.interactions_by_ids(ids[n : n + EXPORT_PAGE])
            page = [i for i in page if _matches(i, filters)]
            if page:
                yield page
        return
    while True:
        page = await store.interactions(
            number=filters["number"],
            source=filters["source"],
            campaign_id=filters["campaign_id"],
            after=after,
            limit=EXPORT_PAGE,
        )
        if upto is not None:
            page = [i for i in page if i.id <= upto]
        if not page:
            return
        yield page
        after = page[-1].id
        if len(page) < EXPORT_PAGE:
            return


async def _email_request(
    request: web.Request,
) -> tuple[dict[str, str | None], list[int] | None, list[str]]:
    body = parse_json(await read_body(request))
    if not isinstance(body, dict):
        raise invalid([FieldError("", "must be a JSON object")])
    errors = [FieldError(k, "unknown field") for k in body if k not in EMAIL_FIELDS]
    filters: dict[str, str | None] = {}
    for name in ("campaign_id", "number", "source"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, str) or not value.strip() or len(value) > MAX_FILTER
        ):
            errors.append(FieldError(name, f"must be 1 to {MAX_FILTER} characters, or null"))
            value = None
        filters[name] = value.strip() if isinstance(value, str) else None
    ids: list[int] | None = None
    raw_ids = body.get("ids")
    if raw_ids is not None:
        if (
            not isinstance(raw_ids, list)
            or not 1 <= len(raw_ids) <= MAX_EXPORT_IDS
            or not all(type(i) is int and i >= 1 for i in raw_ids)
        ):
            errors.append(
                FieldError("ids", f"must be 1 to {MAX_EXPORT_IDS} interaction ids, or null")
            )
        else:
            ids = list(raw_ids)
    to = body.get("to")
    addresses: list[str] = []
    if not isinstance(to, list) or not 1 <= len(to) <= MAX_RECIPIENTS:
        errors.append(FieldError("to", f"must be 1 to {MAX_RECIPIENTS} e-mail addresses"))
    else:
        for n, address in enumerate(to):
            if not isinstance(address, str) or not is_address(address.strip()):
                errors.append(FieldError(f"to[{n}]", "is not an e-mail address"))
            elif address.strip().lower() not in (a.lower() for a in addresses):
                addresses.append(address.strip())
    if errors:
        raise invalid(errors)
    return filters, ids, addresses


def _conversation_cursor(
    value: str | None, errors: list[FieldError]
) -> tuple[int | None, str | None]:
    """``<last interaction id>.<last message id>``, ``-`` for a side not read yet."""
    if value is None:
        return None, None
    mo, dot, mt = value.partition(".")
    mo_ok = mo == _NO_CURSOR or (mo.isascii() and mo.isdigit() and 0 < len(mo) < 19)
    mt_ok = mt == _NO_CURSOR or (
        len(mt) == 26 and all(c in "0123456789abcdef" for c in mt)  # gateway.core.model ids
    )
    if not (dot and mo_ok and mt_ok):
        errors.append(FieldError("query.after", "not a cursor this list gave"))
        return None, None
    return (None if mo == _NO_CURSOR else int(mo)), (None if mt == _NO_CURSOR else mt)


class _ScopeLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


def _matches(item: Interaction, filters: Mapping[str, str | None]) -> bool:
    return (
        filters["campaign_id"] in (None, item.campaign_id)
        and filters["number"] in (None, item.destination)
        and filters["source"] in (None, item.source)
    )
