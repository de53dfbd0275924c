"""Issue 7, security: token comparison, secrets kept out of logs, metrics and error bodies,
the callback allow-list (intake and send time), loopback by default."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import socket
import time
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app.daemon import Gateway
from gateway.callback_policy import CallbackPolicy
from gateway.config import CallbacksConfig, GatewayConfig, HttpConfig, TokenConfig, hash_token
from gateway.config.loader import ConfigError, load_dataclass
from gateway.engine.callback_client import CallbackClient, ConnectFailed
from gateway.engine.callbacks import CallbackSender
from gateway.store.sqlite import SqliteStore
from smsc_simulator.config import ControlConfig, SmppConfig
from smsc_simulator.server import Simulator
from tests.api_fakes import make_config, running_api
from tests.e2e_helpers import eventually, gateway_config, simulator_config

ROOT = Path(__file__).resolve().parent.parent
GOOD: dict[str, Any] = {"to": "+33612345678", "from": "ACME", "text": "Hello"}

# -- tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", [0, 2, None])
def test_every_token_is_compared_in_constant_time(
    which: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hmac.compare_digest on SHA-256 digests, against every entry whichever one matches."""
    tokens = [f"token-{n}" for n in range(3)]
    http = HttpConfig(
        tokens=tuple(TokenConfig(name=f"t{n}", sha256=hash_token(t)) for n, t in enumerate(tokens))
    )
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    found = http.find_token(tokens[which] if which is not None else "nope")
    assert (found.name if found else None) == (f"t{which}" if which is not None else None)
    assert len(calls) == 3
    assert all(len(a) == len(b) == 64 for a, b in calls)  # digests, never the clear token


# -- callback allow-list -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8775/v1/messages",
        "http://localhost/cb",
        "http://api.localhost/cb",
        "http://10.1.2.3/cb",
        "http://192.168.0.10/cb",
        "http://172.16.5.5/cb",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/cb",
        "http://0.0.0.0/cb",
        "http://[::1]/cb",
        "http://[fd00::1]/cb",
        "http://[fe80::1]/cb",
        "http://[::ffff:10.0.0.1]/cb",
    ],
)
def test_default_policy_refuses_non_public_targets(url: str) -> None:
    assert CallbackPolicy().url_refusal(url) is not None


@pytest.mark.parametrize(
    "url", ["https://example.com/hook", "http://93.184.216.34/cb", "https://[2606:4700::1]/"]
)
def test_default_policy_takes_public_targets(url: str) -> None:
    assert CallbackPolicy().url_refusal(url) is None


def test_allowed_hosts_and_networks() -> None:
    policy = CallbackPolicy(["hooks.example.com", "*.acme.test"], ["10.20.0.0/16"])
    assert policy.allows_url("https://hooks.example.com/x")
    assert policy.allows_url("https://a.b.acme.test/x")
    assert not policy.allows_url("https://acme.test.evil.com/x")
    assert not policy.allows_url("https://example.com/x")
    assert policy.allows_url("http://10.20.3.4/x")  # allowed network, private or not
    assert not policy.allows_url("http://10.21.3.4/x")


def test_a_bad_cidr_in_the_config_is_reported() -> None:
    with pytest.raises(ConfigError) as err:
        load_dataclass(CallbacksConfig, {"allowed_networks": ["10.0.0.0/8", "ten"]})
    assert any("allowed_networks" in e and "'ten'" in e for e in err.value.errors)


async def test_intake_refuses_a_forbidden_callback_url_with_400() -> None:
    config = make_config()
    async with running_api(config=config) as api:
        got = await api.post(
            "/v1/messages", {**GOOD, "callback_url": "http://169.254.169.254/latest/"}
        )
        assert got.status == 400
        details = got.body["error"]["details"]
        assert [d["path"] for d in details] == ["callback_url"]
        assert "not public" in details[0]["message"]
        ok = await api.post("/v1/messages", {**GOOD, "callback_url": "https://example.com/cb"})
        assert ok.status == 202
    strict = dataclasses.replace(
        config, callbacks=CallbacksConfig(allowed_hosts=("hooks.example.com",))
    )
    async with running_api(config=strict) as api:
        got = await api.post("/v1/messages", {**GOOD, "callback_url": "https://example.com/cb"})
        assert got.status == 400
        assert "allow-list" in got.body["error"]["details"][0]["message"]


