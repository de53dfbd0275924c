"""Scenario carrier: the gateway at a carrier's settings, with a status callback per message.

    .venv/bin/python -m bench.carrier                        # every setting, 5,000 messages
    .venv/bin/python -m bench.carrier --messages 20000       # the full figure
    .venv/bin/python -m bench.carrier --window 10 --intake post --ack delayed
    .venv/bin/python -m bench.carrier --no-callbacks         # end = every message final
    .venv/bin/python -m bench.carrier --gateway before=../old/.venv/bin/smsgw \\
        --gateway after=.venv/bin/smsgw --repeat 2           # A B A B, same settings

``make bench`` runs it too (``python -m bench --scenario carrier``, 2,000 messages a setting).

What a carrier gives and what upstream applications do, rather than the bulk shape of
``e2e_mt``: ONE transceiver bind with a window of 100 or 10; intake either one message per
``POST /v1/messages`` over 50 keep-alive connections (``bench.loadgen``, closed loop, as wrk
would) or ``POST /v1/messages/batch`` of 1,000 messages, 4 requests in flight; every message
names a ``callback_url`` on a local counting receiver (``bench.receiver``). The sink is the
simulator answering every submit_sm at once and sending its receipt right after (receipt
delay 0, every outcome DELIVRD), with its kernel's delayed ACKs or ACKing every read at once
(``smpp.tcp_quickack``: ``--ack quick``). The load generator, the receiver and the
simulator are separate processes, pinned to the other CPU than the gateway's when the
machine has two: none of their CPU is counted as the gateway's.

Figures of a run:
  - receipts/s end to end = messages / (first request sent -> last callback received);
  - accept -> callback p50 / p99: per message, the receiver's stamp of its callback minus
    the load generator's stamp of the 202 that accepted it (both CLOCK_MONOTONIC);
  - gateway CPU per message: utime + stime of the gateway process (/proc/PID/stat, every
    thread) from before the first request to the last callback, over the messages;
  - the CPU per message of the load generator, the receiver and the simulator, and the share
    of a core they used together (near 1.0 would mean the helpers, not the gateway, set the
    pace);
  - the load average (1 minute) before and after, and the CPU other processes of the
    machine used meanwhile: the machine may be shared.
With ``--no-callbacks`` the end is the moment the driver saw every message final in the
gateway's store (read-only, polled every 20 ms), and there is no accept -> callback latency.

The gateway to measure is a parameter (``--gateway NAME=EXECUTABLE``, run as ``EXECUTABLE
run --config FILE``): another checkout's ``.venv/bin/smsgw`` runs its own code under this
benchmark. Its configuration (bench.configs) allows callbacks to 127.0.0.0/8 explicitly
(``[callbacks] allowed_networks``): loopback is refused by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import profiling
from bench.configs import GatewaySettings, SimulatorSettings
from bench.context import Context
from bench.lab import (
    READY_TIMEOUT,
    Client,
    Gateway,
    start_gateway,
    start_simulator,
    status_counts_async,
)
from bench.procs import (
    GATEWAY_CPU,
    ROOT,
    SIMULATOR_CPU,
    Proc,
    ProcessSet,
    machine_busy,
    pin_self,
    pinning,
    restore_affinity,
)
from bench.report import Figure, ScenarioResult, percentile

CALLBACKS_TOML = '[callbacks]\nallowed_networks = ["127.0.0.0/8"]\n'
"""The receiver is on loopback, which the callback policy refuses unless listed."""

POLL_SECONDS = 0.02
STALL_SECONDS = 30.0
"""No new callback (or final status) for this long ends the run with an error."""
FINAL = ("delivered", "undeliverable", "expired", "rejected", "failed")

KANNEL = {
    "window 100": "2,347/s (8,010/s with the sink ACKing at once)",
    "window 10": "342/s",
}
"""Kannel 1.4.5 (bearerbox + smsbox, GET sendsms + dlr-url, 50 connections), measured
elsewhere on the same kind of machine (2 cores): quoted, never re-run by this benchmark."""


@dataclass(frozen=True)
class Setting:
    window: int
    intake: str
    """``post``: one message per POST /v1/messages; ``batch``: POST /v1/messages/batch."""
    quickack: bool
    """The sink ACKs every read at once (TCP_QUICKACK) rather than delaying its ACKs."""
    callbacks: bool = True

    def label(self) -> str:
        intake = "1/POST" if self.intake == "post" else "batch"
        ack = "ACK at once" if self.quickack else "ACK delayed"
        cb = "" if self.callbacks else ", no callbacks"
        return f"window {self.window}, {intake}, {ack}{cb}"


@dataclass(frozen=True)
class Load:
    messages: int = 5_000
    connections: int = 50
    """Keep-alive connections of the one-message-per-POST intake."""
    batch: int = 1_000
    batch_concurrency: int = 4
    timeout: float = 300.0
    """Seconds for a run, from the first request to the last callback, before giving up."""


@dataclass
class Outcome:
    gateway: str
    setting: str
    window: int
    intake: str
    quickack: bool
    callbacks: bool
    messages: int
    accepted: int = 0
    callbacks_received: int = 0
    """Distinct messages with a callback."""
    callback_duplicates: int = 0
    callback_statuses: dict[str, int] = field(default_factory=dict)
    store_statuses: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    seconds: float = math.nan
    """First request -> last callback (or every message final)."""
    seconds_to_last_202: float = math.nan
    rate: float = math.nan
    gateway_cpu_seconds: float = math.nan
    gateway_cpu_us_per_message: float = math.nan
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    loadgen_cpu_us_per_message: float = math.nan
    receiver_cpu_us_per_message: float = math.nan
    simulator_cpu_us_per_message: float = math.nan
    helpers_cores: float = math.nan
    """CPU of the load generator, receiver and simulator over the run's wall time."""
    load_before: float = math.nan
    load_after: float = math.nan
    other_cores: float = math.nan
    """CPU of every other process of the machine over the run's wall time, in cores."""
    simulator_receipts_sent: int = 0
    error: str = ""
    profile_text: str = ""


