"""Issue 17.9: finished records are deleted after their ``[retention]`` age, in batches, and
the space is given back (incremental vacuum); what is not finished, or young, stays."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.app.daemon import Gateway
from gateway.config import RetentionConfig
from gateway.core.model import IncomingReceipt, MessageStatus, NewMessage, SubmitOutcome
from gateway.store.base import IdempotentAnswer, InteractionOutcome, NewInteraction
from gateway.store.retention import DAY, Retention
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_campaigns import SqliteCampaignStore
from tests.e2e_helpers import Lab, eventually, gateway_config, simulator_config
from tests.fakes import new_message

NOW = time.time()
OLD = NOW - 40 * DAY
YOUNG = NOW - 1 * DAY

CONFIG = RetentionConfig(
    messages_days=30, idempotency_days=7, interactions_days=30, campaigns_days=30, batch=7
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "smsgw.db", synchronous="normal")
    await s.open()
    await SqliteCampaignStore(s.db).open()
    yield s
    await s.close()


async def delivered(store: SqliteStore, messages: list[NewMessage], at: float) -> None:
    """Accepted, submitted and receipted (delivered) at ``at``."""
    await store.accept(messages)
    await store.begin_attempts([(m.id, 1) for m in messages])
    await store.record_outcomes(
        [
            SubmitOutcome(m.id, 1, "sim", MessageStatus.SUBMITTED, at, f"C{i}", f"c{i}", 0)
            for i, m in enumerate(messages)
        ]
    )
    await store.record_receipts(
        [
            IncomingReceipt("sim", f"c{i}", f"C{i}", MessageStatus.DELIVERED, "DELIVRD", at)
            for i, m in enumerate(messages)
        ]
    )


async def count(store: SqliteStore, sql: str) -> int:
    return int((await store._read(sql))[0][0])


async def test_old_finished_messages_go_with_their_rows_young_and_unfinished_stay(
    store: SqliteStore,
) -> None:
    old = [new_message(f"+3360000{i:04d}", carrier="sim", now=OLD) for i in range(20)]
    await delivered(store, old, OLD)
    young = new_message("+33611111111", carrier="sim", now=YOUNG)
    unfinished = new_message("+33622222222", carrier="sim", now=OLD)  # still queued
    await store.accept([young, unfinished])
    await store.record_receipts(  # a receipt that never matched, as old
        [IncomingReceipt("sim", "zz", "ZZ", MessageStatus.DELIVERED, "DELIVRD", OLD)]
    )
    assert await count(store, "SELECT count(*) FROM receipts") == 21

    deleted = await Retention(store.db, CONFIG, clock=lambda: NOW).run_once()

    assert deleted["messages"] == 20 and deleted["receipts"] == 1, deleted
    for m in old:
        assert await store.get_message(m.id) is None
    assert await store.get_message(young.id) is not None
    assert await store.get_message(unfinished.id) is not None
    assert await count(store, "SELECT count(*) FROM parts") == 2
    assert await count(store, "SELECT count(*) FROM receipts") == 0
    assert await count(store, "SELECT count(*) FROM events WHERE message_id <> ''") == await count(
        store, f"SELECT count(*) FROM events WHERE message_id IN ('{young.id}', '{unfinished.id}')"
    )


async def test_idempotency_interactions_and_campaigns_have_their_own_ages(
    store: SqliteStore,
) -> None:
    for key, at in (("old", NOW - 8 * DAY), ("young", NOW - 6 * DAY)):
        await store.accept(
            [new_message(f"+3363333{len(key):04d}", carrier="sim")],
            IdempotentAnswer("acct", key, "h", 202, "{}", at),
        )
    ids = await store.record_interactions(
        [
            NewInteraction("sim", f"+3364444{i:04d}", "36180", "YES", 0, 1, 1, at, at)
            for i, at in enumerate((OLD, OLD, YOUNG))
        ]
    )
    await store.finish_interactions(
        [InteractionOutcome(i, None, None, None, [], NOW) for i in ids[:1] + ids[2:]]
    )  # ids[1] is old but still pending: kept

    def campaigns(conn: sqlite3.Connection) -> None:
        for cid, status, finished in (
            ("c-old", "done", OLD),
            ("c-young", "done", YOUNG),
            ("c-running", "running", None),
        ):
            conn.execute(
                "INSERT INTO campaigns(id, name, sender, text, spec, status, created_at,"
                " finished_at) VALUES (?, 'n', 's', 't', '{}', ?, ?, ?)",
                (cid, status, OLD, finished),
            )
            conn.executemany(
                "INSERT INTO campaign_recipients(campaign_id, number) VALUES (?, ?)",
                [(cid, f"+3365{i:07d}") for i in range(300)],
            )

    await store._write_in_thread(campaigns)

    deleted = await Retention(store.db, CONFIG, clock=lambda: NOW).run_once()

    assert deleted["idempotency"] == 1 and deleted["interactions"] == 1, deleted
    assert deleted["campaigns"] == 1, deleted
    assert await store.find_idempotent("acct", "old") is None
    assert await store.find_idempotent("acct", "young") is not None
    assert [i for i in ids if await store.get_interaction(i) is not None] == ids[1:]
    rows = await store._read(
        "SELECT campaign_id, count(*) FROM campaign_recipients GROUP BY campaign_id"
    )
    assert sorted(rows) == [("c-running", 300), ("c-young", 300)]
    assert await count(store, "SELECT count(*) FROM campaigns") == 2


async def test_old_interactions_still_pending_do_not_hold_back_those_behind_them(
    store: SqliteStore,
) -> None:
    """Interactions go oldest first in batches: more than a batch of old ones still pending
    (not handled yet) at the head are skipped by id, and the handled and quarantined ones
    behind them still go; young ones stay, whatever their state."""
    pending = await store.record_interactions(
        [
            NewInteraction("sim", f"+3364444{i:04d}", "36180", "WAIT", 0, 1, 1, OLD, OLD)
            for i in range(CONFIG.batch * 2 + 1)
        ]
    )
    handled = await store.record_interactions(
        [
            NewInteraction("sim", f"+3365555{i:04d}", "36180", "YES", 0, 1, 1, OLD, OLD)
            for i in range(CONFIG.batch + 3)
        ]
    )
    quarantined = handled[-1]
    young = await store.record_interactions(
        [NewInteraction("sim", "+33666660000", "36180", "NEW", 0, 1, 1, YOUNG, YOUNG)]
    )
    await store.finish_interactions(
        [InteractionOutcome(i, None, None, None, [], NOW) for i in handled[:-1] + young]
    )
    assert await store.fail_interaction(quarantined, "boom", add=1, quarantine=True, at=OLD)

    deleted = await Retention(store.db, CONFIG, clock=lambda: NOW).run_once()

    assert deleted["interactions"] == len(handled), deleted
    kept = [i for i in pending + handled + young if await store.get_interaction(i) is not None]
    assert kept == pending + young


async def test_a_zero_age_keeps_that_kind_forever(store: SqliteStore) -> None:
    old = [new_message("+33600000001", carrier="sim", now=OLD)]
    await delivered(store, old, OLD)
    keep = RetentionConfig(messages_days=0, idempotency_days=0, interactions_days=0)
    deleted = await Retention(store.db, keep, clock=lambda: NOW).run_once()
    assert deleted["messages"] == 0
    assert await store.get_message(old[0].id) is not None


async def test_space_is_given_back_to_the_file_system(store: SqliteStore) -> None:
    assert await store.auto_vacuum() == "incremental"  # a new database
    text = "x" * 400
    old = [new_message(f"+336{i:08d}", text, carrier="sim", now=OLD) for i in range(3000)]
    await delivered(store, old, OLD)

    def pages(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])

    before = await store._write_in_thread(pages)
    retention = Retention(store.db, RetentionConfig(messages_days=30, batch=500), lambda: NOW)
    await retention.run_once()
    after = await store._write_in_thread(pages)
    assert retention.stats.reclaimed_pages > 0
    assert after < before / 2, (before, after)


async def test_an_older_database_without_incremental_vacuum_is_pruned_and_told_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
    conn.close()
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        assert await store.auto_vacuum() == "none"
        old = [new_message("+33600000002", carrier="sim", now=OLD)]
        await delivered(store, old, OLD)
        retention = Retention(store.db, CONFIG, clock=lambda: NOW)
        with caplog.at_level(logging.WARNING, logger="smsgw.retention"):
            await retention.start()
            await retention.stop()
        assert any("retention.no_incremental_vacuum" in r.getMessage() for r in caplog.records)
        await retention.run_once()
        assert await store.get_message(old[0].id) is None
    finally:
        await store.close()


class RetentionLab(Lab):
    """A Lab whose gateway keeps finished messages one second, pruning every 0.1 s."""

    async def start_gateway(self) -> None:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port)
        retention = RetentionConfig(messages_days=1 / DAY, idempotency_days=1 / DAY, interval=0.1)
        self.gateway = Gateway(replace(config, retention=retention))
        await self.gateway.start()
        await eventually(self._bound)


async def test_the_daemon_prunes_in_the_background_and_counts_it(tmp_path: Path) -> None:
    lab = RetentionLab(tmp_path, simulator_config())
    await lab.start()
    try:
        assert lab.gateway is not None
        store = lab.gateway.store
        answer = await lab.post(
            "/v1/messages/batch",
            {
                "messages": [
                    {"to": f"+3367{i:07d}", "from": "ACME", "text": "hi"} for i in range(50)
                ]
            },
            headers={"Idempotency-Key": "k1"},
        )
        assert len(answer["messages"]) == 50

        async def pruned() -> bool:
            return await count(store, "SELECT count(*) FROM messages") == 0

        await eventually(pruned, within=30)  # delivered, then a second old: deleted
        assert await count(store, "SELECT count(*) FROM idempotency") == 0
        assert await count(store, "SELECT count(*) FROM parts") == 0
        assert lab.http is not None
        async with lab.http.get(lab.gw_url + "/metrics") as r:
            metrics = await r.text()
        assert 'smsgw_retention_deleted_total{kind="messages"} 50.0' in metrics
    finally:
        await lab.stop()


async def test_an_interaction_id_is_never_given_twice_once_every_one_was_pruned(
    store: SqliteStore,
) -> None:
    # An id marks how far an export of "new" interactions went (export_mark): a quiet
    # number whose every interaction aged out must not hand out 1, 2 ... again.
    def mo(at: float) -> NewInteraction:
        return NewInteraction("sim", "+33644440001", "36180", "YES", 0, 1, 1, at, at)

    ids = await store.record_interactions([mo(OLD), mo(OLD)])
    await store.finish_interactions([InteractionOutcome(i, None, None, None, [], OLD) for i in ids])
    await store.advance_export_mark("acct", ids[-1], OLD)
    deleted = await Retention(store.db, CONFIG, clock=lambda: NOW).run_once()
    assert deleted["interactions"] == 2
    assert await count(store, "SELECT count(*) FROM interactions") == 0
    (one,) = await store.record_interactions([mo(NOW)])
    two = await store.record_interaction(mo(NOW))
    assert ids[-1] < one < two
    assert one > await store.export_mark("acct")
