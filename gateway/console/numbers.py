"""The Inbound numbers page: our numbers with their keyword rules, courtesy reply, help text
and confirmations (``GET /v1/numbers``, the operator's: scope admin), one number's settings
edited (``PUT /v1/numbers/{number}``: numbers made through the API; a number of the
configuration file is changed there, and the page shows it read-only), a number added or
removed (``DELETE /v1/numbers/{number}``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.console.apiclient import ApiAnswer, path
from gateway.console.campaign_form import (
    ACTION_TYPES,
    field_errors,
    number_body,
    number_values,
    rule_rows,
)
from gateway.http.auth import CONSOLE_PREFIX
from gateway.logs import log_event

if TYPE_CHECKING:
    from gateway.console.sessions import Session
    from gateway.console.web import Console

log = logging.getLogger("smsgw.console")


def _details(answer: ApiAnswer) -> list[dict[str, Any]]:
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


class NumberPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get(f"{CONSOLE_PREFIX}/numbers", self.numbers_page, allow_head=False)
        r.add_post(f"{CONSOLE_PREFIX}/numbers", self.number_new)
        r.add_get(f"{CONSOLE_PREFIX}/numbers/{{number}}", self.number_page, allow_head=False)
        r.add_post(f"{CONSOLE_PREFIX}/numbers/{{number}}", self.number_save)
        r.add_post(f"{CONSOLE_PREFIX}/numbers/{{number}}/delete", self.number_delete)

    async def numbers_page(self, request: web.Request) -> web.Response:
        c = self.console
        session = c._page_session(request)
        return await self._numbers(request, session, 200, "")

    async def _numbers(
        self, request: web.Request, session: Session, status: int, error: str
    ) -> web.Response:
        c = self.console
        answer = await c.api.call(request, session.token, "GET", "/v1/numbers")
        body = answer.body if answer.ok and isinstance(answer.body, dict) else {}
        if not answer.ok and not error:
            status, error = answer.status, answer.error_message
        return c._page(
            "numbers.html",
            session,
            status=status,
            title="Inbound numbers",
            nav="numbers",
            items=body.get("items", []),
            error=error,
        )

    async def number_new(self, request: web.Request) -> web.Response:
        """The form for a number not made yet (saving it PUTs it)."""
        c = self.console
        session, form, refused = await c._signed_form(request)
        if refused is not None:
            return refused
        number = str(form.get("number", "")).strip()
        if not number:
            return await self._numbers(request, session, 400, "Give the number to add.")
        found = await c.api.call(request, session.token, "GET", path("/v1/numbers/{n}", n=number))
        if found.ok:
            raise web.HTTPSeeOther(path(f"{CONSOLE_PREFIX}/numbers/{{n}}", n=number))
        return self._form(session, number, None, {"rules": []}, [], "", 200)

    async def number_page(self, request: web.Request) -> web.Response:
        c = self.console
        session = c._page_session(request)
        number = request.match_info["number"]
        found = await c.api.call(request, session.token, "GET", path("/v1/numbers/{n}", n=number))
        if not found.ok or not isinstance(found.body, dict):
            return c._page(
                "refused.html",
                session,
                status=found.status,
                title=f"Number {number}",
                nav="numbers",
                reason=found.error_message,
            )
        return self._form(session, number, found.body, number_values(found.body), [], "", 200)

    def _form(
        self,
        session: Session,
        number: str,
        entry: dict[str, Any] | None,
        values: dict[str, Any],
        errors: list[dict[str, Any]],
        error: str,
        status: int,
    ) -> web.Response:
        return self.console._page(
            "number.html",
            session,
            status=status,
            title=f"Number {number}",
            nav="numbers",
            number=number,
            entry=entry,
            editable=entry is None or entry.get("source") == "api",
            values=values,
            rules=rule_rows(values),
            action_types=ACTION_TYPES,
            errors=errors,
            errs=field_errors(errors),
            error=error,
        )

    async def number_save(self, request: web.Request) -> web.Response:
        """PUT /v1/numbers/{number} with the form: the number's settings replaced whole."""
        c = self.console
        session, form, refused = await c._signed_form(request)
        if refused is not None:
            return refused
        number = request.match_info["number"]
        body, values = number_body(form)
        one = path("/v1/numbers/{n}", n=number)
        answer = await c.api.call(request, session.token, "PUT", one, body)
        if answer.ok:
            log_event(log, "console.number_saved", token=session.name, number=number)
            raise web.HTTPSeeOther(path(f"{CONSOLE_PREFIX}/numbers/{{n}}", n=number))
        found = await c.api.call(request, session.token, "GET", one)
        entry = found.body if found.ok and isinstance(found.body, dict) else None
        return self._form(
            session, number, entry, values, _details(answer), answer.error_message, answer.status
        )

    async def number_delete(self, request: web.Request) -> web.Response:
        c = self.console
        session, _form, refused = await c._signed_form(request)
        if refused is not None:
            return refused
        number = request.match_info["number"]
        answer = await c.api.call(
            request, session.token, "DELETE", path("/v1/numbers/{n}", n=number)
        )
        if answer.ok:
            log_event(log, "console.number_deleted", token=session.name, number=number)
            raise web.HTTPSeeOther(f"{CONSOLE_PREFIX}/numbers")
        return await self._numbers(
            request, session, answer.status, f"Could not remove {number}: {answer.error_message}"
        )
