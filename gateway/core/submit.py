"""Accepting messages, whatever their edge (HTTP API, SMPP front, inbound replies, campaigns):
commit them in the store (durable before anyone hears "accepted"), then hand them to the
dispatcher (:class:`Handoff`, the part of :class:`Outbound` this needs)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Protocol

from gateway.core.model import NewMessage
from gateway.store.base import IdempotentAnswer
from gateway.store.ports import MessageIntake

log = logging.getLogger("smsgw.api")


class Handoff(Protocol):
    """How committed messages reach the dispatcher (``accept_and_enqueue``)."""

    def enqueue(self, messages: Sequence[NewMessage], begun: Collection[str] = ()) -> None:
        """Take messages just committed by ``store.accept`` into the memory queues."""

    def reserve(self, messages: Sequence[NewMessage]) -> set[str]:
        """Before the commit: ids of messages that can leave at once."""

    def release(self, messages: Sequence[NewMessage], reserved: Collection[str]) -> None:
        """The commit of reserved messages failed: give their room back."""

    def unclaimed(self, messages: Sequence[NewMessage]) -> set[str]:
        """Before the commit: ids of messages this node has no bind of the carrier of, to
        be committed claimed by nobody (``store.accept(unclaimed=...)``): a node that has
        one takes them, woken by the commit."""


class Outbound(Handoff, Protocol):
    """What the edges (HTTP API, SMPP front, inbound, campaigns) need from the dispatcher."""

    def enqueue(self, messages: Sequence[NewMessage], begun: Collection[str] = ()) -> None:
        """Take messages just committed by ``store.accept`` into the memory queues;
        ``begun``: those committed begun, as ``reserve`` said (sent at once)."""

    def reserve(self, messages: Sequence[NewMessage]) -> set[str]:
        """Before the commit: ids of messages that can leave at once, to be committed
        begun (``store.accept(begun=...)``); each goes to ``enqueue`` or ``release``."""

    def release(self, messages: Sequence[NewMessage], reserved: Collection[str]) -> None:
        """The commit of reserved messages failed: give their room back."""

    def carriers_up(self) -> set[str]:
        """Carriers with at least one bound bind, for routing at intake."""

    def opt_out(self, number: str, sender: str | None) -> None:
        """``number`` opted out (of ``sender``, or of all when None), committed in the
        store: stop what is already on its way to the wire."""


async def accept_and_enqueue(
    store: MessageIntake,
    outbound: Handoff | None,
    messages: Sequence[NewMessage],
    idempotency: IdempotentAnswer | None = None,
) -> None:
    """Commit ``messages`` (durable before anyone hears "accepted"), then hand them to the
    dispatcher. Those of a carrier this node has no bind of are committed unclaimed, for a
    node that has one (``Handoff.unclaimed``). Those the dispatcher can send at once
    (``Outbound.reserve``: a bind with window and TPS room, nothing queued ahead) are
    committed with their first attempt begun, so their submit_sm leave with no second
    commit. Raises when the commit fails (nothing accepted, the reserved room given back);
    a failing hand-off after the commit is logged only: the messages wait in the store for
    the dispatcher's next load."""
    if not messages:
        return
    begun = outbound.reserve(messages) if outbound is not None else set()
    unclaimed = outbound.unclaimed(messages) if outbound is not None else set()
    try:
        await store.accept(messages, idempotency, begun, unclaimed)
    except BaseException:
        if outbound is not None:
            outbound.release(messages, begun)
        raise
    if outbound is None:
        return
    try:
        outbound.enqueue(messages, begun)
    except Exception:
        log.exception("api.enqueue_failed messages=%d", len(messages))
