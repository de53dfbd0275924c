"""One campaign, every place that reports its figures: the stats API, ``smsgw campaign stats``,
the daily digest (its "since start" column and its CSV attachment) and the interactions CSV
export agree, figure by figure, with what the simulator saw.

The campaign meets what made them disagree: receipts that reject (REJECTD: the message
reached the carrier, so it is sent), a number that never got the campaign texting its
keyword (a reply, no responder), a recipient who stops and comes back with YES (an opt-out
and a re-subscription, no YES answer), a responder who replies twice."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import json
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from gateway.app.cli import main
from gateway.config import DigestConfig
from gateway.config.loader import load_dataclass
from gateway.reports.digest import DigestScheduler
from smsc_simulator.config import OutcomesConfig, ReceiptsConfig
from tests.e2e_helpers import AUTH, TOKEN, eventually, simulator_config
from tests.test_e2e_inbound import SHORT_CODE, InboundLab, inbound_raw

CONTACTS = 40
DIGEST_ROWS = (
    ("Sent", "sent"),
    ("Delivered", "delivered"),
    ("Replies", "replies"),
    ("Unique responders", "unique_responders"),
    ("Opt-outs", "opt_outs"),
    ("Re-subscriptions", "resubscriptions"),
)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.messages.append(message)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[InboundLab]:
    outcomes = OutcomesConfig(delivered=2, undeliverable=1, rejected=1)
    sim = simulator_config(receipts=ReceiptsConfig(outcomes=outcomes))
    lab = InboundLab(tmp_path, inbound_raw("http://127.0.0.1:9/unused"), accounts=sim.accounts)
    await lab.start()
    yield lab
    await lab.stop()


async def call(lab: InboundLab, method: str, path: str, status: int = 200, **kw: Any) -> Any:
    assert lab.http is not None
    headers = {**AUTH, **kw.pop("headers", {})}
    async with lab.http.request(method, lab.gw_url + path, headers=headers, **kw) as r:
        assert r.status == status, await r.text()
        return await (r.json() if r.content_type == "application/json" else r.text())


async def test_every_report_of_a_campaign_gives_the_same_figures(lab: InboundLab) -> None:
    created = await call(lab, "POST", "/v1/lists", 201, json={"name": "figures"})
    numbers = [f"+336{60000000 + i:08d}" for i in range(CONTACTS)]
    body = "number,name\n" + "".join(f"{n},Fan {i}\n" for i, n in enumerate(numbers))
    job = await call(
        lab,
        "POST",
        f"/v1/lists/{created['id']}/import",
        202,
        data=body.encode(),
        headers={"Content-Type": "text/csv"},
    )

    async def imported() -> bool:
        got = await call(lab, "GET", f"/v1/imports/{job['import_id']}")
        return bool(got["status"] == "done")

    await eventually(imported)
    maybe = {"name": "maybe", "keyword": "MAYBE", "actions": [{"type": "reply", "text": "OK"}]}
    campaign = await call(
        lab,
        "POST",
        "/v1/campaigns",
        201,
        json={
            "name": "figures",
            "from": SHORT_CODE,
            "text": "Concert? YES / MAYBE",
            "lists": [created["id"]],
            "two_way": True,
            "keywords": [maybe],
            "digest": {"to": ["ops@example.net"]},
        },
    )
    cid = campaign["id"]
    await call(lab, "POST", f"/v1/campaigns/{cid}/start")
    stats: dict[str, Any] = {}

    async def all_final() -> bool:
        nonlocal stats
        stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats")
        final = stats["delivered"] + stats["undeliverable"] + stats["rejected"]
        return bool(final == CONTACTS and stats["pending"] == 0)

    await eventually(all_final, within=60)
    assert stats["rejected"] > 0, "the simulator rejected none: no REJECTD to count"
    sim = await lab.sim("GET", "/v1/stats")  # before the MOs, whose replies are MTs too

    stranger = "+33699990000"
    said = [
        (numbers[0], "YES"),
        (numbers[1], "maybe"),
        (numbers[1], "MAYBE again"),
        (numbers[2], "STOP"),
        (numbers[2], "YES"),  # opted out: a re-subscription
        (numbers[3], "STOP"),
        (stranger, "MAYBE"),  # the campaign's keyword from a number it never messaged
    ]
    for count, (source, text) in enumerate(said, 1):
        await lab.mo(source, text)
        await lab.handled(count)  # in order: a sender's STOP before its YES
    found = await lab.handled(len(said))
    assert all(i.campaign_id == cid for i in found)
    assert [i.rule for i in found if i.source == numbers[2]] == ["opt_out", "resubscribe"]

    stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats")
    assert stats["sent"] == sim["submit_sm"] == CONTACTS  # the rejected ones too
    assert stats["delivered"] == sim["receipts_by_state"].get("DELIVRD", 0)
    assert stats["rejected"] == sim["receipts_by_state"].get("REJECTD", 0)
    assert stats["replies"] == len(said)
    assert stats["unique_responders"] == 4  # numbers 0-3; not the stranger
    assert stats["reply_rate"] == round(4 / CONTACTS, 4)
    assert stats["opt_outs"] == 2
    assert stats["resubscriptions"] == 1 and stats["replies_from_others"] == 1
    assert stats["answers_per_keyword"] == {"MAYBE": 2, "STOP": 2, "YES": 1}

    # smsgw campaign stats: the same document.
    cli = io.StringIO()

    def run_cli() -> int:
        import contextlib

        with contextlib.redirect_stdout(cli):
            return main(["campaign", "stats", cid, "--json", "--url", lab.gw_url, "--token", TOKEN])

    assert await asyncio.to_thread(run_cli) == 0
    assert json.loads(cli.getvalue()) == stats

    # The interactions CSV export: one row per reply.
    export = await call(lab, "GET", f"/v1/interactions/export.csv?campaign_id={cid}")
    rows = list(csv.DictReader(io.StringIO(export.lstrip("\ufeff"))))
    assert len(rows) == stats["replies"]

    # The digest of day 1 covers it all: "since start" says what the API says.
    shown = await call(lab, "GET", f"/v1/campaigns/{cid}")
    started = datetime.datetime.fromisoformat(shown["started_at"].replace("Z", "+00:00"))
    at = (started - datetime.timedelta(minutes=1)).strftime("%H:%M")  # first: tomorrow
    config = load_dataclass(
        DigestConfig,
        {"from_address": "gw@example.net", "time": at, "time_zone": "UTC", "smtp": {"host": "x"}},
    )
    inbox = Inbox()
    scheduler = DigestScheduler(
        config,
        datetime.UTC,
        lab.gw.store,
        lab.gw.campaigns.digest_source,
        inbox,
    )
    [digest] = await scheduler.run_once(started.timestamp() + 86400)
    for _, key in DIGEST_ROWS:
        assert getattr(digest.counts, key) == stats[key], key
    [mail] = inbox.messages
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for label, key in DIGEST_ROWS:
        assert f"{label:<20}{stats[key]:>12}{stats[key]:>14}" in text, label
    [attachment] = list(mail.iter_attachments())
    raw = attachment.get_payload(decode=True)
    assert isinstance(raw, bytes)
    attached = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(attached) == digest.rows == stats["replies"]

    # Send to responders: recipients who responded, with YES: one (not the re-subscriber).
    yes = await call(
        lab,
        "POST",
        f"/v1/campaigns/{cid}/send-to-responders",
        201,
        json={"text": "See you!", "keyword": "YES"},
    )
    everyone = await call(
        lab, "POST", f"/v1/campaigns/{cid}/send-to-responders", 201, json={"text": "Hi"}
    )
    for follow_up in (yes, everyone):
        await call(lab, "POST", f"/v1/campaigns/{follow_up['id']}/start")

    async def fixed() -> bool:
        got = [await call(lab, "GET", f"/v1/campaigns/{c['id']}") for c in (yes, everyone)]
        return all(c["status"] == "done" for c in got)

    await eventually(fixed, within=30)
    assert (await call(lab, "GET", f"/v1/campaigns/{yes['id']}/stats"))["recipients"] == 1
    assert (await call(lab, "GET", f"/v1/campaigns/{everyone['id']}/stats"))["recipients"] == 4
