"""Scenario e2e_mt: HTTP batch intake -> store -> binds -> simulator -> responses and receipts.

Bulk run (throughput)
    One simulator (receipts on, every outcome DELIVRD after 0.2 s, deliver_sm window 1000)
    and one gateway (``binds`` transceivers, window 1000, no TPS limit, store.synchronous as
    given). All request bodies are built first; then ``concurrency`` client tasks POST
    batches of ``batch`` messages until ``messages`` are accepted. Meanwhile the simulator's
    counters are read every 0.1 s; once it has sent a receipt for every accepted message,
    the gateway's SQLite file is read (read-only) every 0.1 s until every message has a
    final status. Figures:
      - sustained messages/s = accepted / (first POST -> every message final in the store);
      - the same clock to the last submit_sm and to the last 202, and the simulator's best
        5-second submit rate;
      - receipt correlation = delivered in the store / accepted (and the simulator's
        receipts_sent and deliver_sm_resp ROK beside it);
      - CPU seconds per 1,000 messages of each process (/proc utime+stime over the run,
        every thread included), and what that CPU cost means on a free core;
      - peak RSS (VmHWM) of both processes.

Paced run (latency), after the bulk run
    A second gateway (fresh store, same settings) reaches the same simulator through
    ``bench.tap``, a relay that stamps every submit_sm when its bytes arrive, with
    CLOCK_MONOTONIC (the clock this process uses too). Messages carry a marker
    ``LAT<index>`` in their text. They are sent at half the sustained rate for
    ``latency_seconds``, spread over ``latency_requests_per_second`` requests a second (a
    request every 5 ms by default: a message waits at most that long for its batch, and a
    batch of n leaves in sequence). For each message:
      - accept -> wire = tap stamp - the moment the client read the 202 (the brief's
        definition). A message a bind has room for is committed begun and its submit_sm
        written right after the commit, before the 202 is written: this figure is then
        negative (the bytes were on the wire before the client heard "accepted"); it
        stays above zero only for messages that waited in the dispatcher's queues;
      - intake -> wire = tap stamp - the message's created_at in the store (the gateway's
        clock when the request was parsed, before validation and the commit: an upper bound).
    p50 and p99 of both are given; the target is read against accept -> wire.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import profiling
from bench.configs import GatewaySettings, SimulatorSettings
from bench.context import Context
from bench.lab import (
    SENDER,
    Client,
    Gateway,
    Simulator,
    batch_body,
    destination,
    start_gateway,
    start_simulator,
    status_counts_async,
    status_of,
)
from bench.procs import SIMULATOR_CPU
from bench.report import Figure, ScenarioResult, at_least, at_most, percentile
from bench.tap import mark_text

TARGET_RATE = 20_000.0
TARGET_P99_MS = 5.0
POLL_SECONDS = 0.1
STALL_SECONDS = 30.0
"""No progress at all (submits, receipts, final statuses) for this long ends the run."""
STORE_METRICS = ("smsgw_store_commits_total", "smsgw_store_operations_total")


FINAL = ("delivered", "undeliverable", "expired", "rejected", "failed")


@dataclass
class Bulk:
    accepted: int = 0
    t_accepted: float = math.nan
    t_submitted: float = math.nan
    t_receipts: float = math.nan
    t_final: float = math.nan
    counts: dict[str, int] = field(default_factory=dict)
    sim: dict[str, Any] = field(default_factory=dict)
    peak_submit_rate: float = 0.0
    timeline: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since start, simulator submit_sm, simulator receipts_sent)."""
    timed_out: str = ""


async def _post_all(
    client: Client,
    gateway: Gateway,
    bodies: list[tuple[int, bytes]],
    concurrency: int,
    bulk: Bulk,
    t0: float,
) -> None:
    queue = list(reversed(bodies))

    async def worker() -> None:
        while queue:
            _count, body = queue.pop()
            accepted = await client.post_batch(gateway, body)
            bulk.accepted += accepted  # after the await: no update lost between workers
        bulk.t_accepted = time.monotonic() - t0

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    bulk.t_accepted = time.monotonic() - t0


