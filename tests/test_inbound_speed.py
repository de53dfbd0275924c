"""The inbound fast paths (issue 6) answer exactly as the general ones do."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.errors import FieldError
from gateway.core.intake import Intake
from gateway.core.model import NewMessage
from gateway.engine.receipts import ReceiptHandler
from gateway.inbound.batches import eager
from gateway.inbound.reassembly import Assembly
from gateway.net.deliver import DeliverSmRouter
from gateway.smpp.constants import Status
from gateway.smpp.pdu import DeliverSm, Pdu
from gateway.store.base import NewInteraction
from tests.api_fakes import NOW, carrier, make_config, router_for
from tests.fakes import FakeStore
from tests.test_engine_receipts import StubBind, bind_answered
from tests.test_engine_receipts import carrier as receipt_carrier
from tests.test_inbound import LONG_TEXT, NUMBER, Bench, parts_of
from tests.test_inbound_batch import ALICE, BOB, Spy, mo, settled

_CONFIG = make_config(default_region="FR", carriers=[carrier("alpha"), carrier("beta")])
INTAKE = Intake(_CONFIG.messages, _CONFIG.carriers, router_for(_CONFIG))

NUMBERS = [
    "+33612345678",
    "+4915112345678",
    "0612345678",  # national, FR region
    "36180",  # a short code
    "ACME",  # alphanumeric
    "+999",  # no country code
    "",
    "+33 6 12 34 56 78",
]
TEXTS = [
    "Thanks! You are in. Reply STOP to opt out",
    "",
    "é€ü {x} [y]",
    "Привет",
    "x" * 161,
    "ü" * 900,
    "a" * 1700,
]
REFS = [None, "mo-12", "r" * 65, "r" * 300, "bad\nref"]


def _same(fast: NewMessage | list[FieldError], slow: NewMessage | list[FieldError]) -> None:
    if isinstance(slow, list):
        assert fast == slow
    else:
        assert isinstance(fast, NewMessage), fast
        assert dataclasses.replace(fast, id=slow.id) == slow


@settings(max_examples=400, deadline=None)
@given(
    to=st.sampled_from(NUMBERS),
    sender=st.sampled_from(NUMBERS),
    text=st.sampled_from(TEXTS) | st.text(max_size=200),
    client_ref=st.sampled_from(REFS),
    campaign_id=st.sampled_from(REFS),
    delay=st.sampled_from([0.0, 30.0, 400 * 86400.0]),
    up=st.sampled_from([set(), {"beta"}, {"alpha", "beta"}]),
)
def test_prepare_reply_answers_as_prepare(
    to: str,
    sender: str,
    text: str,
    client_ref: str | None,
    campaign_id: str | None,
    delay: float,
    up: set[str],
) -> None:
    item: dict[str, object] = {"to": to, "from": sender, "text": text}
    if client_ref is not None:
        item["client_ref"] = client_ref
    if campaign_id is not None:
        item["campaign_id"] = campaign_id
    scheduled = NOW + delay if delay > 0 else None
    if scheduled is not None:
        item["scheduled_at"] = scheduled
    slow = INTAKE.prepare(item, account="inbound", now=NOW, up=up)
    fast = INTAKE.prepare_reply(
        to=to,
        sender=sender,
        text=text,
        account="inbound",
        now=NOW,
        up=up,
        client_ref=client_ref,
        campaign_id=campaign_id,
        scheduled_at=scheduled,
    )
    _same(fast, slow)


@pytest.mark.parametrize("to", ["ACME", "36180", "+999"])
def test_prepare_reply_refuses_what_prepare_refuses(to: str) -> None:
    fast = INTAKE.prepare_reply(
        to=to, sender="36180", text="hi", account="inbound", now=NOW, up={"alpha"}
    )
    assert isinstance(fast, list) and [e.path for e in fast] == ["to"]


# -- the MO hook in batches: DeliverSmRouter.mo_batch_handler -> InboundService.handle_pdus --


async def test_the_mos_of_one_turn_go_to_the_batch_handler_in_one_call() -> None:
    store = FakeStore()
    calls: list[list[tuple[bytes, str]]] = []

    async def mos(items: Sequence[tuple[Pdu, str]]) -> list[int | Exception]:
        calls.append([(p.short_message, c) for p, c in items if isinstance(p, DeliverSm)])
        return [
            RuntimeError("store down") if p.short_message == b"bad" else int(Status.ROK)
            for p, _ in items
            if isinstance(p, DeliverSm)
        ]

    h = DeliverSmRouter(ReceiptHandler(store, [receipt_carrier()]))
    h.mo_batch_handler = mos
    await h.start()
    try:
        bind = StubBind(store)
        for seq, text in enumerate([b"one", b"bad", b"three"], 1):
            h.request(bind, DeliverSm(sequence_number=seq, short_message=text))  # type: ignore[arg-type]
        await bind_answered(bind, 3)
        assert calls == [[(b"one", "alpha"), (b"bad", "alpha"), (b"three", "alpha")]]
        answered = {pdu.sequence_number: pdu.command_status for pdu, *_ in bind.conn.sent}
        assert answered == {1: Status.ROK, 2: Status.RX_T_APPN, 3: Status.ROK}
        assert h.stats.mo_refused == 1
    finally:
        await h.stop(drain=1.0)


async def test_a_failing_batch_handler_refuses_every_mo_of_the_turn() -> None:
    store = FakeStore()

    async def mos(items: Sequence[tuple[Pdu, str]]) -> list[int | Exception]:
        raise RuntimeError("boom")

    h = DeliverSmRouter(ReceiptHandler(store, [receipt_carrier()]))
    h.mo_batch_handler = mos
    await h.start()
    try:
        bind = StubBind(store)
        for seq in (1, 2):
            h.request(bind, DeliverSm(sequence_number=seq, short_message=b"x"))  # type: ignore[arg-type]
        await bind_answered(bind, 2)
        assert [pdu.command_status for pdu, *_ in bind.conn.sent] == [Status.RX_T_APPN] * 2
        assert h.stats.mo_refused == 2
    finally:
        await h.stop(drain=1.0)


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = Bench(tmp_path)
    await b.start()
    yield b
    await b.stop()


async def test_handle_pdus_logs_a_turn_in_one_write_in_order_with_long_mos(bench: Bench) -> None:
    logged = Spy(bench, "record_interactions")
    long_parts = parts_of(LONG_TEXT, source=BOB)
    pdus = [mo("STOP"), long_parts[0], mo("vote 3", BOB), mo("START"), *long_parts[1:]]
    statuses = await bench.service.handle_pdus([(p, "sim") for p in pdus])
    assert statuses == [Status.ROK] * len(pdus)
    done = await settled(bench)
    assert logged.sizes == [3]  # the single-part ones; the long one is logged on its own
    mine = [i for i in done if i.source == ALICE]
    assert [i.rule for i in mine] == ["opt_out", "opt_in"]
    bobs = sorted((i for i in done if i.source == BOB), key=lambda i: i.id)
    assert [i.text for i in bobs] == ["vote 3", LONG_TEXT]
    assert all(i.state == "done" for i in done)
    assert not await bench.store.opted_out([ALICE], NUMBER)


async def test_handle_pdus_answers_the_store_failure_for_each_mo(bench: Bench) -> None:
    async def down(items: Sequence[NewInteraction]) -> list[int]:
        raise RuntimeError("disk full")

    bench.store.record_interactions = down  # type: ignore[method-assign]
    statuses = await bench.service.handle_pdus([(mo("vote 1"), "sim"), (mo("vote 2", BOB), "sim")])
    assert [type(s) for s in statuses] == [RuntimeError, RuntimeError]
    assert bench.service.idle()


async def test_a_stopped_service_refuses_a_batch(bench: Bench) -> None:
    await bench.service.stop(0)
    statuses = await bench.service.handle_pdus([(mo("vote 1"), "sim")])
    assert statuses == [Status.RX_T_APPN]


# -- eager: an interaction's actions start without a task of their own -------------------


async def test_eager_finishes_at_once_what_never_waits() -> None:
    ran: list[str] = []

    async def quick() -> int:
        ran.append("quick")
        return 7

    future = eager(quick())
    assert ran == ["quick"] and future.done() and future.result() == 7


async def test_eager_hands_an_exception_to_the_future() -> None:
    async def broken() -> int:
        raise ValueError("no")

    future = eager(broken())
    assert future.done()
    with pytest.raises(ValueError, match="no"):
        future.result()


async def test_eager_carries_on_a_coroutine_that_waits() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def slow() -> str:
        steps.append("before")
        await asyncio.sleep(0)
        value = await gate
        steps.append("after")
        return value + "!"

    future = eager(slow())
    assert steps == ["before"] and not future.done()
    await asyncio.sleep(0.01)
    assert not future.done()
    gate.set_result("go")
    assert await future == "go!" and steps == ["before", "after"]


async def test_eager_passes_a_failure_after_a_wait_and_a_cancellation() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    cleaned: list[str] = []

    async def fails_later() -> None:
        await gate
        raise KeyError("late")

    failing = eager(fails_later())
    gate.set_result(None)
    with pytest.raises(KeyError):
        await failing

    never: asyncio.Future[None] = loop.create_future()

    async def waits_forever() -> None:
        try:
            await never
        finally:
            cleaned.append("finally")

    waiting = eager(waits_forever())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert cleaned == ["finally"] and never.cancelled()


async def test_a_single_mo_is_logged_as_an_assembled_one_would_be(bench: Bench) -> None:
    pdu = mo("vote 5")
    service = bench.service
    part = service.molog.part(pdu, "sim")
    fast = service.molog.new_single(part)
    slow = service.molog.new_interaction(Assembly(part.key, [part], complete=True))
    assert dataclasses.replace(fast, completed_at=slow.completed_at) == slow
    assert fast.text == "vote 5" and fast.complete


async def test_a_batchs_replies_ask_for_the_carriers_up_once_per_turn(bench: Bench) -> None:
    asked: list[set[str]] = []
    ups = [{"sim"}, set()]

    def carriers_up() -> set[str]:
        asked.append(ups[0])
        return set(ups[0])

    bench.outbound.carriers_up = carriers_up  # type: ignore[method-assign]
    senders = [f"+3361234{n:04d}" for n in range(20)]
    await bench.service.handle_pdus([(mo("vote 2", s), "sim") for s in senders])
    await settled(bench)
    assert len(bench.outbound.messages) == 40 and asked == [{"sim"}]
    ups.pop(0)  # the bind went down: a later turn sees it
    await bench.service.handle_pdus([(mo("vote 3", "+33611110000"), "sim")])
    await settled(bench)
    assert asked == [{"sim"}, set()]
