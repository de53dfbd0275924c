"""Failed callback attempts are logged (host and status, never the body, rate-limited), and
parked callbacks can be listed and re-armed over the API (issue 18.16)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.engine.callbacks import PARKED_AT, CallbackSender
from gateway.store.sqlite import SqliteStore
from tests.api_fakes import NOW, running_api
from tests.e2e_helpers import eventually
from tests.fakes import LOOPBACK_RECEIVERS, FakeStore
from tests.test_engine_callbacks import PAYLOAD, Client, client  # noqa: F401  (fixture)

SECRET = "client-ref-that-must-not-be-logged"


async def test_failed_attempts_are_logged_per_host_without_the_body(
    client: Client,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    client.statuses = [500] * 6
    store = FakeStore()
    body = json.dumps({**PAYLOAD, "client_ref": SECRET})
    await store.enqueue_callbacks([(client.url, body)] * 3, time.time())
    sender = CallbackSender(
        store, base_delay=0.01, idle_poll=0.02, max_attempts=50, policy=LOOPBACK_RECEIVERS
    )
    with caplog.at_level(logging.WARNING, logger="smsgw.callbacks"):
        await sender.start()
        try:
            await store.wait_until(lambda: all(cb.done for cb in store.callbacks.values()))
        finally:
            await sender.stop()
    assert sender.stats.failed_attempts == 6
    failed = [r for r in caplog.records if r.getMessage() == "callbacks.failed"]
    assert len(failed) == 1, "six failures to one host within a minute: one line"
    fields = failed[0].__dict__["smsgw_fields"]
    host = client.url.split("/")[2]
    assert fields["host"] == host and fields["status"] == "HTTP 500"
    assert fields["message"] == "m1"
    assert SECRET not in caplog.text and "/cb" not in fields["host"]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "cb.db", synchronous="normal")
    await s.open()
    yield s
    await s.close()


async def _outbox(store: SqliteStore, url: str) -> tuple[int, int, int]:
    """Two parked callbacks and one pending; their ids."""
    await store.enqueue_callbacks(
        [(url, json.dumps({**PAYLOAD, "id": f"m{n}"})) for n in range(3)], NOW
    )
    a, b, c = [cb.id for cb in await store.callbacks_due(NOW, 10)]
    await store.callback_retry(a, PARKED_AT, "gave up after 12 attempts: HTTP 503")
    await store.callback_retry(b, PARKED_AT, "callback url not allowed")
    await store.callback_retry(c, NOW + 60, "HTTP 500")
    return a, b, c


async def test_parked_callbacks_are_listed_and_retried_over_the_api(
    store: SqliteStore,
    client: Client,  # noqa: F811
) -> None:
    a, b, c = await _outbox(store, client.url)
    async with running_api(store=store) as api:
        parked = await api.get("/v1/callbacks?state=parked")
        assert parked.status == 200
        assert [i["id"] for i in parked.body["items"]] == [a, b]
        first = parked.body["items"][0]
        assert first["state"] == "parked" and first["next_at"] is None
        assert first["attempts"] == 1 and first["last_error"].endswith("HTTP 503")
        assert first["payload"]["id"] == "m0" and first["url"] == client.url
        pending = await api.get("/v1/callbacks?state=pending")
        assert [i["id"] for i in pending.body["items"]] == [c]
        page = await api.get("/v1/callbacks?limit=2")
        assert [i["id"] for i in page.body["items"]] == [a, b]
        rest = await api.get(f"/v1/callbacks?after={page.body['next']}")
        assert [i["id"] for i in rest.body["items"]] == [c] and rest.body["next"] is None

        one = await api.post(f"/v1/callbacks/{a}/retry")
        assert (one.status, one.body) == (200, {"retried": [a]})
        assert (await api.post("/v1/callbacks/999999/retry")).status == 404
        assert (await api.post("/v1/callbacks/nope/retry")).status == 404
        assert (await api.get("/v1/callbacks?state=lost")).status == 400
        assert (await api.get("/v1/callbacks?colour=red")).status == 400
        rearmed = await api.get("/v1/callbacks?state=pending")
        item = next(i for i in rearmed.body["items"] if i["id"] == a)
        assert item["attempts"] == 0 and item["next_at"] == "2030-03-17T17:46:40.000Z"

        rest_parked = await api.post("/v1/callbacks/retry")
        assert rest_parked.body == {"retried": [b]}
        assert (await api.get("/v1/callbacks?state=parked")).body["items"] == []

    # The sender takes the re-armed ones (and the pending one, once due) to the receiver.
    sender = CallbackSender(
        store, idle_poll=0.02, clock=lambda: NOW + 61, policy=LOOPBACK_RECEIVERS
    )
    await sender.start()
    try:

        async def all_three() -> bool:
            return len(client.hits) == 3

        await eventually(all_three, within=10)
    finally:
        await sender.stop()
    assert sorted(h[1]["id"] for h in client.hits) == ["m0", "m1", "m2"]
