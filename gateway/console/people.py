"""The Contacts and Opt-outs pages: contacts searched by number or name and by list
(``GET /v1/contacts``), one contact with its lists, tags and opt-outs
(``GET /v1/contacts/{number}``), the opt-outs (``GET /v1/opt-outs``, and its CSV export
relayed), an opt-out added (``POST /v1/opt-outs``) or lifted (``DELETE /v1/opt-outs``: the
API keeps that to an admin token). All with the signed-in token, as any client."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

from aiohttp import web

from gateway.console.apiclient import path
from gateway.http.auth import CONSOLE_PREFIX
from gateway.logs import log_event

if TYPE_CHECKING:
    from gateway.console.web import Console

log = logging.getLogger("smsgw.console")

PAGE_SIZE: Final = 50
"""Contacts or opt-outs a page."""


class PeoplePages:
    def __init__(self, console: Console) -> None:
        self.console = console

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get(f"{CONSOLE_PREFIX}/contacts", self.contacts_page, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/contacts/{{number}}", self.contact_page, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/opt-outs", self.opt_outs_page, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/opt-outs.csv", self.opt_outs_csv, allow_head=False)
        r.add_post(f"{CONSOLE_PREFIX}/opt-outs", self.opt_out_add)
        r.add_post(f"{CONSOLE_PREFIX}/opt-outs/lift", self.opt_out_lift)

    async def contacts_page(self, request: web.Request) -> web.Response:
        """Contacts of the token's lists (an admin's: every contact), by number or name."""
        c = self.console
        session = c._page_session(request)
        q = request.query.get("q", "").strip()
        list_id = request.query.get("list_id", "").strip()
        params = {"limit": str(PAGE_SIZE)}
        if q:
            params["q"] = q
        if list_id:
            params["list_id"] = list_id
        answer, lists = await asyncio.gather(
            c._api_page(request, session, "/v1/contacts", params),
            c.api.call(request, session.token, "GET", "/v1/lists"),
        )
        body = answer.body if answer.ok and isinstance(answer.body, dict) else {}
        following = None
        if body.get("next"):
            following = urlencode(
                {k: v for k, v in (("q", q), ("list_id", list_id)) if v} | {"after": body["next"]}
            )
        return c._page(
            "contacts.html",
            session,
            status=answer.status if not answer.ok else 200,
            title="Contacts",
            nav="contacts",
            q=q,
            list_id=list_id,
            lists=lists.body.get("items", []) if lists.ok and isinstance(lists.body, dict) else [],
            items=body.get("items", []),
            following=following,
            error="" if answer.ok else answer.error_message,
        )

    async def contact_page(self, request: web.Request) -> web.Response:
        return await self._contact(request, request.match_info["number"], 200, "")

    async def _contact(
        self, request: web.Request, number: str, status: int, error: str
    ) -> web.Response:
        c = self.console
        session = c._page_session(request)
        found = await c.api.call(
            request, session.token, "GET", path("/v1/contacts/{number}", number=number)
        )
        contact = found.body if found.ok and isinstance(found.body, dict) else None
        if contact is None and not error:
            status, error = found.status, found.error_message
        return c._page(
            "contact.html",
            session,
            status=status,
            title=f"Contact {number}",
            nav="contacts",
            number=number,
            contact=contact,
            error=error,
        )

    async def opt_outs_page(self, request: web.Request) -> web.Response:
        return await self._opt_outs(request, 200, "", {})

    async def _opt_outs(
        self, request: web.Request, status: int, error: str, typed: dict[str, str]
    ) -> web.Response:
        c = self.console
        session = c._page_session(request)
        answer = await c._api_page(request, session, "/v1/opt-outs", {"limit": str(PAGE_SIZE)})
        body = answer.body if answer.ok and isinstance(answer.body, dict) else {}
        if not answer.ok and not error:
            status, error = answer.status, answer.error_message
        return c._page(
            "opt_outs.html",
            session,
            status=status,
            title="Opt-outs",
            nav="opt-outs",
            items=body.get("items", []),
            following=urlencode({"after": body["next"]}) if body.get("next") else None,
            typed=typed,
            error=error,
        )

    async def opt_outs_csv(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/opt-outs/export.csv, relayed as the API streams it."""
        session = self.console._page_session(request)
        return await self.console.api.relay(request, session.token, "/v1/opt-outs/export.csv")

    async def opt_out_add(self, request: web.Request) -> web.Response:
        """POST /v1/opt-outs: messages to this number stop (from one sender, or every one)."""
        return await self._opt_out_change(request, "POST", "console.opt_out_added")

    async def opt_out_lift(self, request: web.Request) -> web.Response:
        """DELETE /v1/opt-outs: the API takes it from an admin token only (lifting a STOP
        overrides the subscriber for every account)."""
        return await self._opt_out_change(request, "DELETE", "console.opt_out_lifted")

    async def _opt_out_change(self, request: web.Request, method: str, event: str) -> web.Response:
        c = self.console
        session, form, refused = await c._signed_form(request)
        if refused is not None:
            return refused
        number = str(form.get("number", "")).strip()
        sender = str(form.get("sender", "")).strip()
        body = {"number": number, "sender": sender or None}
        back = form.get("back") == "contact"
        answer = await c.api.call(request, session.token, method, "/v1/opt-outs", body)
        if answer.ok:
            log_event(log, event, token=session.name, number=number)
            if back:
                raise web.HTTPSeeOther(path(f"{CONSOLE_PREFIX}/contacts/{{n}}", n=number))
            raise web.HTTPSeeOther(f"{CONSOLE_PREFIX}/opt-outs")
        problem = answer.error_message
        error = answer.body.get("error") if isinstance(answer.body, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        if isinstance(details, list) and details:
            problem += ": " + "; ".join(
                f"{d.get('path')}: {d.get('message')}" for d in details if isinstance(d, dict)
            )
        if back:
            return await self._contact(request, number, answer.status, problem)
        return await self._opt_outs(
            request, answer.status, problem, {"number": number, "sender": sender}
        )
