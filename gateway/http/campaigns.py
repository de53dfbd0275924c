"""``/v1/lists``, ``/v1/imports``, ``/v1/contacts``, ``/v1/opt-outs`` and ``/v1/campaigns``.

Lists and campaigns belong to the account of the token that made them (gateway.http.auth):
a token sees and changes only its account's, an admin token every one; another account's
list, import or campaign is answered 404. Contacts and opt-outs are the gateway's (a number
is one person whoever writes to it): a token sees a contact only when it is in one of its
account's lists, with those lists only; it searches, edits and deletes contacts, and lists
and exports opt-outs, through those lists too (``DELETE /v1/contacts/{number}`` takes the
number out of its lists, an admin's out of every list; a contact in no list is forgotten,
its opt-outs kept). Errors use the shape of gateway.http.errors; a campaign action its status
does not allow is a 409 ``invalid_state``; a list still used is a 409 ``conflict``.

``POST /v1/lists/{id}/import`` takes a ``text/csv`` body of any size (not bounded by
``http.max_body_bytes``, which is for JSON; at most ``MAX_IMPORT_BYTES``): it is streamed to
a spool file and parsed in the background (see gateway.campaigns.imports).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

from aiohttp import web

from gateway.campaigns.imports import (
    DEFAULT_OPT_IN_SOURCE,
    MAX_ATTRIBUTE_CHARS,
    MAX_COLUMNS,
)
from gateway.campaigns.parts import CampaignParts
from gateway.campaigns.service import (
    FieldErrors,
    TransitionError,
    campaign_json,
    iso,
)
from gateway.core import validation as check
from gateway.core.errors import FieldError
from gateway.http.auth import principal
from gateway.http.body import parse_json, read_body
from gateway.http.errors import (
    BODY_TOO_LARGE,
    CONFLICT,
    NOT_FOUND,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
    invalid,
    json_response,
)
from gateway.logs import log_event
from gateway.reports import csvfile
from gateway.store.campaign_base import (
    CampaignRecord,
    ImportJob,
    ListInUse,
    OptOutRecord,
)

INVALID_STATE: Final = "invalid_state"  # 409: the campaign's status does not allow it
CAMPAIGNS_UNAVAILABLE: Final = "campaigns_unavailable"  # 503: not wired in this process

MAX_IMPORT_BYTES: Final = 1 << 30
"""1 GiB of CSV: 10 million rows of a number, a name and a few attributes."""
READ_CHUNK: Final = 1 << 16
MAX_LIST_NAME: Final = 200
MAX_OPT_IN_SOURCE: Final = 64
_ID: Final = re.compile(r"[0-9a-f]{26}")
DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 1000
MAX_QUERY: Final = 100
MAX_CONTACT_NAME: Final = 200
MAX_ATTRIBUTE_KEY: Final = 64
EXPORT_PAGE: Final = 1000
ALL_SENDERS: Final = "*"
"""An opt-out from every sender, in cursors (the JSON says ``"sender": null``)."""
CONTACT_SEARCH_PARAMS: Final = frozenset({"q", "list_id", "after", "limit"})
OPT_OUT_LIST_PARAMS: Final = frozenset({"after", "limit"})
OPT_OUT_COLUMNS: Final = ("number", "sender", "source", "at")
"""The opt-out export's header; an empty sender is an opt-out from every sender."""

log = logging.getLogger("smsgw.api")


def _list_json(list_: Any) -> dict[str, Any]:
    return {
        "id": list_.id,
        "name": list_.name,
        "contacts": list_.contacts,
        "created_at": iso(list_.created_at),
    }


def _import_json(job: ImportJob) -> dict[str, Any]:
    return {
        "import_id": job.id,
        "list_id": job.list_id,
        "status": job.status,
        "rows": job.rows,
        "imported": job.imported,
        "rejected": job.rejected,
        "errors": job.errors,
        "opt_in_source": job.opt_in_source,
        "failure": job.failure,
        "bytes": job.bytes_total,
        "bytes_read": job.bytes_read,
        "created_at": iso(job.created_at),
        "finished_at": iso(job.finished_at),
    }


