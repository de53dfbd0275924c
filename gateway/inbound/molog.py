"""The MO log: deliver_sm / data_sm in, a durable interaction out.

:meth:`MoRecorder.handle_pdu` is the receipt handler's ``mo_handler``: it returns the
command_status of the deliver_sm_resp only after the MO is durable (an interaction logged, or
the part of a long MO kept). A store failure raises, and the receipt handler answers
ESME_RX_T_APPN so the SMSC sends the MO again. The single-part MOs that arrive in one loop
turn are logged in one store write (:meth:`MoRecorder.handle_pdus`, or :meth:`MoRecorder.handle_pdu`
called many times in one turn). Long MOs are reassembled (:mod:`gateway.inbound.reassembly`)
and logged, whole or at their timeout, in the commit that drops their kept parts. Each
interaction logged is handed to ``logged`` (the scheduler).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway.config import GatewayConfig, InboundConfig
from gateway.inbound.addresses import Addresses
from gateway.inbound.numbers import NumberBook
from gateway.inbound.reassembly import Assembly, MoReassembler, decode_parts, read_pdu
from gateway.inbound.stats import InboundStats
from gateway.logs import log_event
from gateway.smpp.constants import Status
from gateway.smpp.pdu import DataSm, DeliverSm, Pdu
from gateway.store.base import MoKey, MoPart, NewInteraction
from gateway.store.ports import MoLog

log = logging.getLogger("smsgw.inbound")

Logged = Callable[[int, NewInteraction], None]
"""Told of each interaction logged: its id and what was logged."""


class MoRecorder:
    """Makes MOs durable (see the module's doc)."""

    def __init__(
        self,
        config: GatewayConfig,
        store: MoLog,
        numbers: NumberBook,
        addresses: Addresses,
        logged: Logged,
        stats: InboundStats,
        clock: Callable[[], float],
    ) -> None:
        self.inbound: InboundConfig = config.inbound
        self.store = store
        self.numbers = numbers
        self.addresses = addresses
        self.logged = logged
        self.stats = stats
        self.clock = clock
        self.reassembler = MoReassembler(config.inbound.reassembly_timeout)
        self._packed = {c.name: c.gsm7_packed for c in config.carriers}
        self.running = False
        """MOs are taken (answered ROK once durable); when not, answered RX_T_APPN."""
        # Single-part MOs waiting to be logged together (one store write per loop turn).
        self._to_log: list[tuple[NewInteraction, asyncio.Future[int]]] = []
        self._log_tasks: set[asyncio.Task[None]] = set()
        self._timer_wake = asyncio.Event()
        # Long MOs logged lately, by key: a part the SMSC sends again after the message was
        # whole (our deliver_sm_resp was lost) must not start a message of its own.
        self._finished: dict[MoKey, float] = {}

    async def resume(self) -> None:
        """Reload the kept parts of long MOs; log those that are whole (their logging did
        not happen before a stop)."""
        for part in await self.store.mo_parts():
            assembly = self.reassembler.add(part)
            if assembly is not None:
                await self.record(assembly)

    def wake_timer(self) -> None:
        self._timer_wake.set()

    async def handle_pdus(self, mos: Sequence[tuple[Pdu, str]]) -> list[int | Exception]:
        """The receipt handler's ``mo_batch_handler``: the MOs (pdu, carrier) read in one
        loop turn, made durable together; for each, the command_status to answer it with,
        or the exception that kept it from being logged (answered ESME_RX_T_APPN). The
        single-part MOs are logged in one store write, in the order given (so one sender's
        MOs keep their order), with no task or future per MO; each part of a long MO goes
        as :meth:`handle_pdu` takes it."""
        answers: list[int | Exception] = [int(Status.RX_T_APPN)] * len(mos)
        if not self.running:
            return answers
        singles: list[tuple[int, NewInteraction]] = []
        longs: list[tuple[int, Pdu, str]] = []
        for index, (pdu, carrier) in enumerate(mos):
            if not isinstance(pdu, DeliverSm | DataSm):
                continue
            part = self.part(pdu, carrier)
            if part.key.total <= 1:
                singles.append((index, self.new_single(part)))
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
            self.logged(interaction_id, new)
            answers[index] = int(Status.ROK)

    async def _handle_long(
        self, index: int, pdu: Pdu, carrier: str, answers: list[int | Exception]
    ) -> None:
        try:
            answers[index] = await self.handle_pdu(pdu, carrier)
        except Exception as exc:
            answers[index] = exc

    def part(self, pdu: DeliverSm | DataSm, carrier: str) -> MoPart:
        """The MO, or one part of a long MO, as the store keeps it."""
        source = self.addresses.subscriber(pdu.source_addr, pdu.source_addr_ton)
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
        if not isinstance(pdu, DeliverSm | DataSm) or not self.running:
            return int(Status.RX_T_APPN)
        part = self.part(pdu, carrier)
        now = part.received_at
        total = part.key.total
        if total <= 1:
            await self._log(self.new_interaction(Assembly(part.key, [part], complete=True)))
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
                await self.record(assembly)
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

    def new_interaction(self, assembly: Assembly) -> NewInteraction:
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

    def new_single(self, part: MoPart) -> NewInteraction:
        """``new_interaction`` of a single-part MO, without assembling it."""
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

    async def record(self, assembly: Assembly) -> int:
        """Log a long MO (whole or timed out) and drop its kept parts, in one commit."""
        new = self.new_interaction(assembly)
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
        self.logged(interaction_id, new)
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
            self.logged(interaction_id, new)
            if not future.done():
                future.set_result(interaction_id)

    async def timer(self) -> None:
        """Take long MOs whose time is up as they are (runs until cancelled)."""
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
                await self.record(assembly)
            except Exception as exc:  # parts kept: the next start tries again
                log_event(log, "inbound.record_failed", logging.WARNING, error=repr(exc))
            else:
                logged += 1
        return logged
