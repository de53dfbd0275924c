"""``smsgw status | send | campaign | list`` against a small fake API on 127.0.0.1:0.

The fake records every request and answers with the agreed shapes, so these tests pin what
the client sends (paths, bodies, headers) and how it reads the answers."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.app.cli import main
from gateway.app.ops_cli import resolve, url_from_config

TOKEN = "cli-token"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApi:
    seen: list[Seen] = field(default_factory=list)
    unavailable: int = 0
    """Answer this many requests 503 (Retry-After: 0) before serving."""
    import_polls: int = 2
    url: str = ""
    store_degraded: bool = False
    """/healthz answers 503 with a store refusing work (issue 17.3)."""
    cluster: dict[str, Any] | None = None
    """/healthz's ``cluster`` (gateway.cluster), when set."""

    def campaign(self, cid: str, status: str = "draft") -> dict[str, Any]:
        return {"id": cid, "name": "spring", "status": status}

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        body: Any = raw.decode() if raw else None
        if raw and request.content_type == "application/json":
            body = json.loads(raw)
        self.seen.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        if self.unavailable > 0:
            self.unavailable -= 1
            return web.json_response(
                {"error": {"code": "draining", "message": "later", "details": []}},
                status=503,
                headers={"Retry-After": "0"},
            )
        public = request.path in ("/healthz", "/metrics")
        if not public and request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response(
                {"error": {"code": "unauthorized", "message": "bad token", "details": []}},
                status=401,
            )
        return await handler(request)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.record])
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/metrics", self.metrics)
        r.add_post("/v1/messages", self.message)
        r.add_post("/v1/messages/batch", self.batch)
        r.add_post("/v1/campaigns", self.create)
        r.add_get("/v1/campaigns", self.campaigns)
        r.add_get("/v1/campaigns/{id}", self.show)
        r.add_get("/v1/campaigns/{id}/stats", self.stats)
        r.add_post("/v1/campaigns/{id}/send-to-responders", self.responders)
        r.add_post("/v1/campaigns/{id}/{action}", self.action)
        r.add_post("/v1/lists", self.new_list)
        r.add_get("/v1/lists", self.lists)
        r.add_post("/v1/lists/{id}/import", self.start_import)
        r.add_get("/v1/imports/{id}", self.import_status)
        return app

    async def healthz(self, request: web.Request) -> web.Response:
        binds = [
            {"carrier": "sim", "bind": "sim-1", "state": "bound", "last_error": ""},
            {"carrier": "sim", "bind": "sim-2", "state": "backoff", "last_error": "connect"},
        ]
        if self.store_degraded:
            store = {"status": "degraded", "reason": "disk_low", "reasons": {"disk_low": "low"}}
            body = {"status": "degraded", "binds": binds, "store": store}
            return web.json_response(body, status=503)
        body = {"status": "degraded", "binds": binds}
        if self.cluster is not None:
            body["cluster"] = self.cluster
        return web.json_response(body)

    async def metrics(self, request: web.Request) -> web.Response:
        text = (
            "# HELP smsgw_queue_depth Parts waiting.\n# TYPE smsgw_queue_depth gauge\n"
            'smsgw_queue_depth{carrier="sim"} 42.0\n'
            "# HELP smsgw_bind_submit_rate Rate.\n# TYPE smsgw_bind_submit_rate gauge\n"
            'smsgw_bind_submit_rate{carrier="sim",bind="sim-1"} 120.5\n'
            'smsgw_bind_submit_rate{carrier="sim",bind="sim-2"} 0.0\n'
            "# HELP smsgw_submit_sm submit_sm sent.\n# TYPE smsgw_submit_sm counter\n"
            'smsgw_submit_sm_total{carrier="sim",bind="sim-1"} 1000.0\n'
        )
        return web.Response(text=text, content_type="text/plain")

    async def message(self, request: web.Request) -> web.Response:
        body = await request.json()
        answer = {"id": "m1", "status": "accepted", "parts": 1, "encoding": "gsm7"}
        return web.json_response({**answer, "to": body["to"]}, status=202)

    async def batch(self, request: web.Request) -> web.Response:
        items = (await request.json())["messages"]
        bad = [i for i, m in enumerate(items) if m.get("to") == "bad"]
        if bad:
            details = [{"path": "to", "message": "not a number", "index": i} for i in bad]
            err = {"code": "invalid_request", "message": "errors", "details": details}
            return web.json_response({"error": err}, status=400)
        n = len(self.seen)
        ids = [
            {"id": f"b{n}-{i}", "status": "accepted", "to": m["to"]} for i, m in enumerate(items)
        ]
        return web.json_response({"messages": ids}, status=202)

    async def create(self, request: web.Request) -> web.Response:
        return web.json_response(self.campaign("c1"), status=201)

    async def campaigns(self, request: web.Request) -> web.Response:
        return web.json_response({"items": [self.campaign("c1"), self.campaign("c2", "done")]})

    async def show(self, request: web.Request) -> web.Response:
        return web.json_response(self.campaign(request.match_info["id"]))

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"recipients": 10, "sent": 9, "delivered": 8, "answers_per_keyword": {"YES": 3}}
        )

    async def responders(self, request: web.Request) -> web.Response:
        return web.json_response(self.campaign("c9"), status=201)

    async def action(self, request: web.Request) -> web.Response:
        status = {"start": "running", "pause": "paused", "resume": "running"}
        cid, action = request.match_info["id"], request.match_info["action"]
        return web.json_response(self.campaign(cid, status.get(action, "cancelled")))

    async def new_list(self, request: web.Request) -> web.Response:
        name = (await request.json())["name"]
        return web.json_response({"id": "l1", "name": name, "contacts": 0}, status=201)

    async def lists(self, request: web.Request) -> web.Response:
        items = [
            {"id": 2, "name": "l2", "contacts": 5},
            {"id": 7, "name": "twice", "contacts": 1},
            {"id": 8, "name": "twice", "contacts": 0},
        ]
        return web.json_response({"items": items})

    async def start_import(self, request: web.Request) -> web.Response:
        return web.json_response({"import_id": "i1", "status": "running"}, status=202)

    async def import_status(self, request: web.Request) -> web.Response:
        self.import_polls -= 1
        done = self.import_polls <= 0
        doc = {
            "import_id": "i1",
            "list_id": "l1",
            "status": "done" if done else "running",
            "rows": 3,
            "imported": 2 if done else 1,
            "rejected": 1 if done else 0,
            "errors": [{"row": 3, "error": "bad number"}] if done else [],
        }
        return web.json_response(doc)


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


