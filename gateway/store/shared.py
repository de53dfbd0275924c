"""Port methods (and steps of them) whose logic is backend-neutral, written once over a
primitive each backend keeps (its SQL and its way to the database).

A backend class inherits a mixin and provides its primitive; the port (gateway.store.ports)
stays the contract.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.core.model import OutboundMessage
from gateway.logs import log_event
from gateway.store import rows as store_rows
from gateway.store.base import FRONT_PART_FAILED, FRONT_PART_JOINED


def log_requeued_taken(
    log: logging.Logger, by_id: Mapping[str, OutboundMessage], requeued: Sequence[str]
) -> None:
    """``take_over_pending`` queued again parts a lapsed node had in flight: one warning
    naming those nodes (the messages go again, flagged possible_duplicate)."""
    if requeued:
        log_event(
            log,
            "store.requeued_in_flight",
            logging.WARNING,
            messages=len(requeued),
            nodes=",".join(sorted({str(by_id[mid].taken_from) for mid in requeued})),
            detail="begun by a node whose claim lapsed: sent again, flagged possible_duplicate",
        )


class FrontPartsSettling:
    """``FrontParts.front_parts_joined`` and ``front_parts_failed``: the held parts leave
    ``held`` for one state, their data dropped, with the receipts a refusal owes added to
    the front outbox in the same commit."""

    async def _settle_front_parts(
        self, message_ids: Sequence[str], state: str, outbox: list[tuple[Any, ...]]
    ) -> None:
        """In one commit: the parts of ``message_ids`` still held take ``state`` and an
        empty pdu; the ``front_outbox`` rows ``outbox`` are added."""
        raise NotImplementedError  # pragma: no cover - each backend provides it

    async def front_parts_joined(self, message_ids: Sequence[str]) -> None:
        await self._settle_front_parts(message_ids, FRONT_PART_JOINED, [])

    async def front_parts_failed(
        self, message_ids: Sequence[str], receipts: Sequence[tuple[str, str, str]], at: float
    ) -> None:
        outbox = store_rows.front_outbox_rows(receipts, at)
        await self._settle_front_parts(message_ids, FRONT_PART_FAILED, outbox)
