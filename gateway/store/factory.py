"""``open_store``: the configured backend's stores, from ``[store]``.

The daemon (and anything else that keeps data: the ops CLI goes through the daemon) calls
``open_store`` and hands each consumer the port it uses (gateway.store.ports); nothing above
``gateway/store/`` names a backend. ``[store] backend`` is the tag: ``"sqlite"`` (the
default) keeps today's keys (``path``, ``synchronous``, ``min_free_mb``,
``health_check_interval``). A new backend adds its name to ``StoreConfig.backend``, one
entry to :data:`BACKENDS`, and its parameter to ``tests/store_contract/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.config import RetentionConfig, StoreConfig
from gateway.config.loader import ConfigError
from gateway.store.claims import ClaimSettings
from gateway.store.health import StoreHealth
from gateway.store.ports import CampaignSide, ClusterLeases, GatewayStore, Links, StoreStats
from gateway.store.retention import Pruning, Retention


@dataclass(frozen=True)
class Stores:
    """One backend's stores over one database. Like ``aiosqlite.connect``, ``open_store``
    returns them before any I/O: ``await stores.store.open()`` opens the database (the
    daemon does it in its start-up order), then ``stores.campaigns.open()`` its tables."""

    store: GatewayStore
    """Every message-side port (the daemon hands each consumer the ones it uses)."""
    campaigns: CampaignSide
    links: Links
    stats: StoreStats
    """Counters for ``/metrics`` (gateway.app.observe)."""
    health: StoreHealth
    """Free space and the database's identity (``/healthz``, ``/metrics``, refusals)."""
    pruner: Callable[[RetentionConfig], Pruning]
    """The background pruner of ``[retention]`` for this database."""
    leases: ClusterLeases
    """The node registry and the bind-slot leases (gateway.cluster)."""


def _sqlite(config: StoreConfig, data_dir: Path, claims: ClaimSettings) -> Stores:
    from gateway.store.sqlite import SqliteStore
    from gateway.store.sqlite_campaigns import SqliteCampaignStore
    from gateway.store.sqlite_leases import SqliteLeases
    from gateway.store.sqlite_links import SqliteLinks

    store = SqliteStore(
        data_dir / config.path,
        config.synchronous,
        min_free_bytes=config.min_free_mb << 20,
        check_interval=config.health_check_interval,
        claims=claims,
    )

    def pruner(retention: RetentionConfig) -> Pruning:
        return Retention(store.db, retention)

    return Stores(
        store=store,
        campaigns=SqliteCampaignStore(store.db, claims),
        links=SqliteLinks(store.db),
        stats=store,
        health=store.health,
        pruner=pruner,
        leases=SqliteLeases(store.db, claims),
    )


def _postgresql(config: StoreConfig, data_dir: Path, claims: ClaimSettings) -> Stores:
    # The PostgreSQL backend keeps only some ports yet (gateway.store.postgres): a node on
    # it would start half-working, so it is refused, naming what is missing.
    refusal = unsupported(config)
    assert refusal is not None
    raise ConfigError([refusal])


def unsupported(config: StoreConfig) -> str | None:
    """Why a daemon cannot run on ``config``'s backend yet (a ``store.backend`` error
    naming the ports it lacks), or None."""
    if config.backend != "postgresql":
        return None
    from gateway.store.postgres import KEPT_PORTS, MISSING_PORTS

    if not MISSING_PORTS:
        return (
            'store.backend: "postgresql" keeps every port of the store, but the daemon does'
            ' not build its stores yet: use backend = "sqlite" until then'
            " (`smsgw migrate` already prepares a PostgreSQL database)"
        )
    return (
        'store.backend: "postgresql" keeps only some of the store yet ('
        + ", ".join(KEPT_PORTS)
        + "); still missing: "
        + ", ".join(MISSING_PORTS)
        + '. A node needs all of them: use backend = "sqlite" until then'
        " (`smsgw migrate` already prepares a PostgreSQL database)"
    )


BACKENDS: Final[dict[str, Callable[[StoreConfig, Path, ClaimSettings], Stores]]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}
"""Every backend by its ``[store] backend`` name."""


def open_store(config: StoreConfig, data_dir: Path, claims: ClaimSettings | None = None) -> Stores:
    """The stores of ``config.backend`` (paths in ``config`` are relative to ``data_dir``,
    ``[node] data_dir``), claiming work as ``claims`` says (this node's id; default: the
    one-node settings). An unknown backend is a ConfigError naming the known ones (the
    loader refuses it first; this guards a config built in code)."""
    make = BACKENDS.get(config.backend)
    if make is None:
        known = ", ".join(repr(name) for name in BACKENDS)
        raise ConfigError([f"store.backend: expected one of {known}, got {config.backend!r}"])
    return make(config, data_dir, claims or ClaimSettings())
