"""``PgStore``: the ports the PostgreSQL backend keeps so far (gateway.store.postgres).

Intake (``accept``, ``find_idempotent``), ``get_message``, the queue (``load_pending``,
``begin_attempts``, ``record_outcomes``), opt-outs and claims, over an asyncpg pool shared
by every node of a cluster. Each call is one short transaction (a long one holds back
vacuum, and a ``SKIP LOCKED`` queue degrades behind it).

- ``load_pending`` claims with ``UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED LIMIT
  n) RETURNING``: two nodes loading at once never get the same message, and neither waits
  for the other's rows.
- ``record_outcomes`` applies the pure ledger (gateway.core.ledger) to the parts read under
  ``FOR UPDATE``: the outcome, then the receipts held for the part (they arrived before its
  response), a final state sticking; the message's status is ``settle``d from its parts and
  what a change emits (HTTP callbacks, front receipts) is written in the same transaction.
  Messages are locked in id order, so concurrent batches never deadlock.
- Ids that leave the process: message ids are the caller's; callback, receipt, event and
  front outbox ids come from sequences (identity columns): never given twice, even after a
  rollback or a restart.
- Wakes (gateway.store.ports.Wakeups): a transaction that leaves work any node may take
  (messages accepted unclaimed, claims given back, new callbacks or front outbox items)
  sends ``NOTIFY`` on its kind's channel (``claims.WAKE_CHANNELS``) with the carrier or
  account as payload, once per kind and key: PostgreSQL delivers it at the commit, and only
  then. ``listen`` keeps one connection of its own ``LISTEN``ing, reconnected when it drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import asyncpg

from gateway.config import StoreConfig
from gateway.core import ledger
from gateway.core.ledger import SUBMITTING, PartState
from gateway.core.model import (
    IncomingReceipt,
    MessageStatus,
    MessageView,
    NewMessage,
    OutboundMessage,
    StatusChange,
    SubmitOutcome,
)
from gateway.logs import log_event
from gateway.store import rows as store_rows
from gateway.store import sql_text
from gateway.store.base import (
    CALLBACK_PARKED_AT,
    FRONT_PART_FAILED,
    FRONT_PART_HELD,
    FRONT_PART_JOINED,
    NO_RECEIPT,
    Callback,
    CallbackView,
    FrontItem,
    FrontPart,
    FrontPartStatus,
    IdempotencyConflict,
    IdempotentAnswer,
    LinkCodeTaken,
    StoreError,
)
from gateway.store.claims import (
    WAKE_CALLBACKS,
    WAKE_CHANNELS,
    WAKE_FRONT,
    WAKE_KINDS,
    WAKE_QUEUE,
    ClaimSettings,
)
from gateway.store.ports import (
    CallbackOutbox,
    CampaignReports,
    Claims,
    FrontOutbox,
    FrontParts,
    InboundNumbers,
    InteractionExport,
    Interactions,
    Lifecycle,
    MessageEdits,
    MessageIntake,
    MessageReads,
    MoLog,
    OptOuts,
    Queue,
    Receipts,
    StoreStats,
    Wakeups,
)
from gateway.store.postgres.connect import connect, create_pool, server_of
from gateway.store.postgres.inbound import PgInbound
from gateway.store.postgres.messages import PgMessages
from gateway.store.postgres.migrations import migrate
from gateway.store.postgres.reports import PgReports
from gateway.store.postgres.watch import PgWatch, PgWatched
from gateway.store.shared import FrontPartsSettling, log_requeued_taken

log = logging.getLogger(__name__)

ALL_OPT_OUT = "*"
"""``opt_outs.sender`` of an opt-out from every sender (as in the SQLite store)."""

CLAIMABLE = "(claimed_by IS NULL OR claimed_by = $2 OR claim_until <= $3)"
"""This node may claim the row (parameters $2: node id, $3: now)."""

CLAIM_TABLES = (
    ("messages", " AND status IN ('accepted', 'queued')"),
    ("callbacks", ""),
    ("front_outbox", ""),
    ("campaigns", " AND status IN ('running', 'scheduled')"),
    ("contact_imports", " AND status = 'running'"),
    ("interactions", " AND state = 'pending'"),
)
"""Tables whose rows this backend claims (gateway.store.claims), each with the condition
of its rows still live."""

CLAIM_WAKES = {"messages": WAKE_QUEUE, "callbacks": WAKE_CALLBACKS, "front_outbox": WAKE_FRONT}
"""What a release of each table's claims wakes the other nodes for (a campaign or an import
released wakes nobody: a runner looks again every few seconds at a campaign another node
held, and an import left running is failed at a node's start; pending interactions are
taken by each node's periodic takeover look, gateway.takeover)."""

LISTEN_RETRY_SECONDS = (1.0, 30.0)
"""The listening connection, when it drops: reconnect after the first delay, doubling up to
the second (the polling covers the wakes lost meanwhile)."""

_TAKEN_FROM = "CASE WHEN claimed_by <> $2 THEN claimed_by END AS held"
"""The node whose claim on a row a claiming read takes over (its claim lapsed), or NULL
(nobody's, or this node's own); $2: this node's id."""

_PENDING_COLUMNS = (
    "id, dest, sender, text, encoding, carrier, priority, created_at, validity_until,"
    " scheduled_at, registered_delivery, possible_duplicate"
)
"""What ``load_pending`` reads of a message (``rows.outbound_messages``)."""

_FRONT_PART = (
    "SELECT part_id, message_id, account, source, destination, ref, total, seq, pdu,"
    " received_at, state FROM front_parts"
)

_INSERT_IDEMPOTENCY = sql_text.numbered(sql_text.INSERT_IDEMPOTENCY)
_INSERT_FRONT_OUTBOX = sql_text.numbered(sql_text.INSERT_FRONT_OUTBOX)
_UNMATCHED_KEPT = sql_text.numbered(sql_text.UNMATCHED_KEPT)

