"""Tokens are accounts: every route has an authorisation decision (a scope), a token without
it gets 403, and a token sees and changes only its account's messages, lists, imports,
contacts and campaigns (another account's are 404); a token without scopes is admin, as
every token was before scopes existed.

The route tests are parametrised over the OpenAPI document and the app's route table, so a
route added without an entry in ROUTE_SCOPES, or without an account-isolation case below,
fails here."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.config import ConfigError, HttpConfig, Scope, TokenConfig, hash_token
from gateway.config.loader import load_dataclass
from gateway.http.auth import CONSOLE_ROUTES, ROUTE_SCOPES, check_routes
from gateway.http.openapi import openapi_document
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_campaigns import SqliteCampaignStore
from tests.api_fakes import TOKEN as LEGACY_ADMIN
from tests.campaign_helpers import Rig, campaign_rig

A_FULL = "tok-a-full-000000000001"
A_SEND = "tok-a-send-000000000002"
B_FULL = "tok-b-full-000000000003"
WITHOUT: dict[Scope, str] = {
    "send": "tok-no-send-0000000004",
    "read": "tok-no-read-0000000005",
    "campaigns": "tok-no-camp-0000000006",
    "admin": A_FULL,
}
"""For each scope, a token of account a holding every other non-admin scope."""

USER_SCOPES: tuple[Scope, ...] = ("send", "read", "campaigns")


def _token(name: str, token: str, account: str, scopes: tuple[Scope, ...]) -> TokenConfig:
    return TokenConfig(name=name, sha256=hash_token(token), account=account, scopes=scopes)


TOKENS = (
    _token("a-full", A_FULL, "a", USER_SCOPES),
    _token("a-send", A_SEND, "a", ("send",)),
    _token("b-full", B_FULL, "b", USER_SCOPES),
    *(
        _token(f"no-{scope}", WITHOUT[scope], "a", tuple(s for s in USER_SCOPES if s != scope))
        for scope in ("send", "read", "campaigns")
    ),
)

DOCUMENT = openapi_document()
SECURED = sorted(
    (method.upper(), path)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
    if operation.get("security") != []
)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with campaign_rig(tmp_path, tokens=TOKENS) as rig:
        yield rig


async def call(rig: Rig, method: str, path: str, token: str, json: Any = None) -> Any:
    return await rig.api.request(method, path, token=token, json=json)


def test_every_route_of_the_app_and_of_the_document_has_a_scope(rig_app: web.Application) -> None:
    routes = {(r.method, r.resource.canonical) for r in rig_app.router.routes() if r.resource}
    # The web console's routes take no token: each has its decision in CONSOLE_ROUTES
    # (public, or a signed-in session whose pages ask this API with its token), and none
    # is an API route (tests/test_console.py checks each session route refuses without one).
    console = {route for route in routes if route in CONSOLE_ROUTES}
    assert console == set(CONSOLE_ROUTES)
    assert not console & set(ROUTE_SCOPES)
    served = {
        (method, path)
        for method, path in routes - console
        if path not in ("/healthz", "/metrics") and path != "/v1/openapi.json"
    }
    assert served == set(SECURED)  # the document lists what the app serves
    assert served == set(ROUTE_SCOPES)  # and each one has its decision
    for method, path in SECURED:
        operation = DOCUMENT["paths"][path][method.lower()]
        assert operation["x-scope"] == ROUTE_SCOPES[(method, path)]
        assert "403" in operation["responses"]


def test_a_route_without_a_decision_stops_the_app_from_being_built() -> None:
    with pytest.raises(RuntimeError, match="GET /v1/new-thing"):
        check_routes([("GET", "/v1/messages/{id}"), ("GET", "/v1/new-thing")], ())


@pytest.fixture
async def rig_app(rig: Rig) -> web.Application:
    app = rig.api.client.server.app
    assert app is not None
    return app


@pytest.mark.parametrize(("method", "path"), SECURED, ids=[f"{m} {p}" for m, p in SECURED])
async def test_a_token_without_the_routes_scope_gets_403(rig: Rig, method: str, path: str) -> None:
    scope = ROUTE_SCOPES[(method, path)]
    concrete = path.replace("{id}", "1").replace("{number}", "+33612345678")
    refused = await call(rig, method, concrete, WITHOUT[scope], json={})
    assert refused.status == 403, refused.text
    assert refused.body["error"]["code"] == "forbidden"
    assert repr(scope) in refused.body["error"]["message"]
    # The same request with the scope (or as admin) gets past the check.
    for token in (LEGACY_ADMIN, A_FULL if scope != "admin" else LEGACY_ADMIN):
        allowed = await call(rig, method, concrete, token, json={})
        assert allowed.status != 403, allowed.text


# -- account isolation, route by route ----------------------------------------------------


class World:
    """Account a's objects, made through the API by a's token."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.message = ""
        self.list_id = 0
        self.import_id = ""
        self.campaign = ""
        self.template = ""
        self.number = "+33612345678"

    async def build(self) -> World:
        rig = self.rig
        sent = await call(
            rig, "POST", "/v1/messages", A_SEND, {"to": "+33699999999", "from": "ACME", "text": "x"}
        )
        assert sent.status == 202, sent.text
        self.message = sent.body["id"]
        made = await call(rig, "POST", "/v1/lists", A_FULL, {"name": "a's customers"})
        assert made.status == 201, made.text
        self.list_id = made.body["id"]
        imported = await rig.api.request(
            "POST",
            f"/v1/lists/{self.list_id}/import",
            data=f"number,name\n{self.number},Ann\n".encode(),
            content_type="text/csv",
            token=A_FULL,
        )
        assert imported.status == 202, imported.text
        await rig.importer.wait()
        self.import_id = imported.body["import_id"]
        campaign = await call(
            rig,
            "POST",
            "/v1/campaigns",
            A_FULL,
            {"name": "spring", "from": "ACME", "text": "Hi {first_name}", "lists": [self.list_id]},
        )
        assert campaign.status == 201, campaign.text
        self.campaign = campaign.body["id"]
        template = await call(
            rig, "POST", "/v1/templates", A_FULL, {"name": "hello", "text": "Hi {first_name}"}
        )
        assert template.status == 201, template.text
        self.template = template.body["id"]
        return self

    def fill(self, path: str) -> str:
        if path.startswith("/v1/messages/"):
            return path.replace("{id}", self.message)
        if path.startswith(("/v1/lists/",)):
            return path.replace("{id}", str(self.list_id))
        if path.startswith("/v1/imports/"):
            return path.replace("{id}", self.import_id)
        if path.startswith("/v1/campaigns/"):
            return path.replace("{id}", self.campaign)
        if path.startswith("/v1/templates/"):
            return path.replace("{id}", self.template)
        return path.replace("{number}", self.number)


