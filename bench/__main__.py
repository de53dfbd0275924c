"""smsgw benchmarks: ``make bench`` / ``python -m bench``.

    .venv/bin/python -m bench                          # every scenario, full size (< 10 min)
    .venv/bin/python -m bench --quick                  # smaller and shorter (about 2 min)
    .venv/bin/python -m bench --scenario e2e_mt --messages 200000 --profile
    .venv/bin/python -m bench --scenario throttle --json /tmp/throttle.json
    .venv/bin/python -m bench.carrier --messages 20000      # carrier settings, full size

Starts the simulator and the gateway as separate processes on 127.0.0.1 (ports picked by the
kernel, configuration and data in a temp dir), pins them with ``taskset`` when it can (the
gateway on CPU 0; the simulator, this process and its helpers on CPU 1), drives them, prints
a table with the issue's targets beside the figures, writes every figure and detail as JSON
(default ``bench/results/<timestamp>.json``) and stops every process it started, on errors
and Ctrl-C too. Each scenario module's docstring says what it measures and how.

The machine may be shared: the JSON and the table say how much CPU other processes used
during each scenario, and CPU-time figures (CPU seconds per 1,000 messages) stand beside the
wall-clock ones because they suffer less from a neighbour.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench import campaign, carrier, e2e, inbound, simulator_alone, throttle
from bench.context import Context, Options
from bench.lab import Client
from bench.procs import (
    GATEWAY_CPU,
    ROOT,
    SIMULATOR_CPU,
    ProcessSet,
    alive,
    machine_busy,
    pin_self,
    pinning,
    restore_affinity,
)
from bench.report import Figure, ScenarioResult, table, write_json

Runner = Callable[[Context], Awaitable[ScenarioResult]]

SCENARIOS: dict[str, Runner | None] = {
    "e2e_mt": e2e.run,
    "throttle": throttle.run,
    "campaign_fanout": campaign.run,
    "inbound_mo": inbound.run,
    "simulator_alone": simulator_alone.run,
    "carrier": carrier.run,
}
"""In the issue's order. None: not implemented yet."""

PENDING: dict[str, list[tuple[str, str]]] = {}
"""Figures of a scenario listed with None above: (label, target)."""
PENDING_WHY: dict[str, str] = {}
"""Scenarios whose feature is being built on another branch: the table says so, and no
figure is made up for them."""

QUICK = Options(
    messages=20_000,
    latency_seconds=3.0,
    throttle_seconds=5.0,
    e2e_timeout=120.0,
    campaign_contacts=100_000,
    campaign_sends=10_000,
    mo_rate=2_000.0,
    mo_seconds=2.0,
    carrier_messages=1_000,
)


