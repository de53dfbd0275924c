"""One JSON shape for every failure the API reports, and the middleware that enforces it.

Every error answer is ``{"error": {"code": ..., "message": ..., "details": [...]}}``:

- ``code`` is stable and meant for programs (``invalid_request``, ``opted_out`` ...);
- ``message`` is one sentence for people, saying what to change;
- ``details`` lists field errors, each ``{"path": ..., "message": ...}`` plus ``index`` for
  an item of a batch. It is empty when the problem is the request as a whole.

The request middleware (gateway.http.pipeline, through :func:`error_answer`) turns our own
:class:`ApiError`, aiohttp's HTTP exceptions (404, 405, 413 from ``client_max_size`` ...)
and store failures into that shape; anything unexpected becomes a logged 500 whose answer
says nothing of the internals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiohttp import web

from gateway.core.errors import FieldError
from gateway.logs import log_event
from gateway.store.base import StoreError, StoreUnavailable

log = logging.getLogger("smsgw.api")

# Stable error codes, one per way a request fails.
INVALID_REQUEST: Final = "invalid_request"  # 400: field errors, listed in details
INVALID_JSON: Final = "invalid_json"  # 400: the body is not a JSON document we can read
UNAUTHORIZED: Final = "unauthorized"  # 401
FORBIDDEN: Final = "forbidden"  # 403: the token lacks the scope the route needs
NOT_FOUND: Final = "not_found"  # 404
METHOD_NOT_ALLOWED: Final = "method_not_allowed"  # 405
IDEMPOTENCY_CONFLICT: Final = "idempotency_conflict"  # 409: concurrent twin still unresolved
BODY_TOO_LARGE: Final = "body_too_large"  # 413
UNSUPPORTED_MEDIA_TYPE: Final = "unsupported_media_type"  # 415
OPTED_OUT: Final = "opted_out"  # 422: a destination refused messages from this sender
IDEMPOTENCY_MISMATCH: Final = "idempotency_mismatch"  # 422: same key, different body
INTERNAL_ERROR: Final = "internal_error"  # 500
STORE_UNAVAILABLE: Final = "store_unavailable"  # 503: nothing was committed; retry later
CONFLICT: Final = "conflict"  # 409: the resource is owned elsewhere (e.g. the config file)
EMAIL_FAILED: Final = "email_failed"  # 502: the mail server did not take the e-mail
EMAIL_UNAVAILABLE: Final = "email_unavailable"  # 503: no [digest] SMTP settings to send with

ERROR_CODES: Final = (
    INVALID_REQUEST,
    INVALID_JSON,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    IDEMPOTENCY_CONFLICT,
    BODY_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    OPTED_OUT,
    IDEMPOTENCY_MISMATCH,
    INTERNAL_ERROR,
    STORE_UNAVAILABLE,
    CONFLICT,
    EMAIL_FAILED,
    EMAIL_UNAVAILABLE,
)

STORE_RETRY_AFTER_SECONDS: Final = 10
"""Retry-After of a 503 while the store refuses new work (its health check runs every
second; space freed is seen within one)."""

_STATUS_CODES: Final[Mapping[int, str]] = {
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    413: BODY_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
}


class ApiError(Exception):
    """A request we refuse, with the answer that says why."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = tuple(details)
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.details, self.headers)


def dumps(value: Any) -> str:
    """Compact JSON as every answer is written; non-ASCII text stays as is (UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=dumps(value), status=status, content_type="application/json", headers=headers
    )


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": [d.as_json() for d in details]}}
    return json_response(body, status, headers)


def invalid(details: Sequence[FieldError]) -> ApiError:
    """The 400 for field errors, all of them at once."""
    count = len(details)
    noun = "error" if count == 1 else "errors"
    return ApiError(
        400, INVALID_REQUEST, f"the request has {count} field {noun}; see details", details
    )


def _from_http_exception(exc: web.HTTPException, max_body_bytes: int) -> web.Response:
    status = exc.status
    headers: dict[str, str] = {}
    if status == 413:
        message = f"the body is larger than the {max_body_bytes} bytes this gateway accepts"
    elif status == 405:
        allowed = exc.headers.get("Allow", "")
        headers["Allow"] = allowed
        message = f"this path answers only {allowed}" if allowed else "method not allowed"
    elif status == 404:
        message = "no such path"
    else:
        message = exc.reason
    code = _STATUS_CODES.get(status, exc.reason.lower().replace(" ", "_"))
    return error_response(status, code, message, headers=headers)


def error_answer(request: web.Request, exc: Exception, max_body_bytes: int) -> web.Response:
    """The JSON error answer for ``exc`` raised while handling ``request`` (the error step
    of the request middleware, gateway.http.pipeline): our :class:`ApiError`, aiohttp's
    HTTP errors (>= 400; a redirect is re-raised by the caller), store refusals and
    failures, and anything unexpected as a logged 500 that says nothing of the internals."""
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, web.HTTPException):
        return _from_http_exception(exc, max_body_bytes)
    if isinstance(exc, StoreUnavailable):
        # Refused, not failed: the store logs its state and counts refusals (no line per
        # request, which would flood while it lasts).
        return error_response(
            503,
            STORE_UNAVAILABLE,
            f"the store takes no new work for now ({exc}); nothing was accepted, retry later",
            headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, StoreError):
        log_event(
            log,
            "api.store_error",
            logging.ERROR,
            method=request.method,
            path=request.path,
            error=str(exc),
        )
        return error_response(
            503, STORE_UNAVAILABLE, "the message store failed; nothing was accepted, retry"
        )
    log.error(
        "api.internal_error method=%s path=%s",
        request.method,
        request.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return error_response(500, INTERNAL_ERROR, "internal error")
