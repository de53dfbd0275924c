"""The SMPP server front under test: a simulator carrier and a whole Gateway with a
``[front]`` section, in this process, on 127.0.0.1 with port 0."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from gateway.app.daemon import Gateway
from gateway.config.front import FrontConfig
from gateway.config.loader import load_dataclass
from gateway.front.passwords import hash_password
from gateway.front.server import FrontServer
from tests.e2e_helpers import Lab, eventually, gateway_config

ACCOUNT = "crm"
PASSWORD = "crmpass"
OTHER = "alerts"
OTHER_PASSWORD = "alrtpw"

FAST_ITERATIONS = 1000
"""PBKDF2 rounds for test accounts: the scheme is the same, the binds are faster."""


@functools.cache
def password_hash(password: str) -> str:
    return hash_password(password, FAST_ITERATIONS)


def front_section(**overrides: Any) -> dict[str, Any]:
    """A ``[front]`` table as TOML would give it: two accounts, fast timers."""
    accounts = [
        {"system_id": ACCOUNT, "password_hash": password_hash(PASSWORD)},
        {"system_id": OTHER, "password_hash": password_hash(OTHER_PASSWORD)},
    ]
    raw: dict[str, Any] = {
        "port": 0,
        "accounts": accounts,
        "retry_delay": 0.2,
        "response_timeout": 2.0,
        "reassembly_timeout": 2.0,
    }
    account_overrides = overrides.pop("account", {})
    accounts[0].update(account_overrides)
    raw.update(overrides)
    return raw


class FrontLab(Lab):
    """Lab with the front configured; ``front_port`` is where upstream ESMEs bind."""

    def __init__(self, tmp_path: Path, sim: Any, front: dict[str, Any], **carrier: Any) -> None:
        super().__init__(tmp_path, sim, **carrier)
        self.front_raw = front

    async def start_gateway(self) -> None:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port, **self.carrier)
        front = load_dataclass(FrontConfig, self.front_raw)
        self.gateway = Gateway(dataclasses.replace(config, front=front))
        await self.gateway.start()
        await eventually(self._bound)

    @property
    def front(self) -> FrontServer:
        assert self.gateway is not None and self.gateway.front is not None
        return self.gateway.front

    @property
    def front_port(self) -> int:
        assert self.front.port is not None
        return self.front.port
