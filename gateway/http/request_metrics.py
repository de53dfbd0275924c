"""The HTTP middleware that counts requests by route, method and status class, with a latency
histogram per route; ``gateway.app.observe`` shows them at ``GET /metrics``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.metrics import Histogram

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class HttpMetrics:
    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(route, method, status class "2xx") -> count."""
    latency: dict[str, Histogram] = field(default_factory=dict)
    """route -> seconds."""

    def middleware(self) -> Middleware:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                info = request.match_info.route.resource
                route = info.canonical if info is not None else "unmatched"
                key = (route, request.method, f"{status // 100}xx")
                self.requests[key] = self.requests.get(key, 0) + 1
                hist = self.latency.get(route)
                if hist is None:
                    hist = self.latency[route] = Histogram()
                hist.observe(time.perf_counter() - started)

        return count
