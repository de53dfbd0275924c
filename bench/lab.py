"""A simulator and a gateway as separate processes, and the HTTP calls the scenarios make.

The benchmark drives the gateway only through its public HTTP API, reads the simulator's
control API for its counters, and opens the gateway's SQLite file read-only (WAL lets a
reader see the last committed state without disturbing the writer) to count statuses: the
gateway has no stats endpoint yet.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.configs import (
    GatewayFiles,
    GatewaySettings,
    SimulatorSettings,
    write_gateway,
    write_simulator,
)
from bench.procs import GATEWAY_CPU, SIMULATOR_CPU, Proc, ProcessSet

READY_TIMEOUT = 30.0
"""Seconds for a process to print its ready line (imports and a first bind take ~1 s)."""
BIND_TIMEOUT = 30.0

SENDER = "BENCH"
TEXT = "Benchmark message: the quick brown fox jumps over the lazy dog"
"""62 GSM 03.38 characters: one part, the shape of most A2P traffic (codes, notices)."""


def destination(index: int) -> str:
    """A valid, distinct German mobile number per message (no cache hit in number checks)."""
    return f"+49151{index % 100_000_000:08d}"


def batch_body(first: int, count: int, text: str = TEXT) -> bytes:
    messages = [
        {"to": destination(i), "from": SENDER, "text": text} for i in range(first, first + count)
    ]
    return json.dumps({"messages": messages}, separators=(",", ":")).encode()


@dataclass
class Simulator:
    proc: Proc
    smpp_port: int
    control_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"


@dataclass
class Gateway:
    proc: Proc
    files: GatewayFiles
    http_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.files.token}"}


def start_simulator(
    procs: ProcessSet, directory: Path, settings: SimulatorSettings, name: str = "simulator"
) -> Simulator:
    config = write_simulator(directory, settings)
    proc = procs.spawn_python(
        name, ["-m", "smsc_simulator.cli", "--config", str(config)], SIMULATOR_CPU
    )
    match = proc.wait_for(r"smsc-sim ready .*smpp_port=(\d+) .*control_port=(\d+)", READY_TIMEOUT)
    return Simulator(proc, int(match.group(1)), int(match.group(2)))


def start_gateway(
    procs: ProcessSet,
    directory: Path,
    settings: GatewaySettings,
    name: str = "gateway",
    command: Sequence[str] | None = None,
) -> Gateway:
    """``command``: how to start the gateway, before ``run --config FILE`` (another
    checkout's ``.venv/bin/smsgw``, to measure it with this benchmark); default: this
    Python's ``-m gateway``."""
    files = write_gateway(directory, settings)
    argv = ["run", "--config", str(files.config)]
    if command is None:
        proc = procs.spawn_python(name, ["-m", "gateway", *argv], GATEWAY_CPU)
    else:
        proc = procs.spawn(name, [*command, *argv], GATEWAY_CPU)
    match = proc.wait_for(r"daemon\.started http=[^\s:]+:(\d+)", READY_TIMEOUT)
    return Gateway(proc, files, int(match.group(1)))


class Client:
    """One aiohttp session for every call of a run."""

    def __init__(self) -> None:
        connector = aiohttp.TCPConnector(limit=64)
        self.http = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=120)
        )

    async def close(self) -> None:
        await self.http.close()

    async def get_json(self, url: str, headers: dict[str, str] | None = None) -> Any:
        async with self.http.get(url, headers=headers) as response:
            response.raise_for_status()
            return await response.json()

    async def sim_stats(self, sim: Simulator) -> dict[str, Any]:
        stats: dict[str, Any] = await self.get_json(sim.url + "/v1/stats")
        return stats

    async def sim_reset(self, sim: Simulator) -> None:
        async with self.http.post(sim.url + "/v1/stats/reset") as response:
            response.raise_for_status()

    async def sim_faults(self, sim: Simulator, faults: dict[str, Any]) -> None:
        async with self.http.put(sim.url + "/v1/faults", json=faults) as response:
            response.raise_for_status()

    async def wait_bound(self, gateway: Gateway, within: float = BIND_TIMEOUT) -> None:
        """Until /healthz says every bind is bound."""
        timeout = within
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = await self.get_json(gateway.url + "/healthz")
                if last.get("status") == "ok":
                    return
            except aiohttp.ClientError as exc:
                last = repr(exc)
            await asyncio.sleep(0.05)
        raise RuntimeError(f"gateway binds not up within {timeout:g} s: {last}")

    async def gateway_metrics(self, gateway: Gateway, *names: str) -> dict[str, float]:
        """Values of these unlabelled samples of the gateway's GET /metrics (0.0 if absent)."""
        async with self.http.get(gateway.url + "/metrics") as response:
            response.raise_for_status()
            text = await response.text()
        found = dict.fromkeys(names, 0.0)
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in found:
                found[name] = float(value)
        return found

    async def post_batch(self, gateway: Gateway, body: bytes) -> int:
        """POST one batch; returns how many messages were accepted (raises unless 202)."""
        async with self.http.post(
            gateway.url + "/v1/messages/batch",
            data=body,
            headers={**gateway.auth, "Content-Type": "application/json"},
        ) as response:
            text = await response.text()
            if response.status != 202:
                raise RuntimeError(f"batch refused: {response.status} {text[:500]}")
        return text.count('"id"')


def status_counts(db_path: Path) -> dict[str, int]:
    """Messages per status, read from the gateway's SQLite file (read-only, WAL)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall()
    finally:
        db.close()
    return {str(status): int(count) for status, count in rows}


async def status_counts_async(db_path: Path) -> dict[str, int]:
    return await asyncio.to_thread(status_counts, db_path)


def status_of(stats: dict[str, Any], key: str, status: str) -> int:
    """A by-status counter of the simulator's stats (0 when absent)."""
    value = stats.get(key, {}).get(status, 0)
    return int(value)
