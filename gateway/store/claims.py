"""Claims: which node owns a piece of stored work, until when.

Work that outlives a request (a pending message's parts, a callback or a front outbox item
being delivered, a running campaign or import, an MO being handled) is a row with two
columns: ``claimed_by``, the id of the node working on it (``[node] id``), and
``claim_until``, when that claim lapses unless renewed. A node

- *claims* rows when it takes work up: rows nobody holds, rows whose claim has lapsed, and
  rows it holds itself (its own previous life's, after a restart: a node id names one
  process at a time) become its own until ``now + claim_seconds``;
- *renews* all its claims every third of ``claim_seconds`` while it lives
  (``gateway.lease.LeaseKeeper``);
- *releases* a row when the work on it is over for now (a callback to retry later, an
  item given back) and every claim at a clean stop.

A row claimed by another node whose claim has not lapsed is left alone: neither given out
by the store's claiming reads nor taken back at start-up. So two nodes never work on one
row at the same time, and a node that dies has its work taken over by another once its
claims lapse. Within one node, each kind of work has one consumer (the callback sender,
the front's outbox of an account, the dispatcher, ...), which keeps track of what it has
in hand: a claiming read gives it back its own claimed rows too, as the plain read did
before claims.

On one SQLite file there is one node, and behaviour is what it was before claims; the
columns and calls are the ones a database shared by several nodes needs.

Work left for others. A node takes up, while it runs, rows nobody holds and rows whose claim
lapsed (a dead node's): each kind at its own polling rhythm (gateway.takeover), and at once
when the store says a commit left such work (``Wakeups``: PostgreSQL ``NOTIFY`` on the
channel of its kind, :data:`WAKE_CHANNELS`; the payload is at most the carrier or account
the work is for, never the work itself). A message accepted on a node with no bind of its
carrier is committed unclaimed for the node that has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_NODE_ID: Final = "smsgw-1"
"""``[node] id``'s default (gateway.config)."""

DEFAULT_CLAIM_SECONDS: Final = 30.0
"""``[node] claim_seconds``'s default (gateway.config): renewed every 10 s, a claim outlives
two renewals that fail (a busy disk, a database failing over), and a dead node's work is
taken over within half a minute."""

DEFAULT_TAKEOVER_SECONDS: Final = 5.0
"""``[node] takeover_seconds``'s default: how long work another node left (a lost wake, a
dead node's lapsed claims) waits at most for a look. One small indexed query per kind and
interval: nothing next to the traffic; and a dead node's claims lapse in ``claim_seconds``
(30 s) anyway."""

RENEWALS_PER_CLAIM: Final = 3
"""A node renews its claims every ``claim_seconds / RENEWALS_PER_CLAIM``: a claim outlives
two renewals that fail in a row."""

CLAIMABLE: Final = "(claimed_by IS NULL OR claimed_by = ? OR claim_until <= ?)"
"""SQL condition on a row with claim columns: this node may claim it (parameters: the node
id, now)."""

CLAIMED_ELSEWHERE: Final = "(claimed_by IS NOT NULL AND claimed_by <> ? AND claim_until > ?)"
"""SQL condition: another node holds the row now (parameters: the node id, now)."""


WAKE_QUEUE: Final = "queue"
"""Messages with parts to submit that nobody holds (key: their carrier; "": any)."""

WAKE_CALLBACKS: Final = "callbacks"
"""New HTTP callbacks in the outbox (key: "")."""

WAKE_FRONT: Final = "front"
"""New deliver_sm owed to an upstream SMPP account (key: the account; "": any)."""

WAKE_KINDS: Final = (WAKE_QUEUE, WAKE_CALLBACKS, WAKE_FRONT)

WAKE_CHANNELS: Final = {kind: f"smsgw_{kind}" for kind in WAKE_KINDS}
"""The PostgreSQL ``LISTEN``/``NOTIFY`` channel of each kind."""


@dataclass(frozen=True, slots=True)
class ClaimSettings:
    """Who claims (``[node] id``) and for how long (``[node] claim_seconds``)."""

    node_id: str = DEFAULT_NODE_ID
    seconds: float = DEFAULT_CLAIM_SECONDS

    def until(self, now: float) -> float:
        """When a claim made or renewed at ``now`` lapses."""
        return now + self.seconds

    def claimable(self, claimed_by: str | None, claim_until: float | None, now: float) -> bool:
        """``CLAIMABLE`` in Python (the fakes' rule, and a row read back)."""
        return (
            claimed_by is None
            or claimed_by == self.node_id
            or (claim_until is not None and claim_until <= now)
        )

    @property
    def renew_every(self) -> float:
        return self.seconds / RENEWALS_PER_CLAIM
