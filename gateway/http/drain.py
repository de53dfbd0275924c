"""Draining on SIGTERM (see ``gateway.app.lifecycle``): once the gateway drains, every
request that would change something (any method but GET/HEAD/OPTIONS under ``/v1/``) gets
``503 draining`` with ``Retry-After``; reads still work and ``/healthz`` answers 503
``{"status": "draining", ...}``. A request already past the request middleware
(gateway.http.pipeline) finishes normally."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aiohttp import web

from gateway.http.errors import error_response, json_response

DRAINING: Final = "draining"
"""Error code of the 503 answered while the gateway shuts down."""

READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class Drain:
    """The draining switch, turned on by the daemon's shutdown; the request middleware
    (gateway.http.pipeline) answers for it with :func:`drain_answer`."""

    def __init__(self, retry_after: int, health: Callable[[], dict[str, object]]) -> None:
        self.draining = False
        self.retry_after = retry_after
        self.health = health
        """The ``/healthz`` body, which the 503 while draining carries too."""

    def start(self) -> None:
        self.draining = True


def drain_answer(drain: Drain, request: web.Request) -> web.Response | None:
    """The 503 for ``request`` while ``drain`` is on (call only then), or None when the
    request goes on (a read)."""
    headers = {"Retry-After": str(drain.retry_after)}
    if request.path == "/healthz":
        body = {**drain.health(), "status": DRAINING}
        return json_response(body, 503, headers)
    if request.method not in READ_METHODS and request.path.startswith("/v1/"):
        return error_response(
            503,
            DRAINING,
            f"the gateway is shutting down; retry in {drain.retry_after} s (or on another node)",
            headers=headers,
        )
    return None
