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