_MESSAGE_COLUMNS = (
    "id, account, client_ref, sender, dest, text, encoding, parts, carrier, priority,"
    " campaign_id, callback_url, validity_until, scheduled_at, registered_delivery, status,"
    " created_at, updated_at, claimed_by, claim_until"
)


class PgStore(PgMessages, PgInbound, PgReports, PgWatched, FrontPartsSettling):
    """The kept ports on one PostgreSQL database (its schema migrated at ``open``); message
    edits and lists: :class:`PgMessages`; MO and the interaction log: :class:`PgInbound`;
    reports: :class:`PgReports`."""

    def __init__(
        self, config: StoreConfig, data_dir: Path, claims: ClaimSettings | None = None
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.claims = claims or ClaimSettings()
        self.watch = PgWatch(server_of(config.dsn), config.health_check_interval)
        self._pool: Any = None
        self._listener: asyncio.Task[None] | None = None
        self.listen_connects = 0
        """Times the listening connection was (re)made (tests, /metrics)."""

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise StoreError("the PostgreSQL store is not open")
        return self._pool

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self._pool = await create_pool(
            self.config, self.data_dir, f"smsgw:{self.claims.node_id}", self.watch.attach
        )
        try:
            async with self._pool.acquire() as conn:
                await migrate(conn)
            await self._requeue_in_flight(time.time())
            await self.watch.start(self._pool)
        except BaseException:
            await self.watch.stop()
            await self._pool.close()
            self._pool = None
            raise

    async def close(self) -> None:
        await self._stop_listening()
        await self.watch.stop()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def terminate(self) -> None:
        """Drop every connection at once, as a killed process would (tests: a crash)."""
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None
        self.watch.cancel()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()

    async def _requeue_in_flight(self, now: float) -> None:
        """At open: parts left ``submitting`` (a crash mid-send) of messages this node may
        claim go back to ``queued`` (``ledger.requeue_in_flight``), their messages flagged
        possible_duplicate for good; another live node's parts in flight are its own."""
        async with self.pool.acquire() as conn, conn.transaction():
            ids = [
                r[0]
                for r in await conn.fetch(
                    "SELECT m.id FROM messages m WHERE m.status IN ('accepted', 'queued')"
                    f" AND {CLAIMABLE.replace('claimed_by', 'm.claimed_by')}"
                    " AND EXISTS (SELECT 1 FROM parts p WHERE p.message_id = m.id"
                    " AND p.status = $1) ORDER BY m.id FOR UPDATE OF m",
                    SUBMITTING,
                    self.claims.node_id,
                    now,
                )
            ]
            if not ids:
                return
            await conn.execute(
                "UPDATE messages SET possible_duplicate = true WHERE id = ANY($1::text[])", ids
            )
            done = await conn.execute(
                "UPDATE parts SET status = 'queued' WHERE status = $1"
                " AND message_id = ANY($2::text[])",
                SUBMITTING,
                ids,
            )
        log_event(
            log,
            "store.requeued_in_flight",
            logging.WARNING,
            messages=len(ids),
            parts=int(done.split()[-1]),
            detail="begun before a crash: sent again, flagged possible_duplicate",
        )

    # -- wakes (gateway.store.ports.Wakeups) ------------------------------------------------

    async def listen(self, wake: Callable[[str, str], None]) -> None:
        if self._listener is not None:
            return
        connected = asyncio.get_running_loop().create_future()
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(wake, connected), name="store-listen"
        )
        # Returns once the first connection is made (a wake sent after it is heard), or
        # its first attempt failed (the task keeps trying).
        await asyncio.shield(connected)

    async def _stop_listening(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(
        self, wake: Callable[[str, str], None], connected: asyncio.Future[None]
    ) -> None:
        """Keep a connection LISTENing on every wake channel; when it drops, make another
        (backing off) and wake every kind: what was notified meanwhile is lost."""
        delay, most = LISTEN_RETRY_SECONDS
        kinds = {channel: kind for kind, channel in WAKE_CHANNELS.items()}

        def heard(_conn: Any, _pid: int, channel: str, payload: str) -> None:
            kind = kinds.get(channel)
            if kind is not None:
                wake(kind, payload)

        while True:
            conn: Any = None
            try:
                conn = await connect(
                    self.config, self.data_dir, f"smsgw:{self.claims.node_id}:listen"
                )
                lost = asyncio.get_running_loop().create_future()
                conn.add_termination_listener(_resolver(lost))
                for channel in kinds:
                    await conn.add_listener(channel, heard)
            except asyncio.CancelledError:
                if conn is not None:
                    conn.terminate()
                raise
            except Exception as exc:
                if conn is not None:
                    conn.terminate()
                log_event(
                    log,
                    "store.listen_failed",
                    logging.WARNING,
                    error=str(exc) or type(exc).__name__,
                    retry_seconds=delay,
                )
                if not connected.done():  # listen() returns: the polling covers meanwhile
                    connected.set_result(None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, most)
                continue
            self.listen_connects += 1
            if not connected.done():
                connected.set_result(None)
            if self.listen_connects > 1:  # a new connection after a drop: wake every kind
                log_event(log, "store.listening_again", connects=self.listen_connects)
                for kind in WAKE_KINDS:
                    wake(kind, "")
            delay = LISTEN_RETRY_SECONDS[0]
            try:
                await lost
            except asyncio.CancelledError:
                conn.terminate()
                raise
            log_event(log, "store.listen_lost", logging.WARNING, retry_seconds=delay)
            await asyncio.sleep(delay)

    # -- claims ----------------------------------------------------------------------------

    async def renew_claims(self, now: float) -> int:
        count = 0
        async with self.pool.acquire() as conn:
            for table, live in CLAIM_TABLES:
                done = await conn.execute(
                    f"UPDATE {table} SET claim_until = $2 WHERE claimed_by = $1{live}",
                    self.claims.node_id,
                    self.claims.until(now),
                )
                count += int(done.split()[-1])
        return count

    async def release_claims(self) -> int:
        count = 0
        async with self.pool.acquire() as conn:
            for table, live in CLAIM_TABLES:
                async with conn.transaction():
                    done = await conn.execute(
                        f"UPDATE {table} SET claimed_by = NULL, claim_until = NULL"
                        f" WHERE claimed_by = $1{live}",
                        self.claims.node_id,
                    )
                    released = int(done.split()[-1])
                    wake = CLAIM_WAKES.get(table)
                    if released and wake is not None:  # another node may take them at once
                        await _notify(conn, wake, [""])
                count += released
        return count

    # -- intake ----------------------------------------------------------------------------

    async def accept(
        self,
        messages: Sequence[NewMessage],
        idempotency: IdempotentAnswer | None = None,
        begun: Collection[str] = (),
        unclaimed: Collection[str] = (),
    ) -> None:
        self.refuse_new_work()  # the database unreachable, read-only, replaced or full
        me, lease = self.claims.node_id, self.claims.seconds
        msg_rows, part_rows, link_rows = store_rows.intake_rows(
            messages, begun, me, lease, bool, unclaimed
        )
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if idempotency is not None:
                    await conn.execute(
                        _INSERT_IDEMPOTENCY, *store_rows.idempotency_row(idempotency)
                    )
                await conn.executemany(
                    f"INSERT INTO messages({_MESSAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6,"
                    " $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                    msg_rows,
                )
                await conn.executemany(
                    "INSERT INTO parts(message_id, part, status, attempts) VALUES ($1, $2, $3, $4)",
                    part_rows,
                )
                if link_rows:
                    await conn.executemany(
                        "INSERT INTO links(code, message_id, campaign_id, number, target,"
                        " created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                        link_rows,
                    )
                if unclaimed:  # for a node with a bind of their carrier
                    await _notify(
                        conn, WAKE_QUEUE, [m.carrier for m in messages if m.id in unclaimed]
                    )
        except asyncpg.UniqueViolationError as exc:
            constraint = exc.constraint_name or ""
            if constraint.startswith("idempotency") and idempotency is not None:
                raise IdempotencyConflict(idempotency.key) from None
            if constraint.startswith("links"):
                raise LinkCodeTaken("a short link code is taken") from None
            raise StoreError(f"accept refused: {constraint or 'a unique key'} taken") from None

    async def find_idempotent(self, account: str, key: str) -> IdempotentAnswer | None:
        row = await self.pool.fetchrow(
            "SELECT account, key, request_hash, status, body, created_at FROM idempotency"
            " WHERE account = $1 AND key = $2",
            account,
            key,
        )
        return IdempotentAnswer(*row) if row is not None else None

    async def get_message(self, message_id: str) -> MessageView | None:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            m = await conn.fetchrow(
                "SELECT id, status, dest, sender, encoding, created_at, client_ref,"
                " campaign_id, carrier, possible_duplicate, error, account FROM messages"
                " WHERE id = $1",
                message_id,
            )
            if m is None:
                return None
            part_rows = await conn.fetch(
                "SELECT part, status, carrier, carrier_message_id, attempts, error,"
                " submitted_at FROM parts WHERE message_id = $1 ORDER BY part",
                message_id,
            )
            receipt_rows = await conn.fetch(
                "SELECT part, status, state, error, received_at, carrier_message_id"
                " FROM receipts WHERE message_id = $1 ORDER BY id",
                message_id,
            )
            event_rows = await conn.fetch(
                "SELECT part, at, status, detail FROM events WHERE message_id = $1 ORDER BY id",
                message_id,
            )
        return store_rows.message_view(m, part_rows, receipt_rows, event_rows)

    # -- opt-outs --------------------------------------------------------------------------

    async def opted_out(self, numbers: Sequence[str], sender: str) -> set[str]:
        async with self.reaching():  # the intake's first read: out of reach is a 503
            rows = await self.pool.fetch(
                "SELECT DISTINCT number FROM opt_outs WHERE number = ANY($1::text[])"
                " AND sender IN ($2, $3)",
                list(dict.fromkeys(numbers)),
                sender,
                ALL_OPT_OUT,
            )
        return {r[0] for r in rows}

    async def add_opt_out(self, number: str, sender: str | None, source: str, at: float) -> None:
        await self.pool.execute(
            "INSERT INTO opt_outs(number, sender, source, created_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (number, sender) DO UPDATE SET source = excluded.source,"
            " created_at = excluded.created_at",
            number,
            sender or ALL_OPT_OUT,
            source,
            at,
        )

    async def remove_opt_out(self, number: str, sender: str | None) -> None:
        if sender is None:
            await self.pool.execute("DELETE FROM opt_outs WHERE number = $1", number)
        else:
            await self.pool.execute(
                "DELETE FROM opt_outs WHERE number = $1 AND sender = $2", number, sender
            )

    async def lift_opt_out(self, number: str, sender: str) -> None:
        await self.pool.execute(
            "DELETE FROM opt_outs WHERE number = $1 AND sender IN ($2, $3)",
            number,
            sender,
            ALL_OPT_OUT,
        )

    # -- the queue -------------------------------------------------------------------------

    async def load_pending(
        self,
        after: str | None,
        limit: int,
        now: float | None = None,
        carriers: Collection[str] | None = None,
    ) -> list[OutboundMessage]:
        now = time.time() if now is None else now
        of_carriers = "" if carriers is None else " AND carrier = ANY($6::text[])"
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "UPDATE messages AS m SET claimed_by = $2, claim_until = $5"
                " FROM (SELECT id FROM messages WHERE status IN ('accepted', 'queued')"
                f" AND id > $1 AND {CLAIMABLE}{of_carriers} ORDER BY id LIMIT $4"
                " FOR UPDATE SKIP LOCKED) AS picked WHERE m.id = picked.id"
                " RETURNING m.id, m.dest, m.sender, m.text, m.encoding, m.carrier, m.priority,"
                " m.created_at, m.validity_until, m.scheduled_at, m.registered_delivery,"
                " m.possible_duplicate",
                after or "",
                self.claims.node_id,
                now,
                limit,
                self.claims.until(now),
                *(() if carriers is None else (sorted(carriers),)),
            )
            if not rows:
                return []
            by_id = store_rows.outbound_messages(sorted(rows, key=lambda r: str(r[0])))
            return await _with_parts(conn, by_id)

    async def take_over_pending(
        self,
        limit: int,
        now: float | None = None,
        carriers: Collection[str] | None = None,
    ) -> list[OutboundMessage]:
        now = time.time() if now is None else now
        me = self.claims.node_id
        of_carriers = "" if carriers is None else " AND carrier = ANY($5::text[])"
        async with self.pool.acquire() as conn, conn.transaction():
            # Two ranges of messages_claim: nobody's, and claims lapsed by now (not ours).
            rows = await conn.fetch(
                "UPDATE messages AS m SET claimed_by = $1, claim_until = $3"
                " FROM (SELECT id, claimed_by FROM messages"
                " WHERE status IN ('accepted', 'queued') AND (claim_until IS NULL"
                f" OR (claim_until <= $2 AND claimed_by <> $1)){of_carriers} ORDER BY id"
                " LIMIT $4 FOR UPDATE SKIP LOCKED) AS picked WHERE m.id = picked.id"
                f" RETURNING m.{_PENDING_COLUMNS.replace(', ', ', m.')}, picked.claimed_by",
                me,
                now,
                self.claims.until(now),
                limit,
                *(() if carriers is None else (sorted(carriers),)),
            )
            if not rows:
                return []
            rows = sorted(rows, key=lambda r: str(r[0]))
            requeued = [
                r[0]
                for r in await conn.fetch(
                    "SELECT DISTINCT message_id FROM parts WHERE status = $1"
                    " AND message_id = ANY($2::text[]) ORDER BY message_id",
                    SUBMITTING,
                    [r[0] for r in rows],
                )
            ]
            if requeued:
                await conn.execute(
                    "UPDATE messages SET possible_duplicate = true WHERE id = ANY($1::text[])",
                    requeued,
                )
                await conn.execute(
                    "UPDATE parts SET status = 'queued' WHERE status = $1"
                    " AND message_id = ANY($2::text[])",
                    SUBMITTING,
                    requeued,
                )
            by_id = store_rows.taken_over(rows, requeued)
            taken = await _with_parts(conn, by_id)
        log_requeued_taken(log, by_id, requeued)
        return taken

    async def release_messages(self, ids: Sequence[str]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE messages SET claimed_by = NULL, claim_until = NULL"
                " WHERE claimed_by = $1 AND status IN ('accepted', 'queued')"
                " AND id = ANY($2::text[]) RETURNING carrier",
                self.claims.node_id,
                list(ids),
            )
            await _notify(conn, WAKE_QUEUE, [r[0] for r in rows])
        return len(rows)

    async def begin_attempts(self, parts: Sequence[tuple[str, int]]) -> set[str]:
        rows = list(parts)
        if not rows:
            return set()
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._begin(conn, rows)

    async def _begin(self, conn: Any, rows: list[tuple[str, int]]) -> set[str]:
        """begin_attempts in the caller's transaction."""
        ids = list(dict.fromkeys(mid for mid, _ in rows))
        # Only opt-outs made at or after a message's acceptance: the ones before were
        # refused at intake, or let through on purpose (a STOP's own confirmation).
        refused = {
            r[0]
            for r in await conn.fetch(
                "SELECT DISTINCT m.id FROM messages m JOIN opt_outs o ON o.number = m.dest"
                " AND o.sender IN (m.sender, $1) AND o.created_at >= m.created_at"
                " WHERE m.id = ANY($2::text[])",
                ALL_OPT_OUT,
                ids,
            )
        }
        going = [row for row in rows if row[0] not in refused]
        if going:
            # ledger.begin_attempt: a final part stays as it is.
            await conn.execute(
                "UPDATE parts SET status = 'submitting', attempts = attempts + 1"
                " FROM unnest($1::text[], $2::int[]) AS u(message_id, part)"
                " WHERE parts.message_id = u.message_id AND parts.part = u.part"
                " AND parts.status <> ALL($3::text[])",
                [m for m, _ in going],
                [p for _, p in going],
                sorted(ledger.FINAL),
            )
        return refused

    async def record_outcomes(self, outcomes: Sequence[SubmitOutcome]) -> list[StatusChange]:
        items = list(outcomes)
        if not items:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._record(conn, items)

    async def record_outcomes_and_begin(
        self, outcomes: Sequence[SubmitOutcome], parts: Sequence[tuple[str, int]]
    ) -> tuple[list[StatusChange], set[str] | None]:
        """Both in one transaction: the parts answered leave 'submitting' and the next
        ones enter it in the same commit (the crash-duplicate bound holds at every one)."""
        items, rows = list(outcomes), list(parts)
        async with self.pool.acquire() as conn, conn.transaction():
            changes = await self._record(conn, items) if items else []
            return changes, (await self._begin(conn, rows) if rows else set())

    async def _record(self, conn: Any, items: list[SubmitOutcome]) -> list[StatusChange]:
        """record_outcomes in the caller's transaction."""
        await _lock_receipt_keys(
            conn,
            [
                (o.carrier, k)
                for o in items
                if o.status is MessageStatus.SUBMITTED and o.receipt_key
                for k in (o.receipt_key, *o.alt_keys)
            ],
        )
        ids = sorted({o.message_id for o in items})
        now = max(o.at for o in items)
        messages, states = await _lock(conn, ids)
        held = await self._held_receipts(conn, [o for o in items if o.receipt_key])
        writes: list[tuple[Any, ...]] = []
        for o in items:
            parts = states.get(o.message_id)
            if parts is None or o.part not in parts:
                continue  # no such part (pruned): nothing to record
            before = parts[o.part]
            receipts = held.get((o.message_id, o.part), [])
            after = ledger.answer(
                before, o.status, o.error, [(status, error) for status, error, _ in receipts]
            )
            parts[o.part] = after
            done_at: float | None = None
            if ledger.is_final(after.status) and not ledger.is_final(before.status):
                finals = [at for status, _, at in receipts if ledger.is_final(status)]
                done_at = o.at if o.status in ledger.FINAL or not finals else finals[0]
            writes.append(_part_write(o, after, done_at))
        if writes:
            await conn.executemany(
                "UPDATE parts SET status = $3, error = $4,"
                " carrier = coalesce($5, carrier),"
                " carrier_message_id = coalesce($6, carrier_message_id),"
                " receipt_key = coalesce($7, receipt_key),"
                " command_status = coalesce($8, command_status),"
                " submitted_at = coalesce($9, submitted_at),"
                " retry_at = CASE WHEN $10 THEN $11 ELSE retry_at END,"
                " done_at = coalesce($12, done_at)"
                " WHERE message_id = $1 AND part = $2",
                writes,
            )
        events = store_rows.outcome_events(o for o in items if o.message_id in messages)
        if events:
            await conn.executemany(
                "INSERT INTO events(message_id, part, at, status, detail)"
                " VALUES ($1, $2, $3, $4, $5)",
                events,
            )
        dupes = sorted({o.message_id for o in items if o.possible_duplicate})
        if dupes:
            await conn.execute(
                "UPDATE messages SET possible_duplicate = true WHERE id = ANY($1::text[])",
                dupes,
            )
        return await self._settle(conn, messages, states, now)

    async def _settle(
        self,
        conn: Any,
        messages: dict[str, Any],
        states: dict[str, dict[int, PartState]],
        now: float,
    ) -> list[StatusChange]:
        """``ledger.settle`` each locked message from its parts now; write the changes and
        what they emit; the changes, by message id."""
        changes: list[StatusChange] = []
        for mid, row in messages.items():
            ordered = [states[mid][n] for n in sorted(states[mid])]
            settled = ledger.settle(row[1], ordered)
            if settled is None:
                continue
            changes.append(
                StatusChange(
                    mid, settled.status, now, row[2], row[3], row[4], settled.error, row[5]
                )
            )
        if changes:
            await conn.executemany(
                "UPDATE messages SET status = $2, updated_at = $3, error = $4 WHERE id = $1",
                [(c.message_id, c.status.value, c.at, c.error) for c in changes],
            )
            await self._emit(conn, changes, messages, states)
        return changes

    # -- receipts --------------------------------------------------------------------------

    async def record_receipts(self, receipts: Sequence[IncomingReceipt]) -> list[StatusChange]:
        items = list(receipts)
        if not items:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            await _lock_receipt_keys(
                conn, [(r.carrier, k) for r in items for k in (r.receipt_key, *r.match_keys)]
            )
            owner: dict[tuple[str, str], tuple[str, int]] = {}
            await _owners(
                conn,
                [(r.carrier, r.match_keys[0] if r.match_keys else r.receipt_key) for r in items],
                owner,
            )
            # Other readings of an id (``auto`` forms) whose first key matched nothing.
            others = store_rows.other_receipt_keys(items, owner)
            if others:
                await _owners(conn, others, owner)
            rows, matches = store_rows.receipt_rows(items, owner)
            applied = [(m[0], m[1], r) for r, m in zip(items, matches, strict=True) if m]
            if len(applied) < len(rows):
                rows = await _drop_resent_unmatched(conn, rows)
            await conn.executemany(
                "INSERT INTO receipts(carrier, receipt_key, carrier_message_id, status, state,"
                " error, raw, received_at, message_id, part)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                rows,
            )
            if not applied:
                return []
            messages, states = await _lock(conn, sorted({mid for mid, _, _ in applied}))
            writes: list[tuple[Any, ...]] = []
            for mid, part, r in applied:
                parts = states.get(mid)
                if parts is None or part not in parts:
                    continue
                after = ledger.apply_receipt(parts[part], r.status, r.error)
                if after is not parts[part]:
                    parts[part] = after
                    writes.append((mid, part, str(after.status), after.error, r.received_at))
            if writes:
                await conn.executemany(
                    "UPDATE parts SET status = $3, error = $4, done_at = $5"
                    " WHERE message_id = $1 AND part = $2",
                    writes,
                )
            return await self._settle(conn, messages, states, max(r.received_at for r in items))

    async def still_unmatched(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        if not keys:
            return set()
        rows = await self.pool.fetch(
            "SELECT DISTINCT r.carrier, r.receipt_key FROM receipts r"
            " JOIN unnest($1::text[], $2::text[]) AS k(carrier, receipt_key)"
            " ON r.carrier = k.carrier AND r.receipt_key = k.receipt_key"
            " WHERE r.message_id IS NULL",
            [c for c, _ in keys],
            [k for _, k in keys],
        )
        return {(r[0], r[1]) for r in rows}

    async def expire_unreceipted(
        self,
        carrier: str,
        validity_before: float,
        submitted_before: float,
        at: float,
        limit: int,
    ) -> list[StatusChange]:
        detail = json.dumps({"carrier": carrier, "error": NO_RECEIPT})
        async with self.pool.acquire() as conn, conn.transaction():
            # ledger.unreceipted_due, as two index ranges: validity ended, or none and
            # submitted (its last change) long enough ago.
            ids = [
                r[0]
                for r in await conn.fetch(
                    "(SELECT id FROM messages WHERE status = 'submitted' AND carrier = $1"
                    " AND registered_delivery AND validity_until <= $2 LIMIT $4)"
                    " UNION ALL (SELECT id FROM messages WHERE status = 'submitted'"
                    " AND carrier = $1 AND registered_delivery AND validity_until IS NULL"
                    " AND updated_at <= $3 LIMIT $4)",
                    carrier,
                    validity_before,
                    submitted_before,
                    limit,
                )
            ][:limit]
            if not ids:
                return []
            messages, states = await _lock(conn, sorted(ids))
            # Locked now: one settled meanwhile (a receipt on another node) is no longer due.
            messages = {mid: row for mid, row in messages.items() if row[1] == "submitted"}
            writes: list[tuple[Any, ...]] = []
            for mid in messages:
                for part, state in states[mid].items():
                    after = ledger.expire_unreceipted(state)
                    if after is not state:
                        states[mid][part] = after
                        writes.append((mid, part, str(after.status), after.error, at))
            if writes:
                await conn.executemany(
                    "UPDATE parts SET status = $3, error = $4, done_at = $5"
                    " WHERE message_id = $1 AND part = $2",
                    writes,
                )
                await conn.executemany(
                    "INSERT INTO events(message_id, part, at, status, detail)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    [(w[0], w[1], at, MessageStatus.EXPIRED.value, detail) for w in writes],
                )
            return await self._settle(conn, messages, states, at)

    # -- the callback outbox ---------------------------------------------------------------

    async def enqueue_callbacks(
        self, callbacks: Sequence[tuple[str, str]], at: float, signer: str | None = None
    ) -> None:
        rows = [(url, payload, at, at, signer) for url, payload in callbacks]
        if rows:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.executemany(
                    "INSERT INTO callbacks(url, payload, next_at, created_at, signer)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    rows,
                )
                await _notify(conn, WAKE_CALLBACKS, [""])

    async def callbacks_due(self, now: float, limit: int) -> list[Callback]:
        rows = await self.pool.fetch(
            "UPDATE callbacks AS c SET claimed_by = $2, claim_until = $4"
            f" FROM (SELECT id, {_TAKEN_FROM} FROM callbacks WHERE next_at <= $1"
            " AND (claimed_by IS NULL OR claimed_by = $2 OR claim_until <= $1)"
            " ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) AS due WHERE c.id = due.id"
            " RETURNING c.id, c.url, c.payload, c.attempts, c.next_at, c.signer, due.held",
            now,
            self.claims.node_id,
            limit,
            self.claims.until(now),
        )
        return sorted((Callback(*r) for r in rows), key=lambda cb: (cb.next_at, cb.id))

    async def callback_done(self, callback_id: int) -> None:
        await self.pool.execute("DELETE FROM callbacks WHERE id = $1", callback_id)

    async def callbacks_done(self, callback_ids: Sequence[int]) -> None:
        if callback_ids:
            await self.pool.execute(
                "DELETE FROM callbacks WHERE id = ANY($1::bigint[])", list(callback_ids)
            )

    async def callback_retry(self, callback_id: int, next_at: float, error: str) -> None:
        await self.pool.execute(
            "UPDATE callbacks SET attempts = attempts + 1, next_at = $2, last_error = $3,"
            " claimed_by = NULL, claim_until = NULL WHERE id = $1",
            callback_id,
            next_at,
            error,
        )

    async def list_callbacks(
        self, parked: bool | None, after: int | None, limit: int
    ) -> list[CallbackView]:
        sql, params = sql_text.list_callbacks(parked, after, limit)
        rows = await self.pool.fetch(sql_text.numbered(sql), *params)
        return [CallbackView(*r) for r in rows]

    async def retry_callbacks(self, ids: Sequence[int] | None, at: float) -> list[int]:
        if ids is None:
            rows = await self.pool.fetch(
                "UPDATE callbacks SET next_at = $1, attempts = 0 WHERE next_at >= $2 RETURNING id",
                at,
                CALLBACK_PARKED_AT,
            )
        else:
            rows = await self.pool.fetch(
                "UPDATE callbacks SET next_at = $1, attempts = 0 WHERE id = ANY($2::bigint[])"
                " RETURNING id",
                at,
                list(ids),
            )
        return sorted(r[0] for r in rows)

    # -- the SMPP front's outbox and held parts ----------------------------------------------

    async def front_enqueue(self, items: Sequence[tuple[str, str, str]], at: float) -> None:
        rows = store_rows.front_outbox_rows(items, at)
        if rows:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.executemany(_INSERT_FRONT_OUTBOX, rows)
                await _notify(conn, WAKE_FRONT, [r[0] for r in rows])

    async def front_due(self, account: str, now: float, limit: int) -> list[FrontItem]:
        rows = await self.pool.fetch(
            "UPDATE front_outbox AS f SET claimed_by = $3, claim_until = $5"
            f" FROM (SELECT id, {_TAKEN_FROM.replace('$2', '$3')} FROM front_outbox"
            " WHERE account = $1 AND next_at <= $2"
            " AND (claimed_by IS NULL OR claimed_by = $3 OR claim_until <= $2)"
            " ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) AS due WHERE f.id = due.id"
            " RETURNING f.id, f.account, f.kind, f.payload, f.attempts, f.created_at, due.held",
            account,
            now,
            self.claims.node_id,
            limit,
            self.claims.until(now),
        )
        return sorted((FrontItem(*r) for r in rows), key=lambda item: item.id)

    async def front_done(self, ids: Sequence[int]) -> None:
        if ids:
            await self.pool.execute(
                "DELETE FROM front_outbox WHERE id = ANY($1::bigint[])", list(ids)
            )

    async def front_retry(self, ids: Sequence[int], next_at: float) -> None:
        if ids:
            await self.pool.execute(
                "UPDATE front_outbox SET attempts = attempts + 1, next_at = $2,"
                " claimed_by = NULL, claim_until = NULL WHERE id = ANY($1::bigint[])",
                list(ids),
                next_at,
            )

    async def front_pending(self) -> dict[str, int]:
        rows = await self.pool.fetch("SELECT account, count(*) FROM front_outbox GROUP BY account")
        return {account: count for account, count in rows}

    async def front_parts_add(self, parts: Sequence[FrontPart]) -> None:
        self.refuse_new_work()  # parts of a new long message from an upstream ESME
        rows = store_rows.front_part_rows(parts)
        if rows:
            # A part sent again replaces the one held; one joined or refused stays as it is.
            await self.pool.executemany(
                "INSERT INTO front_parts(part_id, message_id, account, source, destination,"
                " ref, total, seq, pdu, received_at, state)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                " ON CONFLICT (part_id) DO UPDATE SET pdu = excluded.pdu,"
                " received_at = excluded.received_at WHERE front_parts.state = 'held'",
                rows,
            )

    async def front_parts_held(self) -> list[FrontPart]:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE front_parts SET state = $1, pdu = ''::bytea WHERE state = $2"
                " AND message_id IN (SELECT id FROM messages)",
                FRONT_PART_JOINED,
                FRONT_PART_HELD,
            )
            rows = await conn.fetch(
                "SELECT part_id, message_id, account, source, destination, ref, total, seq,"
                " pdu, received_at, state FROM front_parts WHERE state = $1"
                " ORDER BY message_id, seq",
                FRONT_PART_HELD,
            )
        return [FrontPart(*r) for r in rows]

    async def _settle_front_parts(
        self, message_ids: Sequence[str], state: str, outbox: list[tuple[Any, ...]]
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE front_parts SET state = $1, pdu = ''::bytea"
                " WHERE message_id = ANY($2::text[]) AND state = $3",
                state,
                list(message_ids),
                FRONT_PART_HELD,
            )
            if outbox:
                await conn.executemany(_INSERT_FRONT_OUTBOX, outbox)
                await _notify(conn, WAKE_FRONT, [r[0] for r in outbox])

    async def front_part_status(self, part_id: str) -> FrontPartStatus | None:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow(_FRONT_PART + " WHERE part_id = $1", part_id)
            if row is None:
                return None
            part = FrontPart(*row)
            if part.state == FRONT_PART_FAILED:
                return FrontPartStatus(part, MessageStatus.REJECTED, None)
            message = await conn.fetchrow(
                "SELECT status, updated_at FROM messages WHERE id = $1", part.message_id
            )
            if message is None:  # held: accepted, waiting for its siblings
                return FrontPartStatus(part, MessageStatus.ACCEPTED, None)
            order = [
                r[0]
                for r in await conn.fetch(
                    "SELECT part_id FROM front_parts WHERE message_id = $1 AND state <> $2"
                    " ORDER BY seq",
                    part.message_id,
                    FRONT_PART_FAILED,
                )
            ]
            carrier = await conn.fetch(
                "SELECT status, done_at FROM parts WHERE message_id = $1 ORDER BY part",
                part.message_id,
            )
        return store_rows.front_part_status(
            part, MessageStatus(message[0]), message[1], order, carrier
        )

    async def front_part(self, part_id: str) -> FrontPart | None:
        row = await self.pool.fetchrow(_FRONT_PART + " WHERE part_id = $1", part_id)
        return FrontPart(*row) if row is not None else None

    async def _held_receipts(
        self, conn: Any, submitted: list[SubmitOutcome]
    ) -> dict[tuple[str, int], list[tuple[MessageStatus, str | None, float]]]:
        """Receipts kept unmatched for these submitted parts (they arrived before the
        response), now linked to their part: (status, error, received_at) per part, in the
        order they arrived. Exact keys first, then other readings (``auto`` id forms)."""
        keyed: dict[tuple[str, str], SubmitOutcome] = {}
        for o in submitted:
            if o.status is MessageStatus.SUBMITTED and o.receipt_key:
                keyed[(o.carrier, o.receipt_key)] = o
        for o in submitted:
            if o.status is MessageStatus.SUBMITTED:
                for key in o.alt_keys:
                    keyed.setdefault((o.carrier, key), o)
        if not keyed:
            return {}
        rows = await conn.fetch(
            "SELECT r.id, r.carrier, r.receipt_key, r.status, r.error, r.received_at"
            " FROM receipts r JOIN unnest($1::text[], $2::text[]) AS k(carrier, receipt_key)"
            " ON r.carrier = k.carrier AND r.receipt_key = k.receipt_key"
            " WHERE r.message_id IS NULL ORDER BY r.id FOR UPDATE OF r",
            [c for c, _ in keyed],
            [k for _, k in keyed],
        )
        held: dict[tuple[str, int], list[tuple[MessageStatus, str | None, float]]] = {}
        links: list[tuple[str, int, int]] = []
        for rid, carrier, key, status, error, received_at in rows:
            o = keyed[(carrier, key)]
            links.append((o.message_id, o.part, rid))
            held.setdefault((o.message_id, o.part), []).append(
                (MessageStatus(status), error, received_at)
            )
        if links:
            await conn.executemany(
                "UPDATE receipts SET message_id = $1, part = $2 WHERE id = $3", links
            )
        return held

    async def _emit(
        self,
        conn: Any,
        changes: list[StatusChange],
        messages: dict[str, Any],
        states: dict[str, dict[int, PartState]],
    ) -> None:
        """What the changes emit (ledger.callback_of, ledger.front_receipts), in the
        transaction that records them."""
        callbacks = []
        for c in changes:
            made = ledger.callback_of(c)
            if made is not None:
                url, payload = made
                callbacks.append((url, json.dumps(payload), c.at, c.at, messages[c.message_id][9]))
        if callbacks:
            await conn.executemany(
                "INSERT INTO callbacks(url, payload, next_at, created_at, signer)"
                " VALUES ($1, $2, $3, $4, $5)",
                callbacks,
            )
            await _notify(conn, WAKE_CALLBACKS, [""])
        front = [c for c in changes if ledger.wants_front_receipts(c)]
        if not front:
            return
        upstream: dict[str, list[str]] = {}
        for mid, part_id in await conn.fetch(
            "SELECT message_id, part_id FROM front_parts WHERE message_id = ANY($1::text[])"
            " AND state <> $2 ORDER BY message_id, seq",
            [c.message_id for c in front],
            FRONT_PART_FAILED,
        ):
            upstream.setdefault(mid, []).append(part_id)
        rows = []
        for c in front:
            row = messages[c.message_id]
            account = ledger.front_account(c.callback_url) or ""
            part_ids = upstream.get(c.message_id)
            shares = None
            if part_ids is not None:
                carrier_parts = [
                    ledger.counts_as(p.status) for _, p in sorted(states[c.message_id].items())
                ]
                shares = ledger.upstream_shares(part_ids, carrier_parts)
            for payload in ledger.front_receipts(c, row[6], row[7], row[8], shares):
                rows.append((account, "receipt", json.dumps(payload), c.at, c.at))
        if rows:
            await conn.executemany(_INSERT_FRONT_OUTBOX, rows)
            await _notify(conn, WAKE_FRONT, [r[0] for r in rows])


