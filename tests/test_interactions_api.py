"""GET /v1/interactions and its CSV export over the real SQLite store: paging, filters, the
CSV content (formula injection neutralised, BOM, quoting), new=1 marks, selected ids."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.reports.csvfile import COLUMNS, neutralise
from gateway.store.base import Contact, InteractionOutcome, NewInteraction
from gateway.store.sqlite import SqliteStore
from tests.api_fakes import NOW, OTHER_TOKEN, TOKEN, Api, running_api
from tests.store_helpers import put_contacts


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "mo.db", synchronous="normal")
    await sqlite.open()
    try:
        yield sqlite
    finally:
        await sqlite.close()


async def log_mo(
    store: SqliteStore,
    text: str,
    *,
    source: str = "+33612345678",
    destination: str = "36180",
    at: float = NOW,
    campaign_id: str | None = "spring",
    keyword: str | None = None,
    actions: list[dict[str, Any]] | None = None,
    done: bool = True,
) -> int:
    new_id = await store.record_interaction(
        NewInteraction(
            carrier="alpha",
            source=source,
            destination=destination,
            text=text,
            data_coding=0,
            parts=1,
            parts_received=1,
            received_at=at,
            completed_at=at,
        )
    )
    if done:
        await store.finish_interactions(
            [
                InteractionOutcome(
                    new_id,
                    keyword=keyword,
                    rule=keyword.lower() if keyword else None,
                    campaign_id=campaign_id,
                    actions=actions or [],
                    at=at + 1,
                )
            ]
        )
    return new_id


async def export(api: Api, query: str = "", token: str = TOKEN) -> tuple[bytes, list[list[str]]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with api.client.get(f"/v1/interactions/export.csv{query}", headers=headers) as got:
        assert got.status == 200, await got.text()
        assert got.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert got.headers["Content-Disposition"].startswith('attachment; filename="interactions-')
        raw = await got.read()
    text = raw.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    # The MO's columns, then its sender's contact: name and attributes (issue 15.5).
    assert rows[0][: len(COLUMNS) + 1] == [*COLUMNS, "name"]
    return raw, rows[1:]


def ids_of(rows: list[list[str]]) -> list[int]:
    return [int(r[0]) for r in rows]


async def test_the_list_pages_newest_first_with_a_cursor(store: SqliteStore) -> None:
    ids = [await log_mo(store, f"answer {n}", at=NOW + n) for n in range(7)]
    async with running_api(store=store) as api:
        seen: list[int] = []
        after = ""
        pages = 0
        while True:
            got = await api.get(f"/v1/interactions?limit=3{after}")
            assert got.status == 200
            pages += 1
            seen += [item["id"] for item in got.body["items"]]
            if got.body["next"] is None:
                break
            after = f"&after={got.body['next']}"
        assert seen == ids[::-1]
        assert pages == 3
        oldest = await api.get("/v1/interactions?order=asc&limit=7")
        assert [i["id"] for i in oldest.body["items"]] == ids
        assert oldest.body["next"] is None  # exactly one page: no empty page to follow


async def test_list_items_carry_what_was_done(store: SqliteStore) -> None:
    actions = [{"type": "reply", "ok": True}, {"type": "tag", "tag": "fan", "ok": True}]
    first = await log_mo(store, "Yes please", keyword="YES", actions=actions)
    async with running_api(store=store) as api:
        got = await api.get("/v1/interactions")
    (item,) = got.body["items"]
    assert item == {
        "id": first,
        "source": "+33612345678",
        "destination": "36180",
        "text": "Yes please",
        "received_at": "2030-03-17T17:46:40.000Z",
        "keyword": "YES",
        "campaign_id": "spring",
        "actions": actions,
        "rule": "yes",
        "state": "done",
        "carrier": "alpha",
        "complete": True,
        "attempts": 0,
        "last_error": None,
        "care_state": "open",
        "assignee": None,
    }


async def test_filters_by_campaign_number_and_source(store: SqliteStore) -> None:
    a = await log_mo(store, "a", campaign_id="spring", destination="36180")
    b = await log_mo(store, "b", campaign_id="autumn", destination="36180")
    c = await log_mo(store, "c", campaign_id="spring", destination="+33700000000")
    d = await log_mo(store, "d", campaign_id="spring", source="+447700900123")
    async with running_api(store=store) as api:

        async def listed(query: str) -> list[int]:
            got = await api.get(f"/v1/interactions?order=asc&{query}")
            assert got.status == 200, got.text
            return [i["id"] for i in got.body["items"]]

        assert await listed("campaign_id=spring") == [a, c, d]
        assert await listed("number=36180") == [a, b, d]
        # '+' unencoded in a query string arrives as a space: still the number meant.
        assert await listed("number=+33700000000") == [c]
        assert await listed("number=%2B33700000000") == [c]
        assert await listed("source=%2B447700900123&campaign_id=spring") == [d]
        _, rows = await export(api, "?campaign_id=autumn")
        assert ids_of(rows) == [b]


async def test_bad_parameters_are_listed_and_unknown_ones_refused(store: SqliteStore) -> None:
    async with running_api(store=store) as api:
        got = await api.get("/v1/interactions?limit=0&after=x&order=up&campaign=spring")
        assert got.status == 400
        paths = sorted(d["path"] for d in got.body["error"]["details"])
        assert paths == ["query.after", "query.campaign", "query.limit", "query.order"]
        bad = await api.get("/v1/interactions/export.csv?new=1&ids=1,2")
        assert bad.status == 400
        assert bad.body["error"]["details"][0]["path"] == "query.ids"
        bad = await api.get("/v1/interactions/export.csv?ids=1,x")
        assert bad.status == 400
        nobody = await api.get("/v1/interactions/export.csv", token=None)
        assert nobody.status == 401


async def test_the_csv_neutralises_formulas_and_keeps_text_whole(store: SqliteStore) -> None:
    hostile = [
        '=HYPERLINK("http://evil.example","click")',
        "+1+1",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
        "\uff1d1+1",
    ]
    ids = [await log_mo(store, text) for text in hostile]
    plain = await log_mo(
        store,
        'Oui, "merci" 👍\nà demain; vraiment',
        keyword="OUI",
        actions=[
            {"type": "opt_out", "ok": True},
            {"type": "webhook", "ok": False},
            {"type": "courtesy_reply", "ok": False, "not_sent": "rate_limited"},
        ],
    )
    async with running_api(store=store) as api:
        raw, rows = await export(api)
    assert raw.startswith(b"\xef\xbb\xbf")  # the UTF-8 BOM, for Excel
    assert b"\r\n" in raw
    assert ids_of(rows) == [*ids, plain]
    column = COLUMNS.index("text")
    for row, text in zip(rows, hostile, strict=False):
        assert row[column] == "'" + text
        assert row[COLUMNS.index("source")] == "'+33612345678"
    last = dict(zip(COLUMNS, rows[-1][: len(COLUMNS)], strict=True))
    assert last["text"] == 'Oui, "merci" 👍\nà demain; vraiment'
    assert last["keyword"] == "OUI"
    assert last["actions"] == ("opt_out; webhook (failed); courtesy_reply (not sent: rate_limited)")
    assert last["received_at"] == "2030-03-17T17:46:40.000Z"
    assert last["complete"] == "yes"
    # Nothing that a spreadsheet would evaluate is left at the start of any cell.
    for row in rows:
        for cell in row:
            assert neutralise(cell) == cell or cell.startswith("'")
            assert not cell or cell[0] not in "=+-@\t\r"


async def test_bom_can_be_left_out(store: SqliteStore) -> None:
    await log_mo(store, "hello")
    async with running_api(store=store) as api:
        raw, rows = await export(api, "?bom=0")
    assert raw.startswith(b"id,received_at,")
    assert len(rows) == 1


async def test_new_exports_only_what_was_not_exported_in_that_scope(store: SqliteStore) -> None:
    first = [await log_mo(store, f"s{n}", campaign_id="spring") for n in range(3)]
    other = await log_mo(store, "a0", campaign_id="autumn")
    async with running_api(store=store) as api:
        _, rows = await export(api, "?campaign_id=spring&new=1")
        assert ids_of(rows) == first
        _, rows = await export(api, "?campaign_id=spring&new=1")
        assert rows == []
        later = [await log_mo(store, f"s{n}", campaign_id="spring") for n in range(3, 5)]
        _, rows = await export(api, "?campaign_id=spring&new=1")
        assert ids_of(rows) == later
        # Another scope (no filter) has its own mark; another token too.
        _, rows = await export(api, "?new=1")
        assert ids_of(rows) == sorted([*first, other, *later])
        _, rows = await export(api, "?campaign_id=spring&new=1", token=OTHER_TOKEN)
        assert ids_of(rows) == [*first, *later]
        # Selected ids export exactly those (with the filters), and move no mark.
        _, rows = await export(api, f"?ids={later[1]},{first[0]},{other},999")
        assert ids_of(rows) == [first[0], other, later[1]]
        _, rows = await export(api, f"?ids={first[0]},{other}&campaign_id=autumn")
        assert ids_of(rows) == [other]
        _, rows = await export(api, "?campaign_id=spring&new=1")
        assert rows == []


async def test_new_stops_before_an_interaction_still_pending(store: SqliteStore) -> None:
    """A pending MO has no campaign yet: exporting past it would lose it from the campaign's
    next 'new' export once its actions have run."""
    done = await log_mo(store, "one")
    pending = await log_mo(store, "two", done=False)
    after = await log_mo(store, "three")
    async with running_api(store=store) as api:
        _, rows = await export(api, "?campaign_id=spring&new=1")
        assert ids_of(rows) == [done]
        await store.finish_interactions(
            [
                InteractionOutcome(
                    pending, keyword=None, rule=None, campaign_id="spring", actions=[], at=NOW
                )
            ]
        )
        _, rows = await export(api, "?campaign_id=spring&new=1")
        assert ids_of(rows) == [pending, after]


async def test_new_marks_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "marks.db"
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        first = await log_mo(store, "one")
        async with running_api(store=store) as api:
            _, rows = await export(api, "?new=1")
            assert ids_of(rows) == [first]
    finally:
        await store.close()
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        second = await log_mo(store, "two")
        async with running_api(store=store) as api:
            _, rows = await export(api, "?new=1")
            assert ids_of(rows) == [second]
    finally:
        await store.close()


async def test_a_large_export_streams_in_pages(store: SqliteStore) -> None:
    count = 1234  # more than two pages of EXPORT_PAGE
    for n in range(count):
        await log_mo(store, f"reply {n}", source=f"+3361234{n:04d}", done=False)
    async with running_api(store=store) as api:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with api.client.get("/v1/interactions/export.csv", headers=headers) as got:
            assert got.headers.get("Transfer-Encoding") == "chunked"
            chunks = [chunk async for chunk in got.content.iter_any()]
            raw = b"".join(chunks)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(rows) == count + 1
    assert rows[-1][COLUMNS.index("text")] == f"reply {count - 1}"


async def test_without_an_interaction_store_the_routes_say_so() -> None:
    async with running_api() as api:  # FakeStore: no interaction log
        got = await api.get("/v1/interactions")
    assert got.status == 503
    assert got.body["error"]["code"] == "store_unavailable"


async def test_two_new_exports_at_once_get_each_row_once(store: SqliteStore) -> None:
    ids = [await log_mo(store, f"r{n}") for n in range(30)]
    async with running_api(store=store) as api:
        (_, first), (_, second) = await asyncio.gather(export(api, "?new=1"), export(api, "?new=1"))
    assert sorted(ids_of(first) + ids_of(second)) == ids


async def test_the_export_carries_the_senders_name_and_attributes(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann, bob, unknown = "+33611111111", "+33622222222", "+33633333333"
    await put_contacts(
        store,
        [
            Contact(ann, "Ann", {"city": "Paris", "text": "=1+1"}),
            Contact(bob, "@bob", {"plan": "gold"}),
            Contact("+33699999999", "Not exported", {"zone": "x"}),
        ],
    )
    ids = [await log_mo(store, "YES", source=n) for n in (ann, bob, unknown)]
    async with running_api(store=store) as api:
        _, rows = await export(api)
        head = (await export_header(api))[len(COLUMNS) :]
        # Only the exported contacts' keys, sorted, prefixed so "text" is not the MO's text.
        assert head == ["name", "attr.city", "attr.plan", "attr.text"]
        contact = {int(r[0]): r[len(COLUMNS) :] for r in rows}
        assert contact == {
            ids[0]: ["Ann", "Paris", "", "'=1+1"],
            ids[1]: ["'@bob", "", "gold", ""],
            ids[2]: ["", "", "", ""],
        }
        _, chosen = await export(api, f"?ids={ids[1]}")
        assert (await export_header(api, f"?ids={ids[1]}"))[len(COLUMNS) :] == [
            "name",
            "attr.plan",
        ]
        assert chosen[0][len(COLUMNS) :] == ["'@bob", "gold"]
        # More keys than columns: the rest go, as JSON, in one last column.
        monkeypatch.setattr("gateway.reports.csvfile.MAX_ATTRIBUTE_COLUMNS", 2)
        head = (await export_header(api))[len(COLUMNS) :]
        assert head == ["name", "attr.city", "attr.plan", "other_attributes"]
        _, rows = await export(api)
        assert rows[0][len(COLUMNS) :] == ["Ann", "Paris", "", '{"text": "=1+1"}']
        assert rows[1][-1] == ""


async def export_header(api: Api, query: str = "") -> list[str]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with api.client.get(f"/v1/interactions/export.csv{query}", headers=headers) as got:
        text = (await got.read()).decode("utf-8-sig")
    return next(csv.reader(io.StringIO(text, newline="")))
