"""A reload that routes to a newly added carrier reaches every way a message comes in.

The daemon runs as a process (``python -m gateway run``) against the in-process
simulator, each carrier on a simulator account of its own so the simulator says which carrier
a message came through. After a SIGHUP that adds carrier ``beta`` and routes +33 to it, a
message through each of the four intakes must leave by beta: the HTTP API, an upstream ESME's
submit_sm on the SMPP front, an MO's automatic reply and a campaign.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import hash_token
from gateway.front.passwords import hash_password
from gateway.smpp.constants import Status
from gateway.smpp.pdu import SubmitSm
from smsc_simulator.config import AccountConfig
from smsc_simulator.server import Simulator
from tests.e2e_helpers import eventually, simulator_config
from tests.smpp_client import EsmeClient
from tests.test_ops_process import Daemon

TOKEN = "reload-paths-token-5d1e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FRONT_ACCOUNT = "upstream"
FRONT_PASSWORD = "up5tr3am"
SHORT_CODE = "36180"
HELP_TEXT = "ACME: reply STOP to stop."
CARRIERS = ("alpha", "beta")


def carrier(name: str, smsc_port: int) -> str:
    return f"""
[[carriers]]
name = "{name}"
host = "127.0.0.1"
port = {smsc_port}
system_id = "{name}"
password = "pw-{name}"
binds = 1
message_id_form = "hex"
reconnect_initial = 0.1
reconnect_max = 0.5
response_timeout = 5.0
"""


def config_text(data_dir: Path, smsc_port: int, carriers: tuple[str, ...]) -> str:
    return f"""
[node]
data_dir = "{data_dir}"

[http]
host = "127.0.0.1"
port = 0
[[http.tokens]]
name = "ops"
sha256 = "{hash_token(TOKEN)}"

[log]
level = "info"
format = "json"

[store]
synchronous = "normal"

[shutdown]
drain_seconds = 2.0

{"".join(carrier(name, smsc_port) for name in carriers)}
[[routes]]
prefix = "+33"
carriers = ["{carriers[-1]}"]

[front]
host = "127.0.0.1"
port = 0
retry_delay = 0.2

[[front.accounts]]
system_id = "{FRONT_ACCOUNT}"
password_hash = "{hash_password(FRONT_PASSWORD, 1000)}"
allowed_ips = ["127.0.0.1/32"]

[inbound]
[[inbound.numbers]]
number = "{SHORT_CODE}"
help_text = "{HELP_TEXT}"
"""


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    base = simulator_config()
    accounts = tuple(
        dataclasses.replace(base.accounts[0], system_id=name, password=f"pw-{name}")
        for name in CARRIERS
    )
    assert all(isinstance(a, AccountConfig) for a in accounts)
    sim = Simulator(dataclasses.replace(base, accounts=accounts))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class Client:
    """HTTP to the gateway and to the simulator's control API."""

    def __init__(self, http: aiohttp.ClientSession, gateway: str, simulator: str) -> None:
        self.http = http
        self.gateway = gateway
        self.simulator = simulator

    async def call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        async with self.http.request(method, self.gateway + path, headers=headers, **kwargs) as r:
            assert r.status == status, await r.text()
            return await r.json()

    async def sim(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.simulator + path, json=body) as r:
            assert r.status < 300, await r.text()
            return await r.json()

    async def received(self) -> dict[str, str]:
        """Destination (E.164) -> the simulator account (= carrier) it came through."""
        messages = (await self.sim("GET", "/v1/messages?limit=1000"))["messages"]
        return {"+" + m["destination"]: m["system_id"] for m in messages}


def front_port(log_path: Path) -> int:
    for line in log_path.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "front.started":
            return int(event["listen"].rsplit(":", 1)[1])
    raise AssertionError("no front.started in the log")