def _resolver(future: asyncio.Future[None]) -> Callable[[Any], None]:
    """A termination listener that resolves ``future`` (once)."""

    def resolve(_conn: Any) -> None:
        if not future.done():
            future.set_result(None)

    return resolve


async def _notify(conn: Any, kind: str, keys: Iterable[str]) -> None:
    """Wake the listening nodes at this transaction's commit: one ``NOTIFY`` on ``kind``'s
    channel per distinct key (carrier or account; "" for any), never one per row."""
    distinct = sorted(set(keys))
    if distinct:
        await conn.execute(
            "SELECT pg_notify($1, key) FROM unnest($2::text[]) AS key",
            WAKE_CHANNELS[kind],
            distinct,
        )


async def _with_parts(conn: Any, by_id: dict[str, OutboundMessage]) -> list[OutboundMessage]:
    """The messages of ``by_id`` with their parts still to send (those with none left out)."""
    part_rows = await conn.fetch(
        "SELECT message_id, part, status, attempts, retry_at FROM parts"
        " WHERE message_id = ANY($1::text[])"
        " AND status IN ('accepted', 'queued', 'submitting') ORDER BY message_id, part",
        list(by_id),
    )
    store_rows.add_pending_parts(by_id, part_rows)
    return [m for m in by_id.values() if m.pending_parts]


