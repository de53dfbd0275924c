"""What a node watches of its PostgreSQL database: its own work (``StoreStats`` for
``/metrics``) and the database's health (``StoreHealth`` for ``/healthz`` and refusals).

**Figures** (``smsgw_store_*`` in /metrics, gateway.app.observe) from every statement this
node's pool runs (asyncpg's query logger, one callback a statement, no I/O):

- ``smsgw_store_commits``: transactions this node committed: each ``COMMIT`` of a
  transaction, and each write statement run on its own (autocommit);
- ``smsgw_store_operations``: write statements committed (``INSERT``, ``UPDATE``,
  ``DELETE``; an ``executemany`` is one) by this node; a transaction that only read is
  not a commit;
- ``smsgw_store_commit_seconds``: the round trip of each ``COMMIT`` (the server's WAL flush:
  what "durable" waits for), or of the lone write statement.

**Health** (gateway.store.health): free disk space is the server's business, invisible to a
client, so a PostgreSQL store says instead what a node can see and must act on. Every
``check_interval`` seconds (``[store] health_check_interval``) one statement asks for the
database's identity (``store_identity``, made by migration 4), whether it takes writes
(``transaction_read_only``: a standby in recovery, or ``default_transaction_read_only``) and
its size (``pg_database_size``):

- ``db_unreachable``: the check failed (server down, refusing connections, no answer
  within the check's timeout); cleared by the next check that succeeds;
- ``db_read_only``: the server takes no writes; cleared once it takes them;
- ``db_replaced``: the DSN reaches another database than the one opened (another identity,
  or none): work is refused until the daemon restarts (the operator decides which database
  is the right one);
- ``disk_full``: a statement failed for want of space on the server (SQLSTATE 53100);
  cleared by the next commit that succeeds.

Each of these refuses new work (``accepting`` false: /healthz answers 503, the intake and
the front refuse with the reason); only ``disk_full`` also stops new attempts (``sending``).
In /healthz, ``path`` is ``user@host:port/database`` (never the password), ``file_bytes``
the database's size, ``free_bytes`` null and ``min_free_bytes``/``wal_bytes`` 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import asyncpg

from gateway.logs import log_event
from gateway.store.base import StoreUnavailable
from gateway.store.health import (
    DB_READ_ONLY,
    DB_REPLACED,
    DB_UNREACHABLE,
    DISK_FULL,
    StoreHealth,
)
from gateway.store.ports import StoreFigures

log = logging.getLogger("smsgw.store")

CHECK_TIMEOUT: Final = 10.0
"""Seconds the health statement may take (connecting included) before the database counts
as unreachable: well above a loaded server's answer, well below a load balancer's patience."""

ACQUIRE_TIMEOUT: Final = 30.0
"""Seconds the check waits for a connection of the pool: a pool busy with the traffic is
not an unreachable database (the check is skipped, and logged)."""

_WRITES: Final = ("INSERT", "UPDATE", "DELETE")

CHECK_SQL: Final = (
    "SELECT (SELECT id::text FROM store_identity), current_setting('transaction_read_only'),"
    " pg_database_size(current_database())"
)


class Pending:
    """Write statements of a connection's open transaction, counted once it commits."""

    __slots__ = ("writes",)

    def __init__(self) -> None:
        self.writes = 0


