"""The daemon as a process (``python -m gateway run``), against the in-process simulator.

One run proves the operations contract end to end: READY=1 over a real notify socket once the
binds are up; /metrics parses with prometheus-client and moves with traffic; SIGHUP moves a
route to another carrier without dropping a bind; SIGTERM in the middle of a send answers
STOPPING=1 and exits 0, and after a restart every accepted message is sent; no token or
password appears anywhere in the logs, with bad logins and bad requests made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import hash_token
from smsc_simulator.server import Simulator
from tests.e2e_helpers import simulator_config

TOKEN = "ops-token-3f9c1e7a2b"
WRONG_TOKEN = "ops-wrong-token-77ad"
PASSWORD = "pw8ch4rs"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START_TIMEOUT = 30.0


def config_text(data_dir: Path, smsc_port: int, route_to: str) -> str:
    carriers = "".join(
        f"""
[[carriers]]
name = "{name}"
host = "127.0.0.1"
port = {smsc_port}
system_id = "smsgw"
password = "{PASSWORD}"
binds = 1
window = 5
message_id_form = "hex"
reconnect_initial = 0.1
reconnect_max = 0.5
response_timeout = 5.0
"""
        for name in ("alpha", "beta")
    )
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
level = "debug"
format = "json"

[store]
synchronous = "normal"

[shutdown]
drain_seconds = 3.0
retry_after_seconds = 7
{carriers}
[[routes]]
prefix = "+33"
carriers = ["{route_to}"]
"""


