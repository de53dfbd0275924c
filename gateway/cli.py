"""The ``smsgw`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.config import GatewayConfig, load_config
from gateway.confload import ConfigError
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
    from gateway.daemon import serve

    config = _load(args.config)
    configure_logging(config.log.level, config.log.format)
    with asyncio.Runner(loop_factory=_new_event_loop) as runner:
        try:
            return runner.run(serve(config))
        except OSError as exc:
            print(f"smsgw: cannot start: {exc}", file=sys.stderr)
            return 1


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    carriers = ", ".join(f"{c.name} ({c.binds} x {c.bind_type})" for c in config.carriers)
    print(f"{args.config}: ok; carriers: {carriers}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smsgw", description="SMPP SMS gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("run", cmd_run, "run the gateway daemon"),
        ("check-config", cmd_check_config, "validate a configuration file and exit"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="configuration file")
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
