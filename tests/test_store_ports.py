"""The store's seams: nothing above gateway/store/ names a backend, ``open_store`` builds the
configured one from ``[store]``, and /metrics reads the store's figures through StoreStats."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import gateway
from gateway.app.observe import store_metrics
from gateway.config import RetentionConfig, StoreConfig
from gateway.config.loader import ConfigError, load_dataclass
from gateway.metrics import FunctionCollector, Histogram
from gateway.store.factory import BACKENDS, open_store
from gateway.store.ports import StoreFigures
from gateway.store.sqlite import SqliteStore
from tests.fakes import new_message

GATEWAY = Path(gateway.__file__).parent


def backend_names_above_store(root: Path) -> list[str]:
    """Every place in ``root`` (a gateway package), outside its ``store/`` folder, that
    imports a backend module (``gateway.store.sqlite*``) or names a ``Sqlite...`` class."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{relative}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("gateway.store.sqlite"):
                    found.append(f"{where} imports {node.module}")
            elif isinstance(node, ast.Import):
                found += [
                    f"{where} imports {a.name}"
                    for a in node.names
                    if a.name.startswith("gateway.store.sqlite")
                ]
            elif isinstance(node, ast.Name) and node.id.startswith("Sqlite"):
                found.append(f"{where} names {node.id}")
            elif isinstance(node, ast.Attribute) and node.attr.startswith("Sqlite"):
                found.append(f"{where} names {node.attr}")
    return found


def test_nothing_above_the_store_names_a_backend() -> None:
    assert backend_names_above_store(GATEWAY) == []


def test_the_check_finds_a_backend_named_above_the_store(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "sqlite.py").write_text("class SqliteStore: ...\n")
    (tmp_path / "daemon.py").write_text(
        "from gateway.store.sqlite import SqliteStore\nstore = SqliteStore()\n"
    )
    assert backend_names_above_store(tmp_path) == [
        "daemon.py:1 imports gateway.store.sqlite",
        "daemon.py:2 names SqliteStore",
    ]


def test_every_configurable_backend_has_a_factory_and_no_more() -> None:
    hint = typing.get_type_hints(StoreConfig)["backend"]
    assert set(typing.get_args(hint)) == set(BACKENDS)


def test_an_unknown_backend_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        load_dataclass(StoreConfig, {"backend": "postgres"}, "store")
    assert caught.value.errors == [
        "store.backend: expected one of 'sqlite', 'postgresql', got 'postgres'"
    ]
    # A config built in code, past the loader: the factory says the same.
    bad = StoreConfig()
    object.__setattr__(bad, "backend", "postgres")
    with pytest.raises(ConfigError) as caught:
        open_store(bad, Path("/nonexistent"))
    assert caught.value.errors == [
        "store.backend: expected one of 'sqlite', 'postgresql', got 'postgres'"
    ]


def test_the_default_backend_is_sqlite_with_todays_keys(tmp_path: Path) -> None:
    config = load_dataclass(StoreConfig, {}, "store")
    assert (config.backend, config.path, config.synchronous) == ("sqlite", "smsgw.db", "full")
    assert (config.min_free_mb, config.health_check_interval) == (256, 1.0)
    stores = open_store(
        load_dataclass(
            StoreConfig, {"path": "sub/gw.db", "synchronous": "normal", "min_free_mb": 3}, "store"
        ),
        tmp_path,
    )
    assert isinstance(stores.store, SqliteStore)
    assert stores.store.path == tmp_path / "sub" / "gw.db"
    assert stores.store.synchronous == "NORMAL"
    assert stores.health.min_free_bytes == 3 << 20
    assert stores.pruner(RetentionConfig()).config == RetentionConfig()


async def test_the_stores_of_one_backend_share_one_database(tmp_path: Path) -> None:
    stores = open_store(StoreConfig(min_free_mb=0), tmp_path)
    await stores.store.open()
    try:
        await stores.campaigns.open()
        made = await stores.campaigns.create_list("friends", 1.0)
        m = new_message(links=(("abc123", "https://example.net/x"),))
        await stores.store.accept([m])
        link = await stores.links.find("abc123")
        assert link is not None and link.message_id == m.id
        assert [c.id for c in await stores.campaigns.contact_lists()] == [made.id]
        figures = stores.stats.figures()
        assert figures.commits >= 2 and figures.operations >= 2
    finally:
        await stores.store.close()


def test_metrics_read_the_store_through_its_stats() -> None:
    latency = Histogram()
    latency.observe(0.002)

    class Stats:
        def figures(self) -> StoreFigures:
            return StoreFigures(commits=7, operations=19, commit_seconds=latency)

    registry = CollectorRegistry()
    registry.register(FunctionCollector(lambda: store_metrics(Stats())))
    text = generate_latest(registry).decode()
    assert "smsgw_store_commits_total 7.0" in text
    assert "smsgw_store_operations_total 19.0" in text
    assert "smsgw_store_commit_seconds_count 1.0" in text
