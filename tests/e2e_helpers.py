"""End-to-end harness: the bundled simulator and a whole Gateway in this process, on
127.0.0.1 with port 0, talking over real sockets and the real HTTP API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from gateway.app.daemon import Gateway
from gateway.config import GatewayConfig, hash_token
from gateway.config.loader import load_dataclass
from smsc_simulator.config import (
    AccountConfig,
    ControlConfig,
    LogConfig,
    SimulatorConfig,
    SmppConfig,
)
from smsc_simulator.server import Simulator

TOKEN = "e2e-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def gateway_config(data_dir: Path, smsc_port: int, **carrier: Any) -> GatewayConfig:
    values: dict[str, Any] = {
        "name": "sim",
        "host": "127.0.0.1",
        "port": smsc_port,
        "system_id": "smsgw",
        "password": "secret",
        "binds": 2,
        "window": 50,
        "message_id_form": "hex",
        "reconnect_initial": 0.05,
        "reconnect_max": 0.5,
        "response_timeout": 5.0,
    }
    values.update(carrier)
    raw = {
        "node": {"data_dir": str(data_dir)},
        "http": {
            "host": "127.0.0.1",
            "port": 0,
            "tokens": [{"name": "e2e", "sha256": hash_token(TOKEN)}],
        },
        "log": {"level": "warning"},
        "store": {"synchronous": "normal"},
        "carriers": [values],
        # Temporary errors retried fast, so fault tests take seconds, not minutes.
        "messages": {
            "retry": [
                {"status": status, "attempts": 20, "delay": 0.05}
                for status in ("ESME_RTHROTTLED", "ESME_RMSGQFUL", "generic_nack", "timeout")
            ]
        },
    }
    return load_dataclass(GatewayConfig, raw)


def simulator_config(**account: Any) -> SimulatorConfig:
    return SimulatorConfig(
        smpp=SmppConfig(host="127.0.0.1", port=0),
        control=ControlConfig(host="127.0.0.1", port=0),
        log=LogConfig(level="warning"),
        accounts=(AccountConfig(system_id="smsgw", password="secret", **account),),
        seed=7,
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 20.0, every: float = 0.05
) -> None:
    """Poll ``check`` until it holds; the last failure is raised after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(every)


class Lab:
    """One simulator and one gateway, with HTTP clients for both."""

    def __init__(self, tmp_path: Path, sim: SimulatorConfig, **carrier: Any) -> None:
        self.tmp_path = tmp_path
        self.simulator = Simulator(sim)
        self.carrier = carrier
        self.gateway: Gateway | None = None
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        await self.simulator.start()
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        await self.start_gateway()

    async def start_gateway(self) -> None:
        # A carrier with tls = true binds to the simulator's TLS listener.
        port = self.simulator.smpp_tls_port if self.carrier.get("tls") else self.simulator.smpp_port
        assert port
        config = gateway_config(self.tmp_path / "data", port, **self.carrier)
        self.gateway = Gateway(config)
        await self.gateway.start()
        await eventually(self._bound)

    async def stop_gateway(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
            self.gateway = None

    async def stop(self) -> None:
        try:
            await self.stop_gateway()
        finally:
            if self.http is not None:
                await self.http.close()
            await self.simulator.stop()

    async def _bound(self) -> bool:
        assert self.gateway is not None
        return all(b.bound for b in self.gateway.binds)

    @property
    def gw_url(self) -> str:
        assert self.gateway is not None
        return f"http://127.0.0.1:{self.gateway.http_port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.simulator.control_port}"

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        assert self.http is not None
        async with self.http.post(
            self.gw_url + path, json=body, headers={**AUTH, **(headers or {})}
        ) as r:
            assert r.status == 202, await r.text()
            return await r.json()

    async def get(self, path: str) -> Any:
        assert self.http is not None
        async with self.http.get(self.gw_url + path, headers=AUTH) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def sim(self, method: str, path: str, body: Any = None) -> Any:
        assert self.http is not None
        async with self.http.request(method, self.sim_url + path, json=body) as r:
            assert r.status < 300, await r.text()
            return await r.json()

    async def statuses(self, ids: list[str]) -> dict[str, int]:
        assert self.gateway is not None
        counts: dict[str, int] = {}
        for message_id in ids:
            view = await self.gateway.store.get_message(message_id)
            status = view.status if view else "missing"
            counts[status] = counts.get(status, 0) + 1
        return counts
