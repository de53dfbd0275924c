"""The web console under ``/console/``: server-rendered pages over the HTTP API.

Sign-in takes an API token and opens a session (gateway.console.sessions) behind a cookie
that is HttpOnly, SameSite=Strict, limited to ``/console`` and Secure over HTTPS. Every
POST form carries the session's CSRF token (the sign-in form a double-submit one); a form
without it is refused with 403. What a page shows of messages, lists and campaigns comes
from the HTTP API, called with the session's token (gateway.console.apiclient), so its
scopes and account checks hold in the console too.

Every answer under ``/console`` carries a Content-Security-Policy that allows scripts,
styles, images and fetches from this origin only and no inline script; Jinja2 escapes
every value put into a page, so an MO reading ``<script>`` shows as text.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from gateway.campaigns.service import TRANSITIONS
from gateway.config import HttpConfig
from gateway.console.apiclient import ApiAnswer, ApiClient, path
from gateway.console.campaign import CAMPAIGN_REFRESH_SECONDS, campaign_charts, still_moving
from gateway.console.campaign_form import (
    ACTION_TYPES,
    field_errors,
    form_values,
    request_body,
    rule_rows,
)
from gateway.console.care import CarePages
from gateway.console.numbers import NumberPages
from gateway.console.overview import (
    MINUTES,
    MinuteSeries,
    OverviewSources,
    minute_series,
    minutes_svg,
    overview,
)
from gateway.console.people import PeoplePages
from gateway.console.sessions import MAX_AGE_SECONDS, Session, Sessions, new_secret, same_secret
from gateway.console.throttle import SignInThrottle
from gateway.http.auth import CONSOLE_PREFIX
from gateway.logs import log_event
from gateway.metrics import CounterMetricFamily, GaugeMetricFamily
from gateway.smpp.text import GSM7_BASIC, GSM7_EXTENSION
from gateway.store.base import StoreError

log = logging.getLogger("smsgw.console")

SESSION_COOKIE: Final = "smsgw_console"
SIGNIN_COOKIE: Final = "smsgw_console_signin"
"""The sign-in form's double-submit CSRF value (there is no session yet)."""
CSRF_FIELD: Final = "csrf"
SIGNIN_COOKIE_SECONDS: Final = 3600
"""A sign-in form stays usable this long."""
MAX_TOKEN_CHARS: Final = 512
"""Longer than any token worth having; a longer field is refused before it is hashed."""
REFRESH_SECONDS: Final = 5
MINUTES_CACHE_SECONDS: Final = 15.0
"""The last-hour chart is read from the store at most this often (its rows are the hour's
messages: a range of the primary key, but every row of it)."""
"""The overview asks for fresh figures this often (console.js)."""
LOG_EVERY_SECONDS: Final = 10.0
"""Refused sign-ins and forms are logged at most once per this many seconds, with a count."""

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

_MESSAGE_ID: Final = re.compile(r"[0-9a-f]{26}")  # gateway.core.model.new_message_id
_NUMBER: Final = re.compile(r"\+?[0-9]{6,15}")  # E.164 digits, with or without the '+'

MAX_CAMPAIGNS_SHOWN: Final = 100
"""Campaigns on the Campaigns page, newest first (each costs one stats call)."""
INTERACTION_FILTERS: Final = ("number", "source", "campaign_id")
"""The Interactions page's filters, as GET /v1/interactions names them."""
PAGE_SIZE: Final = 50
"""Messages per page of the Messages list."""
SEARCH_FIELDS: Final[Mapping[str, str]] = {
    "auto": "id, client_ref or number",
    "id": "message id",
    "client_ref": "client_ref",
    "to": "number",
}
"""What the Messages search looks in (the form's choices)."""


