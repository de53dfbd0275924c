"""Scenario campaign_fanout: import a large contact CSV over HTTP, start a campaign to it.

A CSV of ``campaign_contacts`` rows (``number,name,city``: distinct valid German mobile
numbers) is written to the temp dir in 10,000-row chunks (never held in memory), then
uploaded to ``POST /v1/lists/{id}/import`` as a streamed body (aiohttp reads the file as it
sends). Import time runs from the start of the upload until ``GET /v1/imports/{id}`` says
``done`` (polled every 0.1 s: the figure is at most that much late).

A campaign (one template field, no send window, no TPS of its own: the carrier's pace) is
then created and started. Time to first submit_sm runs from the start request until the
simulator's submit_sm counter moves (polled every 5 ms). The send rate is submit_sm seen by
the simulator per second from that poll until ``campaign_sends`` of them (those already
counted at that first poll are left out of the rate: a chunk arrives as a burst)
(``campaign_sends`` is smaller than the list under ``make bench``: sending a million
messages at this gateway's rate would not fit the 10-minute budget; the figure's label says
how many were sent). The campaign is then cancelled.

The gateway's CPU seconds through the import (from the start of the upload until ``done``)
are printed beside the import time: on a shared machine the wall time says more about the
neighbours than about the code.

Peak RSS is the gateway's ``VmHWM`` (its resident set's high-water mark since it started),
read once after the import and once after the sends: the second covers the import and the
sends together.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.configs import GatewaySettings, SimulatorSettings
from bench.context import Context
from bench.lab import Client, Gateway, Simulator, start_gateway, start_simulator
from bench.report import Figure, ScenarioResult, at_most

IMPORT_TARGET_S = 20.0
RSS_TARGET_MIB = 250.0
CHUNK_ROWS = 10_000
CITIES = ("Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt", "Stuttgart", "Leipzig")


def write_csv(path: Path, rows: int) -> int:
    """Write ``rows`` contacts to ``path`` chunk by chunk; returns the file's size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("number,name,city\n")
        for first in range(0, rows, CHUNK_ROWS):
            out.write(
                "".join(
                    f"+49152{i:08d},Contact {i},{CITIES[i % len(CITIES)]}\n"
                    for i in range(first, min(rows, first + CHUNK_ROWS))
                )
            )
    return path.stat().st_size


async def _post_json(client: Client, gateway: Gateway, path: str, body: Any = None) -> Any:
    async with client.http.post(gateway.url + path, json=body, headers=gateway.auth) as response:
        text = await response.text()
        if response.status not in (200, 201, 202):
            raise RuntimeError(f"POST {path}: {response.status} {text[:500]}")
        return await response.json()


async def _import(client: Client, gateway: Gateway, list_id: int, csv: Path) -> dict[str, Any]:
    with csv.open("rb") as body:
        async with client.http.post(
            f"{gateway.url}/v1/lists/{list_id}/import",
            data=body,
            headers={**gateway.auth, "Content-Type": "text/csv"},
        ) as response:
            text = await response.text()
            if response.status != 202:
                raise RuntimeError(f"import refused: {response.status} {text[:500]}")
            started: dict[str, Any] = await response.json()
    doc = started
    while doc.get("status") == "running":
        await asyncio.sleep(0.1)
        doc = await client.get_json(
            f"{gateway.url}/v1/imports/{started['import_id']}", gateway.auth
        )
    if doc.get("status") != "done":
        raise RuntimeError(f"import ended {doc.get('status')}: {str(doc)[:500]}")
    return doc


async def _submits(client: Client, sim: Simulator) -> int:
    return int((await client.sim_stats(sim))["submit_sm"])


