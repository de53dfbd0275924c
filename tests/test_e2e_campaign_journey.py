"""One two-way campaign, whole (issue "Two-way campaigns as SMS platforms run them", Done
when): a contact list imported by CSV, a campaign made from a template (its preview checked
against what a handset got) with a short link and a keyword, sent through the simulator;
scripted subscribers who click (a browser GET), preview (a HEAD), reply YES and STOP through
the simulator's POST /v1/mo; a helpdesk reply. Then the funnel and timelines, one
subscriber's conversation, the interactions e-mailed as CSV (to aiosmtpd on 127.0.0.1) and
the signed status callbacks, each checked against what the simulator counted and what the
test itself did.

Campaigns carry no callback_url, so the signed callbacks come from two POST /v1/messages
with a callback_url in the same run."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app.daemon import Gateway
from gateway.config import CallbacksConfig, DigestConfig, SmtpConfig
from gateway.config.links import LinksConfig
from gateway.reports.csvfile import COLUMNS
from gateway.signing import SIGNATURE_HEADER
from smsc_simulator.config import OutcomesConfig, ReceiptsConfig
from tests.e2e_helpers import eventually, gateway_config, simulator_config
from tests.test_campaign_funnel import BROWSER, SHORT, FunnelLab, call
from tests.test_digest import Inbox, LoopbackController
from tests.test_e2e_inbound import SHORT_CODE, inbound_raw
from tests.test_interactions_email import attachment, smtp  # noqa: F401  (fixture)
from tests.test_signed_callbacks import (  # noqa: F401  (receiver: the fixture)
    ACCOUNT_SECRET,
    HOOK_SECRET,
    Receiver,
    receiver,
    verify,
)

CONTACTS = 16
TARGET = "https://tickets.example/jazz"
CITIES = ("Paris", "Lyon", "Nantes", "Lille")
TEXT = f"{{first_name}} in {{city}}: jazz night {{link:{TARGET}}} Reply YES"


class JourneyLab(FunnelLab):
    """The funnel lab (two-way short code, [links]) with the digest's SMTP pointed at a local
    aiosmtpd and the token's account signing its callbacks."""

    def __init__(self, tmp_path: Path, smtp_port: int, **sim: Any) -> None:
        super().__init__(tmp_path, inbound_raw("http://127.0.0.1:9/unused"), **sim)
        self.smtp_port = smtp_port

    async def start_gateway(self) -> None:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port)
        tokens = tuple(
            dataclasses.replace(t, signing_secrets=(ACCOUNT_SECRET,)) for t in config.http.tokens
        )
        server = SmtpConfig(host="127.0.0.1", port=self.smtp_port, security="none", timeout=5)
        config = dataclasses.replace(
            config,
            http=dataclasses.replace(config.http, tokens=tokens),
            inbound=self.inbound,
            callbacks=CallbacksConfig(allowed_networks=("127.0.0.0/8",)),
            links=LinksConfig(base_url="https://s.example.net", port=0),
            digest=DigestConfig(smtp=server, from_address="smsgw@example.net"),
        )
        assert config.validate() == []
        self.gateway = Gateway(config)
        await self.gateway.start()
        await eventually(self._bound)


@pytest.fixture
async def lab(
    tmp_path: Path,
    smtp: tuple[Inbox, LoopbackController],  # noqa: F811 - the fixture
) -> AsyncIterator[JourneyLab]:
    outcomes = OutcomesConfig(delivered=3, undeliverable=1)
    sim = simulator_config(receipts=ReceiptsConfig(outcomes=outcomes))
    lab = JourneyLab(tmp_path, smtp[1].port, accounts=sim.accounts)
    await lab.start()
    yield lab
    await lab.stop()


FINAL = ("delivered", "undeliverable", "expired", "rejected", "failed")