async def fake_dns(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    """Every name resolves to 127.0.0.1: a public-looking name that points inside."""
    return [(socket.AF_INET, ("127.0.0.1", port))]


async def test_send_time_refuses_a_name_that_resolves_to_a_private_address() -> None:
    received: list[bytes] = []

    async def receiver(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/cb", receiver)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://hooks.example.com:{port}/cb"
    try:
        for policy, expected in (
            (CallbackPolicy(), 0),  # passes intake (a public name), refused at connect
            (CallbackPolicy(allowed_networks=["127.0.0.0/8"]), 1),
        ):
            received.clear()
            client = CallbackClient(policy, timeout=5.0, resolver=fake_dns)
            try:
                assert await client.post(url, b"{}", []) == 204
            except ConnectFailed as exc:
                assert "policy" in str(exc)
            finally:
                await client.close()
            assert len(received) == expected
    finally:
        await runner.cleanup()


async def test_the_sender_parks_a_callback_the_policy_refuses(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", "normal")
    await store.open()
    policy = CallbackPolicy()
    sender = CallbackSender(
        store,
        client_factory=lambda: CallbackClient(policy, timeout=5.0),
        allowed=policy.allows_url,
    )
    try:
        await store.enqueue_callbacks([("http://10.0.0.1/cb", "{}")], time.time())
        await sender.start()
        sender.notify()

        async def parked() -> bool:
            return sender.stats.parked == 1

        await eventually(parked, within=10)
        assert sender.stats.delivered == 0
    finally:
        await sender.stop()
        await store.close()


# -- loopback by default -------------------------------------------------------------------


def test_http_and_simulator_listen_on_loopback_by_default() -> None:
    http_host = {f.name: f.default for f in dataclasses.fields(HttpConfig)}["host"]
    assert http_host == "127.0.0.1"
    assert SmppConfig().host == "127.0.0.1"
    assert ControlConfig().host == "127.0.0.1"
    gateway_toml = tomllib.loads((ROOT / "conf/gateway.toml").read_text())
    assert gateway_toml["http"].get("host", "127.0.0.1") == "127.0.0.1"
    sim_toml = tomllib.loads((ROOT / "conf/simulator.toml").read_text())
    assert sim_toml["smpp"].get("host", "127.0.0.1") == "127.0.0.1"
    assert sim_toml["control"].get("host", "127.0.0.1") == "127.0.0.1"


# -- secrets stay out of logs, metrics and error bodies ----------------------------------


async def test_passwords_and_tokens_never_reach_logs_metrics_or_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    password = "Zq7Wx3Kp"  # the carrier password we send (the simulator expects another)
    token = "e2e-token"  # tests.e2e_helpers.TOKEN
    sim = Simulator(simulator_config())  # its account's password is "secret"
    await sim.start()
    assert sim.smpp_port is not None
    config: GatewayConfig = gateway_config(tmp_path, sim.smpp_port, password=password)
    gateway = Gateway(config)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    try:
        await gateway.start()

        async def refused() -> bool:
            return sum(sim.stats.bind_failures.values()) >= 2

        await eventually(refused, within=15)
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with aiohttp.ClientSession() as http:
            for method, path, headers, body in (
                ("GET", "/metrics", {}, None),
                ("GET", "/healthz", {}, None),
                ("GET", "/v1/messages/nope", {"Authorization": f"Bearer {token}x"}, None),
                ("POST", "/v1/messages", {"Authorization": f"Bearer {token}"}, {"to": token}),
                ("POST", "/v1/messages", {"Authorization": f"Basic {password}"}, GOOD),
            ):
                async with http.request(method, base + path, headers=headers, json=body) as r:
                    seen.append(await r.text())
        assert any("ESME_RINVPASWD" in s or "bind" in s for s in seen)  # healthz says why
    finally:
        await gateway.stop()
        await sim.stop()
    seen.append(caplog.text)
    seen.append(repr(config))
    for text in seen:
        assert password not in text
        assert token not in text.replace(f'"{token}"', "")  # only the echo of "to" is allowed
    await asyncio.sleep(0)


def _raw_with_webhook(url: str, callbacks: dict[str, Any]) -> dict[str, Any]:
    return {
        "node": {"data_dir": "/tmp/unused"},
        "http": {"tokens": [{"name": "t", "sha256": hash_token("x")}]},
        "log": {},
        "store": {},
        "carriers": [
            {"name": "c", "host": "127.0.0.1", "port": 2775, "system_id": "s", "password": "p"}
        ],
        "callbacks": callbacks,
        "inbound": {
            "numbers": [
                {
                    "number": "36000",
                    "rules": [
                        {
                            "name": "hook",
                            "keyword": "HOOK",
                            "actions": [{"type": "webhook", "url": url}],
                        }
                    ],
                }
            ]
        },
    }


def test_webhook_actions_are_held_to_the_callback_allow_list_at_load() -> None:
    with pytest.raises(ConfigError) as err:
        load_dataclass(GatewayConfig, _raw_with_webhook("http://10.0.0.7/mo", {}))
    assert any(
        e.startswith("inbound.numbers[0].rules[0].actions[0].url") and "[callbacks]" in e
        for e in err.value.errors
    ), err.value.errors
    allowed = {"allowed_networks": ["10.0.0.0/24"]}
    config = load_dataclass(GatewayConfig, _raw_with_webhook("http://10.0.0.7/mo", allowed))
    assert config.callbacks.allowed_networks == ("10.0.0.0/24",)
