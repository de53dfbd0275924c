"""Issue 17.3 and 17.7: a store short of disk space, or whose file was deleted or replaced
under the running daemon, says so (/healthz, metrics, logs), refuses new work while still
recording what is in flight, and (for space) recovers by itself.

Free space is read through an injectable function here; tests/test_store_disk_full.py does
the same on a real small file system (tmpfs)."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app.daemon import Gateway
from gateway.core.model import IncomingReceipt, MessageStatus, SubmitOutcome
from gateway.store.base import (
    IdempotencyConflict,
    IdempotentAnswer,
    MoKey,
    MoPart,
    NewInteraction,
    StoreUnavailable,
)
from gateway.store.health import DISK_LOW, FILE_MISSING, FILE_REPLACED
from gateway.store.sqlite import SqliteStore
from tests.e2e_helpers import AUTH, Lab, eventually, gateway_config, simulator_config
from tests.fakes import new_message

MIB = 1 << 20


class Disk:
    """Free space as the test says."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self, directory: Path) -> int:
        return self.free


@pytest.fixture
async def disk_store(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, Disk]]:
    disk = Disk(1000 * MIB)
    store = SqliteStore(
        tmp_path / "smsgw.db",
        synchronous="normal",
        min_free_bytes=100 * MIB,
        check_interval=3600,  # the test runs the checks
        free_bytes=disk,
    )
    await store.open()
    yield store, disk
    await store.close()


async def test_under_the_watermark_new_work_is_refused_and_in_flight_work_recorded(
    disk_store: tuple[SqliteStore, Disk],
) -> None:
    store, disk = disk_store
    sent = new_message("+33600000001", carrier="sim")
    waiting = new_message("+33600000002", carrier="sim")
    await store.accept([sent], None, {sent.id})  # on the wire when space runs short
    await store.accept([waiting])
    assert store.health.accepting and store.health.as_json()["status"] == "ok"

    disk.free = 50 * MIB
    store.check_health()
    h = store.health.as_json()
    assert h["status"] == "degraded" and h["reason"] == DISK_LOW, h
    assert h["accepting"] is False and h["sending"] is False
    with pytest.raises(StoreUnavailable, match="disk_low"):
        await store.accept([new_message("+33600000003", carrier="sim")])
    with pytest.raises(StoreUnavailable):  # queued messages wait for space
        await store.begin_attempts([(waiting.id, 1)])
    assert store.health.refused == {DISK_LOW: 1}

    # What is in flight is still recorded: the outcome, then the receipt.
    now = time.time()
    await store.record_outcomes(
        [
            SubmitOutcome(
                sent.id, 1, "sim", MessageStatus.SUBMITTED, now, "AB12", "ab12", command_status=0
            )
        ]
    )
    await store.record_receipts(
        [IncomingReceipt("sim", "ab12", "AB12", MessageStatus.DELIVERED, "DELIVRD", now)]
    )
    view = await store.get_message(sent.id)
    assert view is not None and view.status == "delivered"

    # Just above the watermark is not enough (no flapping); above the resume mark is.
    disk.free = 101 * MIB
    store.check_health()
    assert not store.health.accepting
    disk.free = 200 * MIB
    store.check_health()
    assert store.health.accepting and store.health.as_json()["status"] == "ok"
    await store.accept([new_message("+33600000004", carrier="sim")])
    assert await store.begin_attempts([(waiting.id, 1)]) == set()


async def test_a_write_that_finds_the_disk_full_degrades_the_store_until_space_is_back(
    disk_store: tuple[SqliteStore, Disk],
) -> None:
    store, _ = disk_store
    store.health.write_failed(sqlite3.OperationalError("database or disk is full"))
    assert store.health.reason == "disk_full" and not store.health.accepting
    store.check_health()  # 1000 MiB free: space is back
    assert store.health.accepting


async def test_a_database_deleted_under_the_daemon_is_noticed_and_new_work_refused(
    disk_store: tuple[SqliteStore, Disk], caplog: pytest.LogCaptureFixture
) -> None:
    store, _ = disk_store
    await store.accept([new_message("+33600000005", carrier="sim")])
    os.unlink(store.path)
    with caplog.at_level(logging.ERROR, logger="smsgw.store"):
        store.check_health()
    assert store.health.reason == FILE_MISSING
    assert any("store.degraded" in r.getMessage() for r in caplog.records)
    with pytest.raises(StoreUnavailable, match="file_missing"):
        await store.accept([new_message("+33600000006", carrier="sim")])
    assert store.health.sending  # what was accepted still goes out
    # It stays so: the unlinked file cannot come back (restart needed).
    store.check_health()
    assert store.health.reason == FILE_MISSING


