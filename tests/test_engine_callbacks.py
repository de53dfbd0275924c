"""The callback sender against a local aiohttp server (127.0.0.1, port 0)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gateway.engine.callbacks import PARKED_AT, CallbackSender
from gateway.store.base import Callback
from tests.fakes import LOOPBACK_RECEIVERS, FakeStore

PAYLOAD = {
    "id": "m1",
    "client_ref": "r1",
    "status": "delivered",
    "error": None,
    "carrier": "alpha",
    "at": 1.0,
}


@dataclass
class Client:
    """The client's callback endpoint: answers from ``statuses`` in turn, then 200."""

    statuses: list[int] = field(default_factory=list)
    hits: list[tuple[float, dict[str, object], str]] = field(default_factory=list)
    url: str = ""
    concurrent: int = 0
    max_concurrent: int = 0
    delay: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            body = await request.json()
            self.hits.append((time.time(), body, request.headers["X-Smsgw-Callback-Id"]))
            status = self.statuses.pop(0) if self.statuses else 200
            if status in (301, 302):
                raise web.HTTPFound("/elsewhere")
            return web.Response(status=status)
        finally:
            self.concurrent -= 1


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    c = Client()
    app = web.Application()
    app.router.add_post("/cb", c.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    c.url = f"http://127.0.0.1:{port}/cb"
    yield c
    await runner.cleanup()


async def run_sender(store: FakeStore, **kw: object) -> CallbackSender:
    values: dict[str, object] = {
        "base_delay": 0.05,
        "idle_poll": 0.02,
        "policy": LOOPBACK_RECEIVERS,
    }
    values.update(kw)
    sender = CallbackSender(store, **values)  # type: ignore[arg-type]
    await sender.start()
    return sender


async def test_delivered_on_the_first_try(client: Client) -> None:
    store = FakeStore()
    await store.enqueue_callbacks([(client.url, json.dumps(PAYLOAD))], time.time())
    sender = await run_sender(store)
    try:
        await store.wait_until(lambda: store.callbacks[1].done)
    finally:
        await sender.stop()
    assert [body for _, body, _ in client.hits] == [PAYLOAD]
    assert client.hits[0][2] == "1"
    assert sender.stats.delivered == 1


async def test_retried_after_a_500_with_backoff(client: Client) -> None:
    client.statuses = [500]
    store = FakeStore()
    await store.enqueue_callbacks([(client.url, json.dumps(PAYLOAD))], time.time())
    sender = await run_sender(store, base_delay=0.2)
    try:
        await store.wait_until(lambda: store.callbacks[1].done)
    finally:
        await sender.stop()
    cb = store.callbacks[1]
    assert len(client.hits) == 2 and cb.attempts == 2
    assert cb.last_error == "HTTP 500"
    gap = client.hits[1][0] - client.hits[0][0]
    assert 0.2 * 0.9 <= gap < 1.0  # the backoff, with jitter, then the poll


async def test_gives_up_after_max_attempts_and_parks(client: Client) -> None:
    client.statuses = [503] * 10
    store = FakeStore()
    await store.enqueue_callbacks([(client.url, json.dumps(PAYLOAD))], time.time())
    sender = await run_sender(store, base_delay=0.01, max_attempts=3)
    try:
        await store.wait_until(lambda: store.callbacks[1].next_at == PARKED_AT)
    finally:
        await sender.stop()
    cb = store.callbacks[1]
    assert len(client.hits) == 3 and not cb.done
    assert cb.last_error == "gave up after 3 attempts: HTTP 503"
    assert sender.stats.parked == 1


async def test_redirect_is_a_failure(client: Client) -> None:
    client.statuses = [302]
    store = FakeStore()
    await store.enqueue_callbacks([(client.url, json.dumps(PAYLOAD))], time.time())
    sender = await run_sender(store)
    try:
        await store.wait_until(lambda: store.callbacks[1].done)
    finally:
        await sender.stop()
    assert len(client.hits) == 2
    assert store.callbacks[1].last_error == "HTTP 302"


async def test_refused_url_is_parked_without_a_request(client: Client) -> None:
    store = FakeStore()
    await store.enqueue_callbacks([(client.url, json.dumps(PAYLOAD))], time.time())
    sender = await run_sender(store, allowed=lambda url: not url.startswith("http://127."))
    try:
        await store.wait_until(lambda: store.callbacks[1].next_at == PARKED_AT)
    finally:
        await sender.stop()
    assert client.hits == []
    assert store.callbacks[1].last_error == "callback url not allowed"


async def test_the_url_check_runs_once_per_url_and_its_verdict_holds(client: Client) -> None:
    """Every callback of a client names the same URL: ``allowed`` is asked once per URL,
    and a refused URL parks each of its callbacks all the same."""
    asked: list[str] = []
    refused = client.url.replace("/cb", "/refused")

    def allowed(url: str) -> bool:
        asked.append(url)
        return url != refused

    store = FakeStore()
    await store.enqueue_callbacks(
        [(client.url, json.dumps({**PAYLOAD, "id": f"m{n}"})) for n in range(10)]
        + [(refused, json.dumps(PAYLOAD))] * 3,
        time.time(),
    )
    sender = await run_sender(store, allowed=allowed)
    try:
        await store.wait_until(
            lambda: all(cb.done or cb.next_at == PARKED_AT for cb in store.callbacks.values())
        )
    finally:
        await sender.stop()
    assert sorted(asked) == sorted([client.url, refused])
    assert len(client.hits) == 10 and sender.stats.parked == 3


async def test_connection_refused_is_retried() -> None:
    store = FakeStore()
    await store.enqueue_callbacks([("http://127.0.0.1:9/cb", json.dumps(PAYLOAD))], time.time())
    sender = await run_sender(store, base_delay=10.0)
    try:
        await store.wait_until(lambda: store.callbacks[1].attempts == 1)
    finally:
        await sender.stop()
    cb = store.callbacks[1]
    assert not cb.done and cb.next_at > time.time() + 5
    assert cb.last_error and "Connect" in cb.last_error


async def test_concurrency_is_bounded(client: Client) -> None:
    client.delay = 0.05
    store = FakeStore()
    await store.enqueue_callbacks(
        [(client.url, json.dumps({**PAYLOAD, "id": f"m{i}"})) for i in range(20)], time.time()
    )
    sender = await run_sender(store, concurrency=4)
    try:
        await store.wait_until(lambda: all(c.done for c in store.callbacks.values()))
    finally:
        await sender.stop()
    assert len(client.hits) == 20
    assert client.max_concurrent == 4


async def test_notify_wakes_the_sender_without_waiting_for_the_poll(client: Client) -> None:
    store = FakeStore()
    sender = await run_sender(store, idle_poll=30.0)
    try:
        await asyncio.sleep(0.05)  # the sender is idle, waiting for its 30 s poll
        await store.enqueue_callbacks([(client.url, json.dumps(PAYLOAD))], time.time())
        sender.notify()
        await asyncio.wait_for(store.wait_until(lambda: store.callbacks[1].done), 2)
    finally:
        await sender.stop()


class InstantClient:
    """A receiver that answers 200 at once (no I/O): the callbacks handed out together are
    delivered in the same loop turn."""

    def __init__(self) -> None:
        self.posted: list[str] = []

    async def post(self, url: str, body: bytes, headers: list[tuple[str, str]]) -> int:
        self.posted.append(dict(headers)["X-Smsgw-Callback-Id"])
        return 200

    async def close(self) -> None:
        pass


class DoneCountingStore(FakeStore):
    """Records each store call that marks callbacks done; ``fail`` makes the batched one
    raise (a store error) as many times."""

    def __init__(self) -> None:
        super().__init__()
        self.single: list[int] = []
        self.batches: list[list[int]] = []
        self.fail = 0

    async def callback_done(self, callback_id: int) -> None:
        self.single.append(callback_id)
        await super().callback_done(callback_id)

    async def callbacks_done(self, callback_ids: Sequence[int]) -> None:
        self.batches.append(list(callback_ids))
        if self.fail:
            self.fail -= 1
            raise OSError("disk I/O error")
        await super().callbacks_done(callback_ids)


async def test_callbacks_delivered_together_are_recorded_with_one_store_call() -> None:
    store = DoneCountingStore()
    await store.enqueue_callbacks(
        [("http://127.0.0.1:9/cb", json.dumps({**PAYLOAD, "id": f"m{i}"})) for i in range(20)],
        time.time(),
    )
    receiver = InstantClient()
    sender = await run_sender(store, client_factory=lambda: receiver)
    try:
        await store.wait_until(lambda: all(c.done for c in store.callbacks.values()))
    finally:
        await sender.stop()
    assert sorted(map(int, receiver.posted)) == list(range(1, 21))
    assert store.single == []  # no write per callback
    assert store.batches == [list(range(1, 21))]  # one write for the loop turn's 20
    assert sender.stats.delivered == 20


async def test_a_batch_whose_record_failed_is_sent_again_not_lost() -> None:
    store = DoneCountingStore()
    store.fail = 1
    await store.enqueue_callbacks(
        [("http://127.0.0.1:9/cb", json.dumps({**PAYLOAD, "id": f"m{i}"})) for i in range(3)],
        time.time(),
    )
    receiver = InstantClient()
    sender = await run_sender(store, client_factory=lambda: receiver)
    try:
        await store.wait_until(lambda: all(c.done for c in store.callbacks.values()))
    finally:
        await sender.stop()
    # At least once: the batch not recorded stays due and is POSTed again (same ids, which
    # receivers deduplicate on), then recorded.
    assert sorted(map(int, receiver.posted)) == [1, 1, 2, 2, 3, 3]
    assert store.batches == [[1, 2, 3], [1, 2, 3]]
    assert sender.stats.store_errors == 1 and sender.stats.delivered == 3


async def test_stop_records_the_last_batch_before_it_returns() -> None:
    store = DoneCountingStore()
    gate, under_way = asyncio.Event(), asyncio.Event()
    recorded = FakeStore.callbacks_done

    async def slow_done(callback_ids: Sequence[int]) -> None:
        store.batches.append(list(callback_ids))
        under_way.set()
        await gate.wait()
        await recorded(store, callback_ids)

    store.callbacks_done = slow_done  # type: ignore[method-assign]
    await store.enqueue_callbacks([("http://127.0.0.1:9/cb", json.dumps(PAYLOAD))], time.time())
    sender = await run_sender(store, client_factory=InstantClient)
    await asyncio.wait_for(under_way.wait(), 10)
    assert store.batches == [[1]]
    stopping = asyncio.create_task(sender.stop())
    for _ in range(50):  # loop turns enough for stop() to get past its workers
        await asyncio.sleep(0)
    assert not stopping.done()  # waits for the batch under way
    gate.set()
    await stopping
    assert store.callbacks[1].done


class _DeadNodesOutbox:
    """An outbox whose one callback was claimed by node "gw-dead", whose claim lapsed."""

    def __init__(self) -> None:
        self.given = False
        self.parked: list[int] = []
        self.changed = asyncio.Event()

    async def callbacks_due(self, now: float, limit: int) -> list[Callback]:
        if self.given:
            return []
        self.given = True
        return [Callback(7, "https://example.net/cb", "{}", 0, now, None, "gw-dead")]

    async def callback_retry(self, callback_id: int, next_at: float, error: str) -> None:
        self.parked.append(callback_id)
        self.changed.set()

    async def callbacks_done(self, callback_ids: Sequence[int]) -> None:
        raise AssertionError("not delivered")


async def test_a_callback_taken_over_from_a_dead_node_is_counted() -> None:
    outbox = _DeadNodesOutbox()
    sender = CallbackSender(outbox, allowed=lambda url: False)  # type: ignore[arg-type]
    await sender.start()
    try:
        await asyncio.wait_for(outbox.changed.wait(), 10)
    finally:
        await sender.stop(drain=0)
    assert outbox.parked == [7]
    assert sender.stats.taken_over == 1
