"""HTTP application: routes, middlewares and their wiring. The daemon owns its lifecycle.

Routes (all JSON; every error is ``{"error": {"code", "message", "details"}}``):

====  =======================  ======  ================================================
GET   /healthz                 public  bind and store states, ``ok`` or ``degraded``
GET   /v1/openapi.json         public  the OpenAPI 3.1 document of this API
POST  /v1/messages             token   accept one message (202)
POST  /v1/messages/batch       token   accept up to 10,000 messages at once (202)
GET   /v1/messages/{id}        token   a message's status, parts and history
GET   /v1/interactions         token   the MO log, paged (gateway.http.interactions)
GET   /v1/interactions/export.csv  token   the MO log as streamed CSV (all, new, ids)
POST  /v1/interactions/email   token   the same CSV e-mailed through the digest's SMTP settings
GET   /metrics                 public  Prometheus metrics (when a registry is given)
*     /v1/numbers...           token   inbound numbers (see gateway.http.inbound)
POST  /v1/interactions/{id}/reply token a helpdesk answer to an MO (gateway.http.inbound)
GET   /v1/interactions/{id}    token   an MO with its thread; PATCH: care_state, assignee
GET   /v1/conversations        token   a subscriber's MOs and MTs by time (?number=)
GET   /v1/callbacks            token   the callback outbox: parked / pending (http.callbacks)
POST  /v1/callbacks/{id}/retry token   re-arm one callback; ``/v1/callbacks/retry``: every parked
*     /console/...             session the web console (gateway.console.web); ``/`` leads there
====  =======================  ======  ================================================
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gateway.binds import BindState, CarrierBind
from gateway.callback_policy import CallbackPolicy
from gateway.campaigns.parts import CampaignParts
from gateway.config import GatewayConfig
from gateway.console.overview import OverviewSources
from gateway.console.web import Console
from gateway.core.intake import Intake
from gateway.core.routing import Router
from gateway.core.submit import Outbound
from gateway.http.auth import Authenticator, check_routes
from gateway.http.callbacks import CallbacksApi
from gateway.http.campaigns import CampaignsApi
from gateway.http.connguard import ConnectionGuard
from gateway.http.drain import Drain
from gateway.http.errors import dumps
from gateway.http.fastlane import FastLane
from gateway.http.inbound import InboundApi
from gateway.http.interactions import InteractionsApi
from gateway.http.messages import MessagesApi
from gateway.http.openapi import openapi_document
from gateway.http.pipeline import RequestPipeline
from gateway.http.request_metrics import HttpMetrics
from gateway.http.templates import TemplatesApi
from gateway.metrics import FunctionCollector
from gateway.reports.digest import SmtpSender
from gateway.reports.mailout import Mailer
from gateway.store.health import StoreHealth
from gateway.store.ports import Campaigns, HttpPorts

__all__ = [
    "BINDS_KEY",
    "FAST_LANE_KEY",
    "INTAKE_KEY",
    "PUBLIC_PATHS",
    "Outbound",
    "add_cluster_health",
    "add_store_health",
    "health",
    "make_app",
]

BINDS_KEY: web.AppKey[Sequence[CarrierBind]] = web.AppKey("binds", Sequence)
INTAKE_KEY: web.AppKey[Intake] = web.AppKey("intake", Intake)
FRONT_HEALTH_KEY: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("front_health")
STORE_HEALTH_KEY: web.AppKey[StoreHealth] = web.AppKey("store_health", StoreHealth)
RECEIPTS_HEALTH_KEY: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("receipts_health")
CONSOLE_KEY: web.AppKey[Console] = web.AppKey("console", Console)
CLUSTER_HEALTH_KEY: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("cluster_health")
FAST_LANE_KEY: web.AppKey[FastLane] = web.AppKey("fast_lane", FastLane)

PUBLIC_PATHS: Final = frozenset({"/healthz", "/metrics", "/v1/openapi.json"})
"""Answered without a token: probes, scrapers and API tooling have none."""


def health(binds: Sequence[CarrierBind]) -> dict[str, Any]:
    """``ok`` when every bind is bound or in ``standby`` (its slot is another node's),
    ``degraded`` otherwise (the daemon still serves)."""
    rows = [
        {
            "carrier": b.carrier,
            "bind": b.name,
            "type": b.settings.bind_type.value,
            "state": b.state.value,
            "connects": b.connects,
            "last_error": b.last_error,
        }
        for b in binds
    ]
    ok = bool(binds) and all(b.state in (BindState.BOUND, BindState.STANDBY) for b in binds)
    return {"status": "ok" if ok else "degraded", "binds": rows}


def add_cluster_health(body: dict[str, Any], cluster: dict[str, Any]) -> None:
    """``cluster`` in /healthz (gateway.cluster.SlotKeeper.health): the nodes, live or not,
    the bind slots each holds and their lease ages. A fenced node is ``degraded``."""
    body["cluster"] = cluster
    if cluster.get("fenced"):
        body["status"] = "degraded"


def add_store_health(body: dict[str, Any], store: StoreHealth) -> bool:
    """``store`` in /healthz: the database's state (gateway.store.health). A degraded store
    makes the whole ``degraded``; returns whether the store refuses new work (then /healthz
    answers 503, so a load balancer sends the work elsewhere)."""
    body["store"] = store.as_json()
    if store.reasons:
        body["status"] = "degraded"
    return not store.accepting


async def healthz(request: web.Request) -> web.Response:
    body = health(request.app[BINDS_KEY])
    front = request.app.get(FRONT_HEALTH_KEY)
    if front is not None:  # the SMPP server front's accounts and their binds
        body["front"] = front()
    receipts = request.app.get(RECEIPTS_HEALTH_KEY)
    if receipts is not None:  # receipt correlation per carrier
        body["receipts"] = receipts()
    cluster = request.app.get(CLUSTER_HEALTH_KEY)
    if cluster is not None:  # the nodes and their bind slots
        add_cluster_health(body, cluster())
    store = request.app.get(STORE_HEALTH_KEY)
    refusing = store is not None and add_store_health(body, store)
    return web.json_response(body, status=503 if refusing else 200)


def _openapi_handler() -> Callable[[web.Request], Any]:
    text = dumps(openapi_document())  # built once: it never changes while the app runs

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(text=text, content_type="application/json")

    return openapi


def _metrics_handler(registry: CollectorRegistry) -> Callable[[web.Request], Any]:
    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


def _campaign_owner(store: Campaigns) -> Callable[[str], Awaitable[str | None]]:
    async def owner(campaign_id: str) -> str | None:
        found = await store.get_campaign(campaign_id)
        return found.account if found is not None else None

    return owner


def make_app(
    binds: Sequence[CarrierBind],
    *,
    config: GatewayConfig,
    store: HttpPorts,
    outbound: Outbound,
    router: Router,
    clock: Callable[[], float] = time.time,
    http_metrics: HttpMetrics | None = None,
    registry: CollectorRegistry | None = None,
    campaigns: CampaignParts | None = None,
    front_health: Callable[[], dict[str, Any]] | None = None,
    inbound: InboundApi | None = None,
    store_health: StoreHealth | None = None,
    intake: Intake | None = None,
    receipts_health: Callable[[], dict[str, Any]] | None = None,
    requeued: Callable[[int], Awaitable[None]] | None = None,
    queue_depth: Callable[[], Mapping[str, int]] | None = None,
    guard: ConnectionGuard | None = None,
    drain: Drain | None = None,
    log_refusals: bool = False,
    cluster_health: Callable[[], dict[str, Any]] | None = None,
) -> web.Application:
    """The API over an open ``store``, the dispatcher (``outbound``) and the routing rules
    it shares with the dispatcher. ``clock`` gives epoch seconds (message times).
    ``http_metrics`` counts requests; ``registry`` is served at ``GET /metrics``. The
    daemon also gives its connection ``guard``, its ``drain`` switch and ``log_refusals``
    (a log line per 4xx/5xx): all of it runs as one middleware (gateway.http.pipeline)."""
    http = config.http
    pipeline = RequestPipeline(
        Authenticator(http, PUBLIC_PATHS),
        http.max_body_bytes,
        metrics=http_metrics,
        guard=guard,
        drain=drain,
        log_refusals=log_refusals,
    )
    app = web.Application(client_max_size=http.max_body_bytes, middlewares=[pipeline.middleware()])
    app[BINDS_KEY] = binds
    if front_health is not None:
        app[FRONT_HEALTH_KEY] = front_health
    if store_health is not None:
        app[STORE_HEALTH_KEY] = store_health
    if receipts_health is not None:
        app[RECEIPTS_HEALTH_KEY] = receipts_health
    if cluster_health is not None:
        app[CLUSTER_HEALTH_KEY] = cluster_health
    app.router.add_get("/healthz", healthz)
    if registry is not None:
        app.router.add_get("/metrics", _metrics_handler(registry), allow_head=False)
    app.router.add_get("/v1/openapi.json", _openapi_handler(), allow_head=False)
    if intake is None:  # the daemon gives the one its other paths share
        intake = Intake(
            config.messages, config.carriers, router, CallbackPolicy.from_config(config.callbacks)
        )
    app[INTAKE_KEY] = intake
    owner = _campaign_owner(campaigns.campaigns) if campaigns is not None else None
    messages = MessagesApi(store, outbound, intake, clock, owner)
    messages.add_routes(app.router)
    # The plain POSTs of a listener served with gateway.http.connguard.serve_guarded
    # skip aiohttp (gateway.http.fastlane); a test server's requests all go through it.
    app[FAST_LANE_KEY] = FastLane(
        messages,
        pipeline.auth,
        http.max_body_bytes,
        metrics=http_metrics,
        drain=drain,
        log_refusals=log_refusals,
    )
    if inbound is None:  # the daemon gives the one its MO path routes with
        inbound = InboundApi.standalone(config, store, intake, outbound, clock)
    inbound.add_routes(app.router)
    mailer = None
    if config.digest is not None:  # on-demand e-mails go out as the digest does
        mailer = Mailer(SmtpSender(config.digest.smtp), config.digest.from_address, config.node.id)
    InteractionsApi(store, clock, requeued, mailer).add_routes(app.router)
    CallbacksApi(store, clock).add_routes(app.router)
    # Lists, imports, contacts, opt-outs, campaigns (503 when not wired, as in API tests).
    CampaignsApi(campaigns).add_routes(app.router)
    TemplatesApi(campaigns).add_routes(app.router)
    # The web console (its pages ask this API for their data, with the signed-in token).
    overview = OverviewSources(
        binds,
        queue_depth,
        front_health,
        receipts_health,
        store_health,
        lambda since: store.minute_counts(since),
    )
    console = Console(http, overview, clock)
    app[CONSOLE_KEY] = console
    console.add_routes(app)
    if registry is not None:
        registry.register(FunctionCollector(console.collect))
    check_routes(
        ((r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None),
        PUBLIC_PATHS | {"/healthz"},
    )
    return app
