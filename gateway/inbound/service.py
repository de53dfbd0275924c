"""The MO path: deliver_sm in, interaction logged, rule matched, actions run.

:meth:`InboundService.handle_pdu` is the receipt handler's ``mo_handler``: it returns the
command_status of the deliver_sm_resp only after the MO is durable (an interaction logged, or
the part of a long MO kept). A store failure raises, and the receipt handler answers
ESME_RX_T_APPN so the SMSC sends the MO again.

The single-part MOs that arrive in one loop turn are logged in one store write. Interactions
are then handled in batches (up to ``BATCH_MAX``, ``BATCHES_IN_FLIGHT`` at once) holding at
most one interaction per sender, so one subscriber's MOs are handled one after the other in
the order they were logged while others proceed. A batch costs one store read (opt-outs,
campaign correlation, loop guard, contacts: ``mo_facts``), its actions (run concurrently;
their replies prepared in memory), one commit accepting every reply, and one commit marking
the interactions done. Handling is *at least once*: the replies are durable before their
interaction is done, and an interaction whose outcome was not written before a crash is
handled again on the next start (its replies may then go twice).

Choices where the issue is silent (also in the README section "Inbound"):

- The subscriber's address is normalised as the HTTP API does (E.164 for a TON
  international or '+' number; a short code or alphanumeric sender is kept as it is), so
  opt-outs and contacts match those of MTs.
- An MO to a number that is not configured is still logged; the built-in opt-out and
  opt-in words (STOP ..., STOPALL, START ..., YES from an opted-out sender) still apply to
  it, silently (no texts to reply with): carriers' codes of conduct want STOP honoured on
  every number. The opt-out is kept against the number as MTs would give it in ``from``
  (a short code as written, a long number in E.164).
- Campaign correlation: the newest MT with a campaign_id from this number to the subscriber
  within the campaign's reply window (``[inbound].reply_window`` when the directory does
  not know the campaign). A campaign rule that matches names the campaign instead.
- A failing action is recorded as failed on the interaction; the next ones still run.
- Loop guard: a sender repeating the same text ``loop_repeats`` times in ``loop_window``
  gets no automatic reply at all; the courtesy reply goes at most once per
  ``courtesy_interval`` per (number or campaign, sender).

Poisoned MOs (issue 17.2): an interaction whose handling failed, took longer than
``handling_timeout`` (``HANDLING_MARGIN_SECONDS`` + 2 x ``handler_timeout``), or was under way
when the process stopped (a crash, a kill -9 of a hung daemon: every interaction pending at
start counts as begun once) is retried *alone*, one retry at a time, its attempt counted in
the store before it begins, ``RETRY_DELAY_SECONDS`` x attempts after the last one. After
``[inbound].max_attempts`` attempts it is quarantined: state ``quarantined`` with its reason
(``last_error``), never handled again on this or any later start unless requeued
(``POST /v1/interactions/{id}/retry``); counted in ``smsgw_mo_quarantined_total`` and logged.
A poisoned MO therefore costs at most ``max_attempts`` handlings, whatever it does, and the
MOs that were handled beside it are not blamed (they are retried alone, where only their own
attempts count). Fresh MOs are not counted before they begin (no extra write on the hot
path): the count of an interrupted fresh attempt is taken at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar, cast

from gateway.api import validation as check
from gateway.api.intake import Intake
from gateway.api.messages import Outbound, iso_utc
from gateway.config import DAY, GatewayConfig, InboundActionConfig
from gateway.inbound.directory import CampaignDirectory, CampaignInfo, NoCampaigns
from gateway.inbound.handlers import Handler, HandlerRunner, resolve_handler
from gateway.inbound.keywords import KeywordRule, Match, fold_word, match, parse_answer
from gateway.inbound.numbers import InboundNumber, NumberBook, builtin_rules, rule_of
from gateway.inbound.reassembly import Assembly, Reassembler, decode_parts, read_pdu
from gateway.inbound.replies import (
    NOT_SENT_LOOP,
    NOT_SENT_OPTED_OUT,
    Outbox,
    Replies,
    SendResult,
)
from gateway.inbound.templates import contact_fields, render
from gateway.logs import log_event
from gateway.metrics import CounterMetricFamily, GaugeMetricFamily
from gateway.model import NewMessage
from gateway.signing import WEBHOOK_SIGNER
from gateway.smpp.constants import Status
from gateway.smpp.pdu import DataSm, DeliverSm, Pdu
from gateway.store.base import (
    INTERACTION_PENDING,
    Contact,
    Interaction,
    InteractionOutcome,
    MoFacts,
    MoKey,
    MoLookup,
    MoPart,
    NewInteraction,
    SurveyAnswer,
)
from gateway.store.ports import InboundPorts

log = logging.getLogger("smsgw.inbound")

T = TypeVar("T")

BATCH_MAX: Final = 256
"""Interactions handled together at most: one store read answers what they all need
(opt-outs, campaign correlation, loop guard, contacts), one commit accepts all their
replies and one more marks them done. A batch takes what has queued while the previous
ones ran, so batches grow with the load and a lone MO goes at once."""

STRAGGLER_SECONDS: Final = 1.0
"""A batch's interactions whose actions have not run after this long (a slow Python
handler: up to ``[inbound].handler_timeout``) are concluded on their own: the others'
replies are committed and their senders' next MOs handled without waiting for them, and
the batch stops counting against ``BATCHES_IN_FLIGHT``."""

BATCHES_IN_FLIGHT: Final = 4
"""Batches handled at once. More than one, so that a slow action (a Python handler, a
campaign directory) does not hold every MO up; few, so that batches stay large under load."""

PENDING_PAGE: Final = 500
"""Pending interactions read at a time on start."""

STOP_DRAIN_SECONDS: Final = 5.0
"""How long a stopping service lets queued interactions finish; the rest stay pending."""

TON_INTERNATIONAL: Final = 1
SHORT_CODE_MAX: Final = 8
"""Digits of the longest short code (as ``subscriber`` reads addresses)."""

MAX_REPLY_WINDOW: Final = 366 * DAY
"""How far back correlation looks for a campaign's last MT (the longest window allowed)."""

