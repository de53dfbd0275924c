"""Test doubles for the outbound engine: an in-memory Store and a scriptable SMSC.

``FakeStore`` implements the ``gateway.store.base.Store`` protocol faithfully enough for the
engine's tests: parts and their statuses, the receipt map keyed by (carrier, receipt_key),
unmatched receipts kept and applied when their outcome arrives later, the aggregate status,
history, and a callback outbox fed by status changes of messages with a callback_url. It
adds knobs (delays, failures) and a log of calls, and ``wait_until`` to await a condition
without polling.

``FakeSmsc`` is a small SMSC on our own sans-IO session: it answers submit_sm through a
script (status per submit, or no answer at all), with a response delay, ids in hex or
decimal, and optional receipts (before or after the response, id in another base).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.callback_policy import CallbackPolicy
from gateway.core import ledger
from gateway.core.ledger import SUBMITTING, PartState
from gateway.core.model import (
    CANCELLED,
    HistoryEntry,
    IncomingReceipt,
    MessageStatus,
    MessageView,
    NewMessage,
    OutboundMessage,
    PartView,
    Replacement,
    StatusChange,
    SubmitOutcome,
    new_message_id,
)
from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import EsmClass, Status, Tag
from gateway.smpp.pdu import DeliverSm, Pdu, SubmitSm, tlv_cstr, tlv_u8
from gateway.smpp.receipt import MessageState, format_receipt_text
from gateway.smpp.session import (
    BindRequested,
    Event,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
)
from gateway.store.base import (
    CALLBACK_PARKED_AT,
    EDIT_DONE,
    EDIT_REFUSED,
    EDIT_UNKNOWN,
    NO_RECEIPT,
    Callback,
    CallbackView,
    IdempotencyConflict,
    IdempotentAnswer,
    LinkCodeTaken,
    MessageQuery,
    MessageRow,
    MessageSummary,
    StoreError,
)
from gateway.store.claims import ClaimSettings
from gateway.store.leases import (
    ClusterView,
    LeaseRound,
    NodeInfo,
    NodeRow,
    SlotRow,
    live_ids,
    plan_round,
    round_result,
)
from gateway.store.retention import message_id_before

LOOPBACK_RECEIVERS = CallbackPolicy(allowed_networks=["127.0.0.0/8"])
"""The callback policy of tests whose receiver listens on 127.0.0.1: an explicit allowed
network, as an operator would configure ``[callbacks] allowed_networks``."""

# -- the store ------------------------------------------------------------------------------


@dataclass
class FakePart:
    number: int
    status: str = MessageStatus.ACCEPTED
    """A MessageStatus, or SUBMITTING between begin_attempts and its outcome (as stored by
    the SQLite store); it moves only by the ledger's rules (gateway.core.ledger)."""
    attempts: int = 0
    carrier: str | None = None
    carrier_message_id: str | None = None
    receipt_key: str | None = None
    error: str | None = None
    retry_at: float | None = None
    possible_duplicate: bool = False
    receipt_state: str | None = None
    submitted_at: float | None = None

    @property
    def in_flight(self) -> bool:
        return self.status == SUBMITTING

    @property
    def state(self) -> PartState:
        return PartState(self.status, self.error)

    def take(self, state: PartState) -> bool:
        """Take the ledger's new state; whether it changed anything."""
        if state == (self.status, self.error):
            return False
        self.status, self.error = state
        return True


@dataclass
class FakeMessage:
    new: NewMessage
    parts: list[FakePart]
    status: MessageStatus = MessageStatus.ACCEPTED
    history: list[HistoryEntry] = field(default_factory=list)
    error: str | None = None
    carrier: str | None = None
    updated_at: float = 0.0
    """When its status last moved (the SQLite store's messages.updated_at)."""
    claimed_by: str | None = None
    claim_until: float | None = None

    @property
    def possible_duplicate(self) -> bool:
        return any(p.possible_duplicate for p in self.parts)


@dataclass
class FakeCallback:
    id: int
    url: str
    payload: str
    attempts: int = 0
    next_at: float = 0.0
    done: bool = False
    last_error: str | None = None
    signer: str | None = None
    claimed_by: str | None = None
    claim_until: float | None = None


_PENDING = (MessageStatus.ACCEPTED, MessageStatus.QUEUED)


