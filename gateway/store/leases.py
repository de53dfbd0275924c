"""Bind-slot leases and the node registry: the rule every backend applies (pure code).

Several nodes share one database; a carrier's ``binds = N`` is the account's total across
them (carriers cap the simultaneous binds of a system_id). Slot ``k`` (0..N-1) of a carrier
is a row owned by at most one node until ``until``; a node binds a slot only while the row
is its own (gateway.cluster). Each node also has a row in the registry (``nodes``): its
addresses, when it started, its last heartbeat and until when it counts as live.

A *lease round* (``ClusterLeases.lease_round``), made by each node every third of
``[cluster] lease_seconds``, does in one transaction:

1. heartbeat: the node's row, live until ``now + lease_seconds``;
2. the live nodes: those whose row has not lapsed (this node included);
3. the node's *share* of each carrier (:func:`share`): ``N // live``, plus one for
   ``N % live`` of the live nodes, chosen by rank (nodes sorted by id) from an offset that
   depends on the carrier's name, so the odd slots of several carriers do not all land on
   the same node. The shares of the live nodes add up to N exactly, so the spread is even
   (two nodes' counts differ by at most one);
4. renew: every slot the node holds is extended to ``now + lease_seconds``;
5. surplus: slots held above the share (the highest numbers first) are reported, still
   renewed: the node unbinds them and then gives them back (``release_slots``), so a slot
   is never bound on two nodes at once;
6. take: while under its share, the node takes slots nobody holds or whose lease lapsed
   (the lowest numbers first).

Why it converges: every node computes the same shares from the same live set, and each only
ever moves towards its own share (gives back above it, takes below it); free slots exist
exactly while some node is under its share. A node that dies stops renewing: its heartbeat
and its slots lapse together, the others' shares grow and they take its slots in their next
round (a node wakes at the next lapse it is waiting for, not only every third of the lease).
Until live sets agree (a heartbeat lapsing between two nodes' rounds) a slot may stay free
or a node over its share for one round; exclusivity never depends on it: a slot is taken
only when free or lapsed, under a row lock.

On SQLite there is one node: its share of every carrier is N, so it leases every slot and
the gateway behaves as before leases.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

NODE_RETENTION_SECONDS = 86_400.0
"""A node whose heartbeat lapsed longer ago than this leaves the registry (a node renamed
or retired is shown as not live for a day, then forgotten)."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a node says of itself at each heartbeat."""

    node_id: str
    http: str = ""
    """Its HTTP API, ``host:port`` ("" until known)."""
    front: str = ""
    """Its SMPP front, ``host:port`` ("" when it has none)."""
    started_at: float = 0.0
    """Wall-clock time this process started."""


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A node in the registry."""

    node_id: str
    http: str
    front: str
    started_at: float
    heartbeat_at: float
    until: float
    """Live while ``now < until``."""

    def live(self, now: float) -> bool:
        return now < self.until


@dataclass(frozen=True, slots=True)
class SlotRow:
    """One bind slot's lease."""

    carrier: str
    slot: int
    owner: str | None
    since: float | None
    """When ``owner`` took it."""
    until: float | None
    """Its lease lapses then unless renewed."""

    def held_by(self, node_id: str, now: float) -> bool:
        return self.owner == node_id and self.until is not None and now < self.until

    def takeable(self, now: float) -> bool:
        """Nobody holds it, or its lease lapsed (whoever held it)."""
        return self.owner is None or self.until is None or self.until <= now


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The registry and the slots as one round left them (``/healthz``, ``smsgw status``)."""

    at: float
    nodes: tuple[NodeRow, ...] = ()
    slots: tuple[SlotRow, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseRound:
    """What a round left this node with."""

    owned: frozenset[tuple[str, int]]
    """(carrier, slot) this node holds now, surplus included, each until ``until``."""
    surplus: frozenset[tuple[str, int]]
    """Held above the share: to unbind, then give back (``release_slots``)."""
    until: float
    """The leases held (and the heartbeat) lapse then unless renewed."""
    live: tuple[str, ...]
    """The live nodes' ids, sorted (this node included)."""
    next_change: float | None
    """The earliest moment after ``now`` at which another node's heartbeat or slot lapses
    (a round then may take a slot), None when there is none."""
    view: ClusterView = field(default_factory=lambda: ClusterView(0.0))