def _unknown(query: Mapping[str, str], allowed: frozenset[str]) -> list[FieldError]:
    return [
        FieldError(f"query.{name}", f"unknown parameter; allowed: {', '.join(sorted(allowed))}")
        for name in query
        if name not in allowed
    ]


def _plus(value: str) -> str:
    """An unencoded '+' reaches us as a space: `` 33612345678`` is ``+33612345678``."""
    return "+" + value[1:] if value[:1] == " " and value[1:2].isdigit() else value


def _limit(query: Mapping[str, str], errors: list[FieldError]) -> int:
    raw = query.get("limit")
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdecimal() or not 1 <= int(raw) <= MAX_PAGE:
        errors.append(FieldError("query.limit", f"must be an integer 1..{MAX_PAGE}"))
        return DEFAULT_PAGE
    return int(raw)


def _opt_out_cursor(raw: str | None, errors: list[FieldError]) -> tuple[str, str]:
    if raw is None:
        return ("", "")
    number, sep, sender = _plus(raw).partition("|")
    if not sep or not number or not sender or len(raw) > MAX_QUERY or not raw.isprintable():
        errors.append(FieldError("query.after", "must be a cursor from 'next'"))
        return ("", "")
    return (number, sender)


def _opt_out_json(number: str, record: OptOutRecord) -> dict[str, Any]:
    return {
        "number": number,
        "sender": record.sender,
        "source": record.source,
        "at": iso(record.at),
    }


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid([FieldError("", "must be a JSON object")])
    return body


CLICKS_PAGE: Final = 1000
"""Click records read and written at a time by the clicks export: memory stays flat."""