def search_field(query: str, by: str) -> str:
    """Where a search looks: ``by`` when chosen; else a message id by its form, a number
    (6 to 15 digits, with or without '+') as the destination, anything else a client_ref."""
    if by != "auto":
        return by
    if _MESSAGE_ID.fullmatch(query.lower()):
        return "id"
    if _NUMBER.fullmatch(query.replace(" ", "")):
        return "to"
    return "client_ref"


def normal_number(query: str) -> str:
    """A number as stored: E.164 with its '+', spaces removed."""
    digits = query.replace(" ", "")
    return digits if digits.startswith("+") or not digits.isdigit() else f"+{digits}"


_PACKAGE = resources.files("gateway.console")

GSM7_CODES: Final = ",".join(str(ord(c)) for c in GSM7_BASIC.replace("\x1b", ""))
GSM7_EXTENSION_CODES: Final = ",".join(str(ord(c)) for c in GSM7_EXTENSION)
"""The GSM 03.38 alphabet for the text preview (console.js), as code points: the basic
table, and the extension table (two septets each). One source: the tables the gateway
encodes with (gateway.smpp.text)."""


REFUSAL_REASONS: Final = ("bad_token", "csrf", "store", "throttled")
"""What the console refuses or cannot do: a wrong token at sign-in, a form without its CSRF
token, a store read that failed (the overview's chart), a sign-in from an address with too
many failed ones (gateway.console.throttle)."""


