"""The web console without a browser: sign-in, sessions, CSRF, headers, and that a page
can show only what the API lets its token see (tests/test_console_browser.py drives it in
Chromium)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, ClientSession, CookieJar, FormData
from yarl import URL

from gateway.console import web as console_web
from gateway.console.overview import minute_series, minutes_svg
from gateway.console.sessions import IDLE_SECONDS, MAX_AGE_SECONDS, Sessions
from gateway.console.web import CONSOLE_PREFIX, SESSION_COOKIE
from gateway.http.auth import CONSOLE_ROUTES
from tests.api_fakes import NOW
from tests.api_fakes import TOKEN as ADMIN
from tests.campaign_helpers import Rig, campaign_rig
from tests.test_api_authz import A_FULL, A_SEND, B_FULL, TOKENS, World

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with campaign_rig(tmp_path, tokens=TOKENS) as rig:
        yield rig


class Browser:
    """A client of the rig's server with its own cookie jar (one "browser")."""

    def __init__(self, base: URL) -> None:
        self.base = base
        self.session = ClientSession(cookie_jar=CookieJar(unsafe=True))

    async def request(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        return await self.session.request(method, self.base.join(URL(path)), **kwargs)

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.request("POST", path, **kwargs)

    async def close(self) -> None:
        await self.session.close()


async def browser(rig: Rig) -> Browser:
    return Browser(rig.api.client.make_url("/"))


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, html
    return found.group(1)


async def sign_in(client: Browser, token: str) -> ClientResponse:
    form = await client.get(f"{CONSOLE_PREFIX}/signin")
    assert form.status == 200
    return await client.post(
        f"{CONSOLE_PREFIX}/signin",
        data={"csrf": csrf_of(await form.text()), "token": token},
        allow_redirects=False,
    )


def cookie_header(response: ClientResponse, name: str) -> str:
    for value in response.headers.getall("Set-Cookie", []):
        if value.startswith(f"{name}="):
            return value
    raise AssertionError(f"no {name} cookie set: {response.headers}")


async def test_sign_in_sets_a_strict_httponly_session_cookie_that_expires(rig: Rig) -> None:
    client = await browser(rig)
    try:
        unsigned = await client.get(f"{CONSOLE_PREFIX}/", allow_redirects=False)
        assert unsigned.status == 303
        assert unsigned.headers["Location"] == f"{CONSOLE_PREFIX}/signin"
        signed = await sign_in(client, ADMIN)
        assert signed.status == 303, await signed.text()
        cookie = cookie_header(signed, SESSION_COOKIE).lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert f"max-age={int(MAX_AGE_SECONDS)}" in cookie
        assert f"path={CONSOLE_PREFIX}" in cookie
        assert ADMIN.lower() not in cookie  # the cookie is a random id, not the token
        page = await client.get(f"{CONSOLE_PREFIX}/")
        assert page.status == 200
        assert "<h1>Overview</h1>" in await page.text()
    finally:
        await client.close()


async def test_a_wrong_token_is_refused_and_counted(rig: Rig) -> None:
    client = await browser(rig)
    try:
        refused = await sign_in(client, "not-a-token")
        assert refused.status == 401
        assert "This token is not valid." in await refused.text()
        assert SESSION_COOKIE not in {c.key for c in client.session.cookie_jar}
        app = rig.api.client.server.app
        assert app is not None
        from gateway.http.app import CONSOLE_KEY

        assert app[CONSOLE_KEY].refusals.counts["bad_token"] == 1
        refused, _ = app[CONSOLE_KEY].collect()
        counted = {
            x.labels["reason"]: x.value for x in refused.samples if x.name.endswith("_total")
        }
        assert counted == {"bad_token": 1, "csrf": 0, "store": 0, "throttled": 0}
    finally:
        await client.close()


async def test_sign_in_without_the_forms_csrf_value_is_refused(rig: Rig) -> None:
    client = await browser(rig)
    try:
        await client.get(f"{CONSOLE_PREFIX}/signin")  # the double-submit cookie is set
        refused = await client.post(
            f"{CONSOLE_PREFIX}/signin", data={"token": ADMIN}, allow_redirects=False
        )
        assert refused.status == 403
        assert "CSRF" in await refused.text()
        assert SESSION_COOKIE not in {c.key for c in client.session.cookie_jar}
    finally:
        await client.close()


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(rig: Rig) -> None:
    client = await browser(rig)
    try:
        await sign_in(client, ADMIN)
        page = await client.get(f"{CONSOLE_PREFIX}/")
        csrf = csrf_of(await page.text())
        refused = await client.post(f"{CONSOLE_PREFIX}/signout", data={}, allow_redirects=False)
        assert refused.status == 403
        wrong = await client.post(
            f"{CONSOLE_PREFIX}/signout", data={"csrf": csrf + "x"}, allow_redirects=False
        )
        assert wrong.status == 403
        still = await client.get(f"{CONSOLE_PREFIX}/", allow_redirects=False)
        assert still.status == 200  # a refused form changes nothing
        session_id = next(c.value for c in client.session.cookie_jar if c.key == SESSION_COOKIE)
        out = await client.post(
            f"{CONSOLE_PREFIX}/signout", data={"csrf": csrf}, allow_redirects=False
        )
        assert out.status == 303
        # The old cookie, sent again by hand, opens nothing: the session is gone server-side.
        again = await client.get(
            f"{CONSOLE_PREFIX}/",
            headers={"Cookie": f"{SESSION_COOKIE}={session_id}"},
            allow_redirects=False,
        )
        assert again.status == 303
    finally:
        await client.close()


async def test_console_answers_carry_a_strict_content_security_policy(rig: Rig) -> None:
    client = await browser(rig)
    try:
        await sign_in(client, ADMIN)
        for path in ("/signin", "/", "/messages", "/static/console.js"):
            answer = await client.get(f"{CONSOLE_PREFIX}{path}")
            policy = answer.headers["Content-Security-Policy"]
            assert "default-src 'none'" in policy
            assert "script-src 'self'" in policy
            assert "unsafe-inline" not in policy and "http" not in policy
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            if answer.content_type == "text/html":
                html = await answer.text()
                assert "<script>" not in html and " on" + "click=" not in html
                assert re.findall(r"<script\b[^>]*>", html) == [
                    f'<script src="{CONSOLE_PREFIX}/static/console.js" defer>'
                ]
        for bad in ("../web.py", "..%2Fweb.py", "sessions.py", ".hidden.css"):
            # 404, or 401 for a path that leaves the console (no route: a token is asked).
            refused = await client.get(f"{CONSOLE_PREFIX}/static/{bad}")
            assert refused.status in (401, 404), bad
            assert "import" not in await refused.text()
    finally:
        await client.close()


async def test_the_root_leads_to_the_console(rig: Rig) -> None:
    answer = await rig.api.client.get("/", allow_redirects=False)
    assert answer.status == 302
    assert answer.headers["Location"] == f"{CONSOLE_PREFIX}/"


async def test_overview_json_needs_a_session(rig: Rig) -> None:
    client = await browser(rig)
    try:
        refused = await client.get(f"{CONSOLE_PREFIX}/overview.json")
        assert refused.status == 401
        await sign_in(client, A_SEND)  # any signed-in token: it shows what /healthz shows
        answer = await client.get(f"{CONSOLE_PREFIX}/overview.json")
        assert answer.status == 200
        body = await answer.json()
        assert set(body) >= {"status", "carriers", "front", "store", "errors"}
    finally:
        await client.close()


async def _a_message(rig: Rig) -> str:
    sent = await rig.api.request(
        "POST",
        "/v1/messages",
        token=A_FULL,
        json={"to": "+33699999999", "from": "ACME", "text": "x", "client_ref": "<b>ref</b>"},
    )
    assert sent.status == 202, sent.text
    return str(sent.body["id"])


async def test_a_message_page_shows_only_what_the_api_lets_the_token_see(rig: Rig) -> None:
    message = await _a_message(rig)
    path = f"{CONSOLE_PREFIX}/messages/{message}"
    for token, status, text in (
        (A_FULL, 200, "&lt;b&gt;ref&lt;/b&gt;"),  # its own message; the ref escaped
        (A_SEND, 403, "the route needs the &#39;read&#39; scope"),  # no read scope
        (B_FULL, 404, "no message with this id"),  # another account's message
    ):
        client = await browser(rig)
        try:
            await sign_in(client, token)
            page = await client.get(path)
            html = await page.text()
            assert page.status == status, html
            assert text in html
            assert "<b>ref</b>" not in html
        finally:
            await client.close()


async def test_message_lookup_by_id_leads_to_its_page(rig: Rig) -> None:
    message = await _a_message(rig)
    client = await browser(rig)
    try:
        await sign_in(client, A_FULL)
        found = await client.get(
            f"{CONSOLE_PREFIX}/messages", params={"q": message.upper()}, allow_redirects=False
        )
        assert found.status == 303
        assert found.headers["Location"] == f"{CONSOLE_PREFIX}/messages/{message}"
        odd = await client.get(
            f"{CONSOLE_PREFIX}/messages", params={"q": "../x?y", "by": "id"}, allow_redirects=False
        )
        assert odd.headers["Location"] == f"{CONSOLE_PREFIX}/messages/..%2Fx%3Fy"
        assert (await client.get(odd.headers["Location"])).status == 404
    finally:
        await client.close()


async def _listed(client: Browser, **params: str) -> tuple[int, str]:
    page = await client.get(f"{CONSOLE_PREFIX}/messages", params=params)
    return page.status, await page.text()


async def test_messages_are_searched_by_client_ref_or_number_through_the_api(rig: Rig) -> None:
    message = await _a_message(rig)  # to +33699999999, client_ref "<b>ref</b>", account a
    link = f'href="{CONSOLE_PREFIX}/messages/{message}"'
    client = await browser(rig)
    try:
        await sign_in(client, A_FULL)
        status, html = await _listed(client)  # no search: the latest messages
        assert status == 200 and link in html and "Latest messages" in html
        for params in (
            {"q": "<b>ref</b>"},  # auto: not an id, not a number: a client_ref
            {"q": "33699999999"},  # auto: a number, '+' added
            {"q": "+33 6 99 99 99 99", "by": "to"},
            {"q": "<b>ref</b>", "by": "client_ref"},
        ):
            status, html = await _listed(client, **params)
            assert status == 200 and link in html, params
            assert "<b>ref</b>" not in html  # escaped wherever it shows
        status, html = await _listed(client, q="other-ref")
        assert status == 200 and link not in html and "No messages found." in html
    finally:
        await client.close()
    for token, status, text in (
        (B_FULL, 200, "No messages found."),  # another account's message is not listed
        (A_SEND, 403, "the route needs the &#39;read&#39; scope"),
    ):
        client = await browser(rig)
        try:
            await sign_in(client, token)
            got, html = await _listed(client, q="<b>ref</b>")
            assert got == status and text in html and link not in html, token
        finally:
            await client.close()


async def test_the_messages_list_pages_with_the_apis_cursor(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console_web, "PAGE_SIZE", 1)
    # The rig's clock stands still: both ids carry the same time, so which comes first
    # is the API's order (by id); the console shows one a page and leads to the other.
    ids = {await _a_message(rig), await _a_message(rig)}
    client = await browser(rig)
    try:
        await sign_in(client, A_FULL)
        status, html = await _listed(client, q="<b>ref</b>")
        shown = {m for m in ids if m in html}
        assert status == 200 and len(shown) == 1
        older = re.search(r'href="([^"]+)">Older messages', html)
        assert older is not None
        page = await client.get(older.group(1).replace("&amp;", "&"))
        html = await page.text()
        assert {m for m in ids if m in html} == ids - shown
        assert "Older messages" not in html
    finally:
        await client.close()


async def test_every_session_route_refuses_a_request_without_a_session(rig: Rig) -> None:
    app = rig.api.client.server.app
    assert app is not None
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None
        and (r.resource.canonical.startswith(CONSOLE_PREFIX) or r.resource.canonical == "/")
    }
    assert served == set(CONSOLE_ROUTES)
    client = await browser(rig)
    try:
        for (method, template), access in CONSOLE_ROUTES.items():
            if access != "session":
                continue
            path = template.replace("{id}", "0" * 26).replace("{action}", "start")
            answer = await client.request(method, path, allow_redirects=False)
            assert answer.status in (303, 401), (method, path, answer.status)
    finally:
        await client.close()


