"""The API over the real SQLite store: accept, replay, opt-out, batch, and the message view
from what was committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.store.sqlite import SqliteStore
from tests.api_fakes import NOW, make_config, running_api
from tests.store_helpers import status_counts


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "api.db", synchronous="normal")
    await sqlite.open()
    try:
        yield sqlite
    finally:
        await sqlite.close()


GOOD: dict[str, Any] = {"to": "+33612345678", "from": "ACME", "text": "Hello"}


async def test_a_message_accepted_over_http_is_in_the_database(store: SqliteStore) -> None:
    body = {**GOOD, "client_ref": "r-1", "campaign_id": "c-1", "text": "Привет " * 20}
    async with running_api(store=store) as api:
        posted = await api.post("/v1/messages", body)
        assert posted.status == 202
        assert (posted.body["encoding"], posted.body["parts"]) == ("ucs2", 3)
        got = await api.get(f"/v1/messages/{posted.body['id']}")
        assert got.status == 200
        view = got.body
        assert view["status"] == "accepted"
        assert (view["to"], view["from"], view["carrier"]) == ("+33612345678", "ACME", "alpha")
        assert (view["client_ref"], view["campaign_id"]) == ("r-1", "c-1")
        assert [p["part"] for p in view["parts"]] == [1, 2, 3]
        assert view["history"][0]["status"] == "accepted"
        assert view["created_at"] == "2030-03-17T17:46:40.000Z"
        assert api.outbound.enqueued[0].id == posted.body["id"]
    assert await status_counts(store) == {"accepted": 1}


async def test_idempotent_replay_and_mismatch_on_sqlite(store: SqliteStore) -> None:
    async with running_api(store=store) as api:
        key = {"Idempotency-Key": "sqlite-1"}
        first = await api.post("/v1/messages", GOOD, headers=key)
        again = await api.post("/v1/messages", GOOD, headers=key)
        other = await api.post("/v1/messages", {**GOOD, "text": "x"}, headers=key)
        assert (first.status, again.status, other.status) == (202, 202, 422)
        assert again.text == first.text
        assert again.headers["Idempotent-Replayed"] == "true"
    assert await status_counts(store) == {"accepted": 1}


async def test_a_concurrent_twin_replays_the_winner_on_sqlite(store: SqliteStore) -> None:
    import asyncio

    async with running_api(store=store) as api:
        key = {"Idempotency-Key": "twins"}
        answers = await asyncio.gather(
            *(api.post("/v1/messages", GOOD, headers=key) for _ in range(5))
        )
        assert {a.status for a in answers} == {202}
        assert len({a.body["id"] for a in answers}) == 1
    assert await status_counts(store) == {"accepted": 1}


async def test_opt_out_and_batch_on_sqlite(store: SqliteStore) -> None:
    await store.add_opt_out("+33612345601", "ACME", "test", NOW)
    items = [{**GOOD, "to": f"+336123456{n:02d}"} for n in range(4)]
    async with running_api(store=store, config=make_config()) as api:
        refused = await api.post("/v1/messages/batch", {"messages": items})
        assert refused.status == 422
        assert [d["index"] for d in refused.body["error"]["details"]] == [1]
        del items[1]
        accepted = await api.post("/v1/messages/batch", {"messages": items})
        assert accepted.status == 202
        ids = [a["id"] for a in accepted.body["messages"]]
        for message_id, item in zip(ids, items, strict=True):
            view = await api.get(f"/v1/messages/{message_id}")
            assert view.body["to"] == item["to"]
    assert await status_counts(store) == {"accepted": 3}
