"""Parts from the ready queue to the wire: taken in priority order, their submit_sm built,
their attempts begun in the store (one ``Queue.begin_attempts`` call per batch), then sent
over the bound binds as windows and tokens allow.

Staging keeps commit latency off the wire: a window slot freed by a response is refilled in
the same turn, from parts already durable as "submitting", but only as far as the windows
reach (gateway.engine.admission). A part staged but not sent (no bind left, stopping) gets a
QUEUED outcome that sets it back. Opt-outs the store took after a part was begun are checked
here, just before the wire.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import Mapping
from typing import Final

from gateway.core.model import MessageStatus, OutboundMessage
from gateway.engine.admission import MAX_BATCH_PARTS, send_budget, stage_target
from gateway.engine.failover import Failover
from gateway.engine.outcomes import Outcomes
from gateway.engine.pdus import PduBuilder
from gateway.engine.queue import (
    STORE_RETRY_SECONDS,
    BindPace,
    CarrierQueue,
    Job,
    Queues,
    Sent,
    Staged,
    earliest,
    is_live,
)
from gateway.logs import log_event
from gateway.smpp.errors import EncodeError, SmppError
from gateway.smpp.times import relative_time
from gateway.store.base import StoreUnavailable
from gateway.store.ports import Queue

log = logging.getLogger("smsgw.dispatch")

MAX_CONCURRENT_BATCHES: Final = 2
"""begin_attempts calls per carrier under way at once: one being committed while the next
one collects; more would only wait in the store's queue."""

WRITE_BLOCKED_RECHECK_SECONDS: Final = 0.05
"""A bind whose socket buffer is full (the SMSC reads slowly) shows no window room and no
event will say when it drains: the pump looks again after this long."""

STOP_MEMORY_SECONDS: Final = 600.0
"""How long the stager remembers an opt-out it was told about: far longer than a part
stays staged, after which the store's own check (begin_attempts) is the only one needed."""