def test_sessions_end_when_idle_or_too_old_and_stay_bounded() -> None:
    sessions = Sessions(max_sessions=2)
    first = sessions.open("t", "d", "n", now=0.0)
    assert sessions.get(first.id, IDLE_SECONDS - 1) is first
    assert sessions.get(first.id, 2 * IDLE_SECONDS - 2) is first  # each request resets idle
    assert sessions.get(first.id, 3 * IDLE_SECONDS) is None  # idle too long
    busy = sessions.open("t", "d", "n", now=0.0)
    at = 0.0
    while at < MAX_AGE_SECONDS - IDLE_SECONDS:
        at += IDLE_SECONDS / 2
        assert sessions.get(busy.id, at) is busy
    assert sessions.get(busy.id, MAX_AGE_SECONDS) is None  # too old, however busy
    a, b, c = (sessions.open("t", "d", "n", now=0.0) for _ in range(3))
    assert len(sessions) == 2 and sessions.get(a.id, 1.0) is None
    assert sessions.get(b.id, 1.0) is b and sessions.get(c.id, 1.0) is c
    assert len({a.id, b.id, c.id, a.csrf, b.csrf, c.csrf}) == 6


async def _campaign_status(rig: Rig, campaign: str) -> str:
    got = await rig.api.request("GET", f"/v1/campaigns/{campaign}", token=A_FULL)
    assert got.status == 200, got.text
    return str(got.body["status"])