async def _bulk_run(ctx: Context, sim: Simulator, gateway: Gateway, bulk: Bulk) -> None:
    o = ctx.options
    client = ctx.client
    bodies = [
        (min(o.batch, o.messages - first), batch_body(first, min(o.batch, o.messages - first)))
        for first in range(0, o.messages, o.batch)
    ]
    t0 = time.monotonic()
    intake = asyncio.create_task(_post_all(client, gateway, bodies, o.concurrency, bulk, t0))
    progress = (-1, -1, -1)
    progress_at = t0
    try:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            now = time.monotonic()
            elapsed = now - t0
            if intake.done():
                intake.result()  # a refused batch ends the run here
            stats = await client.sim_stats(sim)
            submitted = int(stats["submit_sm"])
            receipts = int(stats["receipts_sent"])
            bulk.sim = stats
            bulk.timeline.append((round(elapsed, 3), submitted, receipts))
            bulk.peak_submit_rate = max(bulk.peak_submit_rate, float(stats["submit_rate"]))
            target = bulk.accepted if intake.done() else o.messages
            if submitted >= target and math.isnan(bulk.t_submitted):
                bulk.t_submitted = elapsed
            final = sum(bulk.counts.get(s, 0) for s in FINAL)
            if intake.done() and receipts >= bulk.accepted:
                if math.isnan(bulk.t_receipts):
                    bulk.t_receipts = elapsed
                bulk.counts = await status_counts_async(gateway.files.db_path)
                final = sum(bulk.counts.get(s, 0) for s in FINAL)
                if final >= bulk.accepted:
                    bulk.t_final = time.monotonic() - t0
                    return
            if (submitted, receipts, final) != progress:
                progress, progress_at = (submitted, receipts, final), now
            elif now - progress_at > STALL_SECONDS:
                bulk.timed_out = f"no progress for {STALL_SECONDS:g} s"
                break
            if elapsed > o.e2e_timeout:
                bulk.timed_out = f"not finished within {o.e2e_timeout:g} s"
                break
    finally:
        if not intake.done():
            intake.cancel()
    bulk.counts = await status_counts_async(gateway.files.db_path)


