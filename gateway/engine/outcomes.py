"""What became of each part, into the store: submit_sm_resp, errors, timeouts, parts that
never left.

``Outcomes`` turns an event into a ``SubmitOutcome`` (and, for a temporary failure, the
retry rule's decision and the part back in a queue); ``OutcomeWriter`` collects them and
one task sends them to ``Queue.record_outcomes`` in batches (everything collected while the
previous call ran, plus ``OUTCOME_LINGER_SECONDS``). A part accepted by the carrier counts
against its carrier's windows (``unconfirmed``) until its outcome is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Final, Protocol

from gateway.core.model import MessageStatus, NewMessage, SubmitOutcome
from gateway.engine.failover import Failover
from gateway.engine.queue import STORE_RETRY_SECONDS, CarrierQueue, Job, Queues, Sent, Staged
from gateway.engine.receipts import ChangesHook
from gateway.engine.retry import TIMEOUT, Decision, RetryKey, RetryPolicy, Verdict
from gateway.logs import log_event
from gateway.smpp.constants import Status
from gateway.store.ports import Queue

log = logging.getLogger("smsgw.dispatch")

OUTCOME_LINGER_SECONDS: Final = 0.002
"""The outcome writer waits this long for more outcomes before a small batch is written: a
burst of responses becomes one commit, and 2 ms is nothing to a receipt's journey."""

OUTCOME_BATCH_TARGET: Final = 500
"""A batch of outcomes this large is written without lingering."""

_ROK: Final = int(Status.ROK)


class JointBegins(Protocol):
    """Parts begun in the transaction that writes a batch of outcomes (the stager)."""

    def take_with_outcomes(self, confirming: Mapping[str, int]) -> dict[str, list[Staged]]:
        """Parts to begin with outcomes that confirm ``confirming[carrier]`` accepted
        parts; counted as being begun until ``begun_with_outcomes`` or
        ``not_begun_with_outcomes``."""

    def begun_with_outcomes(self, taken: dict[str, list[Staged]], refused: set[str] | None) -> None:
        """The transaction committed (``refused`` None: the store began none of them)."""

    def not_begun_with_outcomes(self, taken: dict[str, list[Staged]]) -> None:
        """The transaction failed: none of them was begun."""


class OutcomeWriter:
    """Outcomes collected in memory and written in batches by one task; on a store error
    the batch is kept and tried again (outcomes are the only record of what the carrier
    said).

    A batch that confirms parts accepted by a carrier frees that many slots of its windows
    when it commits; ``joint`` (the stager) begins the next parts for those slots in the
    same transaction (``Queue.record_outcomes_and_begin``), so no begin commit of their own
    stands between a freed slot and its next submit_sm, and what a crash finds
    'submitting' still never exceeds window x binds (both change in one commit)."""

    def __init__(self, store: Queue, queues: Queues, on_changes: ChangesHook | None) -> None:
        self._store = store
        self._q = queues
        self.on_changes = on_changes
        self._outcomes: list[SubmitOutcome] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.closing = False
        """Stopping: the last batches are being written; nothing more is collected after."""
        self.joint: JointBegins | None = None
        """Who begins parts in the outcomes' transaction (the stager); None: nobody."""

    @property
    def pending(self) -> int:
        """Outcomes collected and not yet handed to the store."""
        return len(self._outcomes)

    def add(self, outcome: SubmitOutcome) -> None:
        self._outcomes.append(outcome)
        if len(self._outcomes) == 1:
            self._ready.set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._ready = asyncio.Event()
        self.closing = False
        self._task = loop.create_task(self._run(), name="outcomes")

    async def abort(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self, drain: float) -> None:
        """Write what is collected, within ``drain`` seconds."""
        task, self._task = self._task, None
        if task is None:
            return
        self.closing = True
        self._ready.set()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), drain)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            if len(self._outcomes) < OUTCOME_BATCH_TARGET and not self.closing:
                await asyncio.sleep(OUTCOME_LINGER_SECONDS)
            self._ready.clear()
            batch, self._outcomes = self._outcomes, []
            if batch:
                await self._write(batch)
            if self.closing and not self._outcomes:
                return

    async def _write(self, batch: list[SubmitOutcome]) -> None:
        """One record_outcomes call (with the next parts' begin when it frees window
        slots); on failure keep the batch and try again."""
        while True:
            taken = self._take_with(batch)
            try:
                if taken:
                    parts = [(s.msg.m.id, s.part) for items in taken.values() for s, _ in items]
                    changes, refused = await self._store.record_outcomes_and_begin(batch, parts)
                else:
                    changes = await self._store.record_outcomes(batch)
            except Exception as exc:
                if taken and self.joint is not None:
                    self.joint.not_begun_with_outcomes(taken)
                self._q.stats.store_errors += 1
                log_event(
                    log,
                    "dispatch.outcomes_failed",
                    logging.WARNING,
                    outcomes=len(batch),
                    error=repr(exc),
                )
                if self.closing:
                    return  # stopping: the store requeues these parts on the next start
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            self._q.stats.outcome_batches += 1
            self._confirmed(batch)
            if taken and self.joint is not None:
                self.joint.begun_with_outcomes(taken, refused)
            if changes and self.on_changes is not None:
                self.on_changes(changes)
            return

    def _take_with(self, batch: list[SubmitOutcome]) -> dict[str, list[Staged]]:
        """Parts to begin in this batch's transaction: as many window slots as it frees."""
        if self.joint is None or self.closing:
            return {}
        confirming: dict[str, int] = {}
        for o in batch:
            if o.status is MessageStatus.SUBMITTED and o.command_status == _ROK:
                confirming[o.carrier] = confirming.get(o.carrier, 0) + 1
        return self.joint.take_with_outcomes(confirming) if confirming else {}

    def _confirmed(self, batch: list[SubmitOutcome]) -> None:
        """Submitted outcomes are durable: their parts no longer count against the windows."""
        carriers = self._q.carriers
        woken: set[str] = set()
        for o in batch:
            if o.status is MessageStatus.SUBMITTED and o.command_status == _ROK:
                c = carriers.get(o.carrier)
                if c is not None:
                    c.unconfirmed -= 1
                    woken.add(o.carrier)
        self._q.wake(woken)


