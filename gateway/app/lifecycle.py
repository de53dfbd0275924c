"""Operations around the daemon's life: readiness, draining on SIGTERM, reload on SIGHUP.

Readiness
    systemd gets ``READY=1`` once the HTTP port listens (``Gateway.start`` has returned) and
    every bind has settled: bound, or retrying after a failed attempt (``backoff``). A carrier
    that is down does not hold the service in "activating" forever; a bind still connecting
    or waiting for its bind_resp does, up to its ``bind_timeout``.

Draining (SIGTERM)
    :class:`gateway.http.drain.Drain` is the switch and its HTTP middleware. Once
    draining, every request that would change something (any method but GET/HEAD/OPTIONS
    under ``/v1/``) gets ``503 draining`` with ``Retry-After``, so clients and load
    balancers go elsewhere; reads still work, and ``/healthz`` answers 503
    ``{"status": "draining", ...}``. A request already past the middleware finishes
    normally: what it committed stays queued in the store.

One process per data directory
    :class:`DataDirLock` is an exclusive ``flock`` on ``<data_dir>/smsgw.lock``, taken by
    ``smsgw run`` before anything else touches the directory (pid file, database, spool).
    A second process on the same directory gets :class:`DataDirInUse` naming the holder's
    pid, and exits 1 having changed nothing. The kernel drops the lock when the holder exits,
    however it exits (SIGKILL included), so a stale lock file never blocks a start.

Reload (SIGHUP)
    :func:`reload_gateway` reads the file again. A file with errors is refused: every error
    is logged and the running configuration stays. Otherwise routes, carriers, retry rules
    and the log level change in place: binds whose settings are unchanged stay up, changed
    ones are rebuilt (the new bind starts before the old one unbinds), removed ones unbind
    (their queued messages fail over by the new routes). The carriers' text settings
    (``Gateway.carrier_texts``, shared by the HTTP API, the SMPP front, MO replies and the
    campaign runner) are updated before the routes, so a route to a new carrier works on
    every path at once. Sections read only at start
    (``[node]``, ``[http]``, ``[store]``, ``[shutdown]``, ``[digest]``, ``[callbacks]``,
    ``[front]``) are logged as needing a restart.
    Then every :data:`ReloadHook` registered on the gateway runs with the new configuration
    (keyword rules, inbound numbers ... register theirs with ``Gateway.reload_hooks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from gateway.binds import CarrierBind
from gateway.config import GatewayConfig, HttpConfig, load_config
from gateway.config.loader import ConfigError
from gateway.core.routing import Route
from gateway.logs import configure_logging, log_event

if TYPE_CHECKING:
    from gateway.app.daemon import Gateway

log = logging.getLogger("smsgw.lifecycle")

RESTART_SECTIONS: Final = (
    "node",
    "http",
    "store",
    "shutdown",
    "digest",
    "callbacks",
    "front",
    "retention",
    "compliance",
    "links",
    "cluster",
)
"""Read once at start: a reload that changes them logs that a restart is needed."""

ReloadHook = Callable[[GatewayConfig], Awaitable[None] | None]
"""Called on every accepted reload with the new configuration; may be a coroutine."""


LOCK_FILE: Final = "smsgw.lock"
"""In ``node.data_dir``; holds the pid of the process that owns the directory."""


class DataDirInUse(Exception):
    """Another process holds the data directory's lock."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "a process whose pid is not written yet"
        super().__init__(
            f"the data directory {data_dir} is in use by another smsgw ({holder});"
            f" lock file {data_dir / LOCK_FILE}"
        )
        self.pid = pid


