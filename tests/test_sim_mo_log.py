"""The simulator's MO log (GET /v1/mo): what it sent, for tests to compare against."""

from __future__ import annotations

import aiohttp

from smsc_simulator.server import Simulator
from tests.e2e_helpers import simulator_config
from tests.smpp_client import EsmeClient


async def test_the_mo_log_lists_the_mos_sent_oldest_first_and_checks_its_limit() -> None:
    sim = Simulator(simulator_config())
    await sim.start()
    assert sim.smpp_port and sim.control_port
    client = await EsmeClient.bound(sim.smpp_port, "trx", "smsgw", "secret", host="127.0.0.1")
    base = f"http://127.0.0.1:{sim.control_port}/v1/mo"
    try:
        async with aiohttp.ClientSession() as http:
            for text in ("YES", "STOP"):
                body = {"from": "33612345678", "to": "36180", "text": text}
                async with http.post(base, json=body) as r:
                    assert r.status == 202
            async with http.get(base + "?limit=10") as r:
                assert r.status == 200
                log = (await r.json())["mo"]
            async with http.get(base + "?limit=1") as r:
                last = (await r.json())["mo"]
            async with http.get(base + "?limit=zero") as r:
                assert r.status == 400
    finally:
        await client.close()
        await sim.stop()
    assert [(m["source"], m["destination"], m["text"]) for m in log] == [
        ("33612345678", "36180", "YES"),
        ("33612345678", "36180", "STOP"),
    ]
    assert [m["text"] for m in last] == ["STOP"]
