"""Scenario inbound_mo: MO -> keyword rule -> auto-reply, at a steady offered rate.

The gateway has one ``[[inbound.numbers]]`` (``36180``) with one rule: keyword ``YES``,
action ``reply``. The simulator's ``POST /v1/mo/load`` (smsc_simulator.moload) offers
``mo_rate`` single-part MOs per second for ``mo_seconds``, each from its own sender (so the
gateway's loop guard stays out of it), over the gateway's transceiver binds. The simulator
remembers when it queued each MO's deliver_sm and, when a submit_sm to that sender arrives,
records the time between the two: that is the latency (it includes the wait for a
deliver_sm window slot, when the gateway falls behind the offered rate).

MO/s handled is replies received by the simulator divided by the time from the first MO to
the last reply. The run waits until every MO is answered or ``mo_timeout`` passes (then the
figures say how many were answered). The offered rate (6,000/s for 3 s under ``make bench``)
is above what the gateway handles today, so the p50/p99 include the time MOs queue behind
the others: they are latencies under overload, and the labels say so.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from bench import profiling
from bench.configs import GatewaySettings, SimulatorSettings
from bench.context import Context
from bench.lab import Client, Simulator, start_gateway, start_simulator
from bench.report import Figure, ScenarioResult, at_least

NUMBER = "36180"
KEYWORD = "YES"
REPLY = "Thanks! You are in. Reply STOP to opt out"
TARGET_PER_S = 5_000.0

INBOUND_TOML = f"""[inbound]

[[inbound.numbers]]
number = "{NUMBER}"

[[inbound.numbers.rules]]
name = "yes"
keyword = "{KEYWORD}"
actions = [{{ type = "reply", text = "{REPLY}" }}]
"""


async def _load(client: Client, sim: Simulator) -> dict[str, Any]:
    doc: dict[str, Any] = await client.get_json(sim.url + "/v1/mo/load")
    return doc


async def run(ctx: Context) -> ScenarioResult:
    o = ctx.options
    count = max(1, math.ceil(o.mo_rate * o.mo_seconds))
    result = ScenarioResult("inbound_mo")
    client = ctx.client
    base = ctx.tmp / "inbound"
    sim = start_simulator(ctx.procs, base / "simulator", SimulatorSettings(), "simulator-inbound")
    gateway = start_gateway(
        ctx.procs,
        base / "gateway",
        GatewaySettings(
            smsc_port=sim.smpp_port,
            binds=o.binds,
            synchronous=o.synchronous,
            extra_toml=INBOUND_TOML,
        ),
        name="gateway-inbound",
    )
    await client.wait_bound(gateway)
    await client.sim_reset(sim)
    spy = None
    spy_out = ctx.artefact("gateway-inbound.pyspy.txt")
    if o.profile or o.profile_native:
        spy = profiling.start(ctx.procs, gateway.proc.pid, spy_out, native=o.profile_native)
    cpu_before = gateway.proc.cpu_seconds()
    async with client.http.post(
        sim.url + "/v1/mo/load",
        json={"to": NUMBER, "text": f"{KEYWORD} please", "count": count, "rate": o.mo_rate},
    ) as response:
        if response.status != 202:
            raise RuntimeError(f"MO load refused: {response.status} {await response.text()}")
    deadline = time.monotonic() + o.mo_seconds + o.mo_timeout
    doc = await _load(client, sim)
    while doc["replies"] < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        doc = await _load(client, sim)
    cpu = gateway.proc.cpu_seconds() - cpu_before
    if spy is not None:
        profiling.stop(ctx.procs, spy)
        if spy_out.exists():
            summary = profiling.summarise(spy_out)
            result.details["profile"] = summary.as_dict()
            result.details["profile_file"] = str(spy_out)
            result.details["profile_text"] = summary.text()
    rss = gateway.proc.peak_rss_mib()
    stats = await client.sim_stats(sim)
    ctx.procs.stop(gateway.proc)
    ctx.procs.stop(sim.proc)

    replies = int(doc["replies"])
    span = (doc["last_reply_s"] or 0.0) - (doc["first_mo_s"] or 0.0)
    rate = replies / span if replies and span > 0 else float("nan")
    queued = " (overloaded)" if rate < 0.9 * o.mo_rate else ""
    result.add(
        Figure("MOs offered", f"{count:,} at {o.mo_rate:,.0f}/s"),
        Figure("auto-replies received / MOs", f"{replies:,} / {count:,}"),
        Figure(
            "MO -> keyword -> auto-reply",
            rate,
            "MO/s",
            f">= {TARGET_PER_S:,.0f}/s",
            at_least(rate, TARGET_PER_S),
        ),
        Figure(f"p50 MO deliver_sm -> reply submit_sm{queued}", doc["p50_ms"], "ms"),
        Figure(f"p99 MO deliver_sm -> reply submit_sm{queued}", doc["p99_ms"], "ms"),
        Figure("gateway CPU per 1,000 MOs", 1000 * cpu / replies if replies else None, "s"),
        Figure("gateway peak RSS", rss, "MiB"),
    )
    result.details.update(
        {
            "mo_load": doc,
            "gateway_cpu_seconds": cpu,
            "simulator_stats": {
                k: stats.get(k)
                for k in ("mo_sent", "mo_dropped", "submit_sm", "deliver_sm_resp_by_status")
            },
        }
    )
    return result