class Outcomes:
    """Each way a part ends or goes back, as the outcome the store records."""

    def __init__(
        self, queues: Queues, writer: OutcomeWriter, failover: Failover, policy: RetryPolicy
    ) -> None:
        self._q = queues
        self._writer = writer
        self._add = writer.add
        self._failover = failover
        self.policy = policy

    def submitted(self, sent: Sent, carrier: CarrierQueue, raw_id: str) -> None:
        msg = sent.msg
        self._q.stats.submitted += 1
        forms = carrier.forms
        key = forms.response_key(raw_id) if raw_id else None
        self._add(
            SubmitOutcome(
                message_id=msg.m.id,
                part=sent.part,
                carrier=carrier.name,
                status=MessageStatus.SUBMITTED,
                at=self._q.clock(),
                carrier_message_id=raw_id,
                receipt_key=key,
                command_status=_ROK,
                possible_duplicate=sent.dup,
                alt_keys=forms.response_alt_keys(key) if key and forms.auto else (),
            )
        )
        self._q.part_done(msg, 1)

    def failed(
        self,
        sent: Sent,
        key: RetryKey,
        now: float,
        carrier: str,
        *,
        command_status: int | None = None,
        immediate: bool = False,
    ) -> None:
        """An error answer, a timeout or a lost link: the retry rules decide."""
        decision: Decision = self.policy.decide(key, sent.attempt)
        msg = sent.msg
        dup = sent.dup or key == TIMEOUT
        stats = self._q.stats
        if decision.verdict is Verdict.RETRY:
            stats.retried += 1
            retry_at = now if immediate else now + decision.delay
            self._add(
                SubmitOutcome(
                    message_id=msg.m.id,
                    part=sent.part,
                    carrier=carrier,
                    status=MessageStatus.QUEUED,
                    at=now,
                    command_status=command_status,
                    error=decision.error,
                    retry_at=retry_at,
                    possible_duplicate=dup,
                )
            )
            if not self._q.stopping:
                self._failover.requeue(Job(msg, [sent.part], sent.attempt, dup), retry_at, now)
            else:
                self._q.part_done(msg, 1)  # the store has it queued for the next start
            return
        if decision.verdict is Verdict.REJECT:
            stats.rejected += 1
        else:
            stats.failed += 1
        self._add(
            SubmitOutcome(
                message_id=msg.m.id,
                part=sent.part,
                carrier=carrier,
                status=decision.status,
                at=now,
                command_status=command_status,
                error=decision.error,
                possible_duplicate=dup,
            )
        )
        self._q.part_done(msg, 1)

    def finish_job(self, job: Job, status: MessageStatus, now: float, error: str) -> None:
        """Every part of ``job`` ends here without being sent (expired, unencodable)."""
        if status is MessageStatus.FAILED:
            self._q.stats.failed += len(job.parts)
        m = job.msg.m
        for part in job.parts:
            self._add(
                SubmitOutcome(
                    message_id=m.id,
                    part=part,
                    carrier=m.carrier,
                    status=status,
                    at=now,
                    error=error,
                    possible_duplicate=job.dup,
                )
            )
        self._q.part_done(job.msg, len(job.parts))

    def give_up(self, s: Sent, carrier: str, now: float, error: str) -> None:
        """A begun part that will not be sent: failed."""
        self._q.stats.failed += 1
        self._add(
            SubmitOutcome(
                message_id=s.msg.m.id,
                part=s.part,
                carrier=carrier,
                status=MessageStatus.FAILED,
                at=now,
                error=error,
                possible_duplicate=s.dup,
            )
        )
        self._q.part_done(s.msg, 1)

    def expired(self, s: Sent, now: float) -> None:
        self._q.stats.expired += 1
        self.give_up(s, s.msg.m.carrier, now, "validity expired")

    def opted_out(self, s: Sent, carrier: str, now: float) -> None:
        self._q.stats.opted_out += 1
        self.give_up(s, carrier, now, "opted out after acceptance")

    def set_back(self, s: Sent, carrier: str, now: float, reason: str) -> None:
        """A begun part that did not leave: a QUEUED outcome sets it back in the store (and
        keeps a crash from flagging it possibly duplicated)."""
        self._add(
            SubmitOutcome(
                message_id=s.msg.m.id,
                part=s.part,
                carrier=carrier,
                status=MessageStatus.QUEUED,
                at=now,
                error=f"not sent: {reason}",
                possible_duplicate=s.dup,
            )
        )

    def begun_not_sent(self, messages: Sequence[NewMessage], begun: Collection[str]) -> None:
        """Messages begun at acceptance arrive while stopping: a QUEUED outcome sets them
        back (while the outcome writer still runs; else the next start flags them)."""
        if self._writer.closing:
            return
        now = self._q.clock()
        for new in messages:
            if new.id not in begun:
                continue
            for part in range(1, new.parts + 1):
                self._add(
                    SubmitOutcome(
                        message_id=new.id,
                        part=part,
                        carrier=new.carrier,
                        status=MessageStatus.QUEUED,
                        at=now,
                        error="not sent: stopping",
                    )
                )
