"""One SQLite database shared by the store's parts: two connections and one writer.

Writes: every write becomes an *operation* queued for one writer task. The writer takes
every operation waiting, runs them in one transaction (each inside its own SAVEPOINT, so
one failing operation does not take the others down), commits once, and only then
resolves each caller. While a commit is in progress new operations pile up and go together
in the next one, so the commit rate adapts to the load with no timer (group commit).

Reads use a second connection: WAL lets it read the last committed state while the writer
works.

The message store (gateway.store.sqlite), the campaign tables
(gateway.store.sqlite_campaigns), short links (gateway.store.sqlite_links) and the pruner
(gateway.store.retention) each write through the one :class:`SqliteDb` they are given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypedDict, TypeVar

import aiosqlite

from gateway.logs import log_event
from gateway.metrics import Histogram
from gateway.store.base import IdempotencyConflict, StoreError, StoreUnavailable
from gateway.store.health import FreeBytes, StoreHealth, disk_free_bytes, file_id, is_disk_full
from gateway.store.ports import StoreFigures

log = logging.getLogger("smsgw.store")

T = TypeVar("T")

Op = Callable[[aiosqlite.Connection], Awaitable[Any]]
SyncOp = Callable[[sqlite3.Connection], Any]


def _none_as_null(value: None) -> None:
    return None


# A None parameter becomes NULL either way; this only makes it cheap. The sqlite3 module
# binds str, int, float and bytes directly but sends every other value, None included,
# through its adapter lookup, which (with no adapter registered for the type) fails two
# attribute lookups, each raising and formatting an AttributeError: about 0.4 us per None,
# a dozen of them per message (client_ref, callback_url, error, ... when unset). With an
# adapter for None registered, the lookup finds it at once. Process-wide (the sqlite3
# module keeps one registry), and harmless to any other user: NULL stays NULL.
sqlite3.register_adapter(type(None), _none_as_null)


class _InThread:
    """A write operation that runs whole on the writer's thread: plain ``sqlite3`` calls,
    no hop back to the event loop between its statements. A group commit made only of
    these runs as one call on the thread (BEGIN ... COMMIT), instead of one thread round
    trip per statement (each costs tens of microseconds of queueing and wake-ups on the
    gateway's one core: at thousands of commits a second, a large share of its CPU)."""

    __slots__ = ("fn",)

    def __init__(self, fn: SyncOp) -> None:
        self.fn = fn


CACHE_KIB: Final = 32_768
"""Page cache of the writer connection (SQLite's default is 2 MB). The hot rows are the
messages and parts of the last minutes (accepted, submitted, receipted); 32 MB keeps about a
hundred thousand of them in memory, so an update does not read its page back from the OS."""

WAL_CHECKPOINT_PAGES: Final = 10_000
"""WAL pages (4 KiB) before a commit copies them back into the database file (SQLite's default
is 1,000). The hot pages (the newest messages and parts) are rewritten by every commit; a
checkpoint copies each page once however often it changed, so checkpointing ten times less
often copies far fewer pages and fsyncs the database file ten times less often. The WAL
grows to about 40 MB before it is recycled."""

WAL_SIZE_LIMIT: Final = WAL_CHECKPOINT_PAGES * 4096
"""``journal_size_limit``: after a checkpoint resets the WAL, its file is cut back to this
size (SQLite otherwise keeps it at the largest it ever grew, e.g. after a long read held
checkpoints back)."""

WAL_SHARE_OF_HEADROOM: Final = 4
"""The WAL is checkpointed (and truncated) by the health check as soon as it holds more than
1/4 of the space left above the free-space watermark (and more than ``WAL_MIN_CHECKPOINT``):
on a big disk the 40 MB autocheckpoint rules; on a small or nearly full one the WAL stays
small, and a checkpoint (which grows the database file by at most the WAL's size) always
finds the room it needs."""

WAL_MIN_CHECKPOINT: Final = 1 << 20
"""Below this size the WAL is never checkpointed early (1 MiB: a few hundred pages)."""

HEALTH_CHECK_SECONDS: Final = 1.0
"""How often free space and the database file's identity are checked (two stat calls)."""


async def on_thread(db: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(conn, *args)`` on the connection's own thread, with its sqlite3 connection.

    aiosqlite runs every call of a connection on one thread; ``_execute`` queues a function
    there and ``_conn`` is its sqlite3 connection. Both are private, stable across aiosqlite
    releases since 0.17, and exercised by every store test.
    """
    result: T = await db._execute(fn, db._conn, *args)  # type: ignore[no-untyped-call]
    return result


def _run_in_thread(
    conn: sqlite3.Connection, fns: list[SyncOp]
) -> list[tuple[Any, BaseException | None]]:
    """One group commit on the writer's thread: BEGIN, each operation in its own SAVEPOINT
    (one failing operation is rolled back alone and reported to its caller), COMMIT. Any
    failure of BEGIN, a savepoint or COMMIT rolls the whole transaction back and raises."""
    results: list[tuple[Any, BaseException | None]] = []
    several = len(fns) > 1
    conn.execute("BEGIN IMMEDIATE")
    try:
        for fn in fns:
            if several:
                conn.execute("SAVEPOINT op")
            try:
                value = fn(conn)
            except Exception as exc:
                if not several:
                    raise
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                results.append((None, exc))
                continue
            if several:
                conn.execute("RELEASE op")
            results.append((value, None))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        raise
    return results


class DbOptions(TypedDict, total=False):
    """The keyword options of :class:`SqliteDb`, which the stores built on it pass on."""

    min_free_bytes: int
    check_interval: float
    free_bytes: FreeBytes


class SqliteDb:
    """One SQLite file in WAL mode: the write connection and its group-commit writer, the
    read connection, the health monitor (gateway.store.health)."""

    def __init__(
        self,
        path: Path | str,
        synchronous: str = "full",
        *,
        min_free_bytes: int = 0,
        check_interval: float = HEALTH_CHECK_SECONDS,
        free_bytes: FreeBytes = disk_free_bytes,
    ) -> None:
        """``min_free_bytes``: the free-space watermark under which new work is refused
        (see gateway.store.health; 0: never); ``check_interval``: seconds between health
        checks; ``free_bytes``: how free space is read (a test can pass its own)."""
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be full or normal, got {synchronous!r}")
        self.health = StoreHealth(self.path, min_free_bytes)
        self._check_interval = check_interval
        self.free_bytes = free_bytes
        """Reads free space where the file lives (a test may replace it)."""
        self._file_id: tuple[int, int] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._checkpoint_wanted = False
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._ops: list[tuple[Op | _InThread, asyncio.Future[Any]]] = []
        self._urgent: list[tuple[Op | _InThread, asyncio.Future[Any]]] = []
        """Operations on a message's way to the wire (accept, begin_attempts): see
        ``_write_loop``."""
        self._urgent_went_alone = False
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0
        self.ops_committed = 0
        self.commit_latency = Histogram()
        """Seconds per group commit, from BEGIN to COMMIT done."""

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, prepare: Op) -> None:
        """Connect, set the pragmas, run ``prepare`` on the write connection (schema,
        migrations, recovery: before any operation), then start the writer and the
        health monitor. A failure closes what opened and raises StoreError."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db: aiosqlite.Connection | None = None
        reader: aiosqlite.Connection | None = None
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
            # Takes effect only in a database with no table yet (a new one): pruned space
            # can then be given back (gateway.store.retention); an older file keeps NONE.
            await db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(f"PRAGMA synchronous={self.synchronous}")
            await db.execute("PRAGMA foreign_keys=OFF")
            await db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            await db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            await db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            await db.execute("PRAGMA busy_timeout=5000")
            await prepare(db)
            reader = await aiosqlite.connect(self.path, isolation_level=None)
            await reader.execute("PRAGMA busy_timeout=5000")
            await reader.execute("PRAGMA query_only=ON")
        except Exception as exc:
            # Each connection runs on a thread of its own, which would keep the process
            # alive: close what opened (a failed start must exit, not hang).
            for conn in (reader, db):
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        self._db = db
        self._reader = reader
        self._closing = False
        self._file_id = file_id(self.path)
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_loop(), name="store")
        self.check_health()
        self._monitor = loop.create_task(self._monitor_loop(), name="store-health")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        if self._writer is not None:
            await self._writer
            self._writer = None
        for conn in (self._reader, self._db):
            if conn is not None:
                await conn.close()
        self._db = self._reader = None

    # -- health ------------------------------------------------------------------------------

    async def _monitor_loop(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval)
            try:
                self.check_health()
            except Exception as exc:  # a failing stat must not end the checks
                log_event(log, "store.health_check_failed", logging.WARNING, error=repr(exc))

    def check_health(self) -> None:
        """One health check (the monitor runs it every ``check_interval``; tests call it):
        free space, the WAL's size, the file's identity; asks the writer for a checkpoint
        when the WAL takes too much of the space left (see ``WAL_SHARE_OF_HEADROOM``)."""
        free = self.free_bytes(self.path.parent)
        try:
            wal = os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            wal = 0
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            same: bool | None = None
            size = 0
        else:
            same = (st.st_dev, st.st_ino) == self._file_id
            size = st.st_size
        self.health.observe(free, wal, same, size)
        headroom = max(free - self.health.min_free_bytes, 0)
        if wal > WAL_MIN_CHECKPOINT and (
            self.health.short_of_space or wal * WAL_SHARE_OF_HEADROOM > headroom
        ):
            self._checkpoint_wanted = True
            self._wake.set()

    async def auto_vacuum(self) -> str:
        """The database's auto_vacuum mode: none, full or incremental."""
        rows = await self.read("PRAGMA auto_vacuum")
        return {0: "none", 1: "full", 2: "incremental"}.get(int(rows[0][0]), "none")

    def refuse_new_work(self) -> None:
        """Raise StoreUnavailable when the store takes no new work now (see
        gateway.store.health); every refusal is counted."""
        refusal = self.health.refusal()
        if refusal is not None:
            raise StoreUnavailable(refusal)

    async def _checkpoint(self, db: aiosqlite.Connection) -> None:
        """Copy the WAL into the database file and truncate it (between transactions)."""
        try:
            async with db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
                row = await cur.fetchone()
        except Exception as exc:
            self.health.write_failed(exc)
            log_event(log, "store.checkpoint_failed", logging.WARNING, error=repr(exc))
            return
        busy = bool(row and row[0])
        if not busy:
            self.health.checkpoints += 1
        log_event(log, "store.checkpoint", busy=busy, wal_pages=row[1] if row else None)

    # -- group commit ----------------------------------------------------------------------

    def _submit(self, op: Op | _InThread, urgent: bool = False) -> asyncio.Future[Any]:
        if self._db is None or self._closing:
            raise StoreError("store is not open")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._ops).append((op, fut))
        self._wake.set()
        return fut

    async def _write_loop(self) -> None:
        """Group commits, one at a time. Urgent operations (a client waits for its 202, a
        message for the wire) that find other work waiting go first in a transaction of
        their own, so they wait for at most the commit under way and not also for the bulk
        writes (outcomes, receipts) queued meanwhile; the next commit then takes everything,
        so bulk writes are delayed by one small commit at most, never starved."""
        db = self._db
        assert db is not None
        while True:
            if self._checkpoint_wanted:
                self._checkpoint_wanted = False
                await self._checkpoint(db)
            if not self._ops and not self._urgent:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._urgent and self._ops and not self._urgent_went_alone:
                batch, self._urgent = self._urgent, []
                self._urgent_went_alone = True
            else:
                batch = self._urgent + self._ops if self._urgent else self._ops
                self._urgent, self._ops = [], []
                self._urgent_went_alone = False
            await self._run_batch(db, batch)

    async def _run_batch(
        self, db: aiosqlite.Connection, batch: list[tuple[Op | _InThread, asyncio.Future[Any]]]
    ) -> None:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        pending = batch
        started = time.perf_counter()
        try:
            if all(isinstance(op, _InThread) for op, _ in batch):
                # The hot path: the whole transaction in one call on the writer's thread.
                fns = [op.fn for op, _ in batch if isinstance(op, _InThread)]
                outcomes = await on_thread(db, _run_in_thread, fns)
                results = [(fut, v, e) for (_, fut), (v, e) in zip(batch, outcomes, strict=True)]
                batch = []  # committed: nothing left for the loop below
            else:
                await db.execute("BEGIN IMMEDIATE")
            for op, fut in batch:
                if len(batch) > 1:
                    await db.execute("SAVEPOINT op")
                try:
                    if isinstance(op, _InThread):
                        value = await on_thread(db, op.fn)
                    else:
                        value = await op(db)
                except Exception as exc:
                    if len(batch) > 1:
                        await db.execute("ROLLBACK TO op")
                        await db.execute("RELEASE op")
                        results.append((fut, None, exc))
                        continue
                    raise
                if len(batch) > 1:
                    await db.execute("RELEASE op")
                results.append((fut, value, None))
            if batch:
                await db.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(Exception):
                await db.execute("ROLLBACK")
            error = (
                exc if isinstance(exc, StoreError | IdempotencyConflict) else StoreError(str(exc))
            )
            self.health.write_failed(exc)
            for _, fut in pending:
                if not fut.done():
                    fut.set_exception(error)
            return
        self.health.write_succeeded()
        self.commits += 1
        self.ops_committed += len(pending)
        self.commit_latency.observe(time.perf_counter() - started)
        for fut, value, error_ in results:
            if fut.done():
                continue
            if error_ is not None:
                if is_disk_full(error_):
                    self.health.write_failed(error_)
                if isinstance(error_, sqlite3.Error):
                    # The caller sees the store's error, as when its operation ran alone.
                    wrapped = StoreError(str(error_))
                    wrapped.__cause__ = error_
                    error_ = wrapped
                fut.set_exception(error_)
            else:
                fut.set_result(value)

    async def write(self, op: Op) -> Any:
        """Run ``op`` on the write connection inside the next group commit; its result once
        committed."""
        return await self._submit(op)

    async def write_in_thread(self, fn: SyncOp, urgent: bool = False) -> Any:
        """``write`` for an operation made of plain sqlite3 calls (see ``_InThread``);
        ``urgent``: ahead of bulk writes (see ``_write_loop``)."""
        return await self._submit(_InThread(fn), urgent)

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one query on the read connection (the last committed state)."""
        reader = self._reader
        if reader is None:
            raise StoreError("store is not open")
        rows = await reader.execute_fetchall(sql, params)
        return list(rows)

    async def read_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the read connection on its thread (several statements in one
        snapshot, one hop)."""
        reader = self._reader
        if reader is None:
            raise StoreError("store is not open")
        return await on_thread(reader, fn)

    @property
    def reader(self) -> aiosqlite.Connection | None:
        """The read connection (None when closed): for ``on_thread``."""
        return self._reader

    def figures(self) -> StoreFigures:
        """The writer's counters (gateway.store.ports.StoreStats)."""
        return StoreFigures(self.commits, self.ops_committed, self.commit_latency)
