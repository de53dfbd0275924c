"""Retention: finished records deleted once older than ``[retention]`` says, in small
batches in the background, and the space given back to the file system.

Without it nothing is ever deleted: about 575 bytes a message, ~4 GB an hour at 2,000 msg/s.

What goes (each kind with its own age; 0 keeps it forever):
- messages in a final state created before the cutoff, with their parts, receipts, history
  (``events``) and SMPP-front part records; receipts that never matched, once as old;
- idempotency answers (``Idempotency-Key``);
- handled (or quarantined) interactions (MOs) with their survey answers, and courtesy-reply
  marks; pending ones stay, whatever their age;
- campaigns finished (done, cancelled) before the cutoff, with their audience and digest
  records, and finished list imports.
Never: opt-outs, contacts, lists, tags, inbound numbers, callbacks still owed.

How: one round every ``interval`` seconds. A round runs transactions of at most ``batch``
records of each kind through the store's writer (so the traffic's writes wait for one small
transaction at most, never for a round), until nothing is left to delete, then gives the
freed pages back with ``PRAGMA incremental_vacuum`` in steps. Messages are found by their id
(ids sort by creation time: the cutoff is an id, the search a range of the primary key),
interactions by theirs (in id order, the oldest first, a round stepping over those still
pending by key and stopping at the first young one), idempotency answers by an index on
their time: no round scans a whole table.

Space: a database made by this version has ``auto_vacuum = INCREMENTAL`` (it can only be set
before the first table exists). An older one keeps ``NONE``: pruning still keeps its size flat
(the freed pages are reused by new rows) but never makes it smaller; to convert it, stop the
daemon and run ``VACUUM`` once with ``PRAGMA auto_vacuum = INCREMENTAL`` (see the README's
"Retention"); the daemon says so in its log at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Final

from gateway.config import RetentionConfig
from gateway.logs import log_event

if TYPE_CHECKING:
    from gateway.store.sqlite_db import SqliteDb


INTERACTION_ID_FLOOR: Final = "interaction_id_floor"
"""``meta`` key: the largest interaction id the pruner deleted; new ids go above it."""

log = logging.getLogger("smsgw.retention")

DAY: Final = 86400.0

KINDS: Final = (
    "messages",
    "receipts",
    "idempotency",
    "interactions",
    "campaigns",
    "recipients",
    "imports",
)
"""What a round counts as deleted (``smsgw_retention_deleted_total{kind}``)."""

_FINAL: Final = "('delivered', 'undeliverable', 'expired', 'rejected', 'failed')"
_CAMPAIGN_DONE: Final = "('done', 'cancelled')"

RECIPIENTS_PER_BATCH: Final = 20
"""Campaign audience rows deleted per transaction, as a multiple of ``batch`` (they are a
number and an id each: a million-number audience goes in a hundred small transactions)."""

VACUUM_PAGES: Final = 500
"""Free pages given back per transaction (2 MB of 4 KiB pages, ~5 ms)."""

PAUSE_SECONDS: Final = 0.005
"""Between two transactions of a round: the traffic's writes go first."""