async def test_campaigns_are_listed_and_started_paused_and_cancelled_through_the_api(
    rig: Rig,
) -> None:
    world = await World(rig).build()  # account a's campaign "spring", a draft of one recipient
    campaign = world.campaign
    client = await browser(rig)
    try:
        await sign_in(client, A_FULL)
        page = await client.get(f"{CONSOLE_PREFIX}/campaigns")
        html = await page.text()
        assert page.status == 200 and "spring" in html and "draft" in html
        csrf = csrf_of(html)
        for action in ("start", "cancel"):  # what a draft allows
            assert f"/campaigns/{campaign}/{action}" in html
        assert f"/campaigns/{campaign}/resume" not in html
        act = f"{CONSOLE_PREFIX}/campaigns/{campaign}"
        # Without the CSRF token nothing happens.
        refused = await client.post(f"{act}/start", data={}, allow_redirects=False)
        assert refused.status == 403
        assert await _campaign_status(rig, campaign) == "draft"
        started = await client.post(f"{act}/start", data={"csrf": csrf}, allow_redirects=False)
        assert started.status == 303
        assert await _campaign_status(rig, campaign) in ("running", "scheduled", "done")
        # A transition its status does not allow: the API's 409, shown.
        again = await client.post(f"{act}/start", data={"csrf": csrf})
        assert again.status == 409
        assert "cannot start a campaign that is" in await again.text()
        if await _campaign_status(rig, campaign) != "done":
            paused = await client.post(f"{act}/pause", data={"csrf": csrf}, allow_redirects=False)
            assert paused.status == 303
            assert await _campaign_status(rig, campaign) == "paused"
            cancelled = await client.post(
                f"{act}/cancel", data={"csrf": csrf}, allow_redirects=False
            )
            assert cancelled.status == 303
            assert await _campaign_status(rig, campaign) == "cancelled"
        assert (await client.post(f"{act}/delete", data={"csrf": csrf})).status == 404
    finally:
        await client.close()


