"""Connections to PostgreSQL from ``[store]``: the pool, and the password kept out of sight.

The password comes from ``password_file`` (its first line) or, without one, from the
``PGPASSWORD`` environment variable (read by asyncpg as by libpq); the DSN carries none
(the configuration refuses one). It is never logged and never put in an error: an error
names the server (host, port, database, user) and what went wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from gateway.config import StoreConfig
from gateway.store.base import StoreError


class PostgresUnavailable(StoreError):
    """The database could not be reached or refused us (its message names the server,
    never the password)."""


def read_password(config: StoreConfig, data_dir: Path) -> str | None:
    """``password_file``'s first line (relative to ``data_dir``), or None: then asyncpg
    takes ``PGPASSWORD`` (or ``~/.pgpass``) as libpq would."""
    if not config.password_file:
        return None
    path = data_dir / config.password_file
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PostgresUnavailable(
            f"store.password_file: cannot read {path}: {exc.strerror or exc}"
        ) from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise PostgresUnavailable(f"store.password_file: {path} is empty")
    return lines[0]


def server_of(dsn: str) -> str:
    """Where ``dsn`` points, for messages: ``user@host:port/database`` (no password)."""
    parts = urlsplit(dsn)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{user}{parts.hostname or 'localhost'}{port}{parts.path}"


def _scrub(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


def connect_kwargs(config: StoreConfig, data_dir: Path, application_name: str) -> dict[str, Any]:
    """asyncpg's arguments for ``config``: DSN, password, and each session's settings
    (``statement_timeout`` in ms; the application name shows in ``pg_stat_activity``)."""
    return {
        "dsn": config.dsn,
        "password": read_password(config, data_dir),
        "server_settings": {
            "statement_timeout": str(max(1, round(config.statement_timeout * 1000))),
            "application_name": application_name,
        },
    }


async def connect(config: StoreConfig, data_dir: Path, application_name: str) -> Any:
    """One connection (``smsgw migrate``), or PostgresUnavailable."""
    kwargs = connect_kwargs(config, data_dir, application_name)
    try:
        return await asyncpg.connect(**kwargs, timeout=30)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise PostgresUnavailable(_failure(config.dsn, exc, kwargs["password"])) from None


async def create_pool(
    config: StoreConfig,
    data_dir: Path,
    application_name: str,
    init: Callable[[Any], Awaitable[None]] | None = None,
) -> Any:
    """The node's pool of ``pool_size`` connections, or PostgresUnavailable; ``init`` runs
    on each new connection (gateway.store.postgres.watch counts what it runs)."""
    kwargs = connect_kwargs(config, data_dir, application_name)
    try:
        return await asyncpg.create_pool(
            **kwargs, min_size=1, max_size=config.pool_size, timeout=30, init=init
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise PostgresUnavailable(_failure(config.dsn, exc, kwargs["password"])) from None


def _failure(dsn: str, exc: BaseException, password: str | None) -> str:
    what = _scrub(str(exc) or type(exc).__name__, password)
    return f"cannot connect to PostgreSQL {server_of(dsn)}: {what}"
