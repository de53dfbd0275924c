"""Conversations for customer care (15.4): an interaction's care state, assignee and
thread (``GET`` / ``PATCH /v1/interactions/{id}``), and a subscriber's thread across
campaigns (``GET /v1/conversations?number=``): over the real SQLite store, then end to end
through the simulator (an MO, its auto-reply, a helpdesk reply and their receipts)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.store.base import StoreError
from gateway.store.sqlite import SqliteStore
from tests.api_fakes import NOW, Api, running_api
from tests.e2e_helpers import eventually
from tests.test_e2e_inbound import SHORT_CODE, Helpdesk, InboundLab, inbound_raw
from tests.test_interactions_api import log_mo

SUB = "+33612345678"
OTHER = "+33698765432"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "care.db", synchronous="normal")
    await sqlite.open()
    try:
        yield sqlite
    finally:
        await sqlite.close()


async def _mt(api: Api, at: float, text: str, to: str = SUB) -> str:
    api.clock[0] = at
    sent = await api.post("/v1/messages", {"to": to, "from": "ACME", "text": text})
    assert sent.status == 202, sent.text
    return str(sent.body["id"])


async def _walk(api: Api, query: str) -> list[dict[str, Any]]:
    """Every page of a conversation, following ``next``."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page = await api.get(f"/v1/conversations?{query}" + (f"&after={cursor}" if cursor else ""))
        assert page.status == 200, page.text
        items.extend(page.body["items"])
        cursor = page.body["next"]
        if cursor is None:
            return items
    raise AssertionError("no end")


def _label(item: dict[str, Any]) -> str:
    return f"{item['type']}:{item['text']}"


async def test_a_conversation_merges_mos_and_mts_by_time_and_pages_without_gaps(
    store: SqliteStore,
) -> None:
    async with running_api(store=store) as api:
        await log_mo(store, "mo1", source=SUB, at=NOW + 1)
        await _mt(api, NOW + 2, "mt2")
        await _mt(api, NOW + 3, "mt3")
        await log_mo(store, "mo4", source=SUB, at=NOW + 4, campaign_id="autumn")
        await log_mo(store, "other", source=OTHER, at=NOW + 5)
        await _mt(api, NOW + 5, "to-other", to=OTHER)
        await _mt(api, NOW + 6, "mt6")
        await log_mo(store, "mo7", source=SUB, at=NOW + 7, destination="36999")

        whole = ["mo:mo1", "mt:mt2", "mt:mt3", "mo:mo4", "mt:mt6", "mo:mo7"]
        first = await api.get(f"/v1/conversations?number=%2B{SUB[1:]}")
        assert first.status == 200, first.text
        assert first.body["number"] == SUB and first.body["next"] is None
        assert [_label(i) for i in first.body["items"]] == whole
        for limit in (1, 2, 4):
            asc = await _walk(api, f"number=%2B{SUB[1:]}&limit={limit}")
            assert [_label(i) for i in asc] == whole, limit
            desc = await _walk(api, f"number=%2B{SUB[1:]}&limit={limit}&order=desc")
            assert [_label(i) for i in desc] == whole[::-1], limit
        mo = first.body["items"][0]
        assert mo["interaction"]["care_state"] == "open" and mo["message"] is None
        mt = first.body["items"][1]
        assert mt["message"]["status"] == "accepted" and mt["interaction"] is None
        assert (mt["interaction_id"], mt["reply"]) == (None, None)  # not sent for an MO

        for bad in ("", "number=", f"number=%2B{SUB[1:]}&after=7", "number=1&order=up&x=1"):
            answer = await api.get(f"/v1/conversations?{bad}")
            assert answer.status == 400, (bad, answer.text)
        unknown = await api.get("/v1/conversations?number=%2B33600000000")
        assert (unknown.status, unknown.body["items"]) == (200, [])


async def test_the_conversation_reads_an_index_for_each_side(tmp_path: Path) -> None:
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
            await log_mo(store, "mo1", source=SUB, at=NOW + 1)
            await _mt(api, NOW + 2, "mt2")
            for query in ("", "&order=desc", "&limit=1"):
                seen.clear()
                page = await api.get(f"/v1/conversations?number=%2B{SUB[1:]}{query}")
                assert page.status == 200, page.text
                reads = [s for s in seen if "FROM interactions" in s[0] or "FROM messages" in s[0]]
                assert len(reads) == 2, reads
                if page.body["next"]:
                    seen.clear()
                    after = page.body["next"]
                    nxt = await api.get(f"/v1/conversations?number=%2B{SUB[1:]}&after={after}")
                    assert nxt.status == 200
                    reads += [s for s in seen if "FROM" in s[0]]
                db = sqlite3.connect(tmp_path / "plan.db")
                try:
                    for sql, params in reads:
                        plan = " ".join(
                            r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)
                        )
                        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
                        assert "TEMP B-TREE" not in plan, (sql, plan)  # no sort
                finally:
                    db.close()
    finally:
        await store.close()


