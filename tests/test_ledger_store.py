"""The stores against the ledger: the SQLite store and the test fake, driven with the same
random journeys (tests/ledger_book.py) as a book kept by the ledger's functions alone, must
end every message where the book does (its status, error and parts) and make the same
status changes and callbacks. What catches a store whose SQL has drifted from the rules."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from gateway.core.model import IncomingReceipt, MessageStatus, StatusChange, SubmitOutcome
from gateway.store.sqlite import SqliteStore
from tests.fakes import FakeStore, new_message
from tests.ledger_book import (
    BASE_TIME,
    CALLBACK_URL,
    CARRIER,
    Book,
    Journey,
    Outcome,
    Receipt,
    Timeout,
    journeys,
    message_id,
)

_STATE_WORD = {
    MessageStatus.SUBMITTED: "ENROUTE",
    MessageStatus.DELIVERED: "DELIVRD",
    MessageStatus.UNDELIVERABLE: "UNDELIV",
    MessageStatus.EXPIRED: "EXPIRED",
    MessageStatus.REJECTED: "REJECTD",
}

Changes = dict[str, list[tuple[str, str | None, float]]]
Callbacks = dict[str, list[tuple[str, dict[str, Any]]]]


def _by_message(changes: Sequence[StatusChange]) -> Changes:
    out: Changes = {}
    for c in changes:
        out.setdefault(c.message_id, []).append((c.status.value, c.error, c.at))
    return out


def _callbacks_by_message(callbacks: Sequence[tuple[str, dict[str, Any]]]) -> Callbacks:
    out: Callbacks = {}
    for url, payload in callbacks:
        out.setdefault(str(payload["id"]), []).append((url, payload))
    return out


async def _drive(store: Any, journey: Journey) -> tuple[Any, Changes, Callbacks]:
    """Run the journey through ``store``; its end state (as ``Book.end_state``), the status
    changes its calls reported and the callbacks in its outbox, per message."""
    await store.accept(
        [
            new_message(
                id=message_id(m),
                parts=n,
                carrier=CARRIER,
                now=BASE_TIME,
                callback_url=CALLBACK_URL if journey.callbacks[m] else None,
            )
            for m, n in enumerate(journey.parts)
        ]
    )
    changes: list[StatusChange] = []
    for batch in journey.batches:
        if batch.kind is Outcome:
            outcomes = [e for e in batch.events if isinstance(e, Outcome)]
            await store.begin_attempts([(message_id(o.message), o.part) for o in outcomes])
            changes += await store.record_outcomes(
                [
                    SubmitOutcome(
                        message_id(o.message),
                        o.part,
                        CARRIER,
                        o.status,
                        batch.at,
                        carrier_message_id=o.key,
                        receipt_key=o.key,
                        command_status=0 if o.key else 11,
                        error=o.error,
                    )
                    for o in outcomes
                ]
            )
        elif batch.kind is Receipt:
            changes += await store.record_receipts(
                [
                    IncomingReceipt(
                        CARRIER,
                        r.key,
                        r.key,
                        r.status,
                        _STATE_WORD[r.status],
                        batch.at,
                        r.error,
                        f"id:{r.key} stat:{_STATE_WORD[r.status]} err:{r.error}",
                    )
                    for r in batch.events
                    if isinstance(r, Receipt)
                ]
            )
        else:
            assert batch.kind is Timeout
            changes += await store.expire_unreceipted(CARRIER, batch.at, batch.at, batch.at, 1000)
    state = {}
    for m in range(len(journey.parts)):
        view = await store.get_message(message_id(m))
        assert view is not None
        state[message_id(m)] = (
            view.status,
            view.error,
            tuple((p.status, p.error) for p in view.parts),
        )
    views = await store.list_callbacks(None, None, 10_000)
    callbacks = [(v.url, json.loads(v.payload)) for v in views]
    return state, _by_message(changes), _callbacks_by_message(callbacks)


async def _on_sqlite(journey: Journey) -> tuple[Any, Changes, Callbacks]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "ledger.db", synchronous="normal")
        await store.open()
        try:
            return await _drive(store, journey)
        finally:
            await store.close()


def _expected(journey: Journey) -> tuple[Any, Changes, Callbacks]:
    book = Book(journey).run()
    return book.end_state(), _by_message(book.changes), _callbacks_by_message(book.callbacks)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journeys())
def test_the_sqlite_store_keeps_the_ledgers_rules(journey: Journey) -> None:
    assert asyncio.run(_on_sqlite(journey)) == _expected(journey)


@settings(max_examples=300, deadline=None)
@given(journeys())
def test_the_fake_store_keeps_the_ledgers_rules(journey: Journey) -> None:
    assert asyncio.run(_drive(FakeStore(), journey)) == _expected(journey)


async def test_a_retry_and_the_answer_to_its_resend_in_one_batch_end_submitted(
    tmp_path: Path,
) -> None:
    """A link drops under a submit_sm: the part is retried at once (QUEUED) on another bind,
    whose answer (SUBMITTED) can reach the outcome writer before the retry is committed, so
    both go in one record_outcomes. The part's last outcome wins; the store used to apply
    every submitted outcome of a batch before every retry, which left the part queued (its
    message resent after a restart: a duplicate on the handset)."""
    store = SqliteStore(tmp_path / "resend.db", synchronous="normal")
    await store.open()
    try:
        one = new_message(carrier=CARRIER, now=BASE_TIME)
        await store.accept([one])
        await store.begin_attempts([(one.id, 1)])
        changes = await store.record_outcomes(
            [
                SubmitOutcome(
                    one.id, 1, CARRIER, MessageStatus.QUEUED, BASE_TIME + 1, error="link down"
                ),
                SubmitOutcome(
                    one.id, 1, CARRIER, MessageStatus.SUBMITTED, BASE_TIME + 2, "a1", "a1", 0
                ),
            ]
        )
        view = await store.get_message(one.id)
        assert view is not None
        assert (view.status, view.parts[0].status) == ("submitted", "submitted")
        assert [(c.status, c.at) for c in changes] == [(MessageStatus.SUBMITTED, BASE_TIME + 2)]
        assert await store.load_pending(None, 10) == []
    finally:
        await store.close()
