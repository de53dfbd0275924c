"""The store interface: everything the gateway keeps, behind a narrow async API.

SQLite (``gateway.store.sqlite``) is the embedded default; a PostgreSQL backend will follow so
that several gateway nodes share one queue and one receipt map. Nothing above this layer
knows SQL, threads or which backend runs: callers make batch calls and await them. A call
returns only once its effects are durable, so "accepted" is said after the commit.

Batching is the caller's friend: every method takes a sequence, and the SQLite backend also
merges concurrent calls into one transaction (group commit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.model import (
    IncomingReceipt,
    MessageView,
    NewMessage,
    OutboundMessage,
    StatusChange,
    SubmitOutcome,
)


class StoreError(Exception):
    """The store could not do what was asked (I/O error, corrupt file)."""


class IdempotencyConflict(StoreError):
    """Another request with the same idempotency key committed first."""


@dataclass(slots=True)
class IdempotentAnswer:
    """The first answer to a request, replayed to retries with the same key."""

    account: str
    key: str
    request_hash: str
    status: int
    body: str  # JSON text
    created_at: float


@dataclass(slots=True)
class Callback:
    """A status callback waiting in the outbox."""

    id: int
    url: str
    payload: str  # JSON text
    attempts: int
    next_at: float


@dataclass(slots=True)
class UnmatchedReceipt:
    carrier: str
    receipt_key: str
    carrier_message_id: str
    status: str
    received_at: float


FRONT_CALLBACK_SCHEME = "smpp:"
"""A message's callback_url starting with this (``smpp:<account>?rd=<registered_delivery>``)
names an upstream SMPP account of the front (gateway.front): its final status goes to the
front outbox (``front_due``), not to the HTTP callbacks outbox. The HTTP API accepts only
http(s) callback URLs, so no HTTP client can write one."""


@dataclass(slots=True)
class FrontItem:
    """A deliver_sm (receipt or MO) owed to an upstream SMPP account, held until sent."""

    id: int
    account: str
    kind: str  # "receipt" | "mo"
    payload: str  # JSON text
    attempts: int
    created_at: float


class Store(Protocol):
    async def open(self) -> None:
        """Create or migrate the schema; ready for calls when it returns."""

    async def close(self) -> None:
        """Finish pending writes and release the backend."""

    # -- intake ----------------------------------------------------------------------------

    async def accept(
        self, messages: Sequence[NewMessage], idempotency: IdempotentAnswer | None = None
    ) -> None:
        """Commit new messages (status accepted, one part row per part, a history entry)
        and, in the same transaction, the idempotent answer. Raises IdempotencyConflict
        when the key is already stored (nothing is committed then)."""

    async def find_idempotent(self, account: str, key: str) -> IdempotentAnswer | None: ...

    async def opted_out(self, numbers: Sequence[str], sender: str) -> set[str]:
        """Which of ``numbers`` must not be messaged from ``sender`` (opted out of that
        sender, or of everything)."""

    async def add_opt_out(self, number: str, sender: str | None, source: str, at: float) -> None:
        """Record an opt-out: from ``sender`` only, or from everything when None."""

    async def remove_opt_out(self, number: str, sender: str | None) -> None: ...

    # -- dispatch --------------------------------------------------------------------------

    async def load_pending(self, after: str | None, limit: int) -> list[OutboundMessage]:
        """Messages with parts still to submit, by id after ``after``: at start-up and
        whenever the dispatcher's memory queue runs low. Parts whose attempt began but
        never got an outcome (a crash mid-send) come back with possible_duplicate set."""

    async def begin_attempts(self, parts: Sequence[tuple[str, int]]) -> None:
        """Mark (message id, part) as being submitted, before the submit_sm leaves."""

    async def record_outcomes(self, outcomes: Sequence[SubmitOutcome]) -> list[StatusChange]:
        """Store submit results; for submitted parts write the receipt map entry, and
        apply any receipt that arrived before its response. Returns the messages whose
        status changed."""

    # -- receipts --------------------------------------------------------------------------

    async def record_receipts(self, receipts: Sequence[IncomingReceipt]) -> list[StatusChange]:
        """Persist every receipt; apply those that match a part. A receipt that matches
        nothing is kept as unmatched and applied if its submit outcome comes later.
        Returns the messages whose status changed."""

    async def unmatched_receipts(self, limit: int) -> list[UnmatchedReceipt]: ...

    # -- callbacks -------------------------------------------------------------------------

    async def enqueue_callbacks(self, callbacks: Sequence[tuple[str, str]], at: float) -> None:
        """Add (url, JSON payload) callbacks to the outbox."""

    async def callbacks_due(self, now: float, limit: int) -> list[Callback]: ...

    async def callback_done(self, callback_id: int) -> None: ...

    async def callback_retry(self, callback_id: int, next_at: float, error: str) -> None: ...

    # -- SMPP front outbox (gateway.front) --------------------------------------------------

    async def front_enqueue(self, items: Sequence[tuple[str, str, str]], at: float) -> None:
        """Add (account, kind, JSON payload) items to the front outbox. Receipts of
        messages whose callback_url uses FRONT_CALLBACK_SCHEME are added by the store itself,
        in the transaction that records the final status."""

    async def front_due(self, account: str, now: float, limit: int) -> list[FrontItem]:
        """Items of ``account`` due at ``now``, oldest first."""

    async def front_done(self, ids: Sequence[int]) -> None:
        """Delivered (deliver_sm_resp received) or given up: remove them."""

    async def front_retry(self, ids: Sequence[int], next_at: float) -> None:
        """Not delivered this time: count an attempt, due again at ``next_at``."""

    async def front_pending(self) -> dict[str, int]:
        """Items held per account."""

    # -- reads -----------------------------------------------------------------------------

    async def get_message(self, message_id: str) -> MessageView | None: ...

    async def status_counts(self) -> dict[str, int]:
        """Messages by status."""
