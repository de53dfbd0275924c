"""Contract: the HTTP callback outbox: one callback per final status of a message with a
callback_url, due order, attempts, parking and re-arming, and ids never given twice, across
restarts and crashes too."""

from __future__ import annotations

import json

import pytest

from gateway.store.base import CALLBACK_PARKED_AT
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, S, key, message, outcome, receipt, sent

pytestmark = pytest.mark.port("callbacks")

URL = "https://example.net/cb"


async def test_one_callback_per_final_status(backend: Harness) -> None:
    m = message(1, parts=2, callback_url=URL, client_ref="r1", account="acme")
    plain = message(2)
    await sent(backend.store, m, plain)
    assert await backend.store.callbacks_due(T0 + 10_000, 10) == []  # submitted: no POST
    await backend.store.record_receipts([receipt(key(m, 1)), receipt(key(plain, 1))])
    assert await backend.store.callbacks_due(T0 + 10_000, 10) == []  # one part of two
    await backend.store.record_receipts([receipt(key(m, 2))])
    await backend.store.record_receipts([receipt(key(m, 2))])  # a duplicate receipt
    [cb] = await backend.store.callbacks_due(T0 + 10_000, 10)
    body = json.loads(cb.payload)
    assert cb.url == URL and cb.attempts == 0 and cb.signer == "acme"
    assert (body["id"], body["status"], body["client_ref"]) == (m.id, "delivered", "r1")


async def test_a_final_failure_makes_a_callback_too(backend: Harness) -> None:
    m = message(1, callback_url=URL)
    await backend.store.accept([m])
    await backend.store.begin_attempts([(m.id, 1)])
    await backend.store.record_outcomes([outcome(m, 1, S.REJECTED, error="ESME_RINVDSTADR")])
    [cb] = await backend.store.callbacks_due(T0 + 10_000, 10)
    body = json.loads(cb.payload)
    assert (body["status"], body["error"]) == ("rejected", "ESME_RINVDSTADR")


async def test_callbacks_come_due_in_order_and_leave_when_done(backend: Harness) -> None:
    await backend.store.enqueue_callbacks([(URL, '{"n": 2}')], T0 + 2)
    await backend.store.enqueue_callbacks([(URL, '{"n": 1}'), (URL, '{"n": 3}')], T0 + 1)
    assert await backend.store.callbacks_due(T0, 10) == []
    due = await backend.store.callbacks_due(T0 + 5, 2)
    assert [json.loads(c.payload)["n"] for c in due] == [1, 3]
    await backend.store.callback_done(due[0].id)
    rest = await backend.store.callbacks_due(T0 + 5, 10)
    assert [json.loads(c.payload)["n"] for c in rest] == [3, 2]


async def test_callbacks_done_removes_every_id_given_in_one_call(backend: Harness) -> None:
    await backend.store.enqueue_callbacks([(URL, f'{{"n": {n}}}') for n in range(5)], T0)
    due = await backend.store.callbacks_due(T0, 10)
    assert len(due) == 5
    await backend.store.callbacks_done([])  # nothing to record: nothing changes
    gone = [due[0].id, due[2].id, due[4].id]
    # An id already gone (a batch resent after a crash) is passed over, not an error.
    await backend.store.callbacks_done([*gone, 999_999])
    rest = await backend.store.callbacks_due(T0, 10)
    assert [json.loads(c.payload)["n"] for c in rest] == [1, 3]
    await backend.store.callbacks_done(gone)  # again: still nothing else removed
    await backend.store.callbacks_done([c.id for c in rest])
    assert await backend.store.callbacks_due(T0 + 100, 10) == []
    assert await backend.store.list_callbacks(None, None, 10) == []


async def test_a_retry_counts_an_attempt_and_waits(backend: Harness) -> None:
    await backend.store.enqueue_callbacks([(URL, "{}")], T0, signer="acme")
    [cb] = await backend.store.callbacks_due(T0, 10)
    await backend.store.callback_retry(cb.id, T0 + 60, "HTTP 500")
    assert await backend.store.callbacks_due(T0 + 59, 10) == []
    [again] = await backend.store.callbacks_due(T0 + 60, 10)
    assert (again.id, again.attempts, again.signer) == (cb.id, 1, "acme")
    [view] = await backend.store.list_callbacks(None, None, 10)
    assert (view.id, view.attempts, view.last_error, view.parked) == (cb.id, 1, "HTTP 500", False)


async def test_parked_callbacks_are_listed_and_rearmed(backend: Harness) -> None:
    await backend.store.enqueue_callbacks([(URL, '{"n": 1}'), (URL, '{"n": 2}')], T0)
    first, second = await backend.store.callbacks_due(T0, 10)
    await backend.store.callback_retry(first.id, CALLBACK_PARKED_AT, "gave up")
    assert [c.id for c in await backend.store.list_callbacks(True, None, 10)] == [first.id]
    assert [c.id for c in await backend.store.list_callbacks(False, None, 10)] == [second.id]
    assert [c.id for c in await backend.store.list_callbacks(None, first.id, 10)] == [second.id]
    assert await backend.store.retry_callbacks(None, T0 + 5) == [first.id]
    assert await backend.store.retry_callbacks([second.id, 999_999], T0 + 5) == [second.id]
    due = await backend.store.callbacks_due(T0 + 5, 10)
    assert {c.id: c.attempts for c in due} == {first.id: 0, second.id: 0}


async def test_a_callback_id_is_never_given_twice(backend: Harness) -> None:
    seen: list[int] = []

    async def post_all() -> None:
        for cb in await backend.store.callbacks_due(T0 + 100, 100):
            seen.append(cb.id)
            await backend.store.callback_done(cb.id)

    await backend.store.enqueue_callbacks([(URL, "{}")] * 3, T0)
    await post_all()  # delivered and deleted: the outbox is empty
    await backend.reopen()
    await backend.store.enqueue_callbacks([(URL, "{}")], T0)
    await post_all()
    await backend.store.enqueue_callbacks([(URL, "{}")], T0)
    await backend.crash()
    await backend.store.enqueue_callbacks([(URL, "{}")], T0)
    await post_all()
    assert len(seen) == 6 and seen == sorted(set(seen)), seen


async def test_undelivered_callbacks_survive_a_crash(backend: Harness) -> None:
    await backend.store.enqueue_callbacks([(URL, '{"n": 1}')], T0)
    await backend.crash()
    [cb] = await backend.store.callbacks_due(T0, 10)
    assert json.loads(cb.payload) == {"n": 1}
