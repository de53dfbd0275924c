"""The MO side alone: the inbound service over a real store, no sockets, no dispatcher.

    .venv/bin/python -m bench.bench_inbound_path [N] [burst] [full|normal] [batch|pdu]

Feeds N single-part MOs (``YES please``, each from its own sender, the rule of
``bench.inbound``) in bursts of ``burst`` (the MOs one read off a socket brings) to
``InboundService.handle_pdus``, one call per burst, as the daemon's receipt handler does
(``pdu``: to ``handle_pdu``, one call per MO, as it did before), waits until every one is
handled (logged, matched, its reply accepted in the store, the interaction done) and prints
MO/s (wall) and CPU microseconds per MO (every thread of this process, so SQLite's work on
aiosqlite's threads is included). The reply's own MT path (submit_sm, response, receipt) is
not in it: that is ``bench.bench_store_path``. Bursts are fed while earlier ones are being
handled, as the binds do.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from bench.configs import GatewaySettings, write_gateway
from bench.inbound import INBOUND_TOML, KEYWORD, NUMBER
from gateway.config import load_config
from gateway.core.intake import Intake
from gateway.core.model import NewMessage
from gateway.core.routing import Router
from gateway.inbound.service import InboundService
from gateway.smpp.pdu import DeliverSm
from gateway.store.sqlite import SqliteStore


class Sink:
    """The dispatcher's place: counts the replies handed over."""

    def __init__(self) -> None:
        self.replies = 0

    def enqueue(self, messages: Sequence[NewMessage], begun: Collection[str] = ()) -> None:
        self.replies += len(messages)

    def reserve(self, messages: Sequence[NewMessage]) -> set[str]:
        """Every reply leaves at once, as with a bind with room: committed begun."""
        return {m.id for m in messages}

    def release(self, messages: Sequence[NewMessage], reserved: Collection[str]) -> None:
        pass

    def carriers_up(self) -> set[str]:
        return {"sim"}

    def opt_out(self, number: str, sender: str | None) -> None:
        pass


async def run(count: int, burst: int, synchronous: str, batch: bool = True) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = write_gateway(
            Path(tmp),
            GatewaySettings(smsc_port=2775, synchronous=synchronous, extra_toml=INBOUND_TOML),
        )
        config = load_config(files.config)
        store = SqliteStore(files.db_path, synchronous)
        await store.open()
        router = Router([], [c.name for c in config.carriers])
        sink = Sink()
        service = InboundService(
            config, store, Intake(config.messages, config.carriers, router), sink
        )
        await service.start()
        pdus = [
            DeliverSm(
                source_addr=f"3361{n:07d}",
                source_addr_ton=1,
                destination_addr=NUMBER,
                short_message=f"{KEYWORD} please".encode(),
            )
            for n in range(count)
        ]
        cpu, wall = time.process_time(), time.perf_counter()
        pending: set[asyncio.Future[Any]] = set()
        for start in range(0, count, burst):
            chunk = pdus[start : start + burst]
            if batch:  # one read
                pending.add(asyncio.ensure_future(service.handle_pdus([(p, "sim") for p in chunk])))
            else:
                pending.add(asyncio.gather(*(service.handle_pdu(p, "sim") for p in chunk)))
            await asyncio.sleep(0)  # the loop turns between reads off the socket
            while len(pending) > 8:  # the binds' windows: MOs outstanding are bounded
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.wait(pending)
        await service.stop(drain=600.0)  # returns once every interaction is handled
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await store.close()
        assert sink.replies == count, (sink.replies, count)
        print(
            f"{count:,} MOs in bursts of {burst} ({'handle_pdus' if batch else 'handle_pdu'}),"
            f" synchronous={synchronous}:"
            f" {count / wall:,.0f} MO/s wall, {1e6 * cpu / count:,.0f} us CPU per MO"
        )


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 20_000
    burst = int(argv[1]) if len(argv) > 1 else 50
    synchronous = argv[2] if len(argv) > 2 else "full"
    batch = (argv[3] if len(argv) > 3 else "batch") == "batch"
    asyncio.run(run(count, burst, synchronous, batch))


if __name__ == "__main__":
    main(sys.argv[1:])
