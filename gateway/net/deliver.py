"""What a carrier sends us on its binds: deliver_sm, data_sm and alert_notification.

``DeliverSmRouter.request`` is every bind's ``BindListener.request``. A deliver_sm or data_sm
is a receipt or an MO (gateway.net.classify): a receipt goes to the receipt handler
(gateway.engine.receipts: stored, then acknowledged); an MO goes to the MO handler (the
inbound service), whose status is the answer. Without an MO handler, or while stopped, an MO
is answered ESME_RX_T_APPN (the SMSC keeps it and retries). An alert_notification is counted;
any other request is answered ESME_RX_T_APPN.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from gateway.binds import CarrierBind
from gateway.engine.receipts import ReceiptHandler
from gateway.logs import log_event
from gateway.net.classify import classify
from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import CommandId, Status
from gateway.smpp.pdu import DataSm, DeliverSm, Pdu

log = logging.getLogger("smsgw.receipts")

MoHandler = Callable[[Pdu, str], Awaitable[int]]
"""``await mo_handler(pdu, carrier)`` -> the command_status to answer the MO with."""
MoBatchHandler = Callable[[Sequence[tuple[Pdu, str]]], Awaitable[Sequence[int | Exception]]]
"""``await mo_batch_handler([(pdu, carrier), ...])`` -> for each MO, the command_status to
answer it with, or the exception that kept it from being handled (ESME_RX_T_APPN). When
set, the MOs received in one loop turn go to it together (one task, not one per MO)."""

_DELIVER_SM: Final = int(CommandId.DELIVER_SM)
_DATA_SM: Final = int(CommandId.DATA_SM)


class DeliverSmRouter:
    """Receipts to ``receipts``, MO to ``mo_handler`` / ``mo_batch_handler``."""

    def __init__(self, receipts: ReceiptHandler, *, mo_handler: MoHandler | None = None) -> None:
        self.receipts = receipts
        self.stats = receipts.stats
        """The receipt handler's counts (MO and alerts included: ``/metrics``)."""
        self.mo_handler = mo_handler
        self.mo_batch_handler: MoBatchHandler | None = None
        self._mo_tasks: set[asyncio.Task[None]] = set()
        self._mo_batch: list[tuple[CarrierBind, SmppConnection, Pdu]] = []

    def request(self, bind: CarrierBind, pdu: Pdu) -> None:
        """BindListener.request: a deliver_sm, data_sm or alert_notification."""
        command_id = pdu.command_id
        if command_id == _DELIVER_SM:
            assert isinstance(pdu, DeliverSm)
            text = pdu.short_message or pdu.message_payload or b""
        elif command_id == _DATA_SM:
            assert isinstance(pdu, DataSm)
            text = pdu.message_payload or b""
        else:
            if pdu.RESPONSE is None:  # alert_notification: nothing to answer
                self.stats.alerts += 1
            else:
                bind.respond(pdu.make_response(Status.RX_T_APPN))
            return
        receipts = self.receipts
        carrier = bind.carrier
        incoming, unparsable = classify(
            carrier, receipts.forms(carrier), pdu.esm_class, text, pdu.tlvs, receipts.clock()
        )
        if incoming is None:
            self._mo(bind, pdu)
            return
        if unparsable:
            self.stats.unparsable += 1
        receipts.take(bind.conn, pdu, incoming)

    # -- MO ------------------------------------------------------------------------------------

    def _mo(self, bind: CarrierBind, pdu: Pdu) -> None:
        self.stats.mo_received += 1
        conn = bind.conn
        handler = self.mo_handler
        batched = self.mo_batch_handler is not None
        if (handler is None and not batched) or not self.receipts.running or conn is None:
            self.stats.mo_refused += 1
            bind.respond(pdu.make_response(Status.RX_T_APPN))
            return
        loop = asyncio.get_running_loop()
        if batched:
            if not self._mo_batch:
                loop.call_soon(self._flush_mo)  # after the PDUs already read this turn
            self._mo_batch.append((bind, conn, pdu))
            return
        assert handler is not None
        task = loop.create_task(self._run_mo(handler, bind, conn, pdu))
        self._mo_tasks.add(task)
        task.add_done_callback(self._mo_tasks.discard)

    def _flush_mo(self) -> None:
        batch, self._mo_batch = self._mo_batch, []
        handler = self.mo_batch_handler
        if not batch or handler is None:
            for _, conn, pdu in batch:
                self.stats.mo_refused += 1
                conn.send_response(pdu.make_response(Status.RX_T_APPN))
            return
        task = asyncio.get_running_loop().create_task(self._run_mo_batch(handler, batch))
        self._mo_tasks.add(task)
        task.add_done_callback(self._mo_tasks.discard)

    async def _run_mo_batch(
        self, handler: MoBatchHandler, batch: list[tuple[CarrierBind, SmppConnection, Pdu]]
    ) -> None:
        try:
            answers: Sequence[int | Exception] = await handler(
                [(pdu, bind.carrier) for bind, _, pdu in batch]
            )
        except Exception as exc:
            answers = [exc] * len(batch)
        for (bind, conn, pdu), status in zip(batch, answers, strict=True):
            if isinstance(status, Exception):
                self.stats.mo_refused += 1
                log_event(
                    log,
                    "mo.handler_failed",
                    logging.WARNING,
                    carrier=bind.carrier,
                    error=repr(status),
                )
                status = Status.RX_T_APPN
            conn.send_response(pdu.make_response(status))

    async def _run_mo(
        self, handler: MoHandler, bind: CarrierBind, conn: SmppConnection, pdu: Pdu
    ) -> None:
        try:
            status = await handler(pdu, bind.carrier)
        except Exception as exc:
            self.stats.mo_refused += 1
            log_event(
                log, "mo.handler_failed", logging.WARNING, carrier=bind.carrier, error=repr(exc)
            )
            status = Status.RX_T_APPN
        conn.send_response(pdu.make_response(status))

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.receipts.start()

    async def stop(self, drain: float) -> None:
        """Stop the receipt handler (see ``ReceiptHandler.stop``), then run the handler of
        the MOs read in the last turn and wait for MO handlers, each within ``drain``."""
        await self.receipts.stop(drain)
        self._flush_mo()  # MOs read in the last turn: their handler runs now
        if self._mo_tasks:
            _, pending = await asyncio.wait(set(self._mo_tasks), timeout=drain)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
