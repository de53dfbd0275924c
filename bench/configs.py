"""Configuration files for the processes a benchmark starts, written into its temp dir.

Ports: the simulator listens on port 0 (it prints the ports it got) and so does the gateway's
HTTP API (the benchmark reads ``daemon.started http=HOST:PORT`` from its log). The gateway's
carrier port is the simulator's, or the latency tap's.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from gateway.config import hash_token

SYSTEM_ID = "bench"
PASSWORD = "bench"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _table(name: str, values: dict[str, object]) -> str:
    lines = [name]
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SimulatorSettings:
    """The knobs of the simulator account a scenario needs."""

    tps: float = 0.0
    """Account TPS (ESME_RTHROTTLED beyond it); 0 is unlimited."""
    window: int = 0
    """Unanswered submit_sm per bind (ESME_RMSGQFUL beyond it); 0 is unlimited."""
    max_binds: int = 16
    deliver_window: int = 1000
    """deliver_sm in flight per bind: large, so receipts flow as fast as the gateway answers."""
    receipt_delay: float = 0.2
    """Seconds from submit_sm to its receipt: a fast carrier, and long enough that most
    receipts come after their submit_sm_resp is recorded, as in the field."""
    keep: int = 0
    """GET /v1/messages ring buffer; 0 keeps nothing (the benchmark does not need it)."""
    log_level: str = "info"
    tcp_quickack: bool = False
    """ACK every read at once (``smpp.tcp_quickack``) instead of the kernel's delayed ACKs."""


def simulator_toml(s: SimulatorSettings) -> str:
    parts = [
        "seed = 1\n",
        _table(
            "[smpp]",
            {
                "host": "127.0.0.1",
                "port": 0,
                "enquire_link_interval": 300.0,
                "response_timeout": 60.0,
                "bind_timeout": 30.0,
                "tcp_quickack": s.tcp_quickack,
            },
        ),
        _table("[control]", {"host": "127.0.0.1", "port": 0}),
        _table("[log]", {"level": s.log_level, "format": "text"}),
        _table("[messages]", {"keep": s.keep}),
        _table(
            "[[accounts]]",
            {
                "system_id": SYSTEM_ID,
                "password": PASSWORD,
                "max_binds": s.max_binds,
                "tps": s.tps,
                "window": s.window,
                "deliver_window": s.deliver_window,
            },
        ),
        _table("[accounts.message_id]", {"base": "hex"}),
        _table("[accounts.receipts.delay]", {"distribution": "fixed", "seconds": s.receipt_delay}),
        _table(
            "[accounts.receipts.outcomes]",
            {"delivered": 1.0, "undeliverable": 0.0, "expired": 0.0, "rejected": 0.0},
        ),
    ]
    return "\n".join(parts)


@dataclass(frozen=True)
class GatewaySettings:
    """The knobs of the gateway's one carrier that a scenario needs."""

    smsc_port: int
    binds: int = 4
    window: int = 1000
    """gateway.config.MAX_WINDOW: as large as the configuration allows."""
    tps: float = 0.0
    account_tps: float = 0.0
    synchronous: str = "full"
    """The store's fsync policy; ``full`` is the gateway's default (durable on power loss)."""
    log_level: str = "info"
    """The gateway's default: per-message logging at INFO would show up in the figures."""
    extra_toml: str = ""
    """More TOML appended to the file (e.g. an ``[inbound]`` section for inbound_mo)."""


@dataclass(frozen=True)
class GatewayFiles:
    config: Path
    data_dir: Path
    token: str

    @property
    def db_path(self) -> Path:
        return self.data_dir / "smsgw.db"


def write_gateway(directory: Path, s: GatewaySettings) -> GatewayFiles:
    """A gateway configuration in ``directory`` (its data_dir is ``directory/data``)."""
    directory.mkdir(parents=True, exist_ok=True)
    data_dir = directory / "data"
    data_dir.mkdir(exist_ok=True)
    token = secrets.token_urlsafe(24)
    parts = [
        _table("[node]", {"id": "bench", "data_dir": str(data_dir)}),
        _table("[http]", {"host": "127.0.0.1", "port": 0}),
        _table("[[http.tokens]]", {"name": "bench", "sha256": hash_token(token)}),
        _table("[log]", {"level": s.log_level, "format": "text"}),
        _table("[store]", {"backend": "sqlite", "path": "smsgw.db", "synchronous": s.synchronous}),
        _table(
            "[[carriers]]",
            {
                "name": "sim",
                "host": "127.0.0.1",
                "port": s.smsc_port,
                "system_id": SYSTEM_ID,
                "password": PASSWORD,
                "bind_type": "trx",
                "binds": s.binds,
                "window": s.window,
                "tps": s.tps,
                "account_tps": s.account_tps,
                "enquire_link_interval": 300.0,
                "reconnect_initial": 0.2,
                "reconnect_max": 2.0,
                "message_id_form": "hex",
                "registered_delivery": 1,
            },
        ),
    ]
    if s.extra_toml:
        parts.append(s.extra_toml)
    path = directory / "gateway.toml"
    path.write_text("\n".join(parts))
    return GatewayFiles(path, data_dir, token)


def write_simulator(directory: Path, s: SimulatorSettings) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "simulator.toml"
    path.write_text(simulator_toml(s))
    return path
