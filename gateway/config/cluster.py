"""``[cluster]``: several nodes on one database (gateway.cluster)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from gateway.config.loader import check, in_range

DEFAULT_LEASE_SECONDS: Final = 10.0
"""A dead node's binds are bound again elsewhere within this (issue 14 asks for 10 s)."""

MIN_LEASE_SECONDS: Final = 1.0
"""Renewed every third of it: shorter would renew more often than three times a second."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """``[cluster]`` (optional): how nodes sharing one database split the carriers' binds.
    A carrier's ``binds`` is the account's total across the nodes; each bind slot is leased
    to one live node at a time (gateway.store.leases). On SQLite there is one node, which
    leases every slot."""

    lease_seconds: float = field(
        default=DEFAULT_LEASE_SECONDS, metadata=check(in_range(MIN_LEASE_SECONDS, 3600))
    )
    """Length of a node's heartbeat and bind-slot leases, renewed every third of it. A node
    that dies has its slots bound by another within it; a node that cannot renew unbinds
    at four fifths of it (fencing, gateway.cluster), before its leases can lapse."""
