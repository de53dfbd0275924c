"""The store's own health: free space where its file lives, and whether the file the daemon
writes is still the one at its path.

A full disk must not wedge the gateway, and a database deleted or replaced under a running
daemon must not swallow messages unnoticed. The SQLite store checks both every
``check_interval`` seconds (:meth:`StoreHealth.observe`) and on every failed write
(:meth:`StoreHealth.write_failed`), and this object says what follows:

- ``accepting``: new work (messages, MO, imports) may be taken. False for any refusing
  reason: the free space under ``min_free_bytes`` (or a write that found the disk full),
  the file gone or replaced (accepting into an unlinked file loses what is accepted).
- ``sending``: new submit attempts may begin. False only while space is short: the space
  left under the watermark is kept for what is in flight (outcomes and receipts of parts
  already on the wire); the queued messages wait, durable, until space is back.

Space comes back by itself (``resume_free_bytes``, above the watermark so the state does not
flap); a file gone or replaced stays so until the daemon is restarted (after the operator
has restored it): nothing the daemon can do brings the unlinked file back.

Every change of state is logged (an error when the store refuses work, info when it is back)
and reminded every ``REMIND_SECONDS`` while it lasts; refusals are counted per reason.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from gateway.logs import log_event

log = logging.getLogger("smsgw.store")

DISK_LOW: Final = "disk_low"
"""Free space under the watermark: new work refused, the rest kept for what is in flight."""
DISK_FULL: Final = "disk_full"
"""A write failed for want of space (SQLITE_FULL): as DISK_LOW until space is back."""
FILE_MISSING: Final = "file_missing"
"""The database path no longer exists: the daemon writes into an unlinked file."""
FILE_REPLACED: Final = "file_replaced"
"""The path names another file than the one opened (restored, moved, copied over)."""
DB_REPLACED: Final = "db_replaced"
"""PostgreSQL: the DSN now reaches another database than the one opened (its
``store_identity`` differs or is gone): refused until the daemon is restarted."""
DB_READ_ONLY: Final = "db_read_only"
"""PostgreSQL: the server takes no writes (a standby in recovery, or
``default_transaction_read_only``): refused until it takes them again."""
DB_UNREACHABLE: Final = "db_unreachable"
"""PostgreSQL: the last check could not reach the database (down, refusing connections, no
answer): refused until a check reaches it again."""
WRITE_FAILED: Final = "write_failed"
"""The last commit failed for another reason (I/O error...): shown, cleared by the next
commit that succeeds; work is not refused for it (trying is how the store finds out)."""

REFUSING: Final = frozenset(
    {DISK_LOW, DISK_FULL, FILE_MISSING, FILE_REPLACED, DB_REPLACED, DB_READ_ONLY, DB_UNREACHABLE}
)
SHORT_OF_SPACE: Final = frozenset({DISK_LOW, DISK_FULL})
REASONS: Final = (
    DISK_FULL,
    DISK_LOW,
    FILE_MISSING,
    FILE_REPLACED,
    DB_REPLACED,
    DB_READ_ONLY,
    DB_UNREACHABLE,
    WRITE_FAILED,
)
"""Every reason, most urgent first (``reason`` in /healthz is the first one present)."""

REMIND_SECONDS: Final = 60.0
"""While degraded, the state is logged again this often (with the refusals since)."""

SQLITE_FULL: Final = 13
"""sqlite3.OperationalError.sqlite_errorcode (primary code) for 'database or disk is full'."""

FreeBytes = Callable[[Path], int]
"""Free bytes, for an unprivileged writer, on the file system holding a directory."""


def disk_free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


FileId = tuple[int, int]
"""(st_dev, st_ino) of the database file."""


def file_id(path: Path) -> FileId | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def is_disk_full(exc: BaseException) -> bool:
    """Whether a failed write failed for want of space."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF == SQLITE_FULL:
        return True
    cause = exc.__cause__ or exc.__context__
    text = str(exc).lower()
    return "disk is full" in text or (cause is not None and is_disk_full(cause))