async def test_campaign_pages_and_actions_follow_the_tokens_scope_and_account(rig: Rig) -> None:
    world = await World(rig).build()
    campaign = world.campaign
    other = await browser(rig)
    try:
        await sign_in(other, B_FULL)  # another account: a's campaign is neither listed nor moved
        page = await other.get(f"{CONSOLE_PREFIX}/campaigns")
        html = await page.text()
        assert page.status == 200 and "spring" not in html and "No campaigns yet." in html
        tried = await other.post(
            f"{CONSOLE_PREFIX}/campaigns/{campaign}/start", data={"csrf": csrf_of(html)}
        )
        assert tried.status == 404 and "no campaign with this id" in await tried.text()
        assert await _campaign_status(rig, campaign) == "draft"
    finally:
        await other.close()
    sender = await browser(rig)
    try:
        await sign_in(sender, A_SEND)  # no campaigns scope
        page = await sender.get(f"{CONSOLE_PREFIX}/campaigns")
        html = await page.text()
        assert page.status == 403 and "the route needs the &#39;campaigns&#39; scope" in html
        tried = await sender.post(
            f"{CONSOLE_PREFIX}/campaigns/{campaign}/start", data={"csrf": csrf_of(html)}
        )
        assert tried.status == 403
        assert await _campaign_status(rig, campaign) == "draft"
    finally:
        await sender.close()


