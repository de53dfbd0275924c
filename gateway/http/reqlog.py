"""One log line per refused HTTP request (4xx/5xx), for operators chasing a client.

``api.unauthorized`` (warning) for 401s and ``api.rejected`` (info; warning for 5xx) for the
rest, with method, route, status, error code and the peer's address. Accepted requests are
not logged one by one (the rates we serve would flood the journal; /metrics counts them).
Nothing from the request's headers or body is written: tokens and message text stay out.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.logs import log_event

log = logging.getLogger("smsgw.api")


def _error_code(response: web.StreamResponse) -> str:
    body = getattr(response, "text", None) if isinstance(response, web.Response) else None
    if not body or '"code":"' not in body:
        return ""
    start = body.index('"code":"') + len('"code":"')
    end = body.find('"', start)
    return body[start:end] if 0 < end - start <= 64 else ""


def request_log_middleware() -> Middleware:
    @web.middleware
    async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
        status, code = 0, ""  # stays 0 when the request is cancelled (client gone)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            status, code = exc.status, ""
            raise
        else:
            status, code = response.status, _error_code(response)
            return response
        finally:
            if status >= 400:
                resource = request.match_info.route.resource
                route = resource.canonical if resource is not None else "unmatched"
                level = logging.WARNING if status == 401 or status >= 500 else logging.INFO
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

    return request_log