class StoreHealth:
    """The state above, for one database file (SQLite) or one database on a server
    (PostgreSQL: ``path`` is ``user@host:port/database``, and gateway.store.postgres.watch
    sets and clears the ``db_*`` reasons and ``disk_full``)."""

    def __init__(
        self,
        path: Path | str,
        min_free_bytes: int,
        resume_free_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.min_free_bytes = min_free_bytes
        self.resume_free_bytes = (
            resume_free_bytes
            if resume_free_bytes is not None
            else min_free_bytes + max(min_free_bytes // 4, 1 << 20)
        )
        self._clock = clock
        self.reasons: dict[str, str] = {}
        """Reason -> one sentence for people."""
        self.free_bytes: int | None = None
        self.wal_bytes = 0
        self.file_bytes = 0
        """Size of the database file itself (the WAL aside)."""
        self.refused: dict[str, int] = {}
        """New work refused, by the reason given (counted for the metric)."""
        self.checkpoints = 0
        """WAL checkpoints run because space ran short."""
        self._refused_since_log = 0
        self._logged_at = 0.0

    # -- what the rest asks ----------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return not (self.reasons.keys() & REFUSING)

    @property
    def sending(self) -> bool:
        return not (self.reasons.keys() & SHORT_OF_SPACE)

    @property
    def short_of_space(self) -> bool:
        return bool(self.reasons.keys() & SHORT_OF_SPACE)

    @property
    def reason(self) -> str | None:
        for r in REASONS:
            if r in self.reasons:
                return r
        return None

    def refusal(self) -> str | None:
        """None when new work may be taken; else why not (and the refusal is counted)."""
        if self.accepting:
            return None
        reason = self.reason
        assert reason is not None
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self._refused_since_log += 1
        return f"{reason}: {self.reasons[reason]}"

    def as_json(self) -> dict[str, Any]:
        """``store`` in /healthz."""
        return {
            "status": "degraded" if self.reasons else "ok",
            "reason": self.reason,
            "reasons": {r: self.reasons[r] for r in REASONS if r in self.reasons},
            "accepting": self.accepting,
            "sending": self.sending,
            "path": str(self.path),
            "free_bytes": self.free_bytes,
            "min_free_bytes": self.min_free_bytes,
            "wal_bytes": self.wal_bytes,
            "file_bytes": self.file_bytes,
        }

    # -- what the store tells it -----------------------------------------------------------

    def observe(
        self, free_bytes: int, wal_bytes: int, same_file: bool | None, file_bytes: int = 0
    ) -> None:
        """One periodic check: free bytes on the file system, the WAL's size, and whether
        the path still names the file opened (None: the path is gone)."""
        self.free_bytes = free_bytes
        self.wal_bytes = wal_bytes
        self.file_bytes = file_bytes
        free = _mib(free_bytes)
        if free_bytes < self.min_free_bytes:
            self._set(
                DISK_LOW,
                f"{free} free on {Path(self.path).parent}, below the {_mib(self.min_free_bytes)}"
                " watermark: new work is refused, the rest is kept for what is in flight",
            )
        elif free_bytes >= self.resume_free_bytes:
            self._clear(DISK_LOW, free=free)
            self._clear(DISK_FULL, free=free)
        if same_file is None:
            self._set(
                FILE_MISSING,
                f"{self.path} was deleted while the daemon runs: what it writes now is lost"
                " at exit; restore the file and restart",
            )
        elif not same_file:
            self._set(
                FILE_REPLACED,
                f"{self.path} is no longer the file the daemon opened (replaced or moved):"
                " restart the daemon to use the file now at the path",
            )
        self._remind()

    def write_failed(self, exc: BaseException) -> None:
        """A write failed: for want of space, or in the storage (I/O error, corrupt page,
        locked past the busy timeout). What an operation refused on purpose (a constraint,
        an idempotency conflict, a check of its own) says nothing about the store."""
        if is_disk_full(exc):
            self._set(DISK_FULL, f"a write failed: {exc}")
        elif isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.IntegrityError):
            self._set(WRITE_FAILED, f"a write failed: {exc}")

    def write_succeeded(self) -> None:
        if WRITE_FAILED in self.reasons:
            self._clear(WRITE_FAILED)

    def degrade(self, reason: str, detail: str) -> None:
        """Set ``reason`` (one of :data:`REASONS`) with a sentence for people, logged when
        it is new (a backend's own checks: gateway.store.postgres.watch)."""
        self._set(reason, detail)

    def recover(self, reason: str, **fields: Any) -> None:
        """Clear ``reason``, logged when it was set."""
        self._clear(reason, **fields)

    def remind(self) -> None:
        """Log the state again when it has lasted ``REMIND_SECONDS`` since the last log."""
        self._remind()

    # -- transitions -----------------------------------------------------------------------

    def _set(self, reason: str, detail: str) -> None:
        if reason in self.reasons:
            self.reasons[reason] = detail
            return
        self.reasons[reason] = detail
        self._logged_at = self._clock()
        log_event(
            log,
            "store.degraded",
            logging.ERROR,
            reason=reason,
            detail=detail,
            accepting=self.accepting,
            sending=self.sending,
        )

    def _clear(self, reason: str, **fields: Any) -> None:
        if self.reasons.pop(reason, None) is None:
            return
        log_event(
            log,
            "store.recovered",
            reason=reason,
            still_degraded=",".join(self.reasons) or "no",
            refused=self._refused_since_log,
            **fields,
        )
        if not self.reasons:
            self._refused_since_log = 0

    def _remind(self) -> None:
        if not self.reasons:
            return
        now = self._clock()
        if now - self._logged_at < REMIND_SECONDS:
            return
        self._logged_at = now
        log_event(
            log,
            "store.still_degraded",
            logging.ERROR,
            reasons=",".join(self.reasons),
            refused=self._refused_since_log,
            free=_mib(self.free_bytes or 0),
        )
        self._refused_since_log = 0


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