async def test_one_two_way_campaign_from_import_to_signed_callbacks(
    lab: JourneyLab,
    smtp: tuple[Inbox, LoopbackController],  # noqa: F811 - the fixture
    receiver: Receiver,  # noqa: F811 - the fixture
) -> None:
    inbox, _ = smtp
    # -- the audience: a list imported by CSV, a name and a city each ----------------------
    created = await call(lab, "POST", "/v1/lists", 201, json={"name": "jazz"})
    numbers = [f"+336{80000000 + i:08d}" for i in range(CONTACTS)]
    contact = {n: (f"Fan{i} Doe", CITIES[i % len(CITIES)]) for i, n in enumerate(numbers)}
    rows = "".join(f"{n},{name},{city}\n" for n, (name, city) in contact.items())
    job = await call(
        lab,
        "POST",
        f"/v1/lists/{created['id']}/import",
        202,
        data=("number,name,city\n" + rows).encode(),
        headers={"Content-Type": "text/csv"},
    )

    async def imported() -> bool:
        got = await call(lab, "GET", f"/v1/imports/{job['import_id']}")
        return bool(got["status"] == "done")

    await eventually(imported)

    # -- the campaign: from a template with a link and a keyword, two-way on the short code -
    journey = numbers[0]
    template = await call(lab, "POST", "/v1/templates", 201, json={"name": "jazz", "text": TEXT})
    preview = await call(
        lab, "POST", f"/v1/templates/{template['id']}/preview", json={"contact": journey}
    )
    campaign = await call(
        lab,
        "POST",
        "/v1/campaigns",
        201,
        json={
            "name": "jazz",
            "from": SHORT_CODE,
            "template_id": template["id"],
            "lists": [created["id"]],
            "two_way": True,
        },
    )
    cid = campaign["id"]
    await call(lab, "POST", f"/v1/campaigns/{cid}/start")

    async def all_final() -> bool:
        got = await call(lab, "GET", f"/v1/campaigns/{cid}/stats")
        return bool(got["delivered"] + got["undelivered"] == CONTACTS)

    await eventually(all_final, within=60)
    # The simulator's own counts, before any other MT (replies, callbacks) goes through it.
    sim = await lab.sim("GET", "/v1/stats")
    receipts = sim["receipts_by_state"]
    assert sim["submit_sm"] == sim["submit_sm_by_status"]["ESME_ROK"] == CONTACTS
    assert sum(receipts.values()) == CONTACTS
    assert receipts.get("UNDELIV", 0) > 0 and receipts.get("DELIVRD", 0) > 0
    received = (await lab.sim("GET", f"/v1/messages?limit={2 * CONTACTS}"))["messages"]
    links: dict[str, str] = {}
    for m in received:
        number = "+" + m["destination"]
        name, city = contact[number]
        assert m["text"].startswith(f"{name.split()[0]} in {city}: jazz night "), m["text"]
        (links[number],) = SHORT.findall(m["text"])
        if number == journey:  # the template's preview is what that handset got, link aside
            assert SHORT.sub("L", m["text"]) == SHORT.sub("L", preview["sample"]["text"])
            assert (preview["sample"]["parts"], preview["sample"]["problem"]) == (1, None)
    assert sorted(links) == numbers

    # Per recipient, the campaign's MT and its final status as the gateway holds it.
    campaign_mt: dict[str, dict[str, Any]] = {}
    for number in numbers:
        page = await call(lab, "GET", f"/v1/conversations?number=%2B{number[1:]}")
        (mt,) = page["items"]
        assert mt["type"] == "mt" and mt["reply"] is None
        campaign_mt[number] = mt
    delivered = [n for n in numbers if campaign_mt[n]["message"]["status"] == "delivered"]
    assert len(delivered) == receipts["DELIVRD"]

    # -- the subscribers -------------------------------------------------------------------
    assert lab.http is not None

    async def visit(number: str, method: str) -> None:
        assert lab.http is not None
        url = f"{lab.links_url}/{links[number]}"
        async with lab.http.request(
            method, url, headers={"User-Agent": BROWSER}, allow_redirects=False
        ) as r:
            assert (r.status, r.headers["Location"]) == (302, TARGET)

    clickers = numbers[0:6]
    for number in clickers:
        await visit(number, "GET")
    await visit(clickers[1], "GET")  # twice: one clicker, two clicks
    clicks = len(clickers) + 1
    await visit(numbers[6], "HEAD")  # a link preview: a bot request, no click

    said = [(numbers[0], "YES"), (numbers[2], "yes please"), (numbers[7], "YES")]
    said += [(numbers[9], "STOP")]
    for count, (source, text) in enumerate(said, 1):
        await lab.mo(source, text)
        await lab.handled(count)
    responders = {source for source, _ in said}

    # The helpdesk answers the first YES.
    (first_yes,) = [i for i in await lab.gw.store.interactions(limit=100) if i.source == journey]
    status, answer = await lab.request(
        "POST", f"/v1/interactions/{first_yes.id}/reply", {"text": "Doors open at 8pm"}
    )
    assert status == 202, answer

    # -- the funnel and the timelines ------------------------------------------------------
    stats: dict[str, Any] = {}

    async def counted() -> bool:
        nonlocal stats
        stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats")
        return bool(stats["clicks"] == clicks and stats["bot_requests"] == 1)

    await eventually(counted)
    assert stats["funnel"] == {
        "audience": CONTACTS,
        "skipped_opted_out": 0,
        "skipped_invalid": 0,
        "sent": sim["submit_sm_by_status"]["ESME_ROK"],
        "delivered": receipts["DELIVRD"],
        "clicked": len(clickers),
        "replied": len(responders),
    }
    assert stats["undelivered"] == receipts["UNDELIV"]
    assert stats["undelivered_by_status"]["undeliverable"] == receipts["UNDELIV"]
    assert (stats["clicks"], stats["unique_clickers"]) == (clicks, len(clickers))
    assert (stats["replies"], stats["unique_responders"], stats["opt_outs"]) == (
        len(said),
        len(responders),
        1,
    )
    for axis, periods in (("per_hour", 24), ("per_day", 10)):
        timeline = stats["timelines"][axis]
        for figure in ("sent", "delivered", "undelivered", "clicks", "unique_clickers", "replies"):
            assert timeline[figure] == [stats[figure]] + [0] * (periods - 1), (axis, figure)
        assert timeline["unique_responders"][0] == len(responders)
        assert timeline["opt_outs"] == [1] + [0] * (periods - 1)

    # Recipient by recipient, the clicks the gateway recorded are the test's.
    store = lab.gw.store
    rows_db = await store._read(
        "SELECT number, sum(bot = 0), sum(bot = 1) FROM link_clicks WHERE campaign_id = ?"
        " GROUP BY number",
        (cid,),
    )
    expected = {n: (2 if n == clickers[1] else 1, 0) for n in clickers}
    expected[numbers[6]] = (0, 1)
    assert {r[0]: (r[1], r[2]) for r in rows_db} == expected

    # -- the conversation of one subscriber: MT, MO, auto-reply, helpdesk reply ------------
    items: list[dict[str, Any]] = []

    async def thread_final() -> bool:
        nonlocal items
        page = await call(lab, "GET", f"/v1/conversations?number=%2B{journey[1:]}")
        items = page["items"]
        return len(items) == 4 and all(
            i["message"]["status"] in FINAL for i in items if i["type"] == "mt"
        )

    await eventually(thread_final)
    first_name = contact[journey][0].split()[0]
    assert [(i["type"], i["reply"], i["text"]) for i in items] == [
        ("mt", None, campaign_mt[journey]["text"]),
        ("mo", None, "YES"),
        ("mt", "auto", f"Thanks {first_name}, see you!"),
        ("mt", "helpdesk", "Doors open at 8pm"),
    ]
    assert items[0]["message"]["status"] == campaign_mt[journey]["message"]["status"]
    assert items[3]["message"]["id"] == answer["id"]
    assert {i["interaction_id"] for i in items[1:]} == {first_yes.id}
    for item in items:
        if item["type"] == "mt":
            view = await call(lab, "GET", f"/v1/messages/{item['message']['id']}")
            assert view["status"] == item["message"]["status"], (item, view)
    assert items[1]["interaction"]["care_state"] == "answered"
    # The handsets got the replies: the simulator's messages to that number, in order.
    assert await lab.sent_to(journey) == [
        campaign_mt[journey]["text"],
        f"Thanks {first_name}, see you!",
        "Doors open at 8pm",
    ]

    # -- the interactions e-mailed as CSV --------------------------------------------------
    mailed = await call(
        lab,
        "POST",
        "/v1/interactions/email",
        json={"campaign_id": cid, "to": ["care@example.net"]},
    )
    assert mailed == {"to": ["care@example.net"], "rows": len(said), "truncated": False}
    assert len(inbox.mails) == 1 and inbox.mails[0][1] == ["care@example.net"]
    _, table = attachment(inbox.parsed(0))
    assert table[0] == [*COLUMNS, "name", "attr.city"]
    column = {name: at for at, name in enumerate(table[0])}
    got = sorted(
        (
            r[column["source"]].lstrip("'"),
            r[column["text"]],
            r[column["campaign_id"]],
            r[column["name"]],
            r[column["attr.city"]],
        )
        for r in table[1:]
    )
    assert got == sorted((s, t, cid, *contact[s]) for s, t in said)

    # -- signed status callbacks -----------------------------------------------------------
    async def replies_final() -> bool:
        for number in responders:
            page = await call(lab, "GET", f"/v1/conversations?number=%2B{number[1:]}")
            if any(i["message"]["status"] not in FINAL for i in page["items"] if i["message"]):
                return False
        return True

    await eventually(replies_final)
    before = await lab.sim("GET", "/v1/stats")
    assert before["receipts_pending"] == 0
    ids = []
    for number in numbers[10:12]:
        sent = await lab.post(
            "/v1/messages",
            {
                "to": number,
                "from": "ACME",
                "text": "Your ticket is confirmed",
                "callback_url": receiver.url("cb"),
            },
        )
        ids.append(sent["id"])

    async def called_back() -> bool:
        return len(receiver.at("cb")) == len(ids)

    await eventually(called_back)
    after = await lab.sim("GET", "/v1/stats")
    assert after["submit_sm"] - before["submit_sm"] == len(ids)
    assert sum(after["receipts_by_state"].values()) - sum(
        before["receipts_by_state"].values()
    ) == len(ids)
    by_id: dict[str, str] = {}
    for callback in receiver.at("cb"):
        header = callback.headers[SIGNATURE_HEADER]
        assert verify(header, callback.body, [ACCOUNT_SECRET])
        assert not verify(header, callback.body, [HOOK_SECRET])
        payload = json.loads(callback.body)
        by_id[payload["id"]] = payload["status"]
        tampered = callback.body.replace(payload["status"].encode(), b"expired")
        assert tampered != callback.body and not verify(header, tampered, [ACCOUNT_SECRET])
    assert sorted(by_id) == sorted(ids)
    for message_id, reported in by_id.items():
        view = await call(lab, "GET", f"/v1/messages/{message_id}")
        assert reported == view["status"] and reported in FINAL
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", receiver.at("cb")[0].headers[SIGNATURE_HEADER])
