"""The store contract suite: every port's behaviour, on every backend that keeps that port.

A test module says which port it checks (``pytestmark = pytest.mark.port("queue")``); its
``backend`` fixture is then parametrized over every entry of :data:`BACKENDS` that keeps that
port, so a backend joins the whole suite by one entry here (a PostgreSQL backend: a
``Backend`` whose ``start`` makes a database on the server the tests run, with every port
it keeps). SQLite is the reference: where a fake answers otherwise, the fake is wrong
(unless SQLite's answer is a bug, which a test here then names).

A test gets a :class:`Harness` (fixture ``backend``): ``backend.store`` is the store, open;
``reopen()`` closes it in order and opens the same data again (a restart); ``crash()``
opens the data as a crash would leave it: what was committed, and nothing of what was not.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.config import RetentionConfig
from gateway.store.claims import DEFAULT_CLAIM_SECONDS, ClaimSettings
from gateway.store.retention import Pruning, Retention
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_campaigns import SqliteCampaignStore
from gateway.store.sqlite_leases import SqliteLeases
from gateway.store.sqlite_links import SqliteLinks
from tests.api_fakes import FakeStore as ApiFakeStore
from tests.fakes import FakeLeases, FakeStore
from tests.pg_helpers import PgServer, pg_server

__all__ = ["pg_server"]  # the tests' PostgreSQL, for the postgresql backend

PORTS = frozenset(
    {
        "intake",
        "queue",
        "receipts",
        "callbacks",
        "front",
        "inbound",
        "contacts",
        "campaigns",
        "reports",
        "edits",
        "lists",
        "leases",
        "retention",
        "links",
    }
)
"""The ports a module may name (gateway.store.ports): new messages and opt-out checks
(intake: MessageIntake, MessageReads.get_message, OptOuts), messages and their parts (queue),
receipts, the callback outbox, the SMPP front's outbox, MO and interactions, contacts and
opt-outs, campaigns, reports, short links, cancel/replace/query of a message (edits:
MessageEdits), lists of messages (lists: MessageReads.list_messages and minute_counts), the
node registry and bind-slot leases (leases: ``backend.leases(node_id)``), the
``[retention]`` pruner (retention: ``backend.pruner(config, clock)``). ``backend.campaigns``
is the campaign side's store (contact lists, campaigns) and ``backend.links`` the short
links' (gateway.store.ports.Links) on the same data, for the backends that keep them."""


class Harness:
    """One store under test, with restarts. A backend subclasses it."""

    store: Any
    campaigns: Any = None
    shared = False
    """Several nodes may share this backend's database (their commits wake each other)."""
    links: Any = None

    async def start(self) -> None:
        raise NotImplementedError

    async def reopen(self) -> None:
        """Close in order and open the same data again."""
        raise NotImplementedError

    async def crash(self) -> None:
        """Stop as a killed process would (writes not yet committed are lost) and open the
        data again."""
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def node(self, node_id: str, claim_seconds: float = DEFAULT_CLAIM_SECONDS) -> Any:
        """Another node's store over the same data, open (claims: gateway.store.claims);
        ``store`` is node ``DEFAULT_NODE_ID``. Closed with the harness."""
        raise NotImplementedError

    async def campaigns_node(
        self, node_id: str, claim_seconds: float = DEFAULT_CLAIM_SECONDS
    ) -> Any:
        """``node``'s campaign side (``campaigns`` is node ``DEFAULT_NODE_ID``'s)."""
        return await self.campaigns_of(await self.node(node_id, claim_seconds))

    async def campaigns_of(self, store: Any) -> Any:
        """The campaign side over ``store`` (a ``node``), claiming as that node, open."""
        raise NotImplementedError

    def pruner(self, config: RetentionConfig, clock: Callable[[], float]) -> Pruning:
        """The backend's ``[retention]`` pruner over ``store``'s data (not started)."""
        raise NotImplementedError

    async def leases(self, node_id: str) -> Any:
        """Node ``node_id``'s ``ClusterLeases`` over the same data (each call: a node of
        its own, as another process would be)."""
        raise NotImplementedError


class SqliteHarness(Harness):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        self.store = self._make()
        self.others: list[SqliteStore] = []

    def _path(self) -> Path:
        return self.root / f"gen{self.generation}" / "smsgw.db"

    def _make(self) -> SqliteStore:
        return SqliteStore(self._path(), synchronous="normal")

    async def _open(self) -> None:
        await self.store.open()
        self.campaigns = SqliteCampaignStore(self.store.db)
        await self.campaigns.open()
        self.links = SqliteLinks(self.store.db)

    async def node(self, node_id: str, claim_seconds: float = DEFAULT_CLAIM_SECONDS) -> Any:
        other = SqliteStore(
            self._path(), synchronous="normal", claims=ClaimSettings(node_id, claim_seconds)
        )
        await other.open()
        self.others.append(other)
        return other

    async def campaigns_of(self, store: Any) -> Any:
        campaigns = SqliteCampaignStore(store.db, store.claims)
        await campaigns.open()
        return campaigns

    async def leases(self, node_id: str) -> Any:
        other = await self.node(node_id)
        return SqliteLeases(other.db, other.claims)

    async def start(self) -> None:
        await self._open()

    def pruner(self, config: RetentionConfig, clock: Callable[[], float]) -> Pruning:
        return Retention(self.store.db, config, clock)

    async def reopen(self) -> None:
        await self.store.close()
        self.store = self._make()
        await self._open()

    async def crash(self) -> None:
        # A copy of the database and its WAL, taken while the store runs, is what a power
        # cut would leave: committed transactions, and no frame of one not committed (WAL
        # recovery drops those). The old store then closes on its own files.
        old = self._path()
        self.generation += 1
        new = self._path()
        new.parent.mkdir(parents=True)
        for suffix in ("", "-wal"):
            source = old.with_name(old.name + suffix)
            if source.exists():
                shutil.copyfile(source, new.with_name(new.name + suffix))
        with contextlib.suppress(Exception):
            await self.store.close()
        self.store = self._make()
        await self._open()

    async def stop(self) -> None:
        for other in self.others:
            await other.close()
        await self.store.close()


