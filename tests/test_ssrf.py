"""Issue 17.1: the callback allow-list holds whatever the host's spelling (the full-width
and enclosed characters below are the point: RUF001 is off).

yarl (and so aiohttp) normalises a URL's host (IDNA with NFKC: ``127。0。0。1`` and
``①②⑦.0.0.1`` become ``127.0.0.1``) and connects to an IP literal without asking the
resolver; an IPv6 address can carry an IPv4 one (NAT64, 6to4, mapped). Intake reads the host
as the client will, and the callback client checks every socket's target and connected peer,
so no spelling reaches a forbidden address. Loopback receivers are reachable only through an
explicit ``allowed_networks`` entry."""

# ruff: noqa: RUF001
from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.callback_policy import CallbackPolicy
from gateway.config import CallbacksConfig, GatewayConfig
from gateway.config.loader import ConfigError, load_dataclass
from gateway.engine.callback_client import CallbackClient, ConnectFailed, system_resolver
from gateway.engine.callbacks import PARKED_AT, CallbackSender
from gateway.store.sqlite import SqliteStore
from tests.api_fakes import make_config, running_api
from tests.fakes import LOOPBACK_RECEIVERS, FakeStore
from tests.test_security import _raw_with_webhook

GOOD: dict[str, Any] = {"to": "+33612345678", "from": "ACME", "text": "Hello"}

# Spellings of a loopback host that the HTTP client connects to as 127.0.0.1 (or ::1).
CONNECTING_SPELLINGS = [
    "127。0。0。1",  # ideographic full stops
    "①②⑦.0.0.1",  # enclosed digits
    "127．0．0．1",  # full-width full stops
    "１２７.0.0.1",  # full-width digits
    "127.0.0.1",
]

FORBIDDEN_URLS = [
    *(f"http://{host}:8080/cb" for host in CONNECTING_SPELLINGS),
    "http://[64:ff9b::7f00:1]:8080/cb",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a00:1]/cb",  # NAT64 of 10.0.0.1
    "http://[64:ff9b:1::7f00:1]/cb",  # local-use NAT64
    "http://[2002:7f00:1::]:8080/cb",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/cb",  # 6to4 of 169.254.169.254
    "http://[::ffff:127.0.0.1]/cb",  # IPv4-mapped
    "http://[::ffff:7f00:1]/cb",
    "http://[::ffff:0:7f00:1]/cb",  # IPv4-translated
    "http://[::127.0.0.1]/cb",  # IPv4-compatible
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/cb",  # Teredo
    "http://[fe80::1%25eth0]/cb",
    "http://2130706433/cb",  # decimal
    "http://0x7f000001/cb",  # hex
    "http://0x7f.1/cb",
    "http://0177.0.0.1/cb",  # octal
    "http://017700000001/cb",
    "http://127.1/cb",
    "http://127.0.1/cb",
    "http://127.0.0.1./cb",  # trailing dots
    "http://127.0.0.1../cb",
    "http://localhost./cb",
    "http://LOCALHOST/cb",
    "http://ⓛocalhost/cb",  # enclosed letter
    "http://ｌｏｃａｌｈｏｓｔ/cb",
    "http://224.0.0.1/cb",  # multicast
    "http://[ff0e::1]/cb",
    "http://255.255.255.255/cb",
    "http://[::]/cb",
]


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_intake_refuses_every_spelling_of_a_non_public_host(url: str) -> None:
    assert CallbackPolicy().url_refusal(url) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::5db8:d822]/cb",  # NAT64 of a public address: an IPv6-only host's way
        "http://[2002:5db8:d822::1]/cb",  # 6to4 of a public address
        "https://hooks.example.com./cb",  # a trailing dot on a name
        "https://bücher.example/cb",  # an IDN
    ],
)
def test_public_targets_in_unusual_spellings_still_pass(url: str) -> None:
    assert CallbackPolicy().url_refusal(url) is None


def test_allowed_networks_take_the_normalised_host() -> None:
    """The explicit allowance (what the tests' loopback receivers use) applies to the host
    as the client reads it, and allowed_hosts to the IDNA form of a name."""
    assert LOOPBACK_RECEIVERS.allows_url("http://127。0。0。1:8080/cb")
    assert LOOPBACK_RECEIVERS.allows_url("http://[::ffff:127.0.0.1]/cb")
    assert not LOOPBACK_RECEIVERS.allows_url("http://0x7f.1/cb")  # never non-canonical
    policy = CallbackPolicy(["Bücher.example", "*.ACME.test"])
    assert policy.allows_url("https://xn--bcher-kva.example/cb")
    assert policy.allows_url("https://bücher.example/cb")
    assert policy.allows_url("https://hooks.acme.test/cb")
    assert not policy.allows_url("https://acme.test.evil.example/cb")


@pytest.mark.parametrize("host", ["127。0。0。1", "①②⑦.0.0.1", "[64:ff9b::7f00:1]", "0x7f.1"])
async def test_the_api_answers_400_to_a_unicode_or_embedded_loopback(host: str) -> None:
    async with running_api(config=make_config()) as api:
        got = await api.post("/v1/messages", {**GOOD, "callback_url": f"http://{host}:1/cb"})
        assert got.status == 400, got.body
        assert [d["path"] for d in got.body["error"]["details"]] == ["callback_url"]


def test_a_webhook_in_a_unicode_spelling_of_loopback_stops_the_load() -> None:
    with pytest.raises(ConfigError) as err:
        load_dataclass(GatewayConfig, _raw_with_webhook("http://①②⑦.0.0.1:9/mo", {}))
    assert any("actions[0].url" in e for e in err.value.errors), err.value.errors


