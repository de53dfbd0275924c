"""The one middleware every HTTP request passes through.

It does, in this order (outermost first), what six middlewares each did before:

1. the connection guard (gateway.http.connguard): a request's start and end, for its
   connection's deadlines (daemon only);
2. metrics (gateway.http.request_metrics): requests by route, method and status class,
   and latency per route, whatever the outcome (a request cancelled by its client gone is
   counted as a 5xx);
3. the request log (gateway.http.reqlog): a line per refused request (4xx/5xx; none for a
   request cancelled) (daemon only);
4. draining (gateway.http.drain): the 503 while the gateway shuts down (daemon only);
5. errors (gateway.http.errors): every failure in the JSON error shape;
6. auth (gateway.http.auth): the 401 or 403 before the handler.

One coroutine frame instead of six per request, and what depends only on the route (its
name for metrics and logs, whether the console answers it, the scope it needs, its latency
histogram) worked out once per route and kept. Six stacked middlewares were the largest
single part of aiohttp's share of the gateway's CPU at one message per POST.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from aiohttp.web_urldispatcher import AbstractRoute

from gateway.config import Scope
from gateway.http.auth import Authenticator
from gateway.http.connguard import ConnectionGuard
from gateway.http.drain import Drain, drain_answer
from gateway.http.errors import error_answer
from gateway.http.reqlog import error_code, log_refusal
from gateway.http.request_metrics import HttpMetrics
from gateway.metrics import Histogram

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNMATCHED: Final = "unmatched"
"""The route name of a request no route matched (the 404 or 405), in metrics and logs."""

ROUTE_CACHE_LIMIT: Final = 4096
"""Routes whose decisions are kept (an app has a few hundred; emptied if ever full)."""


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """What the middleware decides from a request's route alone."""

    name: str
    """Its canonical path (``/v1/messages/{id}``), or ``unmatched``."""
    matched: bool
    open: bool
    """Answered without a token check: the console's own routes (it checks its session)."""
    scope: Scope | None
    """The scope a token needs for it (None: the route has no entry, refused to every
    token; gateway.http.auth.check_routes keeps that from shipping)."""
    histogram: Histogram | None


class RequestPipeline:
    """The middleware's parts; :meth:`middleware` is what the app runs."""

    def __init__(
        self,
        auth: Authenticator,
        max_body_bytes: int,
        *,
        metrics: HttpMetrics | None = None,
        guard: ConnectionGuard | None = None,
        drain: Drain | None = None,
        log_refusals: bool = False,
    ) -> None:
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.guard = guard
        self.drain = drain
        self.log_refusals = log_refusals
        self._routes: dict[AbstractRoute, RouteInfo] = {}

    def route_info(self, request: web.Request) -> RouteInfo:
        route = request.match_info.route
        info = self._routes.get(route)
        if info is not None:
            return info
        resource = route.resource
        metrics = self.metrics
        if resource is None:
            return RouteInfo(UNMATCHED, False, False, None, _histogram(metrics, UNMATCHED))
        name = resource.canonical
        is_open, scope = Authenticator.route_decision(request.method, name)
        info = RouteInfo(name, True, is_open, scope, _histogram(metrics, name))
        if route.method != hdrs.METH_ANY:  # a route of any method decides per request
            if len(self._routes) >= ROUTE_CACHE_LIMIT:
                self._routes.clear()
            self._routes[route] = info
        return info

    def middleware(self) -> Middleware:
        guard = self.guard
        metrics = self.metrics
        drain = self.drain
        auth = self.auth
        public = auth.public
        max_body = self.max_body_bytes
        log_refusals = self.log_refusals
        route_info = self.route_info
        clock = time.perf_counter

        @web.middleware
        async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
            conn = guard.request_started(request) if guard is not None else None
            started = clock()
            info = route_info(request)
            status: int | None = None  # stays None when cancelled (client gone)
            response: web.StreamResponse | None = None
            try:
                if drain is not None and drain.draining:
                    response = drain_answer(drain, request)
                if response is None:
                    try:
                        if not info.open and request.path not in public:
                            auth.check(request, info.matched, info.scope)
                        response = await handler(request)
                    except web.HTTPException as exc:
                        if exc.status < 400:  # a redirect: aiohttp sends it
                            status = exc.status
                            raise
                        response = error_answer(request, exc, max_body)
                    except Exception as exc:
                        response = error_answer(request, exc, max_body)
                status = response.status
                return response
            finally:
                if log_refusals and status is not None and status >= 400:
                    code = error_code(response) if response is not None else ""
                    log_refusal(request, info.name, status, code)
                if metrics is not None:
                    metrics.count(info.name, request.method, 500 if status is None else status)
                    if info.histogram is not None:
                        info.histogram.observe(clock() - started)
                if conn is not None:
                    guard.request_finished(conn)  # type: ignore[union-attr]

        return handle


def _histogram(metrics: HttpMetrics | None, route: str) -> Histogram | None:
    return metrics.histogram(route) if metrics is not None else None