class Daemon:
    """One ``smsgw run`` process; its stderr (JSON log lines) goes to a file we read."""

    def __init__(
        self,
        config: Path,
        log_path: Path,
        notify: str,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.log_path = log_path
        self._offset = log_path.stat().st_size if log_path.exists() else 0
        env = {**os.environ, "NOTIFY_SOCKET": notify, "WATCHDOG_USEC": "2000000"}
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=env,
            preexec_fn=preexec,  # e.g. a lower open-file limit (tests/test_http_slow_clients)
        )
        self.port = 0

    async def wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            text = self.log_path.read_bytes()[self._offset :].decode()
            found = re.findall(r'"event": "daemon.started", "http": "127.0.0.1:(\d+)"', text)
            if found:
                self.port = int(found[-1])
                return
            await asyncio.sleep(0.05)
        raise AssertionError("daemon did not start:\n" + self.log_path.read_text())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_exit(self, within: float = 30.0) -> int:
        deadline = time.monotonic() + within
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("daemon did not exit")
            await asyncio.sleep(0.05)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.seen: list[str] = []

    async def wait_for(self, field: str, within: float = START_TIMEOUT) -> list[str]:
        """Datagrams until one holds ``field``; returns the fields of that one."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except BlockingIOError:
                await asyncio.sleep(0.02)
                continue
            self.seen.append(data)
            fields = data.split("\n")
            if field in fields:
                return fields
        raise AssertionError(f"no {field} within {within} s; saw {self.seen}")

    def close(self) -> None:
        self.sock.close()


async def metrics(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """Every sample summed by name (labels dropped), parsed by prometheus-client."""
    async with http.get(url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


async def message_view(http: aiohttp.ClientSession, url: str, message_id: str) -> Any:
    async with http.get(f"{url}/v1/messages/{message_id}", headers=AUTH) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def post_batch(http: aiohttp.ClientSession, url: str, n: int, tag: str) -> list[str]:
    body = {
        "messages": [
            {"to": f"+336{tag}{i:07d}", "from": "ACME", "text": f"ops {tag} {i}"} for i in range(n)
        ]
    }
    async with http.post(url + "/v1/messages/batch", json=body, headers=AUTH) as r:
        assert r.status == 202, await r.text()
        return [m["id"] for m in (await r.json())["messages"]]


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    base = simulator_config()
    account = dataclasses.replace(base.accounts[0], password=PASSWORD)
    sim = Simulator(dataclasses.replace(base, accounts=(account,)))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def eventually(check: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_daemon_process_ready_metrics_reload_sigterm_restart_and_no_secrets(
    tmp_path: Path, simulator: Simulator
) -> None:
    assert simulator.smpp_port and simulator.control_port
    sim_url = f"http://127.0.0.1:{simulator.control_port}"
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(tmp_path / "data", simulator.smpp_port, "alpha"))
    log_path = tmp_path / "daemon.log"
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = Daemon(config, log_path, notify.path)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    try:
        # -- READY=1 only once the binds are up (the simulator is there, so: bound) ----------
        await daemon.wait_started()
        ready = await notify.wait_for("READY=1")
        assert "STATUS=2/2 binds up" in ready
        async with http.get(daemon.url + "/healthz") as r:
            health = await r.json()
        assert health["status"] == "ok"
        await notify.wait_for("WATCHDOG=1", 5.0)  # the loop pings at half of WATCHDOG_USEC

        # -- bad logins and bad requests (their answers and logs are checked below) ----------
        for headers in ({"Authorization": f"Bearer {WRONG_TOKEN}"}, {}):
            async with http.post(daemon.url + "/v1/messages", json={}, headers=headers) as r:
                assert r.status == 401
        async with http.post(
            daemon.url + "/v1/messages", json={"to": "nope", "from": "", "text": 5}, headers=AUTH
        ) as r:
            assert r.status == 400

        # -- /metrics parses and moves as traffic flows --------------------------------------
        before = await metrics(http, daemon.url)
        first = await post_batch(http, daemon.url, 40, "1")

        async def first_sent() -> bool:
            views = [await message_view(http, daemon.url, i) for i in first[-3:]]
            return all(v["status"] in ("submitted", "delivered") for v in views)

        await eventually(first_sent)
        after = await metrics(http, daemon.url)
        assert after["smsgw_submit_sm_total"] >= before.get("smsgw_submit_sm_total", 0) + 40
        assert after["smsgw_http_requests_total"] > before["smsgw_http_requests_total"]
        assert after["smsgw_binds_up"] == 2
        view = await message_view(http, daemon.url, first[0])
        assert view["carrier"] == "alpha"

        # -- SIGHUP: +33 now goes to beta; no bind is dropped --------------------------------
        async with http.get(sim_url + "/v1/binds") as r:
            peers_before = sorted(b["peer"] for b in (await r.json())["binds"])
        assert len(peers_before) == 2
        config.write_text(config_text(tmp_path / "data", simulator.smpp_port, "beta"))
        daemon.proc.send_signal(signal.SIGHUP)
        await notify.wait_for("RELOADING=1", 10.0)
        await notify.wait_for("READY=1", 10.0)
        moved = await post_batch(http, daemon.url, 5, "2")

        async def moved_sent() -> bool:
            views = [await message_view(http, daemon.url, i) for i in moved]
            return all(v["status"] in ("submitted", "delivered") for v in views)

        await eventually(moved_sent)
        assert {(await message_view(http, daemon.url, i))["carrier"] for i in moved} == {"beta"}
        async with http.get(sim_url + "/v1/binds") as r:
            assert sorted(b["peer"] for b in (await r.json())["binds"]) == peers_before
        async with http.get(daemon.url + "/healthz") as r:
            assert [b["connects"] for b in (await r.json())["binds"]] == [1, 1]

        # -- a bad file on SIGHUP is refused, listed, and the old config keeps running ------
        config.write_text(
            config_text(tmp_path / "data", simulator.smpp_port, "alpha")
            .replace("window = 5", "window = 0", 1)
            .replace("retry_after_seconds = 7", "retry_after_seconds = 0")
        )
        daemon.proc.send_signal(signal.SIGHUP)

        async def refused() -> bool:
            # Every error is listed (a line each): wait for the last one, not just the first.
            text = log_path.read_text()
            return '"event": "reload.refused"' in text and "shutdown.retry_after_seconds" in text

        await eventually(refused, 10.0)
        text = log_path.read_text()
        assert "carriers[0].window" in text and "shutdown.retry_after_seconds" in text
        assert (await message_view(http, daemon.url, moved[0]))["status"] != "missing"

        # -- SIGTERM in the middle of a send -------------------------------------------------
        async with http.put(sim_url + "/v1/faults", json={"slow_responses": 0.2}) as r:
            assert r.status < 300
        big = await post_batch(http, daemon.url, 300, "3")

        async def some_sent() -> bool:
            return simulator.stats_snapshot()["submit_sm"] >= 45 + 20

        await eventually(some_sent)
        daemon.proc.send_signal(signal.SIGTERM)
        await notify.wait_for("STOPPING=1", 10.0)
        assert await daemon.wait_exit() == 0
        sent_at_stop = simulator.stats_snapshot()["submit_sm"] - 45
        assert sent_at_stop < 300, "the send was not interrupted; the test proves nothing"

        # -- restart: every accepted message is sent -----------------------------------------
        async with http.delete(sim_url + "/v1/faults") as r:
            assert r.status < 300
        config.write_text(config_text(tmp_path / "data", simulator.smpp_port, "alpha"))
        daemon = Daemon(config, log_path, notify.path)
        await daemon.wait_started()

        async def all_sent() -> bool:
            for message_id in big[::-1]:
                view = await message_view(http, daemon.url, message_id)
                if view["status"] not in ("submitted", "delivered"):
                    return False
            return True

        await eventually(all_sent, 60.0)

        # -- a second SIGTERM forces the exit; what was accepted still goes after a restart --
        async with http.put(sim_url + "/v1/faults", json={"black_hole": True}) as r:
            assert r.status < 300
        stuck = await post_batch(http, daemon.url, 10, "4")

        async def on_the_wire() -> bool:  # sent, unanswered: in the window
            return (await metrics(http, daemon.url))["smsgw_bind_window_in_use"] >= 5

        await eventually(on_the_wire)
        daemon.proc.send_signal(signal.SIGTERM)
        await notify.wait_for("STOPPING=1", 10.0)
        daemon.proc.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit(10.0) == 1
        async with http.delete(sim_url + "/v1/faults") as r:
            assert r.status < 300
        daemon = Daemon(config, log_path, notify.path)
        await daemon.wait_started()
        big = stuck

        await eventually(all_sent, 30.0)
        daemon.proc.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
    finally:
        daemon.kill()
        await http.close()
        notify.close()

    # -- the logs: one JSON object a line, never a secret ----------------------------------
    raw = log_path.read_text()
    secrets = (TOKEN, WRONG_TOKEN, PASSWORD, hash_token(TOKEN), hash_token(WRONG_TOKEN))
    for secret in secrets:
        assert secret not in raw, f"a secret was logged: {secret[:4]}..."
    events = [json.loads(line) for line in raw.splitlines() if line.strip()]
    names = {e["event"] for e in events}
    assert {"daemon.started", "daemon.ready", "reload.applied", "daemon.stopping"} <= names
    assert any(e["event"] == "api.rejected" and e["status"] == 400 for e in events)
    assert sum(e["event"] == "api.unauthorized" for e in events) == 2  # the two bad logins
    for e in events:
        if e["event"].startswith(("api.accepted", "message.")):
            assert "ids" in e or "id" in e, e
