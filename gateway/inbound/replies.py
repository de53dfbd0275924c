"""Messages the inbound side sends: replies to an MO's sender, follow-ups.

They are prepared exactly as an HTTP request would be (``Intake.prepare``: number check,
routing, encoding and parts), committed with ``store.accept`` and handed to the dispatcher:
an auto-reply is an ordinary MT, with a status, receipts and history, its ``client_ref``
naming the interaction (``mo-<id>``) and its account ``inbound``.

Opt-outs: a reply to a sender who opted out of the number is not sent, except a
*transactional* one: the confirmation of the opt-out itself and the HELP answer, which
carrier codes of conduct (CTIA, MMA) ask for and which the subscriber just asked for.

Loops: when the MO looks like a machine talking (the same text again and again, see
``InboundConfig.loop_repeats``) no reply of any kind goes, transactional ones included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from gateway.core.intake import Intake
from gateway.core.model import NewMessage
from gateway.core.submit import Outbound, accept_and_enqueue
from gateway.store.ports import Submits

log = logging.getLogger("smsgw.inbound")

ACCOUNT: Final = "inbound"
"""The account of messages the inbound side sends (the API shows it like a token's name)."""

NOT_SENT_OPTED_OUT: Final = "opted_out"
NOT_SENT_LOOP: Final = "loop"
NOT_SENT_NO_NUMBER: Final = "unknown_number"
"""An MO to a number not configured gets no automatic reply (no texts to send)."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one reply: the new message's id, or why none was sent."""

    message_id: str | None = None
    reason: str | None = None

    @property
    def sent(self) -> bool:
        return self.message_id is not None

    def as_json(self) -> dict[str, Any]:
        if self.message_id is not None:
            return {"ok": True, "message_id": self.message_id}
        return {"ok": False, "not_sent": self.reason}


class Outbox:
    """Prepares, commits and enqueues messages, as the HTTP API does."""

    def __init__(
        self,
        store: Submits,
        intake: Intake,
        outbound: Outbound | None,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.intake = intake
        self.outbound = outbound
        self.clock = clock
        self._up: set[str] | None = None  # carriers up, this loop turn

    async def send(
        self,
        *,
        to: str,
        sender: str,
        text: str,
        client_ref: str | None = None,
        campaign_id: str | None = None,
        delay: float = 0.0,
        transactional: bool = False,
    ) -> SendResult:
        prepared = await self.prepare(
            to=to,
            sender=sender,
            text=text,
            client_ref=client_ref,
            campaign_id=campaign_id,
            delay=delay,
            transactional=transactional,
        )
        if isinstance(prepared, SendResult):
            return prepared
        await self.commit([prepared])
        return SendResult(message_id=prepared.id)

    async def prepare(
        self,
        *,
        to: str,
        sender: str,
        text: str,
        client_ref: str | None = None,
        campaign_id: str | None = None,
        delay: float = 0.0,
        transactional: bool = False,
        opted_out: bool | None = None,
    ) -> NewMessage | SendResult:
        """The message ``send`` would commit, or why none goes. ``opted_out``: whether
        ``to`` is known to be opted out of ``sender`` (None: ask the store)."""
        if not text:
            return SendResult(reason="empty text")
        if not transactional:
            if opted_out is None:
                opted_out = bool(await self.store.opted_out([to], sender))
            if opted_out:
                return SendResult(reason=NOT_SENT_OPTED_OUT)
        now = self.clock()
        up = self._carriers_up()
        # Intake.prepare's checks, without building a request object.
        prepared = self.intake.prepare_reply(
            to=to,
            sender=sender,
            text=text,
            account=ACCOUNT,
            now=now,
            up=up,
            client_ref=client_ref,
            campaign_id=campaign_id,
            scheduled_at=now + delay if delay > 0 else None,
        )
        if isinstance(prepared, list):
            return SendResult(
                reason="invalid: " + "; ".join(f"{e.path} {e.message}" for e in prepared)
            )
        return prepared

    def _carriers_up(self) -> set[str]:
        """The carriers up, asked of the dispatcher once per loop turn: the replies of a
        batch are prepared in one turn, and the answer (a set built from every bind) is
        the same for all of them."""
        up = self._up
        if up is None:
            outbound = self.outbound
            up = self._up = outbound.carriers_up() if outbound is not None else set()
            asyncio.get_running_loop().call_soon(self._forget_up)
        return up

    def _forget_up(self) -> None:
        self._up = None

    async def commit(self, messages: Sequence[NewMessage]) -> None:
        """Accept prepared messages in one store commit, then hand them to the dispatcher.
        Raises when the commit fails (nothing was accepted)."""
        await accept_and_enqueue(self.store, self.outbound, list(messages))


class ReplyApi(Protocol):
    """What a Python handler gets to answer with."""

    @property
    def to(self) -> str:
        """The MO's sender, whom replies go to."""

    @property
    def sender(self) -> str:
        """Our number the MO was written to, which replies come from."""

    async def send(self, text: str, *, delay: float = 0.0) -> str | None:
        """Send ``text`` as is (no template) to the MO's sender, ``delay`` seconds from
        now. The new message's id, or None when it was not sent (opted out, loop guard,
        a sender that cannot receive SMS)."""


@dataclass(slots=True)
class Replies:
    """The replies of one interaction; the :class:`ReplyApi` handlers get."""

    outbox: Outbox
    to: str
    sender: str
    client_ref: str
    campaign_id: str | None
    blocked: str | None = None  # NOT_SENT_LOOP when no reply may go
    results: list[SendResult] = field(default_factory=list)
    deferred: list[NewMessage] | None = None
    """None: each reply is committed as it is made. A list: replies are prepared into it
    and the caller commits them (``Outbox.commit``) before it records the interaction as
    done; the ids handed out are those the commit will write."""
    opted_out: bool | None = None
    """Whether ``to`` is opted out of ``sender``, when the caller already knows (None: each
    non-transactional reply asks the store)."""

    async def reply(
        self, text: str, *, delay: float = 0.0, transactional: bool = False
    ) -> SendResult:
        if self.blocked is not None:
            result = SendResult(reason=self.blocked)
        elif self.deferred is None:
            result = await self.outbox.send(
                to=self.to,
                sender=self.sender,
                text=text,
                client_ref=self.client_ref,
                campaign_id=self.campaign_id,
                delay=delay,
                transactional=transactional,
            )
        else:
            prepared = await self.outbox.prepare(
                to=self.to,
                sender=self.sender,
                text=text,
                client_ref=self.client_ref,
                campaign_id=self.campaign_id,
                delay=delay,
                transactional=transactional,
                opted_out=self.opted_out,
            )
            if isinstance(prepared, SendResult):
                result = prepared
            else:
                self.deferred.append(prepared)
                result = SendResult(message_id=prepared.id)
        self.results.append(result)
        return result

    async def send(self, text: str, *, delay: float = 0.0) -> str | None:
        return (await self.reply(text, delay=delay)).message_id