class Refusals:
    """Refused sign-ins and forms: counted (``/metrics``) and logged, rate-limited."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._unlogged: dict[str, int] = {}
        self._logged_at: dict[str, float] = {}

    def add(self, reason: str, now: float) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
        if now - self._logged_at.get(reason, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
            log_event(
                log, "console.refused", logging.WARNING, reason=reason, count=self._unlogged[reason]
            )
            self._logged_at[reason] = now
            self._unlogged[reason] = 0


class Console:
    """The console's routes, sessions and templates, inside the gateway's HTTP app."""

    def __init__(
        self,
        http: HttpConfig,
        sources: OverviewSources,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self.sources = sources
        self.clock = clock
        self.sessions = Sessions()
        self.refusals = Refusals()
        self.throttle = SignInThrottle()
        self.api = ApiClient()
        self._minutes_cache: tuple[float, MinuteSeries] | None = None
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("gateway.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/", self.to_console, allow_head=False)
        r.add_get(CONSOLE_PREFIX, self.to_console, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/signin", self.signin_form, allow_head=False)
        r.add_post(f"{CONSOLE_PREFIX}/signin", self.signin)
        r.add_post(f"{CONSOLE_PREFIX}/signout", self.signout)
        r.add_get(f"{CONSOLE_PREFIX}/", self.overview_page, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/overview.json", self.overview_json, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/overview/minutes.svg", self.minutes_chart, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/messages", self.messages_page, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/messages/{{id}}", self.message_page, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/campaigns", self.campaigns_page, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/interactions", self.interactions_page, allow_head=False)
        r.add_get(f"{CONSOLE_PREFIX}/lists", self.lists_page, allow_head=False)
        r.add_post(f"{CONSOLE_PREFIX}/lists", self.list_create)
        r.add_post(f"{CONSOLE_PREFIX}/lists/{{id}}/import", self.list_import)
        r.add_get(f"{CONSOLE_PREFIX}/campaigns/new", self.campaign_form, allow_head=False)
        r.add_post(f"{CONSOLE_PREFIX}/campaigns/new", self.campaign_create)
        r.add_get(f"{CONSOLE_PREFIX}/campaigns/{{id}}", self.campaign_page, allow_head=False)
        r.add_get(
            f"{CONSOLE_PREFIX}/campaigns/{{id}}/edit", self.campaign_edit_form, allow_head=False
        )
        r.add_post(f"{CONSOLE_PREFIX}/campaigns/{{id}}/edit", self.campaign_edit)
        r.add_post(f"{CONSOLE_PREFIX}/campaigns/{{id}}/{{action}}", self.campaign_action)
        PeoplePages(self).add_routes(app)
        NumberPages(self).add_routes(app)
        CarePages(self).add_routes(app)
        r.add_get(f"{CONSOLE_PREFIX}/static/{{filename}}", self.static, allow_head=False)
        app.on_response_prepare.append(_security_headers)
        app.on_cleanup.append(self._close)

    def collect(self) -> list[Any]:
        """``smsgw_console_refused_total{reason}`` and ``smsgw_console_sessions``."""
        refused = CounterMetricFamily(
            "smsgw_console_refused",
            "Console sign-ins with a wrong token or throttled, forms without their CSRF token"
            " and failed store reads, by reason",
            labels=["reason"],
        )
        for reason in REFUSAL_REASONS:
            refused.add_metric([reason], self.refusals.counts.get(reason, 0))
        sessions = GaugeMetricFamily("smsgw_console_sessions", "Console sessions open")
        sessions.add_metric([], len(self.sessions))
        return [refused, sessions]

    async def _close(self, app: web.Application) -> None:
        await self.api.close()

    # -- sessions ---------------------------------------------------------------------------

    def _session(self, request: web.Request) -> Session | None:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        session = self.sessions.get(session_id, self.clock())
        if session is None:
            return None
        # A token taken out of the configuration ends its sessions.
        if not any(t.sha256 == session.token_sha256 for t in self.http.tokens):
            self.sessions.close(session.id)
            return None
        return session

    def _page_session(self, request: web.Request) -> Session:
        """The signed-in session, or a redirect to the sign-in form."""
        session = self._session(request)
        if session is None:
            raise web.HTTPSeeOther(f"{CONSOLE_PREFIX}/signin")
        return session

    async def _signed_form(
        self, request: web.Request
    ) -> tuple[
        Session, MultiDictProxy[str | bytes | bytearray | web.FileField], web.Response | None
    ]:
        """A signed-in page's POSTed form: the session, the form, and the 403 page to answer
        when the form's CSRF token is not the session's (else None)."""
        session = self._page_session(request)
        form = await request.post()
        return session, form, self._csrf_refusal(form.get(CSRF_FIELD), session.csrf, session)

    def _csrf_refusal(
        self, given: object, expected: str, session: Session | None
    ) -> web.Response | None:
        """None when ``given`` is the form's CSRF token; else the 403 page to answer."""
        if isinstance(given, str) and same_secret(given, expected):
            return None
        self.refusals.add("csrf", self.clock())
        return self._page(
            "refused.html",
            session,
            status=403,
            title="Form refused",
            reason="The form was refused: its CSRF token is missing or stale."
            " Reload the page and send it again.",
        )

    # -- rendering --------------------------------------------------------------------------

    def _render(self, name: str, session: Session | None, **values: Any) -> str:
        template = self.templates.get_template(name)
        return template.render(
            session=session,
            csrf=session.csrf if session is not None else "",
            prefix=CONSOLE_PREFIX,
            **{"nav": "", **values},
        )

    async def _api_page(
        self, request: web.Request, session: Session, api_path: str, params: dict[str, str]
    ) -> ApiAnswer:
        """A page of an API list (GET ``api_path`` with ``params``), from the cursor the page's
        own ``after`` carries."""
        after = request.query.get("after")
        if after:
            params = {**params, "after": after}
        return await self.api.call(request, session.token, "GET", f"{api_path}?{urlencode(params)}")

    def _page(
        self, name: str, session: Session | None, status: int = 200, **values: Any
    ) -> web.Response:
        return web.Response(
            text=self._render(name, session, **values),
            status=status,
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    # -- handlers ---------------------------------------------------------------------------

    async def to_console(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{CONSOLE_PREFIX}/")

    async def signin_form(self, request: web.Request) -> web.Response:
        if self._session(request) is not None:
            raise web.HTTPSeeOther(f"{CONSOLE_PREFIX}/")
        return self._signin_page(request, 200, "")

    def _signin_page(self, request: web.Request, status: int, error: str) -> web.Response:
        value = new_secret()
        response: web.Response = self._page(
            "signin.html", None, status, title="Sign in", signin_csrf=value, error=error
        )
        response.set_cookie(
            SIGNIN_COOKIE,
            value,
            max_age=SIGNIN_COOKIE_SECONDS,
            path=CONSOLE_PREFIX,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return response

    async def signin(self, request: web.Request) -> web.Response:
        now = self.clock()
        form = await request.post()
        expected = request.cookies.get(SIGNIN_COOKIE, "")
        if not expected:
            self.refusals.add("csrf", now)
            return self._signin_page(
                request, 403, "The sign-in form had expired. Paste the token and sign in again."
            )
        refused = self._csrf_refusal(form.get(CSRF_FIELD), expected, None)
        if refused is not None:
            return refused
        address = request.remote or ""
        wait = self.throttle.wait(address, now)
        if wait > 0:
            # Before the token is looked at: from here, guessing goes no faster.
            self.refusals.add("throttled", now)
            response = self._signin_page(
                request,
                429,
                f"Too many failed sign-ins from this address. Try again in {math.ceil(wait)} s.",
            )
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        token = form.get("token")
        entry = None
        if isinstance(token, str) and 0 < len(token.strip()) <= MAX_TOKEN_CHARS:
            token = token.strip()
            try:
                entry = self.http.find_token(token)
            except UnicodeEncodeError:
                entry = None
        if entry is None or not isinstance(token, str):
            self.refusals.add("bad_token", now)
            self.throttle.failed(address, now)
            return self._signin_page(request, 401, "This token is not valid.")
        self.throttle.succeeded(address)
        session = self.sessions.open(token, entry.sha256, entry.name, now)
        log_event(log, "console.signed_in", token=entry.name)
        response = _see_other(f"{CONSOLE_PREFIX}/")
        response.set_cookie(
            SESSION_COOKIE,
            session.id,
            max_age=int(MAX_AGE_SECONDS),
            path=CONSOLE_PREFIX,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        response.del_cookie(SIGNIN_COOKIE, path=CONSOLE_PREFIX)
        return response

    async def signout(self, request: web.Request) -> web.Response:
        session, _form, refused = await self._signed_form(request)
        if refused is not None:
            return refused
        self.sessions.close(session.id)
        log_event(log, "console.signed_out", token=session.name)
        response = _see_other(f"{CONSOLE_PREFIX}/signin")
        response.del_cookie(SESSION_COOKIE, path=CONSOLE_PREFIX)
        return response

    async def _minutes(self) -> MinuteSeries | None:
        """The last hour by minute, read from the store at most every MINUTES_CACHE_SECONDS
        (one read of the hour's rows, however many consoles are open); None when the store
        cannot say (logged and counted)."""
        now = self.clock()
        cached = self._minutes_cache
        if cached is not None and now - cached[0] < MINUTES_CACHE_SECONDS:
            return cached[1]
        if self.sources.minutes is None:
            return None
        try:
            rows = await self.sources.minutes(now - MINUTES * 60)
        except StoreError as exc:
            self.refusals.add("store", now)
            log_event(log, "console.store_error", logging.WARNING, error=str(exc))
            return None
        series = minute_series(rows, now)
        self._minutes_cache = (now, series)
        return series

    async def _overview(self) -> dict[str, Any]:
        data = overview(self.sources)
        series = await self._minutes()
        data["last_hour"] = series.totals() if series is not None else None
        return data

    async def overview_page(self, request: web.Request) -> web.Response:
        session = self._page_session(request)
        return self._page(
            "overview.html",
            session,
            title="Overview",
            nav="overview",
            data=await self._overview(),
            refresh=REFRESH_SECONDS,
        )

    async def overview_json(self, request: web.Request) -> web.Response:
        if self._session(request) is None:
            return _unauthorized()
        return web.json_response(await self._overview(), headers={"Cache-Control": "no-store"})

    async def minutes_chart(self, request: web.Request) -> web.Response:
        if self._session(request) is None:
            return _unauthorized()
        series = await self._minutes()
        if series is None:
            series = minute_series([], self.clock())
        return web.Response(
            text=minutes_svg(series),
            content_type="image/svg+xml",
            headers={"Cache-Control": "no-store"},
        )

    async def messages_page(self, request: web.Request) -> web.Response:
        """The latest messages, or those a search finds (GET /v1/messages with the session's
        token); a message id goes straight to its page."""
        session = self._page_session(request)
        query = request.query.get("q", "").strip()
        by = request.query.get("by", "auto")
        if by not in SEARCH_FIELDS:
            by = "auto"
        field = search_field(query, by) if query else None
        if field == "id":
            return _see_other(f"{CONSOLE_PREFIX}/messages/{quote(query.lower(), safe='')}")
        params = {"limit": str(PAGE_SIZE)}
        if field is not None:
            params[field] = normal_number(query) if field == "to" else query
        answer = await self._api_page(request, session, "/v1/messages", params)
        values: dict[str, Any] = {
            "title": "Messages",
            "nav": "messages",
            "q": query,
            "by": by,
            "fields": SEARCH_FIELDS,
            "searched": SEARCH_FIELDS.get(field or "", ""),
        }
        if not answer.ok:
            return self._page(
                "messages.html", session, status=answer.status, error=answer.error_message, **values
            )
        body = answer.body if isinstance(answer.body, dict) else {}
        following = None
        if body.get("next"):
            following = urlencode({"q": query, "by": by, "after": body["next"]})
        return self._page(
            "messages.html", session, items=body.get("items", []), following=following, **values
        )

    async def message_page(self, request: web.Request) -> web.Response:
        session = self._page_session(request)
        message_id = request.match_info["id"]
        answer = await self.api.call(
            request, session.token, "GET", path("/v1/messages/{id}", id=message_id)
        )
        values: dict[str, Any] = {
            "title": "Messages",
            "nav": "messages",
            "q": message_id,
            "by": "auto",
            "fields": SEARCH_FIELDS,
        }
        if answer.ok:
            return self._page("messages.html", session, message=answer.body, **values)
        return self._page(
            "messages.html", session, status=answer.status, error=answer.error_message, **values
        )

    async def campaigns_page(self, request: web.Request) -> web.Response:
        session = self._page_session(request)
        return await self._campaigns(request, session, 200, "")

    async def _campaigns(
        self, request: web.Request, session: Session, status: int, error: str
    ) -> web.Response:
        """The token's campaigns (GET /v1/campaigns), each with its figures
        (GET /v1/campaigns/{id}/stats) and the actions its status allows."""
        values: dict[str, Any] = {"title": "Campaigns", "nav": "campaigns", "error": error}
        listed = await self.api.call(request, session.token, "GET", "/v1/campaigns")
        if not listed.ok:
            return self._page(
                "campaigns.html",
                session,
                status=listed.status,
                items=[],
                **{**values, "error": error or listed.error_message},
            )
        items = listed.body.get("items", []) if isinstance(listed.body, dict) else []
        items = sorted(items, key=lambda c: str(c.get("created_at", "")), reverse=True)
        shown = items[:MAX_CAMPAIGNS_SHOWN]

        async def stats(campaign: dict[str, Any]) -> dict[str, Any] | None:
            answer = await self.api.call(
                request,
                session.token,
                "GET",
                path("/v1/campaigns/{id}/stats", id=str(campaign.get("id", ""))),
            )
            return answer.body if answer.ok and isinstance(answer.body, dict) else None

        figures = await asyncio.gather(*(stats(c) for c in shown))
        rows = [
            {
                "campaign": c,
                "stats": f,
                "actions": [
                    a for a, (allowed, _) in TRANSITIONS.items() if c.get("status") in allowed
                ],
            }
            for c, f in zip(shown, figures, strict=True)
        ]
        return self._page(
            "campaigns.html",
            session,
            status=status,
            items=rows,
            more=len(items) - len(shown),
            **values,
        )

    async def campaign_page(self, request: web.Request) -> web.Response:
        """One campaign (GET /v1/campaigns/{id}) with its figures (GET .../stats): the
        funnel, the first 24 hours and the first 10 days as charts, the keyword breakdown.
        While figures can still move it refreshes itself (console.js)."""
        session = self._page_session(request)
        campaign_id = request.match_info["id"]
        one = path("/v1/campaigns/{id}", id=campaign_id)
        found, figures = await asyncio.gather(
            self.api.call(request, session.token, "GET", one),
            self.api.call(request, session.token, "GET", f"{one}/stats"),
        )
        if not found.ok or not isinstance(found.body, dict):
            return self._page(
                "refused.html",
                session,
                status=found.status,
                title="Campaign",
                nav="campaigns",
                reason=found.error_message,
            )
        campaign = found.body
        stats = figures.body if figures.ok and isinstance(figures.body, dict) else None
        status = str(campaign.get("status", ""))
        return self._page(
            "campaign.html",
            session,
            title=str(campaign.get("name", "Campaign")),
            nav="campaigns",
            c=campaign,
            s=stats,
            error="" if figures.ok else figures.error_message,
            charts=campaign_charts(campaign, stats) if stats is not None else None,
            actions=[a for a, (allowed, _) in TRANSITIONS.items() if status in allowed],
            live=still_moving(campaign, self.clock()),
            refresh=CAMPAIGN_REFRESH_SECONDS,
        )

    async def campaign_form(self, request: web.Request) -> web.Response:
        session = self._page_session(request)
        return await self._campaign_form(request, session, 200, {}, [], "", None)

    async def _campaign_form(
        self,
        request: web.Request,
        session: Session,
        status: int,
        values: Mapping[str, Any],
        errors: list[dict[str, Any]],
        error: str,
        campaign_id: str | None,
    ) -> web.Response:
        """The campaign form (new, or a draft's when ``campaign_id``), with the token's lists
        to choose the audience from (GET /v1/lists) and each API field error beside its
        field."""
        lists = await self.api.call(request, session.token, "GET", "/v1/lists")
        items = lists.body.get("items", []) if lists.ok and isinstance(lists.body, dict) else []
        if not lists.ok and not error:
            status, error = lists.status, lists.error_message
        editing = campaign_id is not None
        return self._page(
            "campaign_form.html",
            session,
            status=status,
            title=f"Edit {values.get('name') or 'the campaign'}" if editing else "New campaign",
            nav="campaigns",
            lists=items,
            values=values,
            rules=rule_rows(values),
            action_types=ACTION_TYPES,
            gsm7=GSM7_CODES,
            gsm7_extension=GSM7_EXTENSION_CODES,
            errors=errors,
            errs=field_errors(errors),
            error=error,
            editing=editing,
            action=path(f"{CONSOLE_PREFIX}/campaigns/{{id}}/edit", id=campaign_id)
            if campaign_id is not None
            else f"{CONSOLE_PREFIX}/campaigns/new",
            submit="Save the draft" if editing else "Create the campaign",
        )

    async def campaign_create(self, request: web.Request) -> web.Response:
        """POST /v1/campaigns with the form's fields, with the session's token; its field
        errors are shown beside the form, which keeps what was typed."""
        return await self._campaign_send(request, None)

    async def campaign_edit_form(self, request: web.Request) -> web.Response:
        """A draft in the form (GET /v1/campaigns/{id}); a campaign past its draft is not."""
        session = self._page_session(request)
        campaign_id = request.match_info["id"]
        found = await self.api.call(
            request, session.token, "GET", path("/v1/campaigns/{id}", id=campaign_id)
        )
        if not found.ok or not isinstance(found.body, dict):
            return self._page(
                "refused.html",
                session,
                status=found.status,
                title="Campaign",
                nav="campaigns",
                reason=found.error_message,
            )
        if found.body.get("status") != "draft":
            return self._page(
                "refused.html",
                session,
                status=409,
                title="Campaign",
                nav="campaigns",
                reason=f"Only a draft can be edited; this campaign is {found.body.get('status')}.",
            )
        return await self._campaign_form(
            request, session, 200, form_values(found.body), [], "", campaign_id
        )

    async def campaign_edit(self, request: web.Request) -> web.Response:
        """PUT /v1/campaigns/{id} with the form's fields (a draft edited)."""
        return await self._campaign_send(request, request.match_info["id"])

    async def _campaign_send(self, request: web.Request, campaign_id: str | None) -> web.Response:
        session, form, refused = await self._signed_form(request)
        if refused is not None:
            return refused
        body, values = request_body(form)
        if campaign_id is None:
            answer = await self.api.call(request, session.token, "POST", "/v1/campaigns", body)
        else:
            one = path("/v1/campaigns/{id}", id=campaign_id)
            answer = await self.api.call(request, session.token, "PUT", one, body)
        if answer.ok:
            made = answer.body.get("id", "") if isinstance(answer.body, dict) else ""
            log_event(
                log,
                "console.campaign_edited" if campaign_id else "console.campaign_created",
                token=session.name,
                campaign=made,
            )
            if campaign_id is None:
                return _see_other(f"{CONSOLE_PREFIX}/campaigns")
            return _see_other(path(f"{CONSOLE_PREFIX}/campaigns/{{id}}", id=campaign_id))
        details = []
        if isinstance(answer.body, dict) and isinstance(answer.body.get("error"), dict):
            details = [d for d in answer.body["error"].get("details", []) if isinstance(d, dict)]
        return await self._campaign_form(
            request, session, answer.status, values, details, answer.error_message, campaign_id
        )

    async def campaign_action(self, request: web.Request) -> web.Response:
        """Start, pause, resume or cancel a campaign: POST /v1/campaigns/{id}/{action} with
        the session's token; the API's refusal (scope, account, status) is shown as is."""
        session, form, refused = await self._signed_form(request)
        if refused is not None:
            return refused
        action = request.match_info["action"]
        if action not in TRANSITIONS:
            raise web.HTTPNotFound()
        campaign_id = request.match_info["id"]
        answer = await self.api.call(
            request,
            session.token,
            "POST",
            path("/v1/campaigns/{id}/{action}", id=campaign_id, action=action),
            json_body={},
        )
        if answer.ok:
            log_event(
                log, "console.campaign", token=session.name, campaign=campaign_id, action=action
            )
            if form.get("back") == "campaign":
                return _see_other(path(f"{CONSOLE_PREFIX}/campaigns/{{id}}", id=campaign_id))
            return _see_other(f"{CONSOLE_PREFIX}/campaigns")
        return await self._campaigns(
            request, session, answer.status, f"Could not {action} it: {answer.error_message}"
        )

    async def interactions_page(self, request: web.Request) -> web.Response:
        """The MO log, newest first (GET /v1/interactions with the session's token: the
        operator's, scope admin), filtered by our number, the subscriber or the campaign."""
        session = self._page_session(request)
        return await self.interactions_view(request, session, 200, "")

    async def interactions_view(
        self, request: web.Request, session: Session, status: int, error: str, note: str = ""
    ) -> web.Response:
        """The Interactions page, with ``error`` or ``note`` (what an action did) on top; its
        filters are the query's (the action forms post to a URL that carries them)."""
        filters = {
            name: request.query[name].strip()
            for name in INTERACTION_FILTERS
            if request.query.get(name, "").strip()
        }
        params = {**filters, "limit": str(PAGE_SIZE)}
        answer = await self._api_page(request, session, "/v1/interactions", params)
        values: dict[str, Any] = {
            "title": "Interactions",
            "nav": "interactions",
            "filters": filters,
            "query": urlencode(filters),
            "items": [],
            "following": None,
            "note": note,
        }
        if not answer.ok:
            return self._page(
                "interactions.html",
                session,
                status=answer.status,
                **{**values, "error": error or answer.error_message},
            )
        body = answer.body if isinstance(answer.body, dict) else {}
        if body.get("next"):
            values["following"] = urlencode({**filters, "after": body["next"]})
        values["items"] = body.get("items", [])
        return self._page("interactions.html", session, status=status, error=error, **values)

    async def lists_page(self, request: web.Request) -> web.Response:
        session = self._page_session(request)
        return await self._lists(request, session, 200, "")

    async def _lists(
        self, request: web.Request, session: Session, status: int, error: str
    ) -> web.Response:
        """The token's contact lists (GET /v1/lists) and, after an upload, where its import
        stands (GET /v1/imports/{id})."""
        listed = await self.api.call(request, session.token, "GET", "/v1/lists")
        items = listed.body.get("items", []) if listed.ok and isinstance(listed.body, dict) else []
        if not listed.ok and not error:
            status, error = listed.status, listed.error_message
        job = None
        import_id = request.query.get("import")
        if import_id:
            found = await self.api.call(
                request, session.token, "GET", path("/v1/imports/{id}", id=import_id)
            )
            job = found.body if found.ok and isinstance(found.body, dict) else None
        return self._page(
            "lists.html",
            session,
            status=status,
            title="Contact lists",
            nav="lists",
            items=items,
            job=job,
            error=error,
        )

    async def list_create(self, request: web.Request) -> web.Response:
        session, form, refused = await self._signed_form(request)
        if refused is not None:
            return refused
        name = str(form.get("name", "")).strip()
        answer = await self.api.call(request, session.token, "POST", "/v1/lists", {"name": name})
        if answer.ok:
            return _see_other(f"{CONSOLE_PREFIX}/lists")
        return await self._lists(request, session, answer.status, answer.error_message)

    async def list_import(self, request: web.Request) -> web.Response:
        """A CSV file uploaded in the form, sent as is to POST /v1/lists/{id}/import (the
        form's body is bounded by [http] max_body_bytes; larger files go to the API)."""
        session, form, refused = await self._signed_form(request)
        if refused is not None:
            return refused
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return await self._lists(request, session, 400, "Choose a CSV file to import.")
        answer = await self.api.call(
            request,
            session.token,
            "POST",
            path("/v1/lists/{id}/import", id=request.match_info["id"]),
            data=upload.file.read(),
            content_type="text/csv",
        )
        if answer.ok and isinstance(answer.body, dict):
            query = urlencode({"import": str(answer.body.get("import_id", ""))})
            return _see_other(f"{CONSOLE_PREFIX}/lists?{query}")
        return await self._lists(
            request, session, answer.status, f"The import was refused: {answer.error_message}"
        )

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["filename"]
        kind = _STATIC_TYPES.get(Path(name).suffix)
        resource = _PACKAGE / "static" / name
        if kind is None or "/" in name or name.startswith(".") or not resource.is_file():
            raise web.HTTPNotFound()
        return web.Response(
            body=resource.read_bytes(),
            content_type=kind,
            headers={"Cache-Control": "max-age=300"},
        )


_STATIC_TYPES: Final = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/" or request.path.startswith(CONSOLE_PREFIX):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)


def _unauthorized() -> web.Response:
    return web.json_response(
        {"error": {"code": "unauthorized", "message": "sign in again", "details": []}},
        status=401,
    )


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})