def share(carrier: str, slots: int, live: Sequence[str], node_id: str) -> int:
    """How many of ``carrier``'s ``slots`` node ``node_id`` should hold when ``live`` (sorted
    ids, ``node_id`` among them) are the live nodes (see the module doc)."""
    count = len(live)
    if count == 0 or node_id not in live:
        return 0
    base, extra = divmod(slots, count)
    offset = zlib.crc32(carrier.encode()) % count
    rank = (live.index(node_id) - offset) % count
    return base + (1 if rank < extra else 0)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a round writes (from :func:`plan_round`)."""

    renew: tuple[tuple[str, int], ...]
    take: tuple[tuple[str, int], ...]
    surplus: tuple[tuple[str, int], ...]


def plan_round(
    node_id: str,
    wanted: Mapping[str, int],
    live: Sequence[str],
    rows: Iterable[SlotRow],
    now: float,
) -> Plan:
    """The renewals, takes and surplus of one round of ``node_id`` over ``rows`` (the slot
    rows of every carrier, read under lock). ``wanted``: slots per carrier in this node's
    configuration; a slot it holds of a carrier it no longer has, or beyond its ``binds``,
    is surplus."""
    by_carrier: dict[str, list[SlotRow]] = {}
    for row in rows:
        by_carrier.setdefault(row.carrier, []).append(row)
    renew: list[tuple[str, int]] = []
    take: list[tuple[str, int]] = []
    surplus: list[tuple[str, int]] = []
    for carrier, carrier_rows in sorted(by_carrier.items()):
        n = wanted.get(carrier, 0)
        carrier_rows.sort(key=lambda r: r.slot)
        mine = [r.slot for r in carrier_rows if r.held_by(node_id, now)]
        in_range = [s for s in mine if s < n]
        surplus.extend((carrier, s) for s in mine if s >= n)
        quota = share(carrier, n, live, node_id)
        over = len(in_range) - quota
        if over > 0:
            surplus.extend((carrier, s) for s in in_range[-over:])
        renew.extend((carrier, s) for s in mine)
        if over < 0:
            free = [r.slot for r in carrier_rows if r.slot < n and r.takeable(now)]
            take.extend((carrier, s) for s in free[:-over])
    return Plan(tuple(renew), tuple(take), tuple(surplus))


def next_change(
    node_id: str, nodes: Iterable[NodeRow], rows: Iterable[SlotRow], now: float
) -> float | None:
    """The earliest lapse after ``now`` of another node's heartbeat or slot."""
    times = [n.until for n in nodes if n.node_id != node_id and n.until > now]
    times += [r.until for r in rows if r.owner not in (None, node_id) and r.until and r.until > now]
    return min(times) if times else None


def live_ids(node_id: str, nodes: Iterable[NodeRow], now: float) -> tuple[str, ...]:
    """The live nodes, sorted; ``node_id`` (heartbeating now) always among them."""
    return tuple(sorted({n.node_id for n in nodes if n.live(now)} | {node_id}))


def round_result(
    node_id: str,
    plan: Plan,
    until: float,
    live: tuple[str, ...],
    nodes: Sequence[NodeRow],
    slots: Sequence[SlotRow],
    now: float,
) -> LeaseRound:
    """What a round of ``node_id`` that wrote ``plan`` left it with, from the registry
    (``nodes``) and the slot rows as they are after its writes (``slots``)."""
    owned = frozenset((r.carrier, r.slot) for r in slots if r.held_by(node_id, now))
    return LeaseRound(
        owned=owned,
        surplus=frozenset(plan.surplus) & owned,
        until=until,
        live=live,
        next_change=next_change(node_id, nodes, slots, now),
        view=ClusterView(now, tuple(nodes), tuple(slots)),
    )
