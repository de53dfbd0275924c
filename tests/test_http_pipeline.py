"""The request middleware (gateway.http.pipeline): the daemon's six steps (guard, metrics,
refusal log, drain, errors, auth) in one middleware, in their order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.http.app import make_app
from gateway.http.drain import Drain
from gateway.http.request_metrics import HttpMetrics
from tests.api_fakes import NOW, TOKEN, FakeOutbound, FakeStore, make_config, router_for

MESSAGE = {"to": "+33612345678", "from": "ACME", "text": "Hello"}


@dataclass
class Served:
    client: TestClient[web.Request, web.Application]
    app: web.Application
    metrics: HttpMetrics
    drain: Drain


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    config = make_config()
    metrics = HttpMetrics()
    drain = Drain(7, lambda: {"status": "ok"})
    app = make_app(
        (),
        config=config,
        store=FakeStore([]),
        outbound=FakeOutbound([], None),
        router=router_for(config, ()),
        clock=lambda: NOW,
        http_metrics=metrics,
        drain=drain,
        log_refusals=True,
    )
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        yield Served(client, app, metrics, drain)
    finally:
        await client.close()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_step_runs_in_one_middleware(served: Served) -> None:
    assert len(served.app.middlewares) == 1


async def test_metrics_count_accepted_refused_and_unmatched(served: Served) -> None:
    c = served.client
    assert (await c.post("/v1/messages", json=MESSAGE, headers=auth())).status == 202
    assert (await c.post("/v1/messages", json=MESSAGE, headers=auth())).status == 202
    assert (await c.post("/v1/messages", json=MESSAGE)).status == 401
    assert (await c.get("/nowhere", headers=auth())).status == 404
    assert (await c.get("/healthz")).status == 200
    requests = served.metrics.requests
    assert requests[("/v1/messages", "POST", "2xx")] == 2
    assert requests[("/v1/messages", "POST", "4xx")] == 1
    assert requests[("unmatched", "GET", "4xx")] == 1
    assert requests[("/healthz", "GET", "2xx")] == 1
    assert served.metrics.latency["/v1/messages"].count == 3


async def test_refusals_are_logged_with_route_status_and_code(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    c = served.client
    with caplog.at_level(logging.INFO, logger="smsgw.api"):
        assert (await c.post("/v1/messages", json=MESSAGE, headers=auth())).status == 202
        assert (await c.post("/v1/messages", json=MESSAGE, headers=auth("nope"))).status == 401
        assert (await c.post("/v1/messages", json={"to": "x"}, headers=auth())).status == 400
    assert [(r.getMessage(), r.levelno) for r in caplog.records] == [
        ("api.unauthorized", logging.WARNING),
        ("api.rejected", logging.INFO),
    ]
    fields = [getattr(r, "smsgw_fields") for r in caplog.records]  # noqa: B009
    assert fields[0]["route"] == "/v1/messages" and fields[0]["status"] == 401
    assert fields[0]["code"] == "unauthorized"
    assert fields[1]["status"] == 400 and fields[1]["code"] == "invalid_request"


async def test_a_draining_gateway_answers_before_auth_reads_go_on(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    c = served.client
    served.drain.start()
    with caplog.at_level(logging.INFO, logger="smsgw.api"):
        # A change without a token: the drain answers first (it ran outside auth).
        answer = await c.post("/v1/messages", json=MESSAGE)
        assert answer.status == 503 and answer.headers["Retry-After"] == "7"
        assert (await answer.json())["error"]["code"] == "draining"
        health = await c.get("/healthz")
        assert health.status == 503 and (await health.json())["status"] == "draining"
        # A read goes on to auth and its handler.
        assert (await c.get("/v1/messages/nope")).status == 401
        assert (await c.get("/v1/messages/nope", headers=auth())).status == 404
    requests = served.metrics.requests
    assert requests[("/v1/messages", "POST", "5xx")] == 1
    assert requests[("/healthz", "GET", "5xx")] == 1
    assert requests[("/v1/messages/{id}", "GET", "4xx")] == 2
    events = [r.getMessage() for r in caplog.records]
    assert events == ["api.rejected", "api.rejected", "api.unauthorized", "api.rejected"]