def settings_matrix(
    windows: Sequence[int], intakes: Sequence[str], acks: Sequence[bool], callbacks: bool
) -> list[Setting]:
    return [Setting(w, i, q, callbacks) for w in windows for i in intakes for q in acks]


def _rusage_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Runner:
    """Runs settings one after another with one process set, one HTTP client, one temp dir."""

    def __init__(self, procs: ProcessSet, tmp: Path, client: Client) -> None:
        self.procs = procs
        self.tmp = tmp
        self.client = client
        self.count = 0

    async def run(
        self,
        setting: Setting,
        load: Load,
        gateway_name: str = "this",
        command: Sequence[str] | None = None,
        profile_out: Path | None = None,
        profile_native: bool = False,
    ) -> Outcome:
        self.count += 1
        k = self.count
        outcome = Outcome(
            gateway=gateway_name,
            setting=setting.label(),
            window=setting.window,
            intake=setting.intake,
            quickack=setting.quickack,
            callbacks=setting.callbacks,
            messages=load.messages,
        )
        first = len(self.procs.procs)
        try:
            await self._run(k, setting, load, command, outcome, profile_out, profile_native)
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
        finally:
            for proc in reversed(self.procs.procs[first:]):
                self.procs.stop(proc)
        return outcome

    async def _run(
        self,
        k: int,
        setting: Setting,
        load: Load,
        command: Sequence[str] | None,
        outcome: Outcome,
        profile_out: Path | None,
        profile_native: bool = False,
    ) -> None:
        procs, client = self.procs, self.client
        base = self.tmp / f"carrier-{k}"
        sim = start_simulator(
            procs,
            base / "simulator",
            SimulatorSettings(
                max_binds=4, receipt_delay=0.0, tcp_quickack=setting.quickack, log_level="warning"
            ),
            name=f"carrier-simulator-{k}",
        )
        receiver: Proc | None = None
        receiver_url = ""
        callbacks_path = base / "callbacks.json"
        if setting.callbacks:
            receiver = procs.spawn_python(
                f"carrier-receiver-{k}",
                ["-m", "bench.receiver", "--out", str(callbacks_path)],
                SIMULATOR_CPU,
            )
            port = int(receiver.wait_for(r"bench-receiver ready port=(\d+)", READY_TIMEOUT)[1])
            receiver_url = f"http://127.0.0.1:{port}"
        gateway = start_gateway(
            procs,
            base / "gateway",
            GatewaySettings(
                smsc_port=sim.smpp_port,
                binds=1,
                window=setting.window,
                extra_toml=CALLBACKS_TOML,
            ),
            name=f"carrier-gateway-{k}",
            command=command,
        )
        await client.wait_bound(gateway)
        await client.sim_reset(sim)
        spy = None
        if profile_out is not None:
            spy = profiling.start(procs, gateway.proc.pid, profile_out, native=profile_native)
            if spy is None:
                raise RuntimeError("--profile: py-spy not found (pip install py-spy)")

        answers_path = base / "answers.json"
        argv = ["-m", "bench.loadgen", "--port", str(gateway.http_port)]
        # "--token=": a token_urlsafe token may begin with "-", which argparse would take for
        # an option.
        argv += [f"--token={gateway.files.token}", "--mode", setting.intake]
        argv += ["--messages", str(load.messages), "--out", str(answers_path)]
        if setting.intake == "post":
            argv += ["--connections", str(load.connections)]
        else:
            argv += ["--connections", str(load.batch_concurrency), "--batch", str(load.batch)]
        if setting.callbacks:
            argv += ["--callback-url", receiver_url + "/callback"]

        outcome.load_before = os.getloadavg()[0]
        busy0 = machine_busy()
        own0 = _own_cpu()
        children0 = _rusage_children()
        sim0 = sim.proc.cpu_seconds()
        receiver0 = receiver.cpu_seconds() if receiver else 0.0
        cpu0 = gateway.proc.cpu_seconds()
        wall0 = time.monotonic()
        loadgen = procs.spawn_python(f"carrier-loadgen-{k}", argv, SIMULATOR_CPU)
        answers, t_end, cpu1, loadgen_cpu = await self._wait(
            setting, load, gateway, receiver_url, loadgen, answers_path, children0
        )
        wall = time.monotonic() - wall0
        sim_cpu = sim.proc.cpu_seconds() - sim0
        receiver_cpu = (receiver.cpu_seconds() - receiver0) if receiver else 0.0
        gateway_cpu = cpu1 - cpu0
        helpers = sim_cpu + receiver_cpu + loadgen_cpu
        others = (machine_busy() - busy0) - (_own_cpu() - own0) - gateway_cpu - helpers
        outcome.load_after = os.getloadavg()[0]
        outcome.other_cores = max(0.0, others) / wall
        outcome.helpers_cores = helpers / wall
        if spy is not None:
            profiling.stop(procs, spy)

        n = int(answers["accepted"])
        outcome.accepted = n
        outcome.refused = {str(code): count for code, count in answers["refused"].items()}
        if answers["errors"]:
            outcome.error = "load generator: " + "; ".join(answers["errors"][:3])
        first_request = float(answers["first"])
        outcome.seconds_to_last_202 = float(answers["last"]) - first_request
        if receiver is not None:
            procs.stop(receiver)
            document = json.loads(callbacks_path.read_text())
            callbacks: dict[str, list[Any]] = document["callbacks"]
            outcome.callbacks_received = len(callbacks)
            outcome.callback_duplicates = int(document["duplicates"])
            outcome.callback_statuses = dict(Counter(str(v[1]) for v in callbacks.values()))
            if callbacks:
                t_end = max(float(v[0]) for v in callbacks.values())
            latencies = sorted(
                (float(callbacks[i][0]) - float(t)) * 1000
                for i, t in answers["answers"]
                if i in callbacks
            )
            outcome.p50_ms = percentile(latencies, 0.50)
            outcome.p99_ms = percentile(latencies, 0.99)
        stats = await client.sim_stats(sim)
        outcome.simulator_receipts_sent = int(stats.get("receipts_sent", 0))
        outcome.store_statuses = await status_counts_async(gateway.files.db_path)
        if n:
            outcome.seconds = t_end - first_request
            outcome.rate = n / outcome.seconds if outcome.seconds > 0 else math.nan
            outcome.gateway_cpu_seconds = gateway_cpu
            per = 1e6 / n
            outcome.gateway_cpu_us_per_message = gateway_cpu * per
            outcome.loadgen_cpu_us_per_message = loadgen_cpu * per
            outcome.receiver_cpu_us_per_message = receiver_cpu * per
            outcome.simulator_cpu_us_per_message = sim_cpu * per
        if setting.callbacks and not outcome.error and outcome.callbacks_received < n:
            outcome.error = f"{n - outcome.callbacks_received} of {n} callbacks missing"
        if n < load.messages and not outcome.error:
            outcome.error = f"{load.messages - n} of {load.messages} messages not accepted"

    async def _wait(
        self,
        setting: Setting,
        load: Load,
        gateway: Gateway,
        receiver_url: str,
        loadgen: Proc,
        answers_path: Path,
        children0: float,
    ) -> tuple[dict[str, Any], float, float, float]:
        """Until every accepted message has its callback (or is final in the store).
        Returns the load generator's answers, the end time, the gateway's CPU seconds then,
        and the load generator's CPU seconds."""
        answers: dict[str, Any] | None = None
        loadgen_cpu = 0.0
        started = time.monotonic()
        progress, progress_at = -1, started
        while True:
            await asyncio.sleep(POLL_SECONDS)
            now = time.monotonic()
            if answers is None and loadgen.popen.poll() is not None:
                # Reaped just now, and no other child in between: its CPU is the difference.
                loadgen_cpu = _rusage_children() - children0
                if loadgen.popen.returncode != 0:
                    raise RuntimeError(f"load generator failed:\n{loadgen.log_tail()}")
                answers = json.loads(await asyncio.to_thread(answers_path.read_text))
            if setting.callbacks:
                stats = await self.client.get_json(receiver_url + "/stats")
                done = int(stats["messages"])
            elif answers is not None:
                counts = await status_counts_async(gateway.files.db_path)
                done = sum(counts.get(s, 0) for s in FINAL)
            else:
                done = 0
            if answers is not None and done >= int(answers["accepted"]):
                return answers, time.monotonic(), gateway.proc.cpu_seconds(), loadgen_cpu
            if done != progress or (answers is None and not setting.callbacks):
                progress, progress_at = done, now
            elif now - progress_at > STALL_SECONDS:
                raise RuntimeError(f"no progress for {STALL_SECONDS:g} s ({done} done)")
            if now - started > load.timeout:
                raise RuntimeError(f"not finished within {load.timeout:g} s ({done} done)")