def message_id_before(at: float) -> str:
    """The smallest message id made at or after ``at`` (gateway.core.model.new_message_id: 12 hex
    digits of milliseconds, then random digits): every id below it was made before."""
    return f"{int(at * 1000):012x}"


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Epoch seconds before which each kind goes; None keeps it."""

    messages: float | None
    idempotency: float | None
    interactions: float | None
    campaigns: float | None

    @classmethod
    def at(cls, config: RetentionConfig, now: float) -> Cutoffs:
        def cut(days: float) -> float | None:
            return now - days * DAY if days > 0 else None

        return cls(
            messages=cut(config.messages_days),
            idempotency=cut(config.idempotency_days),
            interactions=cut(config.interactions_days),
            campaigns=cut(config.campaigns_days),
        )


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@dataclass(slots=True)
class Scan:
    """Where a round's walk through the interactions stands (they go oldest first, by id).
    Those still pending are stepped over by key rather than read again: any number of them
    at the head (the inbound side paused, or behind) never holds back the finished ones
    behind them."""

    after: int = 0
    """The largest id looked at so far."""
    done: bool = False
    """True once the walk reached a young interaction or the end of the table."""


INTERACTIONS_PRUNED: Final = "('done', 'quarantined')"
"""Interaction states retention deletes: handled, or set aside after max_attempts. Pending
ones are work still owed and stay, whatever their age."""


def _interactions_to_prune(
    conn: sqlite3.Connection, cutoff: float, batch: int, scan: Scan
) -> list[int]:
    """The next ``batch`` interactions after ``scan.after``: the ids of those old and
    finished; ``scan`` moves past all of them, and is done at the first one too young
    (ids grow with time: the rest are younger) or at the end of the table."""
    if scan.done:
        return []
    rows = conn.execute(
        f"SELECT id, received_at, state IN {INTERACTIONS_PRUNED} FROM interactions"
        " WHERE id > ? ORDER BY id LIMIT ?",
        (scan.after, batch),
    ).fetchall()
    ids: list[int] = []
    for interaction_id, received_at, finished in rows:
        if received_at >= cutoff:
            scan.done = True
            return ids
        scan.after = interaction_id
        if finished:
            ids.append(interaction_id)
    if len(rows) < batch:
        scan.done = True
    return ids


def prune_batch(
    conn: sqlite3.Connection, cutoffs: Cutoffs, batch: int, scan: Scan | None = None
) -> dict[str, int]:
    """One transaction's worth (the caller's): up to ``batch`` records of each kind
    (interactions: ``batch`` looked at from where ``scan`` stands, the finished ones deleted).
    Returns how many of each went (a kind at 0 has nothing left to delete, except
    interactions, whose walk goes on until ``scan.done``)."""
    tables = _tables(conn)
    done = dict.fromkeys(KINDS, 0)
    if cutoffs.messages is not None:
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM messages WHERE id < ? AND status IN {_FINAL} ORDER BY id LIMIT ?",
                (message_id_before(cutoffs.messages), batch),
            )
        ]
        if ids:
            doc = json.dumps(ids)
            for table, column in (
                ("parts", "message_id"),
                ("receipts", "message_id"),
                ("events", "message_id"),
                ("front_parts", "message_id"),
                ("messages", "id"),
            ):
                if table in tables:
                    conn.execute(
                        f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                        (doc,),
                    )
            done["messages"] = len(ids)
        done["receipts"] = conn.execute(
            "DELETE FROM receipts WHERE id IN (SELECT id FROM receipts"
            " WHERE message_id IS NULL AND received_at < ? LIMIT ?)",
            (cutoffs.messages, batch),
        ).rowcount
    if cutoffs.idempotency is not None:
        done["idempotency"] = conn.execute(
            "DELETE FROM idempotency WHERE (account, key) IN (SELECT account, key"
            " FROM idempotency WHERE created_at < ? ORDER BY created_at LIMIT ?)",
            (cutoffs.idempotency, batch),
        ).rowcount
    if cutoffs.interactions is not None:
        ids = _interactions_to_prune(conn, cutoffs.interactions, batch, scan or Scan())
        if ids:
            doc = json.dumps(ids)
            conn.execute(
                "DELETE FROM answers WHERE interaction_id IN (SELECT value FROM json_each(?))",
                (doc,),
            )
            conn.execute(
                "DELETE FROM interactions WHERE id IN (SELECT value FROM json_each(?))", (doc,)
            )
            # Ids are never given twice (export marks and paging rely on it): the largest
            # deleted stays the floor of new ones, even once every row is gone.
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
                " value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                (INTERACTION_ID_FLOOR, max(ids)),
            )
            done["interactions"] = len(ids)
        conn.execute(
            "DELETE FROM courtesy_replies WHERE (scope, source) IN (SELECT scope, source"
            " FROM courtesy_replies WHERE last_at < ? LIMIT ?)",
            (cutoffs.interactions, batch),
        )
    if cutoffs.campaigns is not None and "campaigns" in tables:
        done["campaigns"], done["recipients"] = _prune_campaigns(
            conn, tables, cutoffs.campaigns, batch
        )
        done["imports"] = conn.execute(
            "DELETE FROM contact_imports WHERE id IN (SELECT id FROM contact_imports"
            " WHERE status <> 'running' AND finished_at < ? LIMIT ?)",
            (cutoffs.campaigns, batch),
        ).rowcount
    return done


def _prune_campaigns(
    conn: sqlite3.Connection, tables: set[str], cutoff: float, batch: int
) -> tuple[int, int]:
    """Finished campaigns: their audience in slices, then the campaign itself. Returns
    (campaigns, audience rows) deleted."""
    gone = 0
    budget = batch * RECIPIENTS_PER_BATCH
    campaigns = [
        r[0]
        for r in conn.execute(
            f"SELECT id FROM campaigns WHERE status IN {_CAMPAIGN_DONE} AND finished_at < ?"
            " ORDER BY finished_at LIMIT ?",
            (cutoff, batch),
        )
    ]
    for campaign_id in campaigns:
        deleted = conn.execute(
            "DELETE FROM campaign_recipients WHERE campaign_id = ? AND number IN"
            " (SELECT number FROM campaign_recipients WHERE campaign_id = ? LIMIT ?)",
            (campaign_id, campaign_id, budget),
        ).rowcount
        budget -= deleted
        if budget <= 0:
            break  # more of this audience in the next transaction; the campaign goes last
        for table in (
            "campaign_audience_fixed",
            "campaign_deferred",
            "digests_sent",
            "link_clicks",
        ):
            if table in tables:
                conn.execute(f"DELETE FROM {table} WHERE campaign_id = ?", (campaign_id,))
        conn.execute("DELETE FROM campaigns WHERE id = ?", (campaign_id,))
        gone += 1
    return gone, batch * RECIPIENTS_PER_BATCH - budget


def reclaim(conn: sqlite3.Connection, pages: int) -> int:
    """Give up to ``pages`` free pages back to the file system (incremental vacuum); returns
    how many went. Nothing to do (0) when the database has no incremental auto-vacuum."""
    before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    if before == 0:
        return 0
    # The pragma frees one page per step of its statement, and the sqlite3 module steps a
    # statement that returns no rows only once: one execute per page (~10 us each).
    for _ in range(min(pages, before)):
        conn.execute("PRAGMA incremental_vacuum(1)")
    after = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    return before - after


@dataclass(slots=True)
class RetentionStats:
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    rounds: int = 0
    errors: int = 0
    reclaimed_pages: int = 0


class Pruning:
    """A background pruner of ``[retention]`` (started and stopped by the daemon): one
    round every ``interval`` seconds; a backend gives the round (:meth:`run_once`)."""

    def __init__(self, config: RetentionConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.stats = RetentionStats()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        c = self.config
        return any(
            d > 0
            for d in (c.messages_days, c.idempotency_days, c.interactions_days, c.campaigns_days)
        )

    async def start(self) -> None:
        if not self.enabled:
            log_event(log, "retention.off", reason="every age is 0: nothing is deleted")
            return
        await self._starting()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="retention")

    async def _starting(self) -> None:
        """What a backend says or prepares before the first round."""

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store may be short of space, or closing
                self.stats.errors += 1
                log_event(log, "retention.failed", logging.WARNING, error=repr(exc))
            await asyncio.sleep(self.config.interval)

    async def run_once(self) -> dict[str, int]:
        """One round: batches until nothing is left to delete. Returns what was deleted,
        by kind."""
        raise NotImplementedError


class Retention(Pruning):
    """The background pruner of one SQLite store."""

    def __init__(
        self,
        db: SqliteDb,
        config: RetentionConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, clock)
        self.db = db

    async def _starting(self) -> None:
        mode = await self.db.auto_vacuum()
        if mode != "incremental":
            log_event(
                log,
                "retention.no_incremental_vacuum",
                logging.WARNING,
                auto_vacuum=mode,
                detail="pruned space is reused but not given back to the file system; to"
                " convert, stop the daemon and VACUUM once with auto_vacuum=INCREMENTAL"
                " (README, Retention)",
            )

    async def run_once(self) -> dict[str, int]:
        """One round: batches until nothing is left to delete, then the space given back.
        Returns what was deleted, by kind."""
        cutoffs = Cutoffs.at(self.config, self.clock())
        total = dict.fromkeys(KINDS, 0)
        scan = Scan(done=cutoffs.interactions is None)
        op = partial(prune_batch, cutoffs=cutoffs, batch=self.config.batch, scan=scan)
        while True:
            done: dict[str, int] = await self.db.write_in_thread(op)
            for kind, n in done.items():
                total[kind] += n
                self.stats.deleted[kind] += n
            if not any(done.values()) and scan.done:
                break
            await asyncio.sleep(PAUSE_SECONDS)
        reclaimed = 0
        while True:
            pages: int = await self.db.write_in_thread(partial(reclaim, pages=VACUUM_PAGES))
            reclaimed += pages
            if pages < VACUUM_PAGES:
                break
            await asyncio.sleep(PAUSE_SECONDS)
        self.stats.reclaimed_pages += reclaimed
        self.stats.rounds += 1
        if any(total.values()) or reclaimed:
            log_event(log, "retention.round", reclaimed_pages=reclaimed, **total)
        return total