async def _latency_run(ctx: Context, sim: Simulator, rate: float, result: ScenarioResult) -> None:
    o = ctx.options
    procs = ctx.procs
    client = ctx.client
    marks_path = ctx.tmp / "e2e" / "tap-marks.json"
    tap = procs.spawn_python(
        "tap",
        ["-m", "bench.tap", "--upstream-port", str(sim.smpp_port), "--out", str(marks_path)],
        SIMULATOR_CPU,
    )
    tap_port = int(tap.wait_for(r"bench-tap ready port=(\d+)", 30.0).group(1))
    gateway = start_gateway(
        procs,
        ctx.tmp / "e2e" / "gateway-latency",
        GatewaySettings(smsc_port=tap_port, binds=o.binds, synchronous=o.synchronous),
        name="gateway-latency",
    )
    await client.wait_bound(gateway)
    await client.sim_reset(sim)

    per_request = max(1, round(rate / o.latency_requests_per_second))
    requests = max(1, round(o.latency_seconds * rate / per_request))
    interval = per_request / rate
    bodies = []
    for k in range(requests):
        first = k * per_request
        messages = [
            {"to": destination(i), "from": SENDER, "text": f"Latency probe {mark_text(i)}"}
            for i in range(first, first + per_request)
        ]
        bodies.append(json.dumps({"messages": messages}, separators=(",", ":")).encode())
    sent_at = [math.nan] * requests
    answered_at = [math.nan] * requests
    ids: list[list[str]] = [[] for _ in range(requests)]
    lateness: list[float] = []

    async def one(k: int) -> None:
        sent_at[k] = time.monotonic()
        async with client.http.post(
            gateway.url + "/v1/messages/batch",
            data=bodies[k],
            headers={**gateway.auth, "Content-Type": "application/json"},
        ) as response:
            raw = await response.read()
            answered_at[k] = time.monotonic()
            if response.status != 202:
                raise RuntimeError(f"batch refused: {response.status} {raw[:300]!r}")
        ids[k] = [m["id"] for m in json.loads(raw)["messages"]]

    tasks = []
    start = time.monotonic() + 0.05
    for k in range(requests):
        due = start + k * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        lateness.append(time.monotonic() - due)
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    sent = requests * per_request
    # Every submit_sm has left when the simulator has counted them all (or 10 s passed).
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if int((await client.sim_stats(sim))["submit_sm"]) >= sent:
            break
        await asyncio.sleep(POLL_SECONDS)
    procs.stop(tap)
    marks: dict[str, float] = json.loads(marks_path.read_text())["marks"]
    wall_minus_mono = time.time() - time.monotonic()
    created = await asyncio.to_thread(_created_at, gateway.files.db_path)
    result.details["latency_gateway_peak_rss_mib"] = gateway.proc.peak_rss_mib()
    procs.stop(gateway.proc)

    accept_ms: list[float] = []
    intake_ms: list[float] = []
    for k in range(requests):
        for j, message_id in enumerate(ids[k]):
            wire = marks.get(str(k * per_request + j))
            if wire is None:
                continue
            accept_ms.append((wire - answered_at[k]) * 1000)
            created_wall = created.get(message_id)
            if created_wall is not None:
                intake_ms.append((wire - (created_wall - wall_minus_mono)) * 1000)
    accept_ms.sort()
    intake_ms.sort()
    achieved = sent / (max(a for a in answered_at) - start) if requests > 1 else math.nan
    p99 = percentile(accept_ms, 0.99)
    result.add(
        Figure(
            "paced rate (half of sustained)",
            rate,
            "msg/s",
            note=f"{requests} requests of {per_request}, offered over {o.latency_seconds:g} s",
        ),
        Figure("accept->submit_sm p50", percentile(accept_ms, 0.50), "ms"),
        Figure(
            "accept->submit_sm p99",
            p99,
            "ms",
            f"<= {TARGET_P99_MS:g} ms",
            at_most(p99, TARGET_P99_MS),
        ),
        Figure("intake->submit_sm p50 (upper bound)", percentile(intake_ms, 0.50), "ms"),
        Figure("intake->submit_sm p99 (upper bound)", percentile(intake_ms, 0.99), "ms"),
    )
    lateness.sort()
    result.details["latency"] = {
        "rate_offered": rate,
        "rate_achieved_intake": achieved,
        "requests": requests,
        "messages_per_request": per_request,
        "messages_sent": sent,
        "messages_seen_on_wire": len(marks),
        "samples": len(accept_ms),
        "accept_to_wire_ms": _quantiles(accept_ms),
        "intake_to_wire_ms": _quantiles(intake_ms),
        "client_send_lateness_ms_p99": percentile(lateness, 0.99) * 1000,
        "http_answer_ms": _quantiles(
            sorted((a - s) * 1000 for a, s in zip(answered_at, sent_at, strict=True))
        ),
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "min": values[0],
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "p99.9": percentile(values, 0.999),
        "max": values[-1],
    }


def _created_at(db_path: Path) -> dict[str, float]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return dict(db.execute("SELECT id, created_at FROM messages").fetchall())
    finally:
        db.close()