def _own_cpu() -> float:
    """CPU-seconds of this process (its children are counted apart)."""
    t = os.times()
    return t.user + t.system


# -- output ------------------------------------------------------------------------------------


def _num(value: float, digits: int = 0) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


HEADERS = (
    "gateway",
    "setting",
    "load1",
    "msgs",
    "receipts/s",
    "gw CPU us/msg",
    "p50 ms",
    "p99 ms",
    "callbacks",
    "helpers cores",
    "others cores",
)


def rows(outcomes: Sequence[Outcome]) -> list[tuple[str, ...]]:
    out = []
    for o in outcomes:
        callbacks = f"{o.callbacks_received:,}/{o.accepted:,}" if o.callbacks else "-"
        out.append(
            (
                o.gateway,
                o.setting,
                f"{o.load_before:.1f}",
                f"{o.accepted:,}",
                _num(o.rate),
                _num(o.gateway_cpu_us_per_message),
                _num(o.p50_ms, 1),
                _num(o.p99_ms, 1),
                callbacks,
                _num(o.helpers_cores, 2),
                _num(o.other_cores, 2),
            )
        )
    return out


def render(outcomes: Sequence[Outcome]) -> str:
    body = rows(outcomes)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(HEADERS)]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(row)
        ).rstrip()

    lines = [fmt(HEADERS), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in body]
    for o in outcomes:
        if o.error:
            lines.append(f"error ({o.gateway}, {o.setting}): {o.error}")
    return "\n".join(lines)


