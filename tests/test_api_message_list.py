"""GET /v1/messages: filters, keyset pages in both orders, bad parameters, and the indexes
the searches read. Runs over the SQLite store and the test fake (which mirrors its rules)."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app.cli import main
from gateway.core.model import MessageStatus, SubmitOutcome
from gateway.store.sqlite import SqliteStore
from tests.api_fakes import NOW, TOKEN, Api, running_api
from tests.fakes import FakeStore

A = "+33612345678"
B = "+33698765432"


@pytest.fixture(params=["sqlite", "fake"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "fake":
        yield FakeStore()
        return
    sqlite = SqliteStore(tmp_path / "list.db", synchronous="normal")
    await sqlite.open()
    try:
        yield sqlite
    finally:
        await sqlite.close()


async def _send(api: Api, at: float, **fields: Any) -> str:
    api.clock[0] = at
    body = {"to": A, "from": "ACME", "text": "hi", **fields}
    sent = await api.post("/v1/messages", body)
    assert sent.status == 202, sent.text
    return str(sent.body["id"])


async def _all(api: Api, query: str) -> list[dict[str, Any]]:
    """Every page of a listing, following ``next``."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        path = f"/v1/messages?{query}" + (f"&after={cursor}" if cursor else "")
        page = await api.get(path)
        assert page.status == 200, page.text
        items.extend(page.body["items"])
        cursor = page.body["next"]
        if cursor is None:
            return items
    raise AssertionError("paging never ended")


async def test_pages_filters_and_orders(store: Any) -> None:
    async with running_api(store=store) as api:
        ids = [
            await _send(api, NOW + 0, client_ref="r-1", campaign_id="spring"),
            await _send(api, NOW + 10, to=B, campaign_id="spring"),
            await _send(api, NOW + 20, client_ref="r-2"),
            await _send(api, NOW + 30, to=B, client_ref="r-1"),
            await _send(api, NOW + 40),
        ]
        newest = await _all(api, "limit=2")
        assert [m["id"] for m in newest] == ids[::-1]
        oldest = await _all(api, "limit=2&order=asc")
        assert [m["id"] for m in oldest] == ids
        first = newest[-1]
        assert first["client_ref"] == "r-1" and first["campaign_id"] == "spring"
        assert (first["status"], first["parts"], first["from"]) == ("accepted", 1, "ACME")
        assert first["created_at"] == "2030-03-17T17:46:40.000Z"
        assert "history" not in first

        async def ids_of(query: str) -> list[str]:
            return [m["id"] for m in await _all(api, query + "&limit=1&order=asc")]

        assert await ids_of(f"to=%2B{B[1:]}") == [ids[1], ids[3]]
        assert await ids_of(f"to=+{B[1:]}") == [ids[1], ids[3]]  # '+' unencoded: a space
        assert await ids_of("client_ref=r-1") == [ids[0], ids[3]]
        assert await ids_of("campaign_id=spring") == [ids[0], ids[1]]
        assert await ids_of(f"campaign_id=spring&to=%2B{B[1:]}") == [ids[1]]
        assert await ids_of(f"since={NOW + 10}&until={NOW + 30}") == [ids[1], ids[2]]
        assert await ids_of("since=2030-03-17T18:47:05%2B01:00") == [ids[3], ids[4]]
        assert await ids_of("since=2030-03-17T18:47:05+01:00") == [ids[3], ids[4]]
        assert await ids_of("client_ref=nobody") == []

        # A status filter: one message rejected at submit.
        await store.begin_attempts([(ids[2], 1)])
        await store.record_outcomes(
            [SubmitOutcome(ids[2], 1, "alpha", MessageStatus.REJECTED, NOW + 50, error="x")]
        )
        assert await ids_of("status=rejected") == [ids[2]]
        assert await ids_of("status=rejected,accepted") == ids
        assert len(await ids_of("status=accepted")) == 4
        (rejected,) = (await api.get("/v1/messages?status=rejected")).body["items"]
        assert rejected["status"] == "rejected" and rejected["error"]


async def test_bad_parameters_are_each_named(store: Any) -> None:
    async with running_api(store=store) as api:
        bad = await api.get(
            "/v1/messages?status=sent,delivered&limit=0&since=yesterday&until=-5"
            "&after=zz&order=up&number=1&client_ref="
        )
        assert bad.status == 400, bad.text
        paths = sorted(d["path"] for d in bad.body["error"]["details"])
        assert paths == [
            "query.after",
            "query.client_ref",
            "query.limit",
            "query.number",
            "query.order",
            "query.since",
            "query.status",
            "query.until",
        ]
        assert "'sent'" in str(bad.body)
        # A naive time (no offset) is refused rather than guessed.
        naive = await api.get("/v1/messages?since=2030-03-17T18:47:00")
        assert naive.status == 400


async def test_the_searches_read_an_index_not_the_table(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "plan.db", synchronous="normal")
    await store.open()
    seen: list[tuple[str, tuple[Any, ...]]] = []
    read = store._read

    async def spy(sql: str, params: Any = ()) -> list[Any]:
        seen.append((sql, tuple(params)))
        return await read(sql, params)

    store._read = spy  # type: ignore[method-assign]
    try:
        async with running_api(store=store) as api:
            await _send(api, NOW, client_ref="r-1", campaign_id="spring")
            for query in (f"to=%2B{A[1:]}", "client_ref=r-1", "campaign_id=spring"):
                seen.clear()
                assert (await api.get(f"/v1/messages?{query}")).status == 200
                ((sql, params),) = [s for s in seen if "FROM messages" in s[0]]
                db = sqlite3.connect(tmp_path / "plan.db")
                try:
                    plan = " ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
                finally:
                    db.close()
                assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (query, plan)
                assert "TEMP B-TREE" not in plan, (query, plan)  # no sort: the index has the id
    finally:
        await store.close()


async def test_the_cli_lists_and_follows_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path / "cli.db", synchronous="normal")
    await store.open()
    try:
        async with running_api(store=store) as api:
            ids = [await _send(api, NOW + n, client_ref=f"r-{n % 2}") for n in range(5)]
            monkeypatch.setenv("SMSGW_URL", str(api.client.make_url("")).rstrip("/"))
            monkeypatch.setenv("SMSGW_TOKEN", TOKEN)

            async def cli(*argv: str) -> tuple[int, str]:
                out = io.StringIO()
                monkeypatch.setattr("sys.stdout", out)
                code = await asyncio.to_thread(main, ["messages", "list", *argv])
                return code, out.getvalue()

            # Every page is followed (the API's pages are at most --limit long).
            code, text = await cli("--all", "--order", "asc", "--json")
            assert code == 0
            assert [m["id"] for m in json.loads(text)["items"]] == ids
            code, text = await cli("--client-ref", "r-0", "--limit", "2", "--json")
            doc = json.loads(text)
            assert [m["id"] for m in doc["items"]] == [ids[4], ids[2]] and doc["next"]
            code, text = await cli("--to", A, "--since", str(NOW + 3))
            assert code == 0
            lines = text.splitlines()
            assert [line.split()[0] for line in lines] == [ids[4], ids[3]]
            assert "accepted" in lines[0] and "client_ref=r-0" in lines[0]
            code, _ = await cli("--status", "sent")
            assert code == 1  # refused by the gateway: an unknown status
    finally:
        await store.close()
