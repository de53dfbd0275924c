"""Which queue a job joins: its carrier's, unless that carrier has no bind up and the
message's route has one that is up (failover); and parts going back to a queue (a retry, a
part that never left). A message moves only if it splits into as many parts on the other
carrier: the store holds one row per part, numbered at intake."""

from __future__ import annotations

import heapq
from collections.abc import Container

from gateway.core.routing import Router
from gateway.engine.pdus import PduBuilder
from gateway.engine.queue import CarrierQueue, Job, Msg, Queues, Sent, is_live


class Failover:
    def __init__(self, queues: Queues, router: Router, pdus: PduBuilder) -> None:
        self._q = queues
        self._router = router
        self._pdus = pdus

    def queue_for(self, c: CarrierQueue, msg: Msg) -> CarrierQueue:
        """The queue a job of ``msg`` should join: ``c``, unless ``c`` has no bind up and the
        message's route has a carrier that is up (failover, one message at a time)."""
        for b in c.binds:  # per message at enqueue: a plain loop, no generator
            if is_live(b.bind):
                return c
        up = self._q.carriers_up()
        if not up:
            return c
        return self.move_target(c, msg, up) or c

    def move_target(self, c: CarrierQueue, msg: Msg, up: Container[str]) -> CarrierQueue | None:
        """Where a message queued for ``c`` (which has no bind up) should go instead, or None
        to stay. Moves it (its carrier, split and addresses) when the answer is not None."""
        target = self._router.pick(msg.m.to, up)
        if target == c.name or target not in up or not self._can_move(msg, target):
            return None
        msg.m.carrier = target
        self._q.stats.moved += 1
        return self._q.carriers[target]

    def _can_move(self, msg: Msg, target: str) -> bool:
        """A message may move only if it splits into as many parts there: the store holds one
        row per part, numbered at intake."""
        probe = Msg(msg.m, msg.ref, msg.order, msg.total)
        if msg.total is None and msg.split is not None:
            probe.total = len(msg.split.parts)
        if self._pdus.prepare(probe, self._q.carriers[target].config) is not None:
            return False
        msg.split, msg.addr, msg.carrier = probe.split, probe.addr, probe.carrier
        return True

    def scan(self, c: CarrierQueue, up: frozenset[str]) -> None:
        """No bind of ``c`` is bound: move ready messages whose route has a carrier up."""
        keep: list[tuple[int, int, int, Job]] = []
        moved: set[str] = set()
        for entry in c.ready:
            job = entry[3]
            target = self.move_target(c, job.msg, up)
            if target is None:
                keep.append(entry)
                continue
            c.queued_parts -= len(job.parts)
            self._q.push_ready(target, job)
            moved.add(target.name)
        if moved:
            heapq.heapify(keep)
            c.ready = keep
            self._q.wake(moved)

    def promote(self, c: CarrierQueue, now: float) -> float | None:
        """Move due delayed jobs to ready; seconds until the next one is due (or None)."""
        delayed = c.delayed
        while delayed and delayed[0][0] <= now:
            _, _, job = heapq.heappop(delayed)
            c.queued_parts -= len(job.parts)
            target = self.queue_for(c, job.msg)
            self._q.push_ready(target, job)
            if target is not c:
                target.wake.set()
        if delayed:
            return max(delayed[0][0] - now, 0.001)
        return None

    def requeue(self, job: Job, due: float | None, now: float) -> None:
        carrier = self._q.carriers[job.msg.m.carrier]
        if due is not None and due > now:
            self._q.push_delayed(carrier, job, due)
        else:
            carrier = self.queue_for(carrier, job.msg)
            self._q.push_ready(carrier, job)
        carrier.wake.set()

    def unsent(self, sent: Sent, due: float | None) -> None:
        """A part that never left: back to the queue with its attempt count unchanged."""
        job = Job(sent.msg, [sent.part], sent.attempt - 1, sent.dup)
        self.requeue(job, due, self._q.clock())