class FakeStore:
    """In-memory Store. ``calls`` logs (method, size, loop time) of every call."""

    def __init__(
        self, clock: Callable[[], float] = time.time, claims: ClaimSettings | None = None
    ) -> None:
        self.clock = clock
        self.claims = claims or ClaimSettings()
        """This node's id and claim length: rows claimed by another node, until their
        claims lapse, are left alone (gateway.store.claims)."""
        self.messages: dict[str, FakeMessage] = {}
        self.receipt_map: dict[tuple[str, str], tuple[str, int]] = {}
        self.unmatched: dict[tuple[str, str], list[IncomingReceipt]] = {}
        self.receipts: list[IncomingReceipt] = []
        self.callbacks: dict[int, FakeCallback] = {}
        self.idempotency: dict[tuple[str, str], IdempotentAnswer] = {}
        self.opt_outs: set[tuple[str, str | None]] = set()
        self.links: dict[str, tuple[str, str]] = {}
        """Short link code -> (message id, target), written with the message."""
        self.calls: list[tuple[str, int, float]] = []
        # Knobs.
        self.receipt_delay = 0.0
        self.outcome_delay = 0.0
        self.begin_delay = 0.0
        self.fail_receipts = 0
        """How many record_receipts calls raise StoreError next."""
        self.fail_outcomes = 0
        self.fail_begin = 0
        self.joint_begins: list[int] = []
        """Parts begun by each record_outcomes_and_begin call."""
        self.receipts_committed: list[float] = []
        """Loop time at which each record_receipts call finished."""
        self._changed = asyncio.Event()
        self._next_callback = 1

    def _log(self, name: str, size: int) -> None:
        self.calls.append((name, size, asyncio.get_running_loop().time()))

    def _touch(self) -> None:
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], object], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checking after each store change."""
        await wait_for_change(self._changed, predicate, within)

    def peer(self, node_id: str) -> FakeStore:
        """Another node's view of the same data (as a second store on one database)."""
        other = copy.copy(self)
        other.claims = dataclasses.replace(self.claims, node_id=node_id)
        return other

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        # As the SQLite store at open: parts a previous run left in flight (it stopped
        # mid-send) are queued again, their message flagged possible_duplicate for good.
        now = self.clock()
        for msg in self.messages.values():
            if msg.status not in _PENDING:
                continue
            if not self.claims.claimable(msg.claimed_by, msg.claim_until, now):
                continue  # another live node's, in flight there
            for part in msg.parts:
                if part.take(ledger.requeue_in_flight(part.state)):
                    part.possible_duplicate = True

    async def close(self) -> None:
        pass

    # -- claims -----------------------------------------------------------------------------

    def _claimed_rows(self) -> list[Any]:
        """Every row with claims whose claim matters (work still to do)."""
        return [
            *(c for c in self.callbacks.values() if not c.done),
            *(m for m in self.messages.values() if m.status in _PENDING),
        ]

    def _claim(self, row: Any, now: float) -> bool:
        """Claim ``row`` for this node if it may; whether it did."""
        if not self.claims.claimable(row.claimed_by, row.claim_until, now):
            return False
        row.claimed_by = self.claims.node_id
        row.claim_until = self.claims.until(now)
        return True

    async def renew_claims(self, now: float) -> int:
        mine = [r for r in self._claimed_rows() if r.claimed_by == self.claims.node_id]
        for row in mine:
            row.claim_until = self.claims.until(now)
        return len(mine)

    async def release_claims(self) -> int:
        mine = [r for r in self._claimed_rows() if r.claimed_by == self.claims.node_id]
        for row in mine:
            row.claimed_by = row.claim_until = None
        return len(mine)

    # -- intake -----------------------------------------------------------------------------

    async def accept(
        self,
        messages: Sequence[NewMessage],
        idempotency: IdempotentAnswer | None = None,
        begun: Collection[str] = (),
        unclaimed: Collection[str] = (),
    ) -> None:
        self._log("accept", len(messages))
        codes = [code for new in messages for code, _ in new.links]
        if len(set(codes)) < len(codes) or any(code in self.links for code in codes):
            raise LinkCodeTaken("a short link code is taken")  # nothing committed
        ids = [new.id for new in messages]
        if len(set(ids)) < len(ids) or any(i in self.messages for i in ids):
            raise StoreError("a message id is taken")  # as SQLite's primary key: nothing kept
        if idempotency is not None:
            key = (idempotency.account, idempotency.key)
            if key in self.idempotency:
                raise IdempotencyConflict(idempotency.key)
            self.idempotency[key] = idempotency
        for new in messages:
            parts = [FakePart(n) for n in range(1, new.parts + 1)]
            if new.id in begun:  # as begin_attempts would leave them
                for part in parts:
                    part.attempts = 1
                    part.take(ledger.begin_attempt(part.state))
            for code, target in new.links:
                self.links[code] = (new.id, target)
            msg = FakeMessage(new, parts, carrier=new.carrier, updated_at=new.created_at)
            if new.id not in unclaimed:  # for a node with a bind of its carrier
                msg.claimed_by = self.claims.node_id
                msg.claim_until = self.claims.until(new.created_at)
            msg.history.append(HistoryEntry(new.created_at, "accepted"))
            self.messages[new.id] = msg
        self._touch()

    async def find_idempotent(self, account: str, key: str) -> IdempotentAnswer | None:
        return self.idempotency.get((account, key))

    async def opted_out(self, numbers: Sequence[str], sender: str) -> set[str]:
        return {n for n in numbers if (n, sender) in self.opt_outs or (n, None) in self.opt_outs}

    async def add_opt_out(self, number: str, sender: str | None, source: str, at: float) -> None:
        self.opt_outs.add((number, sender))

    async def remove_opt_out(self, number: str, sender: str | None) -> None:
        self.opt_outs.discard((number, sender))

    # -- dispatch ---------------------------------------------------------------------------

    async def listen(self, wake: Callable[[str, str], None]) -> None:
        """One node's memory: nobody else leaves it work (as SQLite)."""

    async def load_pending(
        self,
        after: str | None,
        limit: int,
        now: float | None = None,
        carriers: Collection[str] | None = None,
    ) -> list[OutboundMessage]:
        self._log("load_pending", limit)
        now = time.time() if now is None else now
        out: list[OutboundMessage] = []
        for mid in sorted(self.messages):
            if after is not None and mid <= after:
                continue
            msg = self.messages[mid]
            if carriers is not None and (msg.carrier or msg.new.carrier) not in carriers:
                continue
            pending = [p for p in msg.parts if p.status in ledger.PENDING]
            if not pending or not self._claim(msg, now):
                continue
            out.append(self._outbound(msg, pending))
            if len(out) >= limit:
                break
        return out

    async def take_over_pending(
        self,
        limit: int,
        now: float | None = None,
        carriers: Collection[str] | None = None,
    ) -> list[OutboundMessage]:
        self._log("take_over_pending", limit)
        now = time.time() if now is None else now
        me = self.claims.node_id
        out: list[OutboundMessage] = []
        for mid in sorted(self.messages):
            msg = self.messages[mid]
            if carriers is not None and (msg.carrier or msg.new.carrier) not in carriers:
                continue
            pending = [p for p in msg.parts if p.status in ledger.PENDING]
            held = msg.claimed_by
            if not pending or held == me or not self._claim(msg, now):
                continue
            for part in pending:  # another node's in flight: queued again, flagged
                if part.take(ledger.requeue_in_flight(part.state)):
                    part.possible_duplicate = True
            m = self._outbound(msg, pending)
            m.taken_from = held
            out.append(m)
            if len(out) >= limit:
                break
        return out

    async def release_messages(self, ids: Sequence[str]) -> int:
        self._log("release_messages", len(ids))
        released = 0
        for mid in ids:
            msg = self.messages.get(mid)
            if msg is not None and msg.status in _PENDING and msg.claimed_by == self.claims.node_id:
                msg.claimed_by = msg.claim_until = None
                released += 1
        self._touch()
        return released

    def _outbound(self, msg: FakeMessage, pending: list[FakePart]) -> OutboundMessage:
        """What load_pending gives of ``msg`` with its parts still to send."""
        new = msg.new
        scheduled = new.scheduled_at
        retry = max((p.retry_at or 0.0 for p in pending), default=0.0)
        if retry and (scheduled is None or retry > scheduled):
            scheduled = retry
        return OutboundMessage(
            id=new.id,
            to=new.to,
            sender=new.sender,
            text=new.text,
            encoding=new.encoding,
            carrier=msg.carrier or new.carrier,
            priority=new.priority,
            created_at=new.created_at,
            validity_until=new.validity_until,
            scheduled_at=scheduled,
            attempts=max(p.attempts for p in pending),
            registered_delivery=new.registered_delivery,
            pending_parts=tuple(p.number for p in pending),
            possible_duplicate=any(p.in_flight or p.possible_duplicate for p in pending),
        )

    async def begin_attempts(self, parts: Sequence[tuple[str, int]]) -> set[str]:
        self._log("begin_attempts", len(parts))
        if self.begin_delay:
            await asyncio.sleep(self.begin_delay)
        if self.fail_begin:
            self.fail_begin -= 1
            raise StoreError("begin_attempts failed (test)")
        return await self._begin(parts)

    async def _begin(self, parts: Sequence[tuple[str, int]]) -> set[str]:
        refused = {
            mid
            for mid, _ in parts
            if await self.opted_out([self.messages[mid].new.to], self.messages[mid].new.sender)
        }
        for mid, number in parts:
            if mid in refused:
                continue
            part = self.messages[mid].parts[number - 1]
            if part.status not in ledger.FINAL:  # as the SQLite store's UPDATE
                part.attempts += 1
            part.take(ledger.begin_attempt(part.state))
        self._touch()
        return refused

    async def record_outcomes_and_begin(
        self, outcomes: Sequence[SubmitOutcome], parts: Sequence[tuple[str, int]]
    ) -> tuple[list[StatusChange], set[str] | None]:
        """One call, as the SQLite store's one transaction: logged as its record_outcomes
        and its begin_attempts at the same moment; ``joint_begins`` has its part count."""
        self._log("record_outcomes", len(outcomes))
        if self.outcome_delay:
            await asyncio.sleep(self.outcome_delay)
        if self.fail_outcomes:
            self.fail_outcomes -= 1
            raise StoreError("record_outcomes failed (test)")
        changes = self._record_outcomes(outcomes)
        if not parts:
            return changes, set()
        self._log("begin_attempts", len(parts))
        self.joint_begins.append(len(parts))
        return changes, await self._begin(parts)

    async def record_outcomes(self, outcomes: Sequence[SubmitOutcome]) -> list[StatusChange]:
        self._log("record_outcomes", len(outcomes))
        if self.outcome_delay:
            await asyncio.sleep(self.outcome_delay)
        if self.fail_outcomes:
            self.fail_outcomes -= 1
            raise StoreError("record_outcomes failed (test)")
        return self._record_outcomes(outcomes)

    def _record_outcomes(self, outcomes: Sequence[SubmitOutcome]) -> list[StatusChange]:
        touched: dict[str, str] = {}
        for o in outcomes:
            msg = self.messages[o.message_id]
            touched.setdefault(o.message_id, msg.status)
            part = msg.parts[o.part - 1]
            part.possible_duplicate = part.possible_duplicate or o.possible_duplicate
            msg.history.append(
                HistoryEntry(
                    o.at,
                    o.status.value,
                    o.part,
                    {"carrier": o.carrier, "command_status": o.command_status, "error": o.error},
                )
            )
            if part.status in ledger.FINAL:
                continue  # a final state sticks (as the SQLite store: the row is left alone)
            part.take(ledger.apply_outcome(part.state, o.status, o.error))
            part.carrier = o.carrier
            if o.status is not MessageStatus.SUBMITTED:
                part.retry_at = o.retry_at
                continue
            part.retry_at = None
            part.carrier_message_id = o.carrier_message_id
            part.receipt_key = o.receipt_key
            part.submitted_at = o.at
            if o.receipt_key:
                self.receipt_map[(o.carrier, o.receipt_key)] = (o.message_id, o.part)
                # Receipts that came before this response (early receipts), in the order
                # they came: under the exact key first, then under the other readings of
                # an ``auto`` carrier's id.
                for k in (o.receipt_key, *o.alt_keys):
                    for held in self.unmatched.pop((o.carrier, k), []):
                        self._apply_receipt(msg, part, held)
        changes = self._changes(touched, max((o.at for o in outcomes), default=0.0))
        self._touch()
        return changes

    # -- receipts ---------------------------------------------------------------------------

    async def record_receipts(self, receipts: Sequence[IncomingReceipt]) -> list[StatusChange]:
        self._log("record_receipts", len(receipts))
        if self.receipt_delay:
            await asyncio.sleep(self.receipt_delay)
        if self.fail_receipts:
            self.fail_receipts -= 1
            raise StoreError("record_receipts failed (test)")
        touched: dict[str, str] = {}
        for r in receipts:
            self.receipts.append(r)
            target = None
            r.matched_key = None
            for key in r.match_keys or (r.receipt_key,):
                target = self.receipt_map.get((r.carrier, key)) if key else None
                if target is not None:
                    r.matched_key = key
                    break
            if target is None:
                self.unmatched.setdefault((r.carrier, r.receipt_key), []).append(r)
                continue
            msg = self.messages[target[0]]
            touched.setdefault(target[0], msg.status)
            self._apply_receipt(msg, msg.parts[target[1] - 1], r)
        changes = self._changes(touched, max((r.received_at for r in receipts), default=0.0))
        self.receipts_committed.append(asyncio.get_running_loop().time())
        self._touch()
        return changes

    @staticmethod
    def _apply_receipt(msg: FakeMessage, part: FakePart, r: IncomingReceipt) -> None:
        part.receipt_state = r.state
        part.take(ledger.apply_receipt(part.state, r.status, r.error))
        msg.history.append(HistoryEntry(r.received_at, r.status.value, part.number))

    def _changes(self, touched: dict[str, str], now: float) -> list[StatusChange]:
        """The ledger's settle of each touched message (its status before the batch), the
        status changes at ``now`` (the batch's latest event time, as the SQLite store), and
        the callbacks they make."""
        changes: list[StatusChange] = []
        for mid, before in touched.items():
            msg = self.messages[mid]
            settled = ledger.settle(before, [p.state for p in msg.parts])
            if settled is None:
                continue
            msg.status, msg.error = settled
            msg.updated_at = now
            change = StatusChange(
                message_id=mid,
                status=settled.status,
                at=now,
                client_ref=msg.new.client_ref,
                callback_url=msg.new.callback_url,
                carrier=msg.carrier,
                error=settled.error,
                campaign_id=msg.new.campaign_id,
            )
            changes.append(change)
        for change in changes:
            callback = ledger.callback_of(change)
            if callback is not None:  # signed by the message's account, as the SQLite store
                url, payload = callback
                signer = self.messages[change.message_id].new.account
                self._add_callback(url, json.dumps(payload), now, signer)
        return changes

    async def still_unmatched(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return {k for k in keys if self.unmatched.get(k)}

    async def expire_unreceipted(
        self,
        carrier: str,
        validity_before: float,
        submitted_before: float,
        at: float,
        limit: int,
    ) -> list[StatusChange]:
        self._log("expire_unreceipted", limit)
        touched: dict[str, str] = {}
        for mid, msg in self.messages.items():
            if len(touched) >= limit:
                break
            new = msg.new
            if msg.carrier != carrier or not ledger.unreceipted_due(
                msg.status,
                new.registered_delivery,
                new.validity_until,
                msg.updated_at,
                validity_before,
                submitted_before,
            ):
                continue
            touched[mid] = msg.status
            for part in msg.parts:
                if part.take(ledger.expire_unreceipted(part.state)):
                    msg.history.append(
                        HistoryEntry(at, "expired", part.number, {"error": NO_RECEIPT})
                    )
        changes = self._changes(touched, at)
        self._touch()
        return changes

    # -- callbacks --------------------------------------------------------------------------

    def _add_callback(self, url: str, payload: str, at: float, signer: str | None) -> None:
        cid = self._next_callback
        self._next_callback += 1
        self.callbacks[cid] = FakeCallback(cid, url, payload, next_at=at, signer=signer)

    async def enqueue_callbacks(
        self, callbacks: Sequence[tuple[str, str]], at: float, signer: str | None = None
    ) -> None:
        for url, payload in callbacks:
            self._add_callback(url, payload, at, signer)
        self._touch()

    async def callbacks_due(self, now: float, limit: int) -> list[Callback]:
        self._log("callbacks_due", limit)
        due = sorted(
            (
                c
                for c in self.callbacks.values()
                if not c.done
                and c.next_at <= now
                and self.claims.claimable(c.claimed_by, c.claim_until, now)
            ),
            key=lambda c: (c.next_at, c.id),
        )[:limit]
        for c in due:
            self._claim(c, now)
        return [Callback(c.id, c.url, c.payload, c.attempts, c.next_at, c.signer) for c in due]

    async def callback_done(self, callback_id: int) -> None:
        cb = self.callbacks[callback_id]
        cb.attempts += 1
        cb.done = True
        self._touch()

    async def callbacks_done(self, callback_ids: Sequence[int]) -> None:
        for callback_id in callback_ids:
            cb = self.callbacks.get(callback_id)
            if cb is not None and not cb.done:  # as the real store: gone is passed over
                cb.attempts += 1
                cb.done = True
        if callback_ids:
            self._touch()

    async def callback_retry(self, callback_id: int, next_at: float, error: str) -> None:
        cb = self.callbacks[callback_id]
        cb.attempts += 1
        cb.next_at = next_at
        cb.last_error = error
        cb.claimed_by = cb.claim_until = None
        self._touch()

    async def list_callbacks(
        self, parked: bool | None, after: int | None, limit: int
    ) -> list[CallbackView]:
        out = [
            CallbackView(c.id, c.url, c.payload, c.attempts, c.next_at, c.last_error, 0.0)
            for c in sorted(self.callbacks.values(), key=lambda c: c.id)
            if not c.done
            and c.id > (after or 0)
            and (parked is None or (c.next_at >= CALLBACK_PARKED_AT) is parked)
        ]
        return out[:limit]

    async def retry_callbacks(self, ids: Sequence[int] | None, at: float) -> list[int]:
        chosen = [
            c
            for c in self.callbacks.values()
            if not c.done and (c.next_at >= CALLBACK_PARKED_AT if ids is None else c.id in set(ids))
        ]
        for c in chosen:
            c.next_at = at
            c.attempts = 0
        self._touch()
        return sorted(c.id for c in chosen)

    # -- reads ------------------------------------------------------------------------------

    # -- cancel_sm and replace_sm (gateway.front.manage), as the SQLite store ----------------

    def _editable(self, message_id: str, account: str) -> str:
        msg = self.messages.get(message_id)
        if msg is None or msg.new.account != account:
            return EDIT_UNKNOWN
        if msg.status not in _PENDING:
            return EDIT_REFUSED
        if any(p.in_flight or p.status not in _PENDING for p in msg.parts):
            return EDIT_REFUSED
        return EDIT_DONE

    async def cancel_message(
        self, message_id: str, account: str, at: float
    ) -> tuple[str, list[StatusChange]]:
        answer = self._editable(message_id, account)
        if answer != EDIT_DONE:
            return answer, []
        msg = self.messages[message_id]
        before = msg.status
        for part in msg.parts:
            part.take(ledger.apply_outcome(part.state, MessageStatus.FAILED, CANCELLED))
            part.retry_at = None
        msg.history.append(HistoryEntry(at, MessageStatus.FAILED.value, None, {"error": CANCELLED}))
        changes = self._changes({message_id: before}, at)
        self._touch()
        return EDIT_DONE, changes

    async def replace_message(
        self, message_id: str, account: str, replacement: Replacement, at: float
    ) -> str:
        answer = self._editable(message_id, account)
        if answer != EDIT_DONE:
            return answer
        msg = self.messages[message_id]
        r = replacement
        msg.new = dataclasses.replace(
            msg.new,
            text=r.text,
            encoding=r.encoding,
            parts=r.parts,
            scheduled_at=r.scheduled_at,
            validity_until=r.validity_until,
            callback_url=r.callback_url,
        )
        if len(msg.parts) != r.parts:
            old = msg.parts
            status = (
                MessageStatus.QUEUED
                if any(p.status == MessageStatus.QUEUED for p in old)
                else MessageStatus.ACCEPTED
            )
            attempts = max((p.attempts for p in old), default=0)
            retry_at = max((p.retry_at for p in old if p.retry_at is not None), default=None)
            msg.parts = [
                FakePart(n, status, attempts, retry_at=retry_at) for n in range(1, r.parts + 1)
            ]
        msg.history.append(HistoryEntry(at, msg.status.value, None, {"replaced": "replace_sm"}))
        self._touch()
        return EDIT_DONE

    async def message_summary(self, message_id: str) -> MessageSummary | None:
        msg = self.messages.get(message_id)
        if msg is None:
            return None
        new = msg.new
        return MessageSummary(
            id=new.id,
            account=new.account,
            status=msg.status.value,
            error=msg.error,
            updated_at=max(h.at for h in msg.history),
            encoding=new.encoding,
            carrier=msg.carrier or new.carrier,
            scheduled_at=new.scheduled_at,
            validity_until=new.validity_until,
            callback_url=new.callback_url,
            created_at=new.created_at,
        )

    async def get_message(self, message_id: str) -> MessageView | None:
        msg = self.messages.get(message_id)
        if msg is None:
            return None
        parts = [
            PartView(
                p.number,
                ledger.counts_as(p.status).value,  # submitting shows as queued
                p.carrier,
                p.carrier_message_id,
                p.attempts,
                p.error,
            )
            for p in msg.parts
        ]
        return view_of(
            msg.new,
            msg.status.value,
            parts,
            list(msg.history),
            msg.carrier,
            possible_duplicate=msg.possible_duplicate,
            error=msg.error,
        )

    async def list_messages(self, query: MessageQuery) -> list[MessageRow]:
        # The SQLite store's rules: every filter, since/until on the id's time, by id.
        low = message_id_before(query.since) if query.since is not None else ""
        high = message_id_before(query.until) if query.until is not None else None
        rows: list[MessageRow] = []
        for message_id in sorted(self.messages, reverse=query.newest_first):
            msg = self.messages[message_id]
            new = msg.new
            if query.after is not None and (
                message_id >= query.after if query.newest_first else message_id <= query.after
            ):
                continue
            if (
                (query.account is not None and new.account != query.account)
                or (query.campaign_id is not None and new.campaign_id != query.campaign_id)
                or (query.to is not None and new.to != query.to)
                or (query.client_ref is not None and new.client_ref != query.client_ref)
                or (query.statuses and msg.status.value not in query.statuses)
                or message_id < low
                or (high is not None and message_id >= high)
            ):
                continue
            rows.append(
                MessageRow(
                    id=message_id,
                    status=msg.status.value,
                    to=new.to,
                    sender=new.sender,
                    encoding=new.encoding,
                    parts=new.parts,
                    carrier=msg.carrier,
                    client_ref=new.client_ref,
                    campaign_id=new.campaign_id,
                    possible_duplicate=msg.possible_duplicate,
                    error=msg.error,
                    created_at=new.created_at,
                    updated_at=max(h.at for h in msg.history),
                    account=new.account,
                    text=new.text,
                )
            )
            if len(rows) == query.limit:
                break
        return rows

    async def minute_counts(self, since: float) -> list[tuple[int, str, int]]:
        # The SQLite store's rule: messages whose id was made at or after since.
        low = message_id_before(since)
        counts: dict[tuple[int, str], int] = {}
        for message_id, msg in self.messages.items():
            if message_id >= low:
                key = (int(msg.new.created_at // 60) * 60, msg.status.value)
                counts[key] = counts.get(key, 0) + 1
        return [(minute, status, n) for (minute, status), n in sorted(counts.items())]

    # -- test helpers -------------------------------------------------------------------------

    def status(self, message_id: str) -> MessageStatus:
        return self.messages[message_id].status

    def count(self, status: MessageStatus) -> int:
        return sum(1 for m in self.messages.values() if m.status is status)


async def wait_for_change(
    changed: asyncio.Event, predicate: Callable[[], object], within: float
) -> None:
    """Wait (at most ``within`` seconds) until ``predicate()`` holds, re-checking each time
    ``changed`` is set (a fake's change)."""

    async def wait() -> None:
        while not predicate():
            changed.clear()
            await changed.wait()

    await asyncio.wait_for(wait(), within)


def view_of(
    new: NewMessage,
    status: str,
    parts: list[PartView],
    history: list[HistoryEntry],
    carrier: str | None,
    **more: Any,
) -> MessageView:
    """A message as GET /v1/messages/{id} shows it: what its request said, where it is now
    (``more``: possible_duplicate, error)."""
    return MessageView(
        id=new.id,
        status=status,
        to=new.to,
        sender=new.sender,
        encoding=new.encoding,
        parts=parts,
        history=history,
        created_at=new.created_at,
        client_ref=new.client_ref,
        campaign_id=new.campaign_id,
        account=new.account,
        carrier=carrier,
        **more,
    )


def new_message(
    to: str = "+4915112345678",
    text: str = "hello",
    *,
    carrier: str = "alpha",
    sender: str = "ACME",
    encoding: str = "gsm7",
    parts: int = 1,
    now: float | None = None,
    **kw: Any,
) -> NewMessage:
    created = time.time() if now is None else now
    return NewMessage(
        id=kw.pop("id", None) or new_message_id(created),
        to=to,
        sender=sender,
        text=text,
        encoding=encoding,
        parts=parts,
        carrier=carrier,
        created_at=created,
        **kw,
    )


# -- the bind-slot leases -----------------------------------------------------------------


@dataclass
class LeaseTables:
    """The registry and slot rows shared by every node's FakeLeases (one database)."""

    nodes: dict[str, NodeRow] = field(default_factory=dict)
    slots: dict[tuple[str, int], SlotRow] = field(default_factory=dict)
    fail: int = 0
    """How many calls raise StoreError next (a database out of reach)."""


class FakeLeases:
    """``ClusterLeases`` in memory, by the rule of gateway.store.leases (each call is one
    atomic step: nothing awaits inside it). ``peer`` is another node on the same tables."""

    def __init__(
        self, node_id: str = "smsgw-1", tables: LeaseTables | None = None, shared: bool = True
    ) -> None:
        self.node_id = node_id
        self.tables = tables or LeaseTables()
        self.shared = shared
        """As a database several nodes share (fencing on), unless told otherwise."""
        self.rounds = 0

    def peer(self, node_id: str) -> FakeLeases:
        return FakeLeases(node_id, self.tables, self.shared)

    def _check(self) -> None:
        if self.tables.fail > 0:
            self.tables.fail -= 1
            raise StoreError("database unreachable (fake)")

    async def lease_round(
        self, node: NodeInfo, wanted: Mapping[str, int], now: float, lease_seconds: float
    ) -> LeaseRound:
        self._check()
        self.rounds += 1
        t, me, until = self.tables, self.node_id, now + lease_seconds
        t.nodes[me] = NodeRow(me, node.http, node.front, node.started_at, now, until)
        for carrier, n in wanted.items():
            for s in range(n):
                t.slots.setdefault((carrier, s), SlotRow(carrier, s, None, None, None))
        nodes = sorted(t.nodes.values(), key=lambda n: n.node_id)
        live = live_ids(me, nodes, now)
        plan = plan_round(me, wanted, live, t.slots.values(), now)
        for key in plan.renew:
            t.slots[key] = dataclasses.replace(t.slots[key], until=until)
        for key in plan.take:
            if t.slots[key].takeable(now):
                t.slots[key] = SlotRow(*key, me, now, until)
        slots = [t.slots[k] for k in sorted(t.slots)]
        return round_result(me, plan, until, live, nodes, slots, now)

    async def release_slots(self, slots: Collection[tuple[str, int]]) -> int:
        self._check()
        released = 0
        for key in slots:
            row = self.tables.slots.get(key)
            if row is not None and row.owner == self.node_id:
                self.tables.slots[key] = SlotRow(*key, None, None, None)
                released += 1
        return released

    async def leave(self, now: float) -> int:
        self._check()
        row = self.tables.nodes.get(self.node_id)
        if row is not None and row.until > now:
            self.tables.nodes[self.node_id] = dataclasses.replace(row, until=now)
        mine = [k for k, r in self.tables.slots.items() if r.owner == self.node_id]
        for key in mine:
            self.tables.slots[key] = SlotRow(*key, None, None, None)
        return len(mine)

    async def cluster_view(self, now: float) -> ClusterView:
        self._check()
        t = self.tables
        return ClusterView(
            now,
            tuple(t.nodes[k] for k in sorted(t.nodes)),
            tuple(t.slots[k] for k in sorted(t.slots)),
        )


# -- the SMSC -------------------------------------------------------------------------------

Script = Callable[[SubmitSm, int], int | None]
"""(submit_sm, 1-based count of submits so far) -> command_status, or None for no answer."""


@dataclass
class Received:
    pdu: SubmitSm
    at: float  # loop time
    conn: SmppConnection
    message_id: str | None = None
    status: int | None = None


class FakeSmsc:
    """A scriptable SMSC on 127.0.0.1, port 0."""

    def __init__(
        self,
        *,
        script: Script | None = None,
        response_delay: float = 0.0,
        id_base: str = "hex",
        id_width: int = 8,
        uppercase: bool = True,
        receipts: bool = False,
        receipt_base: str | None = None,
        receipt_before_response: bool = False,
        receipt_state: MessageState = MessageState.DELIVERED,
        receipt_tlvs: bool = True,
        first_id: int = 0xA0000,
        refuse_binds: bool = False,
    ) -> None:
        self.script = script
        self.refuse_binds = refuse_binds
        self.response_delay = response_delay
        self.id_base = id_base
        self.id_width = id_width
        self.uppercase = uppercase
        self.receipts = receipts
        self.receipt_base = receipt_base or id_base
        self.receipt_before_response = receipt_before_response
        self.receipt_state = receipt_state
        self.receipt_tlvs = receipt_tlvs
        self.server: asyncio.Server | None = None
        self.port = 0
        self.conns: list[SmppConnection] = []
        self.received: list[Received] = []
        self.outstanding: dict[SmppConnection, int] = {}
        self.max_outstanding = 0
        self.deliver_responses: list[tuple[float, int, str]] = []
        """(loop time, command_status, receipted id) of each deliver_sm_resp received."""
        self.binds = 0
        self._number = first_id
        self._timers: set[asyncio.TimerHandle] = set()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SmppConnection(
                Session(Role.SMSC, SessionConfig(window=100_000), loop.time()), self
            ),
            "127.0.0.1",
            0,
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self.server is not None:
            self.server.close()
            for conn in list(self.conns):
                conn.abort()
            await self.server.wait_closed()

    def drop_links(self) -> None:
        for conn in list(self.conns):
            conn.abort()

    async def wait_until(self, predicate: Callable[[], object], within: float = 10.0) -> None:
        await wait_for_change(self._changed, predicate, within)

    # -- SessionHandler -----------------------------------------------------------------------

    def connection_made(self, conn: SmppConnection) -> None:
        self.conns.append(conn)
        self.outstanding[conn] = 0

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        if conn in self.conns:
            self.conns.remove(conn)
        self.outstanding.pop(conn, None)
        self._changed.set()

    def events_received(self, conn: SmppConnection, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, BindRequested):
                if self.refuse_binds:
                    conn.session.reject_bind(event.pdu, Status.RBINDFAIL)
                    conn.apply(None)
                    continue
                self.binds += 1
                conn.apply(conn.session.accept_bind(event.pdu, "FAKE", conn.now()))
            elif isinstance(event, RequestReceived) and isinstance(event.pdu, SubmitSm):
                self._on_submit(conn, event.pdu)
            elif isinstance(event, RequestReceived):
                resp = event.pdu.make_response() if event.pdu.RESPONSE is not None else None
                if resp is not None:
                    conn.send_response(resp)
            elif isinstance(event, ResponseReceived):
                request = event.request
                rid = request.receipted_message_id or ""
                self.deliver_responses.append((conn.now(), event.response.command_status, rid))
        self._changed.set()

    def _format_id(self, number: int, base: str) -> str:
        if base == "decimal":
            return format(number, f"0{self.id_width}d")
        return format(number, f"0{self.id_width}{'X' if self.uppercase else 'x'}")

    def _on_submit(self, conn: SmppConnection, pdu: SubmitSm) -> None:
        rec = Received(pdu, conn.now(), conn)
        self.received.append(rec)
        status = self.script(pdu, len(self.received)) if self.script else Status.ROK
        if status is None:
            return  # a black hole: no answer, ever
        self.outstanding[conn] += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding[conn])
        rec.status = status
        number = 0
        if status == Status.ROK:
            self._number += 1
            number = self._number
            rec.message_id = self._format_id(number, self.id_base)
        resp = pdu.make_response(status, message_id=rec.message_id or "")

        def answer() -> None:
            if conn not in self.outstanding:
                return
            self.outstanding[conn] -= 1
            if self.receipts and number and self.receipt_before_response:
                self.send_receipt(conn, number)
            conn.send_response(resp)
            if self.receipts and number and not self.receipt_before_response:
                self.send_receipt(conn, number)

        if self.response_delay > 0:
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle

            def fire() -> None:
                self._timers.discard(handle)
                answer()
                self._changed.set()

            handle = loop.call_later(self.response_delay, fire)
            self._timers.add(handle)
        else:
            answer()

    def receipt_pdu(self, number: int, state: MessageState | None = None) -> DeliverSm:
        state = state or self.receipt_state
        rid = self._format_id(number, self.receipt_base)
        now = datetime.now(UTC)
        text = format_receipt_text(rid, state, now, now, text="hello")
        tlvs: tuple[tuple[int, bytes], ...] = ()
        if self.receipt_tlvs:
            tlvs = (tlv_cstr(Tag.RECEIPTED_MESSAGE_ID, rid), tlv_u8(Tag.MESSAGE_STATE, state))
        return DeliverSm(
            source_addr="4915112345678",
            destination_addr="ACME",
            esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
            short_message=text.encode("latin-1"),
            tlvs=tlvs,
        )

    def send_receipt(self, conn: SmppConnection, number: int) -> None:
        conn.send_request(self.receipt_pdu(number))

    def send(self, pdu: Pdu, conn: SmppConnection | None = None) -> None:
        """Send any request (receipt, MO) on ``conn`` or the first connection."""
        (conn or self.conns[0]).send_request(pdu)
