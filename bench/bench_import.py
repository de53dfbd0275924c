"""The contact import alone: ``python -m bench.bench_import [rows] [--profile out.txt]``.

Writes a CSV like the campaign_fanout scenario's (``number,name,city``, distinct valid German
mobile numbers) to a temp dir, then drives :class:`gateway.campaigns.imports.Importer` on a
real SQLite store in this process, as the daemon does after the upload: no HTTP, no
simulator. Prints the wall time, this process's CPU seconds (all threads: the parse worker
and SQLite's writer thread included) and its peak RSS. ``--spool-only`` also times the copy
of the file into the spool (the upload's part on the gateway side, without the network).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import resource
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench.campaign import write_csv
from gateway.campaigns.imports import Importer
from gateway.core import validation as check
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_campaigns import SqliteCampaignStore

READ_CHUNK = 1 << 16  # what the API reads per chunk (gateway.http.campaigns.READ_CHUNK)


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            yield chunk


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(rows: int, tmp: Path, synchronous: str) -> dict[str, float]:
    csv = tmp / "contacts.csv"
    write_csv(csv, rows)
    store = SqliteStore(tmp / "gateway.db", synchronous)
    await store.open()
    campaigns = SqliteCampaignStore(store.db)
    await campaigns.open()
    ids = itertools.count()
    importer = Importer(
        campaigns,
        check.Numbers("", cache_size=1024),
        time.time,
        lambda: f"imp{next(ids)}",
        str(tmp),
    )
    listed = await campaigns.create_list("bench", time.time())
    cpu0, wall0 = _cpu(), time.monotonic()
    job = await importer.begin(listed.id, _chunks(csv), "import")
    cpu_spool, wall_spool = _cpu() - cpu0, time.monotonic() - wall0
    await importer.wait()
    wall, cpu = time.monotonic() - wall0, _cpu() - cpu0
    done = await campaigns.get_import(job.id)
    assert done is not None
    if done.status != "done" or done.imported != rows:
        raise RuntimeError(f"import {done.status}: {done.imported} of {rows}, {done.failure}")
    await store.close()
    return {
        "rows": rows,
        "wall_s": wall,
        "cpu_s": cpu,
        "spool_wall_s": wall_spool,
        "spool_cpu_s": cpu_spool,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rows", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--synchronous", default="full", choices=("full", "normal"))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(run(options.rows, Path(tmp), options.synchronous))
    print(
        f"{figures['rows']:,} rows: {figures['wall_s']:.2f} s wall, {figures['cpu_s']:.2f} s CPU"
        f" (spool {figures['spool_wall_s']:.2f} s wall, {figures['spool_cpu_s']:.2f} s CPU),"
        f" peak RSS {figures['peak_rss_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
