"""Handling a batch of interactions (at most one per sender) in few store round trips.

A batch costs one store read (opt-outs, campaign correlation, loop guard, contacts:
``mo_facts``), its decisions and actions (:mod:`gateway.inbound.decision`, run concurrently;
their replies prepared in memory), one commit accepting every reply, and one commit marking
the interactions done. The replies are durable before their interaction is done: handling is
*at least once* (a crash in between handles it again, and its replies may go twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Final, TypeVar, cast

from gateway.config import InboundConfig
from gateway.core.model import NewMessage
from gateway.inbound.addresses import Addresses
from gateway.inbound.campaign_directory import CampaignInfo
from gateway.inbound.decision import MAX_REPLY_WINDOW, Decider
from gateway.inbound.numbers import InboundNumber, NumberBook
from gateway.inbound.replies import Outbox
from gateway.logs import log_event
from gateway.store.base import Interaction, InteractionOutcome, MoLookup
from gateway.store.ports import MoLog

log = logging.getLogger("smsgw.inbound")

T = TypeVar("T")

STRAGGLER_SECONDS: Final = 1.0
"""A batch's interactions whose actions have not run after this long (a slow Python
handler: up to ``[inbound].handler_timeout``) are concluded on their own: the others'
replies are committed and their senders' next MOs handled without waiting for them, and
the batch stops counting against ``BATCHES_IN_FLIGHT``."""

HANDLING_MARGIN_SECONDS: Final = 60.0
"""An interaction's handling (store reads, actions, replies) may take this long plus twice
``handler_timeout`` before it is cancelled and counted as a failed attempt."""

Decided = tuple[InteractionOutcome, list[NewMessage]]


class Batches:
    """Handles batches of interactions of distinct senders (see the module's doc)."""

    def __init__(
        self,
        inbound: InboundConfig,
        store: MoLog,
        numbers: NumberBook,
        addresses: Addresses,
        decider: Decider,
        outbox: Outbox,
        errors: dict[int, str],
        clock: Callable[[], float],
        straggler_seconds: float = STRAGGLER_SECONDS,
    ) -> None:
        self.inbound = inbound
        self.store = store
        self.numbers = numbers
        self.addresses = addresses
        self.decider = decider
        self.outbox = outbox
        self.errors = errors
        """Why an interaction's handling failed, by id (shared with the scheduler, which
        retries and quarantines)."""
        self.clock = clock
        self.straggler_seconds = straggler_seconds

    async def handle(
        self,
        batch: Sequence[Interaction],
        release: Callable[[Iterable[int]], None] | None = None,
    ) -> list[InteractionOutcome | None]:
        """Handle interactions of distinct senders: one read for what they all need, their
        actions (concurrently), one commit of all their replies, then one commit marking
        them done. The replies are durable before the interactions are done: a crash in
        between handles them again (at least once). Interactions whose actions take longer
        than ``STRAGGLER_SECONDS`` (a slow Python handler) are concluded on their own, so
        the others' replies do not wait for them; ``release`` is told the ids of each wave
        concluded. An interaction whose handling failed stays pending (None in the
        result)."""
        now = self.clock()
        lookups: list[MoLookup] = []
        entries: list[InboundNumber | None] = []
        for interaction in batch:
            entry = self.numbers.find(interaction.destination)
            entries.append(entry)
            sender = self.addresses.sender_of(entry, interaction.destination)
            lookups.append(
                MoLookup(interaction.source, sender, interaction.destination, interaction.text)
            )
        facts = await self.store.mo_facts(
            lookups, now - MAX_REPLY_WINDOW, now - self.inbound.loop_window
        )
        directory = self.decider.directory
        keyword_campaigns: dict[str, Sequence[CampaignInfo]] = {}
        for entry in entries:
            if entry is not None and entry.number not in keyword_campaigns:
                keyword_campaigns[entry.number] = await directory.keyword_campaigns(entry.number)
        # Each interaction's actions start at once (``eager``): most finish without waiting
        # (a reply is prepared in memory), and only those that wait (a store call, a
        # handler) become tasks of their own.
        decide = self.decider.decide
        tasks = {
            eager(decide(interaction, entry, fact, now, keyword_campaigns)): interaction
            for interaction, entry, fact in zip(batch, entries, facts, strict=True)
        }
        outcomes: dict[int, InteractionOutcome] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANDLING_MARGIN_SECONDS + 2 * self.inbound.handler_timeout
        try:
            pending = {task for task in tasks if not task.done()}
            timeout: float | None = self.straggler_seconds
            concluded: set[asyncio.Future[Decided]] = set()
            while len(concluded) < len(tasks):
                if pending:
                    _, pending = await asyncio.wait(pending, timeout=timeout)
                # The stragglers: all together, when they are all done or time is up.
                timeout = max(0.0, deadline - loop.time())
                if pending and timeout == 0.0:
                    for task in pending:
                        self.errors[tasks[task].id] = (
                            f"handling took longer than {deadline - now:.0f} s"
                        )
                        task.cancel()
                    await asyncio.wait(pending)
                    pending = set()
                wave = [(tasks[t], t) for t in tasks if t.done() and t not in concluded]
                concluded.update(t for _, t in wave)
                outcomes.update(await self._conclude(wave))
                if release is not None:
                    release(interaction.id for interaction, _ in wave)
        finally:
            for task in tasks:
                task.cancel()
        return [outcomes.get(interaction.id) for interaction in batch]

    async def _conclude(
        self, wave: Sequence[tuple[Interaction, asyncio.Future[Decided]]]
    ) -> dict[int, InteractionOutcome]:
        """Commit the replies of interactions whose actions have run, then mark them done."""
        done: list[Decided] = []
        for interaction, task in wave:
            error = asyncio.CancelledError() if task.cancelled() else task.exception()
            if error is not None:
                self.errors.setdefault(interaction.id, repr(error))
                log_event(
                    log,
                    "inbound.process_failed",
                    logging.WARNING,
                    interaction=interaction.id,
                    error=repr(error),
                )
            else:
                done.append(task.result())
        replies = [m for _, messages in done for m in messages]
        try:
            await self.outbox.commit(replies)
        except Exception as exc:
            if len(done) == 1:
                raise
            # One bad message must not hold the others up: commit them one interaction at
            # a time; an interaction whose replies cannot be committed stays pending.
            log_event(log, "inbound.replies_failed", logging.WARNING, error=repr(exc))
            kept: list[Decided] = []
            for outcome, messages in done:
                try:
                    await self.outbox.commit(messages)
                except Exception as exc_one:
                    log_event(
                        log,
                        "inbound.process_failed",
                        logging.WARNING,
                        interaction=outcome.interaction_id,
                        error=repr(exc_one),
                    )
                else:
                    kept.append((outcome, messages))
            done = kept
        finished = [outcome for outcome, _ in done]
        await self.store.finish_interactions(finished)
        return {outcome.interaction_id: outcome for outcome in finished}


def eager(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run ``coro`` now, up to its first wait: a done future when it never waits (no task,
    no loop turn), else a task that carries it on from there (as ``asyncio.Task`` would:
    the same results, exceptions and cancellation). Python 3.12's eager task factory does
    this for every task; this is it for one call site, on 3.11."""
    loop = asyncio.get_running_loop()
    try:
        waiting = coro.send(None)
    except StopIteration as done:
        future: asyncio.Future[T] = loop.create_future()
        future.set_result(done.value)
        return future
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # handed to the caller through the future
        future = loop.create_future()
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
        return future
    return loop.create_task(_carry_on(coro, waiting))


async def _carry_on(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    """Drive a coroutine that ``eager`` started, from the future it waits on (``None``: a
    bare yield, ``asyncio.sleep(0)``), the way ``asyncio.Task`` steps one."""
    while True:
        error: BaseException | None = None
        if waiting is None:
            await asyncio.sleep(0)
        else:
            waiting._asyncio_future_blocking = False
            try:
                await asyncio.wait((waiting,))
            except asyncio.CancelledError as exc:  # this task was cancelled: so is the wait
                waiting.cancel()
                error = exc
        try:
            waiting = coro.send(None) if error is None else coro.throw(error)
        except StopIteration as done:
            return cast(T, done.value)
