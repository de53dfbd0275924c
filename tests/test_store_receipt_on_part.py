"""Schema 2: the receipt that makes a part final is kept on the part, not as a ``receipts``
row; every other receipt (intermediate, duplicate, late, held before its submit_sm_resp,
for a part already failed) is still a row. What readers see does not change: the message's
history lists every receipt in arrival order, unmatched receipts are listed as before, and a
file made by schema 1 opens, migrates and keeps showing its old receipts."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from gateway.model import IncomingReceipt, MessageStatus, NewMessage, SubmitOutcome
from gateway.store.sqlite import _PART_RECEIPT_COLUMNS, SCHEMA_VERSION, SqliteStore

S = MessageStatus


def _msg(n: int, parts: int = 1) -> NewMessage:
    return NewMessage(
        id=f"m{n:03d}",
        to="+33612345678",
        sender="ACME",
        text="hello",
        encoding="gsm7",
        parts=parts,
        carrier="sim",
        created_at=1000.0,
    )


def _out(m: NewMessage, part: int, key: str, status: MessageStatus = S.SUBMITTED) -> SubmitOutcome:
    failed = status is not S.SUBMITTED
    return SubmitOutcome(
        message_id=m.id,
        part=part,
        carrier="sim",
        status=status,
        at=1001.0,
        carrier_message_id=None if failed else key.upper(),
        receipt_key=None if failed else key,
        command_status=0x45 if failed else 0,
        error="rejected: 0x45" if failed else None,
    )


def _rec(key: str, status: MessageStatus, at: float, error: str | None = None) -> IncomingReceipt:
    state = {S.DELIVERED: "DELIVRD", S.SUBMITTED: "ENROUTE", S.UNDELIVERABLE: "UNDELIV"}
    return IncomingReceipt("sim", key, f"raw-{key}", status, state[status], at, error, f"id:{key}")


def _history(view: Any) -> list[tuple[Any, ...]]:
    return [(h.at, h.status, h.part, h.detail) for h in view.history]


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _receipt(at: float, status: str, part: int, state: str, key: str, error: Any = None) -> Any:
    detail = {"receipt": state, "error": error, "carrier_message_id": f"raw-{key}"}
    return (at, status, part, detail)


def _submitted(part: int, key: str) -> Any:
    return (1001.0, "submitted", part, {"carrier": "sim", "carrier_message_id": key.upper()})


async def test_the_final_receipt_is_kept_on_its_part_and_history_shows_every_receipt(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    await store.open()
    try:
        one, two, held, failed = _msg(1), _msg(2, parts=2), _msg(3), _msg(4)
        await store.accept([one, two, held, failed])
        await store.begin_attempts([(one.id, 1), (two.id, 1), (two.id, 2), (held.id, 1)])
        await store.record_outcomes([_out(one, 1, "k1"), _out(two, 1, "t1"), _out(two, 2, "t2")])
        await store.record_outcomes([_out(failed, 1, "f1", S.REJECTED)])
        # ENROUTE, then DELIVRD and its duplicate in one batch; a long message's two parts.
        await store.record_receipts([_rec("k1", S.SUBMITTED, 1002.0)])
        changes = await store.record_receipts(
            [
                _rec("k1", S.DELIVERED, 1003.0),
                _rec("k1", S.DELIVERED, 1003.5),
                _rec("t1", S.DELIVERED, 1003.0),
                _rec("t2", S.UNDELIVERABLE, 1004.0, "err:001"),
                _rec("h1", S.DELIVERED, 1002.5),  # before its submit_sm_resp: held
            ]
        )
        assert sorted((c.message_id, c.status) for c in changes) == [
            (one.id, S.DELIVERED),
            (two.id, S.UNDELIVERABLE),
        ]
        assert [(u.receipt_key, u.status) for u in await store.unmatched_receipts(10)] == [
            ("h1", "delivered")
        ]
        await store.record_outcomes([_out(held, 1, "h1")])
        assert await store.unmatched_receipts(10) == []

        view = await store.get_message(one.id)
        assert view is not None and view.status == "delivered"
        assert _history(view) == [
            (1000.0, "accepted", None, {}),
            _submitted(1, "k1"),
            _receipt(1002.0, "submitted", 1, "ENROUTE", "k1"),
            _receipt(1003.0, "delivered", 1, "DELIVRD", "k1"),
            _receipt(1003.5, "delivered", 1, "DELIVRD", "k1"),
        ]
        view = await store.get_message(two.id)
        assert view is not None and view.status == "undeliverable"
        assert [(p.part, p.status, p.error) for p in view.parts] == [
            (1, "delivered", None),
            (2, "undeliverable", "err:001"),
        ]
        assert _history(view) == [
            (1000.0, "accepted", None, {}),
            _submitted(1, "t1"),
            _submitted(2, "t2"),
            _receipt(1003.0, "delivered", 1, "DELIVRD", "t1"),
            _receipt(1004.0, "undeliverable", 2, "UNDELIV", "t2", "err:001"),
        ]
        view = await store.get_message(held.id)
        assert view is not None and view.status == "delivered"
        assert _history(view)[-1] == _receipt(1002.5, "delivered", 1, "DELIVRD", "h1")
    finally:
        await store.close()

    # On disk: rows only for the receipts no part keeps; the parts keep the others.
    assert sorted(
        _rows(path, "SELECT receipt_key, state, received_at, message_id FROM receipts")
    ) == [
        ("h1", "DELIVRD", 1002.5, "m003"),
        ("k1", "DELIVRD", 1003.5, "m001"),
        ("k1", "ENROUTE", 1002.0, "m001"),
    ]
    assert _rows(
        path,
        "SELECT message_id, part, receipt_status, receipt_state, receipt_error, receipt_cmid,"
        " receipt_raw, receipt_at FROM parts WHERE receipt_at IS NOT NULL ORDER BY 1, 2",
    ) == [
        ("m001", 1, "delivered", "DELIVRD", None, "raw-k1", "id:k1", 1003.0),
        ("m002", 1, "delivered", "DELIVRD", None, "raw-t1", "id:t1", 1003.0),
        ("m002", 2, "undeliverable", "UNDELIV", "err:001", "raw-t2", "id:t2", 1004.0),
    ]


async def test_a_receipt_for_a_part_already_final_is_a_row_and_does_not_move_it(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        m = _msg(1)
        await store.accept([m])
        await store.begin_attempts([(m.id, 1)])
        await store.record_outcomes([_out(m, 1, "k1")])
        await store.record_receipts([_rec("k1", S.UNDELIVERABLE, 1002.0, "err:002")])
        assert await store.record_receipts([_rec("k1", S.DELIVERED, 1003.0)]) == []
        view = await store.get_message(m.id)
        assert view is not None and view.status == "undeliverable"
        assert _history(view)[-2:] == [
            _receipt(1002.0, "undeliverable", 1, "UNDELIV", "k1", "err:002"),
            _receipt(1003.0, "delivered", 1, "DELIVRD", "k1"),
        ]
    finally:
        await store.close()


async def test_a_schema_1_file_is_migrated_and_keeps_its_receipts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SqliteStore(path)
    await store.open()
    old, new = _msg(1), _msg(2)
    try:
        await store.accept([old, new])
        await store.begin_attempts([(old.id, 1), (new.id, 1)])
        await store.record_outcomes([_out(old, 1, "o1"), _out(new, 1, "n1")])
    finally:
        await store.close()
    # Made into a schema 1 file as the old code left it: no receipt columns on parts, and
    # a delivered message whose receipt is a row.
    conn = sqlite3.connect(path)
    for name, _ in _PART_RECEIPT_COLUMNS:
        conn.execute(f"ALTER TABLE parts DROP COLUMN {name}")
    conn.execute(
        "INSERT INTO receipts(carrier, receipt_key, carrier_message_id, status, state, raw,"
        " received_at, message_id, part) VALUES ('sim', 'o1', 'raw-o1', 'delivered', 'DELIVRD',"
        " 'id:o1', 1002.0, 'm001', 1)"
    )
    conn.execute(
        "UPDATE parts SET status = 'delivered', done_at = 1002.0 WHERE message_id = 'm001'"
    )
    conn.execute("UPDATE messages SET status = 'delivered' WHERE id = 'm001'")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    assert "receipt_at" not in {r[1] for r in _rows(path, "PRAGMA table_info(parts)")}

    store = SqliteStore(path)
    await store.open()
    try:
        view = await store.get_message(old.id)
        assert view is not None and view.status == "delivered"
        assert _history(view)[-1] == _receipt(1002.0, "delivered", 1, "DELIVRD", "o1")
        changes = await store.record_receipts([_rec("n1", S.DELIVERED, 1003.0)])
        assert [(c.message_id, c.status) for c in changes] == [(new.id, S.DELIVERED)]
        view = await store.get_message(new.id)
        assert view is not None
        assert _history(view)[-1] == _receipt(1003.0, "delivered", 1, "DELIVRD", "n1")
    finally:
        await store.close()
    assert _rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert SCHEMA_VERSION == 2
    assert _rows(path, "SELECT receipt_key FROM receipts") == [("o1",)]
