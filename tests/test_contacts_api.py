"""Issue 15.6: contacts searched, read, edited and deleted (the opt-out stays), opt-outs
listed and exported with their source and time, lists deleted. A token that is not admin
sees and changes contacts and opt-outs only through its own account's lists."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app.cli import main
from gateway.config import Scope, TokenConfig, hash_token
from gateway.store.sqlite_campaigns import FEW_MEMBERS, SqliteCampaignStore
from tests.api_fakes import TOKEN as ADMIN
from tests.campaign_helpers import Rig, campaign_rig
from tests.store_helpers import contact_with_tags

A = "tok-a-contacts-00000000001"
B = "tok-b-contacts-00000000002"
USER: tuple[Scope, ...] = ("send", "read", "campaigns")
TOKENS = (
    TokenConfig(name="a", sha256=hash_token(A), account="a", scopes=USER),
    TokenConfig(name="b", sha256=hash_token(B), account="b", scopes=USER),
)

ANN = "+33612340001"
BOB = "+33612340002"
CLEO = "+33612340003"
DAN = "+33698760004"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with campaign_rig(tmp_path, tokens=TOKENS) as rig:
        yield rig


async def call(rig: Rig, method: str, path: str, token: str = ADMIN, body: Any = None) -> Any:
    return await rig.api.request(method, path, token=token, json=body)


async def ok(rig: Rig, method: str, path: str, token: str = ADMIN, body: Any = None) -> Any:
    answer = await call(rig, method, path, token, body)
    assert answer.status in (200, 201), answer.text
    return answer.body


async def new_list(rig: Rig, token: str, name: str, csv_text: str) -> int:
    list_id: int = (await ok(rig, "POST", "/v1/lists", token, {"name": name}))["id"]
    imported = await rig.api.request(
        "POST",
        f"/v1/lists/{list_id}/import",
        data=csv_text.encode(),
        content_type="text/csv",
        token=token,
    )
    assert imported.status == 202, imported.text
    await rig.importer.wait()
    return list_id


async def two_accounts(rig: Rig) -> tuple[int, int]:
    """a's list: Ann, Bob, Cleo; b's list: Cleo (shared) and Dan."""
    a_list = await new_list(
        rig,
        A,
        "a",
        f"number,name,city\n{ANN},Ann Smith,Paris\n{BOB},Bob_Jones,Lyon\n{CLEO},Cléo,Nice\n",
    )
    b_list = await new_list(rig, B, "b", f"number,name\n{CLEO},Cleo B\n{DAN},Dan\n")
    return a_list, b_list


def numbers(page: Any) -> list[str]:
    return [item["number"] for item in page["items"]]


@pytest.mark.parametrize("few_members", [FEW_MEMBERS, 1], ids=["lists-read-whole", "table-walked"])
async def test_search_by_name_or_digits_through_the_accounts_own_lists(
    rig: Rig, few_members: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.store.sqlite_campaigns.FEW_MEMBERS", few_members)
    a_list, b_list = await two_accounts(rig)
    assert numbers(await ok(rig, "GET", "/v1/contacts", A)) == [ANN, BOB, CLEO]
    assert numbers(await ok(rig, "GET", "/v1/contacts", B)) == [CLEO, DAN]
    assert numbers(await ok(rig, "GET", "/v1/contacts")) == [ANN, BOB, CLEO, DAN]
    # A name, any case; digits of the number (with or without '+'); pattern characters
    # taken as they are.
    assert numbers(await ok(rig, "GET", "/v1/contacts?q=smith", A)) == [ANN]
    assert numbers(await ok(rig, "GET", "/v1/contacts?q=0002", A)) == [BOB]
    assert numbers(await ok(rig, "GET", "/v1/contacts?q=%2B336987", A)) == []  # Dan is b's
    assert numbers(await ok(rig, "GET", "/v1/contacts?q=%2B336987")) == [DAN]
    assert numbers(await ok(rig, "GET", "/v1/contacts?q=_", A)) == [BOB]
    assert numbers(await ok(rig, "GET", "/v1/contacts?q=%25", A)) == []
    first = await ok(rig, "GET", "/v1/contacts?limit=2", A)
    assert numbers(first) == [ANN, BOB] and first["next"] == BOB
    rest = await ok(rig, "GET", f"/v1/contacts?limit=2&after={first['next']}", A)
    assert numbers(rest) == [CLEO] and rest["next"] is None
    assert first["items"][0] == {
        "number": ANN,
        "name": "Ann Smith",
        "attributes": {"city": "Paris"},
    }
    assert numbers(await ok(rig, "GET", f"/v1/contacts?list_id={b_list}")) == [CLEO, DAN]
    for query in (f"list_id={b_list}", "q=", "limit=0", "frm=1"):
        refused = await call(rig, "GET", f"/v1/contacts?{query}", A)
        assert refused.status == 400, (query, refused.text)
    assert (await ok(rig, "GET", f"/v1/contacts?list_id={a_list}", A))["items"]


async def test_edit_sets_the_name_and_merges_attributes(rig: Rig) -> None:
    await two_accounts(rig)
    edited = await ok(
        rig,
        "PATCH",
        f"/v1/contacts/{ANN}",
        A,
        {"name": "Ann S.", "attributes": {"city": None, "plan": "gold"}},
    )
    assert edited == {"number": ANN, "name": "Ann S.", "attributes": {"plan": "gold"}}
    again = await ok(rig, "PATCH", f"/v1/contacts/{ANN}", A, {"attributes": {"plan": ""}})
    assert again == {"number": ANN, "name": "Ann S.", "attributes": {}}
    shown = await ok(rig, "GET", f"/v1/contacts/{ANN}", A)
    assert shown["name"] == "Ann S." and shown["attributes"] == {}
    # b does not see Ann; bad fields are all named.
    assert (await call(rig, "PATCH", f"/v1/contacts/{ANN}", B, {"name": "x"})).status == 404
    bad = await call(
        rig,
        "PATCH",
        f"/v1/contacts/{ANN}",
        A,
        {"name": 3, "attributes": {"Name": "x", "ok": 5}, "tags": []},
    )
    assert bad.status == 400
    paths = {d["path"] for d in bad.body["error"]["details"]}
    assert paths == {"name", "attributes.Name", "attributes.ok", "tags"}
    unknown = await call(rig, "PATCH", "/v1/contacts/%2B33699999999", ADMIN, {"name": "x"})
    assert unknown.status == 404


async def test_delete_forgets_the_contact_but_keeps_its_opt_out(rig: Rig) -> None:
    a_list, b_list = await two_accounts(rig)
    await ok(rig, "POST", "/v1/opt-outs", ADMIN, {"number": CLEO})
    # a deletes Cleo: out of a's list; b still has Cleo, name and attributes included.
    assert (await ok(rig, "DELETE", f"/v1/contacts/{CLEO}", A)) == {
        "number": CLEO,
        "deleted": True,
    }
    assert (await call(rig, "GET", f"/v1/contacts/{CLEO}", A)).status == 404
    assert (await call(rig, "DELETE", f"/v1/contacts/{CLEO}", A)).status == 404
    seen_by_b = await ok(rig, "GET", f"/v1/contacts/{CLEO}", B)
    assert seen_by_b["name"] == "Cleo B" and [m["id"] for m in seen_by_b["lists"]] == [b_list]
    # b deletes it too: in no list any more, the contact is forgotten; the opt-out stays.
    await ok(rig, "DELETE", f"/v1/contacts/{CLEO}", B)
    left = await ok(rig, "GET", f"/v1/contacts/{CLEO}")
    assert left["name"] == "" and left["attributes"] == {} and left["lists"] == []
    assert [(o["sender"], o["source"]) for o in left["opt_outs"]] == [(None, "api")]
    assert CLEO not in numbers(await ok(rig, "GET", "/v1/contacts"))
    # An admin deletes from every list at once, and forgets attributes and tags.
    await rig.store.tag_contact(ANN, ["vip"], rig.now())
    await ok(rig, "DELETE", f"/v1/contacts/{ANN}")
    assert (await call(rig, "GET", f"/v1/contacts/{ANN}")).status == 404
    assert await contact_with_tags(rig.store, ANN) is None
    assert numbers(await ok(rig, "GET", f"/v1/contacts?list_id={a_list}")) == [BOB]


@pytest.mark.parametrize("few_members", [FEW_MEMBERS, 1], ids=["lists-read-whole", "table-walked"])
async def test_opt_outs_are_listed_and_exported_with_source_and_time(
    rig: Rig, few_members: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.store.sqlite_campaigns.FEW_MEMBERS", few_members)
    await two_accounts(rig)
    await ok(rig, "POST", "/v1/opt-outs", ADMIN, {"number": BOB, "sender": "ACME"})
    await ok(rig, "POST", "/v1/opt-outs", ADMIN, {"number": BOB})
    await ok(rig, "POST", "/v1/opt-outs", ADMIN, {"number": DAN})
    await rig.store.add_opt_out(ANN, None, "mo", rig.now() + 60)  # a STOP by SMS
    every = await ok(rig, "GET", "/v1/opt-outs")
    assert [(o["number"], o["sender"], o["source"]) for o in every["items"]] == [
        (ANN, None, "mo"),
        (BOB, None, "api"),
        (BOB, "ACME", "api"),
        (DAN, None, "api"),
    ]
    assert every["items"][0]["at"].endswith("Z") and every["next"] is None
    seen_by_a = await ok(rig, "GET", "/v1/opt-outs", A)
    assert {o["number"] for o in seen_by_a["items"]} == {ANN, BOB}
    seen_by_b = await ok(rig, "GET", "/v1/opt-outs", B)
    assert {o["number"] for o in seen_by_b["items"]} == {DAN}
    page = await ok(rig, "GET", "/v1/opt-outs?limit=2")
    assert page["next"] is not None
    rest = await ok(rig, "GET", f"/v1/opt-outs?limit=2&after={page['next']}")
    assert [o["number"] for o in page["items"] + rest["items"]] == [ANN, BOB, BOB, DAN]
    assert (await call(rig, "GET", "/v1/opt-outs?after=junk")).status == 400

    exported = await call(rig, "GET", "/v1/opt-outs/export.csv", A)
    assert exported.status == 200
    assert exported.headers["Content-Type"].startswith("text/csv")
    assert exported.text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0] == ["number", "sender", "source", "at"]
    # '+' numbers come out as text, not formulas (the interactions export's rule).
    assert [r[:3] for r in rows[1:]] == [
        ["'" + ANN, "", "mo"],
        ["'" + BOB, "", "api"],
        ["'" + BOB, "ACME", "api"],
    ]
    bare = await call(rig, "GET", "/v1/opt-outs/export.csv?bom=0")
    assert not bare.text.startswith("\ufeff") and len(bare.text.splitlines()) == 5


async def test_a_deleted_list_takes_its_members_and_its_id_is_never_reused(rig: Rig) -> None:
    a_list, b_list = await two_accounts(rig)
    campaign = await ok(
        rig,
        "POST",
        "/v1/campaigns",
        A,
        {"name": "c", "from": "ACME", "text": "hi", "lists": [a_list]},
    )
    in_use = await call(rig, "DELETE", f"/v1/lists/{a_list}", A)
    assert in_use.status == 409 and campaign["id"] in in_use.body["error"]["message"]
    await ok(rig, "POST", f"/v1/campaigns/{campaign['id']}/cancel", A, {})
    assert (await call(rig, "DELETE", f"/v1/lists/{a_list}", B)).status == 404
    deleted = await ok(rig, "DELETE", f"/v1/lists/{a_list}", A)
    assert deleted == {"id": a_list, "deleted": True, "members_removed": 3}
    assert (await call(rig, "GET", f"/v1/lists/{a_list}", A)).status == 404
    assert (await call(rig, "DELETE", f"/v1/lists/{a_list}", A)).status == 404
    assert [x["id"] for x in (await ok(rig, "GET", "/v1/lists"))["items"]] == [b_list]
    # The contacts stay (an admin sees them), out of the list.
    ann = await ok(rig, "GET", f"/v1/contacts/{ANN}")
    assert ann["name"] == "Ann Smith" and ann["lists"] == []
    assert numbers(await ok(rig, "GET", "/v1/contacts", A)) == []
    # A new list never gets the deleted one's id (it was the last one made before b's).
    newer = await ok(rig, "POST", "/v1/lists", A, {"name": "again"})
    assert newer["id"] not in (a_list, b_list) and newer["contacts"] == 0
    # A campaign cannot name the deleted list.
    refused = await call(
        rig,
        "POST",
        "/v1/campaigns",
        A,
        {"name": "c", "from": "ACME", "text": "hi", "lists": [a_list]},
    )
    assert refused.status == 400


async def test_members_a_stop_left_behind_are_removed_at_the_next_start(rig: Rig) -> None:
    list_id = await new_list(rig, A, "a", f"number\n{ANN}\n{BOB}\n")

    def half_deleted(conn: Any) -> None:  # the daemon stopped after marking the list
        conn.execute("UPDATE contact_lists SET deleted_at = 1 WHERE id = ?", (list_id,))

    await rig.store._write_in_thread(half_deleted)
    campaigns = SqliteCampaignStore(rig.store.db)
    assert await campaigns.deleted_lists_with_members() == [list_id]
    await rig.importer.start()
    assert await campaigns.deleted_lists_with_members() == []
    rows = await rig.store._read("SELECT count(*) FROM list_members WHERE list_id = ?", (list_id,))
    assert rows[0][0] == 0


async def test_the_cli_searches_edits_deletes_and_exports(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a_list, _ = await two_accounts(rig)
    await ok(rig, "POST", "/v1/opt-outs", ADMIN, {"number": BOB})
    monkeypatch.setenv("SMSGW_URL", str(rig.api.client.make_url("")).rstrip("/"))
    monkeypatch.setenv("SMSGW_TOKEN", A)

    async def cli(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        monkeypatch.setattr("sys.stdout", out)
        code = await asyncio.to_thread(main, list(argv))
        return code, out.getvalue()

    code, text = await cli("contacts", "search", "--all", "--json")
    assert code == 0 and numbers(json.loads(text)) == [ANN, BOB, CLEO]
    code, text = await cli("contacts", "search", "smith")
    assert code == 0 and text.split() == [ANN, "Ann", "Smith", "city=Paris"]
    code, text = await cli("contacts", "search", "--limit", "1", "--json")
    assert numbers(json.loads(text)) == [ANN] and json.loads(text)["next"] == ANN
    code, text = await cli("contacts", "edit", ANN, "--name", "Ann S", "--set", "plan=gold")
    assert code == 0, text
    code, text = await cli("contacts", "edit", ANN, "--unset", "city", "--json")
    assert json.loads(text) == {"number": ANN, "name": "Ann S", "attributes": {"plan": "gold"}}
    code, text = await cli("contacts", "show", ANN, "--json")
    assert json.loads(text)["name"] == "Ann S"
    code, text = await cli("contacts", "delete", BOB)
    assert code == 0 and "opt-outs stay" in text
    code, _ = await cli("contacts", "show", BOB)
    assert code == 1  # no longer a's
    code, text = await cli("opt-outs", "list", "--json")  # Bob is in none of a's lists now
    assert code == 0 and json.loads(text)["items"] == []
    monkeypatch.setenv("SMSGW_TOKEN", ADMIN)
    code, text = await cli("opt-outs", "list")
    assert code == 0 and text.split()[:3] == [BOB, "*", "api"]
    target = tmp_path / "opt-outs.csv"
    code, _ = await cli("opt-outs", "export", "--output", str(target))
    assert code == 0
    assert target.read_text("utf-8-sig").splitlines()[1].startswith(f"'{BOB},,api,")
    code, text = await cli("list", "delete", str(a_list), "--json")
    assert code == 0 and json.loads(text)["members_removed"] == 2
