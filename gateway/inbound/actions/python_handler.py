"""``handler``: a Python ``async def`` named ``package.module:function``, run on a handler
thread (:mod:`gateway.inbound.handlers`) for at most ``[inbound].handler_timeout``."""

from __future__ import annotations

import json
from typing import Any

from gateway.inbound.actions.context import ActionContext, ActionResult
from gateway.inbound.handlers import resolve_handler


async def python_handler(ctx: ActionContext) -> ActionResult:
    services, name = ctx.services, ctx.action.handler
    handler = services.handlers.get(name)
    if handler is None:
        handler = services.handlers[name] = resolve_handler(name)
    returned = await services.handler_runner.call(
        handler, ctx.message, ctx.contact, ctx.campaign, ctx.replies, ctx.inbound.handler_timeout
    )
    return {"ok": True, "handler": name, "result": _jsonable(returned)}


def _jsonable(value: object) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)[:500]
    return value
