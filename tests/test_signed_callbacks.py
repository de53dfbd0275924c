"""Issue 15.7: signed status callbacks and webhook actions (``X-Smsgw-Signature``).

The receiver's side is the README's own snippet, read out of README.md and run here, so the
documented code is the code proven against real callbacks (through the simulator) and real
webhook actions (an MO through the simulator)."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.app.daemon import Gateway
from gateway.app.lifecycle import apply_config, restart_needed
from gateway.config import CallbacksConfig, GatewayConfig, InboundConfig, hash_token
from gateway.config.loader import ConfigError, load_dataclass
from gateway.signing import SIGNATURE_HEADER, WEBHOOK_SIGNER, Signer, Signers
from tests.e2e_helpers import Lab, eventually, gateway_config, simulator_config

README = Path(__file__).resolve().parent.parent / "README.md"

ACCOUNT_SECRET = "acct-secret-0123456789"
NEW_SECRET = "acct-secret-2026-new-abcdef"
HOOK_SECRET = "hook-secret-9876543210"
SHORT_CODE = "36180"

Verify = Callable[..., bool]


def readme_verifier() -> Verify:
    """``verify_smsgw_signature`` as README.md prints it."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    code = [b for b in blocks if "def verify_smsgw_signature" in b]
    assert len(code) == 1, "README.md must hold the verification snippet once"
    scope: dict[str, Any] = {}
    exec(compile(code[0], "README.md", "exec"), scope)
    verify: Verify = scope["verify_smsgw_signature"]
    return verify


verify = readme_verifier()


# -- the signature itself ------------------------------------------------------------------


