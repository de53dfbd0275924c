"""Short links end to end: a campaign with links to a list goes through the simulator; the
texts it received are read back (its GET /v1/messages), their links are "clicked" over HTTP
as a browser, as a HEAD and as a known prefetcher, and what the gateway recorded is checked
recipient by recipient against those requests."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app.daemon import Gateway
from gateway.config.links import LinksConfig
from tests.e2e_helpers import AUTH, Lab, eventually, gateway_config, simulator_config

CONTACTS = 24
SHORT = re.compile(r"https://s\.example\.net/([0-9A-Za-z]{7})")
BROWSER = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36"
PREFETCHER = "WhatsApp/2.23.20.0 A"
SPRING = "https://shop.example/spring?utm_source=sms"
PLAIN = "https://shop.example/stores"


class LinksLab(Lab):
    """The e2e lab with [links] on 127.0.0.1 port 0."""

    async def start_gateway(self) -> None:
        port = self.simulator.smpp_port
        assert port
        config = gateway_config(self.tmp_path / "data", port)
        links = LinksConfig(base_url="https://s.example.net", port=0)
        self.gateway = Gateway(dataclasses.replace(config, links=links))
        await self.gateway.start()
        await eventually(self._bound)

    @property
    def links_url(self) -> str:
        assert self.gateway is not None and self.gateway.links is not None
        return f"http://127.0.0.1:{self.gateway.links.port}"


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LinksLab]:
    lab = LinksLab(tmp_path, simulator_config())
    await lab.start()
    yield lab
    await lab.stop()


async def call(lab: Lab, method: str, path: str, status: int, **kwargs: Any) -> Any:
    assert lab.http is not None
    headers = {**AUTH, **kwargs.pop("headers", {})}
    async with lab.http.request(method, lab.gw_url + path, headers=headers, **kwargs) as r:
        assert r.status == status, await r.text()
        return await r.json()


async def test_links_reach_the_simulator_and_clicks_are_counted_per_recipient(
    lab: LinksLab,
) -> None:
    created = await call(lab, "POST", "/v1/lists", 201, json={"name": "links"})
    numbers = [f"+336{50000000 + i:08d}" for i in range(CONTACTS)]
    contacts_csv = "number,name\n" + "".join(f"{n},Client {i}\n" for i, n in enumerate(numbers))
    started = await call(
        lab,
        "POST",
        f"/v1/lists/{created['id']}/import",
        202,
        data=contacts_csv.encode(),
        headers={"Content-Type": "text/csv"},
    )

    async def imported() -> bool:
        job = await call(lab, "GET", f"/v1/imports/{started['import_id']}", 200)
        return bool(job["status"] == "done")

    await eventually(imported)
    text = f"Hi {{first_name}}, spring sale: {{link:{SPRING}}} Stores: {PLAIN}"
    body = {
        "name": "links",
        "from": "ACME",
        "text": text,
        "lists": [created["id"]],
        "track_links": True,
    }
    campaign = await call(lab, "POST", "/v1/campaigns", 201, json=body)
    cid = campaign["id"]
    await call(lab, "POST", f"/v1/campaigns/{cid}/start", 200)

    async def all_sent() -> bool:
        stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats", 200)
        return bool(stats["sent"] == CONTACTS and stats["pending"] == 0)

    await eventually(all_sent, within=60)

    # What the phones got: two short links each, every code its own.
    received = (await lab.sim("GET", f"/v1/messages?limit={2 * CONTACTS}"))["messages"]
    assert len(received) == CONTACTS
    links: dict[str, tuple[str, str]] = {}  # number -> (spring code, stores code)
    for m in received:
        found = SHORT.findall(m["text"])
        assert len(found) == 2, m["text"]
        assert m["text"].startswith("Hi Client, spring sale: https://s.example.net/")
        links["+" + m["destination"]] = (found[0], found[1])
    assert sorted(links) == numbers
    assert len({c for pair in links.values() for c in pair}) == 2 * CONTACTS

    # The clicks: per recipient, by their position in the list.
    assert lab.http is not None
    expected_clicks: Counter[str] = Counter()
    expected_bots: Counter[str] = Counter()

    async def request(number: str, which: int, method: str, agent: str) -> None:
        assert lab.http is not None
        url = f"{lab.links_url}/{links[number][which]}"
        async with lab.http.request(
            method, url, headers={"User-Agent": agent}, allow_redirects=False
        ) as r:
            assert r.status == 302
            assert r.headers["Location"] == (SPRING, PLAIN)[which]
        if method == "GET" and agent == BROWSER:
            expected_clicks[number] += 1
        else:
            expected_bots[number] += 1

    for i, number in enumerate(numbers):
        kind = i % 6
        if kind == 0:  # one click
            await request(number, 0, "GET", BROWSER)
        elif kind == 1:  # both links, the first twice
            await request(number, 0, "GET", BROWSER)
            await request(number, 0, "GET", BROWSER)
            await request(number, 1, "GET", BROWSER)
        elif kind == 2:  # a link checker
            await request(number, 0, "HEAD", BROWSER)
        elif kind == 3:  # a messenger's preview
            await request(number, 1, "GET", PREFETCHER)
        elif kind == 4:  # a preview, then the person
            await request(number, 0, "GET", PREFETCHER)
            await request(number, 0, "GET", BROWSER)
        # kind 5: nothing
    async with lab.http.get(f"{lab.links_url}/AAAAAAA", allow_redirects=False) as r:
        assert r.status == 404

    assert lab.gateway is not None
    store = lab.gateway.store

    async def recorded() -> bool:
        rows = await store._read("SELECT count(*) FROM link_clicks")
        return bool(rows[0][0] == sum(expected_clicks.values()) + sum(expected_bots.values()))

    await eventually(recorded)
    rows = await store._read(
        "SELECT number, sum(bot = 0), sum(bot = 1) FROM link_clicks WHERE campaign_id = ?"
        " GROUP BY number",
        (cid,),
    )
    got_clicks = {r[0]: r[1] for r in rows if r[1]}
    got_bots = {r[0]: r[2] for r in rows if r[2]}
    assert got_clicks == dict(expected_clicks)
    assert got_bots == dict(expected_bots)

    # The campaign's statistics: one definition each (the store's campaign_counts).
    stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats", 200)
    clicks = sum(expected_clicks.values())
    assert stats["clicks"] == clicks == 20
    assert stats["unique_clickers"] == len(expected_clicks) == 12
    assert stats["bot_requests"] == sum(expected_bots.values()) == 12
    assert stats["click_rate"] == round(len(expected_clicks) / CONTACTS, 4)
    assert stats["clicks_per_hour"][0] == stats["clicks_per_day"][0] == clicks
    assert sum(stats["clicks_per_hour"]) == sum(stats["clicks_per_day"]) == clicks

    # Those who clicked, as an audience: a new campaign reaches exactly them.
    refused = await call(
        lab,
        "POST",
        f"/v1/campaigns/{cid}/send-to-responders",
        400,
        json={"text": "x", "clicked": True, "keyword": "YES"},
    )
    assert refused["error"]["details"][0]["path"] == "clicked"
    follow = await call(
        lab,
        "POST",
        f"/v1/campaigns/{cid}/send-to-responders",
        201,
        json={"text": "Thanks for your visit", "clicked": True},
    )
    assert follow["responders_of"] == {"campaign_id": cid, "keyword": None, "clicked": True}
    await call(lab, "POST", f"/v1/campaigns/{follow['id']}/start", 200)

    async def follow_sent() -> bool:
        got = await call(lab, "GET", f"/v1/campaigns/{follow['id']}/stats", 200)
        return bool(got["recipients"] == len(expected_clicks) and got["pending"] == 0)

    await eventually(follow_sent, within=60)
    received = (await lab.sim("GET", f"/v1/messages?limit={4 * CONTACTS}"))["messages"]
    thanked = sorted(
        "+" + m["destination"] for m in received if m["text"] == "Thanks for your visit"
    )
    assert thanked == sorted(expected_clicks)

    # The clicks export: one row per request, recipient by recipient.
    async with lab.http.get(f"{lab.gw_url}/v1/campaigns/{cid}/clicks.csv?bom=0", headers=AUTH) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/csv")
        exported = list(csv.DictReader(io.StringIO(await r.text())))
    assert len(exported) == sum(expected_clicks.values()) + sum(expected_bots.values())
    people = Counter(row["number"].lstrip("'") for row in exported if row["bot"] == "no")
    bots = Counter(row["number"].lstrip("'") for row in exported if row["bot"] == "yes")
    assert people == expected_clicks and bots == expected_bots
    for row in exported:
        number = row["number"].lstrip("'")  # neutralised for spreadsheets: '+336...
        assert row["target"] == (SPRING, PLAIN)[links[number].index(row["code"])]
    assert {row["user_agent"] for row in exported} == {BROWSER, PREFETCHER}