class DataDirLock:
    """The exclusive lock on one data directory (see module doc)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our pid in it; :class:`DataDirInUse` when another
        process has it, OSError when the directory cannot be used at all."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise DataDirInUse(self.data_dir, int(holder) if holder.isdigit() else None) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Let the directory go. The file stays: removing it would let a process that
        opened it just before lock a file no longer in the directory."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


async def wait_settled(binds: Sequence[CarrierBind]) -> None:
    """Return once every bind is bound or retrying (see module doc)."""
    await asyncio.gather(*(b.settled.wait() for b in binds))


def restart_needed(old: GatewayConfig, new: GatewayConfig) -> list[str]:
    """The start-only sections that differ between ``old`` and ``new``. The tokens'
    ``signing_secrets`` are left out of ``[http]``: they apply on reload."""
    return [
        name
        for name in RESTART_SECTIONS
        if _start_only(getattr(old, name)) != _start_only(getattr(new, name))
    ]


def _start_only(section: object) -> object:
    if isinstance(section, HttpConfig):
        tokens = tuple(dataclasses.replace(t, signing_secrets=()) for t in section.tokens)
        return dataclasses.replace(section, tokens=tokens)
    return section


def read_config(path: Path) -> GatewayConfig | None:
    """The file at ``path``, or None with every error logged."""
    try:
        return load_config(path)
    except ConfigError as exc:
        log_event(
            log,
            "reload.refused",
            logging.ERROR,
            file=str(path),
            errors=len(exc.errors),
            reason="invalid configuration; the running one stays",
        )
        for error in exc.errors:
            log_event(log, "reload.config_error", logging.ERROR, file=str(path), error=str(error))
        return None
    except OSError as exc:
        log_event(log, "reload.refused", logging.ERROR, file=str(path), reason=str(exc))
        return None


async def reload_gateway(gw: Gateway, path: Path) -> bool:
    """Read ``path`` and apply it to the running gateway; False when the file was refused."""
    new = read_config(path)
    if new is None:
        return False
    gw.notifier.notify("RELOADING=1")
    try:
        await apply_config(gw, new)
    finally:
        gw.notifier.ready("reloaded")
    return True


async def apply_config(gw: Gateway, new: GatewayConfig) -> None:
    """Move the running gateway to ``new`` (already validated)."""
    from gateway.app.daemon import bind_settings

    old = gw.config
    for section in restart_needed(old, new):
        log_event(log, "reload.restart_needed", logging.WARNING, section=section)
    if old.log != new.log:
        configure_logging(new.log.level, new.log.format)

    # Binds: keep the unchanged, build the new, then let the dropped ones go.
    wanted = [s for carrier in new.carriers for s in bind_settings(carrier)]
    current = {b.settings: b for b in gw.binds}
    kept: list[CarrierBind] = []
    added: list[CarrierBind] = []
    for settings in wanted:
        bind = current.pop(settings, None)
        if bind is None:
            bind = gw.new_bind(settings)
            added.append(bind)
        kept.append(bind)
    dropped = list(current.values())

    # Carrier settings before the routes that may name a new carrier: every intake (HTTP,
    # front, MO replies, campaigns) reads these one shared settings.
    gw.carrier_texts.update(new.carriers)
    gw.router.replace(
        [Route(r.prefix, r.carriers, r.weights) for r in new.routes],
        [c.name for c in new.carriers],
    )
    gw.dispatcher.reconfigure(new, kept)
    gw.binds[:] = kept  # the same list /healthz and /metrics read
    gw.config = new
    gw.slots.adopt(added)  # each starts if its slot is leased to this node
    log_event(
        log,
        "reload.applied",
        binds_kept=len(kept) - len(added),
        binds_added=len(added),
        binds_removed=len(dropped),
        routes=len(new.routes),
        carriers=len(new.carriers),
    )
    for hook in list(gw.reload_hooks):
        try:
            result = hook(new)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("reload hook %r failed", getattr(hook, "__qualname__", hook))
    if dropped:
        # Unbind: their answers and receipts still reach the dispatcher while they drain.
        drain = new.shutdown.drain_seconds
        await asyncio.gather(*(b.stop(drain) for b in dropped), return_exceptions=True)
