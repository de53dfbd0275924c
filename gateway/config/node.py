"""``[node]``: this gateway instance."""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from gateway.config.common import _time_zone
from gateway.config.loader import all_of, check, in_range, max_length, non_empty, regex
from gateway.store.claims import (
    DEFAULT_CLAIM_SECONDS,
    DEFAULT_NODE_ID,
    DEFAULT_TAKEOVER_SECONDS,
)

MAX_NODE_ID: Final = 64
"""Characters of ``[node] id``: it is written into every claimed row."""

MIN_TAKEOVER_SECONDS: Final = 0.1
"""Looks more often than ten times a second would only load the database."""

MIN_CLAIM_SECONDS: Final = 3.0
"""Shorter leases would be renewed more often than once a second."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """``[node]``: this gateway instance."""

    id: str = field(
        default=DEFAULT_NODE_ID,
        metadata=check(
            all_of(
                non_empty,
                max_length(MAX_NODE_ID),
                regex(r"[A-Za-z0-9_.-]+", "letters, digits, _ . -"),
            )
        ),
    )
    """Names this instance in logs and stored records, and owns its claims on stored work
    (``claimed_by``, gateway.store.claims). It must stay the same across restarts (a node
    takes its own claims back at start) and differ between nodes sharing one database; the
    default suits the one node of an SQLite file."""
    claim_seconds: float = field(
        default=DEFAULT_CLAIM_SECONDS, metadata=check(in_range(MIN_CLAIM_SECONDS, 3600))
    )
    """Lease of this node's claims on stored work (pending messages, callbacks, front
    outbox items, running campaigns and imports, pending MOs): renewed every third of it
    while the node lives; another node may take a claim only once it has expired."""
    takeover_seconds: float = field(
        default=DEFAULT_TAKEOVER_SECONDS, metadata=check(in_range(MIN_TAKEOVER_SECONDS, 3600))
    )
    """How often this node looks for work other nodes left (messages nobody holds or whose
    node died, a dead node's pending MOs, campaigns and imports; gateway.takeover): the
    fallback to the store's wakes (PostgreSQL NOTIFY), and the only way on SQLite."""
    data_dir: str = field(metadata=check(non_empty))
    """Where the gateway keeps its files; relative to the configuration file's directory."""
    time_zone: str = field(default="UTC", metadata=check(_time_zone))
    """IANA time zone for local times (schedules, reports)."""
    development: bool = False
    """A development machine: the credentials published in this repository
    (:data:`KNOWN_TOKENS`, :data:`KNOWN_FRONT_PASSWORDS`) are accepted. Without it the
    configuration is refused while it holds one of them (``conf/gateway.toml`` sets it so
    that ``make run`` works; ``scripts/install-service.sh`` writes a file without it)."""

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def tzinfo(self) -> datetime.tzinfo:
        if self.time_zone == "UTC":
            return datetime.UTC
        return zoneinfo.ZoneInfo(self.time_zone)
