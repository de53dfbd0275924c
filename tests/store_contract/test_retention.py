"""Contract: the ``[retention]`` pruner: finished records older than their age go, in
transactions of at most ``batch`` records a kind, with what belongs to them; the rest stays."""

from __future__ import annotations

import pytest

from gateway.config import RetentionConfig
from gateway.core.model import MessageStatus
from gateway.store.base import IdempotentAnswer
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, key, message, outcome, receipt

pytestmark = pytest.mark.port("retention")

DAY = 86400.0
NOW = T0 + 10 * DAY


def config(**kw: float) -> RetentionConfig:
    ages = {"messages_days": 0.0, "idempotency_days": 0.0, "interactions_days": 0.0}
    return RetentionConfig(**{**ages, "campaigns_days": 0.0, "batch": 2, **kw})  # type: ignore[arg-type]


async def test_old_final_messages_go_with_their_rows_young_and_unfinished_stay(
    backend: Harness,
) -> None:
    store = backend.store
    old_done = [message(n, parts=2) for n in range(1, 6)]  # five: three batches of two
    old_waiting = message(10)  # submitted, no final receipt yet
    young_done = message(int(9.5 * DAY))
    await store.accept([*old_done, old_waiting, young_done])
    everything = [*old_done, old_waiting, young_done]
    await store.begin_attempts([(m.id, p) for m in everything for p in range(1, m.parts + 1)])
    await store.record_outcomes([outcome(m, p) for m in everything for p in range(1, m.parts + 1)])
    finals = [m for m in everything if m is not old_waiting]
    await store.record_receipts([receipt(key(m, p)) for m in finals for p in range(1, m.parts + 1)])
    await store.record_receipts([receipt("nobody-1", at=T0 + 5), receipt("nobody-2", at=NOW)])

    pruner = backend.pruner(config(messages_days=1), clock=lambda: NOW)
    deleted = await pruner.run_once()

    assert (deleted["messages"], deleted["receipts"]) == (5, 1)
    assert pruner.stats.deleted["messages"] == 5 and pruner.stats.rounds == 1
    for m in old_done:
        assert await store.get_message(m.id) is None
        assert await store.message_summary(m.id) is None
    view = await store.get_message(old_waiting.id)
    assert view is not None and view.status == MessageStatus.SUBMITTED.value
    view = await store.get_message(young_done.id)
    assert view is not None and view.status == "delivered" and len(view.history) > 1
    assert await store.still_unmatched([("sim", "nobody-1"), ("sim", "nobody-2")]) == {
        ("sim", "nobody-2")
    }
    # A receipt for a pruned message's key now matches nothing (its map went with it).
    await store.record_receipts([receipt(key(old_done[0], 1), at=NOW)])
    assert await store.still_unmatched([("sim", key(old_done[0], 1))]) == {
        ("sim", key(old_done[0], 1))
    }
    # Nothing left: the next round deletes nothing.
    assert not any((await pruner.run_once()).values())


async def test_idempotency_answers_have_their_own_age_and_zero_keeps_forever(
    backend: Harness,
) -> None:
    store = backend.store
    old, young = message(1), message(int(9.5 * DAY))
    await store.accept([old], IdempotentAnswer("acme", "old", "h", 202, "{}", T0 + 1))
    await store.accept([young], IdempotentAnswer("acme", "young", "h", 202, "{}", young.created_at))
    await store.begin_attempts([(old.id, 1)])
    await store.record_outcomes([outcome(old, 1, MessageStatus.REJECTED, error="x")])

    keep_all = backend.pruner(config(), clock=lambda: NOW)
    assert not keep_all.enabled
    assert not any((await keep_all.run_once()).values())
    assert await store.find_idempotent("acme", "old") is not None

    deleted = await backend.pruner(config(idempotency_days=1), clock=lambda: NOW).run_once()
    assert deleted["idempotency"] == 1 and deleted["messages"] == 0
    assert await store.find_idempotent("acme", "old") is None
    assert await store.find_idempotent("acme", "young") is not None
    assert await store.get_message(old.id) is not None  # messages_days 0: kept forever