async def run(ctx: Context) -> ScenarioResult:
    o = ctx.options
    result = ScenarioResult("e2e_mt")
    procs = ctx.procs
    client = ctx.client
    base = ctx.tmp / "e2e"
    sim = start_simulator(procs, base / "simulator", SimulatorSettings(max_binds=2 * o.binds + 2))
    gateway = start_gateway(
        procs,
        base / "gateway",
        GatewaySettings(smsc_port=sim.smpp_port, binds=o.binds, synchronous=o.synchronous),
    )
    await client.wait_bound(gateway)
    await client.sim_reset(sim)
    spy = None
    spy_out = ctx.artefact("gateway-e2e.pyspy.txt")
    if o.profile or o.profile_native:
        spy = profiling.start(procs, gateway.proc.pid, spy_out, native=o.profile_native)
        if spy is None:
            result.details["profile"] = "py-spy not found"
    store_before = await client.gateway_metrics(gateway, *STORE_METRICS)
    cpu_gw = gateway.proc.cpu_seconds()
    cpu_sim = sim.proc.cpu_seconds()
    bulk = Bulk()
    try:
        await _bulk_run(ctx, sim, gateway, bulk)
    finally:
        if spy is not None:
            profiling.stop(procs, spy)
    cpu_gw = gateway.proc.cpu_seconds() - cpu_gw
    cpu_sim = sim.proc.cpu_seconds() - cpu_sim
    store_after = await client.gateway_metrics(gateway, *STORE_METRICS)
    commits, ops = (store_after[k] - store_before[k] for k in STORE_METRICS)
    rss_gw = gateway.proc.peak_rss_mib()
    rss_sim = sim.proc.peak_rss_mib()
    if spy is not None and spy_out.exists():
        summary = profiling.summarise(spy_out)
        result.details["profile"] = summary.as_dict()
        result.details["profile_file"] = str(spy_out)
        result.details["profile_text"] = summary.text()

    n = bulk.accepted
    delivered = bulk.counts.get("delivered", 0)
    sustained = n / bulk.t_final if n and not math.isnan(bulk.t_final) else math.nan
    if bulk.timed_out:
        result.error = f"bulk run: {bulk.timed_out}; statuses {bulk.counts}"
    per_k = 1000 / n if n else math.nan
    gw_ceiling = n / cpu_gw if cpu_gw else math.nan
    result.add(
        Figure("messages accepted", n, "", note=f"{o.concurrency} clients x {o.batch}/request"),
        Figure(
            "sustained (accept -> all final)",
            sustained,
            "msg/s",
            f">= {TARGET_RATE:,.0f}",
            at_least(sustained, TARGET_RATE),
        ),
        Figure("time until all delivered", bulk.t_final, "s"),
        Figure(
            "time to last 202 / last submit_sm",
            f"{bulk.t_accepted:.2f} s / {bulk.t_submitted:.2f} s",
        ),
        Figure("simulator submit_sm/s (best 5 s)", bulk.peak_submit_rate, "msg/s"),
        Figure(
            "receipt correlation (delivered/accepted)",
            100 * delivered / n if n else math.nan,
            "%",
            "100 %",
            (delivered == n) if n else None,
        ),
        Figure(
            "simulator receipts_sent / deliver_sm_resp OK",
            f"{bulk.sim.get('receipts_sent', 0):,} / "
            f"{status_of(bulk.sim, 'deliver_sm_resp_by_status', 'ESME_ROK'):,}",
        ),
        Figure(
            "gateway CPU per 1,000 msgs", cpu_gw * per_k, "s", note=f"{cpu_gw:.1f} CPU-s in all"
        ),
        Figure(
            "simulator CPU per 1,000 msgs", cpu_sim * per_k, "s", note=f"{cpu_sim:.1f} CPU-s in all"
        ),
        Figure(
            "gateway msgs per CPU-second",
            gw_ceiling,
            "msg/s",
            note="what one free core would give the gateway, by CPU time",
        ),
        Figure("peak RSS gateway / simulator", f"{rss_gw:.0f} / {rss_sim:.0f} MiB"),
        Figure(
            "store commits / write ops per commit",
            f"{commits:,.0f} / {ops / commits if commits else math.nan:.1f}",
            note=f"synchronous={o.synchronous}",
        ),
    )
    result.details.update(
        {
            "accepted": n,
            "statuses": bulk.counts,
            "seconds_to_last_202": bulk.t_accepted,
            "seconds_to_last_submit_sm": bulk.t_submitted,
            "seconds_to_last_receipt_sent": bulk.t_receipts,
            "seconds_to_all_final": bulk.t_final,
            "gateway_cpu_seconds": cpu_gw,
            "simulator_cpu_seconds": cpu_sim,
            "gateway_peak_rss_mib": rss_gw,
            "store_commits": commits,
            "store_write_ops": ops,
            "store_synchronous": o.synchronous,
            "simulator_peak_rss_mib": rss_sim,
            "simulator_stats": {
                k: bulk.sim.get(k)
                for k in (
                    "submit_sm",
                    "submit_sm_by_status",
                    "receipts_sent",
                    "receipts_dropped",
                    "deliver_sm_resp_by_status",
                    "deliver_sm_timeouts",
                )
            },
            "timeline": bulk.timeline,
        }
    )
    # The bulk gateway is done: its core is free for the paced run's gateway.
    procs.stop(gateway.proc)
    rate = o.latency_rate or (sustained / 2 if not math.isnan(sustained) else math.nan)
    if o.latency_seconds > 0 and not math.isnan(rate) and rate > 0:
        await _latency_run(ctx, sim, rate, result)
    else:
        result.add(Figure("accept->submit_sm p99", None, "", f"<= {TARGET_P99_MS:g} ms"))
    procs.stop(sim.proc)
    return result