ISOLATION: dict[tuple[str, str], Any] = {
    # (method, path): the body sent, for routes that name one of a's objects: b gets 404.
    ("GET", "/v1/messages/{id}"): None,
    ("GET", "/v1/lists/{id}"): None,
    ("POST", "/v1/lists/{id}/import"): "csv",
    ("GET", "/v1/imports/{id}"): None,
    ("GET", "/v1/contacts/{number}"): None,
    ("PATCH", "/v1/contacts/{number}"): {"name": "Anne"},
    ("DELETE", "/v1/contacts/{number}"): None,
    ("DELETE", "/v1/lists/{id}"): None,
    ("GET", "/v1/campaigns/{id}"): None,
    ("PUT", "/v1/campaigns/{id}"): {"name": "mine", "from": "ACME", "text": "x", "lists": []},
    ("POST", "/v1/campaigns/{id}/start"): {},
    ("POST", "/v1/campaigns/{id}/pause"): {},
    ("POST", "/v1/campaigns/{id}/resume"): {},
    ("POST", "/v1/campaigns/{id}/cancel"): {},
    ("GET", "/v1/campaigns/{id}/stats"): None,
    ("GET", "/v1/campaigns/{id}/clicks.csv"): None,
    ("POST", "/v1/campaigns/{id}/send-to-responders"): {"text": "again"},
    ("GET", "/v1/templates/{id}"): None,
    ("PUT", "/v1/templates/{id}"): {"name": "hello", "text": "Hello {first_name}"},
    ("DELETE", "/v1/templates/{id}"): None,
    ("POST", "/v1/templates/{id}/preview"): {},
}
COLLECTIONS = {
    ("GET", "/v1/lists"),
    ("GET", "/v1/campaigns"),
    ("GET", "/v1/messages"),
    ("GET", "/v1/contacts"),
    ("GET", "/v1/opt-outs"),
    ("GET", "/v1/opt-outs/export.csv"),
    ("GET", "/v1/templates"),
}
"""Lists that show only the token's account's objects (test below)."""
CREATING = {
    # Routes that make objects: they are made under the token's account (tests below).
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/batch"),
    ("POST", "/v1/lists"),
    ("POST", "/v1/campaigns"),
    ("POST", "/v1/templates"),
    # Opt-outs are the subscriber's, for every account: adding one only stops messages.
    ("POST", "/v1/opt-outs"),
}