RETRY_DELAY_SECONDS: Final = 2.0
"""A retried interaction waits this long times its attempts so far: a store hiccup gets time
to pass before the last attempt; a deterministic failure is quarantined within seconds."""

HANDLING_MARGIN_SECONDS: Final = 60.0
"""An interaction's handling (store reads, actions, replies) may take this long plus twice
``handler_timeout`` before it is cancelled and counted as a failed attempt."""

NOT_SENT_NO_NUMBER: Final = "unknown_number"
"""An MO to a number not configured gets no automatic reply (no texts to send)."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """An MO as a Python handler sees it."""

    id: int
    """The interaction's id (``POST /v1/interactions/{id}/reply`` answers it)."""
    source: str
    destination: str
    text: str
    received_at: float
    keyword: str | None
    rule: str | None
    campaign_id: str | None
    complete: bool
    carrier: str


class UpstreamMo(Protocol):
    """The SMPP server front, as the MO path sees it."""

    def mo_account_for(self, destination: str) -> str | None: ...

    async def deliver_mo(
        self,
        account: str,
        *,
        source: str,
        destination: str,
        text: str,
        received_at: float | None = None,
    ) -> None: ...


@dataclass(slots=True)
class InboundStats:
    """Counters for /metrics; labels are bounded: configured numbers and rule names."""

    mo: Counter[tuple[str, str]]  # (number, keyword)
    actions: Counter[str]
    failed: Counter[str]
    parts: int = 0
    incomplete: int = 0
    retried: int = 0
    quarantined: int = 0

    @classmethod
    def new(cls) -> InboundStats:
        return cls(Counter(), Counter(), Counter())