async def run(ctx: Context) -> ScenarioResult:
    o = ctx.options
    contacts = o.campaign_contacts
    sends = min(o.campaign_sends, contacts)
    result = ScenarioResult("campaign_fanout")
    client = ctx.client
    base = ctx.tmp / "campaign"
    csv = base / "contacts.csv"
    written = time.monotonic()
    size = await asyncio.to_thread(write_csv, csv, contacts)
    written = time.monotonic() - written
    sim = start_simulator(ctx.procs, base / "simulator", SimulatorSettings(), "simulator-campaign")
    gateway = start_gateway(
        ctx.procs,
        base / "gateway",
        GatewaySettings(smsc_port=sim.smpp_port, binds=o.binds, synchronous=o.synchronous),
        name="gateway-campaign",
    )
    await client.wait_bound(gateway)
    await client.sim_reset(sim)

    made = await _post_json(client, gateway, "/v1/lists", {"name": "bench"})
    cpu_began = gateway.proc.cpu_seconds()
    began = time.monotonic()
    doc = await _import(client, gateway, int(made["id"]), csv)
    import_s = time.monotonic() - began
    rss_import = gateway.proc.peak_rss_mib()
    cpu_import = gateway.proc.cpu_seconds()
    cpu_import_only = cpu_import - cpu_began
    csv.unlink()

    campaign = await _post_json(
        client,
        gateway,
        "/v1/campaigns",
        {
            "name": "bench",
            "from": "BENCH",
            "text": "Hi {name}, spring sale in {city} this weekend. Reply STOP to opt out",
            "lists": [int(made["id"])],
        },
    )
    campaign_id = campaign["id"]
    started = time.monotonic()
    await _post_json(client, gateway, f"/v1/campaigns/{campaign_id}/start")
    deadline = started + o.campaign_timeout
    while await _submits(client, sim) == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no submit_sm within {o.campaign_timeout:g} s of the start")
        await asyncio.sleep(0.005)
    first = time.monotonic()
    cpu_first = gateway.proc.cpu_seconds()
    at_first = seen = await _submits(client, sim)
    while (seen := await _submits(client, sim)) < sends:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    last = time.monotonic()
    cpu_sends = gateway.proc.cpu_seconds() - cpu_first
    rss_all = gateway.proc.peak_rss_mib()
    # Stop the rest of a big list; a campaign already done answers 409, which is fine.
    async with client.http.post(
        f"{gateway.url}/v1/campaigns/{campaign_id}/cancel", headers=gateway.auth
    ) as response:
        if response.status not in (200, 409):
            raise RuntimeError(f"cancel: {response.status} {await response.text()}")
    ctx.procs.stop(gateway.proc)
    ctx.procs.stop(sim.proc)

    # The submits already there when the first was seen are not timed (a chunk's burst).
    timed = seen - at_first
    rate = timed / (last - first) if timed > 0 and last > first else float("nan")
    sent_label = f"{seen:,} of {contacts:,}" + ("" if seen >= sends else ", timed out")
    result.add(
        Figure(
            f"{contacts:,}-contact CSV import",
            import_s,
            "s",
            f"<= {IMPORT_TARGET_S:g} s",
            at_most(import_s, IMPORT_TARGET_S) if contacts >= 1_000_000 else None,
        ),
        Figure("contacts imported / rejected", f"{doc.get('imported')} / {doc.get('rejected')}"),
        Figure("gateway CPU through the import (upload and parse)", cpu_import_only, "s"),
        Figure("time to first submit_sm", 1000 * (first - started), "ms"),
        Figure(f"campaign send rate (first {sent_label})", rate, "msg/s"),
        Figure(
            "gateway CPU per 1,000 campaign msgs",
            1000 * cpu_sends / (seen - at_first) if seen > at_first else None,
            "s",
        ),
        Figure("gateway peak RSS after import", rss_import, "MiB", f"<= {RSS_TARGET_MIB:g} MB"),
        Figure(
            f"gateway peak RSS, import + {seen:,} sends",
            rss_all,
            "MiB",
            f"<= {RSS_TARGET_MIB:g} MB",
            at_most(rss_all, RSS_TARGET_MIB),
        ),
    )
    result.details.update(
        {
            "contacts": contacts,
            "csv_bytes": size,
            "csv_write_seconds": written,
            "import": doc,
            "import_seconds": import_s,
            "gateway_cpu_seconds_import": cpu_import,
            "gateway_cpu_seconds_import_only": cpu_import_only,
            "campaign_id": campaign_id,
            "sends_measured": seen,
            "sends_at_first_poll": at_first,
            "send_seconds": last - first,
            "gateway_cpu_seconds_sends": cpu_sends,
        }
    )
    return result