class PgWatch:
    """The figures and the health of one node's PostgreSQL store."""

    def __init__(
        self,
        server: str,
        check_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health = StoreHealth(server, 0, clock=clock)
        self.health.free_bytes = None
        self.check_interval = check_interval
        self.identity: str | None = None
        """The ``store_identity`` id of the database opened (read at open)."""
        self.checks_failed = 0
        self._figures = StoreFigures()
        self._task: asyncio.Task[None] | None = None

    # -- StoreStats ------------------------------------------------------------------------

    def figures(self) -> StoreFigures:
        return self._figures

    async def attach(self, conn: Any) -> None:
        """Count what ``conn`` runs (the pool's ``init``, once per connection)."""
        pending = Pending()

        def logged(record: Any) -> None:
            self._statement(conn, pending, record)

        conn.add_query_logger(logged)

    def _statement(self, conn: Any, pending: Pending, record: Any) -> None:
        """One statement ``conn`` ran (called on the loop's next turn, before any later
        answer of the server is read: ``conn``'s transaction state is the statement's)."""
        query = record.query.lstrip()
        if record.exception is not None:
            self._failed(record.exception)
            return
        if query.startswith("COMMIT"):
            if pending.writes:  # a transaction that only read commits nothing of ours
                self._figures.operations += pending.writes
                self._committed(record.elapsed)
            pending.writes = 0
        elif query.startswith("ROLLBACK"):
            pending.writes = 0
        elif query[:6].upper() in _WRITES:
            if not conn.is_closed() and conn.is_in_transaction():
                pending.writes += 1
            else:  # run on its own: the statement was its own commit
                self._figures.operations += 1
                self._committed(record.elapsed)

    def _committed(self, seconds: float) -> None:
        self._figures.commits += 1
        self._figures.commit_seconds.observe(seconds)
        if DISK_FULL in self.health.reasons:
            self.health.recover(DISK_FULL)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncpg.DiskFullError):
            self.health.degrade(
                DISK_FULL,
                f"the PostgreSQL server is out of space: {exc}; new work is refused, the"
                " rest is kept for what is in flight",
            )
        elif isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
            self.health.degrade(DB_READ_ONLY, _read_only(self.health.path))

    # -- health ----------------------------------------------------------------------------

    async def start(self, pool: Any) -> None:
        """At open (the schema migrated): read the database's identity, then check every
        ``check_interval`` seconds (0: only at open)."""
        await self.check(pool)
        if self.check_interval > 0:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(pool), name="store-health"
            )

    def cancel(self) -> None:
        """Stop checking now (a crash: the pool is dropped)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self, pool: Any) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self.check(pool)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not stop the checks
                log_event(log, "store.health_check_failed", logging.WARNING, error=repr(exc))

    async def check(self, pool: Any) -> None:
        """One check (the loop runs it; tests call it)."""
        h = self.health
        try:
            conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT)
        except TimeoutError:
            log_event(
                log,
                "store.health_check_skipped",
                logging.WARNING,
                detail=f"no connection of the pool free within {ACQUIRE_TIMEOUT:.0f} s",
            )
            return
        except Exception as exc:  # connecting failed: the server is down or refuses us
            self._unreachable(exc)
            return
        try:
            row = await conn.fetchrow(CHECK_SQL, timeout=CHECK_TIMEOUT)
        except asyncpg.UndefinedTableError:
            row = (None, None, None)
        except Exception as exc:
            self._unreachable(exc)
            return
        finally:
            with contextlib.suppress(Exception):
                await pool.release(conn)
        identity, read_only, size = row
        if DB_UNREACHABLE in h.reasons:
            h.recover(DB_UNREACHABLE)
        if self.identity is None:
            self.identity = identity
        if identity is None or identity != self.identity:
            h.degrade(
                DB_REPLACED,
                f"{h.path} is no longer the database the daemon opened (store_identity"
                f" {identity or 'missing'}, opened {self.identity}): restart the daemon once"
                " the DSN reaches the right database",
            )
        if read_only == "on":
            h.degrade(DB_READ_ONLY, _read_only(h.path))
        elif read_only == "off" and DB_READ_ONLY in h.reasons:
            h.recover(DB_READ_ONLY)
        if size is not None:
            h.file_bytes = int(size)
        h.remind()

    def _unreachable(self, exc: BaseException) -> None:
        self.checks_failed += 1
        what = str(exc) or type(exc).__name__
        self.health.degrade(
            DB_UNREACHABLE,
            f"cannot reach PostgreSQL {self.health.path}: {what}; new work is refused until"
            " it answers again",
        )


def _read_only(server: str | Any) -> str:
    return (
        f"PostgreSQL {server} takes no writes (a standby, or default_transaction_read_only):"
        " new work is refused until it does"
    )


UNREACHABLE: Final = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.ObjectNotInPrerequisiteStateError,  # "database ... not accepting connections"
)
"""Errors that say the database cannot be reached (connecting, or the connection lost)."""


def is_unreachable(exc: BaseException) -> bool:
    return isinstance(exc, UNREACHABLE) and not isinstance(exc, asyncpg.LockNotAvailableError)


class PgWatched:
    """The store's side of the watch (mixed into PgStore, which sets ``watch``)."""

    watch: PgWatch

    @contextlib.asynccontextmanager
    async def reaching(self) -> AsyncIterator[None]:
        """Around a read that comes before new work (the intake's opt-out check): the
        database out of reach is a refusal (StoreUnavailable: 503 with the reason, counted),
        not an internal error, and the health says so at once. Not around writes: a
        connection lost during a commit leaves its outcome unknown, which a refusal
        ("nothing was accepted") would misstate."""
        try:
            yield
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            self.watch._unreachable(exc)
            raise StoreUnavailable(self.watch.health.refusal() or str(exc)) from None

    def figures(self) -> StoreFigures:
        """``StoreStats``: what this node's pool committed."""
        return self.watch.figures()

    @property
    def health(self) -> StoreHealth:
        return self.watch.health

    def refuse_new_work(self) -> None:
        """Raise StoreUnavailable when the database takes no new work now (every refusal
        counted, by reason)."""
        refusal = self.watch.health.refusal()
        if refusal is not None:
            raise StoreUnavailable(refusal)