class FakeHarness(Harness):
    """tests.fakes.FakeStore: its memory is its disk, and every call commits at once."""

    def __init__(self, root: Path) -> None:
        self.store = FakeStore()
        self.lease_tables = FakeLeases()

    async def start(self) -> None:
        await self.store.open()

    async def reopen(self) -> None:
        await self.store.close()
        await self.store.open()

    async def crash(self) -> None:
        await self.reopen()

    async def stop(self) -> None:
        await self.store.close()

    async def node(self, node_id: str, claim_seconds: float = DEFAULT_CLAIM_SECONDS) -> Any:
        other = self.store.peer(node_id)
        other.claims = ClaimSettings(node_id, claim_seconds)
        return other

    async def leases(self, node_id: str) -> Any:
        return self.lease_tables.peer(node_id)


@dataclass(frozen=True)
class Backend:
    name: str
    ports: frozenset[str]
    make: Callable[..., Harness]
    """``make(tmp_path, **fixtures)``: the harness, given the named fixtures' values."""
    fixtures: tuple[str, ...] = ()
    """Fixtures the harness needs (PostgreSQL: the tests' server, tests/pg_helpers.py)."""


class ApiFakeHarness(Harness):
    """tests.api_fakes.FakeStore, the HTTP API tests' store: intake only."""

    def __init__(self, root: Path) -> None:
        self.store = ApiFakeStore()

    async def start(self) -> None:
        await self.store.open()

    async def reopen(self) -> None:
        await self.store.close()
        await self.store.open()

    async def crash(self) -> None:
        await self.reopen()

    async def stop(self) -> None:
        await self.store.close()


class PgHarness(Harness):
    """gateway.store.postgres on a database of its own on the tests' PostgreSQL server
    (tests/pg_helpers.py), reached as a node would be: DSN plus password file. A crash
    drops every connection at once (what a killed process leaves: the commits)."""

    shared = True

    def __init__(self, root: Path, pg_server: PgServer) -> None:
        from gateway.config import StoreConfig

        self.server = pg_server
        self.root = root
        self.database = pg_server.create_database("contract")
        pg_server.password_file(root)
        self.config = StoreConfig(
            backend="postgresql",
            dsn=pg_server.dsn(self.database),
            password_file="pg-password",
            pool_size=4,
        )
        self.store = self._make()
        self.others: list[Any] = []

    def _make(self, claims: ClaimSettings | None = None) -> Any:
        from gateway.store.postgres.links import PgLinks
        from gateway.store.postgres.store import PgStore

        store = PgStore(self.config, self.root, claims)
        if claims is None:
            self.links = PgLinks(store)
        return store

    async def _open(self) -> None:
        await self.store.open()
        self.campaigns = await self.campaigns_of(self.store)

    async def start(self) -> None:
        await self._open()

    def pruner(self, config: RetentionConfig, clock: Callable[[], float]) -> Pruning:
        from gateway.store.postgres.retention import PgRetention

        return PgRetention(lambda: self.store.pool, config, clock)

    async def reopen(self) -> None:
        await self.store.close()
        self.store = self._make()
        await self._open()

    async def crash(self) -> None:
        self.store.terminate()
        self.store = self._make()
        await self._open()

    async def node(self, node_id: str, claim_seconds: float = DEFAULT_CLAIM_SECONDS) -> Any:
        other = self._make(ClaimSettings(node_id, claim_seconds))
        await other.open()
        self.others.append(other)
        return other

    async def leases(self, node_id: str) -> Any:
        from gateway.store.postgres.leases import PgLeases

        return PgLeases(await self.node(node_id))

    async def campaigns_of(self, store: Any) -> Any:
        from gateway.store.postgres.campaigns import PgCampaignStore

        campaigns = PgCampaignStore(lambda: store.pool, store.claims)
        await campaigns.open()
        return campaigns

    async def stop(self) -> None:
        for other in self.others:
            await other.close()
        await self.store.close()
        self.server.drop_database(self.database)


BACKENDS: tuple[Backend, ...] = (
    Backend("sqlite", PORTS, SqliteHarness),
    Backend(
        "fake",
        frozenset({"intake", "queue", "receipts", "callbacks", "edits", "lists", "leases"}),
        FakeHarness,
    ),
    Backend("api_fake", frozenset({"intake"}), ApiFakeHarness),
    Backend(
        "postgresql",
        frozenset(
            {
                "intake",
                "queue",
                "receipts",
                "callbacks",
                "front",
                "edits",
                "lists",
                "leases",
                "retention",
                "contacts",
                "campaigns",
                "inbound",
                "reports",
                "links",
            }
        ),
        PgHarness,
        ("pg_server",),
    ),
)
"""Every backend the suite runs on, with the ports it keeps (a fake keeps only some)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "port(name): the store port a contract test checks")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_kind" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("port")
    if marker is None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: no pytest.mark.port(...)")
    port = marker.args[0]
    if port not in PORTS:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown port {port!r}")
    kinds = [b for b in BACKENDS if port in b.ports]
    metafunc.parametrize("backend_kind", kinds, ids=[b.name for b in kinds])


@pytest.fixture
async def backend(
    backend_kind: Backend, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Harness]:
    fixtures = {name: request.getfixturevalue(name) for name in backend_kind.fixtures}
    harness = backend_kind.make(tmp_path, **fixtures)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()