class CampaignsApi:
    def __init__(self, parts: CampaignParts | None) -> None:
        self._parts = parts

    @property
    def parts(self) -> CampaignParts:
        if self._parts is None:
            raise ApiError(503, CAMPAIGNS_UNAVAILABLE, "campaigns are not available here")
        return self._parts

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/lists", self.post_list)
        router.add_get("/v1/lists", self.get_lists, allow_head=False)
        router.add_get("/v1/lists/{id}", self.get_list, allow_head=False)
        router.add_delete("/v1/lists/{id}", self.delete_list)
        router.add_post("/v1/lists/{id}/import", self.post_import)
        router.add_get("/v1/imports/{id}", self.get_import, allow_head=False)
        router.add_get("/v1/contacts", self.search_contacts, allow_head=False)
        router.add_get("/v1/contacts/{number}", self.get_contact, allow_head=False)
        router.add_patch("/v1/contacts/{number}", self.patch_contact)
        router.add_delete("/v1/contacts/{number}", self.delete_contact)
        router.add_get("/v1/opt-outs", self.get_opt_outs, allow_head=False)
        router.add_get("/v1/opt-outs/export.csv", self.export_opt_outs, allow_head=False)
        router.add_post("/v1/opt-outs", self.post_opt_out)
        router.add_delete("/v1/opt-outs", self.delete_opt_out)
        router.add_post("/v1/campaigns", self.post_campaign)
        router.add_get("/v1/campaigns", self.get_campaigns, allow_head=False)
        router.add_get("/v1/campaigns/{id}", self.get_campaign, allow_head=False)
        router.add_put("/v1/campaigns/{id}", self.put_campaign)
        for action in ("start", "pause", "resume", "cancel"):
            router.add_post(f"/v1/campaigns/{{id}}/{action}", self._action(action))
        router.add_get("/v1/campaigns/{id}/stats", self.get_stats, allow_head=False)
        router.add_get("/v1/campaigns/{id}/clicks.csv", self.get_clicks_csv, allow_head=False)
        router.add_post("/v1/campaigns/{id}/send-to-responders", self.post_send_to_responders)

    # -- lists and imports -----------------------------------------------------------------

    async def post_list(self, request: web.Request) -> web.Response:
        parts = self.parts
        body = _object(parse_json(await read_body(request)))
        errors = [FieldError(k, "unknown field") for k in body if k != "name"]
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_LIST_NAME:
            errors.append(FieldError("name", f"must be 1 to {MAX_LIST_NAME} characters"))
        if errors:
            raise invalid(errors)
        assert isinstance(name, str)
        account = principal(request).account
        created = await parts.campaigns.create_list(name.strip(), parts.clock(), account)
        return json_response(_list_json(created), 201)

    async def get_lists(self, request: web.Request) -> web.Response:
        who = principal(request)
        lists = [x for x in await self.parts.campaigns.contact_lists() if who.owns(x.account)]
        return json_response({"items": [_list_json(x) for x in lists]})

    async def _list_id(self, request: web.Request) -> int:
        raw = request.match_info["id"]
        if raw.isdecimal() and len(raw) < 19:
            found = await self.parts.campaigns.get_list(int(raw))
            if found is not None and principal(request).owns(found.account):
                return found.id
        raise ApiError(404, NOT_FOUND, "no list with this id")

    async def get_list(self, request: web.Request) -> web.Response:
        list_id = await self._list_id(request)
        found = await self.parts.campaigns.get_list(list_id)
        assert found is not None
        return json_response(_list_json(found))

    async def delete_list(self, request: web.Request) -> web.Response:
        parts = self.parts
        list_id = await self._list_id(request)
        try:
            removed = await parts.campaigns.delete_list(list_id, parts.clock())
        except ListInUse as exc:
            raise ApiError(409, CONFLICT, str(exc)) from None
        if removed is None:  # deleted meanwhile
            raise ApiError(404, NOT_FOUND, "no list with this id")
        log_event(log, "list.deleted", list_id=list_id, members=removed)
        return json_response({"id": list_id, "deleted": True, "members_removed": removed})

    async def post_import(self, request: web.Request) -> web.Response:
        parts = self.parts
        list_id = await self._list_id(request)
        if request.content_type not in ("text/csv", "application/csv"):
            raise ApiError(
                415,
                UNSUPPORTED_MEDIA_TYPE,
                f"send the file as text/csv (got {request.content_type})",
            )
        if request.content_length is not None and request.content_length > MAX_IMPORT_BYTES:
            raise ApiError(413, BODY_TOO_LARGE, f"a CSV import is at most {MAX_IMPORT_BYTES} bytes")
        source = request.query.get("opt_in_source", DEFAULT_OPT_IN_SOURCE)
        if not source or len(source) > MAX_OPT_IN_SOURCE or not source.isprintable():
            raise invalid(
                [FieldError("opt_in_source", f"must be 1 to {MAX_OPT_IN_SOURCE} characters")]
            )
        job = await parts.importer.begin(list_id, self._chunks(request), source)
        return json_response({"import_id": job.id, "status": job.status, "list_id": list_id}, 202)

    @staticmethod
    async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            total += len(chunk)
            if total > MAX_IMPORT_BYTES:
                raise ApiError(
                    413, BODY_TOO_LARGE, f"a CSV import is at most {MAX_IMPORT_BYTES} bytes"
                )
            yield chunk

    async def get_import(self, request: web.Request) -> web.Response:
        import_id = request.match_info["id"]
        job = None
        if _ID.fullmatch(import_id):
            job = await self.parts.campaigns.get_import(import_id)
        if job is not None and not principal(request).admin:
            into = await self.parts.campaigns.get_list(job.list_id)
            if into is None or not principal(request).owns(into.account):
                job = None
        if job is None:
            raise ApiError(404, NOT_FOUND, "no import with this id")
        return json_response(_import_json(job))

    # -- contacts and opt-outs -------------------------------------------------------------

    def _number(self, raw: object, path: str) -> str:
        if not isinstance(raw, str) or not raw:
            raise invalid([FieldError(path, "must be a phone number")])
        try:
            return self.parts.numbers.e164(raw)
        except check.Invalid as exc:
            raise invalid([FieldError(path, str(exc))]) from None

    async def get_contact(self, request: web.Request) -> web.Response:
        parts = self.parts
        try:
            number = parts.numbers.e164(request.match_info["number"])
        except check.Invalid:
            raise ApiError(404, NOT_FOUND, "no contact with this number") from None
        found = (await parts.campaigns.contacts_by_number([number])).get(number)
        memberships = await parts.campaigns.memberships(number)
        opt_outs = await parts.campaigns.opt_outs_of(number)
        who = principal(request)
        if not who.admin:
            # Only through the account's own lists: a number in none of them is unknown to it.
            own = {x.id for x in await parts.campaigns.contact_lists() if x.account == who.account}
            memberships = [m for m in memberships if m.list_id in own]
            if not memberships:
                raise ApiError(404, NOT_FOUND, "no contact with this number")
        if found is None and not opt_outs:
            raise ApiError(404, NOT_FOUND, "no contact with this number")
        return json_response(
            {
                "number": number,
                "name": found.name if found else "",
                "attributes": found.attributes if found else {},
                "tags": await parts.campaigns.tags_of(number),
                "lists": [
                    {
                        "id": m.list_id,
                        "name": m.list_name,
                        "opt_in_source": m.opt_in_source,
                        "opt_in_at": iso(m.opt_in_at),
                    }
                    for m in memberships
                ],
                "opt_outs": [
                    {"sender": o.sender, "source": o.source, "at": iso(o.at)} for o in opt_outs
                ],
            }
        )

    async def _own_lists(self, request: web.Request) -> list[int] | None:
        """The ids of the token's account's lists; None for an admin (every contact)."""
        who = principal(request)
        if who.admin:
            return None
        lists = await self.parts.campaigns.contact_lists()
        return [x.id for x in lists if x.account == who.account]

    async def search_contacts(self, request: web.Request) -> web.Response:
        parts = self.parts
        query = request.query
        errors = _unknown(query, CONTACT_SEARCH_PARAMS)
        q = query.get("q")
        if q is not None:
            q = _plus(q).strip()
            if not q or len(q) > MAX_QUERY or not q.isprintable():
                errors.append(FieldError("query.q", f"must be 1 to {MAX_QUERY} characters"))
        after = _plus(query.get("after", ""))
        if len(after) > MAX_QUERY or not after.isprintable():
            errors.append(FieldError("query.after", "must be a cursor from 'next'"))
        limit = _limit(query, errors)
        lists = await self._own_lists(request)
        list_id = query.get("list_id")
        if list_id is not None:
            if not list_id.isdecimal() or len(list_id) > 18:
                errors.append(FieldError("query.list_id", "must be a list id"))
            else:
                found = await parts.campaigns.get_list(int(list_id))
                if found is None or not principal(request).owns(found.account):
                    errors.append(FieldError("query.list_id", f"no list with id {list_id}"))
                else:
                    lists = [found.id]
        if errors:
            raise invalid(errors)
        found_contacts = await parts.campaigns.search_contacts(q, lists, after, limit + 1)
        more = len(found_contacts) > limit
        found_contacts = found_contacts[:limit]
        return json_response(
            {
                "items": [
                    {"number": c.number, "name": c.name, "attributes": c.attributes}
                    for c in found_contacts
                ],
                "next": found_contacts[-1].number if more else None,
            }
        )

    async def _visible_number(self, request: web.Request) -> tuple[str, list[int] | None]:
        """The path's number in E.164, and the token's lists holding it (None: admin);
        404 when the token cannot see this contact."""
        try:
            number = self.parts.numbers.e164(request.match_info["number"])
        except check.Invalid:
            raise ApiError(404, NOT_FOUND, "no contact with this number") from None
        lists = await self._own_lists(request)
        if lists is not None:
            memberships = await self.parts.campaigns.memberships(number)
            lists = [m.list_id for m in memberships if m.list_id in lists]
            if not lists:
                raise ApiError(404, NOT_FOUND, "no contact with this number")
        return number, lists

    async def patch_contact(self, request: web.Request) -> web.Response:
        parts = self.parts
        number, _ = await self._visible_number(request)
        body = _object(parse_json(await read_body(request)))
        errors = [FieldError(k, "unknown field") for k in body if k not in ("name", "attributes")]
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > MAX_CONTACT_NAME):
            errors.append(FieldError("name", f"must be a string of at most {MAX_CONTACT_NAME}"))
        attributes = body.get("attributes", {})
        patch: dict[str, str | None] = {}
        if not isinstance(attributes, dict):
            errors.append(FieldError("attributes", "must be an object of strings (null removes)"))
        elif len(attributes) > MAX_COLUMNS:
            errors.append(FieldError("attributes", f"at most {MAX_COLUMNS} attributes"))
        else:
            for key, value in attributes.items():
                where = f"attributes.{key}"
                bad_key = key != key.strip().lower() or not key or key in ("number", "name")
                if bad_key or len(key) > MAX_ATTRIBUTE_KEY or not key.isprintable():
                    errors.append(
                        FieldError(where, "a key is 1 to 64 lower-case characters, not number/name")
                    )
                elif value is not None and (
                    not isinstance(value, str) or len(value) > MAX_ATTRIBUTE_CHARS
                ):
                    errors.append(
                        FieldError(where, f"must be a string of at most {MAX_ATTRIBUTE_CHARS}")
                    )
                else:
                    patch[key] = value or None  # an empty value removes, as in imports
        if errors:
            raise invalid(errors)
        assert name is None or isinstance(name, str)
        changed = await parts.campaigns.update_contact(number, name, patch, parts.clock())
        if changed is None:
            raise ApiError(404, NOT_FOUND, "no contact with this number")
        return json_response(
            {"number": changed.number, "name": changed.name, "attributes": changed.attributes}
        )

    async def delete_contact(self, request: web.Request) -> web.Response:
        parts = self.parts
        number, lists = await self._visible_number(request)
        if not await parts.campaigns.delete_contact(number, lists):
            raise ApiError(404, NOT_FOUND, "no contact with this number")
        log_event(log, "contact.deleted", number=number, everywhere=lists is None)
        return json_response({"number": number, "deleted": True})

    async def _opt_out_page(
        self, request: web.Request, after: tuple[str, str], limit: int
    ) -> list[tuple[str, OptOutRecord]]:
        return await self.parts.campaigns.opt_outs(await self._own_lists(request), after, limit)

    async def get_opt_outs(self, request: web.Request) -> web.Response:
        query = request.query
        errors = _unknown(query, OPT_OUT_LIST_PARAMS)
        limit = _limit(query, errors)
        after = _opt_out_cursor(query.get("after"), errors)
        if errors:
            raise invalid(errors)
        page = await self._opt_out_page(request, after, limit + 1)
        more = len(page) > limit
        page = page[:limit]
        return json_response(
            {
                "items": [_opt_out_json(n, o) for n, o in page],
                "next": f"{page[-1][0]}|{page[-1][1].sender or ALL_SENDERS}" if more else None,
            }
        )

    async def export_opt_outs(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        errors = _unknown(query, frozenset({"bom"}))
        bom = query.get("bom", "1")
        if bom not in ("0", "1"):
            errors.append(FieldError("query.bom", "must be 0 or 1"))
        if errors:
            raise invalid(errors)
        lists = await self._own_lists(request)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.parts.clock()))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="opt-outs-{stamp}.csv"',
                "Cache-Control": "no-store",
            }
        )
        await response.prepare(request)
        written = 0
        try:
            await response.write(csvfile.table([OPT_OUT_COLUMNS], bom=bom == "1"))
            after = ("", "")
            while True:
                page = await self.parts.campaigns.opt_outs(lists, after, EXPORT_PAGE)
                if not page:
                    break
                await response.write(
                    csvfile.table(
                        [
                            n,
                            o.sender or "",
                            o.source,
                            csvfile.iso_utc(o.at),
                        ]
                        for n, o in page
                    )
                )
                written += len(page)
                after = (page[-1][0], page[-1][1].sender or ALL_SENDERS)
            await response.write_eof()
        except Exception as exc:  # headers are gone: cut, so the file does not look whole
            log_event(log, "api.export_interrupted", logging.WARNING, rows=written, error=repr(exc))
            if request.transport is not None:
                request.transport.close()
            return response
        log_event(log, "api.opt_outs_export", rows=written)
        return response

    def _opt_out_request(self, body: object) -> tuple[str, str | None]:
        item = _object(body)
        errors = [FieldError(k, "unknown field") for k in item if k not in ("number", "sender")]
        if errors:
            raise invalid(errors)
        number = self._number(item.get("number"), "number")
        sender = item.get("sender")
        if sender is not None:
            if not isinstance(sender, str):
                raise invalid([FieldError("sender", "must be a string or null")])
            try:
                sender = check.sender(sender, self.parts.numbers)
            except check.Invalid as exc:
                raise invalid([FieldError("sender", str(exc))]) from None
        return number, sender

    async def post_opt_out(self, request: web.Request) -> web.Response:
        parts = self.parts
        number, sender = self._opt_out_request(parse_json(await read_body(request)))
        now = parts.clock()
        await parts.store.add_opt_out(number, sender, "api", now)
        if parts.on_opt_out is not None:
            parts.on_opt_out(number, sender)
        return json_response(
            {"number": number, "sender": sender, "source": "api", "at": iso(now)}, 201
        )

    async def delete_opt_out(self, request: web.Request) -> web.Response:
        parts = self.parts
        number, sender = self._opt_out_request(parse_json(await read_body(request)))
        await parts.store.remove_opt_out(number, sender)
        return json_response({"number": number, "sender": sender, "removed": True})

    # -- campaigns -------------------------------------------------------------------------

    async def _campaign(self, request: web.Request) -> CampaignRecord:
        campaign_id = request.match_info["id"]
        found = None
        if _ID.fullmatch(campaign_id):
            found = await self.parts.campaigns.get_campaign(campaign_id)
        if found is None or not principal(request).owns(found.account):
            raise ApiError(404, NOT_FOUND, "no campaign with this id")
        return found

    async def _campaign_body(self, request: web.Request) -> object:
        """A POST or PUT body, with its ``template_id``'s text; tags only for an admin."""
        body = parse_json(await read_body(request))
        who = principal(request)
        if not who.admin and isinstance(body, dict) and body.get("tags"):
            raise invalid(
                [
                    FieldError(
                        "tags",
                        "an audience by tag reaches every account's contacts: only an admin"
                        " token may use one; use lists",
                    )
                ]
            )
        if isinstance(body, dict) and "template_id" in body:
            body = await self._from_template(body, who.admin, who.account)
        return body

    async def post_campaign(self, request: web.Request) -> web.Response:
        body = await self._campaign_body(request)
        who = principal(request)
        try:
            created = await self.parts.service.create(body, account=who.account, any_list=who.admin)
        except FieldErrors as exc:
            raise invalid(exc.errors) from None
        return json_response(campaign_json(created), 201)

    async def put_campaign(self, request: web.Request) -> web.Response:
        """Edit a draft: the body replaces its fields (those of POST /v1/campaigns)."""
        campaign = await self._campaign(request)
        body = await self._campaign_body(request)
        who = principal(request)
        try:
            changed = await self.parts.service.edit(campaign, body, any_list=who.admin)
        except FieldErrors as exc:
            raise invalid(exc.errors) from None
        except TransitionError as exc:
            raise ApiError(409, INVALID_STATE, str(exc)) from None
        return json_response(campaign_json(changed))

    async def _from_template(
        self, body: dict[str, Any], admin: bool, account: str
    ) -> dict[str, Any]:
        """The body with the text of its ``template_id`` (the account's template)."""
        template_id = body["template_id"]
        found = None
        if isinstance(template_id, str) and _ID.fullmatch(template_id):
            found = await self.parts.campaigns.get_template(template_id)
        if found is None or not (admin or found.account == account):
            raise invalid([FieldError("template_id", f"no template with id {template_id!r}")])
        if body.get("text") is not None:
            raise invalid([FieldError("text", "give text or template_id, not both")])
        rest = {k: v for k, v in body.items() if k != "template_id"}
        return {**rest, "text": found.text}

    async def get_campaigns(self, request: web.Request) -> web.Response:
        who = principal(request)
        found = [c for c in await self.parts.campaigns.campaigns() if who.owns(c.account)]
        return json_response({"items": [campaign_json(c) for c in found]})

    async def get_campaign(self, request: web.Request) -> web.Response:
        return json_response(campaign_json(await self._campaign(request)))

    def _action(self, action: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            campaign = await self._campaign(request)
            try:
                changed = await self.parts.service.act(campaign.id, action)
            except TransitionError as exc:
                raise ApiError(409, INVALID_STATE, str(exc)) from None
            if changed is None:
                raise ApiError(404, NOT_FOUND, "no campaign with this id")
            return json_response(campaign_json(changed))

        handler.__name__ = f"campaign_{action}"
        return handler

    async def get_stats(self, request: web.Request) -> web.Response:
        campaign = await self._campaign(request)
        return json_response(await self.parts.service.stats(campaign))

    async def get_clicks_csv(self, request: web.Request) -> web.StreamResponse:
        """The campaign's click records (gateway.links) as streamed CSV, oldest first, with
        the interactions export's conventions (BOM unless ``bom=0``, formulas neutralised)."""
        campaign = await self._campaign(request)
        errors = [
            FieldError(f"query.{k}", "unknown parameter; allowed: bom")
            for k in request.query
            if k != "bom"
        ]
        bom_flag = request.query.get("bom", "1")
        if bom_flag not in ("0", "1"):
            errors.append(FieldError("query.bom", "must be 0 or 1"))
        if errors:
            raise invalid(errors)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="clicks-{campaign.id}.csv"',
                "Cache-Control": "no-store",
            }
        )
        await response.prepare(request)
        try:
            await response.write(csvfile.click_header(bom_flag == "1"))
            after: tuple[float, int] = (-1.0, 0)
            while True:
                page = await self.parts.campaigns.campaign_clicks(campaign.id, after, CLICKS_PAGE)
                if page:
                    await response.write(csvfile.click_rows(page))
                    after = (page[-1].at, page[-1].id)
                if len(page) < CLICKS_PAGE:
                    break
            await response.write_eof()
        except Exception:
            # The status line is gone: cut the connection so the file does not look whole.
            if request.transport is not None:
                request.transport.close()
        return response

    async def post_send_to_responders(self, request: web.Request) -> web.Response:
        source = await self._campaign(request)
        body = _object(parse_json(await read_body(request)))
        errors = [
            FieldError(k, "unknown field")
            for k in body
            if k not in ("name", "text", "keyword", "clicked")
        ]
        keyword = body.get("keyword")
        if keyword is not None and (not isinstance(keyword, str) or not keyword.strip()):
            errors.append(FieldError("keyword", "must be a keyword or null"))
        clicked = body.get("clicked")
        if clicked is not None and not isinstance(clicked, bool):
            errors.append(FieldError("clicked", "must be true, false or null"))
        elif clicked and keyword is not None:
            errors.append(
                FieldError("clicked", "an audience of clickers takes no keyword (replies do)")
            )
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            errors.append(FieldError("name", "must be a string or null"))
        if errors:
            raise invalid(errors)
        spec = source.spec
        request_body = {
            "name": name
            or f"{source.name}: "
            + ("clicked" if clicked else "responders" + (f" ({keyword})" if keyword else "")),
            "from": source.sender,
            "text": body.get("text"),
            "tags": [],
            "lists": [],
            "two_way": spec.get("two_way", False),
            "keywords": spec.get("keywords", []),
            "courtesy_reply": spec.get("courtesy_reply"),
            "reply_window_days": spec.get("reply_window_days"),
            "send_window": spec.get("send_window"),
            "tps": spec.get("tps"),
            "track_links": spec.get("track_links", False),
        }
        try:
            created = await self.parts.service.create(
                request_body,
                responders_of={
                    "campaign_id": source.id,
                    "keyword": keyword,
                    **({"clicked": True} if clicked else {}),
                },
                account=source.account,
            )
        except FieldErrors as exc:
            raise invalid(exc.errors) from None
        return json_response(campaign_json(created), 201)
