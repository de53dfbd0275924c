"""Scenario throttle: one bind at a contracted TPS against a simulator enforcing the same.

The simulator's account allows ``throttle_tps`` submit_sm/s (token bucket holding a tenth of a
second: ESME_RTHROTTLED beyond it) and ``throttle_window`` unanswered submit_sm per bind
(ESME_RMSGQFUL beyond it). It holds every submit_sm_resp ``throttle_response_delay`` seconds
(the ``slow_responses`` fault), so that about tps x delay submits are always outstanding:
without a delay every response leaves at once, nothing is ever outstanding and the window
check could not catch anything. The gateway has one bind with the same TPS and window.

Enough messages for the whole run are accepted first. One second after the first submit_sm
(the start-up burst is the bucket's business, not the steady rate), the simulator's count of
submit_sm answered ESME_ROK is read, and again ``throttle_seconds`` later: the achieved rate
is the difference over the time between the two reads (each read's time is the midpoint of
its request, a millisecond or so against 5-20 s). ESME_RTHROTTLED and ESME_RMSGQFUL are
counted over the whole run.
"""

from __future__ import annotations

import asyncio
import math
import time

from bench.configs import GatewaySettings, SimulatorSettings
from bench.context import Context
from bench.lab import Client, Simulator, batch_body, start_gateway, start_simulator, status_of
from bench.report import Figure, ScenarioResult

TOLERANCE = 0.01
WARMUP_SECONDS = 1.0
BATCH = 5_000


async def _sample(client: Client, sim: Simulator) -> tuple[float, int, dict[str, object]]:
    before = time.monotonic()
    stats = await client.sim_stats(sim)
    after = time.monotonic()
    return (before + after) / 2, status_of(stats, "submit_sm_by_status", "ESME_ROK"), stats


async def run(ctx: Context) -> ScenarioResult:
    o = ctx.options
    tps = o.throttle_tps
    result = ScenarioResult("throttle")
    procs = ctx.procs
    client = ctx.client
    base = ctx.tmp / "throttle"
    sim = start_simulator(
        procs,
        base / "simulator",
        SimulatorSettings(tps=tps, window=o.throttle_window, max_binds=2),
        name="simulator-throttle",
    )
    gateway = start_gateway(
        procs,
        base / "gateway",
        GatewaySettings(smsc_port=sim.smpp_port, binds=1, window=o.throttle_window, tps=tps),
        name="gateway-throttle",
    )
    await client.wait_bound(gateway)
    await client.sim_faults(sim, {"slow_responses": o.throttle_response_delay})
    await client.sim_reset(sim)

    total = math.ceil(tps * (o.throttle_seconds + WARMUP_SECONDS + 3))
    for first in range(0, total, BATCH):
        await client.post_batch(gateway, batch_body(first, min(BATCH, total - first)))
    deadline = time.monotonic() + 10
    while int((await client.sim_stats(sim))["submit_sm"]) == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("no submit_sm reached the simulator within 10 s")
        await asyncio.sleep(0.01)
    await asyncio.sleep(WARMUP_SECONDS)
    t1, ok1, _ = await _sample(client, sim)
    await asyncio.sleep(o.throttle_seconds)
    t2, ok2, stats = await _sample(client, sim)
    procs.stop(gateway.proc)
    procs.stop(sim.proc)

    rate = (ok2 - ok1) / (t2 - t1)
    error = rate / tps - 1
    throttled = status_of(stats, "submit_sm_by_status", "ESME_RTHROTTLED")
    queue_full = status_of(stats, "submit_sm_by_status", "ESME_RMSGQFUL")
    result.add(
        Figure("configured tps (bind and simulator)", tps, "msg/s"),
        Figure(
            f"achieved rate over {t2 - t1:.1f} s",
            rate,
            "msg/s",
            f"{tps * (1 - TOLERANCE):,.0f}..{tps * (1 + TOLERANCE):,.0f}",
            abs(error) <= TOLERANCE,
        ),
        Figure(
            "deviation from configured", 100 * error, "%", "within +-1 %", abs(error) <= TOLERANCE
        ),
        Figure("ESME_RTHROTTLED", throttled, "", "0", throttled == 0),
        Figure(f"ESME_RMSGQFUL (window {o.throttle_window})", queue_full, "", "0", queue_full == 0),
    )
    result.details.update(
        {
            "tps": tps,
            "window": o.throttle_window,
            "response_delay_s": o.throttle_response_delay,
            "measured_seconds": t2 - t1,
            "submit_ok_in_window": ok2 - ok1,
            "messages_queued": total,
            "simulator_stats": {
                k: stats.get(k) for k in ("submit_sm", "submit_sm_by_status", "submit_rate")
            },
        }
    )
    return result
