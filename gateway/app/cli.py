"""The ``smsgw`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.app.ops_cli import add_client_commands
from gateway.config import GatewayConfig, load_config
from gateway.config.loader import ConfigError
from gateway.logs import configure_logging

DEFAULT_CONFIG = "conf/gateway.toml"


def _load(path: str) -> GatewayConfig:
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        print(f"smsgw: invalid configuration {path}:", file=sys.stderr)
        for error in exc.errors:
            print(f"  - {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app.daemon import FORCED_EXIT, StartupError, serve
    from gateway.app.lifecycle import DataDirInUse, DataDirLock

    config = _load(args.config)
    configure_logging(
        getattr(args, "log_level", None) or config.log.level,
        getattr(args, "log_format", None) or config.log.format,
    )
    # The data directory is ours before anything in it is touched: a second `smsgw run`
    # on it stops here, leaving the running daemon's pid file, database and imports alone.
    lock = DataDirLock(config.node.data_path)
    try:
        lock.acquire()
    except DataDirInUse as exc:
        print(f"smsgw: cannot start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"smsgw: cannot start: cannot lock {lock.path}: {exc.strerror}", file=sys.stderr)
        return 1
    pid_file = pid_path(config)
    try:
        with asyncio.Runner(loop_factory=_new_event_loop) as runner:
            try:
                if pid_file is not None:
                    pid_file.parent.mkdir(parents=True, exist_ok=True)
                    pid_file.write_text(f"{os.getpid()}\n")
                code = runner.run(serve(config, Path(args.config)))
            except (OSError, StartupError) as exc:
                print(f"smsgw: cannot start: {exc}", file=sys.stderr)
                code = 1
            except ConfigError as exc:  # a backend that cannot run a node yet
                for error in exc.errors:
                    print(f"smsgw: cannot start: {error}", file=sys.stderr)
                code = 2
            finally:
                if pid_file is not None:
                    pid_file.unlink(missing_ok=True)
    finally:
        lock.release()
    if code == FORCED_EXIT:
        # Tasks cut short and store threads would be waited for by an orderly exit: the
        # operator asked for the exit now, or the start failed and a thread it began may
        # never end. Committed data is safe (WAL); the lock goes with the process.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(code)
    return code


def pid_path(config: GatewayConfig) -> Path | None:
    """``[shutdown] pid_file`` against ``node.data_dir``, or None when unset."""
    if not config.shutdown.pid_file:
        return None
    return config.node.data_path / config.shutdown.pid_file


def cmd_reload(args: argparse.Namespace) -> int:
    """SIGHUP to the daemon named by the pid file (systemd: ``systemctl reload smsgw``)."""
    config = _load(args.config)
    path = pid_path(config)
    if path is None:
        print(
            "smsgw: no [shutdown] pid_file in the configuration; under systemd use"
            " `systemctl reload smsgw`",
            file=sys.stderr,
        )
        return 2
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        print(f"smsgw: cannot signal the daemon via {path}: {exc}", file=sys.stderr)
        return 1
    print(f"smsgw: reload requested (pid {pid}); the outcome is in the daemon's log")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.store.factory import unsupported

    config = _load(args.config)
    refusal = unsupported(config.store)
    if refusal is not None:
        print(f"smsgw: {args.config}: the daemon would not start:\n  - {refusal}", file=sys.stderr)
        return 2
    carriers = ", ".join(f"{c.name} ({c.binds} x {c.bind_type})" for c in config.carriers)
    print(f"{args.config}: ok; carriers: {carriers}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the configured database's schema up to date (PostgreSQL; SQLite migrates
    itself at open and needs nothing)."""
    config = _load(args.config)
    configure_logging(config.log.level, config.log.format)
    if config.store.backend != "postgresql":
        print(f"smsgw: {config.store.backend} migrates its schema itself at start; nothing to do")
        return 0
    from gateway.store.base import StoreError
    from gateway.store.postgres.connect import connect, server_of
    from gateway.store.postgres.migrations import migrate, schema_version

    async def run() -> tuple[list[int], int]:
        conn = await connect(config.store, config.node.data_path, f"smsgw-migrate:{config.node.id}")
        try:
            applied = await migrate(conn)
            return applied, await schema_version(conn)
        finally:
            await conn.close()

    try:
        applied, version = asyncio.run(run())
    except StoreError as exc:
        print(f"smsgw: migrate: {exc}", file=sys.stderr)
        return 1
    where = server_of(config.store.dsn)
    if applied:
        done = ", ".join(str(v) for v in applied)
        print(f"smsgw: {where}: applied migration(s) {done}; schema version {version}")
    else:
        print(f"smsgw: {where}: up to date (schema version {version})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smsgw", description="SMPP SMS gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("run", cmd_run, "run the gateway daemon"),
        ("check-config", cmd_check_config, "validate a configuration file and exit"),
        ("reload", cmd_reload, "make the running daemon reload its configuration (SIGHUP)"),
        ("migrate", cmd_migrate, "bring the database's schema up to date (PostgreSQL)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="configuration file")
        p.set_defaults(func=func)
        if name == "run":
            p.add_argument("--log-format", choices=("text", "json"), help="overrides [log] format")
            p.add_argument(
                "--log-level", choices=("debug", "info", "warning", "error"), help="overrides [log]"
            )
    add_client_commands(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
