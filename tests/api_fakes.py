"""Test helpers for the HTTP API: an in-memory store, a recording dispatcher, a config, and
a client that checks every answer against the OpenAPI document.

``FakeStore`` and ``FakeOutbound`` write what happens to one shared ``events`` list, so a
test can prove the order: ``accept.start``, ``accept.done``, ``enqueue``, ``response``.

The app is served as the daemon serves it (gateway.http.connguard.serve_guarded: the
connection guard, and the fast lane in front of aiohttp for plain POSTs of messages), so
every API test runs through both: the lane's answers and aiohttp's. ``response`` is noted
when the server writes the first bytes of an answer, whichever of the two wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import re
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from gateway.binds import CarrierBind
from gateway.config import (
    CarrierConfig,
    GatewayConfig,
    HttpConfig,
    LogConfig,
    MessagesConfig,
    NodeConfig,
    StoreConfig,
    TokenConfig,
    hash_token,
)
from gateway.core.model import (
    HistoryEntry,
    IncomingReceipt,
    MessageView,
    NewMessage,
    OutboundMessage,
    PartView,
    StatusChange,
    SubmitOutcome,
)
from gateway.core.routing import Route, Router
from gateway.http.app import FAST_LANE_KEY, make_app
from gateway.http.connguard import ConnectionGuard, GuardedProtocol, GuardSettings
from gateway.http.openapi import openapi_document
from gateway.http.request_metrics import HttpMetrics
from gateway.store.base import (
    Callback,
    CallbackView,
    IdempotencyConflict,
    IdempotentAnswer,
    MessageQuery,
    MessageRow,
    StoreError,
)
from gateway.store.ports import HttpPorts
from tests.fakes import view_of

TOKEN = "tok-acme-0123456789"
OTHER_TOKEN = "tok-beta-9876543210"
NOW = 1_900_000_000.0  # 2030-03-17T17:46:40Z: fixed, so times in answers are exact


class FakeStore:
    """The intake side of the HTTP ports (gateway.store.ports.HttpPorts), in memory; the
    rest raises."""

    def __init__(self, events: list[str] | None = None) -> None:
        self.events = events if events is not None else []
        self.messages: dict[str, NewMessage] = {}
        self.answers: dict[tuple[str, str], IdempotentAnswer] = {}
        self.opt_outs: set[tuple[str, str | None]] = set()
        self.views: dict[str, MessageView] = {}
        self.accept_calls: list[list[NewMessage]] = []
        self.opted_out_calls: list[tuple[list[str], str]] = []
        self.accept_gate: asyncio.Event | None = None
        self.accepts_started: asyncio.Queue[None] = asyncio.Queue()
        self.accept_error: Exception | None = None

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def accept(
        self,
        messages: Sequence[NewMessage],
        idempotency: IdempotentAnswer | None = None,
        begun: Collection[str] = (),
        unclaimed: Collection[str] = (),
    ) -> None:
        self.events.append("accept.start")
        self.accept_calls.append(list(messages))
        self.accepts_started.put_nowait(None)
        if self.accept_gate is not None:
            await self.accept_gate.wait()
        await asyncio.sleep(0)  # a real commit yields to the loop
        if self.accept_error is not None:
            raise self.accept_error
        if idempotency is not None:
            if (idempotency.account, idempotency.key) in self.answers:
                raise IdempotencyConflict(idempotency.key)
        ids = [message.id for message in messages]
        if len(set(ids)) < len(ids) or any(i in self.messages for i in ids):
            raise StoreError("a message id is taken")  # as SQLite's primary key: nothing kept
        if idempotency is not None:
            self.answers[(idempotency.account, idempotency.key)] = idempotency
        for message in messages:
            self.messages[message.id] = message
        self.events.append("accept.done")

    async def find_idempotent(self, account: str, key: str) -> IdempotentAnswer | None:
        return self.answers.get((account, key))

    async def opted_out(self, numbers: Sequence[str], sender: str) -> set[str]:
        self.opted_out_calls.append((list(numbers), sender))
        return {n for n in numbers if (n, sender) in self.opt_outs or (n, None) in self.opt_outs}

    async def add_opt_out(self, number: str, sender: str | None, source: str, at: float) -> None:
        self.opt_outs.add((number, sender))

    async def remove_opt_out(self, number: str, sender: str | None) -> None:
        self.opt_outs.discard((number, sender))

    async def get_message(self, message_id: str) -> MessageView | None:
        if message_id in self.views:
            return self.views[message_id]
        message = self.messages.get(message_id)
        if message is None:
            return None
        parts = [
            PartView(n, "accepted", message.carrier, None, 0, None)
            for n in range(1, message.parts + 1)
        ]
        history = [HistoryEntry(message.created_at, "accepted")]
        return view_of(message, "accepted", parts, history, message.carrier)

    async def list_messages(self, query: MessageQuery) -> list[MessageRow]:
        raise NotImplementedError

    async def load_pending(
        self, after: str | None, limit: int, now: float | None = None
    ) -> list[OutboundMessage]:
        raise NotImplementedError

    async def begin_attempts(self, parts: Sequence[tuple[str, int]]) -> set[str]:
        raise NotImplementedError

    async def record_outcomes(self, outcomes: Sequence[SubmitOutcome]) -> list[StatusChange]:
        raise NotImplementedError

    async def record_receipts(self, receipts: Sequence[IncomingReceipt]) -> list[StatusChange]:
        raise NotImplementedError

    async def still_unmatched(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        raise NotImplementedError

    async def expire_unreceipted(
        self,
        carrier: str,
        validity_before: float,
        submitted_before: float,
        at: float,
        limit: int,
    ) -> list[StatusChange]:
        raise NotImplementedError

    async def enqueue_callbacks(
        self, callbacks: Sequence[tuple[str, str]], at: float, signer: str | None = None
    ) -> None:
        raise NotImplementedError

    async def callbacks_due(self, now: float, limit: int) -> list[Callback]:
        raise NotImplementedError

    async def renew_claims(self, now: float) -> int:
        raise NotImplementedError

    async def release_claims(self) -> int:
        raise NotImplementedError

    async def callback_done(self, callback_id: int) -> None:
        raise NotImplementedError

    async def callbacks_done(self, callback_ids: Sequence[int]) -> None:
        raise NotImplementedError

    async def callback_retry(self, callback_id: int, next_at: float, error: str) -> None:
        raise NotImplementedError

    async def list_callbacks(
        self, parked: bool | None, after: int | None, limit: int
    ) -> list[CallbackView]:
        raise NotImplementedError

    async def retry_callbacks(self, ids: Sequence[int] | None, at: float) -> list[int]:
        raise NotImplementedError


class FakeOutbound:
    """The dispatcher as the API sees it: records what it is given."""

    def __init__(self, events: list[str], up: set[str] | None = None) -> None:
        self.events = events
        self.up = up if up is not None else {"alpha"}
        self.enqueued: list[NewMessage] = []
        self.error: Exception | None = None

    def enqueue(self, messages: Sequence[NewMessage], begun: Collection[str] = ()) -> None:
        self.events.append("enqueue")
        if self.error is not None:
            raise self.error
        self.enqueued.extend(messages)

    def reserve(self, messages: Sequence[NewMessage]) -> set[str]:
        return set()

    def release(self, messages: Sequence[NewMessage], reserved: Collection[str]) -> None:
        pass

    def unclaimed(self, messages: Sequence[NewMessage]) -> set[str]:
        return set()

    def carriers_up(self) -> set[str]:
        return set(self.up)

    def opt_out(self, number: str, sender: str | None) -> None:
        self.events.append(f"opt_out {number} {sender}")


def carrier(name: str = "alpha", **changes: Any) -> CarrierConfig:
    settings: dict[str, Any] = {
        "name": name,
        "host": "127.0.0.1",
        "port": 2775,
        "system_id": name,
        "password": "secret",
    }
    settings.update(changes)
    return CarrierConfig(**settings)


def make_config(
    *,
    carriers: Sequence[CarrierConfig] | None = None,
    default_region: str = "",
    max_parts: int = 10,
    max_body_bytes: int = 64 * 1024,
    tokens: Sequence[TokenConfig] = (),
) -> GatewayConfig:
    """``tokens`` come after the two scope-less (admin) ones, acme and beta."""
    return GatewayConfig(
        node=NodeConfig(data_dir="/nonexistent"),
        http=HttpConfig(
            port=0,
            max_body_bytes=max_body_bytes,
            tokens=(
                TokenConfig(name="acme", sha256=hash_token(TOKEN)),
                TokenConfig(name="beta", sha256=hash_token(OTHER_TOKEN)),
                *tokens,
            ),
        ),
        log=LogConfig(),
        store=StoreConfig(),
        carriers=tuple(carriers or (carrier(),)),
        messages=MessagesConfig(default_region=default_region, max_parts=max_parts),
    )


def router_for(config: GatewayConfig, routes: Sequence[Route] = ()) -> Router:
    return Router(routes, [c.name for c in config.carriers], rng=lambda: 0.0)


# -- the OpenAPI check of every answer ------------------------------------------------------


class OpenApiChecker:
    """Validates answers against the response schemas of the OpenAPI document, when
    jsonschema is installed (it is in the test extras)."""

    def __init__(self) -> None:
        self.document = openapi_document()
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
            for path in self.document["paths"]
        ]
        self.checked = 0
        try:
            import jsonschema
        except ImportError:  # pragma: no cover - the extras install it
            self._jsonschema: Any = None
        else:
            self._jsonschema = jsonschema

    def template(self, path: str) -> str | None:
        path = path.split("?", 1)[0]  # the query string is no part of the template
        # Fixed paths first: /v1/messages/batch is not /v1/messages/{id}.
        if path in self.document["paths"]:
            return path
        for pattern, template in self._templates:
            if pattern.match(path):
                return template
        return None

    def schema_for(self, method: str, path: str, status: int) -> dict[str, Any] | None:
        """The response schema for this answer; AssertionError when the document does not
        list its status for a documented operation."""
        template = self.template(path)
        operation = None
        if template is not None:
            operation = self.document["paths"][template].get(method.lower())
        if operation is None:  # undocumented path or method: must be our error shape
            return {"$ref": "#/components/schemas/Error"}
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {template}: status {status} undocumented"
        content = responses[str(status)].get("content")
        if content is None:
            return None
        if "application/json" not in content:  # CSV, metrics text: not JSON-checked
            return None
        schema: dict[str, Any] = content["application/json"]["schema"]
        return schema

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        schema = self.schema_for(method, path, status)
        if schema is None or self._jsonschema is None:
            return
        root = {**schema, "components": self.document["components"]}
        validator = self._jsonschema.Draft202012Validator(
            root, format_checker=self._jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        validator.validate(body)
        self.checked += 1


CHECKER = OpenApiChecker()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    text: str


@dataclass
class Api:
    """A running app on 127.0.0.1, its fakes, and request helpers that check every answer."""

    client: TestClient[web.Request, web.Application]
    store: Any
    outbound: FakeOutbound
    config: GatewayConfig
    events: list[str]
    clock: list[float] = field(default_factory=lambda: [NOW])

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> Answer:
        sent: dict[str, str] = {}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if json is not None:
            data = jsonlib.dumps(json)
        if data is not None and content_type is not None:
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        async with self.client.request(method, path, data=data, headers=sent) as response:
            text = await response.text()
            got = dict(response.headers)
            body: Any = None
            if response.content_type == "application/json":
                body = jsonlib.loads(text)
            CHECKER.check(method, path, response.status, body)
            return Answer(response.status, got, body, text)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Answer:
        return await self.request("POST", path, json=json, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)


class _NotingTransport:
    """A connection's transport that notes ``response`` in ``events`` as an answer starts."""

    def __init__(self, inner: asyncio.Transport, events: list[str]) -> None:
        self._inner = inner
        self._events = events

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if bytes(data[:5]) == b"HTTP/":
            self._events.append("response")
        self._inner.write(data)

    def writelines(self, chunks: Any) -> None:
        chunks = list(chunks)
        if chunks and bytes(chunks[0][:5]) == b"HTTP/":
            self._events.append("response")
        self._inner.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GuardedTestServer(TestServer):
    """The app on 127.0.0.1, port 0, served as the daemon serves it: behind the connection
    guard, the fast lane first (``lane=False``: aiohttp alone, as a plain TestServer)."""

    def __init__(
        self,
        app: web.Application,
        events: list[str],
        *,
        lane: bool = True,
        guard: GuardSettings | None = None,
    ) -> None:
        super().__init__(app, host="127.0.0.1", port=0)
        self.events = events
        self.guard = ConnectionGuard(guard or GuardSettings())
        self.lane = app[FAST_LANE_KEY] if lane else None
        self.listener: asyncio.Server | None = None

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kw: Any) -> None:
        if self.runner:
            return
        self.runner = await self._make_runner(handler_cancellation=True)
        await self.runner.setup()
        server = self.runner.server
        assert server is not None
        guard, events, lane = self.guard, self.events, self.lane

        class Noting(GuardedProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                noting = _NotingTransport(transport, events)  # type: ignore[arg-type]
                super().connection_made(noting)  # type: ignore[arg-type]

        self.listener = await asyncio.get_running_loop().create_server(
            lambda: Noting(guard, server, lane), "127.0.0.1", 0
        )
        self.port = self.listener.sockets[0].getsockname()[1]
        self.scheme = "http"
        self._root = URL(f"http://127.0.0.1:{self.port}")

    async def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        if self.lane is not None:
            await self.lane.close(LANE_CLOSE_SECONDS)
        await super().close()


LANE_CLOSE_SECONDS = 10.0
"""A bound on the lane's answers under way when a test server closes (not a speed check)."""


@contextlib.asynccontextmanager
async def running_api(
    *,
    config: GatewayConfig | None = None,
    store: HttpPorts | None = None,
    up: set[str] | None = None,
    routes: Sequence[Route] = (),
    events: list[str] | None = None,
    setup: Callable[[web.Application], None] | None = None,
    binds: Sequence[CarrierBind] = (),
    lane: bool = True,
    http_metrics: HttpMetrics | None = None,
    guard: GuardSettings | None = None,
) -> AsyncIterator[Api]:
    events = events if events is not None else []
    config = config or make_config()
    store = store if store is not None else FakeStore(events)
    outbound = FakeOutbound(events, up)
    clock = [NOW]
    app = make_app(
        binds,
        config=config,
        store=store,
        outbound=outbound,
        router=router_for(config, routes),
        clock=lambda: clock[0],
        http_metrics=http_metrics,
    )

    if setup is not None:
        setup(app)
    client = TestClient(GuardedTestServer(app, events, lane=lane, guard=guard))
    await client.start_server()
    try:
        yield Api(client, store, outbound, config, events, clock)
    finally:
        await client.close()