# -- make bench ----------------------------------------------------------------------------------


async def run(ctx: Context) -> ScenarioResult:
    """``python -m bench``'s scenario: windows 100 and 10, one message per POST and batches,
    the sink's ACKs delayed and at once, ``carrier_messages`` messages each."""
    o = ctx.options
    result = ScenarioResult("carrier")
    runner = Runner(ctx.procs, ctx.tmp, ctx.client)
    load = Load(messages=o.carrier_messages, timeout=o.e2e_timeout)
    outcomes: list[Outcome] = []
    for setting in settings_matrix(o.carrier_windows, ("post", "batch"), (False, True), True):
        print(f"   {setting.label()} ...", flush=True)
        outcome = await runner.run(setting, load)
        outcomes.append(outcome)
        kannel = KANNEL.get(f"window {setting.window}", "")
        result.add(
            Figure(
                f"{setting.label()}: receipts/s",
                outcome.rate,
                "msg/s",
                note=f"Kannel 1.4.5, quoted: {kannel}" if kannel else "",
            ),
            Figure(
                f"{setting.label()}: gateway CPU per msg", outcome.gateway_cpu_us_per_message, "us"
            ),
            Figure(
                f"{setting.label()}: accept->callback p50 / p99",
                f"{_num(outcome.p50_ms, 1)} / {_num(outcome.p99_ms, 1)} ms",
            ),
            Figure(
                f"{setting.label()}: callbacks / accepted",
                f"{outcome.callbacks_received:,} / {outcome.accepted:,}",
            ),
        )
        if outcome.error and not result.error:
            result.error = f"{setting.label()}: {outcome.error}"
    result.details["runs"] = [asdict(x) for x in outcomes]
    result.details["kannel_quoted"] = KANNEL
    print(render(outcomes), flush=True)
    return result