class InboundService:
    """MO handling for one gateway: reassembly, routing and actions."""

    def __init__(
        self,
        config: GatewayConfig,
        store: InboundPorts,
        intake: Intake,
        outbound: Outbound | None = None,
        *,
        directory: CampaignDirectory | None = None,
        notify_callbacks: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        batch_max: int = BATCH_MAX,
        batches_in_flight: int = BATCHES_IN_FLIGHT,
        straggler_seconds: float = STRAGGLER_SECONDS,
        retry_delay: float = RETRY_DELAY_SECONDS,
    ) -> None:
        self.config = config
        self.inbound = config.inbound
        self.store = store
        self.intake = intake
        self.clock = clock
        self.directory: CampaignDirectory = directory or NoCampaigns()
        self.notify_callbacks = notify_callbacks
        self.numbers = NumberBook(config.inbound, self._normalise_sender)
        self._builtin = builtin_rules(config.inbound)
        self.outbox = Outbox(store, intake, outbound, clock)
        self.reassembler = Reassembler(config.inbound.reassembly_timeout)
        self.stats = InboundStats.new()
        self._packed = {c.name: c.gsm7_packed for c in config.carriers}
        self._handlers: dict[str, Handler] = {}
        self.handler_runner = HandlerRunner()
        """Python handlers run on threads of their own (gateway.inbound.handlers)."""
        self._batch_max = max(1, batch_max)
        self._batches_max = max(1, batches_in_flight)
        self._straggler_seconds = straggler_seconds
        self._retry_delay = retry_delay
        # Interactions waiting, per sender (oldest first); senders with one waiting and none
        # being handled, in the order they became ready; senders being handled.
        self._waiting: dict[str, deque[Interaction]] = {}
        self._ready: deque[str] = deque()
        self._handling: set[str] = set()
        self._batches = 0
        self._work_wake = asyncio.Event()
        self._idle_event = asyncio.Event()
        self._idle_event.set()
        self._batch_tasks: set[asyncio.Task[None]] = set()
        # Single-part MOs waiting to be logged together (one store write per loop turn).
        self._to_log: list[tuple[NewInteraction, asyncio.Future[int]]] = []
        self._log_tasks: set[asyncio.Task[None]] = set()
        self._logged_from: int | None = None  # the first interaction id logged since start
        self._tasks: list[asyncio.Task[None]] = []
        self._timer_wake = asyncio.Event()
        self._running = False
        # Long MOs logged lately, by key: a part the SMSC sends again after the message was
        # whole (our deliver_sm_resp was lost) must not start a message of its own.
        self._finished: dict[MoKey, float] = {}
        self._busy = 0  # interactions queued or being handled
        # Poisoned MOs: interactions to retry alone (pending at start, or failed), those
        # pending at start (their last attempt may not have been counted), the last error of
        # each failed one, and whether a retry is under way (one at a time).
        self._retry_ids: set[int] = set()
        self._recovered: set[int] = set()
        self._errors: dict[int, str] = {}
        self._retry_busy = False
        self.upstream: UpstreamMo | None = None
        """Where MOs to numbers routed to an upstream SMPP account go (the server front)."""

    def reload(self, config: GatewayConfig) -> None:
        """SIGHUP: numbers, keyword rules, built-in words and timings from the new file.
        Parts being reassembled keep the timeout they started with."""
        self.config = config
        self.inbound = config.inbound
        self.numbers.reload(config.inbound)
        self._builtin = builtin_rules(config.inbound)

    @property
    def outbound(self) -> Outbound | None:
        return self.outbox.outbound

    @outbound.setter
    def outbound(self, value: Outbound | None) -> None:
        self.outbox.outbound = value

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load API numbers, resume unfinished reassembly and pending interactions."""
        await self.numbers.load(self.store)
        # What a previous run left in memory is pending in the store: the scan below finds it.
        self._waiting.clear()
        self._ready.clear()
        self._handling.clear()
        self._busy = 0
        self._idle_event.set()
        self._logged_from = None
        self._retry_ids.clear()
        self._recovered.clear()
        self._errors.clear()
        self._retry_busy = False
        for part in await self.store.mo_parts():
            assembly = self.reassembler.add(part)
            if assembly is not None:  # whole, but its logging did not happen before a stop
                await self._record(assembly)
        self._running = True
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._timer()), loop.create_task(self._schedule())]
        after = 0
        while True:
            page = await self.store.pending_interactions(after, PENDING_PAGE)
            for interaction in page:
                # Those logged since this start (ids from _logged_from up) are queued already.
                if self._logged_from is None or interaction.id < self._logged_from:
                    # Pending at start: it may be what stopped the last run. Retried alone.
                    self._recovered.add(interaction.id)
                    self._retry_ids.add(interaction.id)
                    self._enqueue(interaction)
            if len(page) < PENDING_PAGE:
                break
            after = page[-1].id
        self._timer_wake.set()

    async def stop(self, drain: float = STOP_DRAIN_SECONDS) -> None:
        """Stop taking MOs, let queued interactions finish for ``drain`` seconds, stop."""
        self._running = False
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle_event.wait(), timeout=drain)
        tasks = [*self._tasks, *self._batch_tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.handler_runner.stop()

    async def requeued(self, interaction_id: int) -> None:
        """An interaction made pending again over the API (it was quarantined): handle it,
        alone, as a retry with a fresh count."""
        interaction = await self.store.get_interaction(interaction_id)
        if interaction is None or interaction.state != INTERACTION_PENDING or not self._running:
            return  # not running: the next start finds it pending
        self._retry_ids.add(interaction.id)
        self._enqueue(interaction)

    def idle(self) -> bool:
        """No interaction queued or being handled."""
        return self._busy == 0

    # -- from the binds ----------------------------------------------------------------------

    async def handle_pdus(self, mos: Sequence[tuple[Pdu, str]]) -> list[int | Exception]:
        """The receipt handler's ``mo_batch_handler``: the MOs (pdu, carrier) read in one
        loop turn, made durable together; for each, the command_status to answer it with,
        or the exception that kept it from being logged (answered ESME_RX_T_APPN). The
        single-part MOs are logged in one store write, in the order given (so one sender's
        MOs keep their order), with no task or future per MO; each part of a long MO goes
        as :meth:`handle_pdu` takes it."""
        answers: list[int | Exception] = [int(Status.RX_T_APPN)] * len(mos)
        if not self._running:
            return answers
        singles: list[tuple[int, NewInteraction]] = []
        longs: list[tuple[int, Pdu, str]] = []
        for index, (pdu, carrier) in enumerate(mos):
            if not isinstance(pdu, DeliverSm | DataSm):
                continue
            part = self._part(pdu, carrier)
            if part.key.total <= 1:
                singles.append((index, self._new_single(part)))
            else:
                longs.append((index, pdu, carrier))
        waits: list[Awaitable[Any]] = []
        if singles:
            waits.append(self._log_now(singles, answers))
        if longs:
            waits.extend(
                self._handle_long(index, pdu, carrier, answers) for index, pdu, carrier in longs
            )
        if len(waits) == 1:
            await waits[0]
        elif waits:
            await asyncio.gather(*waits)
        return answers

    async def _log_now(
        self, singles: Sequence[tuple[int, NewInteraction]], answers: list[int | Exception]
    ) -> None:
        try:
            ids = await self.store.record_interactions([new for _, new in singles])
        except Exception as exc:  # nothing logged: every MO is answered RX_T_APPN
            for index, _ in singles:
                answers[index] = exc
            return
        for (index, new), interaction_id in zip(singles, ids, strict=True):
            self._enqueue_logged(interaction_id, new)
            answers[index] = int(Status.ROK)

    async def _handle_long(
        self, index: int, pdu: Pdu, carrier: str, answers: list[int | Exception]
    ) -> None:
        try:
            answers[index] = await self.handle_pdu(pdu, carrier)
        except Exception as exc:
            answers[index] = exc

    def _part(self, pdu: DeliverSm | DataSm, carrier: str) -> MoPart:
        """The MO, or one part of a long MO, as the store keeps it."""
        source = self.subscriber(pdu.source_addr, pdu.source_addr_ton)
        entry = self.numbers.find(pdu.destination_addr)
        destination = entry.number if entry is not None else pdu.destination_addr
        raw = read_pdu(pdu)
        concat = raw.concat
        ref, total, seq = (concat.ref, concat.total, concat.seq) if concat else (0, 1, 1)
        return MoPart(
            key=MoKey(carrier, source, destination, ref, total),
            seq=seq,
            data_coding=raw.data_coding,
            data=raw.data,
            udh_length=raw.udh_length,
            received_at=self.clock(),
        )

    async def handle_pdu(self, pdu: Pdu, carrier: str) -> int:
        """The receipt handler's ``mo_handler``: make the MO durable, answer ROK."""
        if not isinstance(pdu, DeliverSm | DataSm) or not self._running:
            return int(Status.RX_T_APPN)
        part = self._part(pdu, carrier)
        now = part.received_at
        total = part.key.total
        if total <= 1:
            await self._log(self._new_interaction(Assembly(part.key, [part], complete=True)))
            return int(Status.ROK)
        self.stats.parts += 1
        if self.reassembler.holds(part) or self._recently_finished(part.key, now):
            return int(Status.ROK)  # a resend of a part already kept
        await self.store.add_mo_part(part)
        assembly = self.reassembler.add(part)
        if assembly is not None:
            self._finished.pop(part.key, None)
            self._finished[part.key] = now
            try:
                await self._record(assembly)
            except Exception as exc:  # the parts are kept: the next start logs the message
                log_event(log, "inbound.record_failed", logging.WARNING, error=repr(exc))
        elif len(self.reassembler) and self.reassembler.next_deadline() is not None:
            self._timer_wake.set()
        return int(Status.ROK)

    def _recently_finished(self, key: MoKey, now: float) -> bool:
        horizon = now - self.inbound.reassembly_timeout
        finished = self._finished
        while finished:  # oldest first (insertion order): drop those past the horizon
            oldest = next(iter(finished))
            if finished[oldest] >= horizon:
                break
            del finished[oldest]
        return key in finished

    def subscriber(self, address: str, ton: int) -> str:
        """A subscriber's address as the HTTP API writes numbers."""
        raw = address.strip()
        bare = raw.lstrip("+")
        if not bare.isascii() or not bare.isdigit():
            return raw  # alphanumeric: kept as it is
        if raw.startswith("+") or ton == TON_INTERNATIONAL:
            candidate = "+" + bare
        elif len(bare) <= SHORT_CODE_MAX:
            return bare  # a short code or a national short form
        else:
            candidate = bare
        try:
            return self.intake.numbers.e164(candidate)
        except check.Invalid:
            return raw

    def _sender_of(self, entry: InboundNumber | None, destination: str) -> str:
        """The ``from`` of MTs that an MO to ``destination`` answers: opt-outs are kept
        against it. A number not configured is read as a short code (up to 8 digits) or an
        international number (E.164 when valid), else kept as written."""
        if entry is not None:
            return entry.sender
        long_number = len(destination.strip().lstrip("+")) > SHORT_CODE_MAX
        return self.subscriber(destination, TON_INTERNATIONAL if long_number else 0)

    def _normalise_sender(self, number: str) -> str:
        return check.sender(number, self.intake.numbers)

    def _new_interaction(self, assembly: Assembly) -> NewInteraction:
        parts = assembly.parts
        key = assembly.key
        return NewInteraction(
            carrier=key.carrier,
            source=key.source,
            destination=key.destination,
            text=decode_parts(parts, self._packed.get(key.carrier, False)),
            data_coding=parts[0].data_coding,
            parts=key.total,
            parts_received=len(parts),
            received_at=assembly.first_at,
            completed_at=self.clock(),
            missing=assembly.missing,
        )

    def _new_single(self, part: MoPart) -> NewInteraction:
        """``_new_interaction`` of a single-part MO, without assembling it."""
        key = part.key
        return NewInteraction(
            carrier=key.carrier,
            source=key.source,
            destination=key.destination,
            text=decode_parts((part,), self._packed.get(key.carrier, False)),
            data_coding=part.data_coding,
            parts=1,
            parts_received=1,
            received_at=part.received_at,
            completed_at=self.clock(),
        )

    async def _record(self, assembly: Assembly) -> int:
        """Log a long MO (whole or timed out) and drop its kept parts, in one commit."""
        new = self._new_interaction(assembly)
        interaction_id = await self.store.record_interaction(new, assembly.parts)
        if not assembly.complete:
            self.stats.incomplete += 1
            log_event(
                log,
                "inbound.incomplete",
                logging.INFO,
                interaction=interaction_id,
                missing=",".join(map(str, assembly.missing)),
            )
        self._enqueue_logged(interaction_id, new)
        return interaction_id

    async def _log(self, new: NewInteraction) -> int:
        """Log a single-part MO; the MOs that arrive in the same loop turn share one write."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if not self._to_log:
            loop.call_soon(self._flush_log)  # after the MOs already scheduled this turn
        self._to_log.append((new, future))
        return await future

    def _flush_log(self) -> None:
        batch, self._to_log = self._to_log, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._write_log(batch))
            self._log_tasks.add(task)
            task.add_done_callback(self._log_tasks.discard)

    async def _write_log(self, batch: list[tuple[NewInteraction, asyncio.Future[int]]]) -> None:
        try:
            ids = await self.store.record_interactions([new for new, _ in batch])
        except Exception as exc:  # nothing logged: every MO is answered RX_T_APPN
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (new, future), interaction_id in zip(batch, ids, strict=True):
            self._enqueue_logged(interaction_id, new)
            if not future.done():
                future.set_result(interaction_id)

    async def _timer(self) -> None:
        """Take long MOs whose time is up as they are."""
        while True:
            deadline = self.reassembler.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wake.wait(), timeout)
            self._timer_wake.clear()
            await self.expire()

    async def expire(self) -> int:
        """Log every long MO whose reassembly time is up, as it is; how many were."""
        logged = 0
        for assembly in self.reassembler.expire(self.clock()):
            try:
                await self._record(assembly)
            except Exception as exc:  # parts kept: the next start tries again
                log_event(log, "inbound.record_failed", logging.WARNING, error=repr(exc))
            else:
                logged += 1
        return logged

    # -- handling ----------------------------------------------------------------------------

    def _enqueue_logged(self, interaction_id: int, new: NewInteraction) -> None:
        """Queue an interaction just logged. Ids grow, so every interaction logged since
        the start has an id of at least ``_logged_from``: the start's scan of pending
        interactions, which runs while new MOs are logged, leaves those out (they would
        be handled twice)."""
        if self._logged_from is None or interaction_id < self._logged_from:
            self._logged_from = interaction_id
        self._enqueue(_pending(interaction_id, new))

    def _enqueue(self, interaction: Interaction, *, first: bool = False) -> None:
        """Queue an interaction behind its sender's others, or at their head (``first``:
        a failed one, retried before its sender's next MO)."""
        source = interaction.source
        self._busy += 1
        self._idle_event.clear()
        waiting = self._waiting.get(source)
        if waiting is None:
            waiting = self._waiting[source] = deque()
            if source not in self._handling:
                self._ready.append(source)
        if first:
            waiting.appendleft(interaction)
        else:
            waiting.append(interaction)
        self._work_wake.set()

    async def _schedule(self) -> None:
        """Form batches: at most one interaction per sender in all the batches being
        handled, so one sender's MOs are handled one after the other, in the order logged
        (a STOP then a START; the courtesy reply's interval; the loop guard's count)."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._ready or self._batches >= self._batches_max:
                self._work_wake.clear()
                await self._work_wake.wait()
            batch: list[Interaction] = []
            ready, waiting = self._ready, self._waiting
            later: list[str] = []  # senders whose next is a retry that cannot go now
            retry = False
            while ready and len(batch) < self._batch_max:
                source = ready.popleft()
                queue = waiting[source]
                if queue[0].id in self._retry_ids:  # alone, and one retry at a time
                    if batch or self._retry_busy:
                        later.append(source)
                        continue
                    retry = True
                batch.append(queue.popleft())
                if not queue:
                    del waiting[source]
                self._handling.add(source)
                if retry:
                    break
            ready.extendleft(reversed(later))
            if not batch:  # only retries are ready, and one is under way
                self._work_wake.clear()
                await self._work_wake.wait()
                continue
            self._batches += 1
            run = self._run_retry(batch[0]) if retry else self._run_batch(batch)
            task = loop.create_task(run)
            self._batch_tasks.add(task)
            task.add_done_callback(self._batch_tasks.discard)

    async def _run_batch(self, batch: list[Interaction]) -> None:
        left = {interaction.id: interaction for interaction in batch}
        slot = True  # this batch counts against BATCHES_IN_FLIGHT

        def release(ids: Iterable[int]) -> None:
            """These interactions are over (done, or failed and left pending)."""
            nonlocal slot
            released = [left.pop(i) for i in ids if i in left]
            for interaction in released:
                source = interaction.source
                self._handling.discard(source)
                if source in self._waiting:
                    self._ready.append(source)
            self._busy -= len(released)
            if left and slot:  # only stragglers remain: let the next batch start
                slot = False
                self._batches -= 1
            if self._busy == 0:
                self._idle_event.set()
            self._work_wake.set()

        failed: list[Interaction] = []
        try:
            outcomes = await self._handle(batch, release)
            failed = [i for i, o in zip(batch, outcomes, strict=True) if o is None]
        except Exception as exc:  # a store failure: pending, handled again on the next start
            log_event(
                log,
                "inbound.process_failed",
                logging.WARNING,
                interaction=",".join(str(i) for i in left),
                error=repr(exc),
            )
            failed = list(left.values())
        finally:
            # Only a failure of the handling itself (an action, a handler, a timeout) is the
            # MO's and counts; one of the store (its replies or its outcome not written)
            # leaves it pending, as before, until the next start.
            failed = [i for i in failed if i.id in self._errors]
            if slot:
                slot = False
                self._batches -= 1
            # Failed ones are retried before their sender's next MO (they keep the order).
            for interaction in failed:
                self._retry_ids.add(interaction.id)
                self._enqueue(interaction, first=True)
            release(list(left))
        for interaction in failed:  # this attempt was not counted when it began
            await self._record_failure(interaction, add=1)

    async def _record_failure(self, interaction: Interaction, *, add: int) -> int:
        """Keep why the attempt failed; the attempts now (0 when the store could not say)."""
        error = self._errors.get(interaction.id, "handling failed")
        try:
            attempts = await self.store.fail_interaction(
                interaction.id, error, add=add, quarantine=False, at=self.clock()
            )
        except Exception as exc:
            log_event(
                log,
                "inbound.record_failed",
                logging.WARNING,
                interaction=interaction.id,
                error=repr(exc),
            )
            return 0
        interaction.attempts = max(interaction.attempts, attempts)
        return attempts

    async def _run_retry(self, interaction: Interaction) -> None:
        """An interaction that failed, or was pending at start: alone, one at a time, its
        attempt counted in the store before it begins; quarantined after max_attempts."""
        self._retry_busy = True
        iid = interaction.id
        done = False
        try:
            self.stats.retried += 1
            floor = 1 if iid in self._recovered else 0
            attempts = max(interaction.attempts, floor)
            limit = self.inbound.max_attempts
            if attempts >= limit:
                await self._quarantine(interaction, attempts)
                done = True
                return
            if interaction.attempts:
                await asyncio.sleep(self._retry_delay * interaction.attempts)
            attempts = await self.store.begin_interaction_attempt(iid, floor)
            self._recovered.discard(iid)
            interaction.attempts = attempts
            if attempts == 0:  # no longer pending (requeued, handled elsewhere)
                done = True
                return
            try:
                [outcome] = await self._handle([interaction])
            except Exception as exc:
                outcome = None
                self._errors.setdefault(iid, repr(exc))
            if outcome is not None:
                done = True
                return
            if attempts >= limit:
                await self._quarantine(interaction, attempts)
                done = True
            else:
                await self._record_failure(interaction, add=0)
        except Exception as exc:  # the store failed: it stays pending for the next start
            log_event(
                log, "inbound.retry_failed", logging.WARNING, interaction=iid, error=repr(exc)
            )
            done = True
        finally:
            self._retry_busy = False
            self._batches -= 1
            if done:
                self._retry_ids.discard(iid)
                self._errors.pop(iid, None)
            else:
                self._enqueue(interaction, first=True)
            self._release_one(interaction)

    def _release_one(self, interaction: Interaction) -> None:
        source = interaction.source
        self._handling.discard(source)
        if source in self._waiting and source not in self._ready:
            self._ready.append(source)
        self._busy -= 1
        if self._busy == 0:
            self._idle_event.set()
        self._work_wake.set()

    async def _quarantine(self, interaction: Interaction, attempts: int) -> None:
        error = self._errors.get(interaction.id) or interaction.last_error
        reason = (
            f"quarantined after {attempts} attempts; last: {error}"
            if error
            else f"quarantined after {attempts} attempts that did not finish"
            " (the daemon stopped or hung while handling it)"
        )
        await self.store.fail_interaction(
            interaction.id, reason, add=0, quarantine=True, at=self.clock()
        )
        self.stats.quarantined += 1
        log_event(
            log,
            "inbound.quarantined",
            logging.ERROR,
            interaction=interaction.id,
            source=interaction.source,
            destination=interaction.destination,
            attempts=attempts,
            reason=reason,
        )

    async def _handle(
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
            sender = self._sender_of(entry, interaction.destination)
            lookups.append(
                MoLookup(interaction.source, sender, interaction.destination, interaction.text)
            )
        facts = await self.store.mo_facts(
            lookups, now - MAX_REPLY_WINDOW, now - self.inbound.loop_window
        )
        keyword_campaigns: dict[str, Sequence[CampaignInfo]] = {}
        for entry in entries:
            if entry is not None and entry.number not in keyword_campaigns:
                keyword_campaigns[entry.number] = await self.directory.keyword_campaigns(
                    entry.number
                )
        # Each interaction's actions start at once (``eager``): most finish without waiting
        # (a reply is prepared in memory), and only those that wait (a store call, a
        # handler) become tasks of their own.
        tasks = {
            eager(self._decide(interaction, entry, fact, now, keyword_campaigns)): interaction
            for interaction, entry, fact in zip(batch, entries, facts, strict=True)
        }
        outcomes: dict[int, InteractionOutcome] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANDLING_MARGIN_SECONDS + 2 * self.inbound.handler_timeout
        try:
            pending = {task for task in tasks if not task.done()}
            timeout: float | None = self._straggler_seconds
            concluded: set[asyncio.Future[tuple[InteractionOutcome, list[NewMessage]]]] = set()
            while len(concluded) < len(tasks):
                if pending:
                    _, pending = await asyncio.wait(pending, timeout=timeout)
                # The stragglers: all together, when they are all done or time is up.
                timeout = max(0.0, deadline - loop.time())
                if pending and timeout == 0.0:
                    for task in pending:
                        self._errors[tasks[task].id] = (
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
        self,
        wave: Sequence[
            tuple[Interaction, asyncio.Future[tuple[InteractionOutcome, list[NewMessage]]]]
        ],
    ) -> dict[int, InteractionOutcome]:
        """Commit the replies of interactions whose actions have run, then mark them done."""
        done: list[tuple[InteractionOutcome, list[NewMessage]]] = []
        for interaction, task in wave:
            error = asyncio.CancelledError() if task.cancelled() else task.exception()
            if error is not None:
                self._errors.setdefault(interaction.id, repr(error))
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
            kept: list[tuple[InteractionOutcome, list[NewMessage]]] = []
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

    async def correlate(self, source: str, sender: str, now: float) -> CampaignInfo | None:
        """The campaign that last messaged ``source`` from ``sender``, if that was within
        its reply window (the directory's, else ``[inbound].reply_window``)."""
        [fact] = await self.store.mo_facts(
            [MoLookup(source, sender, "", "")], now - MAX_REPLY_WINDOW, now
        )
        return await self._correlated(fact.last_campaign, now)

    async def _correlated(self, last: tuple[str, float] | None, now: float) -> CampaignInfo | None:
        """``correlate`` from the newest campaign MT (id, created at) within the longest
        window: its campaign when that MT is within the campaign's own window."""
        if last is None:
            return None
        campaign_id, created_at = last
        campaign = await self.directory.campaign(campaign_id)
        window = campaign.reply_window if campaign is not None else self.inbound.reply_window
        if created_at < now - window:
            return None
        return campaign or CampaignInfo(campaign_id, reply_window=window)

    async def process(self, interaction: Interaction) -> list[dict[str, Any]]:
        """Route one logged MO and run what its rule says; returns the actions' log."""
        [outcome] = await self._handle([interaction])
        if outcome is None:
            raise RuntimeError(f"interaction {interaction.id} could not be handled")
        return list(outcome.actions)

    async def _decide(
        self,
        interaction: Interaction,
        entry: InboundNumber | None,
        facts: MoFacts,
        now: float,
        keyword_campaigns: dict[str, Sequence[CampaignInfo]],
    ) -> tuple[InteractionOutcome, list[NewMessage]]:
        """Route one MO and run its actions; its replies are prepared, not committed."""
        source = interaction.source
        sender = self._sender_of(entry, interaction.destination)
        opted_out = facts.opted_out
        campaign = await self._correlated(facts.last_campaign, now)
        # A number not configured still gets the built-in opt-out and opt-in words.
        rules: list[KeywordRule] = list(entry.rules if entry is not None else self._builtin[0])
        campaign_actions: dict[tuple[str, str], tuple[InboundActionConfig, ...]] = {}
        campaigns: dict[str, CampaignInfo] = {}
        if entry is not None:
            for info in keyword_campaigns.get(entry.number, ()):
                campaigns[info.id] = info
                for rule in info.keywords:
                    rules.append(rule_of(rule, info.id))
                    campaign_actions[(info.id, rule.name)] = rule.actions
        found = match(
            rules,
            interaction.text,
            opted_out=opted_out,
            campaign_id=campaign.id if campaign else None,
        )
        if found is not None and found.rule.campaign_id is not None:
            cid = found.rule.campaign_id
            if campaign is None or campaign.id != cid:
                campaign = campaigns.get(cid) or await self.directory.campaign(cid)
                campaign = campaign or CampaignInfo(cid, reply_window=self.inbound.reply_window)
        loop = facts.repeats >= self.inbound.loop_repeats
        deferred: list[NewMessage] = []
        replies = Replies(
            self.outbox,
            to=source,
            sender=sender,
            client_ref=f"mo-{interaction.id}",
            # Replies carry no campaign_id: they are not the campaign's sends (its statistics
            # and the reply-window correlation count only those); client_ref ties them.
            campaign_id=None,
            blocked=NOT_SENT_LOOP if loop else (NOT_SENT_NO_NUMBER if entry is None else None),
            deferred=deferred,
            opted_out=opted_out,
        )
        contact = facts.contact
        message = InboundMessage(
            id=interaction.id,
            source=source,
            destination=interaction.destination,
            text=interaction.text,
            received_at=interaction.received_at,
            keyword=found.keyword if found else None,
            rule=found.rule.name if found else None,
            campaign_id=campaign.id if campaign else None,
            complete=interaction.complete,
            carrier=interaction.carrier,
        )
        done: list[dict[str, Any]] = []
        if found is not None:
            if found.rule.campaign_id is not None and (
                (found.rule.campaign_id, found.rule.name) in campaign_actions
            ):
                actions = campaign_actions[(found.rule.campaign_id, found.rule.name)]
            elif entry is not None:
                actions = entry.actions.get(found.rule.name, ())
            elif found.rule.system:
                actions = self._builtin[1].get(found.rule.name, ())
            else:
                actions = ()
            for action in actions:
                done.append(
                    await self._run(action, entry, found, message, contact, campaign, replies)
                )
        account = self.upstream.mo_account_for(interaction.destination) if self.upstream else None
        if account is not None and self.upstream is not None:
            # The upstream system owns this number: it gets every MO (STOP too: it must
            # know), and it answers, so no courtesy reply goes from here.
            done.append(await self._to_upstream(account, message))
        elif found is None and entry is not None:
            courtesy = await self._courtesy(entry, campaign, source, contact, now, replies)
            if courtesy is not None:
                done.append(courtesy)
        self.stats.mo[(entry.number if entry else "other", _keyword_label(found, entry))] += 1
        outcome = InteractionOutcome(
            interaction_id=interaction.id,
            keyword=found.keyword if found else None,
            rule=found.rule.name if found else None,
            campaign_id=campaign.id if campaign else None,
            actions=done,
            at=self.clock(),
        )
        return outcome, deferred

    async def _courtesy(
        self,
        entry: InboundNumber,
        campaign: CampaignInfo | None,
        source: str,
        contact: Contact | None,
        now: float,
        replies: Replies,
    ) -> dict[str, Any] | None:
        if campaign is not None and campaign.courtesy_reply:
            text, scope = campaign.courtesy_reply, f"campaign:{campaign.id}"
        else:
            text, scope = entry.config.courtesy_reply, f"number:{entry.number}"
        if not text:
            return None
        if replies.blocked is not None:
            return {"type": "courtesy_reply", "ok": False, "not_sent": replies.blocked}
        claimed = await self.store.claim_courtesy(
            scope, source, now, self.inbound.courtesy_interval
        )
        if not claimed:
            return {"type": "courtesy_reply", "ok": False, "not_sent": "rate_limited"}
        self.stats.actions["courtesy_reply"] += 1
        # The contact's fields, as keyword replies have them ("Hi {first_name}").
        result = await replies.reply(render(text, contact_fields(source, contact)))
        return {"type": "courtesy_reply", **result.as_json()}

    async def _to_upstream(self, account: str, message: InboundMessage) -> dict[str, Any]:
        assert self.upstream is not None
        self.stats.actions["upstream"] += 1
        try:
            await self.upstream.deliver_mo(
                account,
                source=message.source,
                destination=message.destination,
                text=message.text,
                received_at=message.received_at,
            )
        except Exception as exc:
            self.stats.failed["upstream"] += 1
            log_event(
                log,
                "inbound.upstream_failed",
                logging.WARNING,
                interaction=message.id,
                account=account,
                error=repr(exc),
            )
            return {"type": "upstream", "account": account, "ok": False, "error": repr(exc)[:500]}
        return {"type": "upstream", "account": account, "ok": True}

    async def _run(
        self,
        action: InboundActionConfig,
        entry: InboundNumber | None,
        found: Match,
        message: InboundMessage,
        contact: Contact | None,
        campaign: CampaignInfo | None,
        replies: Replies,
    ) -> dict[str, Any]:
        kind = action.type
        self.stats.actions[kind] += 1
        try:
            detail = await self._do(action, entry, found, message, contact, campaign, replies)
        except Exception as exc:
            self.stats.failed[kind] += 1
            log_event(
                log,
                "inbound.action_failed",
                logging.WARNING,
                interaction=message.id,
                action=kind,
                error=repr(exc),
            )
            return {"type": kind, "ok": False, "error": repr(exc)[:500]}
        if detail.get("ok") is False and detail.get("not_sent") not in _DELIBERATE:
            self.stats.failed[kind] += 1
        return {"type": kind, **detail}

    async def _do(
        self,
        action: InboundActionConfig,
        entry: InboundNumber | None,
        found: Match,
        message: InboundMessage,
        contact: Contact | None,
        campaign: CampaignInfo | None,
        replies: Replies,
    ) -> dict[str, Any]:
        source, now = message.source, self.clock()
        fields = contact_fields(source, contact)
        number = entry.config if entry is not None else None
        kind = action.type
        if kind in ("reply", "send"):
            result = await replies.reply(render(action.text, fields), delay=action.delay)
            return result.as_json()
        if kind == "opt_out":
            scope_all = action.scope == "all"
            await self.store.add_opt_out(source, None if scope_all else replies.sender, "mo", now)
            replies.opted_out = None  # changed: later replies ask the store
            if self.outbound is not None:
                self.outbound.opt_out(source, None if scope_all else replies.sender)
            text = action.text
            if not text and number is not None:
                text = number.opt_out_all_reply if scope_all else number.opt_out_reply
            out: dict[str, Any] = {"ok": True, "scope": action.scope}
            if text:
                out["reply"] = _sent(await replies.reply(render(text, fields), transactional=True))
            return out
        if kind == "opt_in":
            await self.store.lift_opt_out(source, replies.sender)
            replies.opted_out = None  # changed: later replies ask the store
            text = action.text or (number.opt_in_reply if number is not None else "")
            out = {"ok": True}
            if text:
                out["reply"] = _sent(await replies.reply(render(text, fields), transactional=True))
            return out
        if kind == "help":
            text = number.help_text if number is not None else ""
            if not text:
                return {"ok": False, "error": "the number has no help_text"}
            return (await replies.reply(render(text, fields), transactional=True)).as_json()
        if kind == "tag":
            await self.store.tag_contact(source, [action.tag], now)
            return {"ok": True, "tag": action.tag}
        if kind == "answer":
            value, answer_kind = survey_answer(message.text, found.rule)
            await self.store.record_answer(
                SurveyAnswer(
                    interaction_id=message.id,
                    number=message.destination,
                    source=source,
                    question=action.question,
                    answer=value,
                    kind=answer_kind,
                    at=now,
                    campaign_id=campaign.id if campaign else None,
                )
            )
            return {"ok": True, "question": action.question, "answer": value, "kind": answer_kind}
        if kind == "webhook":
            payload = webhook_payload(message)
            await self.store.enqueue_callbacks(
                [(action.url, json.dumps(payload))], now, signer=WEBHOOK_SIGNER
            )
            if self.notify_callbacks is not None:
                self.notify_callbacks()
            return {"ok": True, "url": action.url}
        if kind == "handler":
            handler = self._handlers.get(action.handler)
            if handler is None:
                handler = self._handlers[action.handler] = resolve_handler(action.handler)
            returned = await self.handler_runner.call(
                handler, message, contact, campaign, replies, self.inbound.handler_timeout
            )
            return {"ok": True, "handler": action.handler, "result": _jsonable(returned)}
        raise ValueError(f"unknown action type {kind!r}")

    # -- metrics -----------------------------------------------------------------------------

    def collect(self) -> Iterable[Any]:
        mo = CounterMetricFamily(
            "smsgw_mo", "MOs handled, by our number and keyword", labels=["number", "keyword"]
        )
        for (number, keyword), count in sorted(self.stats.mo.items()):
            mo.add_metric([number, keyword], count)
        actions = CounterMetricFamily("smsgw_mo_actions", "MO actions run", labels=["action"])
        for kind, count in sorted(self.stats.actions.items()):
            actions.add_metric([kind], count)
        failed = CounterMetricFamily(
            "smsgw_mo_actions_failed", "MO actions that failed", labels=["action"]
        )
        for kind, count in sorted(self.stats.failed.items()):
            failed.add_metric([kind], count)
        parts = CounterMetricFamily("smsgw_mo_parts", "Parts of long MOs received")
        parts.add_metric([], self.stats.parts)
        incomplete = CounterMetricFamily(
            "smsgw_mo_incomplete", "Long MOs logged incomplete after the reassembly timeout"
        )
        incomplete.add_metric([], self.stats.incomplete)
        open_ = GaugeMetricFamily("smsgw_mo_reassembling", "Long MOs waiting for parts")
        open_.add_metric([], len(self.reassembler))
        blocked = GaugeMetricFamily(
            "smsgw_mo_handler_threads_blocked",
            "Handler threads held by a Python handler that overran handler_timeout",
        )
        blocked.add_metric([], self.handler_runner.blocked)
        retried = CounterMetricFamily(
            "smsgw_mo_retried",
            "Interactions handled again alone (failed, or pending at start)",
        )
        retried.add_metric([], self.stats.retried)
        quarantined = CounterMetricFamily(
            "smsgw_mo_quarantined",
            "Interactions quarantined after [inbound].max_attempts failed attempts",
        )
        quarantined.add_metric([], self.stats.quarantined)
        return [mo, actions, failed, parts, incomplete, open_, retried, quarantined, blocked]


_DELIBERATE: Final = frozenset({NOT_SENT_LOOP, NOT_SENT_OPTED_OUT, NOT_SENT_NO_NUMBER})
"""Replies not sent on purpose: not action failures."""


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


def _pending(interaction_id: int, new: NewInteraction) -> Interaction:
    """The interaction just logged, as the store would read it back."""
    return Interaction(
        id=interaction_id,
        carrier=new.carrier,
        source=new.source,
        destination=new.destination,
        text=new.text,
        data_coding=new.data_coding,
        parts=new.parts,
        parts_received=new.parts_received,
        missing=tuple(new.missing),
        received_at=new.received_at,
        completed_at=new.completed_at,
        state=INTERACTION_PENDING,
    )


def webhook_payload(message: InboundMessage) -> dict[str, Any]:
    """What a ``webhook`` action POSTs. ``reply_path``: where a helpdesk answers."""
    return {
        "event": "mo",
        "interaction_id": message.id,
        "from": message.source,
        "to": message.destination,
        "text": message.text,
        "received_at": iso_utc(message.received_at),
        "keyword": message.keyword,
        "rule": message.rule,
        "campaign_id": message.campaign_id,
        "complete": message.complete,
        "reply_path": f"/v1/interactions/{message.id}/reply",
    }


def survey_answer(text: str, rule: KeywordRule) -> tuple[str, str]:
    """The answer an MO gives: its first word when that is one ("YES", "no thanks", "3"),
    else what follows the rule's keyword ("VOTE 3" -> "3"), else the first word as text."""
    value, kind = parse_answer(text)
    if kind != "text":
        return value, kind
    head, _, rest = text.strip().partition(" ")
    if rule.words and fold_word(head) in rule.words and rest.strip():
        return parse_answer(rest)
    return value, kind


def _keyword_label(found: Match | None, entry: InboundNumber | None) -> str:
    if found is None:
        return "none"
    rule = found.rule
    if rule.system or (entry is not None and rule.campaign_id is None):
        return rule.name
    return "campaign"


def _sent(result: SendResult) -> dict[str, Any]:
    return result.as_json()


def _jsonable(value: object) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)[:500]
    return value
