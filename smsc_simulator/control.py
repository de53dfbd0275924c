"""The JSON control API of the simulator (aiohttp). The Simulator owns its lifecycle.

=======  ===================  ==============================================================
GET      /healthz             {"status": "ok"}
GET      /v1/stats            counters (see ``Stats.snapshot``)
POST     /v1/stats/reset      zero the counters; answers the fresh snapshot
GET      /v1/binds            the bound sessions
GET      /v1/messages         ?limit=N (default 100): the last N parts received, oldest first
GET      /v1/mo               ?limit=N (default 100): the last N MOs sent, oldest first
POST     /v1/mo               inject an MO: {"from", "to", "text", "parts"?, "shuffle"?,
                              "account"?, "concat"?: udh8|udh16|sar|payload} -> 202
                              {"parts": n, "ref": r}; 409 when no receiver is bound
GET      /v1/faults           the failure switches in force
PUT      /v1/faults           merge a partial set of switches; unknown keys -> 400
DELETE   /v1/faults           every switch off
=======  ===================  ==============================================================

Every 400 lists all the problems of the request at once: {"errors": ["field: what", ...]}.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aiohttp import web

from gateway.smpp.text import ConcatMethod
from smsc_simulator.faults import Faults, merge_faults
from smsc_simulator.mo import MAX_PARTS, MoError, NoReceiver, UnknownAccount
from smsc_simulator.moload import MoLoad, parse_load, run_load

if TYPE_CHECKING:
    from smsc_simulator.server import Simulator

SIMULATOR: web.AppKey[Simulator] = web.AppKey("simulator")

Checked = TypeVar("Checked")

DEFAULT_MESSAGES_LIMIT: Final = 100
MAX_ADDRESS_LENGTH: Final = 20
"""source_addr/destination_addr of deliver_sm: C-octet strings of up to 21 octets with the
NUL (SMPP 3.4 4.6.1)."""
_MO_KEYS: Final = frozenset({"from", "to", "text", "parts", "shuffle", "account", "concat"})


def _sim(request: web.Request) -> Simulator:
    return request.app[SIMULATOR]


def _errors(errors: list[str], status: int = 400) -> web.Response:
    return web.json_response({"errors": errors}, status=status)


async def _json_body(request: web.Request) -> tuple[Any, list[str]]:
    raw = await request.read()
    try:
        return json.loads(raw), []
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [f"body: not valid JSON ({exc})"]


async def _checked_body(
    request: web.Request, check: Callable[[Any], tuple[Checked, list[str]]]
) -> Checked | web.Response:
    """The JSON body as ``check`` takes it, or the 400 listing what is wrong with it (not
    JSON, or every error ``check`` found)."""
    body, errors = await _json_body(request)
    if errors:
        return _errors(errors)
    checked, errors = check(body)
    if errors:
        return _errors(errors)
    return checked


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(_sim(request).stats_snapshot())


async def reset_stats(request: web.Request) -> web.Response:
    sim = _sim(request)
    sim.reset_stats()
    return web.json_response(sim.stats_snapshot())


async def get_binds(request: web.Request) -> web.Response:
    return web.json_response({"binds": _sim(request).binds()})


def _limit(request: web.Request) -> int | web.Response:
    """The ``limit`` query parameter (DEFAULT_MESSAGES_LIMIT when absent), or the 400 for
    one that is not a positive integer."""
    raw = request.query.get("limit", str(DEFAULT_MESSAGES_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if limit < 1:
        return _errors([f"limit: must be a positive integer, got {raw!r}"])
    return limit


async def get_messages(request: web.Request) -> web.Response:
    limit = _limit(request)
    if isinstance(limit, web.Response):
        return limit
    return web.json_response({"messages": _sim(request).recent_messages(limit)})


async def get_mo(request: web.Request) -> web.Response:
    limit = _limit(request)
    if isinstance(limit, web.Response):
        return limit
    return web.json_response({"mo": _sim(request).recent_mo(limit)})


def _address(body: dict[str, Any], key: str, errors: list[str]) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        errors.append(f"{key}: required, a non-empty string")
        return ""
    if len(value) > MAX_ADDRESS_LENGTH or not (value.isascii() and value.isprintable()):
        errors.append(
            f"{key}: at most {MAX_ADDRESS_LENGTH} printable ASCII characters, got {value!r}"
        )
        return ""
    return value


def parse_mo(body: Any) -> tuple[dict[str, Any], list[str]]:
    """Check an MO request; returns its values and every error found."""
    if not isinstance(body, dict):
        return {}, ["body: must be a JSON object"]
    errors = [f"{key}: unknown field" for key in sorted(set(body) - _MO_KEYS)]
    values: dict[str, Any] = {
        "source": _address(body, "from", errors),
        "destination": _address(body, "to", errors),
    }
    text = body.get("text")
    if not isinstance(text, str):
        errors.append("text: required, a string")
    values["text"] = text
    parts = body.get("parts")
    if parts is not None and (
        isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= MAX_PARTS
    ):
        errors.append(f"parts: must be an integer 1..{MAX_PARTS}, got {parts!r}")
    values["parts"] = parts
    shuffle = body.get("shuffle", False)
    if not isinstance(shuffle, bool):
        errors.append(f"shuffle: must be true or false, got {shuffle!r}")
    values["shuffle"] = shuffle
    account = body.get("account")
    if account is not None and not isinstance(account, str):
        errors.append(f"account: must be a system_id string, got {account!r}")
    values["account"] = account
    concat = body.get("concat", ConcatMethod.UDH8.value)
    try:
        values["concat"] = ConcatMethod(concat)
    except ValueError:
        choices = ", ".join(m.value for m in ConcatMethod)
        errors.append(f"concat: must be one of {choices}, got {concat!r}")
    return values, errors


async def post_mo(request: web.Request) -> web.Response:
    sim = _sim(request)
    values = await _checked_body(request, parse_mo)
    if isinstance(values, web.Response):
        return values
    try:
        account = sim.account_for_mo(values["account"])
        parts, ref = sim.send_mo(
            account,
            source=values["source"],
            destination=values["destination"],
            text=values["text"],
            concat=values["concat"],
            parts=values["parts"],
            shuffle=values["shuffle"],
        )
    except UnknownAccount as exc:
        return _errors([str(exc)])
    except MoError as exc:
        return _errors([str(exc)])
    except NoReceiver as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return web.json_response({"parts": parts, "ref": ref, "account": account.system_id}, status=202)


async def post_mo_load(request: web.Request) -> web.Response:
    """Start a steady MO load (smsc_simulator.moload); 202 at once, 409 while one runs."""
    sim = _sim(request)
    values = await _checked_body(request, parse_load)
    if isinstance(values, web.Response):
        return values
    if sim.mo_load.running:
        return web.json_response({"error": "an MO load is running"}, status=409)
    try:
        account = sim.account_for_mo(values["account"])
    except UnknownAccount as exc:
        return _errors([str(exc)])
    except NoReceiver as exc:
        return web.json_response({"error": str(exc)}, status=409)
    load = MoLoad(count=values["count"], started_at=time.monotonic())

    def send(source: str) -> None:
        try:
            sim.send_mo(account, source=source, destination=values["to"], text=values["text"])
        except (MoError, NoReceiver):
            sim.stats.mo_dropped += 1

    load.task = asyncio.create_task(
        run_load(load, send, values["first_from"], values["count"], values["rate"])
    )
    sim.mo_load = load
    return web.json_response(load.to_json(), status=202)


async def get_mo_load(request: web.Request) -> web.Response:
    return web.json_response(_sim(request).mo_load.to_json())


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(_sim(request).faults.to_json())


async def put_faults(request: web.Request) -> web.Response:
    sim = _sim(request)
    faults = await _checked_body(request, lambda body: merge_faults(sim.faults, body))
    if isinstance(faults, web.Response):
        return faults
    sim.set_faults(faults)
    return web.json_response(faults.to_json())


async def delete_faults(request: web.Request) -> web.Response:
    sim = _sim(request)
    sim.set_faults(Faults())
    return web.json_response(sim.faults.to_json())


def make_app(sim: Simulator, *, max_body_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes)
    app[SIMULATOR] = sim
    router = app.router
    router.add_get("/healthz", healthz)
    router.add_get("/v1/stats", get_stats)
    router.add_post("/v1/stats/reset", reset_stats)
    router.add_get("/v1/binds", get_binds)
    router.add_get("/v1/messages", get_messages)
    router.add_get("/v1/mo", get_mo)
    router.add_post("/v1/mo", post_mo)
    router.add_post("/v1/mo/load", post_mo_load)
    router.add_get("/v1/mo/load", get_mo_load)
    router.add_get("/v1/faults", get_faults)
    router.add_put("/v1/faults", put_faults)
    router.add_delete("/v1/faults", delete_faults)
    return app
