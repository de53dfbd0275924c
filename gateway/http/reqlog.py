"""One log line per refused HTTP request (4xx/5xx), for operators chasing a client.

``api.unauthorized`` (warning) for 401s and ``api.rejected`` (info; warning for 5xx) for the
rest, with method, route, status, error code and the peer's address. Accepted requests are
not logged one by one (the rates we serve would flood the journal; /metrics counts them).
Nothing from the request's headers or body is written: tokens and message text stay out.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.logs import log_event

log = logging.getLogger("smsgw.api")


def error_code(response: web.StreamResponse) -> str:
    """The ``error.code`` of one of our JSON error answers ("" for any other answer)."""
    body = getattr(response, "text", None) if isinstance(response, web.Response) else None
    if not body or '"code":"' not in body:
        return ""
    start = body.index('"code":"') + len('"code":"')
    end = body.find('"', start)
    return body[start:end] if 0 < end - start <= 64 else ""


def log_refusal(request: web.Request, route: str, status: int, code: str) -> None:
    """The line for a request answered ``status`` >= 400 on ``route`` (its canonical path,
    or ``unmatched``) with the error ``code`` ("" when unknown)."""
    level = logging.WARNING if status == 401 or status >= 500 else logging.INFO
    if not log.isEnabledFor(level):  # nothing formatted for a level that is off
        return
    log_event(
        log,
        "api.unauthorized" if status == 401 else "api.rejected",
        level,
        method=request.method,
        route=route,
        status=status,
        code=code,
        peer=request.remote or "",
    )
