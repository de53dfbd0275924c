"""A campaign end to end: CSV import over HTTP, a campaign to a few hundred contacts, the
simulator receives them, and the campaign's delivery statistics equal its counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from smsc_simulator.config import OutcomesConfig, ReceiptsConfig
from tests.e2e_helpers import AUTH, Lab, eventually, simulator_config

CONTACTS = 300


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    outcomes = OutcomesConfig(delivered=0.7, undeliverable=0.2, expired=0.1)
    lab = Lab(tmp_path, simulator_config(receipts=ReceiptsConfig(outcomes=outcomes)))
    await lab.start()
    yield lab
    await lab.stop()


async def call(lab: Lab, method: str, path: str, status: int, **kwargs: Any) -> Any:
    assert lab.http is not None
    headers = {**AUTH, **kwargs.pop("headers", {})}
    async with lab.http.request(method, lab.gw_url + path, headers=headers, **kwargs) as r:
        assert r.status == status, await r.text()
        return await r.json()


async def test_a_campaign_reaches_the_simulator_and_its_stats_match(lab: Lab) -> None:
    created = await call(lab, "POST", "/v1/lists", 201, json={"name": "e2e"})
    numbers = [f"+336{30000000 + i:08d}" for i in range(CONTACTS)]
    csv = "number,name,shop\n" + "".join(
        f"{n},Client {i},Shop{i % 3}\n" for i, n in enumerate(numbers)
    )
    started = await call(
        lab,
        "POST",
        f"/v1/lists/{created['id']}/import",
        202,
        data=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )

    async def imported() -> bool:
        job = await call(lab, "GET", f"/v1/imports/{started['import_id']}", 200)
        return bool(job["status"] == "done")

    await eventually(imported)
    await call(lab, "POST", "/v1/opt-outs", 201, json={"number": numbers[0], "sender": "ACME"})
    campaign = await call(
        lab,
        "POST",
        "/v1/campaigns",
        201,
        json={
            "name": "e2e",
            "from": "ACME",
            "text": "Hello {first_name}, see you at {shop}",
            "lists": [created["id"]],
        },
    )
    cid = campaign["id"]
    await call(lab, "POST", f"/v1/campaigns/{cid}/start", 200)
    stats: dict[str, Any] = {}

    async def all_final() -> bool:
        nonlocal stats
        stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats", 200)
        final = stats["delivered"] + stats["undeliverable"] + stats["expired"]
        return bool(final == CONTACTS - 1 and stats["pending"] == 0)

    await eventually(all_final, within=60)
    done = await call(lab, "GET", f"/v1/campaigns/{cid}", 200)
    assert done["status"] == "done"
    sim = await lab.sim("GET", "/v1/stats")
    assert sim["submit_sm"] == CONTACTS - 1 == stats["sent"]
    states = sim["receipts_by_state"]
    assert stats["delivered"] == states.get("DELIVRD", 0) > 0
    assert stats["undeliverable"] == states.get("UNDELIV", 0) > 0
    assert stats["expired"] == states.get("EXPIRED", 0)
    assert stats["recipients"] == CONTACTS and stats["skipped_opted_out"] == 1
    assert stats["delivery_rate"] == round(stats["delivered"] / (CONTACTS - 1), 4)

    received = (await lab.sim("GET", f"/v1/messages?limit={CONTACTS}"))["messages"]
    by_destination = {m["destination"]: m["text"] for m in received}
    assert numbers[0][1:] not in by_destination  # opted out of ACME
    assert by_destination[numbers[4][1:]] == "Hello Client, see you at Shop1"
    assert len(by_destination) == CONTACTS - 1


async def test_a_campaign_survives_a_gateway_restart_without_duplicates(lab: Lab) -> None:
    count = 200
    created = await call(lab, "POST", "/v1/lists", 201, json={"name": "restart"})
    numbers = [f"+336{40000000 + i:08d}" for i in range(count)]
    started = await call(
        lab,
        "POST",
        f"/v1/lists/{created['id']}/import",
        202,
        data=("number\n" + "\n".join(numbers) + "\n").encode(),
        headers={"Content-Type": "text/csv"},
    )

    async def imported() -> bool:
        job = await call(lab, "GET", f"/v1/imports/{started['import_id']}", 200)
        return bool(job["status"] == "done")

    await eventually(imported)
    body = {"name": "slow", "from": "ACME", "text": "Hi", "lists": [created["id"]], "tps": 100}
    campaign = await call(lab, "POST", "/v1/campaigns", 201, json=body)
    cid = campaign["id"]
    await call(lab, "POST", f"/v1/campaigns/{cid}/start", 200)

    async def some_sent() -> bool:
        progress = (await call(lab, "GET", f"/v1/campaigns/{cid}", 200))["progress"]
        return bool(0 < progress["handled"] < count)

    await eventually(some_sent, every=0.01)
    await lab.stop_gateway()
    await lab.start_gateway()

    async def finished() -> bool:
        stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats", 200)
        status = (await call(lab, "GET", f"/v1/campaigns/{cid}", 200))["status"]
        return bool(stats["sent"] == count and stats["pending"] == 0 and status == "done")

    await eventually(finished, within=60)
    received = (await lab.sim("GET", f"/v1/messages?limit={2 * count}"))["messages"]
    destinations = [m["destination"] for m in received]
    assert sorted(destinations) == sorted(n[1:] for n in numbers)  # each exactly once


async def test_replies_to_a_two_way_campaign_feed_its_stats(tmp_path: Path) -> None:
    """With the MO path: scripted subscribers answer a campaign made over the API; its own
    keyword (MAYBE) is matched through the campaign directory, STOP opts out, and the
    campaign's statistics count what the simulator's subscribers sent."""
    from collections import Counter

    from smsc_simulator.config import DelayConfig, ReplyConfig, SubscribersConfig
    from tests.test_e2e_inbound import SHORT_CODE, Helpdesk, InboundLab, inbound_raw

    subscribers = SubscribersConfig(
        reply_share=1.0,
        reply_once="number",
        delay=DelayConfig(seconds=0.05),
        replies=(ReplyConfig("YES", 3), ReplyConfig("maybe later", 2), ReplyConfig("STOP", 1)),
    )
    helpdesk = Helpdesk()
    await helpdesk.start()
    lab = InboundLab(tmp_path, inbound_raw(helpdesk.url), subscribers=subscribers)
    await lab.start()
    try:
        count = 40
        created = await call(lab, "POST", "/v1/lists", 201, json={"name": "two-way"})
        numbers = [f"+336{50000000 + i:08d}" for i in range(count)]
        csv = "number,name\n" + "".join(f"{n},Fan {i}\n" for i, n in enumerate(numbers))
        job = await call(
            lab,
            "POST",
            f"/v1/lists/{created['id']}/import",
            202,
            data=csv.encode(),
            headers={"Content-Type": "text/csv"},
        )

        async def imported() -> bool:
            got = await call(lab, "GET", f"/v1/imports/{job['import_id']}", 200)
            return bool(got["status"] == "done")

        await eventually(imported)
        maybe = {
            "name": "maybe",
            "keyword": "MAYBE",
            "actions": [{"type": "reply", "text": "We will ask again, {first_name}."}],
        }
        body = {
            "name": "two-way",
            "from": SHORT_CODE,
            "text": "Concert on Friday? YES / MAYBE",
            "lists": [created["id"]],
            "two_way": True,
            "keywords": [maybe],
        }
        campaign = await call(lab, "POST", "/v1/campaigns", 201, json=body)
        cid = campaign["id"]
        await call(lab, "POST", f"/v1/campaigns/{cid}/start", 200)
        found = await lab.handled(count)
        assert all(i.campaign_id == cid for i in found)
        said = Counter(
            {
                t.upper(): n
                for t, n in (await lab.sim("GET", "/v1/stats"))["subscriber_replies"].items()
            }
        )
        keywords = Counter(i.keyword for i in found)
        assert keywords["MAYBE"] == said["MAYBE LATER"] > 0  # the campaign's own rule
        assert keywords["YES"] == said["YES"] and keywords["STOP"] == said["STOP"]
        stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats", 200)
        assert stats["replies"] == stats["unique_responders"] == count
        assert stats["answers_per_keyword"] == {k: n for k, n in keywords.items() if k}
        assert stats["opt_outs"] == said["STOP"]
        assert stats["per_hour"][0] == count and stats["per_day"][0] == count
        assert stats["median_seconds_to_first_reply"] is not None

        # Everyone again: the STOP numbers are skipped.
        again = await call(
            lab, "POST", f"/v1/campaigns/{cid}/send-to-responders", 201, json={"text": "Friday!"}
        )
        await call(lab, "POST", f"/v1/campaigns/{again['id']}/start", 200)

        async def finished() -> bool:
            got = await call(lab, "GET", f"/v1/campaigns/{again['id']}", 200)
            return bool(got["status"] == "done")

        await eventually(finished)
        second = await call(lab, "GET", f"/v1/campaigns/{again['id']}/stats", 200)
        assert second["recipients"] == count
        assert second["skipped_opted_out"] == said["STOP"]
        assert second["messages"] == count - said["STOP"]
    finally:
        await lab.stop()
        await helpdesk.stop()
