"""Retention under a steady load: the database file stays flat once the retention age is
reached (issue 17.9).

    .venv/bin/python -m bench.retention                         # 1,000 msg/s for 120 s, 20 s kept
    .venv/bin/python -m bench.retention --keep-seconds 0        # the same with nothing deleted
    .venv/bin/python -m bench.retention --rate 2000 --seconds 300 --keep-seconds 60

The simulator and the gateway run as separate processes (bench.lab) with ``[retention]``
ages of ``--keep-seconds`` for messages and idempotency answers (0: nothing deleted) and a
pruning round every ``--interval`` seconds. A client posts batches at ``--rate`` messages a
second, each with its own ``Idempotency-Key``; every ``--sample`` seconds the run prints the
database file's size, the WAL's, the pages on the freelist and the messages in the file
(read-only connection). At the end it prints the size growth over the second half of the
run: flat (a few %) with retention, growing with the load without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.configs import GatewaySettings, SimulatorSettings
from bench.lab import SENDER, TEXT, Client, destination, start_gateway, start_simulator
from bench.procs import ProcessSet

DAY = 86400.0


@dataclass(frozen=True)
class RetentionOptions:
    rate: float = 1000.0
    seconds: float = 120.0
    keep_seconds: float = 20.0
    interval: float = 2.0
    sample: float = 5.0
    batch: int = 100


@dataclass
class Sample:
    t: float
    db_bytes: int
    wal_bytes: int
    freelist_pages: int
    messages: int
    accepted: int


@dataclass
class RetentionReport:
    options: RetentionOptions
    samples: list[Sample] = field(default_factory=list)
    accepted: int = 0
    refused: int = 0

    def growth(self) -> float:
        """Database + WAL size at the end over the size at mid-run, minus 1."""
        if len(self.samples) < 2:
            return 0.0
        mid = self.samples[len(self.samples) // 2]
        end = self.samples[-1]
        base = mid.db_bytes + mid.wal_bytes
        return (end.db_bytes + end.wal_bytes) / base - 1 if base else 0.0


def _read(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        messages = int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        conn.close()
    return free, messages


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def run_retention(tmp: Path, options: RetentionOptions) -> RetentionReport:
    report = RetentionReport(options)
    procs = ProcessSet(tmp, pin=False)
    client = Client()
    try:
        sim = start_simulator(procs, tmp / "sim", SimulatorSettings(log_level="warning"))
        days = options.keep_seconds / DAY
        extra = (
            "[retention]\n"
            f"messages_days = {days!r}\n"
            f"idempotency_days = {days!r}\n"
            f"interval = {options.interval!r}\n"
        )
        gw = start_gateway(
            procs,
            tmp / "gw",
            GatewaySettings(
                smsc_port=sim.smpp_port, binds=2, window=100, synchronous="normal", extra_toml=extra
            ),
        )
        await client.wait_bound(gw)
        db = gw.files.db_path
        wal = db.with_name(db.name + "-wal")
        started = time.monotonic()

        async def post(first: int) -> None:
            body = {
                "messages": [
                    {"to": destination(i), "from": SENDER, "text": TEXT}
                    for i in range(first, first + options.batch)
                ]
            }
            headers = {**gw.auth, "Idempotency-Key": f"retention-{first}"}
            async with client.http.post(
                gw.url + "/v1/messages/batch", json=body, headers=headers
            ) as r:
                if r.status == 202:
                    report.accepted += options.batch
                else:
                    report.refused += options.batch
                await r.read()

        async def load() -> None:
            period = options.batch / options.rate
            pending: set[asyncio.Task[None]] = set()
            n = 0
            while time.monotonic() - started < options.seconds:
                task = asyncio.create_task(post(n * options.batch))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
                delay = started + n * period - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.gather(*pending)

        async def sample() -> None:
            print(
                f"{'t (s)':>6} {'db MB':>8} {'wal MB':>7} {'free pages':>10} {'msgs in db':>10}"
                f" {'accepted':>9}"
            )
            while True:
                free, messages = await asyncio.to_thread(_read, db)
                s = Sample(
                    round(time.monotonic() - started, 1),
                    _size(db),
                    _size(wal),
                    free,
                    messages,
                    report.accepted,
                )
                report.samples.append(s)
                print(
                    f"{s.t:>6.0f} {s.db_bytes / 1e6:>8.1f} {s.wal_bytes / 1e6:>7.1f}"
                    f" {s.freelist_pages:>10} {s.messages:>10} {s.accepted:>9}",
                    flush=True,
                )
                if s.t >= options.seconds:
                    return
                await asyncio.sleep(options.sample)

        await asyncio.gather(load(), sample())
    finally:
        await client.close()
        await asyncio.to_thread(procs.stop_all)
    return report


def main(argv: list[str] | None = None) -> int:
    defaults = RetentionOptions()
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="messages a second")
    parser.add_argument("--seconds", type=float, default=defaults.seconds)
    parser.add_argument(
        "--keep-seconds", type=float, default=defaults.keep_seconds, help="0: keep everything"
    )
    parser.add_argument("--interval", type=float, default=defaults.interval)
    parser.add_argument("--sample", type=float, default=defaults.sample)
    parser.add_argument("--json", type=Path, default=None, help="also write the samples here")
    args = parser.parse_args(argv)
    options = RetentionOptions(
        rate=args.rate,
        seconds=args.seconds,
        keep_seconds=args.keep_seconds,
        interval=args.interval,
        sample=args.sample,
    )
    with tempfile.TemporaryDirectory(prefix="smsgw-retention-") as tmp:
        report = asyncio.run(run_retention(Path(tmp), options))
    last = report.samples[-1] if report.samples else None
    kept = f"{options.keep_seconds:g} s" if options.keep_seconds else "everything (no retention)"
    print(f"rate {options.rate:g} msg/s for {options.seconds:g} s, kept: {kept}")
    print(f"accepted {report.accepted}, refused {report.refused}")
    if last is not None:
        print(
            f"final size {(last.db_bytes + last.wal_bytes) / 1e6:.1f} MB"
            f" ({last.messages} messages in the file);"
            f" growth over the second half: {report.growth() * 100:+.1f} %"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
