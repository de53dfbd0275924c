"""What the Interactions page does with its rows, through the API (scope admin, as there):

- CSV: every interaction matching the filters, those new since the last download of the
  same filters (``new=1``), or the rows ticked (``ids=``): ``GET /v1/interactions/export.csv``
  relayed as it streams;
- e-mail the ticked rows (or, none ticked, the filters' rows) as that CSV:
  ``POST /v1/interactions/email``;
- one interaction with its thread (``GET /v1/interactions/{id}``), a helpdesk reply to it
  (``POST /v1/interactions/{id}/reply``) and its care state and assignee
  (``PATCH /v1/interactions/{id}``);
- a new campaign (a draft) to those who replied to a campaign, optionally with one keyword
  (``POST /v1/campaigns/{id}/send-to-responders``): what the API offers for "send to those
  who interacted".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from aiohttp import web

from gateway.console.apiclient import ApiAnswer, path
from gateway.http.auth import CONSOLE_PREFIX
from gateway.logs import log_event

if TYPE_CHECKING:
    from gateway.console.sessions import Session
    from gateway.console.web import Console

log = logging.getLogger("smsgw.console")

FILTERS: Final = ("number", "source", "campaign_id")
MAX_SELECTED: Final = 1000
"""gateway.http.interactions.MAX_EXPORT_IDS: the API takes at most this many ids."""
CARE_STATES: Final = ("open", "answered", "closed")


def _problem(answer: ApiAnswer) -> str:
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    text = answer.error_message
    if isinstance(details, list) and details:
        text += ": " + "; ".join(
            f"{d.get('path')}: {d.get('message')}" for d in details if isinstance(d, dict)
        )
    return text


def _ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdecimal() and len(v) < 19][:MAX_SELECTED]


class CarePages:
    def __init__(self, console: Console) -> None:
        self.console = console

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        p = CONSOLE_PREFIX
        r.add_get(f"{p}/interactions.csv", self.export_csv, allow_head=False)
        r.add_post(f"{p}/interactions/selected.csv", self.export_selected)
        r.add_post(f"{p}/interactions/email", self.email)
        r.add_post(f"{p}/interactions/send-to-responders", self.send_to_responders)
        r.add_get(f"{p}/interactions/{{id}}", self.interaction_page, allow_head=False)
        r.add_post(f"{p}/interactions/{{id}}/reply", self.reply)
        r.add_post(f"{p}/interactions/{{id}}/care", self.care)

    async def export_csv(self, request: web.Request) -> web.StreamResponse:
        """All the filters' interactions, or (``new=1``) those not downloaded yet with these
        filters by this token (the API keeps the mark)."""
        session = self.console._page_session(request)
        params = {k: request.query[k] for k in FILTERS if request.query.get(k, "").strip()}
        if request.query.get("new") == "1":
            params["new"] = "1"
        return await self.console.api.relay(
            request, session.token, f"/v1/interactions/export.csv?{urlencode(params)}"
        )

    async def export_selected(self, request: web.Request) -> web.StreamResponse:
        """The ticked rows (a POST: the selection form carries the CSRF token)."""
        c = self.console
        session, form, refused = await c._signed_form(request)
        if refused is not None:
            return refused
        ids = _ids([str(v) for v in form.getall("ids", [])])
        if not ids:
            return await c.interactions_view(
                request, session, 400, "Tick the interactions to download first."
            )
        query = urlencode({"ids": ",".join(map(str, ids))})
        return await c.api.relay(request, session.token, f"/v1/interactions/export.csv?{query}")

    async def email(self, request: web.Request) -> web.Response:
        c = self.console
        session, form, refused = await c._signed_form(request)
        if refused is not None:
            return refused
        to = [a.strip() for a in str(form.get("to", "")).replace(";", ",").split(",") if a.strip()]
        body: dict[str, Any] = {"to": to}
        ids = _ids([str(v) for v in form.getall("ids", [])])
        if ids:
            body["ids"] = ids
        else:
            body.update(
                {k: str(form.get(k)).strip() for k in FILTERS if str(form.get(k, "")).strip()}
            )
        answer = await c.api.call(request, session.token, "POST", "/v1/interactions/email", body)
        if not answer.ok:
            return await c.interactions_view(
                request, session, answer.status, f"The e-mail was not sent: {_problem(answer)}"
            )
        sent = answer.body if isinstance(answer.body, dict) else {}
        log_event(log, "console.interactions_emailed", token=session.name, rows=sent.get("rows"))
        note = f"Sent {sent.get('rows', 0)} interactions to {', '.join(to)}" + (
            " (the first ones: the attachment is bounded)." if sent.get("truncated") else "."
        )
        return await c.interactions_view(request, session, 200, "", note)

    async def send_to_responders(self, request: web.Request) -> web.Response:
        """A new draft to those who replied to the filtered campaign (with one keyword, or
        any); the new campaign's page opens, to check and start it."""
        c = self.console
        session, form, refused = await c._signed_form(request)
        if refused is not None:
            return refused
        campaign_id = str(form.get("campaign_id", "")).strip()
        body: dict[str, Any] = {"text": str(form.get("text", ""))}
        keyword = str(form.get("keyword", "")).strip()
        if keyword:
            body["keyword"] = keyword
        answer = await c.api.call(
            request,
            session.token,
            "POST",
            path("/v1/campaigns/{id}/send-to-responders", id=campaign_id),
            body,
        )
        if not answer.ok or not isinstance(answer.body, dict):
            return await c.interactions_view(
                request, session, answer.status, f"No campaign made: {_problem(answer)}"
            )
        made = str(answer.body.get("id", ""))
        log_event(log, "console.responders_campaign", token=session.name, campaign=made)
        raise web.HTTPSeeOther(path(f"{CONSOLE_PREFIX}/campaigns/{{id}}", id=made))

    async def interaction_page(self, request: web.Request) -> web.Response:
        session = self.console._page_session(request)
        return await self._interaction(request, session, request.match_info["id"], 200, "")

    async def _interaction(
        self, request: web.Request, session: Session, interaction_id: str, status: int, error: str
    ) -> web.Response:
        c = self.console
        found = await c.api.call(
            request, session.token, "GET", path("/v1/interactions/{id}", id=interaction_id)
        )
        item = found.body if found.ok and isinstance(found.body, dict) else None
        if item is None and not error:
            status, error = found.status, found.error_message
        return c._page(
            "interaction.html",
            session,
            status=status,
            title=f"Interaction {interaction_id}",
            nav="interactions",
            item=item,
            interaction_id=interaction_id,
            care_states=CARE_STATES,
            error=error,
        )

    async def reply(self, request: web.Request) -> web.Response:
        """A helpdesk reply: POST /v1/interactions/{id}/reply (from our number the MO was
        written to; refused when the subscriber opted out of it)."""
        c = self.console
        session, form, refused = await c._signed_form(request)
        if refused is not None:
            return refused
        interaction_id = request.match_info["id"]
        answer = await c.api.call(
            request,
            session.token,
            "POST",
            path("/v1/interactions/{id}/reply", id=interaction_id),
            {"text": str(form.get("text", ""))},
        )
        if not answer.ok:
            return await self._interaction(
                request,
                session,
                interaction_id,
                answer.status,
                f"The reply was not sent: {_problem(answer)}",
            )
        log_event(log, "console.replied", token=session.name, interaction=interaction_id)
        raise web.HTTPSeeOther(path(f"{CONSOLE_PREFIX}/interactions/{{id}}", id=interaction_id))

    async def care(self, request: web.Request) -> web.Response:
        """PATCH /v1/interactions/{id}: its care state and assignee."""
        c = self.console
        session, form, refused = await c._signed_form(request)
        if refused is not None:
            return refused
        interaction_id = request.match_info["id"]
        assignee = str(form.get("assignee", "")).strip()
        body = {"care_state": str(form.get("care_state", "")), "assignee": assignee or None}
        answer = await c.api.call(
            request,
            session.token,
            "PATCH",
            path("/v1/interactions/{id}", id=interaction_id),
            body,
        )
        if not answer.ok:
            return await self._interaction(
                request, session, interaction_id, answer.status, _problem(answer)
            )
        raise web.HTTPSeeOther(path(f"{CONSOLE_PREFIX}/interactions/{{id}}", id=interaction_id))
