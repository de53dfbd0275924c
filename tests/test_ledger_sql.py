"""The SQLite store's set-based statements against the ledger functions they transcribe
(gateway.core.ledger): each statement runs on generated rows in an in-memory database with
the store's schema, and every row must end as the ledger says."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core import ledger
from gateway.core.ledger import SUBMITTING, PartState
from gateway.core.model import FINAL_STATUSES, IncomingReceipt, MessageStatus, SubmitOutcome
from gateway.store import sqlite as store
from gateway.store.base import NO_RECEIPT

part_statuses = st.sampled_from([s.value for s in MessageStatus] + [SUBMITTING])
errors = st.sampled_from([None, "e1", "e2"])
part_rows = st.lists(st.tuples(part_statuses, errors), min_size=1, max_size=3)
outcome_statuses = st.sampled_from(
    [MessageStatus.SUBMITTED, MessageStatus.QUEUED, MessageStatus.REJECTED, MessageStatus.FAILED]
)
receipt_statuses = st.sampled_from(
    [
        MessageStatus.SUBMITTED,
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERABLE,
        MessageStatus.EXPIRED,
        MessageStatus.REJECTED,
    ]
)


@contextmanager
def database() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.executescript(store.SCHEMA)
        yield conn
    finally:
        conn.close()


def _add_message(
    conn: sqlite3.Connection,
    message_id: str,
    parts: list[tuple[str, str | None]],
    status: str = "submitted",
    *,
    registered_delivery: bool = True,
    validity_until: float | None = None,
    updated_at: float = 0.0,
) -> None:
    conn.execute(
        "INSERT INTO messages(id, account, sender, dest, text, encoding, parts, carrier,"
        " priority, validity_until, registered_delivery, status, created_at, updated_at)"
        " VALUES (?, '', 'ACME', '+331', 'hi', 'gsm7', ?, 'alpha', 0, ?, ?, ?, 0, ?)",
        (message_id, len(parts), validity_until, int(registered_delivery), status, updated_at),
    )
    conn.executemany(
        "INSERT INTO parts(message_id, part, status, error) VALUES (?, ?, ?, ?)",
        [(message_id, n, status, error) for n, (status, error) in enumerate(parts, 1)],
    )


def _parts(conn: sqlite3.Connection, message_id: str) -> list[PartState]:
    rows = conn.execute(
        "SELECT status, error FROM parts WHERE message_id = ? ORDER BY part", (message_id,)
    ).fetchall()
    return [PartState(status, error) for status, error in rows]


@settings(deadline=None)
@given(
    part_rows,
    st.lists(st.tuples(st.integers(1, 3), outcome_statuses, errors), max_size=6),
)
def test_outcome_updates_are_apply_outcome_in_turn(
    rows: list[tuple[str, str | None]],
    outcomes: list[tuple[int, MessageStatus, str | None]],
) -> None:
    items = [
        SubmitOutcome("m", part, "alpha", status, 1.0, "id", "key", 0, error)
        for part, status, error in outcomes
        if part <= len(rows)
    ]
    expected = [PartState(s, e) for s, e in rows]
    for o in items:
        expected[o.part - 1] = ledger.apply_outcome(expected[o.part - 1], o.status, o.error)
    with database() as conn:
        _add_message(conn, "m", rows)
        distinct = len({(o.message_id, o.part) for o in items}) == len(items)
        store._write_outcomes_sync(conn, items, distinct)
        assert _parts(conn, "m") == expected


@settings(deadline=None)
@given(
    part_rows,
    st.lists(st.tuples(st.integers(1, 3), receipt_statuses, errors), max_size=6),
)
def test_receipt_updates_are_apply_receipt_in_turn(
    rows: list[tuple[str, str | None]],
    receipts: list[tuple[int, MessageStatus, str | None]],
) -> None:
    applied = [
        ("m", part, status.value, 2.0, error)
        for part, status, error in receipts
        if part <= len(rows)
    ]
    expected = [PartState(s, e) for s, e in rows]
    for _, part, status, _, error in applied:
        expected[part - 1] = ledger.apply_receipt(
            expected[part - 1], ledger.counts_as(status), error
        )
    with database() as conn:
        _add_message(conn, "m", rows)
        store._apply_receipt_states_sync(conn, applied)
        assert _parts(conn, "m") == expected


@settings(deadline=None)
@given(
    st.lists(st.tuples(part_statuses, errors, part_statuses, errors), min_size=1, max_size=6),
    st.booleans(),
)
def test_the_single_part_settle_is_settle_single(
    cases: list[tuple[str, str | None, str, str | None]], open_only: bool
) -> None:
    """Each case: a message of one part as stored (its status is its part's), and the state
    the ledger folded for that part from the batch's events as if it were not final (what
    the store knows without reading). The statement must move the message as settle_single
    of the part's true new state: the folded one, or the stored one when that was final.
    ``open_only``: no message is final before (every outcome took its row), the statement
    without the finals' test (``_SETTLE_SINGLE_OPEN``)."""
    if open_only:
        cases = [c for c in cases if c[0] not in ledger.FINAL]
    known: dict[str, store.Known] = {}
    expected: dict[str, tuple[str, str | None]] = {}
    with database() as conn:
        for n, (before, before_error, status, error) in enumerate(cases):
            mid = f"m{n}"
            message_status = ledger.counts_as(before).value
            _add_message(conn, mid, [(before, before_error)], message_status)
            conn.execute("UPDATE messages SET error = ? WHERE id = ?", (before_error, mid))
            folded = PartState(status, error)
            known[mid] = (ledger.counts_as(status), error)
            true = PartState(before, before_error) if before in ledger.FINAL else folded
            settled = ledger.settle_single(message_status, true)
            expected[mid] = (
                (settled.status.value, settled.error) if settled else (message_status, before_error)
            )
        # A message of two parts is never settled here.
        _add_message(conn, "long", [("queued", None), ("queued", None)], "queued")
        known["long"] = (MessageStatus.DELIVERED, None)
        expected["long"] = ("queued", None)
        store.SqliteStore(":memory:")._refresh_single_sync(conn, known, 9.0, not open_only)
        got = {
            mid: (status, error)
            for mid, status, error in conn.execute("SELECT id, status, error FROM messages")
        }
    assert got == expected


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 2), outcome_statuses, errors), max_size=8),
    st.dictionaries(
        st.integers(0, 3), st.lists(st.tuples(receipt_statuses, errors), max_size=3), max_size=2
    ),
)
def test_the_known_states_of_outcomes_are_the_ledgers_fold(
    outcomes: list[tuple[int, int, MessageStatus, str | None]],
    held: dict[int, list[tuple[MessageStatus, str | None]]],
) -> None:
    """What the store takes as a single-part message's new state (without reading it) is
    ``ledger.answer`` folded over its outcomes, then over its held receipts."""
    items = [
        SubmitOutcome(f"m{m}", part, "alpha", status, 1.0, error=error)
        for m, part, status, error in outcomes
    ]
    mids = {o.message_id for o in items}
    early = {f"m{m}": receipts for m, receipts in held.items() if f"m{m}" in mids}
    distinct = len({(o.message_id, o.part) for o in items}) == len(items)
    got = store._outcome_states(items, early, distinct)
    for mid in mids:
        if distinct and sum(o.message_id == mid for o in items) > 1:
            continue  # several parts: a message of one part has one outcome
        state = PartState(SUBMITTING)
        for o in items:
            if o.message_id == mid:
                state = ledger.apply_outcome(state, o.status, o.error)
        for status, error in early.get(mid, []):
            state = ledger.apply_receipt(state, status, error)
        status = ledger.counts_as(state.status)
        assert ledger.settle_single("accepted", PartState(*got[mid])) == ledger.settle_single(
            "accepted", state
        ), (mid, got[mid], state)
        assert got[mid][0] == status


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), receipt_statuses, errors), max_size=8))
def test_the_known_states_of_receipts_are_the_ledgers_fold(
    receipts: list[tuple[int, MessageStatus, str | None]],
) -> None:
    items = [
        IncomingReceipt("alpha", f"k{m}", f"k{m}", status, "X", 1.0, error)
        for m, status, error in receipts
    ]
    matches = [(f"m{m}", 1) for m, _, _ in receipts]
    got = store._receipt_states(items, matches)
    for m in {m for m, _, _ in receipts}:
        state = PartState(MessageStatus.SUBMITTED)
        for n, status, error in receipts:
            if n == m:
                state = ledger.apply_receipt(state, status, error)
        if state.status in ledger.FINAL:
            assert got[f"m{m}"] == (state.status, state.error)
        else:
            assert f"m{m}" not in got


