"""Issue 7, hostile HTTP input: absurd numbers get a 400 naming the field (oversized bodies,
deep nesting, invalid UTF-8 and mangled JSON are covered in tests/test_api_http.py)."""

from __future__ import annotations

import pytest

from tests.api_fakes import running_api

PREFIX = '{"to": "+33612345678", "from": "ACME", "text": "Hi", '
ABSURD = ["1e400", "-1e400", "1e308", "1" + "0" * 40, "-5", "0.5", "true", '"9"', "[]", "{}"]


@pytest.mark.parametrize("field", ["validity", "priority"])
async def test_absurd_numbers_are_field_errors(field: str) -> None:
    async with running_api() as api:
        for raw in ABSURD:
            body = PREFIX + f'"{field}": {raw}}}'
            got = await api.request("POST", "/v1/messages", data=body.encode())
            assert got.status == 400, (raw, got.text)
            assert [d["path"] for d in got.body["error"]["details"]] == [field], raw


async def test_absurd_schedule_times_are_field_errors() -> None:
    async with running_api() as api:
        for raw in ["1e400", "-1e400", "1e308", "1" + "0" * 40, "true", '"tomorrow"']:
            body = PREFIX + f'"scheduled_at": {raw}}}'
            got = await api.request("POST", "/v1/messages", data=body.encode())
            assert got.status == 400, (raw, got.text)
            assert [d["path"] for d in got.body["error"]["details"]] == ["scheduled_at"], raw


async def test_a_batch_too_big_for_the_body_limit_is_a_413() -> None:
    item = '{"to": "+33612345678", "from": "ACME", "text": "x"}'
    async with running_api() as api:
        got = await api.request(
            "POST",
            "/v1/messages/batch",
            data=('{"messages": [' + ",".join([item] * 5000) + "]}").encode(),
        )
        assert got.status == 413
        assert got.body["error"]["code"] == "body_too_large"
