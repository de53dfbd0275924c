"""Lifecycle in process: draining on stop, readiness, reload of carriers, binds and hooks."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.app.cli import main
from gateway.app.daemon import Gateway
from gateway.app.lifecycle import apply_config, read_config, restart_needed
from gateway.app.sdnotify import Notifier
from gateway.config import GatewayConfig, ShutdownConfig
from smsc_simulator.server import Simulator
from tests.e2e_helpers import AUTH, eventually, gateway_config, simulator_config


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(simulator_config())
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


def config_for(tmp_path: Path, sim: Simulator, **carrier: object) -> GatewayConfig:
    assert sim.smpp_port
    config = gateway_config(tmp_path / "data", sim.smpp_port, **carrier)
    return dataclasses.replace(config, shutdown=ShutdownConfig(drain_seconds=1.0))


async def all_bound(gw: Gateway) -> bool:
    return all(b.bound for b in gw.binds)


async def test_stopping_gateway_answers_503_and_keeps_what_it_accepted(
    tmp_path: Path, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    config = config_for(tmp_path, simulator, binds=1)
    gw = Gateway(config)
    await gw.start()
    try:
        await eventually(lambda: all_bound(gw))
        url = f"http://127.0.0.1:{gw.http_port}"
        sim_url = f"http://127.0.0.1:{simulator.control_port}"
        # A peer that stops answering: the stop has to wait out its drain time.
        async with http.put(sim_url + "/v1/faults", json={"black_hole": True}) as r:
            assert r.status < 300
        body = {"to": "+33612345678", "from": "ACME", "text": "before stop"}
        async with http.post(url + "/v1/messages", json=body, headers=AUTH) as r:
            assert r.status == 202
            accepted = (await r.json())["id"]

        async def on_the_wire() -> bool:
            return simulator.stats_snapshot()["submit_sm"] >= 1

        await eventually(on_the_wire)
        stopping = asyncio.create_task(gw.stop())
        await asyncio.sleep(0.1)
        assert not stopping.done()
        async with http.post(url + "/v1/messages", json=body, headers=AUTH) as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == str(config.shutdown.retry_after_seconds)
            assert (await r.json())["error"]["code"] == "draining"
        async with http.post(url + "/v1/messages/batch", json={"messages": []}) as r:
            assert r.status == 503  # refused before auth: nothing runs while draining
        async with http.get(url + "/healthz") as r:
            assert r.status == 503
            health = await r.json()
            assert health["status"] == "draining" and len(health["binds"]) == 1
        async with http.get(f"{url}/v1/messages/{accepted}", headers=AUTH) as r:
            assert r.status == 200  # reads still work
        await stopping
    finally:
        await gw.stop()
    async with http.delete(f"http://127.0.0.1:{simulator.control_port}/v1/faults") as r:
        assert r.status < 300

    # Unanswered at the stop: still queued, and sent after a restart.
    again = Gateway(config)
    await again.start()
    try:

        async def sent() -> bool:
            view = await again.store.get_message(accepted)
            return view is not None and view.status in ("submitted", "delivered")

        await eventually(sent)
    finally:
        await again.stop()


async def test_ready_once_every_bind_is_up_or_retrying(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    dead_port = listener.getsockname()[1]
    listener.close()  # nothing listens there: the bind goes to backoff
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    notify.bind(path)
    notify.setblocking(False)
    config = gateway_config(
        tmp_path / "data", dead_port, binds=1, reconnect_initial=5.0, reconnect_max=5.0
    )
    gw = Gateway(config, Notifier({"NOTIFY_SOCKET": path}))
    await gw.start()
    try:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(notify, 4096), 10)
        fields = data.decode().split("\n")
        assert fields[0] == "READY=1" and "STATUS=0/1 binds up" in fields
        assert gw.binds[0].state.value == "backoff"
    finally:
        await gw.stop()
        notify.close()


async def test_reload_keeps_unchanged_binds_rebuilds_changed_and_runs_hooks(
    tmp_path: Path, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    config = config_for(tmp_path, simulator, binds=2)
    gw = Gateway(config)
    seen: list[GatewayConfig] = []

    async def hook(new: GatewayConfig) -> None:
        seen.append(new)

    def broken_hook(new: GatewayConfig) -> None:
        raise RuntimeError("a broken hook must not stop the reload")

    gw.reload_hooks.extend([broken_hook, hook])
    await gw.start()
    try:
        await eventually(lambda: all_bound(gw))
        first = list(gw.binds)

        # One more bind, same settings: the two bound stay, one is added.
        grown = config_for(tmp_path, simulator, binds=3)
        await apply_config(gw, grown)
        assert gw.binds[:2] == first and len(gw.binds) == 3
        assert seen == [grown]
        await eventually(lambda: all_bound(gw))
        assert [b.connects for b in gw.binds] == [1, 1, 1]

        # A changed setting (window): every bind is rebuilt; the old ones unbind.
        changed = config_for(tmp_path, simulator, binds=2, window=20)
        await apply_config(gw, changed)
        assert not set(gw.binds) & set(first) and len(gw.binds) == 2
        assert all(b.state.value == "stopped" for b in first)
        await eventually(lambda: all_bound(gw))
        assert {b.settings.session.window for b in gw.binds} == {20}

        # Traffic still flows over the rebuilt binds.
        url = f"http://127.0.0.1:{gw.http_port}"
        body = {"to": "+33612345678", "from": "ACME", "text": "after reload"}
        async with http.post(url + "/v1/messages", json=body, headers=AUTH) as r:
            assert r.status == 202
            message_id = (await r.json())["id"]

        async def sent() -> bool:
            view = await gw.store.get_message(message_id)
            return view is not None and view.status in ("submitted", "delivered")

        await eventually(sent)
        assert seen == [grown, changed] and gw.config is changed
    finally:
        await gw.stop()


def test_a_bad_file_is_refused_with_every_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[node]\ndata_dir = "x"\n[http]\nport = -1\n[log]\n[store]\n')
    assert read_config(bad) is None
    logged = [r.getMessage() for r in caplog.records]
    assert "reload.refused" in logged
    errors = [
        str(getattr(r, "smsgw_fields", {}).get("error"))
        for r in caplog.records
        if r.getMessage() == "reload.config_error"
    ]
    assert any("http.port" in e for e in errors) and any("carriers" in e for e in errors)
    assert read_config(tmp_path / "missing.toml") is None


def test_restart_needed_names_start_only_sections(tmp_path: Path) -> None:
    a = gateway_config(tmp_path, 2775)
    b = dataclasses.replace(a, shutdown=ShutdownConfig(drain_seconds=9))
    assert restart_needed(a, a) == []
    assert restart_needed(a, b) == ["shutdown"]


def test_smsgw_reload_signals_the_pid_in_the_pid_file(tmp_path: Path) -> None:
    # A stand-in daemon: exits 7 on SIGHUP, so the test sees the signal arrive.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGHUP, lambda *a: sys.exit(7))\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        data = tmp_path / "data"
        data.mkdir()
        (data / "smsgw.pid").write_text(f"{child.pid}\n")
        conf = tmp_path / "g.toml"
        base = Path(__file__).resolve().parent.parent / "conf" / "gateway.toml"
        text = base.read_text().replace('data_dir = "../var"', f'data_dir = "{data}"')
        conf.write_text(text + '\n[shutdown]\npid_file = "smsgw.pid"\n')
        assert main(["reload", "--config", str(conf)]) == 0
        assert child.wait(10) == 7
        conf.write_text(text)  # no pid_file: told to use systemctl
        assert main(["reload", "--config", str(conf)]) == 2
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
