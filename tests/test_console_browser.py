"""The web console in a real browser: Playwright drives Debian's Chromium (headless) against a
whole gateway bound to the bundled simulator. Screenshots of each page are written to
``var/screenshots/`` (not committed) for a reviewer to look at.

Without ``/usr/bin/chromium`` the module skips, except under CI (``CI`` set), where .ci/run
installs it and a missing browser is a failure."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e_helpers import TOKEN, Lab, eventually, simulator_config
from tests.test_e2e_campaigns import call

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium reaches for the network at start and its connections are
    # refused on a closed machine.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000
"""How long a step may wait for the page (generous: the machine may be loaded)."""

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("console"), simulator_config())
    await lab.start()
    try:
        yield lab
    finally:
        await lab.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(lab: Lab) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        chromium = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh context (no cookies) per test, laptop width."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    page.set_default_timeout(WAIT_MS)
    try:
        yield page
    finally:
        await context.close()
    assert dialogs == [], f"a script ran in the page: {dialogs}"


async def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def doc_shot(page: Any, name: str, top: str | None = None) -> None:
    """A small picture for the README (``var/screenshots/doc/``, 1000 px wide, the window
    only, from the element ``top`` when given); docs/console/ holds optimised copies."""
    size = page.viewport_size
    await page.set_viewport_size({"width": 1000, "height": 720})
    if top is not None:
        await page.locator(top).evaluate("e => e.scrollIntoView()")
    (SCREENSHOTS / "doc").mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "doc" / f"{name}.png"))
    await page.set_viewport_size(size)


async def sign_in(page: Any, lab: Lab, token: str = TOKEN) -> None:
    await page.goto(lab.gw_url + "/")  # "/" leads to the console, which asks to sign in
    assert page.url.endswith("/console/signin")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/")


async def test_sign_in_shows_the_overview_with_the_simulator_bound(page: Any, lab: Lab) -> None:
    await page.goto(lab.gw_url + "/console/signin")
    await shot(page, "signin")
    await doc_shot(page, "signin")
    await page.get_by_label("API token").fill("not-the-token")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("This token is not valid.").wait_for()
    assert lab.http is not None
    async with lab.http.get(lab.gw_url + "/metrics") as scraped:  # counted, as /metrics says
        assert 'smsgw_console_refused_total{reason="bad_token"} 1.0' in await scraped.text()
    await sign_in(page, lab)
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["smsgw_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["expires"] > 0
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script sees it
    binds = page.locator("#ov-binds tr")
    assert await binds.count() == 2  # the lab's carrier has two binds
    for row in range(2):
        text = await binds.nth(row).inner_text()
        assert "sim" in text and "bound" in text, text
    assert await page.locator("#ov-status").inner_text() == "ok"
    # The overview refreshes by itself (console.js, allowed by the CSP as a file of ours).
    await playwright_api.expect(page.locator("#ov-updated")).to_have_text(
        re.compile(r"^updated "), timeout=WAIT_MS
    )
    assert await page.locator("#ov-binds tr").count() == 2
    chart = page.get_by_role("img", name=re.compile("messages made in each of the last 60"))
    assert await chart.evaluate("img => img.complete && img.naturalWidth") == 720  # drawn
    await shot(page, "overview")
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    await shot(page, "overview-phone")
    nav = page.get_by_role("navigation", name="Console")
    assert await nav.get_by_role("link", name="Messages").is_visible()


async def test_a_message_is_found_by_id_client_ref_or_number_and_shown_as_text(
    page: Any, lab: Lab
) -> None:
    evil = "<script>alert(1)</script>"
    sent = await lab.post(
        "/v1/messages",
        {
            "to": "+33612345678",
            "from": "ACME",
            "text": "Hello from the console",
            "client_ref": evil,
        },
    )
    message_id = sent["id"]

    async def delivered() -> bool:
        return bool((await lab.get(f"/v1/messages/{message_id}"))["status"] == "delivered")

    await eventually(delivered)
    await sign_in(page, lab)
    await page.get_by_role("link", name="Messages").click()
    search = page.get_by_label("Message id, client_ref or number")
    await search.fill(message_id)
    await search.press("Enter")  # keyboard only
    await page.wait_for_url(f"**/console/messages/{message_id}")
    facts = page.locator("dl.facts")
    assert "delivered" in await facts.inner_text()
    # The client_ref shows as text: no element made of it, no script run (the page fixture
    # fails the test on any dialog).
    assert evil in await facts.inner_text()
    assert await page.locator("main script").count() == 0
    parts = await page.locator("table").first.inner_text()
    assert "sim" in parts and "delivered" in parts
    history = await page.locator("table").nth(1).inner_text()
    assert "queued" in history or "submitted" in history, history
    await shot(page, "message")
    await doc_shot(page, "message")
    # By client_ref (the search tells an id, a number and a client_ref apart by itself).
    await search.fill(evil)
    await page.get_by_role("button", name="Look up").click()
    await page.wait_for_url("**/console/messages?q=*")
    listed = page.locator("main table tbody")
    assert evil in await listed.inner_text()
    await shot(page, "messages")
    await doc_shot(page, "messages")
    # By number, without its '+', then open the message from the list.
    await search.fill("33612345678")
    await search.press("Enter")
    await page.get_by_role("link", name=message_id).click()
    await page.wait_for_url(f"**/console/messages/{message_id}")
    await search.fill("no-such-ref")
    await search.press("Enter")
    await page.get_by_text("No messages found.").wait_for()


async def test_a_campaign_is_started_from_the_campaigns_page(page: Any, lab: Lab) -> None:
    # From the browser alone: a list, its contacts from a CSV file, a two-way campaign,
    # started; a recipient's reply then shows on the Interactions page with the campaign.
    await sign_in(page, lab)
    await page.get_by_role("link", name="Lists").click()
    await page.get_by_label("New list").fill("console")
    await page.get_by_role("button", name="Create the list").click()
    await page.wait_for_url("**/console/lists")
    await page.get_by_label("CSV file for console").set_input_files(
        {
            "name": "contacts.csv",
            "mimeType": "text/csv",
            "buffer": b"number,name\n+33612340001,Ann <b>Lee</b>\n+33612340002,Bob\n",
        }
    )
    await page.get_by_role("button", name="Import").click()
    await page.wait_for_url("**/console/lists?import=*")
    import_id = page.url.rsplit("=", 1)[1]

    async def imported() -> bool:  # the import runs in the background
        job = await call(lab, "GET", f"/v1/imports/{import_id}", 200)
        return bool(job["status"] == "done")

    await eventually(imported)
    await page.reload()
    assert "2 imported, 0 rejected" in await page.locator("section.card").inner_text()
    await shot(page, "lists")
    await page.get_by_role("link", name="Campaigns").click()
    await page.get_by_role("link", name="New campaign").click()
    await page.get_by_label("Name", exact=True).fill("Spring <i>sale</i>")
    await page.get_by_label("Sender").fill("ACME")
    await page.get_by_label("Text", exact=True).fill("Hi {name}")
    await page.get_by_label("console (2 contacts)").check()
    await page.get_by_label("Two-way").check()
    await shot(page, "campaign-new")
    await page.get_by_role("button", name="Create the campaign").click()
    await page.wait_for_url("**/console/campaigns")
    listed = await call(lab, "GET", "/v1/campaigns", 200)
    campaign = next(c for c in listed["items"] if c["name"] == "Spring <i>sale</i>")
    row = page.locator("tr", has_text="Spring <i>sale</i>")  # the name shows as text
    assert "draft" in await row.inner_text()
    await shot(page, "campaigns-draft")
    await row.get_by_role("button", name="Start Spring <i>sale</i>").click()
    await page.wait_for_url("**/console/campaigns")

    async def sent() -> bool:
        got = await call(lab, "GET", f"/v1/campaigns/{campaign['id']}/stats", 200)
        return bool(got["sent"] == 2 and got["delivered"] == 2)

    await eventually(sent)
    await page.reload()
    text = await page.locator("tr", has_text="Spring <i>sale</i>").inner_text()
    assert "draft" not in text and "100.0 %" in text, text  # delivered: 2 of 2
    await shot(page, "campaigns")
    await doc_shot(page, "campaigns")
    # The overview's last hour counts them (its store read is cached a few seconds; the
    # page refreshes itself until it shows them).
    await page.get_by_role("link", name="Overview").click()
    await playwright_api.expect(page.locator("#ov-last-hour")).to_contain_text(
        re.compile(r"\b([2-9]|\d\d+) delivered"), timeout=WAIT_MS
    )
    await shot(page, "overview-traffic")
    await doc_shot(page, "overview")
    # A recipient answers: the MO is logged against the two-way campaign.
    await lab.sim("POST", "/v1/mo", {"from": "+33612340002", "to": "ACME", "text": "Yes please"})
    await page.get_by_role("link", name="Interactions").click()

    async def replied() -> bool:
        found = await lab.get("/v1/interactions")
        return any(item["text"] == "Yes please" for item in found["items"])

    await eventually(replied)
    await page.reload()
    reply = page.locator("tr", has_text="Yes please")
    assert campaign["id"] in await reply.inner_text()


async def test_an_mo_with_html_in_it_shows_as_text_on_the_interactions_page(
    page: Any, lab: Lab
) -> None:
    evil = "<script>alert('mo')</script><img src=x onerror=alert(2)> <b>STOP</b> & co"
    await lab.sim("POST", "/v1/mo", {"from": "+33611112222", "to": "36999", "text": evil})

    async def logged() -> bool:
        found = await lab.get("/v1/interactions")
        return any(item["text"] == evil for item in found["items"])

    await eventually(logged)
    await sign_in(page, lab)
    await page.get_by_role("link", name="Interactions").click()
    await page.wait_for_url("**/console/interactions")
    cell = page.locator("td.text", has_text="STOP")
    assert await cell.inner_text() == evil  # every character as text
    assert await page.locator("main img, main b, main script").count() == 0
    await page.get_by_label("Subscriber").fill("+33611112222")
    await page.get_by_role("button", name="Filter").click()
    assert await page.locator("td.text").count() == 1
    await shot(page, "interactions")


async def test_a_form_without_its_csrf_token_is_refused_and_sign_out_ends_the_session(
    page: Any, lab: Lab
) -> None:
    await sign_in(page, lab)
    # The sign-out form with its CSRF token taken out, sent from the page itself.
    await page.evaluate("document.querySelector('form.signout input[name=csrf]').value = ''")
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_text("The form was refused").wait_for()
    await shot(page, "csrf-refused")
    await page.goto(lab.gw_url + "/console/")
    assert page.url.endswith("/console/")  # still signed in: the refused form did nothing
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/signin")
    await page.goto(lab.gw_url + "/console/messages")
    assert page.url.endswith("/console/signin")  # signed out


SHORT_CODE = "36100"
"""An inbound number of the lab's gateway, made through the API: campaign keywords are
matched on our own numbers."""


async def _started_two_way_campaign(lab: Lab, name: str, numbers: list[str]) -> dict[str, Any]:
    """A list of ``numbers`` (imported through the API) and a two-way draft from our short
    code aimed at it, with a YES and an INFO keyword."""
    await call(lab, "PUT", f"/v1/numbers/{SHORT_CODE}", 200, json={})
    made = await call(lab, "POST", "/v1/lists", 201, json={"name": f"{name} list"})
    assert lab.http is not None
    csv = "number,name\n" + "".join(f"{n},Fan {i}\n" for i, n in enumerate(numbers))
    job = await call(
        lab,
        "POST",
        f"/v1/lists/{made['id']}/import",
        202,
        data=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )

    async def imported() -> bool:
        got = await call(lab, "GET", f"/v1/imports/{job['import_id']}", 200)
        return bool(got["status"] == "done")

    await eventually(imported)
    rules = [
        {"name": "yes", "keyword": "YES", "actions": [{"type": "reply", "text": "Thanks!"}]},
        {"name": "info", "keyword": "INFO", "actions": [{"type": "reply", "text": "Info."}]},
    ]
    return dict(
        await call(
            lab,
            "POST",
            "/v1/campaigns",
            201,
            json={
                "name": name,
                "from": SHORT_CODE,
                "text": "Jazz night on Friday. Reply YES or INFO",
                "lists": [made["id"]],
                "two_way": True,
                "keywords": rules,
            },
        )
    )


async def test_a_campaigns_page_shows_its_funnel_charts_and_keywords_as_they_come(
    page: Any, lab: Lab
) -> None:
    numbers = [f"+3361555000{i}" for i in range(3)]
    campaign = await _started_two_way_campaign(lab, "Jazz <em>night</em>", numbers)
    await sign_in(page, lab)
    await page.get_by_role("link", name="Campaigns").click()
    await page.get_by_role("link", name="Jazz <em>night</em>").click()  # the name as text
    await page.wait_for_url(f"**/console/campaigns/{campaign['id']}")
    assert await page.locator("main em").count() == 0
    assert await page.locator("#campaign-status").inner_text() == "draft"
    # Start, without the CSRF token first: refused, nothing started.
    start = page.get_by_role("button", name="Start")
    await page.evaluate(
        "document.querySelectorAll('.actions input[name=csrf]').forEach(i => i.value = 'x')"
    )
    await start.click()
    await page.get_by_text("The form was refused").wait_for()
    assert (await call(lab, "GET", f"/v1/campaigns/{campaign['id']}", 200))["status"] == "draft"
    await page.go_back()
    await page.reload()
    await page.get_by_role("button", name="Start").click()
    await page.wait_for_url(f"**/console/campaigns/{campaign['id']}")

    async def delivered() -> bool:
        got = await call(lab, "GET", f"/v1/campaigns/{campaign['id']}/stats", 200)
        return bool(got["delivered"] == 3)

    await eventually(delivered)
    # Two recipients answer; the page shows it by itself (no reload): funnel and keywords.
    for number, text in ((numbers[0], "yes please"), (numbers[1], "INFO")):
        await lab.sim("POST", "/v1/mo", {"from": number, "to": SHORT_CODE, "text": text})
    funnel = page.locator("#funnel-table")
    await playwright_api.expect(funnel.locator("tr", has_text="Replied")).to_contain_text(
        "2", timeout=WAIT_MS
    )
    assert "Delivered 3 100.0 %" in " ".join((await funnel.inner_text()).split())
    keywords = page.locator("#keywords-table")
    await playwright_api.expect(keywords).to_contain_text("YES", timeout=WAIT_MS)
    assert "INFO" in await keywords.inner_text()
    # Charts: inline SVG with a title and a description, and the same figures as a table.
    desc = await page.locator("#per-hour-d").text_content()
    assert desc is not None and "sent 3" in desc and "replies 2" in desc, desc
    assert await page.get_by_role("img", name="The first 10 days, by the day").count() == 1
    await doc_shot(page, "campaign", top="#h-hours")
    await page.get_by_text("The figures as a table").first.click()  # the hourly table
    first_hour = page.locator("section", has_text="The first 24 hours").locator("tbody tr").first
    assert " ".join((await first_hour.inner_text()).split()).startswith("+0 h 3 3 0 2")
    # Keyboard users keep their place while the figures refresh around them.
    await page.locator("#h-days-table").focus()
    note = page.locator("#campaign-updated")
    before = await note.inner_text()
    await playwright_api.expect(note).not_to_have_text(before, timeout=WAIT_MS)
    assert await page.evaluate("document.activeElement.id") == "h-days-table"
    await shot(page, "campaign")
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    assert await page.get_by_role("button", name="Pause").is_visible() or (
        await page.locator("#campaign-status").inner_text() == "done"
    )
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width  # nothing wider than the phone: charts shrink
    await shot(page, "campaign-phone")


PREVIEW_TEXTS = (
    "Hi {first_name}",
    "x" * 160,
    "x" * 161,
    "€" * 80,  # 160 septets: an extension character costs two
    "€" * 81,
    "a" * 152 + "€" * 2,  # the escape pair is not cut at the part's end
    "Zażółć gęślą jaźń",
    "🎷" * 35,  # 70 UTF-16 units
    "🎷" * 36,  # a surrogate pair is not cut either
)


async def test_a_campaign_is_made_with_every_field_and_its_draft_edited(
    page: Any, lab: Lab
) -> None:
    from gateway.smpp.text import Encoding, split_message

    made = await call(lab, "POST", "/v1/lists", 201, json={"name": "form list"})
    await sign_in(page, lab)
    await page.goto(lab.gw_url + "/console/campaigns/new")
    text = page.get_by_label("Text", exact=True)
    preview = page.locator("#text-preview")
    # The live preview says what the gateway will do with the text: its encoding and parts.
    for sample in PREVIEW_TEXTS:
        await text.fill(sample)
        split = split_message(sample, ref=0)
        expected = "GSM-7" if split.encoding is Encoding.GSM7 else "UCS-2"
        await playwright_api.expect(preview).to_have_attribute("data-encoding", expected)
        assert await preview.get_attribute("data-parts") == str(len(split.parts)), sample
    assert "UCS-2 because of “🎷”" in await preview.inner_text()  # the last sample
    await page.get_by_label("Name", exact=True).fill("Autumn <b>fair</b>")
    await page.get_by_label("Sender").fill(SHORT_CODE)
    await text.fill("Autumn fair on Sunday: reply YES")
    await page.get_by_label("form list (0 contacts)").check()
    await page.get_by_label("Two-way").check()
    await page.get_by_label("Replies are matched for (days)").fill("3")
    await page.get_by_label("Courtesy reply").fill("Thanks, we read every reply.")
    await page.locator("#rule-0-keyword").fill("YES")
    await page.locator("#rule-0-aliases").fill("OUI, SI")
    await page.locator("#rule-0-action-0-type").select_option("reply")
    await page.locator("#rule-0-action-0-text").fill("See you there!")
    await page.locator("#rule-0-action-1-type").select_option("tag")
    await page.locator("#rule-0-action-1-param").fill("fair-yes")
    await page.get_by_label("Send only from").fill("08:00")
    await page.get_by_label("to", exact=True).fill("21:00")
    await page.get_by_label("Time zone").fill("Europe/Paris")
    await page.get_by_label("Messages per second").fill("20")
    await page.get_by_label("Digest addresses").fill("ops@example.net, not-an-address")
    await page.get_by_label("Send the digest for (days)").fill("4")
    await page.get_by_role("button", name="Create the campaign").click()
    # The API's refusal shows beside the field; what was typed stays.
    refusal = page.locator("#err-digest_to")
    await playwright_api.expect(refusal).to_contain_text("is not an e-mail address")
    assert await page.get_by_label("Digest addresses").get_attribute("aria-invalid") == "true"
    assert await page.locator("#rule-0-action-0-text").input_value() == "See you there!"
    await shot(page, "campaign-form-error")
    await page.get_by_label("Digest addresses").fill("ops@example.net")
    await page.get_by_role("button", name="Create the campaign").click()
    await page.wait_for_url("**/console/campaigns")
    listed = await call(lab, "GET", "/v1/campaigns", 200)
    campaign = next(c for c in listed["items"] if c["name"] == "Autumn <b>fair</b>")
    assert campaign["lists"] == [made["id"]] and campaign["two_way"] is True
    assert campaign["reply_window_days"] == 3 and campaign["tps"] == 20
    assert campaign["courtesy_reply"] == "Thanks, we read every reply."
    assert campaign["send_window"] == {"from": "08:00", "to": "21:00", "time_zone": "Europe/Paris"}
    assert campaign["digest"] == {"to": ["ops@example.net"], "days": 4}
    assert campaign["keywords"] == [
        {
            "name": "yes",
            "keyword": "YES",
            "aliases": ["OUI", "SI"],
            "actions": [
                {"type": "reply", "text": "See you there!"},
                {"type": "tag", "tag": "fair-yes"},
            ],
        }
    ]
    # Edit the draft from its page: the form comes filled in.
    await page.get_by_role("link", name="Autumn <b>fair</b>").click()
    await page.get_by_role("link", name="Edit this draft").click()
    await page.wait_for_url(f"**/console/campaigns/{campaign['id']}/edit")
    assert await page.get_by_label("Time zone").input_value() == "Europe/Paris"
    assert await page.locator("#rule-0-keyword").input_value() == "YES"
    await page.locator("#rule-1-keyword").fill("INFO")
    await page.locator("#rule-1-action-0-type").select_option("help")
    await page.locator("#rule-0-action-1-type").select_option("")  # the tag action goes
    await text.fill("Autumn fair moved to Saturday: reply YES")
    await shot(page, "campaign-edit")
    await doc_shot(page, "campaign-form", top="h1")
    # Without the CSRF token the edit is refused and changes nothing.
    await page.evaluate("document.querySelector('form.campaign input[name=csrf]').value = ''")
    await page.get_by_role("button", name="Save the draft").click()
    await page.get_by_text("The form was refused").wait_for()
    got = await call(lab, "GET", f"/v1/campaigns/{campaign['id']}", 200)
    assert got == campaign
    await page.go_back()
    await page.reload()
    await page.get_by_role("button", name="Save the draft").click()
    await page.wait_for_url(f"**/console/campaigns/{campaign['id']}")
    got = await call(lab, "GET", f"/v1/campaigns/{campaign['id']}", 200)
    assert got["text"] == "Autumn fair on Sunday: reply YES"  # a reload refilled the form
    edit = page.get_by_role("link", name="Edit this draft")
    await edit.click()
    await page.locator("#rule-1-keyword").fill("INFO")
    await page.locator("#rule-1-action-0-type").select_option("help")
    await page.locator("#rule-0-action-1-type").select_option("")
    await text.fill("Autumn fair moved to Saturday: reply YES")
    await page.get_by_role("button", name="Save the draft").click()
    await page.wait_for_url(f"**/console/campaigns/{campaign['id']}")
    got = await call(lab, "GET", f"/v1/campaigns/{campaign['id']}", 200)
    assert got["text"] == "Autumn fair moved to Saturday: reply YES"
    assert [r["keyword"] for r in got["keywords"]] == ["YES", "INFO"]
    assert got["keywords"][0]["actions"] == [{"type": "reply", "text": "See you there!"}]
    assert got["keywords"][1]["actions"] == [{"type": "help"}]
    assert got["digest"] == campaign["digest"] and got["status"] == "draft"
    # Once started, it is no longer editable: the link is gone, the form says why.
    await page.get_by_role("button", name="Start").click()
    await page.wait_for_url(f"**/console/campaigns/{campaign['id']}")
    assert await page.get_by_role("link", name="Edit this draft").count() == 0
    await page.goto(lab.gw_url + f"/console/campaigns/{campaign['id']}/edit")
    await page.get_by_text("Only a draft can be edited").wait_for()


async def test_contacts_are_found_and_opted_out_and_an_imports_rejected_rows_shown(
    page: Any, lab: Lab
) -> None:
    await sign_in(page, lab)
    await page.get_by_role("link", name="Lists").click()
    await page.get_by_label("New list").fill("people")
    await page.get_by_role("button", name="Create the list").click()
    await page.get_by_label("CSV file for people").set_input_files(
        {
            "name": "people.csv",
            "mimeType": "text/csv",
            "buffer": b"number,name,city\n+33617770001,Annabel <i>Lee</i>,Lyon\n"
            b"not-a-number,Eve,Nice\n+33617770002,Bob,Paris\n+33617770003\n",
        }
    )
    people = page.locator("form.import", has=page.get_by_label("CSV file for people"))
    await people.get_by_role("button", name="Import").click()
    await page.wait_for_url("**/console/lists?import=*")
    # The import's section follows it by itself until it is done (no reload here).
    status = page.locator("#import-status")
    await playwright_api.expect(status).to_have_text("done", timeout=WAIT_MS)
    assert await page.locator("#import-progress").get_attribute("value") == "1"
    figures = await page.locator("#import-figures").inner_text()
    assert figures == "4 rows read, 2 imported, 2 rejected.", figures
    rejected = page.locator("#rejected-rows tbody tr")
    assert await rejected.count() == 2
    assert (await rejected.nth(0).inner_text()).startswith("3")  # the header is row 1
    assert (await rejected.nth(1).inner_text()).startswith("5")
    await shot(page, "lists-import")
    await doc_shot(page, "lists", top="h1")
    # Contacts: the list's, then a search by name; the name shows as text.
    await page.get_by_role("link", name="people", exact=True).click()
    await page.wait_for_url("**/console/contacts?list_id=*")
    assert await page.locator("#contacts tbody tr").count() == 2
    await page.get_by_label("Number or name").fill("Annabel")
    await page.get_by_label("In list").select_option("")
    await page.get_by_role("button", name="Search").click()
    rows = page.locator("#contacts tbody tr")
    assert await rows.count() == 1
    assert "Annabel <i>Lee</i>" in await rows.first.inner_text()
    assert await page.locator("main i").count() == 0
    await shot(page, "contacts")
    await doc_shot(page, "contacts", top="h1")
    await rows.first.get_by_role("link", name="+33617770001").click()
    await page.wait_for_url("**/console/contacts/%2B33617770001")
    assert "people" in await page.locator("main table").first.inner_text()
    # Opt out from every sender, first without the CSRF token: refused, nothing added.
    await page.evaluate(
        "document.querySelectorAll('main input[name=csrf]').forEach(i => i.value = '')"
    )
    await page.get_by_role("button", name="Opt out").click()
    await page.get_by_text("The form was refused").wait_for()
    assert (await call(lab, "GET", "/v1/opt-outs", 200))["items"] == []
    await page.go_back()
    await page.reload()
    await page.get_by_role("button", name="Opt out").click()
    await page.wait_for_url("**/console/contacts/%2B33617770001")
    assert "every sender" in await page.locator("#contact-opt-outs").inner_text()
    await shot(page, "contact")
    # The Opt-outs page lists it, exports it, and an admin lifts it.
    await page.get_by_role("link", name="Opt-outs").click()
    listed = page.locator("#opt-outs tbody tr")
    assert await listed.count() == 1 and "+33617770001" in await listed.first.inner_text()
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download every opt-out as CSV").click()
    download = await download_info.value
    saved = Path(await download.path())
    exported = await asyncio.to_thread(saved.read_text, encoding="utf-8-sig")
    assert exported.splitlines()[0] == "number,sender,source,at"
    # As the API writes it: a cell a spreadsheet could take for a formula gets a quote.
    assert exported.splitlines()[1].startswith("'+33617770001,,api,")
    await page.get_by_label("Number to opt out").fill("not a number")
    await page.get_by_role("button", name="Add the opt-out").click()
    await page.get_by_text("number:").wait_for()  # the API's refusal, with its field
    assert await page.get_by_label("Number to opt out").input_value() == "not a number"
    await page.get_by_label("Number to opt out").fill("+33617770002")
    await page.get_by_label("From sender (empty: every sender)").fill("ACME")
    await page.get_by_role("button", name="Add the opt-out").click()
    await page.wait_for_url("**/console/opt-outs")
    assert await listed.count() == 2
    await shot(page, "opt-outs")
    await doc_shot(page, "opt-outs", top="h1")
    await page.get_by_role(
        "button", name="Lift the opt-out of +33617770001 from every sender"
    ).click()
    await page.wait_for_url("**/console/opt-outs")
    assert await listed.count() == 1 and "ACME" in await listed.first.inner_text()
    left = (await call(lab, "GET", "/v1/opt-outs", 200))["items"]
    assert [(o["number"], o["sender"]) for o in left] == [("+33617770002", "ACME")]


async def test_an_inbound_number_is_set_up_with_its_keywords_and_replies(
    page: Any, lab: Lab
) -> None:
    number = "36200"
    await sign_in(page, lab)
    await page.get_by_role("link", name="Numbers").click()
    await page.get_by_label("Add a number").fill(number)
    await page.get_by_role("button", name="Set it up").click()
    await page.get_by_text("A new number: it receives once saved.").wait_for()
    await page.get_by_label("Help text").fill("Fair info: reply PRICE.")
    await page.get_by_label("Courtesy reply").fill("We read <b>every</b> reply.")
    await page.get_by_label("More help words").fill("AIDE")
    await page.locator("#rule-0-keyword").fill("PRICE")
    await page.locator("#rule-0-action-0-type").select_option("reply")
    await page.locator("#rule-0-action-0-text").fill("10 EUR a ticket")
    await page.locator("#rule-0-action-1-type").select_option("tag")  # without its tag
    await page.get_by_role("button", name="Save the number").click()
    # The API's refusal beside the keyword's row; what was typed stays.
    await playwright_api.expect(page.locator("#err-rule-0")).to_contain_text("tag")
    assert await page.locator("#rule-0-action-0-text").input_value() == "10 EUR a ticket"
    await call(lab, "GET", f"/v1/numbers/{number}", 404)  # nothing saved
    await page.locator("#rule-0-action-1-param").fill("price-asked")
    await page.get_by_role("button", name="Save the number").click()
    await page.wait_for_url(f"**/console/numbers/{number}")
    saved = await call(lab, "GET", f"/v1/numbers/{number}", 200)
    assert saved["help_text"] == "Fair info: reply PRICE."
    assert saved["courtesy_reply"] == "We read <b>every</b> reply."
    assert saved["help_keywords"] == ["AIDE"]
    assert saved["keywords"][0]["actions"] == [
        {"type": "reply", "text": "10 EUR a ticket"},
        {"type": "tag", "tag": "price-asked"},
    ]
    # The list shows the number with its rule and replies, the HTML as text.
    await page.get_by_role("link", name="Numbers", exact=True).click()
    row = page.locator("#numbers tr", has_text=number)
    text = await row.inner_text()
    assert "PRICE" in text and "10 EUR a ticket" in text and "We read <b>every</b> reply." in text
    assert await page.locator("main b").count() == 0
    await shot(page, "numbers")
    await doc_shot(page, "numbers", top="h1")
    # The rule works: a subscriber's PRICE is matched on this number.
    await lab.sim("POST", "/v1/mo", {"from": "+33618880001", "to": number, "text": "price?"})

    async def matched() -> bool:
        found = await lab.get(f"/v1/interactions?number={number}")
        return any(i["keyword"] == "PRICE" for i in found["items"])

    await eventually(matched)
    # A save without the CSRF token changes nothing.
    await row.get_by_role("link", name=number).click()
    await page.get_by_label("Help text").fill("changed")
    await page.evaluate("document.querySelector('form.campaign input[name=csrf]').value = ''")
    await page.get_by_role("button", name="Save the number").click()
    await page.get_by_text("The form was refused").wait_for()
    assert (await call(lab, "GET", f"/v1/numbers/{number}", 200))["help_text"] != "changed"
    await page.go_back()
    await page.reload()
    await page.get_by_role("button", name=f"Remove {number}").click()
    await page.wait_for_url("**/console/numbers")
    assert await page.locator("#numbers tr", has_text=number).count() == 0


def _csv_rows(text: str) -> list[dict[str, str]]:
    """The rows of an export, numbers without the quote that keeps a spreadsheet from
    taking them for formulas."""
    import csv
    import io

    rows = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    return [{k: v.removeprefix("'") for k, v in row.items()} for row in rows]


async def _download(page: Any, click: Any) -> list[dict[str, str]]:
    async with page.expect_download() as info:
        await click()
    saved = Path(await (await info.value).path())
    return _csv_rows(await asyncio.to_thread(saved.read_text, encoding="utf-8"))


async def test_interactions_are_selected_exported_answered_and_followed_up(
    page: Any, lab: Lab
) -> None:
    ours = "36300"
    for source, text in (("+33619990001", "first <b>hi</b>"), ("+33619990002", "second")):
        await lab.sim("POST", "/v1/mo", {"from": source, "to": ours, "text": text})

    async def logged() -> bool:
        found = await lab.get(f"/v1/interactions?number={ours}")
        return len(found["items"]) == 2

    await eventually(logged)
    await sign_in(page, lab)
    await page.goto(lab.gw_url + f"/console/interactions?number={ours}")
    assert await page.locator("table.interactions tbody tr").count() == 2
    new = page.get_by_role("link", name="new since the last download")
    first = await _download(page, new.click)
    assert sorted(r["source"] for r in first) == ["+33619990001", "+33619990002"]
    assert await _download(page, new.click) == []  # nothing new since
    everything = await _download(page, page.get_by_role("link", name="all", exact=True).click)
    assert [r["text"] for r in everything] == ["first <b>hi</b>", "second"]
    # Tick one row: the CSV of the selection only.
    await page.get_by_label("Select the message from +33619990002", exact=False).check()
    picked = await _download(
        page, page.get_by_role("button", name="Download the selected as CSV").click
    )
    assert [r["source"] for r in picked] == ["+33619990002"]
    # E-mail the selection: this lab has no [digest] (no SMTP): the API's refusal, shown.
    await page.get_by_label("E-mail the selected").fill("care@example.net")
    await page.get_by_role("button", name="E-mail them").click()
    await page.get_by_text("The e-mail was not sent: no [digest] section").wait_for()
    await shot(page, "interactions-actions")
    await doc_shot(page, "interactions", top="h1")
    # Reply to one (helpdesk): its thread shows the MO as text, then the reply.
    await page.get_by_role("link", name="Reply to +33619990001").click()
    await page.wait_for_url("**/console/interactions/*")
    thread = page.locator("#thread")
    assert "first <b>hi</b>" in await thread.inner_text()
    assert await page.locator("main b").count() == 0
    await page.evaluate("document.querySelector('form.campaign input[name=csrf]').value = ''")
    await page.get_by_label("Reply to +33619990001").fill("Hello from care")
    await page.get_by_role("button", name="Send the reply").click()
    await page.get_by_text("The form was refused").wait_for()
    await page.go_back()
    await page.reload()
    await page.get_by_label("Reply to +33619990001").fill("Hello from care")
    await page.get_by_role("button", name="Send the reply").click()
    await page.wait_for_url("**/console/interactions/*")
    await playwright_api.expect(thread.locator("li.mt")).to_contain_text("Hello from care")
    assert "answered" in await page.locator("dl.facts").inner_text()
    await page.get_by_label("Care state").select_option("closed")
    await page.get_by_label("Assigned to").fill("ann")
    await page.get_by_role("button", name="Save").click()
    await page.get_by_text("closed, ann").wait_for()
    await shot(page, "interaction")
    await doc_shot(page, "interaction", top="h1")
    interaction_id = page.url.rsplit("/", 1)[1]
    got = await call(lab, "GET", f"/v1/interactions/{interaction_id}", 200)
    assert (got["care_state"], got["assignee"]) == ("closed", "ann")

    async def reply_delivered() -> bool:
        got = await call(lab, "GET", f"/v1/interactions/{interaction_id}", 200)
        return any(
            t["type"] == "mt" and t["message"]["status"] == "delivered" for t in got["thread"]
        )

    await eventually(reply_delivered)
    # A new campaign to those who replied YES to a campaign.
    numbers = ["+33619991001", "+33619991002"]
    campaign = await _started_two_way_campaign(lab, "Follow-up source", numbers)
    await call(lab, "POST", f"/v1/campaigns/{campaign['id']}/start", 200, json={})

    async def sent() -> bool:
        got = await call(lab, "GET", f"/v1/campaigns/{campaign['id']}/stats", 200)
        return bool(got["delivered"] == 2)

    await eventually(sent)
    await lab.sim("POST", "/v1/mo", {"from": numbers[1], "to": SHORT_CODE, "text": "YES"})

    async def answered() -> bool:
        got = await call(lab, "GET", f"/v1/campaigns/{campaign['id']}/stats", 200)
        return bool(got["answers_per_keyword"].get("YES") == 1)

    await eventually(answered)
    await page.goto(lab.gw_url + f"/console/interactions?campaign_id={campaign['id']}")
    await page.get_by_label("Only those who answered with the keyword").fill("YES")
    await page.get_by_label("Text", exact=True).fill("Your ticket is booked.")
    await page.get_by_role("button", name="Make the draft").click()
    await page.wait_for_url("**/console/campaigns/*")
    assert await page.locator("#campaign-status").inner_text() == "draft"
    assert campaign["id"] in await page.locator("dl.facts").inner_text()  # responders of it
    made = page.url.rsplit("/", 1)[1]
    await page.get_by_role("button", name="Start").click()

    async def followed_up() -> bool:
        got = await call(lab, "GET", f"/v1/campaigns/{made}/stats", 200)
        return bool(got["recipients"] == 1 and got["delivered"] == 1)

    await eventually(followed_up)


async def test_every_field_of_every_page_has_a_label(page: Any, lab: Lab) -> None:
    """Keyboard and screen-reader users: no input, select or text area without a name
    (a label, or an aria-label where a table row names it), none hidden from the Tab key."""
    campaigns = (await call(lab, "GET", "/v1/campaigns", 200))["items"]
    drafts = [c for c in campaigns if c["status"] == "draft"]
    interactions = (await lab.get("/v1/interactions"))["items"]
    paths = [
        "/console/",
        "/console/campaigns",
        "/console/campaigns/new",
        "/console/lists",
        "/console/contacts",
        "/console/opt-outs",
        "/console/numbers",
        f"/console/numbers/{SHORT_CODE}",
        "/console/interactions",
        "/console/messages",
    ]
    paths += [f"/console/campaigns/{c['id']}" for c in campaigns[:1]]
    paths += [f"/console/campaigns/{c['id']}/edit" for c in drafts[:1]]
    paths += [f"/console/interactions/{i['id']}" for i in interactions[:1]]
    await sign_in(page, lab)
    for path in paths:
        await page.goto(lab.gw_url + path)
        assert page.url.endswith(path), (path, page.url)
        unnamed = await page.evaluate(
            """() => Array.from(document.querySelectorAll(
                 'input:not([type=hidden]), select, textarea, button'))
               .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                            && !(e.tagName === 'BUTTON' && e.textContent.trim()))
               .map(e => e.outerHTML.slice(0, 80))"""
        )
        assert unnamed == [], (path, unnamed)
        untabbable = await page.evaluate(
            "() => Array.from(document.querySelectorAll('[tabindex]'))"
            ".filter(e => e.tabIndex < 0).length"
        )
        assert untabbable == 0, path
