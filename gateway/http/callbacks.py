"""``/v1/callbacks``: the status-callback outbox, for an operator whose receiver was down.

``GET /v1/callbacks?state=parked|pending|all&after=&limit=`` lists callbacks by id (oldest
first): ``parked`` ones (given up after every attempt, or refused by ``[callbacks]``),
``pending`` ones (waiting for their next attempt), or both (the default, ``all``). Answers
``{"items": [...], "next": cursor | null}``; pass ``next`` back as ``after``.

``POST /v1/callbacks/{id}/retry`` re-arms one callback, parked or pending: due now, with a
new round of attempts. ``POST /v1/callbacks/retry`` re-arms every parked one. The sender
takes them at its next poll (within a second). Each answers ``{"retried": [ids]}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from gateway.core.errors import FieldError
from gateway.http.errors import NOT_FOUND, ApiError, invalid, json_response
from gateway.http.query import query_int
from gateway.reports.csvfile import iso_utc
from gateway.store.base import CallbackView
from gateway.store.ports import CallbackOutbox

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
"""Callbacks per page: a page stays well under a megabyte of JSON."""
STATES: Final = {"parked": True, "pending": False, "all": None}
LIST_PARAMS: Final = frozenset({"state", "after", "limit"})


def callback_json(cb: CallbackView) -> dict[str, Any]:
    """One item of ``GET /v1/callbacks``."""
    try:
        payload: Any = json.loads(cb.payload)
    except ValueError:
        payload = cb.payload
    return {
        "id": cb.id,
        "url": cb.url,
        "state": "parked" if cb.parked else "pending",
        "attempts": cb.attempts,
        "next_at": None if cb.parked else iso_utc(cb.next_at),
        "last_error": cb.last_error,
        "created_at": iso_utc(cb.created_at),
        "payload": payload,
    }


class CallbacksApi:
    def __init__(self, store: CallbackOutbox, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/callbacks", self.list_callbacks, allow_head=False)
        router.add_post("/v1/callbacks/retry", self.retry_parked)
        router.add_post("/v1/callbacks/{id}/retry", self.retry_one)

    async def list_callbacks(self, request: web.Request) -> web.Response:
        query = request.query
        errors = [
            FieldError(
                f"query.{name}", f"unknown parameter; allowed: {', '.join(sorted(LIST_PARAMS))}"
            )
            for name in query
            if name not in LIST_PARAMS
        ]
        state = query.get("state", "all")
        if state not in STATES:
            errors.append(FieldError("query.state", "must be parked, pending or all"))
        after = query_int(query, "after", 1, None, errors)
        limit = query_int(query, "limit", 1, MAX_LIMIT, errors) or DEFAULT_LIMIT
        if errors:
            raise invalid(errors)
        items = await self.store.list_callbacks(STATES[state], after, limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return json_response(
            {
                "items": [callback_json(cb) for cb in items],
                "next": str(items[-1].id) if more else None,
            }
        )

    async def retry_one(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not raw.isdigit() or len(raw) > 18:
            raise ApiError(404, NOT_FOUND, "no callback with this id")
        retried = await self.store.retry_callbacks([int(raw)], self.clock())
        if not retried:
            raise ApiError(404, NOT_FOUND, "no callback with this id")
        return json_response({"retried": retried})

    async def retry_parked(self, request: web.Request) -> web.Response:
        retried = await self.store.retry_callbacks(None, self.clock())
        return json_response({"retried": retried})
