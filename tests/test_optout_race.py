"""An opt-out races a running campaign (issue 7): once the gateway has answered the
opt-out, no submit_sm for that number reaches the carrier but what was on the wire already.
Messages made before the opt-out and not sent yet end failed, "opted out"."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.e2e_helpers import AUTH, Lab, eventually, simulator_config

COUNT = 300
ON_THE_WIRE = 0.25
"""Seconds a submit_sm written before the opt-out may take to be logged by the simulator."""


async def call(lab: Lab, method: str, path: str, status: int, **kwargs: Any) -> Any:
    assert lab.http is not None
    headers = {**AUTH, **kwargs.pop("headers", {})}
    async with lab.http.request(method, lab.gw_url + path, headers=headers, **kwargs) as r:
        assert r.status == status, await r.text()
        return await r.json()


async def received(lab: Lab) -> dict[str, float]:
    """Destination (with '+') -> when the simulator received its submit_sm (epoch)."""
    messages = (await lab.sim("GET", f"/v1/messages?limit={2 * COUNT}"))["messages"]
    return {
        "+" + m["destination"]: datetime.fromisoformat(m["received_at"]).timestamp()
        for m in messages
    }


async def test_an_opt_out_racing_a_running_campaign_is_never_overtaken(tmp_path: Path) -> None:
    lab = Lab(tmp_path, simulator_config(), tps=50)  # the carrier paces the campaign: 6 s
    await lab.start()
    try:
        created = await call(lab, "POST", "/v1/lists", 201, json={"name": "race"})
        numbers = [f"+336{50000000 + i:08d}" for i in range(COUNT)]
        job = await call(
            lab,
            "POST",
            f"/v1/lists/{created['id']}/import",
            202,
            data=("number\n" + "\n".join(numbers) + "\n").encode(),
            headers={"Content-Type": "text/csv"},
        )

        async def imported() -> bool:
            done = await call(lab, "GET", f"/v1/imports/{job['import_id']}", 200)
            return bool(done["status"] == "done")

        await eventually(imported)
        body = {"name": "race", "from": "ACME", "text": "Offer", "lists": [created["id"]]}
        cid = (await call(lab, "POST", "/v1/campaigns", 201, json=body))["id"]
        await call(lab, "POST", f"/v1/campaigns/{cid}/start", 200)

        async def under_way() -> bool:
            return len(await received(lab)) >= 30

        await eventually(under_way, every=0.02)
        answered: dict[str, float] = {}
        # Every number not yet seen at the carrier, from the end of the list backwards,
        # opted out one by one while the campaign runs.
        for number in reversed(numbers):
            if len(answered) == 100:
                break
            if number in await received(lab):
                continue
            body = {"number": number, "sender": "ACME"}
            await call(lab, "POST", "/v1/opt-outs", 201, json=body)
            answered[number] = time.time()

        async def settled() -> bool:
            stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats", 200)
            return bool(stats["pending"] == 0)

        await eventually(settled, within=60)
        seen = await received(lab)
        overtaken = {n: seen[n] - at for n, at in answered.items() if n in seen}
        assert all(late <= ON_THE_WIRE for late in overtaken.values()), overtaken
        # The race was real: the campaign had made every message before the opt-outs (no
        # campaign TPS: one chunk), so each opted-out number not seen was stopped on its way.
        not_sent = [n for n in answered if n not in seen]
        assert len(not_sent) >= 20  # most of the 100, unless the machine is very slow
        stats = await call(lab, "GET", f"/v1/campaigns/{cid}/stats", 200)
        assert stats["skipped_opted_out"] == 0
        assert stats["failed"] == len(not_sent)
        assert stats["sent"] == len(seen) == COUNT - len(not_sent)
    finally:
        await lab.stop()
