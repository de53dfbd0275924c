"""How fast is smsc-sim? submit_sm/s and receipts/s from a lean ESME on N connections.

    .venv/bin/python bench/bench_simulator.py                 # 100,000 messages, 4 binds
    .venv/bin/python bench/bench_simulator.py -n 200000 -c 8 --window 2000
    .venv/bin/python bench/bench_simulator.py --profile /tmp/sim.prof   # cProfile the sim

The simulator runs in a subprocess (uvloop, port 0, the port read from its ready line), so
the figures are the simulator's, not the driver's: the driver is built on gateway.smpp but
keeps its per-message cost far below the simulator's. It encodes one submit_sm with
``encode`` and joins the sequence number between its two halves for each copy; it cuts its
input with ``struct.unpack_from`` and reads only headers; it answers deliver_sm with a
deliver_sm_resp packed from ``encode``'s body. Submits are pipelined up to ``--window``
per connection.

Two runs: receipts off (registered_delivery 0: submit_sm -> submit_sm_resp only) and
receipts on (registered_delivery 1, receipt delay 0: every message also costs the
simulator a deliver_sm out and a deliver_sm_resp in).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.smpp.constants import CommandId
from gateway.smpp.pdu import (
    BindTransceiver,
    DeliverSmResp,
    SubmitSm,
    encode,
)

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
[smpp]
host = "127.0.0.1"
port = 0
enquire_link_interval = 300.0
response_timeout = 60.0
bind_timeout = 30.0

[control]
host = "127.0.0.1"
port = 0

[log]
level = "warning"
format = "text"

[messages]
keep = 1000

[[accounts]]
system_id = "bench"
password = "bench"
max_binds = 64
deliver_window = {deliver_window}

[accounts.receipts.delay]
distribution = "fixed"
seconds = 0.0
"""

_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_BIND_RESP = int(CommandId.BIND_TRANSCEIVER_RESP)
_SEQ = struct.Struct(">I")
_HEADER = struct.Struct(">IIII")
_DELIVER_SM_RESP_ID = int(CommandId.DELIVER_SM_RESP)
_DELIVER_SM_RESP_BODY = encode(DeliverSmResp(sequence_number=0))[16:]


@dataclass
class Totals:
    target: int
    sent: int = 0
    responses: int = 0
    ok: int = 0
    receipts: int = 0
    first_sent: float = 0.0
    responses_done: float = 0.0
    receipts_done: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    responses_complete: asyncio.Event = field(default_factory=asyncio.Event)
    receipts_complete: asyncio.Event = field(default_factory=asyncio.Event)


