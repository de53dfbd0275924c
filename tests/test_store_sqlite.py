"""The SQLite store: durability, group commit, the receipt map, aggregation, restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.model import (
    IncomingReceipt,
    MessageStatus,
    NewMessage,
    SubmitOutcome,
    new_message_id,
)
from gateway.store.base import IdempotencyConflict, IdempotentAnswer
from gateway.store.sqlite import SqliteStore
from tests.store_helpers import held_receipts, status_counts

S = MessageStatus


def msg(parts: int = 1, callback: str | None = None, **kw: object) -> NewMessage:
    values: dict[str, object] = {
        "id": new_message_id(),
        "to": "+33612345678",
        "sender": "ACME",
        "text": "hello",
        "encoding": "gsm7",
        "parts": parts,
        "carrier": "sim",
        "created_at": 1000.0,
        "callback_url": callback,
        "client_ref": "ref-1",
    }
    values.update(kw)
    return NewMessage(**values)  # type: ignore[arg-type]


def submitted(m: NewMessage, part: int, key: str, at: float = 1001.0) -> SubmitOutcome:
    return SubmitOutcome(
        message_id=m.id,
        part=part,
        carrier="sim",
        status=S.SUBMITTED,
        at=at,
        carrier_message_id=key.upper(),
        receipt_key=key,
        command_status=0,
    )


def receipt(key: str, status: MessageStatus = S.DELIVERED, at: float = 1002.0) -> IncomingReceipt:
    return IncomingReceipt(
        carrier="sim",
        receipt_key=key,
        carrier_message_id=key,
        status=status,
        state="DELIVRD" if status is S.DELIVERED else "UNDELIV",
        received_at=at,
        raw=f"id:{key} stat:DELIVRD",
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "db" / "smsgw.db", synchronous="normal")
    await s.open()
    yield s
    await s.close()


async def test_accepted_message_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    s = SqliteStore(path)
    await s.open()
    m = msg(parts=2)
    await s.accept([m])
    await s.close()
    again = SqliteStore(path)
    await again.open()
    try:
        view = await again.get_message(m.id)
        assert view is not None and view.status == "accepted"
        assert [p.part for p in view.parts] == [1, 2]
        pending = await again.load_pending(None, 10)
        assert [(p.id, p.pending_parts) for p in pending] == [(m.id, (1, 2))]
    finally:
        await again.close()


async def test_concurrent_writes_share_commits(store: SqliteStore) -> None:
    messages = [msg() for _ in range(300)]
    await asyncio.gather(*(store.accept([m]) for m in messages))
    assert store.ops_committed == 300
    assert store.commits < 300, "every write committed alone: no group commit"
    assert (await status_counts(store)) == {"accepted": 300}


async def test_idempotency_conflict_commits_nothing_and_spares_the_batch(
    store: SqliteStore,
) -> None:
    answer = IdempotentAnswer("dev", "k1", "h", 202, '{"id": "x"}', 1.0)
    first = msg()
    await store.accept([first], answer)
    loser, bystander = msg(), msg()
    results = await asyncio.gather(
        store.accept([loser], answer), store.accept([bystander]), return_exceptions=True
    )
    assert isinstance(results[0], IdempotencyConflict)
    assert results[1] is None
    assert await store.get_message(loser.id) is None
    assert await store.get_message(bystander.id) is not None
    stored = await store.find_idempotent("dev", "k1")
    assert stored is not None and stored.body == '{"id": "x"}'


async def test_submit_then_receipt_delivers_and_queues_a_callback(store: SqliteStore) -> None:
    m = msg(callback="http://127.0.0.1:9/cb")
    await store.accept([m])
    await store.begin_attempts([(m.id, 1)])
    changes = await store.record_outcomes([submitted(m, 1, "a1")])
    assert [(c.message_id, c.status) for c in changes] == [(m.id, S.SUBMITTED)]
    assert await store.callbacks_due(2000.0, 10) == []  # not final: no callback yet
    changes = await store.record_receipts([receipt("a1")])
    assert [(c.message_id, c.status) for c in changes] == [(m.id, S.DELIVERED)]
    view = await store.get_message(m.id)
    assert view is not None and view.status == "delivered"
    assert [h.status for h in view.history] == ["accepted", "submitted", "delivered"]
    callbacks = await store.callbacks_due(2000.0, 10)
    assert len(callbacks) == 1
    payload = json.loads(callbacks[0].payload)
    assert payload["id"] == m.id and payload["status"] == "delivered"
    assert payload["client_ref"] == "ref-1" and payload["carrier"] == "sim"
    await store.callback_retry(callbacks[0].id, 5000.0, "HTTP 500")
    assert await store.callbacks_due(2000.0, 10) == []
    assert len(await store.callbacks_due(5000.0, 10)) == 1
    await store.callback_done(callbacks[0].id)
    assert await store.callbacks_due(9999.0, 10) == []


async def test_receipt_before_response_is_held_then_matched(store: SqliteStore) -> None:
    m = msg()
    await store.accept([m])
    await store.begin_attempts([(m.id, 1)])
    assert await store.record_receipts([receipt("early")]) == []
    held = await held_receipts(store)
    assert [(carrier, key) for carrier, key, _ in held] == [("sim", "early")]
    changes = await store.record_outcomes([submitted(m, 1, "early")])
    assert changes[-1].status is S.DELIVERED
    assert await held_receipts(store) == []
    view = await store.get_message(m.id)
    assert view is not None and view.status == "delivered"


async def test_receipt_keys_are_per_carrier(store: SqliteStore) -> None:
    m = msg()
    await store.accept([m])
    await store.record_outcomes([submitted(m, 1, "same")])
    other = IncomingReceipt("other", "same", "same", S.DELIVERED, "DELIVRD", 1003.0)
    assert await store.record_receipts([other]) == []
    view = await store.get_message(m.id)
    assert view is not None and view.status == "submitted"


async def test_message_status_is_the_aggregate_of_its_parts(store: SqliteStore) -> None:
    m = msg(parts=3)
    await store.accept([m])
    await store.record_outcomes([submitted(m, n, f"p{n}") for n in (1, 2)])
    view = await store.get_message(m.id)
    assert view is not None and view.status == "accepted"  # part 3 not yet sent
    await store.record_outcomes([submitted(m, 3, "p3")])
    await store.record_receipts([receipt("p1"), receipt("p2")])
    view = await store.get_message(m.id)
    assert view is not None and view.status == "submitted"
    await store.record_receipts([receipt("p3", S.UNDELIVERABLE)])
    view = await store.get_message(m.id)
    assert view is not None and view.status == "undeliverable"
    assert [p.status for p in view.parts] == ["delivered", "delivered", "undeliverable"]


async def test_final_part_state_sticks(store: SqliteStore) -> None:
    m = msg()
    await store.accept([m])
    await store.record_outcomes([submitted(m, 1, "k")])
    await store.record_receipts([receipt("k")])
    await store.record_receipts([receipt("k", S.UNDELIVERABLE, at=1010.0)])
    view = await store.get_message(m.id)
    assert view is not None and view.status == "delivered"
    assert len([h for h in view.history if "receipt" in h.detail]) == 2  # both kept


async def test_parts_in_flight_at_a_crash_come_back_as_possible_duplicates(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gw.db"
    s = SqliteStore(path)
    await s.open()
    sent, in_flight, untouched = msg(), msg(parts=2), msg()
    await s.accept([sent, in_flight, untouched])
    await s.begin_attempts([(sent.id, 1), (in_flight.id, 1), (in_flight.id, 2)])
    await s.record_outcomes([submitted(sent, 1, "s1"), submitted(in_flight, 1, "f1")])
    await s.close()  # as if killed: part 2 of in_flight never got an outcome
    again = SqliteStore(path)
    await again.open()
    try:
        pending = {p.id: p for p in await again.load_pending(None, 100)}
        assert set(pending) == {in_flight.id, untouched.id}
        assert pending[in_flight.id].pending_parts == (2,)
        assert pending[in_flight.id].possible_duplicate
        assert pending[in_flight.id].attempts == 1
        assert not pending[untouched.id].possible_duplicate
    finally:
        await again.close()


async def test_retry_outcome_requeues_with_its_time(store: SqliteStore) -> None:
    m = msg()
    await store.accept([m])
    await store.begin_attempts([(m.id, 1)])
    outcome = SubmitOutcome(
        m.id,
        1,
        "sim",
        S.QUEUED,
        1001.0,
        command_status=0x58,
        error="ESME_RTHROTTLED",
        retry_at=1005.0,
    )
    changes = await store.record_outcomes([outcome])
    assert [c.status for c in changes] == [S.QUEUED]
    [pending] = await store.load_pending(None, 10)
    assert pending.scheduled_at == 1005.0 and not pending.possible_duplicate
    view = await store.get_message(m.id)
    assert view is not None and view.history[-1].detail["error"] == "ESME_RTHROTTLED"


async def test_permanent_reject_is_final_with_its_error(store: SqliteStore) -> None:
    m = msg(callback="http://127.0.0.1:9/cb")
    await store.accept([m])
    outcome = SubmitOutcome(
        m.id, 1, "sim", S.REJECTED, 1001.0, command_status=0x0B, error="ESME_RINVDSTADR"
    )
    [change] = await store.record_outcomes([outcome])
    assert change.status is S.REJECTED and change.error == "ESME_RINVDSTADR"
    assert await store.load_pending(None, 10) == []
    assert len(await store.callbacks_due(9999.0, 10)) == 1


async def test_load_pending_pages_by_cursor(store: SqliteStore) -> None:
    messages = [msg(created_at=1000.0 + i) for i in range(25)]
    await store.accept(messages)
    seen: list[str] = []
    cursor: str | None = None
    while page := await store.load_pending(cursor, 10):
        seen.extend(p.id for p in page)
        cursor = page[-1].id
    assert seen == sorted(m.id for m in messages)


async def test_opt_outs_per_sender_and_global(store: SqliteStore) -> None:
    await store.add_opt_out("+331", "ACME", "STOP", 1.0)
    await store.add_opt_out("+332", None, "STOPALL", 1.0)
    assert await store.opted_out(["+331", "+332", "+333"], "ACME") == {"+331", "+332"}
    assert await store.opted_out(["+331", "+332"], "OTHER") == {"+332"}
    await store.remove_opt_out("+331", "ACME")
    assert await store.opted_out(["+331"], "ACME") == set()


async def test_outcomes_and_the_next_begins_are_one_commit(store: SqliteStore) -> None:
    """record_outcomes_and_begin (issue 19): the answered part leaves 'submitting' and the
    next parts enter it in the same transaction; opt-outs refuse as begin_attempts does."""
    answered, nxt, opted = msg(to="+33600000011"), msg(to="+33600000012"), msg(to="+33600000013")
    await store.accept([answered, nxt, opted])
    await store.begin_attempts([(answered.id, 1)])
    await store.add_opt_out("+33600000013", "ACME", "mo", 1200.0)
    commits = store.commits
    changes, refused = await store.record_outcomes_and_begin(
        [submitted(answered, 1, "a1")], [(nxt.id, 1), (opted.id, 1)]
    )
    assert refused == {opted.id}
    assert [c.message_id for c in changes] == [answered.id]
    rows = await store._read("SELECT message_id, status, attempts FROM parts")
    by_id = {r[0]: (r[1], r[2]) for r in rows}
    assert by_id == {
        answered.id: ("submitted", 1),
        nxt.id: ("submitting", 1),
        opted.id: ("accepted", 0),
    }
    assert store.commits == commits + 1
    # Nothing to begin: the outcomes alone, and no refusal.
    assert (await store.record_outcomes_and_begin([submitted(nxt, 1, "b1")], []))[1] == set()


async def test_begin_attempts_refuses_messages_whose_recipient_opted_out_after_acceptance(
    store: SqliteStore,
) -> None:
    racing = msg(to="+33600000001", parts=2)  # opted out of ACME after it was accepted
    everyone = msg(to="+33600000002")  # opted out of every sender after acceptance
    confirmation = msg(to="+33600000003", created_at=1500.0)  # made after the opt-out
    other_sender = msg(to="+33600000004", sender="OTHER")
    await store.accept([racing, everyone, confirmation, other_sender])
    await store.add_opt_out("+33600000001", "ACME", "mo", 1200.0)
    await store.add_opt_out("+33600000002", None, "api", 1200.0)
    await store.add_opt_out("+33600000003", "ACME", "mo", 1400.0)
    await store.add_opt_out("+33600000004", "ACME", "mo", 1200.0)
    parts = [(racing.id, 1), (racing.id, 2), (everyone.id, 1)]
    parts += [(confirmation.id, 1), (other_sender.id, 1)]
    refused = await store.begin_attempts(parts)
    assert refused == {racing.id, everyone.id}
    # Refused parts were not begun: a crash now would not flag them possibly duplicated.
    pending = {m.id: m for m in await store.load_pending(None, 10)}
    assert not pending[racing.id].possible_duplicate
    assert pending[confirmation.id].possible_duplicate
