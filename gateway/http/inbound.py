"""HTTP routes of the inbound side: inbound numbers, and helpdesk replies to an MO.

====== ================================= =====================================================
GET    /v1/numbers                       every number: {"items": [number, ...]}
PUT    /v1/numbers/{number}              create/replace an API number -> 200 the number
GET    /v1/numbers/{number}              one number (404 unknown)
DELETE /v1/numbers/{number}              remove an API number -> 204 (409 for a TOML one)
POST   /v1/interactions/{id}/reply       {"text"} -> 202 {"id", "interaction_id", ...}
====== ================================= =====================================================

A number reads ``{"number", "source": "config"|"api", "keywords": [rules], "courtesy_reply",
"help_text", ...}`` (see :func:`gateway.inbound.numbers.number_json`); a rule is the TOML
``[[inbound.numbers.rules]]`` table as JSON. A PUT body takes the same fields (``number`` and
``source`` ignored); a bad one is a 400 listing every problem (``details[].path``).

A helpdesk reply goes from the number the MO was written to, to the MO's sender, through the
normal durable path (committed before the 202). It is refused with 422 ``opted_out`` when the
sender opted out of that number. A reply sent makes the interaction's ``care_state``
``answered`` (see gateway.http.interactions).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from aiohttp import web

from gateway.callback_policy import CallbackPolicy
from gateway.config import GatewayConfig, InboundNumberConfig
from gateway.config.loader import ConfigError
from gateway.core.errors import FieldError
from gateway.core.intake import Intake
from gateway.core.submit import Outbound
from gateway.http.body import parse_json, read_body
from gateway.http.errors import CONFLICT, NOT_FOUND, OPTED_OUT, ApiError, invalid, json_response
from gateway.inbound.numbers import InboundNumber, NumberBook, number_json, parse_number
from gateway.inbound.replies import NOT_SENT_OPTED_OUT, Outbox
from gateway.logs import log_event
from gateway.store.base import StoreError
from gateway.store.ports import InboundNumbers, Interactions, Submits

log = logging.getLogger("smsgw.api")


def number_answer(entry: InboundNumber) -> dict[str, Any]:
    return {"number": entry.number, "source": entry.source, **number_json(entry.config)}


def _field_errors(errors: list[str]) -> list[FieldError]:
    out = []
    for error in errors:
        path, sep, message = error.partition(": ")
        out.append(FieldError(path, message) if sep else FieldError("", error))
    return out


class InboundApiPorts(Interactions, InboundNumbers, Submits, Protocol):
    """What the routes keep: interactions (care), numbers, and the helpdesk replies."""


class InboundApi:
    """The routes above, over the NumberBook the MO path routes with."""

    def __init__(
        self, config: GatewayConfig, store: InboundApiPorts, book: NumberBook, outbox: Outbox
    ):
        self.config = config
        self.store = store
        self.book = book
        self.outbox = outbox

    @classmethod
    def standalone(
        cls,
        config: GatewayConfig,
        store: InboundApiPorts,
        intake: Intake,
        outbound: Outbound,
        clock: Any,
    ) -> InboundApi:
        """For an app built without the daemon's inbound service (tests of other routes)."""
        book = NumberBook(config.inbound)
        return cls(config, store, book, Outbox(store, intake, outbound, clock))

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/numbers", self.list_numbers, allow_head=False)
        router.add_get("/v1/numbers/{number}", self.get_number, allow_head=False)
        router.add_put("/v1/numbers/{number}", self.put_number)
        router.add_delete("/v1/numbers/{number}", self.delete_number)
        router.add_post("/v1/interactions/{id}/reply", self.post_reply)

    async def _book(self) -> NumberBook:
        await self.book.load(self.store)
        return self.book

    async def list_numbers(self, request: web.Request) -> web.Response:
        book = await self._book()
        return json_response({"items": [number_answer(e) for e in book.all()]})

    async def _find(self, request: web.Request) -> InboundNumber:
        number = request.match_info["number"]
        entry = (await self._book()).find(number)
        if entry is None:
            raise ApiError(404, NOT_FOUND, f"{number} is not one of our inbound numbers")
        return entry

    async def get_number(self, request: web.Request) -> web.Response:
        return json_response(number_answer(await self._find(request)))

    async def put_number(self, request: web.Request) -> web.Response:
        number = request.match_info["number"]
        body = parse_json(await read_body(request))
        book = await self._book()
        existing = book.find(number)
        if existing is not None and existing.source == "config":
            raise ApiError(
                409, CONFLICT, f"{number} is configured in the configuration file; change it there"
            )
        try:
            config = parse_number(number, body, self.config.inbound)
        except ConfigError as exc:
            raise invalid(_field_errors(exc.errors)) from None
        refused = self._webhooks_refused(config)
        if refused:
            raise invalid(refused)
        try:
            entry = await book.put(self.store, config)
        except ValueError as exc:
            raise ApiError(409, CONFLICT, str(exc)) from None
        return json_response(number_answer(entry), status=200)

    def _webhooks_refused(self, config: InboundNumberConfig) -> list[FieldError]:
        """Webhooks go through the callback outbox: [callbacks] applies (as at load)."""
        policy = CallbackPolicy.from_config(self.config.callbacks)
        errors = []
        for r, rule in enumerate(config.rules):
            for a, action in enumerate(rule.actions):
                if action.type == "webhook" and action.url:
                    refusal = policy.url_refusal(action.url)
                    if refusal is not None:
                        path = f"keywords[{r}].actions[{a}].url"
                        errors.append(FieldError(path, f"{refusal} ([callbacks] applies)"))
        return errors

    async def delete_number(self, request: web.Request) -> web.Response:
        entry = await self._find(request)
        if entry.source == "config":
            raise ApiError(
                409,
                CONFLICT,
                f"{entry.number} is configured in the configuration file; remove it there",
            )
        await self.book.delete(self.store, entry.number)
        return web.Response(status=204)

    async def post_reply(self, request: web.Request) -> web.Response:
        raw_id = request.match_info["id"]
        body = parse_json(await read_body(request))
        if not isinstance(body, dict):
            raise invalid([FieldError("", "must be a JSON object")])
        text = body.get("text")
        errors = [FieldError(k, "unknown field") for k in body if k != "text"]
        if not isinstance(text, str) or not text:
            errors.append(FieldError("text", "required, a non-empty string"))
        if errors:
            raise invalid(errors)
        assert isinstance(text, str)
        interaction = None
        if raw_id.isdigit() and len(raw_id) < 19:
            interaction = await self.store.get_interaction(int(raw_id))
        if interaction is None:
            raise ApiError(404, NOT_FOUND, f"no interaction {raw_id}")
        entry = (await self._book()).find(interaction.destination)
        sender = entry.sender if entry is not None else interaction.destination
        result = await self.outbox.send(
            to=interaction.source,
            sender=sender,
            text=text,
            client_ref=f"mo-{interaction.id}-reply",
        )
        if result.reason == NOT_SENT_OPTED_OUT:
            raise ApiError(
                422,
                OPTED_OUT,
                f"{interaction.source} has opted out of messages from {sender}",
                [FieldError("to", "has opted out of messages from this sender")],
            )
        if result.message_id is None:
            raise invalid([FieldError("text", result.reason or "cannot be sent")])
        # Customer care: answered, whatever it was (a reply to a closed one reopens it).
        # The reply is committed already: a failure here must not answer an error that
        # makes the helpdesk send it twice.
        try:
            await self.store.set_interaction_care(interaction.id, care_state="answered")
        except StoreError as exc:
            log_event(
                log,
                "api.care_state_not_saved",
                logging.ERROR,
                interaction=interaction.id,
                message_id=result.message_id,
                error=str(exc),
            )
        return json_response(
            {
                "id": result.message_id,
                "interaction_id": interaction.id,
                "to": interaction.source,
                "from": sender,
                "status": "accepted",
            },
            status=202,
        )
