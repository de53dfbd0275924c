"""The funnel and the timelines of one campaign (15.2), end to end through the simulator:
audience -> skipped (opted out / invalid) -> sent -> delivered -> clicked -> replied, and
the undelivered by status and by carrier error, each compared with what the simulator
counted (submit_sm answered, receipts by state) or what the test itself did (clicks, MOs).

The simulator refuses some submit_sm (its ``submit_error`` fault switch: ESME_RINVDSTADR,
rejected before reaching a carrier, so undelivered and never sent) and its receipts say
DELIVRD, UNDELIV or REJECTD; recipients click their short links (as a browser, twice, or
only through a messenger's preview), reply, and one stops."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app.cli import main
from gateway.app.daemon import Gateway
from gateway.config import CallbacksConfig
from gateway.config.links import LinksConfig
from gateway.smpp.constants import Status
from gateway.smpp.receipt import MessageState
from smsc_simulator.config import OutcomesConfig, ReceiptsConfig
from smsc_simulator.dlr import ERROR_CODES
from tests.e2e_helpers import AUTH, TOKEN, eventually, gateway_config, simulator_config
from tests.test_e2e_inbound import SHORT_CODE, InboundLab, inbound_raw

CONTACTS = 40
SHORT = re.compile(r"https://s\.example\.net/([0-9A-Za-z]{7})")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0"
PREFETCHER = "facebookexternalhit/1.1"


class FunnelLab(InboundLab):
    """The inbound lab (two-way short code) with [links] on 127.0.0.1 port 0."""

    async def start_gateway(self) -> None:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port)
        config = dataclasses.replace(
            config,
            inbound=self.inbound,
            callbacks=CallbacksConfig(allowed_networks=("127.0.0.0/8",)),
            links=LinksConfig(base_url="https://s.example.net", port=0),
        )
        assert config.validate() == []
        self.gateway = Gateway(config)
        await self.gateway.start()
        await eventually(self._bound)

    @property
    def links_url(self) -> str:
        assert self.gw.links is not None
        return f"http://127.0.0.1:{self.gw.links.port}"


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[FunnelLab]:
    outcomes = OutcomesConfig(delivered=2, undeliverable=1, rejected=1)
    sim = simulator_config(receipts=ReceiptsConfig(outcomes=outcomes))
    lab = FunnelLab(tmp_path, inbound_raw("http://127.0.0.1:9/unused"), accounts=sim.accounts)
    await lab.start()
    yield lab
    await lab.stop()


async def call(lab: FunnelLab, method: str, path: str, status: int = 200, **kw: Any) -> Any:
    assert lab.http is not None
    headers = {**AUTH, **kw.pop("headers", {})}
    async with lab.http.request(method, lab.gw_url + path, headers=headers, **kw) as r:
        assert r.status == status, await r.text()
        return await (r.json() if r.content_type == "application/json" else r.text())


def receipt_error(state: MessageState, stat: str) -> str:
    """The error the gateway records for the simulator's receipt of ``state``: its stat:, its
    err: and its network_error_code TLV (type 3, GSM)."""
    code = ERROR_CODES[state]
    return f"stat:{stat} err:{code:03d} network_error:3/{code}"


async def test_the_funnel_and_timelines_agree_with_the_simulator(lab: FunnelLab) -> None:
    created = await call(lab, "POST", "/v1/lists", 201, json={"name": "funnel"})
    numbers = [f"+336{70000000 + i:08d}" for i in range(CONTACTS)]
    opted = [f"+336{71000000 + i:08d}" for i in range(2)]  # opted out before the start
    too_long = "+33671999999"  # a name that makes the text too long: skipped as invalid
    rows = [f"{n},Fan {i}" for i, n in enumerate(numbers)]
    rows += [f"{n},Gone" for n in opted] + [f"{too_long},{'X' * 1500}"]
    job = await call(
        lab,
        "POST",
        f"/v1/lists/{created['id']}/import",
        202,
        data=("number,name\n" + "\n".join(rows) + "\n").encode(),
        headers={"Content-Type": "text/csv"},
    )

    async def imported() -> bool:
        got = await call(lab, "GET", f"/v1/imports/{job['import_id']}")
        return bool(got["status"] == "done")

    await eventually(imported)
    await call(lab, "POST", "/v1/opt-outs", 201, json={"number": opted[0], "sender": SHORT_CODE})
    await call(lab, "POST", "/v1/opt-outs", 201, json={"number": opted[1]})
    # About one submit_sm in six refused for good: REJECTED at submit, never sent.
    refusal = {"status": int(Status.RINVDSTADR), "probability": 0.15}
    await lab.sim("PUT", "/v1/faults", {"submit_error": refusal})

    campaign = await call(
        lab,
        "POST",
        "/v1/campaigns",
        201,
        json={
            "name": "funnel",
            "from": SHORT_CODE,
            "text": "{name}: concert tickets {link:https://tickets.example/c} Reply YES",
            "lists": [created["id"]],
            "two_way": True,
        },
    )
    cid = campaign["id"]
    await call(lab, "POST", f"/v1/campaigns/{cid}/start")
    stats: dict[str, Any] = {}

    async def all_final() -> bool:
        nonlocal stats
        stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats")
        return bool(stats["delivered"] + stats["undelivered"] == CONTACTS)

    await eventually(all_final, within=60)
    await lab.sim("DELETE", "/v1/faults")
    sim = await lab.sim("GET", "/v1/stats")  # before the MOs, whose replies are MTs too
    by_status = sim["submit_sm_by_status"]
    receipts = sim["receipts_by_state"]
    refused = by_status.get("ESME_RINVDSTADR", 0)
    assert refused > 0 and receipts.get("REJECTD", 0) > 0 and receipts.get("UNDELIV", 0) > 0

    # Clicks on the links the handsets received (a refused submit_sm never got there).
    received = (await lab.sim("GET", f"/v1/messages?limit={2 * CONTACTS}"))["messages"]
    links = {"+" + m["destination"]: SHORT.findall(m["text"])[0] for m in received}
    phones = sorted(links)
    assert lab.http is not None

    async def click(number: str, agent: str) -> None:
        assert lab.http is not None
        url = f"{lab.links_url}/{links[number]}"
        async with lab.http.get(url, headers={"User-Agent": agent}, allow_redirects=False) as r:
            assert r.status == 302

    clickers = phones[:6]
    for number in clickers:
        await click(number, BROWSER)
    await click(clickers[0], BROWSER)  # twice: one clicker, two clicks
    await click(phones[6], PREFETCHER)  # a preview only: no click
    clicks = len(clickers) + 1

    # Replies: three YES, one of them twice, and a STOP.
    said = [(phones[0], "YES"), (phones[1], "yes"), (phones[1], "YES!"), (phones[7], "YES")]
    said += [(phones[8], "STOP")]
    for count, (source, text) in enumerate(said, 1):
        await lab.mo(source, text)
        await lab.handled(count)

    async def clicks_recorded() -> bool:
        nonlocal stats
        stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats")
        return bool(stats["clicks"] == clicks)

    await eventually(clicks_recorded)

    sent = by_status["ESME_ROK"]
    assert sent + refused == sim["submit_sm"] == CONTACTS
    assert stats["funnel"] == {
        "audience": CONTACTS + len(opted) + 1,
        "skipped_opted_out": len(opted),
        "skipped_invalid": 1,
        "sent": sent,
        "delivered": receipts["DELIVRD"],
        "clicked": len(clickers),
        "replied": 4,  # phones 0, 1, 7 and 8 (STOP is a response too)
    }
    assert stats["undelivered"] == refused + receipts["UNDELIV"] + receipts["REJECTD"]
    assert stats["undelivered_by_status"] == {
        "undeliverable": receipts["UNDELIV"],
        "expired": 0,
        "rejected": receipts["REJECTD"] + refused,
        "failed": 0,
    }
    assert stats["undelivered_by_error"] == {
        error: count
        for error, count in sorted(
            [
                ("ESME_RINVDSTADR", refused),
                (receipt_error(MessageState.UNDELIVERABLE, "UNDELIV"), receipts["UNDELIV"]),
                (receipt_error(MessageState.REJECTED, "REJECTD"), receipts["REJECTD"]),
            ],
            key=lambda item: (-item[1], item[0]),
        )
    }
    assert (stats["clicks"], stats["unique_clickers"], stats["bot_requests"]) == (
        clicks,
        len(clickers),
        1,
    )
    assert (stats["replies"], stats["unique_responders"], stats["opt_outs"]) == (5, 4, 1)

    # The timelines: everything happened in the first hour of the first day, so each
    # figure's first period holds it all and the others are empty.
    for axis, periods in (("per_hour", 24), ("per_day", 10)):
        timeline = stats["timelines"][axis]
        for figure in ("sent", "delivered", "undelivered", "clicks", "unique_clickers", "replies"):
            assert timeline[figure] == [stats[figure]] + [0] * (periods - 1), (axis, figure)
        assert timeline["unique_responders"][0] == 4 and timeline["opt_outs"][0] == 1
        assert {s: v[0] for s, v in timeline["undelivered_by_status"].items()} == stats[
            "undelivered_by_status"
        ]
        assert {e: v[0] for e, v in timeline["undelivered_by_error"].items()} == stats[
            "undelivered_by_error"
        ]
    assert stats["per_hour"] == stats["timelines"]["per_hour"]["replies"]
    assert stats["per_day"] == stats["timelines"]["per_day"]["replies"]
    assert stats["clicks_per_hour"] == stats["timelines"]["per_hour"]["clicks"]
    assert stats["clicks_per_day"] == stats["timelines"]["per_day"]["clicks"]

    # smsgw campaign stats: the same document, and the funnel in its text.
    def run_cli(*extra: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["campaign", "stats", cid, *extra, "--url", lab.gw_url, "--token", TOKEN])
        assert code == 0
        return out.getvalue()

    assert json.loads(await asyncio.to_thread(run_cli, "--json")) == stats
    text = await asyncio.to_thread(run_cli)
    funnel = stats["funnel"]
    assert (
        f"funnel: audience {CONTACTS + 3} -> skipped 2 opted out, 1 invalid -> sent {sent}"
        f" -> delivered {funnel['delivered']} -> clicked {len(clickers)} -> replied 4"
    ) in text, text
    assert f"  error {'ESME_RINVDSTADR':<40} {refused:>8}" in text, text
    [first_hour] = [line for line in text.splitlines() if line.startswith("0 ")][:1]
    figures = [sent, funnel["delivered"], stats["undelivered"], clicks, len(clickers), 5, 4, 1]
    assert first_hour.split() == ["0", *map(str, figures)], text