async def test_the_inbound_api_refuses_a_webhook_to_nat64_loopback(tmp_path: Path) -> None:
    config = dataclasses.replace(make_config(), callbacks=CallbacksConfig())
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    async with running_api(config=config, store=store) as api:
        body = {
            "keywords": [
                {
                    "name": "hook",
                    "keyword": "HOOK",
                    "actions": [{"type": "webhook", "url": "http://[64:ff9b::7f00:1]:9/mo"}],
                }
            ]
        }
        got = await api.request("PUT", "/v1/numbers/36111", json=body)
        assert got.status == 400, got.body
        assert "keywords[0].actions[0].url" in str(got.body)
    await store.close()


# -- at send time: the socket, whatever the spelling --------------------------------------


@dataclass
class Listener:
    """A raw TCP receiver on 127.0.0.1: counts connections and the bytes they sent."""

    port: int = 0
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            data = await reader.read(65536)
            self.received += data
            if data:
                writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    got = Listener()
    server = await asyncio.start_server(got.handle, "127.0.0.1", 0)
    got.port = server.sockets[0].getsockname()[1]
    async with server:
        yield got


@pytest.mark.parametrize("host", CONNECTING_SPELLINGS)
async def test_the_callback_client_never_connects_to_loopback(
    listener: Listener, host: str
) -> None:
    """Intake bypassed (a URL stored before the rules changed, or any future path): the
    client itself refuses; no connection is opened."""
    client = CallbackClient(CallbackPolicy(), timeout=5.0)
    with pytest.raises(ConnectFailed, match="refused by the policy"):
        await client.post(f"http://{host}:{listener.port}/cb", b"{}", [])
    await client.close()
    assert (listener.connections, bytes(listener.received)) == (0, b"")
    # The explicit allowance reaches the same receiver through the same client code.
    client = CallbackClient(LOOPBACK_RECEIVERS, timeout=5.0)
    assert await client.post(f"http://{host}:{listener.port}/cb", b"{}", []) == 204
    await client.close()
    assert listener.connections == 1 and b"POST /cb" in listener.received


class UncheckedSockets(CallbackClient):
    """The client with its pre-connect check taken out: the connected peer's check alone
    must still stop the request before a byte of it is written."""

    def _may_connect(self, address: str) -> bool:
        return True


async def test_the_connected_peer_is_checked_before_a_byte_is_sent(listener: Listener) -> None:
    client = UncheckedSockets(CallbackPolicy(), timeout=5.0)
    with pytest.raises(ConnectFailed, match="refused by the policy"):
        await client.post(f"http://127。0。0。1:{listener.port}/cb", b"{}", [])
    await client.close()
    for _ in range(100):  # the receiver sees the connection open and close, empty
        if listener.connections:
            break
        await asyncio.sleep(0.01)
    assert listener.connections == 1
    assert bytes(listener.received) == b""


def answers_with(address: str, seen: list[str]) -> Any:
    """DNS that answers every name with ``address`` (and notes the names asked)."""

    async def resolve(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        seen.append(host)
        if ":" in address:
            return [(socket.AF_INET6, (address, port, 0, 0))]
        return [(socket.AF_INET, (address, port))]

    return resolve


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"],
)
async def test_a_name_answering_loopback_is_dropped_at_resolution(
    listener: Listener, address: str
) -> None:
    seen: list[str] = []
    client = CallbackClient(CallbackPolicy(), timeout=5.0, resolver=answers_with(address, seen))
    with pytest.raises(ConnectFailed, match="no address the policy allows"):
        await client.post(f"http://hooks.example:{listener.port}/cb", b"{}", [])
    await client.close()
    assert seen == ["hooks.example"] and listener.connections == 0


async def test_the_system_resolver_answering_loopback_is_dropped(listener: Listener) -> None:
    """A real lookup: the machine's resolver answers "localhost" with loopback."""
    assert await system_resolver("localhost", 80)  # it does resolve
    client = CallbackClient(CallbackPolicy(), timeout=5.0)
    with pytest.raises(ConnectFailed, match="no address the policy allows"):
        await client.post(f"http://localhost:{listener.port}/cb", b"{}", [])
    await client.close()
    assert listener.connections == 0


async def test_the_sender_without_a_policy_argument_is_strict(listener: Listener) -> None:
    """No hole by omission: a CallbackSender built without ``policy`` refuses loopback (the
    tests' receivers are reached through LOOPBACK_RECEIVERS, an explicit allowance)."""
    store = FakeStore()
    url = f"http://127。0。0。1:{listener.port}/cb"
    await store.enqueue_callbacks([(url, "{}")], time.time())
    sender = CallbackSender(store, base_delay=0.05, idle_poll=0.02)
    await sender.start()
    try:
        await store.wait_until(lambda: store.callbacks[1].next_at == PARKED_AT)
    finally:
        await sender.stop()
    assert listener.connections == 0
    assert store.callbacks[1].last_error == "callback url not allowed"


async def test_a_parked_unicode_callback_never_reaches_the_receiver_even_if_allowed_says_yes(
    listener: Listener, tmp_path: Path
) -> None:
    """The URL check (``allowed``) told to pass everything: the connector still refuses, and
    the callback fails as an unreachable receiver would (retried, then parked)."""
    store = FakeStore()
    url = f"http://①②⑦.0.0.1:{listener.port}/cb"
    await store.enqueue_callbacks([(url, "{}")], time.time())
    sender = CallbackSender(
        store, allowed=lambda _: True, base_delay=0.01, idle_poll=0.02, max_attempts=2
    )
    await sender.start()
    try:
        await store.wait_until(lambda: store.callbacks[1].next_at == PARKED_AT)
    finally:
        await sender.stop()
    assert listener.connections == 0 and bytes(listener.received) == b""
    assert "refused by the policy" in (store.callbacks[1].last_error or "")