def test_the_last_hour_is_binned_by_minute_into_sent_delivered_and_failed() -> None:
    now = 1_900_000_000.0 + 30  # half a minute into the current minute
    current = int(now) // 60 * 60
    rows = [
        (current, "delivered", 3),
        (current, "submitted", 2),
        (current, "accepted", 7),  # not sent yet: in no line
        (current - 60, "undeliverable", 1),  # sent, then failed
        (current - 60, "rejected", 4),  # failed without being sent
        (current - 59 * 60, "expired", 5),  # the oldest minute shown
        (current - 60 * 60, "delivered", 100),  # an hour ago: out of the chart
    ]
    series = minute_series(rows, now)
    assert series.start == current - 59 * 60
    assert series.counts["delivered"][-1] == 3 and series.counts["sent"][-1] == 5
    assert series.counts["failed"][-2] == 5 and series.counts["sent"][-2] == 1
    assert series.counts["failed"][0] == 5 and series.counts["sent"][0] == 5
    assert series.totals() == {"sent": 11, "delivered": 3, "failed": 10}
    svg = minutes_svg(series)
    assert svg.startswith("<svg") and svg.count("<polyline") == 3
    assert "style" not in svg and "script" not in svg  # nothing the CSP would refuse
    assert "sent (11)" in svg and "failed (10)" in svg