async def test_a_database_replaced_under_the_daemon_is_noticed(
    disk_store: tuple[SqliteStore, Disk], tmp_path: Path
) -> None:
    store, _ = disk_store
    other = tmp_path / "restored.db"
    sqlite3.connect(other).close()
    other.write_bytes(b"")
    os.replace(other, store.path)
    store.check_health()
    assert store.health.reason == FILE_REPLACED
    with pytest.raises(StoreUnavailable):
        await store.accept([new_message("+33600000007", carrier="sim")])


# -- the whole gateway ------------------------------------------------------------------------


class DiskLab(Lab):
    """A Lab whose store reads free space from ``disk``, watermark 100 MiB, checked every
    50 ms."""

    def __init__(self, tmp_path: Path, disk: Disk) -> None:
        super().__init__(tmp_path, simulator_config())
        self.disk = disk

    async def start_gateway(self) -> None:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port)
        store = replace(config.store, min_free_mb=100, health_check_interval=0.05)
        self.gateway = Gateway(replace(config, store=store))
        self.gateway.store.free_bytes = self.disk
        await self.gateway.start()
        await eventually(self._bound)


async def _call(lab: Lab, method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
    assert lab.http is not None
    async with lab.http.request(method, lab.gw_url + path, json=body, headers=AUTH) as r:
        return r.status, r.headers, await r.json()


async def test_healthz_metrics_and_the_api_show_a_store_short_of_space(tmp_path: Path) -> None:
    disk = Disk(1000 * MIB)
    lab = DiskLab(tmp_path, disk)
    await lab.start()
    try:
        status, _, body = await _call(lab, "GET", "/healthz")
        assert status == 200 and body["status"] == "ok", body
        assert body["store"]["status"] == "ok" and body["store"]["accepting"] is True

        disk.free = 10 * MIB  # the periodic check notices by itself

        async def refusing() -> bool:
            return (await _call(lab, "GET", "/healthz"))[0] == 503

        await eventually(refusing)
        status, _, body = await _call(lab, "GET", "/healthz")
        assert body["status"] == "degraded", body
        assert body["store"]["reason"] == "disk_low" and body["store"]["free_bytes"] == 10 * MIB
        assert body["binds"]  # the rest of the page is still there
        msg = {"to": "+33612345678", "from": "ACME", "text": "hi"}
        status, headers, body = await _call(lab, "POST", "/v1/messages", msg)
        assert status == 503 and body["error"]["code"] == "store_unavailable", body
        assert "disk_low" in body["error"]["message"] and headers["Retry-After"]
        async with aiohttp.ClientSession() as http:
            async with http.get(lab.gw_url + "/metrics") as r:
                metrics = await r.text()
        assert 'smsgw_store_degraded{reason="disk_low"} 1.0' in metrics
        assert "smsgw_store_accepting 0.0" in metrics
        assert 'smsgw_store_refused_total{reason="disk_low"} 1.0' in metrics

        disk.free = 500 * MIB  # space is back: the store takes work again by itself

        async def healthy() -> bool:
            return (await _call(lab, "GET", "/healthz"))[0] == 200

        await eventually(healthy)
        answer = await lab.post("/v1/messages", msg)
        ids = [answer["id"]]

        async def delivered() -> bool:
            return await lab.statuses(ids) == {"delivered": 1}

        await eventually(delivered)
    finally:
        await lab.stop()


async def test_every_way_in_for_new_work_is_refused_while_short_of_space(
    disk_store: tuple[SqliteStore, Disk],
) -> None:
    store, disk = disk_store
    disk.free = 1 * MIB
    store.check_health()
    now = time.time()
    mo = NewInteraction("sim", "+33600000009", "36180", "YES", 0, 1, 1, now, now)
    part = MoPart(MoKey("sim", "+33600000009", "36180", 7, 2), 1, 0, b"hi", 0, now)
    with pytest.raises(StoreUnavailable):
        await store.record_interactions([mo])
    with pytest.raises(StoreUnavailable):
        await store.record_interaction(mo)
    with pytest.raises(StoreUnavailable):
        await store.add_mo_part(part)
    with pytest.raises(StoreUnavailable):
        await store.front_parts_add([])
    assert store.health.refused == {DISK_LOW: 4}


async def test_an_operation_refused_on_purpose_does_not_degrade_the_store(
    disk_store: tuple[SqliteStore, Disk],
) -> None:
    store, _ = disk_store
    answer = IdempotentAnswer("acct", "k", "h", 202, "{}", time.time())
    await store.accept([new_message("+33600000010", carrier="sim")], answer)
    with pytest.raises(IdempotencyConflict):
        await store.accept([new_message("+33600000011", carrier="sim")], answer)
    assert store.health.as_json()["status"] == "ok"
    store.health.write_failed(sqlite3.OperationalError("disk I/O error"))
    assert store.health.reason == "write_failed" and store.health.accepting
    await store.accept([new_message("+33600000012", carrier="sim")])  # a commit clears it
    assert store.health.as_json()["status"] == "ok"
