"""The single-part status refresh (UPDATE ... RETURNING, no read back) and the part updates
as one UPDATE ... FROM a JSON array give exactly what the joined read over a message's parts
and executemany give: the same status changes, message rows, callback rows and part rows,
through retries, held receipts, duplicate and late receipts, and long messages. Each
scenario runs twice, once with both fast paths off, and the results are compared; a few
outcomes are also pinned outright."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import gateway.store.sqlite as store_module
from gateway.core.model import (
    IncomingReceipt,
    MessageStatus,
    NewMessage,
    StatusChange,
    SubmitOutcome,
)
from gateway.store.sqlite import SqliteStore

S = MessageStatus


def _msg(n: int, parts: int = 1, callback: str | None = None) -> NewMessage:
    return NewMessage(
        id=f"m{n:03d}",
        to="+33612345678",
        sender="ACME",
        text="hello",
        encoding="gsm7",
        parts=parts,
        carrier="sim",
        created_at=1000.0,
        callback_url=callback,
        client_ref=f"ref-{n}",
        campaign_id="camp" if n % 2 else None,
    )


def _out(
    m: NewMessage, part: int, status: MessageStatus, key: str | None, at: float, **kw: Any
) -> SubmitOutcome:
    return SubmitOutcome(
        message_id=m.id,
        part=part,
        carrier="sim",
        status=status,
        at=at,
        carrier_message_id=key,
        receipt_key=key,
        command_status=0 if status is S.SUBMITTED else 0x58,
        **kw,
    )


def _rec(key: str, status: MessageStatus, at: float, error: str | None = None) -> IncomingReceipt:
    return IncomingReceipt("sim", key, key, status, status.value, at, error, f"id:{key}")


def _view(changes: list[StatusChange]) -> list[tuple[Any, ...]]:
    return [
        (
            c.message_id,
            c.status,
            c.at,
            c.client_ref,
            c.callback_url,
            c.carrier,
            c.error,
            c.campaign_id,
        )
        for c in changes
    ]


async def _scenario(path: Path) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    store = SqliteStore(path)
    await store.open()
    cb = "http://127.0.0.1:9/cb"
    single = [_msg(n, callback=cb if n % 3 else None) for n in range(1, 11)]
    long = _msg(20, parts=3, callback=cb)
    seen: list[Any] = []
    try:
        await store.accept([*single, long])
        await store.begin_attempts([(m.id, 1) for m in single] + [(long.id, p) for p in (1, 2, 3)])
        # m1 delivered: submitted, then its receipt.  m2 held: its receipt comes first.
        # m3 retried (throttled), then rejected for good.  m4: two final receipts, then an
        # ENROUTE one.  m5: ENROUTE only.  m6: undeliverable with an error.  m7, m8: a batch
        # with both outcomes of one message.  long: parts answered and receipted unevenly.
        # m9: three held receipts (ENROUTE, UNDELIV, DELIVRD); m10: a held ENROUTE only.
        seen.append(
            _view(
                await store.record_receipts(
                    [
                        _rec("k2", S.DELIVERED, 1001.0),
                        _rec("k9", S.SUBMITTED, 1001.0),
                        _rec("k9", S.UNDELIVERABLE, 1001.0, "stat:UNDELIV"),
                        _rec("k9", S.DELIVERED, 1001.0),
                        _rec("k10", S.SUBMITTED, 1001.0),
                    ]
                )
            )
        )
        seen.append(
            _view(
                await store.record_outcomes(
                    [
                        _out(single[0], 1, S.SUBMITTED, "k1", 1002.0),
                        _out(single[1], 1, S.SUBMITTED, "k2", 1002.0),
                        _out(single[2], 1, S.QUEUED, None, 1002.0, error="throttled"),
                        _out(single[3], 1, S.SUBMITTED, "k4", 1002.0),
                        _out(single[4], 1, S.SUBMITTED, "k5x", 1002.0),
                        _out(single[4], 1, S.SUBMITTED, "k5", 1002.0),  # the last one wins
                        _out(single[5], 1, S.SUBMITTED, "k6", 1002.0),
                        _out(single[6], 1, S.QUEUED, None, 1002.0, error="throttled"),
                        _out(single[6], 1, S.SUBMITTED, "k7", 1002.5),
                        _out(single[8], 1, S.SUBMITTED, "k9", 1002.0),
                        _out(single[9], 1, S.SUBMITTED, "k10", 1002.0),
                        _out(long, 1, S.SUBMITTED, "L1", 1002.0),
                        _out(long, 2, S.SUBMITTED, "L2", 1002.0),
                    ]
                )
            )
        )
        seen.append(
            _view(
                await store.record_outcomes(
                    [
                        _out(single[2], 1, S.REJECTED, None, 1003.0, error="rejected: 0x45"),
                        _out(single[7], 1, S.FAILED, None, 1003.0, error="gave up"),
                        _out(long, 3, S.SUBMITTED, "L3", 1003.0),
                    ]
                )
            )
        )
        seen.append(
            _view(
                await store.record_receipts(
                    [
                        _rec("k1", S.DELIVERED, 1004.0),
                        _rec("k4", S.DELIVERED, 1004.0),
                        _rec("k4", S.UNDELIVERABLE, 1004.0, "stat:UNDELIV"),
                        _rec("k5", S.SUBMITTED, 1004.0),
                        _rec("k6", S.UNDELIVERABLE, 1004.0, "stat:UNDELIV err:001"),
                        _rec("k7", S.EXPIRED, 1004.0, "stat:EXPIRED"),
                        _rec("L2", S.DELIVERED, 1004.0),
                    ]
                )
            )
        )
        seen.append(
            _view(
                await store.record_receipts(
                    [
                        _rec("k4", S.SUBMITTED, 1005.0),
                        _rec("k1", S.REJECTED, 1005.0, "stat:REJECTD"),
                        _rec("L1", S.DELIVERED, 1005.0),
                        _rec("L3", S.DELIVERED, 1005.0),
                    ]
                )
            )
        )
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        messages = conn.execute(
            "SELECT id, status, updated_at, error FROM messages ORDER BY id"
        ).fetchall()
        callbacks = conn.execute("SELECT url, payload FROM callbacks ORDER BY id").fetchall()
        parts = conn.execute(
            "SELECT message_id, part, status, attempts, carrier, carrier_message_id, receipt_key,"
            " command_status, submitted_at, done_at, retry_at, error FROM parts"
            " ORDER BY message_id, part"
        ).fetchall()
    finally:
        conn.close()
    return seen, messages, callbacks, parts


async def test_single_part_refresh_matches_the_joined_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store_module._RETURNING, "SQLite without RETURNING: the fast path is never taken"
    assert store_module._UPDATE_FROM, "SQLite without UPDATE FROM: executemany every time"
    fast = await _scenario(tmp_path / "fast.db")
    monkeypatch.setattr(store_module, "_RETURNING", False)
    monkeypatch.setattr(store_module, "_UPDATE_FROM", False)
    slow = await _scenario(tmp_path / "slow.db")
    assert fast[0] == slow[0]  # the changes each call returned
    assert fast[1] == slow[1]  # the message rows
    assert fast[2] == slow[2]  # the callbacks queued
    assert fast[3] == slow[3]  # the part rows
    assert ("m005", 1, "submitted") == fast[3][4][:3] and fast[3][4][6] == "k5"

    statuses = {row[0]: (row[1], row[3]) for row in fast[1]}
    assert statuses == {
        "m001": ("delivered", None),  # a later REJECTD does not undo a final state
        "m002": ("delivered", None),  # the held receipt, applied when the resp landed
        "m003": ("rejected", "rejected: 0x45"),
        "m004": ("delivered", None),  # the first final receipt wins
        "m005": ("submitted", None),  # ENROUTE moves nothing
        "m006": ("undeliverable", "stat:UNDELIV err:001"),
        "m007": ("expired", "stat:EXPIRED"),
        "m008": ("failed", "gave up"),
        "m009": ("undeliverable", "stat:UNDELIV"),  # the first final held receipt
        "m010": ("submitted", None),
        "m020": ("delivered", None),
    }
    # The outcome call of the held receipt reports m002 straight to delivered; the second
    # receipt batch reports only the long message (its last parts), not m001 again.
    assert [(c[0], c[1]) for c in fast[0][1] if c[0] == "m002"] == [("m002", S.DELIVERED)]
    assert [(c[0], c[1]) for c in fast[0][4]] == [("m020", S.DELIVERED)]
    assert len(fast[2]) == 6  # callbacks: the final statuses of m001 m002 m004 m007 m008 m020