def test_every_route_a_non_admin_token_can_reach_has_an_isolation_case() -> None:
    reachable = {route for route, scope in ROUTE_SCOPES.items() if scope != "admin"}
    assert reachable == set(ISOLATION) | COLLECTIONS | CREATING


async def _request(rig: Rig, world: World, method: str, path: str, token: str) -> Any:
    body = ISOLATION[(method, path)]
    if body == "csv":
        return await rig.api.request(
            method,
            world.fill(path),
            data=b"number\n+33611111111\n",
            content_type="text/csv",
            token=token,
        )
    return await call(rig, method, world.fill(path), token, json=body)


@pytest.mark.parametrize(
    ("method", "path"), sorted(ISOLATION), ids=[f"{m} {p}" for m, p in sorted(ISOLATION)]
)
async def test_another_accounts_object_is_not_found(rig: Rig, method: str, path: str) -> None:
    world = await World(rig).build()
    refused = await _request(rig, world, method, path, B_FULL)
    assert refused.status == 404, refused.text
    assert refused.body["error"]["code"] == "not_found"
    for token in (A_FULL, LEGACY_ADMIN):  # its own account, and an admin, do reach it
        if method == "DELETE":  # a fresh object each: the first call deleted it
            world = await World(rig).build()
        reached = await _request(rig, world, method, path, token)
        assert reached.status != 404, reached.text


async def test_lists_campaigns_and_messages_show_only_the_accounts_own(rig: Rig) -> None:
    world = await World(rig).build()
    b_list = await call(rig, "POST", "/v1/lists", B_FULL, {"name": "b's"})
    assert b_list.status == 201
    b_sent = await call(
        rig, "POST", "/v1/messages", B_FULL, {"to": "+33688888888", "from": "ACME", "text": "b"}
    )
    assert b_sent.status == 202
    b_template = await call(rig, "POST", "/v1/templates", B_FULL, {"name": "b", "text": "b"})
    assert b_template.status == 201
    for path in ("/v1/lists", "/v1/campaigns", "/v1/messages", "/v1/templates"):
        a_items = (await call(rig, "GET", path, A_FULL)).body["items"]
        b_items = (await call(rig, "GET", path, B_FULL)).body["items"]
        every = (await call(rig, "GET", path, LEGACY_ADMIN)).body["items"]
        a_ids = {i["id"] for i in a_items}
        b_ids = {i["id"] for i in b_items}
        assert not a_ids & b_ids
        assert {i["id"] for i in every} == a_ids | b_ids
    assert world.list_id in {
        i["id"] for i in (await call(rig, "GET", "/v1/lists", A_FULL)).body["items"]
    }
    assert world.campaign not in {
        i["id"] for i in (await call(rig, "GET", "/v1/campaigns", B_FULL)).body["items"]
    }
    a_messages = (await call(rig, "GET", "/v1/messages", A_FULL)).body["items"]
    assert [m["id"] for m in a_messages] == [world.message]
    # A filter naming another account's message finds nothing, as if it did not exist.
    to_b = await call(rig, "GET", "/v1/messages?to=%2B33688888888", A_FULL)
    assert to_b.status == 200 and to_b.body["items"] == []


