"""``[store]`` and ``[retention]``: where records are kept, and for how long."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from gateway.config.loader import check, in_range, non_empty


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """``[store]``: where messages and receipts are kept."""

    backend: Literal["sqlite", "postgresql"] = "sqlite"
    """``sqlite`` (one node, one file: the default) or ``postgresql`` (gateway.store.postgres:
    ``dsn``, ``password_file``, ``pool_size``, ``statement_timeout``)."""
    path: str = field(default="smsgw.db", metadata=check(non_empty))
    """SQLite: database file, relative to ``node.data_dir``."""
    synchronous: Literal["full", "normal"] = "full"
    """SQLite's fsync policy in WAL mode. ``full`` syncs the WAL on every (group) commit, so
    an accepted message survives a power cut; ``normal`` survives a crash of the process but
    may lose the last commits on power loss, for more throughput on slow disks."""
    min_free_mb: int = field(default=256, metadata=check(in_range(0, None)))
    """Free space (MiB) on the database's file system under which the store takes no new
    work (messages, MO, imports: 503 ``store_unavailable``) and begins no new submit
    attempts, keeping what is left for the outcomes and receipts of what is in flight; it
    takes work again by itself above this plus a quarter (at least 1 MiB). 0: never. The
    WAL alone can reach ~40 MB between checkpoints: keep this well above that."""
    health_check_interval: float = field(default=1.0, metadata=check(in_range(0.05, 60)))
    """Seconds between checks of the free space and of the database file's identity (a
    file deleted or replaced under the daemon is noticed within this)."""
    dsn: str = ""
    """PostgreSQL: where the database is, as a libpq URI without the password
    (``postgresql://smsgw@db.example.net:5432/smsgw?sslmode=verify-full``). Required with
    ``backend = "postgresql"``."""
    password_file: str = ""
    """PostgreSQL: a file whose first line is the password (relative to ``node.data_dir``);
    empty: the ``PGPASSWORD`` environment variable, else none (trust, peer or a
    ``~/.pgpass``). The password is never logged nor put in an error."""
    pool_size: int = field(default=10, metadata=check(in_range(1, 1000)))
    """PostgreSQL: connections this node keeps open (each node its own pool: keep the sum
    over the nodes under the server's ``max_connections``)."""
    statement_timeout: float = field(default=30.0, metadata=check(in_range(0.1, 3600)))
    """PostgreSQL: seconds a statement may run before the server cancels it (an error the
    caller sees, not a hang)."""

    def validate(self) -> list[str]:
        """The PostgreSQL keys: a DSN for that backend only, and never one with a password
        in it (it would end up in process listings, logs and backups of the file)."""
        errors: list[str] = []
        postgres_keys = ("dsn", "password_file")
        if self.backend != "postgresql":
            errors.extend(
                f'{key}: only for backend = "postgresql"'
                for key in postgres_keys
                if getattr(self, key)
            )
            return errors
        if not self.dsn:
            errors.append('dsn: required with backend = "postgresql"')
            return errors
        problem = dsn_problem(self.dsn)
        if problem:
            errors.append(f"dsn: {problem}")
        return errors


def dsn_problem(dsn: str) -> str | None:
    """What is wrong with a ``[store] dsn`` (never quoting it: it could hold a password)."""
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        return "not a valid postgresql:// URI"
    if parts.scheme not in ("postgresql", "postgres"):
        return "must be a postgresql:// URI"
    if parts.password is not None or "password" in query:
        return "must not hold the password: use store.password_file or PGPASSWORD"
    if not parts.path.strip("/"):
        return "must name the database (postgresql://user@host:5432/DATABASE)"
    return None


MAX_RETENTION_DAYS: Final = 36_600.0
"""A hundred years: any larger value is a typo (0 keeps forever)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionConfig:
    """``[retention]`` (optional): how long finished records are kept. Each age is in days
    (fractions allowed); 0 keeps that kind forever. Deleted in small batches in the
    background (gateway.store.retention), the space given back to the file system."""

    messages_days: float = field(default=30.0, metadata=check(in_range(0, MAX_RETENTION_DAYS)))
    """Messages in a final state (delivered, undeliverable, expired, rejected, failed)
    created longer ago than this, with their parts, receipts and history; also receipts that
    never matched a message, once this old."""
    idempotency_days: float = field(default=7.0, metadata=check(in_range(0, MAX_RETENTION_DAYS)))
    """Stored answers to ``Idempotency-Key`` requests: a retry with the same key after this
    is a new request."""
    interactions_days: float = field(default=90.0, metadata=check(in_range(0, MAX_RETENTION_DAYS)))
    """Handled MOs (interactions) and their survey answers."""
    campaigns_days: float = field(default=90.0, metadata=check(in_range(0, MAX_RETENTION_DAYS)))
    """Campaigns finished (done or cancelled) this long ago, with their audience and digest
    records; and finished list imports (their row-error reports). Lists, contacts and
    opt-outs are never deleted."""
    interval: float = field(default=60.0, metadata=check(in_range(0.1, 86400)))
    """Seconds between pruning rounds."""
    batch: int = field(default=500, metadata=check(in_range(1, 100_000)))
    """Records (messages, interactions...) deleted per transaction: small, so the writes
    of the traffic never wait long behind one."""
