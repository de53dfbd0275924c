"""``/v1/templates``: saved message templates and their preview (gateway.campaigns.preview).

A template belongs to the account of the token that made it, as lists and campaigns do
(gateway.http.auth): another account's is answered 404. ``POST /v1/templates/{id}/preview``
renders it for one contact (``contact``: a number, or an object of fields) and, with
``lists`` (the account's), finds the longest rendering across their members, read a page at
a time (bounded memory whatever the list's size).
"""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from gateway.campaigns.parts import CampaignParts
from gateway.campaigns.preview import Links, TemplatePreview
from gateway.campaigns.service import MAX_TEXT, iso
from gateway.core import validation as check
from gateway.core.errors import FieldError
from gateway.core.model import new_message_id
from gateway.http.auth import principal
from gateway.http.body import parse_json, read_body
from gateway.http.errors import NOT_FOUND, ApiError, invalid, json_response
from gateway.store.base import Contact
from gateway.store.campaign_base import MessageTemplate

MAX_NAME: Final = 200
MAX_LISTS: Final = 100
_ID: Final = re.compile(r"[0-9a-f]{26}")
SAMPLE_NUMBER: Final = "+33612345678"
"""The number of the sample contact when the preview is given fields and no number."""


def template_json(t: MessageTemplate) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "text": t.text,
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    }


def _fields(body: object) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise invalid([FieldError("", "must be a JSON object")])
    errors = [FieldError(k, "unknown field") for k in body if k not in ("name", "text")]
    name, text = body.get("name"), body.get("text")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        errors.append(FieldError("name", f"must be 1 to {MAX_NAME} characters"))
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        errors.append(FieldError("text", f"must be 1 to {MAX_TEXT} characters"))
    if errors:
        raise invalid(errors)
    assert isinstance(name, str) and isinstance(text, str)
    return name.strip(), text


class TemplatesApi:
    def __init__(self, parts: CampaignParts | None) -> None:
        self._parts = parts

    @property
    def parts(self) -> CampaignParts:
        from gateway.http.campaigns import CampaignsApi

        return CampaignsApi(self._parts).parts  # the same 503 when campaigns are not wired

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/templates", self.post_template)
        router.add_get("/v1/templates", self.get_templates, allow_head=False)
        router.add_get("/v1/templates/{id}", self.get_template, allow_head=False)
        router.add_put("/v1/templates/{id}", self.put_template)
        router.add_delete("/v1/templates/{id}", self.delete_template)
        router.add_post("/v1/templates/{id}/preview", self.post_preview)

    async def _template(self, request: web.Request) -> MessageTemplate:
        raw = request.match_info["id"]
        found = await self.parts.campaigns.get_template(raw) if _ID.fullmatch(raw) else None
        if found is None or not principal(request).owns(found.account):
            raise ApiError(404, NOT_FOUND, "no template with this id")
        return found

    async def post_template(self, request: web.Request) -> web.Response:
        parts = self.parts
        name, text = _fields(parse_json(await read_body(request)))
        now = parts.clock()
        account = principal(request).account
        made = MessageTemplate(new_message_id(now), account, name, text, now, now)
        await parts.campaigns.save_template(made)
        return json_response(template_json(made), 201)

    async def get_templates(self, request: web.Request) -> web.Response:
        who = principal(request)
        found = await self.parts.campaigns.templates(None if who.admin else who.account)
        return json_response({"items": [template_json(t) for t in found]})

    async def get_template(self, request: web.Request) -> web.Response:
        return json_response(template_json(await self._template(request)))

    async def put_template(self, request: web.Request) -> web.Response:
        found = await self._template(request)
        name, text = _fields(parse_json(await read_body(request)))
        changed = MessageTemplate(
            found.id, found.account, name, text, found.created_at, self.parts.clock()
        )
        await self.parts.campaigns.save_template(changed)
        return json_response(template_json(changed))

    async def delete_template(self, request: web.Request) -> web.Response:
        found = await self._template(request)
        if not await self.parts.campaigns.delete_template(found.id):
            raise ApiError(404, NOT_FOUND, "no template with this id")
        return web.Response(status=204)

    async def post_preview(self, request: web.Request) -> web.Response:
        found = await self._template(request)
        parts = self.parts
        who = principal(request)
        raw = await read_body(request)
        body = parse_json(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise invalid([FieldError("", "must be a JSON object")])
        errors = [FieldError(k, "unknown field") for k in body if k not in ("contact", "lists")]
        sample = await self._sample(body.get("contact"), errors)
        lists = body.get("lists") or []
        if not isinstance(lists, list) or len(lists) > MAX_LISTS:
            errors.append(FieldError("lists", f"must be an array of at most {MAX_LISTS} list ids"))
            lists = []
        for i, list_id in enumerate(lists):
            known = None
            if isinstance(list_id, int) and not isinstance(list_id, bool):
                known = await parts.campaigns.get_list(list_id)
            if known is None or not who.owns(known.account):
                errors.append(FieldError(f"lists[{i}]", f"no list with id {list_id}"))
        if errors:
            raise invalid(errors)
        runner = parts.service.runner
        links = runner.links
        preview = TemplatePreview(
            found.text,
            lambda text: runner.intake.count(text, ""),
            Links(links.prefix, links.code_length) if links is not None else None,
        )
        number, contact = sample
        out: dict[str, Any] = {"sample": preview.render(number, contact).as_json()}
        if lists:

            async def page(after: str, limit: int) -> list[Contact]:
                return await parts.campaigns.search_contacts(None, lists, after, limit)

            longest, count = await preview.longest(page)
            out["audience"] = {
                "contacts": count,
                "longest": longest.as_json() if longest is not None else None,
            }
        return json_response(out)

    async def _sample(self, value: object, errors: list[FieldError]) -> tuple[str, Contact | None]:
        """The contact to render for: a number (its stored fields; a number without a
        contact renders with empty fields), an object of fields, or none (empty fields)."""
        if value is None:
            return SAMPLE_NUMBER, None
        if isinstance(value, str):
            try:
                number = self.parts.numbers.e164(value)
            except check.Invalid as exc:
                errors.append(FieldError("contact", str(exc)))
                return SAMPLE_NUMBER, None
            found = await self.parts.campaigns.contacts_by_number([number])
            return number, found.get(number)
        if isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_TEXT
            for k, v in value.items()
        ):
            fields = dict(value)
            number = fields.pop("number", SAMPLE_NUMBER)
            name = fields.pop("name", "")
            return number, Contact(number, name, fields, (), 0.0)
        errors.append(FieldError("contact", "must be a number or an object of string fields"))
        return SAMPLE_NUMBER, None