async def test_a_campaign_may_only_use_its_accounts_lists_and_no_tags(rig: Rig) -> None:
    world = await World(rig).build()
    body = {"name": "theft", "from": "ACME", "text": "hi", "lists": [world.list_id]}
    stolen = await call(rig, "POST", "/v1/campaigns", B_FULL, body)
    assert stolen.status == 400
    assert stolen.body["error"]["details"] == [
        {"path": "lists[0]", "message": f"no list with id {world.list_id}"}
    ]
    tagged = await call(
        rig,
        "POST",
        "/v1/campaigns",
        B_FULL,
        {"name": "t", "from": "ACME", "text": "hi", "tags": ["vip"]},
    )
    assert tagged.status == 400 and tagged.body["error"]["details"][0]["path"] == "tags"
    as_admin = await call(rig, "POST", "/v1/campaigns", LEGACY_ADMIN, {**body, "tags": ["vip"]})
    assert as_admin.status == 201, as_admin.text


async def test_messages_are_the_senders_accounts_and_campaign_messages_the_campaigns(
    rig: Rig,
) -> None:
    world = await World(rig).build()
    # a-send and a-full share account a: what one sends, the other reads.
    assert (await call(rig, "GET", f"/v1/messages/{world.message}", A_FULL)).status == 200
    # A batch is the account's too.
    batch = await call(
        rig,
        "POST",
        "/v1/messages/batch",
        B_FULL,
        {"messages": [{"to": "+33688888888", "from": "ACME", "text": "b"}]},
    )
    assert batch.status == 202, batch.text
    b_message = batch.body["messages"][0]["id"]
    assert (await call(rig, "GET", f"/v1/messages/{b_message}", B_FULL)).status == 200
    assert (await call(rig, "GET", f"/v1/messages/{b_message}", A_FULL)).status == 404
    # The campaign's messages go under its account.
    started = await call(rig, "POST", f"/v1/campaigns/{world.campaign}/start", A_FULL, {})
    assert started.status == 200, started.text
    await rig.run_to_end(world.campaign)
    rows = await rig.store._read(
        "SELECT id, account FROM messages WHERE campaign_id = ?", (world.campaign,)
    )
    assert [r[1] for r in rows] == ["a"]
    assert (await call(rig, "GET", f"/v1/messages/{rows[0][0]}", A_FULL)).status == 200
    assert (await call(rig, "GET", f"/v1/messages/{rows[0][0]}", B_FULL)).status == 404


async def test_a_message_cannot_name_another_accounts_campaign(rig: Rig) -> None:
    # Its figures and the MOs answering it are the campaign's account's.
    world = await World(rig).build()
    message = {"to": "+33655555555", "from": "ACME", "text": "x", "campaign_id": world.campaign}
    one = await call(rig, "POST", "/v1/messages", B_FULL, message)
    assert one.status == 400, one.text
    assert one.body["error"]["details"] == [
        {"path": "campaign_id", "message": "names a campaign of another account"}
    ]
    batch = await call(
        rig,
        "POST",
        "/v1/messages/batch",
        B_FULL,
        {"messages": [{**message, "campaign_id": "b-label"}, message]},
    )
    assert batch.status == 400, batch.text
    assert [d["path"] for d in batch.body["error"]["details"]] == ["messages[1].campaign_id"]
    # Its own account's campaign, a free label, or an admin token: accepted.
    for token, body in (
        (A_SEND, message),
        (B_FULL, {**message, "campaign_id": "b-label"}),
        (LEGACY_ADMIN, message),
    ):
        accepted = await call(rig, "POST", "/v1/messages", token, body)
        assert accepted.status == 202, accepted.text


async def test_idempotency_keys_are_per_account(rig: Rig) -> None:
    body = {"to": "+33677777777", "from": "ACME", "text": "once"}
    headers = {"Idempotency-Key": "order-1"}
    first = await rig.api.request("POST", "/v1/messages", json=body, token=A_SEND, headers=headers)
    again = await rig.api.request("POST", "/v1/messages", json=body, token=A_FULL, headers=headers)
    other = await rig.api.request("POST", "/v1/messages", json=body, token=B_FULL, headers=headers)
    assert first.status == again.status == other.status == 202
    assert first.body["id"] == again.body["id"]  # one account, two tokens: one message
    assert other.body["id"] != first.body["id"]