async def run(
    api: FakeApi, *argv: str, monkeypatch: pytest.MonkeyPatch, token: bool = True
) -> tuple[int, str, str]:
    """``smsgw <argv>`` in a thread (the client is synchronous), with stdout/stderr captured."""
    monkeypatch.setenv("SMSGW_URL", api.url)
    if token:
        monkeypatch.setenv("SMSGW_TOKEN", TOKEN)
    else:
        monkeypatch.delenv("SMSGW_TOKEN", raising=False)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = await asyncio.to_thread(main, list(argv))
    return code, out.getvalue(), err.getvalue()


async def test_campaign_create_sends_the_agreed_shape(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = await run(
        api,
        *("campaign", "create", "--json", "--name", "spring", "--from", "ACME"),
        *("--text", "Hi {name}", "--list", "3", "--list", "l2", "--tag", "promo"),
        *("--two-way", "--keywords", '[{"keyword": "YES"}]', "--tps", "5"),
        *("--send-window", "09:00-20:00@Europe/Paris", "--digest-to", "ops@example.net"),
        monkeypatch=monkeypatch,
    )
    assert code == 0
    assert json.loads(out) == {"id": "c1", "name": "spring", "status": "draft"}
    sent = api.seen[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/campaigns")
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.body == {
        "name": "spring",
        "from": "ACME",
        "text": "Hi {name}",
        "lists": [3, 2],  # ids are integers; a name is looked up
        "tags": ["promo"],
        "two_way": True,
        "keywords": [{"keyword": "YES"}],
        "tps": 5.0,
        "send_window": {"from": "09:00", "to": "20:00", "time_zone": "Europe/Paris"},
        "digest": {"to": ["ops@example.net"], "days": 10},
    }


async def test_campaign_create_list_names_must_be_known_and_unique(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ("campaign", "create", "--name", "s", "--from", "ACME", "--text", "t")
    code, _, err = await run(api, *base, "--list", "twice", monkeypatch=monkeypatch)
    assert code == 2 and "2 lists have this name (ids 7, 8)" in err
    code, _, err = await run(api, *base, "--list", "nope", monkeypatch=monkeypatch)
    assert code == 2 and "no list has this id or name" in err
    assert not [s for s in api.seen if s.path == "/v1/campaigns"]  # nothing was created
    code, _, _ = await run(api, *base, "--list", "7", monkeypatch=monkeypatch)
    assert code == 0 and api.seen[-1].body["lists"] == [7]


async def test_campaign_create_from_a_body_file_with_flag_overrides(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    body = tmp_path / "c.json"
    body.write_text(json.dumps({"name": "a", "from": "X", "text": "t", "lists": ["l1"]}))
    code, _, _ = await run(
        api, "campaign", "create", "--body", str(body), "--name", "b", monkeypatch=monkeypatch
    )
    assert code == 0
    assert api.seen[-1].body == {"name": "b", "from": "X", "text": "t", "lists": ["l1"]}
    code, _, err = await run(api, "campaign", "create", "--name", "x", monkeypatch=monkeypatch)
    assert code == 2 and "missing from, text, lists" in err


async def test_campaign_actions_hit_their_paths(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    for action, status in (("start", "running"), ("pause", "paused"), ("cancel", "cancelled")):
        code, out, _ = await run(api, "campaign", action, "c7", monkeypatch=monkeypatch)
        assert code == 0 and status in out
        assert (api.seen[-1].method, api.seen[-1].path) == ("POST", f"/v1/campaigns/c7/{action}")
    code, out, _ = await run(api, "campaign", "stats", "c7", "--json", monkeypatch=monkeypatch)
    assert json.loads(out)["answers_per_keyword"] == {"YES": 3}
    code, out, _ = await run(api, "campaign", "stats", "c7", monkeypatch=monkeypatch)
    assert "delivered" in out and "keyword YES" in out
    code, out, _ = await run(api, "campaign", "list", monkeypatch=monkeypatch)
    assert code == 0 and "c1" in out and "c2" in out and "done" in out
    code, out, _ = await run(
        api,
        *("campaign", "send-to-responders", "c7", "--text", "Thanks", "--keyword", "YES"),
        monkeypatch=monkeypatch,
    )
    assert code == 0 and "c9" in out
    assert api.seen[-1].path == "/v1/campaigns/c7/send-to-responders"
    assert api.seen[-1].body == {"text": "Thanks", "keyword": "YES"}
    code, _, _ = await run(
        api,
        *("campaign", "send-to-responders", "c7", "--text", "Hi", "--clicked"),
        monkeypatch=monkeypatch,
    )
    assert code == 0 and api.seen[-1].body == {"text": "Hi", "clicked": True}


async def test_send_one_message_and_errors(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = await run(
        api,
        *("send", "--to", "+33612345678", "--from", "ACME", "--text", "hi"),
        *("--priority", "5", "--idempotency-key", "k1", "--json"),
        monkeypatch=monkeypatch,
    )
    assert code == 0 and json.loads(out)["id"] == "m1"
    assert api.seen[-1].body == {"to": "+33612345678", "from": "ACME", "text": "hi", "priority": 5}
    assert api.seen[-1].headers["Idempotency-Key"] == "k1"
    code, _, err = await run(
        api, "send", "--to", "x", "--from", "y", "--text", "z", monkeypatch=monkeypatch, token=False
    )
    assert code == 2 and "SMSGW_TOKEN" in err
    monkeypatch.setenv("SMSGW_TOKEN", "wrong")
    code, _, err = await asyncio.to_thread(lambda: (main(["send", "--to", "x"]), "", ""))
    assert code == 2  # --from and --text missing: usage


async def test_send_file_in_chunks_with_progress_and_refused_lines(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = ["to,from,text,priority"] + [f"+3361234{i:04d},ACME,msg {i},3" for i in range(25)]
    rows[12] = "bad,ACME,oops,3"  # line 13 of the file: chunk 2 (items 10..19) is refused
    path = tmp_path / "m.csv"
    path.write_text("\n".join(rows) + "\n")
    code, out, err = await run(
        api,
        *("send", "--file", str(path), "--chunk", "10", "--progress", "--json"),
        monkeypatch=monkeypatch,
    )
    assert code == 1
    result = json.loads(out)
    assert (result["messages"], result["accepted"], result["refused"]) == (25, 15, 10)
    bad_line = [e for e in result["errors"] if "to: not a number" in e["errors"]]
    assert [e["line"] for e in bad_line] == [13]
    batches = [s for s in api.seen if s.path == "/v1/messages/batch"]
    assert [len(s.body["messages"]) for s in batches] == [10, 10, 5]
    assert batches[0].body["messages"][0] == {
        "to": "+33612340000",
        "from": "ACME",
        "text": "msg 0",
        "priority": 3,
    }
    keys = [s.headers["Idempotency-Key"] for s in batches]
    assert len(set(keys)) == 3
    assert "25/25" in err  # the progress bar reached the end


async def test_send_file_text_shows_the_field_errors_with_their_lines(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = ["to,from,text"] + [f"+3361234{i:04d},ACME,msg {i}" for i in range(120)]
    rows[80] = rows[95] = "bad,ACME,oops"  # lines 81 and 96, both in the first chunk of 100
    path = tmp_path / "m.csv"
    path.write_text("\n".join(rows) + "\n")
    code, out, _ = await run(
        api, "send", "--file", str(path), "--chunk", "100", monkeypatch=monkeypatch
    )
    assert code == 1
    lines = out.splitlines()
    assert lines[0].endswith("20 accepted, 100 refused")
    assert lines[1:3] == ["  line 81: to: not a number", "  line 96: to: not a number"]
    assert lines[3:] == [
        "  lines 2-101: 98 other messages not sent (a chunk is refused whole:"
        " because of the errors above in it)"
    ]
    code, out, _ = await run(
        api, "send", "--file", str(path), "--chunk", "100", "--json", monkeypatch=monkeypatch
    )
    errors = json.loads(out)["errors"]
    assert [e["line"] for e in errors if e["cause"] == "field"] == [81, 96]
    assert len(errors) == 100


async def test_send_file_retries_a_draining_gateway_with_the_same_key(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(
        "\n".join(json.dumps({"to": f"+3361234567{i}", "from": "A", "text": "t"}) for i in range(3))
    )
    api.unavailable = 2
    code, out, _ = await run(api, "send", "--file", str(path), monkeypatch=monkeypatch)
    assert code == 0 and "3 accepted, 0 refused" in out
    batches = [s for s in api.seen if s.path == "/v1/messages/batch"]
    assert len(batches) == 3 and len({s.headers["Idempotency-Key"] for s in batches}) == 1


async def test_status_reads_healthz_and_metrics(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = await run(api, "status", "--json", monkeypatch=monkeypatch, token=False)
    assert code == 0
    doc = json.loads(out)
    assert doc["status"] == "degraded"
    assert doc["queues"] == {"sim": 42}
    assert doc["submit_rate"] == 120.5
    assert [(b["bind"], b["state"], b["submitted"]) for b in doc["binds"]] == [
        ("sim-1", "bound", 1000),
        ("sim-2", "backoff", 0),
    ]
    code, out, _ = await run(api, "status", monkeypatch=monkeypatch, token=False)
    assert "sim-1" in out and "sim=42" in out and "120.5" in out


CLUSTER: dict[str, Any] = {
    "node": "n2",
    "lease_seconds": 10.0,
    "fenced": False,
    "last_renewal_age": 1.2,
    "rounds": 40,
    "failures": 0,
    "fences": 0,
    "held": ["sim/1"],
    "nodes": [
        {
            "id": "n1",
            "http": "10.0.0.1:8080",
            "front": "",
            "live": False,
            "started_at": 1.0,
            "heartbeat_age": 30.5,
            "binds": [],
        },
        {
            "id": "n2",
            "http": "10.0.0.2:8080",
            "front": "",
            "live": True,
            "started_at": 2.0,
            "heartbeat_age": 1.2,
            "binds": [
                {"carrier": "sim", "slot": 0, "held_for": 3.0, "lease_age": 1.2},
                {"carrier": "sim", "slot": 1, "held_for": 900.0, "lease_age": 1.2},
            ],
        },
    ],
}


async def test_status_shows_the_cluster_nodes_and_their_binds(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.cluster = CLUSTER
    code, out, _ = await run(api, "status", "--json", monkeypatch=monkeypatch, token=False)
    assert code == 0 and json.loads(out)["cluster"] == CLUSTER
    code, out, _ = await run(api, "status", monkeypatch=monkeypatch, token=False)
    assert "cluster: node n2, lease 10.0 s, renewed 1.2 s ago" in out
    lines = out.splitlines()
    n1 = next(line for line in lines if line.startswith("n1 "))
    n2 = next(line for line in lines if line.startswith("n2 "))
    assert n1.split()[1:] == ["no", "10.0.0.1:8080", "-"]
    assert n2.split()[1] == "yes" and "sim/0: 1.2 s, sim/1: 1.2 s" in n2
    api.cluster = {**CLUSTER, "fenced": True}
    code, out, _ = await run(api, "status", monkeypatch=monkeypatch, token=False)
    assert "FENCED" in out


async def test_status_shows_a_store_refusing_work_at_once(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.store_degraded = True
    code, out, _ = await run(api, "status", monkeypatch=monkeypatch, token=False)
    assert code == 0 and "store: disk_low: low" in out
    assert len([s for s in api.seen if s.path == "/healthz"]) == 1  # a 503 is not waited out


async def test_list_import_polls_until_done(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("number,name\n+33612345678,Ann\n+33612345679,Bob\nxx,Bad\n")
    monkeypatch.setattr("gateway.app.ops_cli.IMPORT_POLL_SECONDS", 0.01)
    code, out, _ = await run(
        api,
        *("list", "import", "l1", str(csv_path), "--opt-in-source", "web form", "--json"),
        monkeypatch=monkeypatch,
    )
    assert code == 0
    assert json.loads(out)["imported"] == 2
    upload = next(s for s in api.seen if s.path == "/v1/lists/l1/import")
    assert upload.headers["Content-Type"] == "text/csv"
    assert upload.query == {"opt_in_source": "web form"}
    assert upload.body.startswith("number,name\n")
    assert [s.path for s in api.seen].count("/v1/imports/i1") == 2


async def test_unreachable_gateway_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGW_URL", "http://127.0.0.1:9")
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr("gateway.app.ops_cli.time.sleep", lambda s: None)
    code = await asyncio.to_thread(main, ["status"])
    assert code == 2 and "cannot reach http://127.0.0.1:9" in err.getvalue()


def test_url_and_token_resolution(tmp_path: Path) -> None:
    conf = tmp_path / "g.toml"
    conf.write_text('[http]\nhost = "0.0.0.0"\nport = 9999\n')
    assert url_from_config(str(conf)) == "http://127.0.0.1:9999"
    assert url_from_config(str(tmp_path / "missing.toml")) is None
    args = argparse.Namespace(url=None, token=None, config=str(conf), timeout=5.0)
    client = resolve(args, {"SMSGW_TOKEN": "t"})
    assert (client.url, client.token) == ("http://127.0.0.1:9999", "t")
    client = resolve(args, {"SMSGW_URL": "http://h:1/"})
    assert (client.url, client.token) == ("http://h:1", None)
    args.url, args.token = "http://x:2", "flag"
    client = resolve(args, {"SMSGW_URL": "http://h:1", "SMSGW_TOKEN": "env"})
    assert (client.url, client.token) == ("http://x:2", "flag")