# -- python -m bench.carrier ---------------------------------------------------------------------


def _gateway_arg(text: str) -> tuple[str, list[str]]:
    name, sep, exe = text.partition("=")
    if not sep or not name or not exe:
        raise argparse.ArgumentTypeError(
            "expected NAME=EXECUTABLE (e.g. before=../old/.venv/bin/smsgw)"
        )
    path = shutil.which(exe) or exe
    if not Path(path).exists():
        raise argparse.ArgumentTypeError(f"{exe}: no such executable")
    return name, [str(Path(path).absolute())]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.carrier",
        description="smsgw at a carrier's settings: one bind, window 10/100, callbacks",
    )
    parser.add_argument("--messages", type=int, default=5_000, help="per run (5,000)")
    parser.add_argument(
        "--window", type=int, action="append", help="repeatable; default 100 and 10"
    )
    parser.add_argument("--intake", choices=("post", "batch"), action="append", help="default both")
    parser.add_argument(
        "--ack", choices=("delayed", "quick"), action="append", help="sink ACKs; default both"
    )
    parser.add_argument("--no-callbacks", action="store_true", help="no callback_url")
    parser.add_argument("--connections", type=int, default=50, help="1/POST connections (50)")
    parser.add_argument("--batch", type=int, default=1_000, help="messages per batch (1,000)")
    parser.add_argument("--batch-concurrency", type=int, default=4, help="batches in flight (4)")
    parser.add_argument(
        "--gateway",
        type=_gateway_arg,
        action="append",
        metavar="NAME=EXECUTABLE",
        help="the gateway's executable, run as EXECUTABLE run --config FILE (repeatable: "
        "alternated within each setting); default: this checkout (python -m gateway)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds over every setting")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the first run's gateway into this raw file"
    )
    parser.add_argument(
        "--profile-native",
        action="store_true",
        help="--profile with C frames: idle waits (epoll, the SQLite thread's queue) are told "
        "apart and left out, at the price of pausing the gateway at each sample",
    )
    parser.add_argument("--json", type=Path, help="results file")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace, procs: ProcessSet, tmp: Path) -> list[Outcome]:
    windows = args.window or [100, 10]
    intakes = args.intake or ["post", "batch"]
    acks = [a == "quick" for a in (args.ack or ["delayed", "quick"])]
    gateways: list[tuple[str, list[str] | None]] = args.gateway or [("this", None)]
    load = Load(
        messages=args.messages,
        connections=args.connections,
        batch=args.batch,
        batch_concurrency=args.batch_concurrency,
        timeout=args.timeout,
    )
    client = Client()
    runner = Runner(procs, tmp, client)
    outcomes: list[Outcome] = []
    try:
        for _round in range(args.repeat):
            for setting in settings_matrix(windows, intakes, acks, not args.no_callbacks):
                for name, command in gateways:
                    print(f"-- {name}: {setting.label()}, {load.messages:,} messages", flush=True)
                    profile = args.profile if args.profile and not outcomes else None
                    outcome = await runner.run(
                        setting, load, name, command, profile, args.profile_native
                    )
                    outcomes.append(outcome)
                    print(render([outcome]).splitlines()[-1], flush=True)
    finally:
        await client.close()
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pin = pinning() and not args.no_pin
    previous = pin_self(SIMULATOR_CPU) if pin else None
    load = os.getloadavg()
    where = f"gateway on CPU {GATEWAY_CPU}, helpers on CPU {SIMULATOR_CPU}" if pin else "not pinned"
    print(
        f"bench.carrier: {where}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"on {os.cpu_count()} CPUs",
        flush=True,
    )
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="smsgw-carrier-") as tmp:
        procs = ProcessSet(Path(tmp), pin)
        try:
            outcomes = asyncio.run(_main(args, procs, Path(tmp)))
        except KeyboardInterrupt:
            print("\ninterrupted: stopping every process started")
            return 130
        finally:
            procs.stop_all()
            restore_affinity(previous)
    print()
    print(render(outcomes))
    print(
        "\nKannel 1.4.5 (bearerbox + smsbox, GET sendsms + dlr-url, 50 connections), measured "
        "elsewhere on the same kind of 2-core machine, quoted not re-run: window 100 "
        "2,347/s (8,010/s with the sink ACKing at once), window 10 342/s, 191-232 us CPU/msg"
    )
    if args.profile and args.profile.exists():
        print(f"\npy-spy profile of the first run's gateway ({args.profile}):")
        print(profiling.summarise(args.profile).text())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path: Path = args.json or ROOT / "bench" / "results" / f"carrier-{stamp}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "timestamp": stamp,
        "argv": list(argv) if argv is not None else None,
        "pinned": pin,
        "cpus": os.cpu_count(),
        "load_average_before": load,
        "load_average_after": os.getloadavg(),
        "processes": procs.records(),
    }
    document = {"meta": meta, "runs": [asdict(o) for o in outcomes]}
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"results in {json_path}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