async def test_a_contact_is_seen_through_the_accounts_own_lists_only(rig: Rig) -> None:
    world = await World(rig).build()
    b_list = (await call(rig, "POST", "/v1/lists", B_FULL, {"name": "b's"})).body["id"]
    imported = await rig.api.request(
        "POST",
        f"/v1/lists/{b_list}/import",
        data=f"number\n{world.number}\n".encode(),
        content_type="text/csv",
        token=B_FULL,
    )
    assert imported.status == 202
    await rig.importer.wait()
    seen_by_b = await call(rig, "GET", f"/v1/contacts/{world.number}", B_FULL)
    assert [m["id"] for m in seen_by_b.body["lists"]] == [b_list]
    seen_by_admin = await call(rig, "GET", f"/v1/contacts/{world.number}", LEGACY_ADMIN)
    assert {m["id"] for m in seen_by_admin.body["lists"]} == {world.list_id, b_list}


# -- configuration and older databases ------------------------------------------------------


def _http(**token: Any) -> HttpConfig:
    raw = {"tokens": [{"name": "svc", "sha256": "0" * 64, **token}]}
    return load_dataclass(HttpConfig, raw)


def test_token_account_and_scopes_in_the_configuration() -> None:
    legacy = _http().tokens[0]
    assert legacy.effective_account == "svc" and legacy.effective_scopes == {"admin"}
    scoped = _http(account="shop", scopes=["send", "read"]).tokens[0]
    assert scoped.effective_account == "shop" and scoped.effective_scopes == {"send", "read"}
    with pytest.raises(ConfigError) as caught:
        _http(scopes=[])
    assert "scopes: give at least one scope" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        _http(scopes=["send", "write"], account="Bad Name")
    text = str(caught.value)
    assert "tokens[0].scopes" in text and "write" in text
    assert "tokens[0].account" in text


async def test_a_database_from_before_accounts_gets_the_columns_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        """CREATE TABLE contact_lists (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
               created_at REAL NOT NULL);
           INSERT INTO contact_lists(name, created_at) VALUES ('old list', 1.0);
           CREATE TABLE campaigns (id TEXT PRIMARY KEY, name TEXT NOT NULL, sender TEXT NOT NULL,
               text TEXT NOT NULL, spec TEXT NOT NULL, status TEXT NOT NULL,
               created_at REAL NOT NULL, start_at REAL, started_at REAL, finished_at REAL,
               recipients INTEGER NOT NULL DEFAULT 0, cursor TEXT,
               handled INTEGER NOT NULL DEFAULT 0,
               skipped_opted_out INTEGER NOT NULL DEFAULT 0,
               skipped_invalid INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
           INSERT INTO campaigns(id, name, sender, text, spec, status, created_at)
               VALUES ('c1', 'old', 'ACME', 'hi', '{}', 'draft', 1.0);"""
    )
    old.commit()
    old.close()
    store = SqliteStore(path, "normal")
    await store.open()
    try:
        campaigns = SqliteCampaignStore(store.db)
        await campaigns.open()
        (listed,) = await campaigns.contact_lists()
        assert (listed.name, listed.account) == ("old list", "")
        found = await campaigns.get_campaign("c1")
        assert found is not None and found.account == ""
        made = await campaigns.create_list("new", 2.0, "shop")
        assert (await campaigns.get_list(made.id)) == made
    finally:
        await store.close()


async def test_a_campaign_may_only_take_its_accounts_templates(rig: Rig) -> None:
    world = await World(rig).build()
    b_list = await call(rig, "POST", "/v1/lists", B_FULL, {"name": "b's"})
    body = {"name": "b", "from": "ACME", "lists": [b_list.body["id"]]}
    stolen = await call(
        rig, "POST", "/v1/campaigns", B_FULL, {**body, "template_id": world.template}
    )
    assert stolen.status == 400, stolen.text
    assert [d["path"] for d in stolen.body["error"]["details"]] == ["template_id"]
    preview = await call(
        rig,
        "POST",
        f"/v1/templates/{world.template}/preview",
        A_FULL,
        {"lists": [b_list.body["id"]]},
    )
    assert preview.status == 400, preview.text  # b's list is not a's to read