async def test_patch_sets_care_state_and_assignee_apart_from_the_processing_state(
    store: SqliteStore,
) -> None:
    async with running_api(store=store) as api:
        mo = await log_mo(store, "my parcel?", source=SUB)
        got = await api.get(f"/v1/interactions/{mo}")
        assert got.status == 200, got.text
        assert (got.body["state"], got.body["care_state"], got.body["assignee"]) == (
            "done",
            "open",
            None,
        )
        assert [i["type"] for i in got.body["thread"]] == ["mo"]

        patched = await api.request(
            "PATCH", f"/v1/interactions/{mo}", json={"assignee": "lea@care", "care_state": "closed"}
        )
        assert patched.status == 200, patched.text
        assert (patched.body["care_state"], patched.body["assignee"]) == ("closed", "lea@care")
        assert patched.body["state"] == "done"
        only = await api.request("PATCH", f"/v1/interactions/{mo}", json={"assignee": None})
        assert (only.body["care_state"], only.body["assignee"]) == ("closed", None)
        listed = await api.get("/v1/interactions")
        assert listed.body["items"][0]["care_state"] == "closed"
        # A new MO from the same subscriber is a new interaction, open; the old one stays.
        again = await log_mo(store, "still waiting", source=SUB, at=NOW + 60)
        assert (await api.get(f"/v1/interactions/{again}")).body["care_state"] == "open"
        assert (await api.get(f"/v1/interactions/{mo}")).body["care_state"] == "closed"

        for body in ({}, {"care_state": "done"}, {"assignee": ""}, {"state": "closed"}, [1]):
            bad = await api.request("PATCH", f"/v1/interactions/{mo}", json=body)
            assert bad.status == 400, (body, bad.text)
        for path in ("/v1/interactions/999", "/v1/interactions/x1"):
            assert (await api.get(path)).status == 404
            missing = await api.request("PATCH", path, json={"care_state": "open"})
            assert missing.status == 404


async def test_mo_auto_reply_helpdesk_reply_and_receipts_make_one_thread(
    tmp_path: Path,
) -> None:
    desk = Helpdesk()
    await desk.start()
    lab = InboundLab(tmp_path, inbound_raw(desk.url))
    await lab.start()
    try:
        await lab.mo(SUB, "No thanks")  # rule "no": auto-reply "OK, noted."
        (interaction,) = await lab.handled(1)
        status, answer = await lab.request(
            "POST", f"/v1/interactions/{interaction.id}/reply", {"text": "Call us at 3000"}
        )
        assert status == 202, answer
        thread: list[dict[str, Any]] = []

        async def delivered() -> bool:
            nonlocal thread
            thread = (await lab.get(f"/v1/interactions/{interaction.id}"))["thread"]
            return len(thread) == 3 and all(
                t["message"]["status"] == "delivered" for t in thread[1:]
            )

        await eventually(delivered)
        assert [(t["type"], t["reply"], t["text"]) for t in thread] == [
            ("mo", None, "No thanks"),
            ("mt", "auto", "OK, noted."),
            ("mt", "helpdesk", "Call us at 3000"),
        ]
        assert thread[2]["message"]["id"] == answer["id"]
        assert {t["interaction_id"] for t in thread} == {interaction.id}
        assert all((t["from"], t["to"]) == (SHORT_CODE, SUB) for t in thread[1:])
        view = await lab.get(f"/v1/interactions/{interaction.id}")
        assert (view["care_state"], view["state"]) == ("answered", "done")

        status, closed = await lab.request(
            "PATCH",
            f"/v1/interactions/{interaction.id}",
            {"care_state": "closed", "assignee": "lea@care"},
        )
        assert status == 200 and (closed["care_state"], closed["assignee"]) == (
            "closed",
            "lea@care",
        )

        # The subscriber writes again: a new, open interaction (its courtesy reply follows);
        # the conversation holds both MOs and every MT, by time.
        await lab.mo(SUB, "hello??")
        await lab.handled(2)

        async def courtesy_sent() -> bool:
            body = await lab.get(f"/v1/conversations?number=%2B{SUB[1:]}")
            return len(body["items"]) == 5

        await eventually(courtesy_sent)
        items = (await lab.get(f"/v1/conversations?number=%2B{SUB[1:]}"))["items"]
        assert [(i["type"], i["reply"]) for i in items] == [
            ("mo", None),
            ("mt", "auto"),
            ("mt", "helpdesk"),
            ("mo", None),
            ("mt", "auto"),
        ]
        assert [i["interaction"]["care_state"] for i in items if i["type"] == "mo"] == [
            "closed",
            "open",
        ]
    finally:
        await lab.stop()
        await desk.stop()


class _CareFails(SqliteStore):
    async def set_interaction_care(self, interaction_id: int, **care: Any) -> Any:
        raise StoreError("disk I/O error")


async def test_a_helpdesk_reply_committed_is_202_even_when_its_care_state_is_not_saved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _CareFails(tmp_path / "fails.db", synchronous="normal")
    await store.open()
    try:
        mo = await log_mo(store, "where is my parcel", source=SUB)
        async with running_api(store=store) as api:
            answer = await api.post(f"/v1/interactions/{mo}/reply", {"text": "Tomorrow"})
            assert answer.status == 202, answer.text  # not a 503 the helpdesk would retry
            assert (await api.get(f"/v1/messages/{answer.body['id']}")).status == 200
            assert (await api.get(f"/v1/interactions/{mo}")).body["care_state"] == "open"
        assert any(r.getMessage() == "api.care_state_not_saved" for r in caplog.records)
    finally:
        await store.close()