def _own_cpu() -> float:
    """CPU-seconds of this process and of every child it has reaped."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _pending(name: str) -> ScenarioResult:
    result = ScenarioResult(name)
    why = PENDING_WHY[name]
    print(f"== {name}: {why}; no figure is made up", flush=True)
    result.add(*(Figure(label, why, "", target) for label, target in PENDING[name]))
    return result


async def _run_scenario(ctx: Context, name: str, runner: Runner) -> ScenarioResult:
    busy, own, started = machine_busy(), _own_cpu(), time.monotonic()
    print(f"== {name} ...", flush=True)
    first_proc = len(ctx.procs.procs)
    try:
        result = await runner(ctx)
    except Exception as exc:
        result = ScenarioResult(name, error=f"{type(exc).__name__}: {exc}")
        result.details["traceback"] = traceback.format_exc()
        for proc in ctx.procs.procs[first_proc:]:
            result.details[f"log_tail_{proc.name}"] = proc.log_tail(30)
    finally:
        ctx.procs.stop_all()
    result.seconds = time.monotonic() - started
    others = max(0.0, (machine_busy() - busy) - (_own_cpu() - own))
    result.details["other_processes_cpu_seconds"] = others
    result.details["other_processes_cores"] = others / result.seconds if result.seconds else 0
    print(
        f"   {name} took {result.seconds:.1f} s; other processes on the machine used "
        f"{others:.1f} CPU-s meanwhile ({others / result.seconds:.2f} cores on average)",
        flush=True,
    )
    if result.error:
        print(f"   error: {result.error}", flush=True)
    return result


async def run_all(
    options: Options, tmp: Path, procs: ProcessSet, json_path: Path, names: Sequence[str]
) -> list[ScenarioResult]:
    ctx = Context(options, tmp, procs, Client(), json_path.parent, json_path.stem)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    results: list[ScenarioResult] = []
    try:
        for name in SCENARIOS:
            if name not in names:
                continue
            runner = SCENARIOS[name]
            if runner is None:
                results.append(_pending(name))
                continue
            results.append(await _run_scenario(ctx, name, runner))
    finally:
        await ctx.client.close()
        loop.remove_signal_handler(signal.SIGTERM)
    return results


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="smsgw benchmarks (issue 6)"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        help="run only this scenario (repeatable); default: all",
    )
    parser.add_argument("--messages", type=int, help="e2e_mt and simulator_alone (100,000)")
    parser.add_argument("--quick", action="store_true", help="fewer messages, shorter runs")
    parser.add_argument("--json", type=Path, help="result file (bench/results/<timestamp>.json)")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the gateway: e2e_mt, inbound_mo"
    )
    parser.add_argument(
        "--profile-native", action="store_true", help="--profile with C frames (slows the gateway)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--synchronous", choices=("full", "normal"), help="store fsync policy")
    parser.add_argument("--binds", type=int, help="e2e_mt binds (4)")
    parser.add_argument("--batch", type=int, help="e2e_mt messages per request (5,000)")
    parser.add_argument("--concurrency", type=int, help="e2e_mt requests in flight (4)")
    parser.add_argument("--e2e-timeout", type=float, help="seconds before e2e_mt gives up")
    parser.add_argument("--latency-seconds", type=float, help="paced run length (10; 0 skips)")
    parser.add_argument("--latency-rate", type=float, help="paced run msg/s (half sustained)")
    parser.add_argument("--throttle-seconds", type=float, help="throttle measurement (20)")
    parser.add_argument("--throttle-tps", type=float, help="throttle TPS (500)")
    parser.add_argument("--contacts", type=int, help="campaign_fanout CSV rows (1,000,000)")
    parser.add_argument("--campaign-sends", type=int, help="campaign_fanout sends timed (50,000)")
    parser.add_argument("--mo-rate", type=float, help="inbound_mo MOs offered per second (6,000)")
    parser.add_argument("--mo-seconds", type=float, help="inbound_mo seconds of offered MOs (3)")
    parser.add_argument(
        "--carrier-messages", type=int, help="carrier: messages per setting (2,000)"
    )
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    options = QUICK if args.quick else Options()
    overrides: dict[str, Any] = {
        "messages": args.messages,
        "synchronous": args.synchronous,
        "binds": args.binds,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "e2e_timeout": args.e2e_timeout,
        "latency_seconds": args.latency_seconds,
        "latency_rate": args.latency_rate,
        "throttle_seconds": args.throttle_seconds,
        "throttle_tps": args.throttle_tps,
        "campaign_contacts": args.contacts,
        "campaign_sends": args.campaign_sends,
        "mo_rate": args.mo_rate,
        "mo_seconds": args.mo_seconds,
        "carrier_messages": args.carrier_messages,
        "profile": args.profile or None,
        "profile_native": args.profile_native or None,
    }
    return replace(options, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = options_from(args)
    names = args.scenario or list(SCENARIOS)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path: Path = args.json or ROOT / "bench" / "results" / f"{stamp}.json"
    pin = pinning() and not args.no_pin
    started = time.monotonic()
    load_before = os.getloadavg()
    if pin:
        where = (
            f"pinned with taskset: gateway on CPU {GATEWAY_CPU}; simulator, latency tap, "
            f"py-spy and this driver on CPU {SIMULATOR_CPU} (simulator_alone: its driver on "
            f"CPU {GATEWAY_CPU})"
        )
    else:
        where = "not pinned (no taskset, fewer than 2 CPUs, or --no-pin)"
    print(f"smsgw bench: {', '.join(names)}; {where}")
    print(
        f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} "
        f"on {os.cpu_count()} CPUs; other processes share this machine, so wall-clock figures "
        "are lower bounds; CPU-time figures are steadier",
        flush=True,
    )
    previous = pin_self(SIMULATOR_CPU) if pin else None
    results: list[ScenarioResult] = []
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as tmp:
        procs = ProcessSet(Path(tmp), pin)
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                results = runner.run(run_all(options, Path(tmp), procs, json_path, names))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("\ninterrupted: stopping every process started", file=sys.stderr)
            return 130
        finally:
            procs.stop_all()
            restore_affinity(previous)
            leftovers = [p.name for p in procs.procs if alive(p.pid)]
            if leftovers:
                print(f"warning: still running after stop: {leftovers}", file=sys.stderr)
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()
    print()
    print(table(results))
    for result in results:
        text = result.details.get("profile_text")
        if text:
            print(
                f"\npy-spy profile of the gateway during {result.name} "
                f"({result.details.get('profile_file')}):\n{text}"
            )
    meta = {
        "timestamp": stamp,
        "seconds": elapsed,
        "scenarios": names,
        "options": asdict(options),
        "pinned": pin,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processes": procs.records(),
    }
    write_json(json_path, meta, results)
    print(
        f"\n{elapsed:.0f} s in all; load average after: {load_after[0]:.2f}; results in {json_path}"
    )
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
