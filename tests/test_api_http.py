"""The HTTP surface around the handlers: tokens, body limits and formats, JSON errors for
every refusal, public paths, /healthz."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gateway.binds import BindSettings, CarrierBind, RefusingListener
from tests.api_fakes import OTHER_TOKEN, TOKEN, make_config, running_api

GOOD: dict[str, Any] = {"to": "+33612345678", "from": "ACME", "text": "Hello"}


def assert_error(body: Any, code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


# -- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "challenge"),
    [
        (None, 'Bearer realm="smsgw"'),
        ("Bearer wrong-token", 'Bearer realm="smsgw", error="invalid_token"'),
        (f"Basic {TOKEN}", 'Bearer realm="smsgw", error="invalid_request"'),
        ("Bearer", 'Bearer realm="smsgw", error="invalid_request"'),
        ("Bearer    ", 'Bearer realm="smsgw", error="invalid_request"'),
    ],
)
async def test_a_missing_or_wrong_token_is_a_json_401(header: str | None, challenge: str) -> None:
    async with running_api() as api:
        headers = {} if header is None else {"Authorization": header}
        for method, path in [("POST", "/v1/messages"), ("GET", "/v1/messages/x")]:
            got = await api.request(method, path, json=GOOD, token=None, headers=headers)
            assert got.status == 401
            assert got.headers["WWW-Authenticate"] == challenge
            assert_error(got.body, "unauthorized")
            assert TOKEN not in got.text
        assert api.store.accept_calls == []


async def test_the_scheme_is_case_insensitive_and_each_token_is_its_own_account() -> None:
    async with running_api() as api:
        one = await api.post(
            "/v1/messages", GOOD, token=None, headers={"Authorization": f"bearer {TOKEN}"}
        )
        two = await api.post("/v1/messages", GOOD, token=OTHER_TOKEN)
        assert (one.status, two.status) == (202, 202)
        assert api.store.messages[one.body["id"]].account == "acme"
        assert api.store.messages[two.body["id"]].account == "beta"


async def test_unknown_paths_need_a_token_too() -> None:
    async with running_api() as api:
        got = await api.get("/v1/secret", token=None)
        assert got.status == 401


async def test_healthz_and_openapi_are_public() -> None:
    async with running_api() as api:
        health = await api.get("/healthz", token=None)
        doc = await api.get("/v1/openapi.json", token=None)
        assert health.status == doc.status == 200
        assert doc.body["openapi"].startswith("3.1")


async def test_healthz_keeps_its_shape() -> None:
    settings = BindSettings(
        carrier="alpha", name="alpha-1", host="127.0.0.1", port=1, system_id="a", password="p"
    )
    bind = CarrierBind(settings, RefusingListener())
    async with running_api(binds=[bind]) as api:
        got = await api.get("/healthz", token=None)
        assert got.body["status"] == "degraded"
        assert got.body["binds"] == [
            {
                "carrier": "alpha",
                "bind": "alpha-1",
                "type": "trx",
                "state": bind.state.value,
                "connects": bind.connects,
                "last_error": bind.last_error,
            }
        ]
    async with running_api() as api:
        got = await api.get("/healthz", token=None)
        assert got.body == {"status": "degraded", "binds": []}


async def test_tokens_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_api() as api:
        await api.post("/v1/messages", GOOD)
        await api.post("/v1/messages", GOOD, token="not-the-token-xyz")
        api.store.accept_error = RuntimeError("boom")
        await api.post("/v1/messages", GOOD)
    assert TOKEN not in caplog.text
    assert "not-the-token-xyz" not in caplog.text


# -- bodies -------------------------------------------------------------------------------


async def test_a_body_over_max_body_bytes_is_a_json_413() -> None:
    async with running_api(config=make_config(max_body_bytes=2048)) as api:
        big = {**GOOD, "text": "x" * 4096}
        got = await api.post("/v1/messages", big)
        assert got.status == 413
        assert_error(got.body, "body_too_large")
        assert "2048" in got.body["error"]["message"]
        assert api.store.accept_calls == []


async def test_a_chunked_body_over_the_limit_is_a_json_413_too() -> None:
    async def chunks() -> Any:
        for _ in range(8):
            yield b" " * 1024

    async with running_api(config=make_config(max_body_bytes=2048)) as api:
        async with api.client.post(
            "/v1/messages",
            data=chunks(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        ) as response:
            assert response.status == 413
            assert_error(await response.json(), "body_too_large")


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_a_body_that_is_not_json_is_a_json_415(content_type: str | None) -> None:
    async with running_api() as api:
        got = await api.request(
            "POST", "/v1/messages", data=b'{"to": "+33612345678"}', content_type=content_type
        )
        assert got.status == 415
        assert_error(got.body, "unsupported_media_type")


async def test_json_with_a_utf8_charset_is_fine() -> None:
    async with running_api() as api:
        got = await api.request(
            "POST",
            "/v1/messages",
            data=b'{"to": "+33612345678", "from": "ACME", "text": "Hi"}',
            content_type="application/json; charset=UTF-8",
        )
        assert got.status == 202


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'{"to": "+33612345678",}', "line 1 column"),
        (b'{"text": "caf\xe9"}', "not valid UTF-8"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),  # a byte order mark
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (b'{"validity": NaN}', "NaN is not a JSON number"),
        (b'{"validity": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"text": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"to": ["\\udfff"]}', "lone UTF-16 surrogate"),
        (b'{"validity": 1' + b"0" * 5000 + b"}", "not valid JSON"),
    ],
)
async def test_unreadable_json_is_a_clear_400(raw: bytes, words: str) -> None:
    async with running_api() as api:
        for path in ("/v1/messages", "/v1/messages/batch"):
            got = await api.request("POST", path, data=raw)
            assert got.status == 400, got.text
            assert_error(got.body, "invalid_json")
            assert words in got.body["error"]["message"]


async def test_an_escaped_surrogate_pair_is_an_emoji_not_an_error() -> None:
    async with running_api() as api:
        raw = b'{"to": "+33612345678", "from": "ACME", "text": "\\ud83d\\ude00"}'
        got = await api.request("POST", "/v1/messages", data=raw)
        assert got.status == 202
        assert got.body["encoding"] == "ucs2"


async def test_values_nested_deep_inside_fields_are_field_errors() -> None:
    async with running_api() as api:
        deep: Any = "x"
        for _ in range(500):
            deep = [deep]
        got = await api.post("/v1/messages", {**GOOD, "text": deep, "client_ref": {"a": deep}})
        assert got.status == 400
        assert {d["path"] for d in got.body["error"]["details"]} == {"text", "client_ref"}


# -- routing errors -----------------------------------------------------------------------


async def test_an_unknown_path_is_a_json_404() -> None:
    async with running_api() as api:
        got = await api.get("/v2/nothing")
        assert got.status == 404
        assert_error(got.body, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/messages", "GET,POST"),  # GET lists them (15.3)
        ("PUT", "/v1/messages/batch", "GET,POST"),  # also /v1/messages/{id}
        ("DELETE", "/v1/messages/0123", "GET"),
        ("POST", "/healthz", "GET,HEAD"),
    ],
)
async def test_a_wrong_method_is_a_json_405_with_allow(method: str, path: str, allow: str) -> None:
    async with running_api() as api:
        got = await api.request(method, path)
        assert got.status == 405
        assert_error(got.body, "method_not_allowed")
        assert set(got.headers["Allow"].split(",")) == set(allow.split(","))


async def test_mangled_bodies_never_get_a_500() -> None:
    import json as jsonlib
    import random

    rng = random.Random(3)
    valid = jsonlib.dumps({**GOOD, "client_ref": "r", "validity": 600, "priority": 2}).encode()
    batch = jsonlib.dumps({"messages": [GOOD, GOOD]}).encode()
    async with running_api() as api:
        for n in range(300):
            raw = bytearray(valid if n % 2 else batch)
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(len(raw))
                choice = rng.random()
                if choice < 0.4:
                    raw[at] = rng.randrange(256)
                elif choice < 0.7:
                    del raw[at]
                else:
                    raw.insert(at, rng.choice(b'{}[]",:\\0123456789 -+eE.nulltrue\xff'))
            path = "/v1/messages" if n % 2 else "/v1/messages/batch"
            got = await api.request("POST", path, data=bytes(raw))
            assert got.status in (202, 400, 422), (bytes(raw), got.text)
            if got.status != 202:
                assert_error(got.body, got.body["error"]["code"])


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /v1/messages/abc HTTP/1.1\r\nAuthorization: Bearer tok\xff\xfe\r\n", 401),
        (b"GET /v1/messages/%ff%fe HTTP/1.1\r\nAuthorization: Bearer TOKEN\r\n", 404),
        (
            b"POST /v1/messages HTTP/1.1\r\nAuthorization: Bearer TOKEN\r\n"
            b"Idempotency-Key: k\xff\r\n",
            400,
        ),
        (
            b"POST /v1/messages HTTP/1.1\r\nAuthorization: Bearer TOKEN\r\n"
            b"Content-Type: a/j\xff\r\n",
            415,
        ),
    ],
)
async def test_bytes_that_are_not_utf8_in_headers_or_path_get_a_json_4xx(
    head: bytes, status: int
) -> None:
    import asyncio

    async with running_api() as api:
        port = api.client.server.port
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = head.replace(b"TOKEN", TOKEN.encode())
        if b"Content-Type" not in head:
            head += b"Content-Type: application/json\r\n"
        writer.write(head + b"Host: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        answer = await reader.read()
        writer.close()
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.split()[1] == str(status).encode()
        body = rest.partition(b"\r\n\r\n")[2]
        assert b'"error":{"code":' in body
