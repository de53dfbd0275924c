"""HTTP application: routes and their handlers. The daemon owns its lifecycle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from gateway.binds import BindState, CarrierBind

BINDS_KEY: web.AppKey[Sequence[CarrierBind]] = web.AppKey("binds", Sequence)



def health(binds: Sequence[CarrierBind]) -> dict[str, Any]:
    """``ok`` when every bind is bound, ``degraded`` otherwise (the daemon still serves)."""
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
    ok = bool(binds) and all(b.state is BindState.BOUND for b in binds)
    return {"status": "ok" if ok else "degraded", "binds": rows}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(health(request.app[BINDS_KEY]))


def make_app(binds: Sequence[CarrierBind], *, max_body_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes)
    app[BINDS_KEY] = binds
    app.router.add_get("/healthz", healthz)
    return app