RECEIPT_KEYS_LOCK: Final = 0x736D_7372
"""The first key (``smsr`` in ASCII) of the transaction advisory locks taken on receipt keys
(the second: a hash of carrier and key)."""


async def _lock_receipt_keys(conn: Any, pairs: Sequence[tuple[str, str]]) -> None:
    """Lock (carrier, receipt key) pairs until the transaction ends, in one order (no
    deadlock), before anything else: a receipt and its submit response recorded at once
    (two nodes, or two transactions of one) are then serialised, the second seeing what the
    first committed: the response finds the receipt held, or the receipt finds its part.
    Without it each could read before the other commits and the message would never settle.
    The receipt locks its key and every other reading of it, the response its key and its
    other forms: a pair that can match shares one of them."""
    if not pairs:
        return
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, h) FROM (SELECT DISTINCT"
        " hashtext(c || chr(1) || k) AS h FROM unnest($2::text[], $3::text[]) AS u(c, k)) s"
        " ORDER BY h",
        RECEIPT_KEYS_LOCK,
        [c for c, _ in pairs],
        [k for _, k in pairs],
    )


async def _lock(
    conn: Any, ids: Sequence[str]
) -> tuple[dict[str, Any], dict[str, dict[int, PartState]]]:
    """Lock these messages in id order (concurrent batches never deadlock) and read them
    with their parts' states: (message rows by id, part states by message and part)."""
    messages = {
        r[0]: r
        for r in await conn.fetch(
            "SELECT id, status, client_ref, callback_url, carrier, campaign_id, dest,"
            " sender, created_at, account FROM messages WHERE id = ANY($1::text[])"
            " ORDER BY id FOR UPDATE",
            list(ids),
        )
    }
    states: dict[str, dict[int, PartState]] = {mid: {} for mid in messages}
    for r in await conn.fetch(
        "SELECT message_id, part, status, error FROM parts"
        " WHERE message_id = ANY($1::text[]) ORDER BY message_id, part",
        list(messages),
    ):
        states[r[0]][r[1]] = PartState(r[2], r[3])
    return messages, states