class LeanEsme(asyncio.Protocol):
    """One bound transceiver pushing pre-encoded submit_sm through a window."""

    def __init__(self, template: bytes, window: int, totals: Totals, receipts: bool) -> None:
        self.template = template
        self.window = window
        self.totals = totals
        self.receipts = receipts
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.in_flight = 0
        self.seq = 1
        self.started = False
        """No submit_sm before ``start()``: the clock starts there (the bind_resp must not
        already release a window's worth)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.bind()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.bound.done():
            self.bound.set_exception(ConnectionError(f"connection lost: {exc}"))

    def bind(self) -> None:
        assert self.transport is not None
        pdu = BindTransceiver(sequence_number=self._next_seq(), system_id="bench", password="bench")
        self.transport.write(encode(pdu))

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = seq + 1
        return seq

    def pump(self, out: list[bytes]) -> None:
        if not self.started:
            return
        totals = self.totals
        room = min(self.window - self.in_flight, totals.target - totals.sent)
        if room <= 0:
            return
        head = self.template[:12]
        tail = self.template[16:]
        pack = _SEQ.pack
        seq = self.seq
        out.extend([head + pack(s) + tail for s in range(seq, seq + room)])
        self.seq = seq + room
        self.in_flight += room
        totals.sent += room

    def start(self) -> None:
        self.started = True
        out: list[bytes] = []
        self.pump(out)
        assert self.transport is not None
        self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        # Frames cut by hand (headers only, no copy per frame): the driver must stay far
        # cheaper per message than the simulator it measures.
        if self.buffer:
            data = self.buffer + data
        totals = self.totals
        out: list[bytes] = []
        unpack = _HEADER.unpack_from
        pack_resp = _HEADER.pack
        resp_body = _DELIVER_SM_RESP_BODY
        resp_length = 16 + len(resp_body)
        total = len(data)
        pos = 0
        responses = ok = receipts = 0
        while total - pos >= 16:
            length, command_id, status, seq = unpack(data, pos)
            if length < 16:
                raise ConnectionError(f"command_length {length} from the simulator")
            if total - pos < length:
                break
            pos += length
            if command_id == _SUBMIT_SM_RESP:
                responses += 1
                if status == 0:
                    ok += 1
                else:
                    totals.statuses[status] = totals.statuses.get(status, 0) + 1
            elif command_id == _DELIVER_SM:
                out.append(pack_resp(resp_length, _DELIVER_SM_RESP_ID, 0, seq) + resp_body)
                receipts += 1
            elif command_id == _BIND_RESP:
                if not self.bound.done():
                    self.bound.set_result(status)
        self.buffer = data[pos:] if pos < total else b""
        now = 0.0
        if responses:
            self.in_flight -= responses
            totals.responses += responses
            totals.ok += ok
            if totals.responses >= totals.target and not totals.responses_complete.is_set():
                now = time.perf_counter()
                totals.responses_done = now
                totals.responses_complete.set()
        if receipts:
            totals.receipts += receipts
            if totals.receipts >= totals.target and not totals.receipts_complete.is_set():
                totals.receipts_done = now or time.perf_counter()
                totals.receipts_complete.set()
        self.pump(out)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def run_once(
    port: int, messages: int, connections: int, window: int, receipts: bool
) -> Totals:
    loop = asyncio.get_running_loop()
    template = encode(
        SubmitSm(
            source_addr="BENCH",
            source_addr_ton=5,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="491511234567",
            registered_delivery=1 if receipts else 0,
            short_message=b"Benchmark message: the quick brown fox jumps over the lazy dog",
        )
    )
    totals = Totals(target=messages)
    clients: list[LeanEsme] = []
    for _ in range(connections):
        _transport, client = await loop.create_connection(
            lambda: LeanEsme(template, window, totals, receipts), "127.0.0.1", port
        )
        clients.append(client)
    for client in clients:
        status = await asyncio.wait_for(client.bound, 10)
        if status != 0:
            raise SystemExit(f"bind refused: 0x{status:08x}")
    totals.first_sent = time.perf_counter()
    for client in clients:
        client.start()
    await asyncio.wait_for(totals.responses_complete.wait(), 300)
    if receipts:
        await asyncio.wait_for(totals.receipts_complete.wait(), 300)
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    return totals


async def fetch_stats(control_port: int) -> dict[str, object]:
    reader, writer = await asyncio.open_connection("127.0.0.1", control_port)
    writer.write(b"GET /v1/stats HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    body = raw.split(b"\r\n\r\n", 1)[1]
    stats: dict[str, object] = json.loads(body)
    return stats


def start_simulator(
    config_path: Path, profile: str | None
) -> tuple[subprocess.Popen[str], int, int]:
    command = [sys.executable]
    if profile:
        command += ["-m", "cProfile", "-o", profile]
    command += ["-m", "smsc_simulator.cli", "--config", str(config_path)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"smpp_port=(\d+) .*control_port=(\d+)", line)
    if match is None:
        process.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return process, int(match.group(1)), int(match.group(2))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), or 0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(label: str, totals: Totals, receipts: bool, cpu: float) -> None:
    elapsed = totals.responses_done - totals.first_sent
    print(
        f"{label:<13} {totals.target:>8} submit_sm in {elapsed:6.2f} s "
        f"= {totals.target / elapsed:>9,.0f} submit_sm/s "
        f"(ROK {totals.ok}, other {totals.statuses})"
    )
    if receipts:
        elapsed_r = totals.receipts_done - totals.first_sent
        print(
            f"{'':<13} {totals.receipts:>8} receipts  in {elapsed_r:6.2f} s "
            f"= {totals.receipts / elapsed_r:>9,.0f} receipts/s"
        )
    if cpu:
        per_message = cpu / totals.target * 1e6
        print(
            f"{'':<13} simulator CPU {cpu:6.2f} s = {per_message:5.1f} us per message "
            f"(a free core would give {totals.target / cpu:,.0f} msg/s)"
        )


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "bench-simulator.toml"
        config_path.write_text(CONFIG.format(deliver_window=args.deliver_window))
        process, smpp_port, control_port = start_simulator(config_path, args.profile)
        try:
            print(
                f"smsc-sim pid {process.pid} on port {smpp_port}; {args.messages:,} messages, "
                f"{args.connections} connections, window {args.window}, "
                f"deliver_window {args.deliver_window}"
            )
            runs = [("receipts off", False), ("receipts on", True)]
            if args.only == "off":
                runs = runs[:1]
            elif args.only == "on":
                runs = runs[1:]
            for label, receipts in runs:
                cpu_before = cpu_seconds(process.pid)
                totals = await run_once(
                    smpp_port, args.messages, args.connections, args.window, receipts
                )
                report(label, totals, receipts, cpu_seconds(process.pid) - cpu_before)
            stats = await fetch_stats(control_port)
            keys = ("submit_sm", "submit_sm_by_status", "receipts_sent", "receipts_pending")
            print("simulator stats:", {k: stats.get(k) for k in keys})
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if args.profile:
        import pstats

        print(f"\ncProfile of the simulator ({args.profile}), top 25 by internal time:")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=100_000)
    parser.add_argument("-c", "--connections", type=int, default=4)
    parser.add_argument("--window", type=int, default=1000, help="submit_sm in flight per bind")
    parser.add_argument(
        "--deliver-window", type=int, default=1000, help="the simulator's deliver_sm window"
    )
    parser.add_argument("--only", choices=("on", "off"), help="run only receipts on or off")
    parser.add_argument("--profile", metavar="PATH", help="run the simulator under cProfile")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
