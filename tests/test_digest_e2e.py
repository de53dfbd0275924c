"""The digest and the CSV export through a whole Gateway: campaign messages go over HTTP to
the simulator and come back delivered; the daemon's own digest scheduler mails the day's
counts to an SMTP server on loopback, and the export over HTTP lists the day's MOs."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app.daemon import Gateway
from gateway.config import DigestConfig, SmtpConfig
from gateway.reports.digest import DigestCampaign
from gateway.store.base import InteractionOutcome, NewInteraction
from tests.e2e_helpers import AUTH, Lab, eventually, gateway_config, simulator_config
from tests.test_digest import Campaigns, Inbox, LoopbackController


class DigestLab(Lab):
    smtp_port = 0

    async def start_gateway(self) -> None:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port)
        digest = DigestConfig(
            smtp=SmtpConfig(host="127.0.0.1", port=self.smtp_port, security="none", timeout=5),
            from_address="digest@example.net",
            time_zone="Europe/Paris",
        )
        self.gateway = Gateway(dataclasses.replace(config, digest=digest))
        await self.gateway.start()
        await eventually(self._bound)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[tuple[DigestLab, Inbox]]:
    inbox = Inbox()
    controller = LoopbackController(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    lab = DigestLab(tmp_path, simulator_config())
    lab.smtp_port = controller.port
    try:
        await lab.start()
        yield lab, inbox
    finally:
        await lab.stop()
        controller.stop()


async def test_a_campaign_day_reaches_the_mailbox_and_the_export(
    lab: tuple[DigestLab, Inbox],
) -> None:
    gw_lab, inbox = lab
    gateway = gw_lab.gateway
    assert gateway is not None and gateway.digest is not None
    started = time.time() - 1
    recipients = [f"+336{20000000 + n:08d}" for n in range(20)]
    answer = await gw_lab.post(
        "/v1/messages/batch",
        {
            "messages": [
                {"to": to, "from": "36180", "text": "Spring sale", "campaign_id": "spring"}
                for to in recipients
            ]
        },
    )
    ids = [m["id"] for m in answer["messages"]]

    async def delivered() -> bool:
        return await gw_lab.statuses(ids) == {"delivered": 20}

    await eventually(delivered, within=30)
    # Replies as the MO path logs them (it is wired on its own branch).
    for n, text in enumerate(["YES", "no", "STOP", "=cmd|' /C calc'!A0"]):
        new_id = await gateway.store.record_interaction(
            NewInteraction("sim", recipients[n], "36180", text, 0, 1, 1, time.time(), time.time())
        )
        actions = [{"type": "opt_out", "ok": True}] if text == "STOP" else []
        await gateway.store.finish_interactions(
            [
                InteractionOutcome(
                    new_id,
                    keyword=None,
                    rule=None,
                    campaign_id="spring",
                    actions=actions,
                    at=time.time(),
                )
            ]
        )

    campaign = DigestCampaign("spring", "Spring", started, ("ops@example.net",))
    gateway.digest.campaigns = Campaigns(campaign)
    # The first digest time after the start, whatever the hour the test runs at.
    tz = gateway.digest.tz
    start_local = datetime.datetime.fromtimestamp(started, tz)
    first = datetime.datetime.combine(start_local.date(), datetime.time(18, 0), tzinfo=tz)
    if first.timestamp() <= started:
        first = datetime.datetime.combine(
            start_local.date() + datetime.timedelta(days=1), datetime.time(18, 0), tzinfo=tz
        )
    (sent,) = await gateway.digest.run_once(first.timestamp() + 30)
    counts = sent.counts
    assert (counts.sent, counts.delivered, counts.replies) == (20, 20, 4)
    assert (counts.unique_responders, counts.opt_outs) == (4, 1)
    assert len(inbox.mails) == 1
    text = inbox.parsed(0).get_body(("plain",))
    assert text is not None and f"{'Delivered':<20}{20:>12}{20:>14}" in text.get_content()

    assert gw_lab.http is not None
    url = f"{gw_lab.gw_url}/v1/interactions/export.csv?campaign_id=spring&new=1"
    async with gw_lab.http.get(url, headers=AUTH) as got:
        assert got.status == 200
        rows = list(csv.DictReader(io.StringIO((await got.text()).lstrip("\ufeff"))))
    assert [r["text"] for r in rows] == ["YES", "no", "STOP", "'=cmd|' /C calc'!A0"]
    async with gw_lab.http.get(url, headers=AUTH) as got:
        again = list(csv.DictReader(io.StringIO((await got.text()).lstrip("\ufeff"))))
    assert again == []
