"""Scenario simulator_alone: the submit_sm/s smsc-sim absorbs with receipts on.

The lean ESME of ``bench.bench_simulator`` (pre-encoded submit_sm, header-only decoding,
pipelined up to ``sim_window`` per connection) runs in this process, pinned to the gateway's
core (no gateway runs now); the simulator runs pinned to its own core. Every submit_sm asks
for a receipt (delay 0), so each message costs the simulator a submit_sm in, a response
out, a deliver_sm out and a deliver_sm_resp in. The rate is messages / (first submit_sm ->
last submit_sm_resp); the receipts' rate is given too (they trail by a few milliseconds).
"""

from __future__ import annotations

from bench.bench_simulator import CONFIG, run_once
from bench.context import Context
from bench.procs import GATEWAY_CPU, SIMULATOR_CPU, pin_self, restore_affinity
from bench.report import Figure, ScenarioResult, at_least

TARGET_RATE = 50_000.0


async def run(ctx: Context) -> ScenarioResult:
    o = ctx.options
    result = ScenarioResult("simulator_alone")
    directory = ctx.tmp / "simulator-alone"
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "simulator.toml"
    config.write_text(CONFIG.format(deliver_window=o.sim_window))
    proc = ctx.procs.spawn_python(
        "simulator-alone", ["-m", "smsc_simulator.cli", "--config", str(config)], SIMULATOR_CPU
    )
    match = proc.wait_for(r"smsc-sim ready .*smpp_port=(\d+)", 30.0)
    port = int(match.group(1))
    previous = pin_self(GATEWAY_CPU) if ctx.procs.taskset else None
    try:
        cpu_before = proc.cpu_seconds()
        totals = await run_once(port, o.messages, o.sim_connections, o.sim_window, True)
        cpu = proc.cpu_seconds() - cpu_before
    finally:
        restore_affinity(previous)
    rss = proc.peak_rss_mib()
    ctx.procs.stop(proc)

    elapsed = totals.responses_done - totals.first_sent
    rate = totals.target / elapsed
    receipts_elapsed = totals.receipts_done - totals.first_sent
    result.add(
        Figure(
            "submit_sm/s with receipts",
            rate,
            "msg/s",
            f">= {TARGET_RATE:,.0f}",
            at_least(rate, TARGET_RATE),
        ),
        Figure("receipts/s", totals.receipts / receipts_elapsed, "msg/s"),
        Figure(
            "simulator CPU per message", cpu / totals.target * 1e6, "us", note=f"{cpu:.2f} CPU-s"
        ),
        Figure(
            "msgs per simulator CPU-second",
            totals.target / cpu if cpu else None,
            "msg/s",
            note="what one free core would give, by CPU time",
        ),
        Figure("simulator peak RSS", rss, "MiB"),
    )
    result.details.update(
        {
            "messages": totals.target,
            "connections": o.sim_connections,
            "window": o.sim_window,
            "ok": totals.ok,
            "other_statuses": totals.statuses,
            "receipts": totals.receipts,
            "seconds": elapsed,
            "receipt_seconds": receipts_elapsed,
            "cpu_seconds": cpu,
        }
    )
    return result
