"""The MO path: deliver_sm in, interaction logged, rule matched, actions run.

:class:`InboundService` wires the path's parts and owns their lifecycle and metrics:

- :mod:`~gateway.inbound.molog`: the MO log. A deliver_sm / data_sm is answered only once
  the MO is durable (an interaction logged, or the part of a long MO kept); single-part MOs
  of one loop turn share one store write; long MOs are reassembled.
- :mod:`~gateway.inbound.scheduling`: one queue per sender, batches holding at most one
  interaction per sender, retries alone and the quarantine of poisoned MOs.
- :mod:`~gateway.inbound.batches`: a batch in few store round trips (one read, one commit
  of the replies, one marking the interactions done): at least once.
- :mod:`~gateway.inbound.decision`: one MO's campaign, rule, courtesy reply, upstream.
- :mod:`~gateway.inbound.actions`: the table of actions a rule runs.

Choices where the issue is silent (also in the README section "Inbound"):

- The subscriber's address is normalised as the HTTP API does (E.164 for a TON
  international or '+' number; a short code or alphanumeric sender is kept as it is), so
  opt-outs and contacts match those of MTs (:mod:`~gateway.inbound.addresses`).
- An MO to a number that is not configured is still logged; the built-in opt-out and
  opt-in words (STOP ..., STOPALL, START ..., YES from an opted-out sender) still apply to
  it, silently (no texts to reply with): carriers' codes of conduct want STOP honoured on
  every number. The opt-out is kept against the number as MTs would give it in ``from``
  (a short code as written, a long number in E.164).
- A failing action is recorded as failed on the interaction; the next ones still run.
- Campaign correlation and the loop guard: see :mod:`~gateway.inbound.decision`; poisoned
  MOs: see :mod:`~gateway.inbound.scheduling`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from gateway.config import GatewayConfig
from gateway.core.intake import Intake
from gateway.core.submit import Outbound
from gateway.inbound.actions import ActionServices
from gateway.inbound.addresses import Addresses
from gateway.inbound.batches import STRAGGLER_SECONDS, Batches
from gateway.inbound.campaign_directory import CampaignDirectory, CampaignInfo, NoCampaigns
from gateway.inbound.decision import Decider, UpstreamMo
from gateway.inbound.handlers import HandlerRunner
from gateway.inbound.molog import MoRecorder
from gateway.inbound.numbers import NumberBook
from gateway.inbound.reassembly import MoReassembler
from gateway.inbound.replies import Outbox
from gateway.inbound.scheduling import (
    BATCH_MAX,
    BATCHES_IN_FLIGHT,
    RETRY_DELAY_SECONDS,
    Scheduler,
)
from gateway.inbound.stats import InboundStats
from gateway.logs import log_event
from gateway.metrics import CounterMetricFamily, GaugeMetricFamily
from gateway.smpp.pdu import Pdu
from gateway.store.base import INTERACTION_PENDING, Interaction
from gateway.store.ports import InboundPorts

log = logging.getLogger("smsgw.inbound")

PENDING_PAGE: Final = 500
"""Pending interactions read at a time on start."""

STOP_DRAIN_SECONDS: Final = 5.0
"""How long a stopping service lets queued interactions finish; the rest stay pending."""


class InboundService:
    """MO handling for one gateway: its parts wired together (see the module's doc)."""

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
        self.store = store
        self.intake = intake
        self.clock = clock
        self.addresses = Addresses(intake)
        self.numbers = NumberBook(config.inbound, self.addresses.our_number)
        self.outbox = Outbox(store, intake, outbound, clock)
        self.stats = InboundStats.new()
        self.handler_runner = HandlerRunner()
        """Python handlers run on threads of their own (gateway.inbound.handlers)."""
        errors: dict[int, str] = {}  # why each failed interaction failed, for its retry
        self.decider = Decider(
            config.inbound,
            store,
            directory or NoCampaigns(),
            self.outbox,
            self.addresses,
            ActionServices(
                store,
                self.outbox,
                clock,
                notify_callbacks=notify_callbacks,
                handler_runner=self.handler_runner,
            ),
            self.stats,
            clock,
        )
        self.batches = Batches(
            config.inbound,
            store,
            self.numbers,
            self.addresses,
            self.decider,
            self.outbox,
            errors,
            clock,
            straggler_seconds,
        )
        self.scheduler = Scheduler(
            config.inbound,
            store,
            self.batches.handle,
            errors,
            self.stats,
            clock,
            batch_max=batch_max,
            batches_in_flight=batches_in_flight,
            retry_delay=retry_delay,
        )
        self.molog = MoRecorder(
            config,
            store,
            self.numbers,
            self.addresses,
            self.scheduler.enqueue_logged,
            self.stats,
            clock,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def reload(self, config: GatewayConfig) -> None:
        """SIGHUP: numbers, keyword rules, built-in words and timings from the new file.
        Parts being reassembled keep the timeout they started with."""
        self.config = config
        inbound = config.inbound
        self.numbers.reload(inbound)
        self.decider.reload(inbound)
        self.batches.inbound = self.scheduler.inbound = self.molog.inbound = inbound

    @property
    def outbound(self) -> Outbound | None:
        return self.outbox.outbound

    @outbound.setter
    def outbound(self, value: Outbound | None) -> None:
        self.outbox.outbound = value

    @property
    def upstream(self) -> UpstreamMo | None:
        """Where MOs to numbers routed to an upstream SMPP account go (the server front)."""
        return self.decider.upstream

    @upstream.setter
    def upstream(self, value: UpstreamMo | None) -> None:
        self.decider.upstream = value

    @property
    def reassembler(self) -> MoReassembler:
        return self.molog.reassembler

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load API numbers, resume unfinished reassembly and pending interactions."""
        await self.numbers.load(self.store)
        self.scheduler.reset()
        await self.molog.resume()
        self.molog.running = True
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.molog.timer()), loop.create_task(self.scheduler.run())]
        after = 0
        while True:
            page = await self.store.pending_interactions(after, PENDING_PAGE)
            for interaction in page:
                self.scheduler.recovered(interaction)
            if len(page) < PENDING_PAGE:
                break
            after = page[-1].id
        self.molog.wake_timer()

    async def take_over(self) -> int:
        """Claim and handle the pending MOs no live node holds (their node stopped: its
        claims lapsed or were given back), each alone as at a restart; how many. The look
        for interactions of gateway.takeover."""
        if not self.molog.running:
            return 0
        taken: list[int] = []
        after = 0
        while True:
            page = await self.store.pending_interactions(after, PENDING_PAGE, foreign=True)
            for interaction in page:
                self.scheduler.taken_over(interaction)
            taken.extend(i.id for i in page)
            if len(page) < PENDING_PAGE:
                break
            after = page[-1].id
        if taken:
            self.stats.taken_over += len(taken)
            log_event(
                log,
                "inbound.took_over",
                logging.WARNING,
                interactions=len(taken),
                first=taken[0],
                detail="pending MOs of a node that stopped",
            )
        return len(taken)

    async def stop(self, drain: float = STOP_DRAIN_SECONDS) -> None:
        """Stop taking MOs, let queued interactions finish for ``drain`` seconds, stop."""
        self.molog.running = False
        if self._tasks:
            await self.scheduler.wait_idle(drain)
        tasks = [*self._tasks, *self.scheduler.batch_tasks]
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
        if interaction is None or interaction.state != INTERACTION_PENDING:
            return
        if not self.molog.running:  # not running: the next start finds it pending
            return
        self.scheduler.retry(interaction)

    def idle(self) -> bool:
        """No interaction queued or being handled."""
        return self.scheduler.idle()

    # -- from the binds ----------------------------------------------------------------------

    async def handle_pdus(self, mos: Sequence[tuple[Pdu, str]]) -> list[int | Exception]:
        """The receipt handler's ``mo_batch_handler`` (:meth:`MoRecorder.handle_pdus`)."""
        return await self.molog.handle_pdus(mos)

    async def handle_pdu(self, pdu: Pdu, carrier: str) -> int:
        """The receipt handler's ``mo_handler`` (:meth:`MoRecorder.handle_pdu`)."""
        return await self.molog.handle_pdu(pdu, carrier)

    async def expire(self) -> int:
        """Log every long MO whose reassembly time is up, as it is; how many were."""
        return await self.molog.expire()

    # -- handling ----------------------------------------------------------------------------

    async def correlate(self, source: str, sender: str, now: float) -> CampaignInfo | None:
        """The campaign that last messaged ``source`` from ``sender`` within its window."""
        return await self.decider.correlate(source, sender, now)

    async def process(self, interaction: Interaction) -> list[dict[str, Any]]:
        """Route one logged MO and run what its rule says; returns the actions' log."""
        [outcome] = await self.batches.handle([interaction])
        if outcome is None:
            raise RuntimeError(f"interaction {interaction.id} could not be handled")
        return list(outcome.actions)

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