async def test_the_overview_counts_the_last_hours_messages_from_the_store(rig: Rig) -> None:
    rig.clock[0] = NOW - 3600  # an hour before: not counted
    await _a_message(rig)
    rig.clock[0] = NOW
    ids = [await _a_message(rig) for _ in range(3)]
    rows = await rig.store.minute_counts(NOW - 3600 + 1)
    assert rows == [(int(NOW) // 60 * 60, "accepted", 3)]
    client = await browser(rig)
    try:
        await sign_in(client, A_SEND)
        body = await (await client.get(f"{CONSOLE_PREFIX}/overview.json")).json()
        assert body["last_hour"] == {"sent": 0, "delivered": 0, "failed": 0}  # none sent yet
        chart = await client.get(f"{CONSOLE_PREFIX}/overview/minutes.svg")
        assert chart.status == 200 and chart.content_type == "image/svg+xml"
        assert "<polyline" in await chart.text()
    finally:
        await client.close()
    assert len(set(ids)) == 3


async def test_the_interactions_page_is_the_operators_as_in_the_api(rig: Rig) -> None:
    for token, status, text in (
        (ADMIN, 200, "No interactions."),
        (A_FULL, 403, "the route needs the &#39;admin&#39; scope"),
    ):
        client = await browser(rig)
        try:
            await sign_in(client, token)
            page = await client.get(f"{CONSOLE_PREFIX}/interactions")
            html = await page.text()
            assert page.status == status and text in html, html
        finally:
            await client.close()
    client = await browser(rig)
    try:
        await sign_in(client, ADMIN)
        page = await client.get(f"{CONSOLE_PREFIX}/interactions", params={"source": "<x>"})
        html = await page.text()
        assert "No interactions match these filters." in html
        assert 'value="&lt;x&gt;"' in html
    finally:
        await client.close()


async def test_a_campaign_is_made_with_the_form_through_the_api(rig: Rig) -> None:
    world = await World(rig).build()  # a's list (one contact) and a draft campaign
    client = await browser(rig)
    try:
        await sign_in(client, A_FULL)
        form = await client.get(f"{CONSOLE_PREFIX}/campaigns/new")
        html = await form.text()
        assert form.status == 200 and "a&#39;s customers" in html
        csrf = csrf_of(html)
        fields = {"name": "autumn", "from": "ACME", "text": "Hi {name}", "lists": world.list_id}
        refused = await client.post(f"{CONSOLE_PREFIX}/campaigns/new", data=fields)
        assert refused.status == 403  # no CSRF token: nothing made
        bad = await client.post(
            f"{CONSOLE_PREFIX}/campaigns/new",
            data={**fields, "csrf": csrf, "name": "", "text": "<b>kept</b>"},
        )
        html = await bad.text()
        assert bad.status == 400 and "<strong>name</strong>" in html
        assert "&lt;b&gt;kept&lt;/b&gt;</textarea>" in html  # what was typed stays, escaped
        made = await client.post(
            f"{CONSOLE_PREFIX}/campaigns/new",
            data={**fields, "csrf": csrf, "two_way": "on"},
            allow_redirects=False,
        )
        assert made.status == 303
    finally:
        await client.close()
    listed = await rig.api.request("GET", "/v1/campaigns", token=A_FULL)
    autumn = [c for c in listed.body["items"] if c["name"] == "autumn"]
    assert len(autumn) == 1 and autumn[0]["two_way"] is True
    assert autumn[0]["lists"] == [world.list_id] and autumn[0]["status"] == "draft"
    # Another account cannot aim a campaign at a's list: the API's refusal is shown.
    other = await browser(rig)
    try:
        await sign_in(other, B_FULL)
        form = await other.get(f"{CONSOLE_PREFIX}/campaigns/new")
        html = await form.text()
        assert "a&#39;s customers" not in html
        tried = await other.post(
            f"{CONSOLE_PREFIX}/campaigns/new", data={**fields, "csrf": csrf_of(html)}
        )
        assert tried.status >= 400 and "<strong>lists" in await tried.text()
    finally:
        await other.close()


async def test_a_list_is_made_and_filled_from_a_csv_upload_through_the_api(rig: Rig) -> None:
    client = await browser(rig)
    try:
        await sign_in(client, A_FULL)
        page = await client.get(f"{CONSOLE_PREFIX}/lists")
        csrf = csrf_of(await page.text())
        assert (await client.post(f"{CONSOLE_PREFIX}/lists", data={"name": "x"})).status == 403
        made = await client.post(
            f"{CONSOLE_PREFIX}/lists", data={"name": "<u>vip</u>", "csrf": csrf}
        )
        html = await made.text()
        assert made.status == 200 and "&lt;u&gt;vip&lt;/u&gt;" in html  # after the redirect
        listed = await rig.api.request("GET", "/v1/lists", token=A_FULL)
        (vip,) = [x for x in listed.body["items"] if x["name"] == "<u>vip</u>"]
        form = FormData()
        form.add_field("csrf", csrf)
        form.add_field(
            "file",
            b"number,name\n+33612345001,Ann\n+33612345002,Bob\nnot-a-number,Eve\n",
            filename="vip.csv",
            content_type="text/csv",
        )
        sent = await client.post(
            f"{CONSOLE_PREFIX}/lists/{vip['id']}/import", data=form, allow_redirects=False
        )
        assert sent.status == 303, await sent.text()
        await rig.importer.wait()
        shown = await client.get(sent.headers["Location"])
        html = await shown.text()
        assert "done" in html and "2 imported, 1 rejected" in html, html
    finally:
        await client.close()
    other = await browser(rig)
    try:
        await sign_in(other, B_FULL)  # a's list is not b's to fill
        page = await other.get(f"{CONSOLE_PREFIX}/lists")
        html = await page.text()
        assert "vip" not in html
        form = FormData()
        form.add_field("csrf", csrf_of(html))
        form.add_field("file", b"number\n+33612345003\n", filename="x.csv")
        tried = await other.post(f"{CONSOLE_PREFIX}/lists/{vip['id']}/import", data=form)
        assert tried.status == 404 and "The import was refused" in await tried.text()
    finally:
        await other.close()


async def test_a_campaigns_page_shows_what_the_api_lets_the_token_see(rig: Rig) -> None:
    world = await World(rig).build()  # a's draft "spring"
    page_path = f"{CONSOLE_PREFIX}/campaigns/{world.campaign}"
    for token, status, text in (
        (A_FULL, 200, '<h2 id="h-funnel">Funnel</h2>'),
        (B_FULL, 404, "no campaign with this id"),  # another account's
        (A_SEND, 403, "the route needs the &#39;campaigns&#39; scope"),
    ):
        client = await browser(rig)
        try:
            await sign_in(client, token)
            page = await client.get(page_path)
            html = await page.text()
            assert page.status == status and text in html, (token, html)
            if status == 200:  # a draft: nothing moves, no refresh; its actions are there
                assert "data-live-url" not in html and "start when the campaign does" in html
                assert f"/campaigns/{world.campaign}/start" in html
                assert 'role="img"' in html and '<title id="funnel-t">Funnel</title>' in html
        finally:
            await client.close()
    client = await browser(rig)
    try:
        await sign_in(client, A_FULL)
        html = await (await client.get(page_path)).text()
        started = await client.post(
            f"{page_path}/start",
            data={"csrf": csrf_of(html), "back": "campaign"},
            allow_redirects=False,
        )
        assert started.status == 303 and started.headers["Location"] == page_path
        html = await (await client.get(page_path)).text()
        status = await _campaign_status(rig, world.campaign)
        assert ("data-live-url" in html) == (status in ("scheduled", "running", "paused")), status
    finally:
        await client.close()


def test_a_campaign_keeps_refreshing_while_its_replies_are_still_matched() -> None:
    from gateway.console.campaign import still_moving

    done = {"status": "done", "finished_at": "2030-01-01T00:00:00.000Z", "reply_window_days": 2}
    finished = 1893456000.0  # 2030-01-01T00:00:00Z
    assert still_moving(done, finished + 86400)
    assert not still_moving(done, finished + 2 * 86400)
    assert still_moving({"status": "running"}, 0.0)
    assert not still_moving({"status": "draft"}, 0.0)
    assert not still_moving({**done, "status": "cancelled"}, finished)


def test_charts_escape_their_text_and_carry_a_title_and_description() -> None:
    from gateway.console.charts import Series, bar_chart, line_chart

    svg = bar_chart("k", "<b>t</b>", "d & e", [("<script>", 3), ("NO", 1)], "#000")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert '<title id="k-t">&lt;b&gt;t&lt;/b&gt;</title>' in svg and "d &amp; e" in svg
    assert "style" not in svg and "%" not in svg  # no share unless asked
    line = line_chart("h", "T", "D", ["a", "b"], [Series("sent", "Sent", [1, 2])])
    assert line.count("<polyline") == 1 and "Sent (3)" in line and "style" not in line


async def test_contacts_and_opt_outs_pages_follow_the_tokens_scope_and_account(rig: Rig) -> None:
    world = await World(rig).build()  # a's list with world.number
    contact = f"{CONSOLE_PREFIX}/contacts/{world.number.replace('+', '%2B')}"
    client = await browser(rig)
    try:
        await sign_in(client, A_FULL)
        page = await client.get(contact)
        html = await page.text()
        assert page.status == 200 and "a&#39;s customers" in html
        csrf = csrf_of(html)
        form = {"csrf": csrf, "number": world.number, "sender": ""}
        assert (
            await client.post(f"{CONSOLE_PREFIX}/opt-outs", data={**form, "csrf": ""})
        ).status == 403
        added = await client.post(f"{CONSOLE_PREFIX}/opt-outs", data=form, allow_redirects=False)
        assert added.status == 303
        # Lifting a STOP is the operator's: the API's 403, shown; the opt-out stays.
        lifted = await client.post(f"{CONSOLE_PREFIX}/opt-outs/lift", data=form)
        assert (
            lifted.status == 403
            and "the route needs the &#39;admin&#39; scope" in await lifted.text()
        )
        listed = await client.get(f"{CONSOLE_PREFIX}/opt-outs")
        assert world.number in await listed.text()
    finally:
        await client.close()
    other = await browser(rig)
    try:
        await sign_in(other, B_FULL)
        page = await other.get(contact)
        assert page.status == 404 and "no contact with this number" in await page.text()
        found = await other.get(f"{CONSOLE_PREFIX}/contacts", params={"q": world.number})
        assert "No contacts found." in await found.text()
        opt_outs = await (await other.get(f"{CONSOLE_PREFIX}/opt-outs")).text()
        assert "No opt-outs." in opt_outs and f">{world.number}<" not in opt_outs
    finally:
        await other.close()


async def test_the_numbers_pages_are_the_operators_as_in_the_api(rig: Rig) -> None:
    client = await browser(rig)
    try:
        await sign_in(client, A_FULL)
        page = await client.get(f"{CONSOLE_PREFIX}/numbers")
        html = await page.text()
        assert page.status == 403 and "the route needs the &#39;admin&#39; scope" in html
        tried = await client.post(
            f"{CONSOLE_PREFIX}/numbers/36180",
            data={"csrf": csrf_of(html), "help_text": "x", "rule_rows": "0"},
        )
        assert tried.status == 403
    finally:
        await client.close()
    assert (await rig.api.request("GET", "/v1/numbers/36180")).status == 404  # not made


async def test_failed_sign_ins_from_one_address_are_throttled_counted_and_logged(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.console.throttle import FAILURES_ALLOWED, REFILL_SECONDS
    from gateway.http.app import CONSOLE_KEY

    app = rig.api.client.server.app
    assert app is not None
    console = app[CONSOLE_KEY]
    client = await browser(rig)
    try:
        for _ in range(FAILURES_ALLOWED):
            assert (await sign_in(client, "guess")).status == 401
        # The next one is refused before its token is looked at: even the right one.
        refused = await sign_in(client, ADMIN)
        assert refused.status == 429 and int(refused.headers["Retry-After"]) == REFILL_SECONDS
        assert "Too many failed sign-ins from this address" in await refused.text()
        assert SESSION_COOKIE not in {c.key for c in client.session.cookie_jar}
        assert console.refusals.counts["throttled"] == 1
        assert console.refusals.counts["bad_token"] == FAILURES_ALLOWED
        metric, _ = console.collect()
        counted = {x.labels["reason"]: x.value for x in metric.samples if x.name.endswith("_total")}
        assert counted["throttled"] == 1
        logged = [
            getattr(r, "smsgw_fields", {})
            for r in caplog.records
            if r.getMessage() == "console.refused"
        ]
        assert {"reason": "throttled", "count": 1} in logged  # rate-limited per reason
        # One more try once the bucket refilled by one (time passed in, no sleep).
        rig.clock[0] += REFILL_SECONDS
        assert (await sign_in(client, "guess")).status == 401
        assert (await sign_in(client, ADMIN)).status == 429
        rig.clock[0] += REFILL_SECONDS
        assert (await sign_in(client, ADMIN)).status == 303  # and a success forgets it all
        assert len(console.throttle) == 0
    finally:
        await client.close()


def test_the_throttle_stays_bounded_and_forgets_refilled_addresses() -> None:
    from gateway.console.throttle import SignInThrottle

    throttle = SignInThrottle(allowed=2, refill_seconds=10.0, max_addresses=3)
    for address in ("a", "b", "c", "d"):
        throttle.failed(address, 0.0)
    assert len(throttle) == 3 and throttle.wait("a", 0.0) == 0  # "a" went first
    throttle.failed("b", 1.0)
    assert throttle.wait("b", 1.0) > 0 and throttle.wait("c", 1.0) == 0
    assert throttle.wait("b", 11.0) == 0
    throttle.wait("c", 100.0)  # refilled: forgotten
    assert len(throttle) == 2