def test_header_is_t_and_one_v1_per_secret_over_t_dot_body() -> None:
    body = b'{"id":"0190","status":"delivered"}'
    header = Signer([NEW_SECRET, ACCOUNT_SECRET]).header(body, 1796000000)
    t, v1_new, v1_old = header.split(",")
    assert t == "t=1796000000"
    assert v1_new.startswith("v1=") and v1_old.startswith("v1=")
    import hashlib
    import hmac

    signed = b"1796000000." + body
    assert v1_new[3:] == hmac.new(NEW_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert v1_old[3:] == hmac.new(ACCOUNT_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    # The snippet: the right body within the tolerance passes; anything else fails.
    assert verify(header, body, [ACCOUNT_SECRET], now=1796000010)
    assert verify(header, body, [NEW_SECRET], now=1796000010)
    assert not verify(header, body + b" ", [ACCOUNT_SECRET], now=1796000010)
    assert not verify(header, body.replace(b"delivered", b"failed"), [NEW_SECRET], now=1796000010)
    assert not verify(header, body, [HOOK_SECRET], now=1796000010)
    assert not verify(header, body, [ACCOUNT_SECRET], now=1796000000 + 301)  # a replay
    assert not verify("t=1796000000", body, [ACCOUNT_SECRET], now=1796000000)
    assert not verify("garbage", body, [ACCOUNT_SECRET], now=1796000000)
    # A tampered time fails too: t is signed.
    forged = header.replace("t=1796000000", "t=1796000100")
    assert not verify(forged, body, [ACCOUNT_SECRET], now=1796000100)


@pytest.mark.parametrize("length", [16, 63, 64, 65, 256])
def test_signature_is_hmac_sha256_whatever_the_secret_length(length: int) -> None:
    import hashlib
    import hmac

    secret = ("s3cr" * 64)[:length]
    for body in (b"", b"{}", bytes(range(256)) * 3):
        t, v1 = Signer([secret]).header(body, 42).split(",")
        expected = hmac.new(secret.encode(), b"42." + body, hashlib.sha256).hexdigest()
        assert (t, v1) == ("t=42", f"v1={expected}")


def test_signers_by_owner_and_no_secret_no_signer() -> None:
    signers = Signers({"shop": [ACCOUNT_SECRET], WEBHOOK_SIGNER: [HOOK_SECRET], "bare": []})
    assert signers.get("shop") is not None and signers.get(WEBHOOK_SIGNER) is not None
    assert signers.get("bare") is None and signers.get("other") is None
    assert signers.get(None) is None  # queued before signatures: unsigned
    assert ACCOUNT_SECRET not in repr(signers.get("shop"))


# -- configuration -------------------------------------------------------------------------


def config_with(tmp_path: Path, tokens: list[dict[str, Any]], **inbound: Any) -> GatewayConfig:
    raw = {
        "node": {"data_dir": str(tmp_path)},
        "http": {"tokens": tokens},
        "log": {},
        "store": {},
        "carriers": [
            {"name": "c", "host": "127.0.0.1", "port": 1, "system_id": "s", "password": "p"}
        ],
        "inbound": inbound,
    }
    return load_dataclass(GatewayConfig, raw)


def token(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "sha256": hash_token(f"token-of-{name}"), **extra}


def test_config_secrets_per_account_and_for_webhooks(tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        [
            token("web", account="shop", signing_secrets=[NEW_SECRET, ACCOUNT_SECRET]),
            token("backend", account="shop"),  # shares its account's secrets
            token("crm", signing_secrets=[HOOK_SECRET]),
            token("plain"),
        ],
        webhook_signing_secrets=[HOOK_SECRET],
    )
    assert config.signing_secrets() == {
        "shop": (NEW_SECRET, ACCOUNT_SECRET),
        "crm": (HOOK_SECRET,),
        WEBHOOK_SIGNER: (HOOK_SECRET,),
    }
    shown = repr(config)
    assert NEW_SECRET not in shown and HOOK_SECRET not in shown and ACCOUNT_SECRET not in shown


@pytest.mark.parametrize(
    ("tokens", "inbound", "expected"),
    [
        ([token("a", signing_secrets=["short"])], {}, "tokens[0].signing_secrets: secret [0]"),
        (
            [token("a", signing_secrets=[NEW_SECRET, ACCOUNT_SECRET, HOOK_SECRET])],
            {},
            "at most 2 secrets",
        ),
        ([token("a", signing_secrets=[NEW_SECRET, NEW_SECRET])], {}, "listed twice"),
        (
            [
                token("a", account="shop", signing_secrets=[NEW_SECRET]),
                token("b", account="shop", signing_secrets=[ACCOUNT_SECRET]),
            ],
            {},
            "tokens[1].signing_secrets: differ from tokens[0].signing_secrets",
        ),
        (
            [token("a")],
            {"webhook_signing_secrets": [f" {HOOK_SECRET}"]},
            "inbound.webhook_signing_secrets: secret [0] has white space",
        ),
    ],
)
def test_config_refuses_bad_secrets_without_quoting_them(
    tmp_path: Path, tokens: list[dict[str, Any]], inbound: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, tokens, **inbound)
    text = str(caught.value)
    assert expected in text
    for secret in (NEW_SECRET, ACCOUNT_SECRET, HOOK_SECRET, "short"):
        assert secret not in text


def test_a_rotation_is_no_restart(tmp_path: Path) -> None:
    old = config_with(tmp_path, [token("a", signing_secrets=[ACCOUNT_SECRET])])
    new = config_with(tmp_path, [token("a", signing_secrets=[NEW_SECRET, ACCOUNT_SECRET])])
    assert restart_needed(old, new) == []
    moved = config_with(tmp_path, [token("b", signing_secrets=[ACCOUNT_SECRET])])
    assert restart_needed(old, moved) == ["http"]  # a token itself still needs one


# -- end to end: the simulator, a whole gateway, a loopback receiver ------------------------


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A loopback HTTP receiver keeping each request's raw body and headers."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        async def take(request: web.Request) -> web.Response:
            body = await request.read()
            self.received.append(Received(request.path, dict(request.headers), body))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/{name}", take)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def at(self, name: str) -> list[Received]:
        return [r for r in self.received if r.path == f"/{name}"]


class SignedLab(Lab):
    def __init__(self, tmp_path: Path, receiver: Receiver) -> None:
        super().__init__(tmp_path, simulator_config())
        self.receiver = receiver

    def config(self, secrets: tuple[str, ...]) -> GatewayConfig:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port)
        tokens = tuple(dataclasses.replace(t, signing_secrets=secrets) for t in config.http.tokens)
        inbound = load_dataclass(
            InboundConfig,
            {
                "webhook_signing_secrets": [HOOK_SECRET],
                "numbers": [
                    {
                        "number": SHORT_CODE,
                        "rules": [
                            {
                                "name": "agent",
                                "keyword": "AGENT",
                                "actions": [{"type": "webhook", "url": self.receiver.url("hook")}],
                            }
                        ],
                    }
                ],
            },
        )
        config = dataclasses.replace(
            config,
            http=dataclasses.replace(config.http, tokens=tokens),
            inbound=inbound,
            callbacks=CallbacksConfig(allowed_networks=("127.0.0.0/8",)),
        )
        assert config.validate() == []
        return config

    async def start_gateway(self) -> None:
        self.gateway = Gateway(self.config((ACCOUNT_SECRET,)))
        await self.gateway.start()
        await eventually(self._bound)

    @property
    def gw(self) -> Gateway:
        assert self.gateway is not None
        return self.gateway

    async def send_with_callback(self, text: str) -> str:
        sent = await self.post(
            "/v1/messages",
            {
                "to": "+33612345678",
                "from": "ACME",
                "text": text,
                "callback_url": self.receiver.url("cb"),
            },
        )
        message_id: str = sent["id"]
        return message_id

    async def callback_for(self, message_id: str) -> Received:
        found: list[Received] = []

        async def arrived() -> bool:
            found[:] = [r for r in self.receiver.at("cb") if message_id.encode() in r.body]
            return bool(found)

        await eventually(arrived)
        return found[0]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def lab(tmp_path: Path, receiver: Receiver) -> AsyncIterator[SignedLab]:
    lab = SignedLab(tmp_path, receiver)
    await lab.start()
    yield lab
    await lab.stop()


async def test_status_callback_and_webhook_are_signed_by_their_owners(
    lab: SignedLab, receiver: Receiver
) -> None:
    before = time.time()
    message_id = await lab.send_with_callback("Your parcel is on its way")
    callback = await lab.callback_for(message_id)
    header = callback.headers[SIGNATURE_HEADER]
    assert verify(header, callback.body, [ACCOUNT_SECRET])
    assert not verify(header, callback.body, [HOOK_SECRET])  # the account's, not the gateway's
    assert not verify(header, callback.body + b"\n", [ACCOUNT_SECRET])  # tampered body
    tampered = callback.body.replace(b'"delivered"', b'"rejected"')
    assert tampered != callback.body and not verify(header, tampered, [ACCOUNT_SECRET])
    stamp = int(header.split(",")[0].removeprefix("t="))
    assert before - 1 <= stamp <= time.time() + 1

    # A webhook action on an MO, signed with [inbound] webhook_signing_secrets.
    await lab.sim(
        "POST", "/v1/mo", {"from": "+33698765432", "to": SHORT_CODE, "text": "AGENT help"}
    )

    async def hooked() -> bool:
        return bool(receiver.at("hook"))

    await eventually(hooked)
    hook = receiver.at("hook")[0]
    assert b"AGENT help" in hook.body
    assert verify(hook.headers[SIGNATURE_HEADER], hook.body, [HOOK_SECRET])
    assert not verify(hook.headers[SIGNATURE_HEADER], hook.body, [ACCOUNT_SECRET])
    assert not verify(hook.headers[SIGNATURE_HEADER], hook.body[:-1] + b" }", [HOOK_SECRET])


async def test_rotation_signs_with_both_secrets_after_a_reload(
    lab: SignedLab, receiver: Receiver
) -> None:
    first = await lab.callback_for(await lab.send_with_callback("before the rotation"))
    assert first.headers[SIGNATURE_HEADER].count("v1=") == 1
    assert not verify(first.headers[SIGNATURE_HEADER], first.body, [NEW_SECRET])

    # Step 1: the new secret first, the old one kept; applied by a reload, no restart.
    await apply_config(lab.gw, lab.config((NEW_SECRET, ACCOUNT_SECRET)))
    during = await lab.callback_for(await lab.send_with_callback("during the rotation"))
    header = during.headers[SIGNATURE_HEADER]
    assert header.count("v1=") == 2
    assert verify(header, during.body, [ACCOUNT_SECRET])  # a receiver not yet updated
    assert verify(header, during.body, [NEW_SECRET])  # a receiver already updated
    assert verify(header, during.body, [NEW_SECRET, ACCOUNT_SECRET])

    # Step 3: the old one dropped.
    await apply_config(lab.gw, lab.config((NEW_SECRET,)))
    after = await lab.callback_for(await lab.send_with_callback("after the rotation"))
    assert verify(after.headers[SIGNATURE_HEADER], after.body, [NEW_SECRET])
    assert not verify(after.headers[SIGNATURE_HEADER], after.body, [ACCOUNT_SECRET])

    # Without secrets, no header at all.
    await apply_config(lab.gw, lab.config(()))
    bare = await lab.callback_for(await lab.send_with_callback("unsigned"))
    assert SIGNATURE_HEADER not in bare.headers


async def test_a_database_from_before_signatures_sends_its_callbacks_unsigned(
    tmp_path: Path,
) -> None:
    import sqlite3

    from gateway.store.sqlite import SqliteStore

    path = tmp_path / "smsgw.db"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:  # the callbacks table as the previous version made it
        db.execute("ALTER TABLE callbacks DROP COLUMN signer")
        db.execute(
            "INSERT INTO callbacks(id, url, payload, next_at, created_at)"
            " VALUES (1, 'https://example.net/cb', '{}', 0, 0)"
        )
    db.close()
    store = SqliteStore(path)
    await store.open()
    try:
        await store.enqueue_callbacks([("https://example.net/h", "{}")], 1.0, WEBHOOK_SIGNER)
        due = await store.callbacks_due(10.0, 10)
        assert [(c.id, c.signer) for c in due] == [(1, None), (2, WEBHOOK_SIGNER)]
    finally:
        await store.close()
