"""The engine on the real SQLite store, against FakeSmsc and against the bundled simulator.

Everything runs on 127.0.0.1 with port 0 and a database under pytest's tmp_path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.app.daemon import bind_settings
from gateway.binds import CarrierBind, RefusingListener
from gateway.config import CarrierConfig, RetryRule
from gateway.core.model import NewMessage
from gateway.core.routing import Router
from gateway.engine.callbacks import CallbackSender
from gateway.engine.dispatcher import Dispatcher
from gateway.smpp.constants import Status
from gateway.smpp.pdu import SubmitSm
from gateway.smpp.receipt import IdForm
from gateway.store.sqlite import SqliteStore
from smsc_simulator.config import (
    AccountConfig,
    ControlConfig,
    DelayConfig,
    LogConfig,
    MessagesConfig,
    ReceiptsConfig,
    SimulatorConfig,
    SmppConfig,
)
from smsc_simulator.faults import Faults
from smsc_simulator.server import Simulator
from tests.e2e_helpers import eventually
from tests.fakes import LOOPBACK_RECEIVERS, FakeSmsc, new_message
from tests.store_helpers import held_receipts, status_counts
from tests.test_engine_dispatcher import FAST_RETRY, carrier, gateway_config, messages


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "gw.db", synchronous="full")
    await s.open()
    yield s
    await s.close()


@dataclasses.dataclass
class Engine:
    dispatcher: Dispatcher
    binds: list[CarrierBind]

    async def stop(self, drain: float = 1.0) -> None:
        await self.dispatcher.stop(drain=drain)
        await asyncio.gather(*(b.stop(drain=drain) for b in self.binds))


async def start_engine(
    store: SqliteStore,
    port: int,
    cfg: CarrierConfig | None = None,
    retry: Sequence[RetryRule] = FAST_RETRY,
    **kw: Any,
) -> Engine:
    cfg = dataclasses.replace(cfg or carrier(), port=port)
    config = gateway_config([cfg], retry)
    binds = [CarrierBind(s, RefusingListener()) for s in bind_settings(cfg)]
    dispatcher = Dispatcher(config, store, binds, Router([], [cfg.name]), **kw)
    await dispatcher.start()
    for b in binds:
        b.start()
    await asyncio.wait_for(asyncio.gather(*(b.became_bound.wait() for b in binds)), 5)
    return Engine(dispatcher, binds)


@contextlib.asynccontextmanager
async def engine(
    store: SqliteStore,
    port: int,
    cfg: CarrierConfig | None = None,
    retry: Sequence[RetryRule] = FAST_RETRY,
    **kw: Any,
) -> AsyncIterator[Engine]:
    e = await start_engine(store, port, cfg, retry, **kw)
    try:
        yield e
    finally:
        await e.stop()


async def send(store: SqliteStore, d: Dispatcher, batch: Sequence[NewMessage]) -> None:
    await store.accept(batch)
    d.enqueue(batch)


async def until(
    store: SqliteStore, expected: dict[str, int], within: float = 15.0, step: float = 0.02
) -> None:
    """Until status_counts() equals ``expected`` (SQLite has no change event to await)."""
    deadline = time.monotonic() + within
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = await status_counts(store)
        if counts == expected:
            return
        await asyncio.sleep(step)
    raise AssertionError(f"status counts {counts}, expected {expected}")


@pytest.mark.parametrize("before", [False, True], ids=["after-response", "before-response"])
async def test_receipts_correlate_on_sqlite(store: SqliteStore, before: bool) -> None:
    smsc = FakeSmsc(
        receipts=True, id_base="hex", receipt_base="decimal", receipt_before_response=before
    )
    await smsc.start()
    try:
        cfg = carrier(message_id_form=IdForm.HEX, receipt_id_form=IdForm.DECIMAL, window=20)
        async with engine(store, smsc.port, cfg) as e:
            batch = messages(100)
            await send(store, e.dispatcher, batch)
            await until(store, {"delivered": 100})
            assert await held_receipts(store) == []
            view = await store.get_message(batch[0].id)
            assert view is not None and view.parts[0].status == "delivered"
            assert view.parts[0].carrier_message_id in {r.message_id for r in smsc.received}
    finally:
        await smsc.stop()


async def test_a_restart_in_the_middle_of_a_send_loses_nothing(store: SqliteStore) -> None:
    smsc = FakeSmsc(response_delay=30.0)  # nothing answered before the "crash"
    await smsc.start()
    try:
        first = await start_engine(store, smsc.port)
        batch = messages(30)
        await send(store, first.dispatcher, batch)
        await smsc.wait_until(lambda: len(smsc.received) == 10)  # one window in flight
        await first.stop(drain=0.1)  # answers never came: the parts stay "submitting"
        smsc.response_delay = 0.0
        smsc.drop_links()
        async with engine(store, smsc.port) as second:
            await until(store, {"submitted": 30})
            assert second.dispatcher.stats.submitted == 30
        dupes = [(await store.get_message(m.id)) for m in batch]
        flagged = {v.id for v in dupes if v is not None and v.possible_duplicate}
        assert len(flagged) == 10  # exactly the ones in flight at the stop
        assert len(smsc.received) == 40
    finally:
        await smsc.stop()


async def test_retry_after_restart_keeps_its_time(store: SqliteStore) -> None:
    def script(pdu: SubmitSm, n: int) -> int:
        return Status.RX_T_APPN if n == 1 else Status.ROK

    smsc = FakeSmsc(script=script)
    await smsc.start()
    try:
        # A temporary error with a long retry delay, then a restart: the message is sent
        # again at its retry time, not at once, and not forgotten.
        retry = (RetryRule(status="ESME_RX_T_APPN", attempts=5, delay=0.4),)
        async with engine(store, smsc.port, retry=retry) as e:
            one = messages(1)
            await send(store, e.dispatcher, one)
            await until(store, {"queued": 1})
        restarted = time.time()
        async with engine(store, smsc.port, retry=retry):
            await until(store, {"submitted": 1})
        assert len(smsc.received) == 2
        assert smsc.received[1].at - smsc.received[0].at >= 0.35
        assert time.time() - restarted < 2
    finally:
        await smsc.stop()


async def test_callbacks_for_final_statuses_reach_the_client(store: SqliteStore) -> None:
    hits: list[dict[str, Any]] = []
    answers = [500]
    delivered = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        hits.append(await request.json())
        if not answers:
            delivered.set()
        return web.Response(status=answers.pop(0) if answers else 204)

    app = web.Application()
    app.router.add_post("/cb", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/cb"
    smsc = FakeSmsc(receipts=True)
    await smsc.start()
    sender = CallbackSender(store, base_delay=0.05, idle_poll=0.05, policy=LOOPBACK_RECEIVERS)
    await sender.start()
    try:
        async with engine(store, smsc.port, on_changes=sender.notify_changes) as e:
            one = new_message(callback_url=url, client_ref="ref-1")
            await send(store, e.dispatcher, [one])
            await until(store, {"delivered": 1})
            await asyncio.wait_for(delivered.wait(), 5)
        assert len(hits) == 2  # a 500, then the retry that succeeded
        assert hits[1]["id"] == one.id and hits[1]["status"] == "delivered"
        assert hits[1]["client_ref"] == "ref-1" and hits[1]["carrier"] == "alpha"
        # The outbox empties once the sender has recorded the 2xx.
        deadline = time.monotonic() + 5
        while await store.callbacks_due(time.time() + 10, 10):
            assert time.monotonic() < deadline, "callback still in the outbox"
            await asyncio.sleep(0.01)
    finally:
        await sender.stop()
        await smsc.stop()
        await runner.cleanup()


# -- against the bundled simulator --------------------------------------------------------------


def sim_config(**account: Any) -> SimulatorConfig:
    fields: dict[str, Any] = {
        "system_id": "gw",
        "password": "pw",
        "receipts": ReceiptsConfig(delay=DelayConfig(seconds=0.0), id_in_other_base=True),
    }
    fields.update(account)
    return SimulatorConfig(
        smpp=SmppConfig(host="127.0.0.1", port=0),
        control=ControlConfig(host="127.0.0.1", port=0),
        log=LogConfig(level="warning"),
        accounts=(AccountConfig(**fields),),
        messages=MessagesConfig(keep=10),
        seed=3,
    )


@contextlib.asynccontextmanager
async def simulator(config: SimulatorConfig) -> AsyncIterator[Simulator]:
    sim = Simulator(config)
    await sim.start()
    try:
        yield sim
    finally:
        await asyncio.wait_for(sim.stop(), 10)


async def test_a_thousand_messages_a_thousand_receipts_on_the_simulator(
    store: SqliteStore,
) -> None:
    async with simulator(sim_config()) as sim:
        assert sim.smpp_port
        cfg = carrier(
            binds=2,
            window=50,
            message_id_form=IdForm.HEX,
            receipt_id_form=IdForm.DECIMAL,
        )
        sim.set_faults(Faults(receipt_before_response=True))
        async with engine(store, sim.smpp_port, cfg) as e:
            batch = messages(1000, sender="SMSGW")
            started = time.monotonic()
            for i in range(0, 1000, 250):  # as the API would: a few batch commits
                await send(store, e.dispatcher, batch[i : i + 250])
            await until(store, {"delivered": 1000}, within=120)
            elapsed = time.monotonic() - started
            stats = sim.stats

            async def all_answered() -> bool:
                # A receipt is committed before its deliver_sm_resp leaves: the
                # simulator may count the last answers a moment after the store
                # shows every message delivered.
                return sum(stats.deliver_sm_resp_by_status.values()) >= 1000

            await eventually(all_answered, within=30)
            assert stats.submit_sm == 1000
            assert stats.receipts_sent == 1000
            assert stats.deliver_sm_resp_by_status == {0: 1000}
            assert await held_receipts(store) == []
            assert e.dispatcher.receipts.stats.stored == 1000
            print(f"\n1000 messages submitted and delivered in {elapsed:.2f} s")


async def test_simulator_throttling_slows_the_bind_and_loses_nothing(store: SqliteStore) -> None:
    async with simulator(sim_config(tps=150.0)) as sim:
        assert sim.smpp_port
        cfg = carrier(window=20, message_id_form=IdForm.HEX, receipt_id_form=IdForm.DECIMAL)
        async with engine(store, sim.smpp_port, cfg) as e:
            batch = messages(300)
            await send(store, e.dispatcher, batch)
            await until(store, {"delivered": 300}, within=30)
            throttled = sim.stats.submit_sm_by_status.get(0x58, 0)
            assert throttled > 0
            assert sim.stats.submit_sm_by_status[0] == 300
            assert e.dispatcher.stats.throttled == throttled
            assert json.dumps(await status_counts(store)) == json.dumps({"delivered": 300})