class Stager:
    def __init__(
        self,
        queues: Queues,
        store: Queue,
        pdus: PduBuilder,
        outcomes: Outcomes,
        failover: Failover,
    ) -> None:
        self._q = queues
        self._store = store
        self._pdus = pdus
        self._outcomes = outcomes
        self._failover = failover
        self._stops: dict[tuple[str, str], float] = {}
        """(number, sender or '*') -> when: opt-outs to apply to parts already staged."""
        self.tasks: set[asyncio.Task[None]] = set()
        """begin_attempts calls under way."""

    # -- from the ready queue to ``staged`` ----------------------------------------------------

    def fill(self, c: CarrierQueue, live: list[BindPace], now: float, mono: float) -> bool:
        """Top ``staged`` up from ``ready`` as far as the windows reach. False when the head
        of ``ready`` had expired and nothing was taken (look again at once)."""
        if c.ready and c.batches < MAX_CONCURRENT_BATCHES:
            room = stage_target(c, live, mono) - len(c.staged) - c.staging
            if room > 0:
                taken = self.take(c, min(room, MAX_BATCH_PARTS), now)
                if taken:
                    self._stage(c, taken)
                elif c.ready:
                    return False
        return True

    def take(self, c: CarrierQueue, count: int, now: float) -> list[Staged]:
        """Up to ``count`` parts from the head of the ready heap, failing expired messages,
        with their submit_sm built (their attempt not begun yet)."""
        out: list[tuple[Job, int]] = []
        ready = c.ready
        name = c.config.name
        q = self._q
        while ready and len(out) < count:
            job = ready[0][3]
            m = job.msg.m
            if m.validity_until is not None and m.validity_until <= now:
                heapq.heappop(ready)
                c.queued_parts -= len(job.parts)
                q.stats.expired += len(job.parts)
                self._outcomes.finish_job(job, MessageStatus.FAILED, now, "validity expired")
                continue
            if job.msg.carrier != name:
                error = self._pdus.prepare(job.msg, c.config)
                if error is not None:
                    heapq.heappop(ready)
                    c.queued_parts -= len(job.parts)
                    self._outcomes.finish_job(job, MessageStatus.FAILED, now, error)
                    continue
            room = count - len(out)
            if len(job.parts) <= room:
                heapq.heappop(ready)
                parts = job.parts
            else:
                parts, job.parts = job.parts[:room], job.parts[room:]
                job = Job(job.msg, parts, job.attempts, job.dup)
            c.queued_parts -= len(parts)
            if len(parts) == 1:
                out.append((job, parts[0]))
            else:
                out.extend((job, p) for p in parts)
        build = self._pdus.build
        return [
            (Sent(job.msg, part, job.attempts + 1, job.dup), build(job.msg, part))
            for job, part in out
        ]

    def _stage(self, c: CarrierQueue, items: list[Staged]) -> None:
        """Begin the attempts of ``items`` in one store call; they join ``staged`` when it
        returns."""
        c.batches += 1
        c.staging += len(items)
        assert self._q.loop is not None
        task = self._q.loop.create_task(self._begin(c, items))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _begin(self, c: CarrierQueue, items: list[Staged]) -> None:
        count = len(items)  # ``staging`` took them all; the refused leave ``items`` below
        try:
            refused = await self._store.begin_attempts([(s.msg.m.id, s.part) for s, _ in items])
        except StoreUnavailable:
            # Short of space: the store logs its state and counts refusals; the parts wait.
            self._q.stats.begin_refused += len(items)
            self.not_begun(items)
        except Exception as exc:
            self._q.stats.store_errors += 1
            log_event(
                log,
                "dispatch.begin_failed",
                logging.WARNING,
                carrier=c.name,
                parts=len(items),
                error=repr(exc),
            )
            self.not_begun(items)
        else:
            self.begun(c, items, refused)
        finally:
            c.batches -= 1
            c.staging -= count
            c.wake.set()

    def not_begun(self, items: list[Staged]) -> None:
        """The store did not begin ``items``: back to the queue, tried again in a while."""
        retry_at = self._q.clock() + STORE_RETRY_SECONDS
        for s, _ in items:
            self._failover.unsent(s, retry_at)

    def begun(self, c: CarrierQueue, items: list[Staged], refused: set[str]) -> None:
        """The store began ``items`` but those of the messages in ``refused`` (opted out
        after acceptance): they join ``staged``."""
        if refused:  # the recipient opted out after the message was accepted
            now = self._q.clock()
            for s, _ in items:
                if s.msg.m.id in refused:
                    self._outcomes.opted_out(s, c.name, now)
            items = [item for item in items if item[0].msg.m.id not in refused]
        c.staged.extend(items)

    # -- begun in the transaction of the outcomes that free their window slots -------------

    def take_with_outcomes(self, confirming: Mapping[str, int]) -> dict[str, list[Staged]]:
        """Parts to begin in the commit of outcomes that confirm ``confirming[carrier]``
        accepted parts: the window room that commit frees (``stage_target`` as if it had
        committed), taken from ``ready`` in priority order. Counted in ``staging`` until
        the commit returns, so neither the pump nor ``reserve`` gives that room again."""
        q = self._q
        loop = q.loop
        if q.stopping or loop is None:
            return {}
        now = q.clock()
        mono = loop.time()
        out: dict[str, list[Staged]] = {}
        for name, confirmed in confirming.items():
            c = q.carriers.get(name)
            if c is None or not c.ready:
                continue
            live = [b for b in c.binds if is_live(b.bind)]
            if not live:
                continue
            room = stage_target(c, live, mono, confirmed) - len(c.staged) - c.staging
            if room <= 0:
                continue
            items = self.take(c, min(room, MAX_BATCH_PARTS), now)
            if items:
                c.staging += len(items)
                out[name] = items
        return out

    def begun_with_outcomes(self, taken: dict[str, list[Staged]], refused: set[str] | None) -> None:
        """The outcomes' transaction committed: the parts join ``staged``; ``refused`` None
        (the store takes no new attempts, short of space): they wait and are tried again.
        Stopping meanwhile (``stop`` has set its staged parts back already): these are set
        back too."""
        for name, items in taken.items():
            c = self._q.carriers[name]
            c.staging -= len(items)
            if refused is None:
                self._q.stats.begin_refused += len(items)
                self.not_begun(items)
            else:
                self.begun(c, items, refused)
                if self._q.stopping:
                    self.unstage(c, self._q.clock(), "stopping", requeue=False)
            c.wake.set()

    def not_begun_with_outcomes(self, taken: dict[str, list[Staged]]) -> None:
        """The outcomes' transaction failed: nothing of it was written."""
        for name, items in taken.items():
            c = self._q.carriers[name]
            c.staging -= len(items)
            self.not_begun(items)
            c.wake.set()

    def unstage(self, c: CarrierQueue, now: float, reason: str, *, requeue: bool) -> None:
        """Staged parts that will not leave (no bind, stopping): their attempt was begun in
        the store, so a QUEUED outcome sets them back (and keeps a crash from flagging them
        possibly duplicated); in memory they go back to the ready queue."""
        staged, c.staged = c.staged, deque()
        for s, _ in staged:
            self._outcomes.set_back(s, c.name, now, reason)
            if requeue:
                self._failover.unsent(s, None)
            else:
                self._q.part_done(s.msg, 1)

    def expire_ready(self, c: CarrierQueue, now: float) -> float | None:
        """Fail the ready jobs past their validity (a carrier that is down has no pump turns
        to notice); seconds until the next validity ends, or None."""
        keep: list[tuple[int, int, int, Job]] = []
        nearest: float | None = None
        for entry in c.ready:
            job = entry[3]
            validity = job.msg.m.validity_until
            if validity is None:
                keep.append(entry)
            elif validity <= now:
                c.queued_parts -= len(job.parts)
                self._q.stats.expired += len(job.parts)
                self._outcomes.finish_job(job, MessageStatus.FAILED, now, "validity expired")
            else:
                keep.append(entry)
                nearest = earliest(nearest, validity - now)
        if len(keep) != len(c.ready):
            heapq.heapify(keep)
            c.ready = keep
        return nearest

    # -- from ``staged`` to the wire -----------------------------------------------------------

    def send_now(self, c: CarrierQueue) -> None:
        """Send what ``c`` has staged, in this turn, then let its pump look again (it arms the
        timers and handles a carrier whose binds went down)."""
        loop = self._q.loop
        live = [b for b in c.binds if is_live(b.bind)]
        if live and loop is not None:
            self.send(c, live, self._q.clock(), loop.time(), None)
        c.wake.set()

    def send(
        self, c: CarrierQueue, live: list[BindPace], now: float, mono: float, wait: float | None
    ) -> float | None:
        """Submit staged parts over the binds with window room and tokens, round robin."""
        staged = c.staged
        budget, later = send_budget(c, mono)
        if budget <= 0:
            return wait if later is None else earliest(wait, later)
        account = c.account
        outcomes = self._outcomes
        n_live = len(live)
        c.rr = (c.rr + 1) % n_live
        sent_total = 0
        send_validity = c.config.send_validity
        for k in range(n_live):
            if not staged or budget <= 0:
                break
            b = live[(c.rr + k) % n_live]
            bind = b.bind
            free = bind.window_free
            if free <= 0:
                conn = bind.conn
                if conn is not None and not conn.writable:
                    wait = earliest(wait, WRITE_BLOCKED_RECHECK_SECONDS)
                continue
            tokens = b.throttle.available(mono)
            if tokens <= 0:
                wait = earliest(wait, b.throttle.time_until_available(mono))
                continue
            n = min(free, tokens, budget)
            sent = 0
            submit = bind.submit
            while sent < n and staged:
                s, pdu = staged.popleft()
                validity = s.msg.m.validity_until
                if validity is not None:
                    if validity <= now:
                        outcomes.expired(s, now)
                        continue
                    if send_validity:  # what is left now, not what the client asked
                        pdu.validity_period = relative_time(int(validity - now))
                if self._stops and self._stopped_for(s.msg.m):
                    outcomes.opted_out(s, c.name, now)
                    continue
                try:
                    submit(pdu, s)
                except EncodeError as exc:
                    # The PDU itself is bad (we check what we build, so this is a bug):
                    # retrying cannot help. The session keeps no trace of it; ``void``
                    # guards against any event that might still name it.
                    s.void = True
                    outcomes.give_up(s, c.name, now, f"cannot encode submit_sm: {exc}")
                    continue
                except (RuntimeError, SmppError):
                    staged.appendleft((s, pdu))
                    break
                sent += 1
            if sent:
                b.throttle.take(sent, mono)
                budget -= sent
                sent_total += sent
        if sent_total:
            self._q.in_flight += sent_total
            c.unconfirmed += sent_total
            if account is not None:
                account.take(sent_total, mono)
            if staged and budget > 0:
                # Tokens or windows ran out with parts left: say when tokens come back
                # (window room comes with a response, which wakes the pump).
                for b in live:
                    if b.bind.window_free > 0:
                        wait = earliest(wait, b.throttle.time_until_available(mono))
        return wait

    # -- opt-outs after acceptance -------------------------------------------------------------

    def opt_out(self, number: str, sender: str | None) -> None:
        """``number`` just opted out (from ``sender``, or from every sender when None), and
        the store has it: staged parts of messages accepted before are not sent."""
        now = self._q.clock()
        self._stops[(number, sender or "*")] = now
        for key, at in list(self._stops.items()):
            if at + STOP_MEMORY_SECONDS < now:
                del self._stops[key]

    def _stopped_for(self, m: OutboundMessage) -> bool:
        stops = self._stops
        at = stops.get((m.to, m.sender))
        if at is not None and m.created_at <= at:
            return True
        at = stops.get((m.to, "*"))
        return at is not None and m.created_at <= at
