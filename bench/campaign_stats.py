"""What the statistics of one large campaign cost to read (``GET /v1/campaigns/{id}/stats``).

    .venv/bin/python -m bench.campaign_stats                       # 200,000 messages
    .venv/bin/python -m bench.campaign_stats --messages 1000000 --runs 3

Writes a SQLite store (in a temp dir) holding one campaign of ``--messages`` messages sent
over its first ten days (70 % delivered, the rest undeliverable, expired or rejected with a
few carrier errors, 2 % never sent), with ``--others`` messages of other campaigns beside
it, replies from 10 % of the recipients (1 in 10 of them a STOP) and clicks from 15 %
(a third of them twice, plus previews). Then it times, ``--runs`` times each, with a warm
cache: the store's ``campaign_counts`` (the campaign's figures since its start: what the
daily digest reads, twice a digest), ``campaign_series`` for the statistics' three axes
(the whole campaign, 24 hours, 10 days) when the store has it, and the whole statistics
document (CampaignService.stats). It prints the best and the median wall-clock time of
each, and its best CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from gateway.campaigns.service import CampaignService
from gateway.store.campaign_base import CampaignRecord
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_campaigns import SqliteCampaignStore

CAMPAIGN = "bench-campaign"
START = 1_800_000_000.0
DAY = 86400.0
ERRORS = {
    "undeliverable": ("stat:UNDELIV err:001", "stat:UNDELIV err:011"),
    "expired": ("stat:EXPIRED err:027",),
    "rejected": ("stat:REJECTD err:013", "ESME_RINVDSTADR"),
}


def fill(path: Path, messages: int, others: int, seed: int = 1) -> None:
    """The rows, written straight with sqlite3 (the store's schema, made by open())."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    message_rows: list[tuple[Any, ...]] = []
    part_rows: list[tuple[Any, ...]] = []
    mos: list[tuple[Any, ...]] = []
    clicks: list[tuple[Any, ...]] = []

    def flush() -> None:
        conn.executemany(
            "INSERT INTO messages(id, account, sender, dest, text, encoding, parts, carrier,"
            " priority, campaign_id, registered_delivery, status, created_at, updated_at, error)"
            " VALUES (?, 'bench', '36180', ?, 'Spring sale', 'gsm7', 1, 'sim', 0, ?, 1, ?, ?,"
            " ?, ?)",
            message_rows,
        )
        conn.executemany(
            "INSERT INTO parts(message_id, part, status, attempts, carrier, submitted_at)"
            " VALUES (?, 1, ?, 1, 'sim', ?)",
            part_rows,
        )
        message_rows.clear()
        part_rows.clear()

    for n in range(messages + others):
        ours = n < messages
        campaign = CAMPAIGN if ours else f"other-{n % 7}"
        dest = f"+336{n:08d}"
        created = START + rng.random() ** 3 * 10 * DAY  # most in the first hours
        submitted: float | None = created + rng.random()
        roll = rng.random()
        if roll < 0.70:
            status, error = "delivered", None
        elif roll < 0.98:
            status = rng.choice(("undeliverable", "undeliverable", "expired", "rejected"))
            error = rng.choice(ERRORS[status])
        else:
            status, error, submitted = "rejected", "ESME_RINVDSTADR", None
        updated = (submitted or created) + rng.uniform(1, 600)
        message_id = f"{n:026x}"
        message_rows.append((message_id, dest, campaign, status, created, updated, error))
        part_rows.append((message_id, status, submitted))
        if ours and submitted is not None:
            if rng.random() < 0.10:
                text, actions = "YES", "[]"
                if rng.random() < 0.1:
                    text, actions = "STOP", json.dumps([{"type": "opt_out", "ok": True}])
                at = updated + rng.expovariate(1 / 3600)
                mos.append((dest, text, at, at, campaign, actions))
            if rng.random() < 0.15:
                at = updated + rng.expovariate(1 / 1800)
                for k in range(1 + (rng.random() < 0.33)):
                    clicks.append((f"c{n}", campaign, dest, at + k * 60, "Mozilla/5.0", 0))
                if rng.random() < 0.3:
                    clicks.append((f"c{n}", campaign, dest, at - 1, "WhatsApp/2", 1))
        if len(message_rows) >= 50_000:
            flush()
    flush()
    conn.executemany(
        "INSERT INTO interactions(carrier, source, destination, text, data_coding, parts,"
        " parts_received, received_at, completed_at, state, keyword, campaign_id, actions,"
        " processed_at) VALUES ('sim', ?, '36180', ?, 0, 1, 1, ?, ?, 'done', NULL, ?, ?, NULL)",
        mos,
    )
    conn.executemany(
        "INSERT INTO link_clicks(code, campaign_id, number, at, user_agent, bot)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        clicks,
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    print(f"  {messages:,} messages (+{others:,} others), {len(mos):,} replies, {len(clicks):,}")


async def timed(label: str, runs: int, fn: Callable[[], Awaitable[Any]]) -> None:
    """Wall-clock and CPU seconds (this process: SQLite runs on the store's threads in it);
    the machine may be shared, and CPU time suffers less from a neighbour."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        await fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(
        f"  {label:<40} wall best {min(wall):6.3f} s median {statistics.median(wall):6.3f} s"
        f"   CPU best {min(cpu):6.3f} s"
    )


async def main(messages: int, others: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stats.db"
        store = SqliteStore(path, synchronous="normal")
        await store.open()
        campaigns = SqliteCampaignStore(store.db)
        await campaigns.open()
        await store.close()
        t0 = time.perf_counter()
        fill(path, messages, others)
        print(f"  written in {time.perf_counter() - t0:.1f} s")
        store = SqliteStore(path, synchronous="normal")
        await store.open()
        campaigns = SqliteCampaignStore(store.db)
        await campaigns.open()
        record = CampaignRecord(
            id=CAMPAIGN,
            name="bench",
            sender="36180",
            text="Spring sale",
            spec={"lists": [1]},
            status="done",
            created_at=START,
            started_at=START,
            recipients=messages,
            handled=messages,
        )
        await campaigns.save_campaign(record)
        # Only .store and .reports are read by stats(); the runner is asked for its quiet hours.
        runner = cast(Any, SimpleNamespace(quiet_hours=None))
        service = CampaignService(campaigns, runner, cast(Any, None), time.time, reports=store)
        try:
            await store.campaign_counts(CAMPAIGN, START, math.inf)  # warm the cache
            await timed(
                "campaign_counts (since the start)",
                runs,
                lambda: store.campaign_counts(CAMPAIGN, START, math.inf),
            )
            series = getattr(store, "campaign_series", None)
            if series is not None:
                from gateway.store.base import Periods

                axes = [
                    Periods(START, math.inf, 1),
                    Periods(START, 3600.0, 24),
                    Periods(START, DAY, 10),
                ]
                await timed(
                    "campaign_series (whole, 24 h, 10 days)", runs, lambda: series(CAMPAIGN, axes)
                )
            await timed("stats (the whole document)", runs, lambda: service.stats(record))
        finally:
            await store.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--others", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.others, args.runs))


if __name__ == "__main__":
    cli()
