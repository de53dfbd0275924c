"""cancel_sm and replace_sm from the SMPP front: a message is held back (``withdraw``) while
the front edits it in the store, then put back, dropped or replaced (``settle``)."""

from __future__ import annotations

import dataclasses
import heapq

from gateway.core.model import OutboundMessage, Replacement
from gateway.engine.loading import Loader
from gateway.engine.queue import CarrierQueue, Job, Msg, Queues


class Withdrawn:
    """A message held back by ``withdraw``: its queued jobs (carrier, job, due or None for
    ready), and its store copy if paging met it meanwhile."""

    __slots__ = ("jobs", "msg", "paged")

    def __init__(self, msg: Msg | None) -> None:
        self.msg = msg
        self.jobs: list[tuple[CarrierQueue, Job, float | None]] = []
        self.paged: OutboundMessage | None = None


class Withdrawals:
    def __init__(self, queues: Queues, loader: Loader) -> None:
        self._q = queues
        self._loader = loader
        self._held = loader.withdrawn

    def withdraw(self, message_id: str) -> bool:
        """Hold a message back while the front cancels or replaces it in the store; every
        True must be followed by ``settle``. True when none of its parts can leave until
        then: it was not in memory (paging will not take it meanwhile), or every part still
        open was waiting in a queue (now taken out). False when a part is staged, being
        begun or on the wire (too late), or another edit of it is under way."""
        if message_id in self._held:
            return False
        msg = self._q.known.get(message_id)
        held = Withdrawn(msg)
        if msg is not None:
            queued = 0
            for c in self._q.carriers.values():
                for ready in c.ready:
                    if ready[3].msg is msg:
                        held.jobs.append((c, ready[3], None))
                        queued += len(ready[3].parts)
                for delayed in c.delayed:
                    if delayed[2].msg is msg:
                        held.jobs.append((c, delayed[2], delayed[0]))
                        queued += len(delayed[2].parts)
            if queued < msg.open_parts:
                return False
            for c in {id(c): c for c, _, _ in held.jobs}.values():
                c.ready = [e for e in c.ready if e[3].msg is not msg]
                heapq.heapify(c.ready)
                c.delayed = [e for e in c.delayed if e[2].msg is not msg]
                heapq.heapify(c.delayed)
            for c, job, _ in held.jobs:
                c.queued_parts -= len(job.parts)
        self._held[message_id] = held
        return True

    def settle(
        self, message_id: str, *, removed: bool, replacement: Replacement | None = None
    ) -> None:
        """The store's answer for a withdrawn message. ``removed`` False (the store refused
        or failed): it goes back as it was. True: cancelled, or replaced by
        ``replacement``, which is queued in its place."""
        held = self._held.pop(message_id, None)
        if held is None:
            return
        q = self._q
        now = q.clock()
        if not removed:
            for c, job, due in held.jobs:
                if due is None:
                    q.push_ready(c, job)
                else:
                    q.push_delayed(c, job, due)
                c.wake.set()
            if held.paged is not None and message_id not in q.known:
                carrier = self._loader.admit(held.paged, now)
                if carrier is not None:
                    q.carriers[carrier].wake.set()
            return
        base: OutboundMessage | None = held.paged
        if held.msg is not None:
            base = held.msg.m
            q.parts_in_memory -= held.msg.open_parts
            held.msg.open_parts = 0
            q.known.pop(message_id, None)
        if replacement is None or base is None or q.stopping:
            return  # cancelled; or replaced while not in memory: paging loads the new text
        m = dataclasses.replace(
            base,
            text=replacement.text,
            encoding=replacement.encoding,
            scheduled_at=replacement.scheduled_at,
            validity_until=replacement.validity_until,
            pending_parts=None,
        )
        carrier = self._loader.admit(m, now, replacement.parts)
        if carrier is not None:
            q.carriers[carrier].wake.set()