async def _owners(
    conn: Any, pairs: Sequence[tuple[str, str]], owner: dict[tuple[str, str], tuple[str, int]]
) -> None:
    """Add to ``owner`` the part each (carrier, receipt_key) names, if any; the newest
    part wins when a carrier has reused an id."""
    rows = await conn.fetch(
        "SELECT p.carrier, p.receipt_key, p.message_id, p.part FROM parts p"
        " JOIN unnest($1::text[], $2::text[]) AS k(carrier, receipt_key)"
        " ON p.carrier = k.carrier AND p.receipt_key = k.receipt_key"
        " ORDER BY p.submitted_at",
        [c for c, _ in pairs],
        [k for _, k in pairs],
    )
    for carrier, key, message_id, part in rows:
        owner[(carrier, key)] = (message_id, part)


async def _drop_resent_unmatched(conn: Any, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``store_rows.not_kept``: a receipt comes again when the answer to it was lost."""
    candidates, keys = store_rows.resent_once(rows)
    kept = [key for key in keys if await conn.fetchval(_UNMATCHED_KEPT, *key) is not None]
    return store_rows.not_kept(candidates, kept)


def _part_write(o: SubmitOutcome, after: PartState, done_at: float | None) -> tuple[Any, ...]:
    """The parts UPDATE's parameters for outcome ``o``, the part now ``after``: its map
    entry for a submitted part (so its receipts match), its retry time for a retry."""
    submitted = o.status is MessageStatus.SUBMITTED
    retried = o.status is MessageStatus.QUEUED
    return (
        o.message_id,
        o.part,
        str(after.status),
        after.error,
        o.carrier,
        o.carrier_message_id if submitted else None,
        o.receipt_key if submitted else None,
        (o.command_status or 0) if submitted else o.command_status,
        o.at if submitted else None,
        submitted or retried,
        o.retry_at if retried else None,
        done_at,
    )


def _kept_ports(
    store: PgStore,
) -> tuple[
    Lifecycle,
    Claims,
    Wakeups,
    MessageIntake,
    Queue,
    OptOuts,
    Receipts,
    CallbackOutbox,
    FrontOutbox,
    FrontParts,
    MessageEdits,
    MessageReads,
    StoreStats,
    MoLog,
    Interactions,
    InboundNumbers,
    InteractionExport,
    CampaignReports,
]:
    """The ports this store keeps, checked by mypy against gateway.store.ports (a
    signature that drifts from its port fails the type check)."""
    return (store,) * 18
