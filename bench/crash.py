"""Crash test: the daemon killed with SIGKILL at random points while it sends, and restarted.

    .venv/bin/python -m bench.crash                              # 100,000 messages, 20 kills
    .venv/bin/python -m bench.crash --messages 3000 --kills 5    # the size CI runs

The simulator and the gateway run as separate processes (``python -m smsc_simulator.cli``
and ``python -m gateway run``) on 127.0.0.1, ports picked by the kernel, configuration
and the SQLite file in a temp dir. A client posts every message in batches, each with its own
``Idempotency-Key``; a batch whose answer was lost to a kill is posted again, with the same
key, to the restarted daemon, as a production client would (so "accepted" means: a 202 was
read). Meanwhile the gateway's process group gets SIGKILL each time the simulator's
submit_sm count passes one of ``kills`` random thresholds (so every kill lands mid-send,
with submits and receipts in flight); the last kill comes once every message has reached
the carrier, while receipts are still on their way (``receipt_delay``), so receipts arrive
at a daemon that was restarted after their submit. After the last restart the run waits
until every message is final, stops the gateway with SIGTERM and checks, from the
simulator's ring buffer (one entry per submit_sm it accepted, keyed by our destination,
which is unique per message) and from the gateway's SQLite file (read-only):

- lost: accepted messages that are not ``delivered`` or that the carrier never saw (must be 0);
- duplicates: extra submit_sm per message; each duplicated message must carry
  ``possible_duplicate``, and their number is bounded by window x binds per kill;
- unmatched receipts: every receipt for an id the gateway learned correlates, after a
  restart too; the only receipts left unmatched are those of a duplicate's lost first
  submit (its submit_sm_resp died with the process), so at most one per duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.configs import GatewaySettings, SimulatorSettings, write_gateway
from bench.lab import READY_TIMEOUT, destination, start_simulator
from bench.procs import GATEWAY_CPU, ProcessSet

SENDER = "CRASH"


@dataclass(frozen=True)
class CrashOptions:
    messages: int = 100_000
    kills: int = 20
    batch: int = 500
    binds: int = 2
    window: int = 100
    """Per bind: what can be in flight at a kill, so the bound on duplicates per kill is
    window x binds."""
    receipt_delay: float = 0.5
    seed: int | None = None
    synchronous: str = "normal"
    """SIGKILL kills the process, not the machine: WAL with synchronous=normal loses nothing
    then (``full`` matters for power loss only), and it keeps the run short."""
    timeout: float = 600.0
    """Seconds for the whole run before it gives up."""


@dataclass
class CrashReport:
    messages: int
    accepted: int = 0
    kills: int = 0
    restarts: int = 0
    lost: int = 0
    not_delivered: dict[str, int] = field(default_factory=dict)
    never_submitted: int = 0
    duplicates: int = 0
    """Extra submit_sm the carrier accepted, over every message."""
    duplicated_messages: int = 0
    unflagged_duplicates: int = 0
    """Duplicated messages without possible_duplicate (must be 0)."""
    flagged: int = 0
    submitting_at_kills: list[int] = field(default_factory=list)
    """Parts 'submitting' in the file right after each kill: what the restart flags."""
    duplicate_bound: int = 0
    unmatched_receipts: int = 0
    receipts_pending_at_last_kill: int = 0
    batches_retried: int = 0
    seconds: float = 0.0
    seed: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.accepted == self.messages
            and self.lost == 0
            and self.unflagged_duplicates == 0
            and self.duplicates <= self.duplicate_bound
            # A receipt for a submit whose response was lost to a kill names a carrier id
            # the gateway never learned: at most one such receipt per duplicate.
            and self.unmatched_receipts <= self.duplicates
        )


class _Daemon:
    """The gateway process, restarted from the same configuration and data dir."""

    def __init__(self, procs: ProcessSet, config: Path) -> None:
        self.procs = procs
        self.config = config
        self.url = ""
        self.generation = 0
        self.proc: Any = None

    def start(self) -> None:
        self.generation += 1
        self.proc = self.procs.spawn_python(
            f"gateway-{self.generation}",
            ["-m", "gateway", "run", "--config", str(self.config)],
            GATEWAY_CPU,
        )
        match = self.proc.wait_for(r"daemon\.started http=[^\s:]+:(\d+)", READY_TIMEOUT)
        self.url = f"http://127.0.0.1:{match.group(1)}"

    def kill(self) -> None:
        import signal

        self.url = ""
        self.procs.stop(self.proc, grace=5.0, signum=signal.SIGKILL)


async def _json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def run_crash(tmp: Path, options: CrashOptions) -> CrashReport:
    seed = options.seed if options.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    report = CrashReport(messages=options.messages, seed=seed)
    started = time.monotonic()
    procs = ProcessSet(tmp, pin=False)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        sim = start_simulator(
            procs,
            tmp / "sim",
            SimulatorSettings(
                receipt_delay=options.receipt_delay,
                keep=options.messages * 2 + 1000,
                log_level="warning",
            ),
        )
        files = write_gateway(
            tmp / "gw",
            GatewaySettings(
                smsc_port=sim.smpp_port,
                binds=options.binds,
                window=options.window,
                synchronous=options.synchronous,
                log_level="info",  # the ready line (daemon.started) is at info
            ),
        )
        auth = {"Authorization": f"Bearer {files.token}"}
        daemon = _Daemon(procs, files.config)
        await asyncio.to_thread(daemon.start)
        await asyncio.wait_for(
            _run(http, sim.url, daemon, auth, options, rng, report), options.timeout
        )
        await asyncio.to_thread(procs.stop, daemon.proc)
        _check(files.db_path, await _sim_counts(http, sim.url, options), options, report)
        report.duplicate_bound = options.window * options.binds * max(report.kills, 1)
    finally:
        await http.close()
        await asyncio.to_thread(procs.stop_all)
    report.seconds = round(time.monotonic() - started, 1)
    return report


async def _run(
    http: aiohttp.ClientSession,
    sim_url: str,
    daemon: _Daemon,
    auth: dict[str, str],
    options: CrashOptions,
    rng: random.Random,
    report: CrashReport,
) -> None:
    n = options.messages
    # Kills mid-send at random submit counts; the last one after every submit, with
    # receipts still due.
    thresholds = sorted(rng.randrange(1, n) for _ in range(max(options.kills - 1, 0)))
    if options.kills:
        thresholds.append(n)
    up = asyncio.Event()
    up.set()
    accepted: list[int] = []

    async def post(first: int) -> None:
        count = min(options.batch, n - first)
        body = {
            "messages": [
                {"to": destination(i), "from": SENDER, "text": f"crash test {i}"}
                for i in range(first, first + count)
            ]
        }
        headers = {**auth, "Idempotency-Key": f"crash-{first}"}
        tries = 0
        while True:
            await up.wait()
            url = daemon.url
            try:
                async with http.post(url + "/v1/messages/batch", json=body, headers=headers) as r:
                    if r.status == 202:
                        answer = await r.json()
                        accepted.append(len(answer["messages"]))
                        return
                    text = await r.text()
                    if r.status < 500:
                        raise RuntimeError(f"batch refused: {r.status} {text[:300]}")
            except (TimeoutError, aiohttp.ClientError):
                pass
            tries += 1
            report.batches_retried += tries == 1
            await asyncio.sleep(0.05)

    async def poster() -> None:
        queue = list(range(0, n, options.batch))

        async def worker() -> None:
            while queue:
                await post(queue.pop(0))

        await asyncio.gather(*(worker() for _ in range(2)))

    async def killer() -> None:
        for threshold in thresholds:
            while True:
                stats = await _json(http, sim_url + "/v1/stats")
                if int(stats["submit_sm_by_status"].get("ESME_ROK", 0)) >= threshold:
                    break
                await asyncio.sleep(0.01)
            if threshold == n:
                # Let the last submits be answered; kill before their receipts are in.
                while True:
                    stats = await _json(http, sim_url + "/v1/stats")
                    ok = int(stats["deliver_sm_resp_by_status"].get("ESME_ROK", 0))
                    report.receipts_pending_at_last_kill = int(stats["receipts_scheduled"]) - ok
                    if report.receipts_pending_at_last_kill > 0 or ok >= n:
                        break
                    await asyncio.sleep(0.01)
            up.clear()
            await asyncio.to_thread(daemon.kill)
            report.kills += 1
            report.submitting_at_kills.append(await asyncio.to_thread(_submitting, daemon))
            await asyncio.sleep(rng.uniform(0.0, 0.2))
            await asyncio.to_thread(daemon.start)
            report.restarts += 1
            up.set()

    await asyncio.gather(poster(), killer())
    report.accepted = sum(accepted)
    await _wait_final(daemon, n)


async def _wait_final(daemon: _Daemon, n: int) -> None:
    db = daemon.config.parent / "data" / "smsgw.db"
    while True:
        counts = await asyncio.to_thread(_status_counts, db)
        if sum(counts.get(s, 0) for s in _FINAL) >= n:
            return
        await asyncio.sleep(0.1)


def _submitting(daemon: _Daemon) -> int:
    """Parts begun and not answered in the file of a daemon just killed."""
    db = daemon.config.parent / "data" / "smsgw.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT count(*) FROM parts WHERE status = 'submitting'").fetchone()
    finally:
        conn.close()
    return int(row[0])


_FINAL = ("delivered", "undeliverable", "expired", "rejected", "failed")


def _status_counts(db_path: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall()
    finally:
        db.close()
    return {str(s): int(c) for s, c in rows}


async def _sim_counts(
    http: aiohttp.ClientSession, sim_url: str, options: CrashOptions
) -> Counter[str]:
    limit = options.messages * 2 + 1000
    answer = await _json(http, f"{sim_url}/v1/messages?limit={limit}")
    return Counter(m["destination"] for m in answer["messages"])


def _check(
    db_path: Path, submits: Counter[str], options: CrashOptions, report: CrashReport
) -> None:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT dest, status, possible_duplicate FROM messages").fetchall()
        unmatched = db.execute("SELECT count(*) FROM receipts WHERE message_id IS NULL").fetchone()[
            0
        ]
    finally:
        db.close()
    not_delivered: Counter[str] = Counter()
    seen = set()
    for to, status, flagged in rows:
        number = str(to).lstrip("+")
        seen.add(number)
        count = submits.get(number, 0)
        if status != "delivered":
            not_delivered[str(status)] += 1
        if count == 0:
            report.never_submitted += 1
        if count > 1:
            report.duplicates += count - 1
            report.duplicated_messages += 1
            if not flagged:
                report.unflagged_duplicates += 1
        report.flagged += bool(flagged)
    expected = {destination(i).lstrip("+") for i in range(options.messages)}
    missing = len(expected - seen)
    report.not_delivered = dict(not_delivered)
    report.lost = missing + sum(not_delivered.values()) + report.never_submitted
    report.unmatched_receipts = int(unmatched)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__)
    defaults = CrashOptions()
    parser.add_argument("--messages", type=int, default=defaults.messages)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--binds", type=int, default=defaults.binds)
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--synchronous", default=defaults.synchronous)
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    options = CrashOptions(
        messages=args.messages,
        kills=args.kills,
        batch=args.batch,
        binds=args.binds,
        window=args.window,
        seed=args.seed,
        synchronous=args.synchronous,
    )
    with tempfile.TemporaryDirectory(prefix="smsgw-crash-") as tmp:
        report = asyncio.run(run_crash(Path(tmp), options))
    print(f"messages accepted      {report.accepted} of {report.messages}")
    print(f"kills survived         {report.kills} (restarts {report.restarts})")
    print(f"lost                   {report.lost}")
    print(
        f"duplicates seen        {report.duplicates} extra submit_sm over "
        f"{report.duplicated_messages} messages (bound {report.duplicate_bound}; "
        f"unflagged {report.unflagged_duplicates}; flagged possible_duplicate {report.flagged})"
    )
    at_kills = report.submitting_at_kills
    if at_kills:
        print(
            f"submitting at kills    max {max(at_kills)}, mean {sum(at_kills) / len(at_kills):.0f}"
            f" (window x binds = {args.window * args.binds})"
        )
    print(
        f"unmatched receipts     {report.unmatched_receipts} "
        f"(receipts pending at the last kill: {report.receipts_pending_at_last_kill})"
    )
    print(f"seconds                {report.seconds} (seed {report.seed})")
    print("result                 " + ("OK" if report.ok else "FAILED"))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