async def test_after_a_reload_to_a_new_carrier_all_four_intakes_send_through_it(
    tmp_path: Path, simulator: Simulator
) -> None:
    assert simulator.smpp_port and simulator.control_port
    config = tmp_path / "gateway.toml"
    data = tmp_path / "data"
    config.write_text(config_text(data, simulator.smpp_port, ("alpha",)))
    log_path = tmp_path / "daemon.log"
    daemon = Daemon(config, log_path, "")
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    esme: EsmeClient | None = None
    try:
        await daemon.wait_started()
        client = Client(http, daemon.url, f"http://127.0.0.1:{simulator.control_port}")
        # A list of contacts for the campaign, imported while only alpha exists.
        contacts = [f"+3361000{i:04d}" for i in range(20)]
        listed = await client.call("POST", "/v1/lists", 201, json={"name": "reload"})
        job = await client.call(
            "POST",
            f"/v1/lists/{listed['id']}/import",
            202,
            data=("number\n" + "\n".join(contacts) + "\n").encode(),
            headers={"Content-Type": "text/csv"},
        )

        async def imported() -> bool:
            view = await client.call("GET", f"/v1/imports/{job['import_id']}", 200)
            return bool(view["status"] == "done")

        await eventually(imported)
        before = await client.call("POST", "/v1/messages", 202, json=message("+33612000001"))

        async def alpha_sent() -> bool:
            return (await client.received()).get("+33612000001") == "alpha"

        await eventually(alpha_sent)

        # -- SIGHUP: beta added, +33 routed to it -----------------------------------------
        config.write_text(config_text(data, simulator.smpp_port, ("alpha", "beta")))
        daemon.proc.send_signal(signal.SIGHUP)

        async def beta_bound() -> bool:
            health = await client.call("GET", "/healthz", 200, headers={})
            return any(b["carrier"] == "beta" and b["state"] == "bound" for b in health["binds"])

        await eventually(beta_bound)
        assert before["id"]

        # 1. the HTTP API
        await client.call("POST", "/v1/messages", 202, json=message("+33612000002"))
        # 2. an upstream ESME on the SMPP front
        esme = await EsmeClient.bound(front_port(log_path), "trx", FRONT_ACCOUNT, FRONT_PASSWORD)
        front_submit = esme.submit_nowait(
            SubmitSm(
                source_addr_ton=5,
                source_addr="ACME",
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr="33612000003",
                short_message=b"through the front",
            )
        )
        # 3. an MO whose automatic reply (HELP) goes back to +33, by beta
        await client.sim(
            "POST", "/v1/mo", {"from": "+33612000004", "to": SHORT_CODE, "text": "HELP"}
        )
        # 4. a campaign to the list
        campaign = await client.call(
            "POST",
            "/v1/campaigns",
            201,
            json={"name": "after", "from": "ACME", "text": "Hi", "lists": [listed["id"]]},
        )
        await client.call("POST", f"/v1/campaigns/{campaign['id']}/start", 200)

        wanted = ["+33612000002", "+33612000003", "+33612000004", *contacts]
        seen: dict[str, str] = {}

        async def all_through_beta() -> bool:
            nonlocal seen
            seen = await client.received()
            return all(number in seen for number in wanted)

        try:
            await eventually(all_through_beta, within=30)
        except AssertionError:
            missing = [n for n in wanted if n not in seen]
            errors = [line for line in log_path.read_text().splitlines() if "KeyError" in line]
            raise AssertionError(f"never sent: {missing}; errors logged: {errors[:3]}") from None
        resp = await asyncio.wait_for(front_submit, 10)
        assert resp.command_status == Status.ROK, f"front submit refused: {resp}"
        assert {seen[number] for number in wanted} == {"beta"}
        assert seen["+33612000001"] == "alpha"
    finally:
        if esme is not None:
            await esme.close()
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGTERM)
            await daemon.wait_exit()
        daemon.kill()
        await http.close()
    # No intake failed along the way (the bug: KeyError in Intake.prepare*).
    text = log_path.read_text()
    assert "KeyError" not in text and re.search(r'"level": "(error|critical)"', text) is None


def message(to: str) -> dict[str, str]:
    return {"to": to, "from": "ACME", "text": f"to {to} at {time.time():.0f}"}