@settings(deadline=None)
@given(part_rows)
def test_the_expiry_update_is_expire_unreceipted(rows: list[tuple[str, str | None]]) -> None:
    with database() as conn:
        _add_message(conn, "m", rows)
        conn.execute(store._EXPIRE_UNRECEIPTED, (NO_RECEIPT, 5.0, '["m"]')).fetchall()
        assert _parts(conn, "m") == [ledger.expire_unreceipted(PartState(s, e)) for s, e in rows]


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(
            part_statuses,
            st.booleans(),
            st.one_of(st.none(), st.floats(0, 10)),
            st.floats(0, 10),
        ),
        max_size=8,
    ),
    st.floats(0, 10),
    st.floats(0, 10),
)
def test_the_no_receipt_choice_is_unreceipted_due(
    messages: list[tuple[str, bool, float | None, float]],
    validity_before: float,
    submitted_before: float,
) -> None:
    with database() as conn:
        expected = set()
        for n, (status, registered, validity, updated_at) in enumerate(messages):
            message_status = ledger.counts_as(status).value
            _add_message(
                conn,
                f"m{n}",
                [(status, None)],
                message_status,
                registered_delivery=registered,
                validity_until=validity,
                updated_at=updated_at,
            )
            if ledger.unreceipted_due(
                message_status, registered, validity, updated_at, validity_before, submitted_before
            ):
                expected.add(f"m{n}")
        chosen = {
            r[0]
            for r in conn.execute(store._UNRECEIPTED_DUE_VALIDITY, ("alpha", validity_before, 100))
        } | {
            r[0]
            for r in conn.execute(
                store._UNRECEIPTED_DUE_SUBMITTED, ("alpha", submitted_before, 100)
            )
        }
    assert chosen == expected


def test_the_final_statuses_in_sql_are_the_ledgers() -> None:
    assert {s.value for s in FINAL_STATUSES} == ledger.FINAL
    for status in ledger.FINAL:
        assert f"'{status}'" in store._NOT_FINAL
    assert store._NOT_FINAL.count("'") == 2 * len(ledger.FINAL)
    assert store._NOT_FINAL in store._NOT_FINAL_ROW
