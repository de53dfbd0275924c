"""Receipts that match nothing are seen, and no message waits forever (issue 18.4).

(a) ``auto`` id forms (the default): a receipt's id is tried as given, then read in the other
    base, leading zeros ignored; the reading that matched is remembered per carrier.
(b) matched / unmatched counts per carrier (a receipt is unmatched once its hold for a late
    submit_sm_resp is over), a rate-limited warning naming the carrier and a sample id, and
    the counts in ``/healthz`` and ``/metrics``.
(c) a message still ``submitted`` after its validity (plus ``receipt_grace``), or after
    ``receipt_timeout`` without one, becomes ``expired`` with error ``no_receipt``, with its
    callback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.model import IncomingReceipt, MessageStatus, SubmitOutcome
from gateway.engine.receipts import HOLD_SLACK_SECONDS, ReceiptHandler
from gateway.net.deliver import DeliverSmRouter
from gateway.smpp.receipt import IdForm, IdForms, IdReading
from gateway.store.base import NO_RECEIPT
from gateway.store.sqlite import SqliteStore
from tests.e2e_helpers import Lab, eventually, simulator_config
from tests.fakes import FakeStore, new_message
from tests.store_helpers import held_receipts
from tests.test_engine_receipts import StubBind, carrier, receipt
from tests.test_store_sqlite import msg

S = MessageStatus
AUTO = IdForms(IdForm.AUTO, IdForm.AUTO)

# -- (a) the readings of an id -------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "receipt_id"),
    [
        ("0A1B", "2587"),  # hex response, decimal receipt
        ("2587", "0A1B"),  # decimal response, hex receipt
        ("00002587", "2587"),  # padding only
        ("a1b", "00A1B"),  # case and padding
        ("msg-77", "MSG-77"),  # opaque ids, matched as given
    ],
)
def test_auto_readings_reach_the_response_key(response: str, receipt_id: str) -> None:
    key = AUTO.response_key(response)
    assert key in [k for _, k in AUTO.receipt_readings(receipt_id)]
    # The receipt held before its response is kept under its as-given key: the response
    # finds it among its own alternative keys.
    assert AUTO.receipt_key(receipt_id) in (key, *AUTO.response_alt_keys(key))


def test_a_learned_reading_is_tried_first_and_explicit_forms_stay_exact() -> None:
    order = (IdReading.DECIMAL_TO_HEX, IdReading.AS_GIVEN, IdReading.HEX_TO_DECIMAL)
    assert AUTO.receipt_readings("2587", order)[0] == (IdReading.DECIMAL_TO_HEX, "a1b")
    exact = IdForms(IdForm.HEX, IdForm.DECIMAL)
    assert exact.receipt_readings("2587") == ((IdReading.AS_GIVEN, "a1b"),)
    assert exact.response_alt_keys("a1b") == ()


# -- (a) in the SQLite store -----------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "gw.db", synchronous="normal")
    await s.open()
    yield s
    await s.close()


def _submitted(message_id: str, raw: str, forms: IdForms = AUTO) -> SubmitOutcome:
    key = forms.response_key(raw)
    return SubmitOutcome(
        message_id=message_id,
        part=1,
        carrier="sim",
        status=S.SUBMITTED,
        at=1001.0,
        carrier_message_id=raw,
        receipt_key=key,
        command_status=0,
        alt_keys=forms.response_alt_keys(key) if forms.auto else (),
    )


def _receipt(raw: str, forms: IdForms = AUTO) -> IncomingReceipt:
    return IncomingReceipt(
        carrier="sim",
        receipt_key=forms.receipt_key(raw),
        carrier_message_id=raw,
        status=S.DELIVERED,
        state="DELIVRD",
        received_at=1002.0,
        raw=f"id:{raw} stat:DELIVRD",
        match_keys=tuple(k for _, k in forms.receipt_readings(raw)),
    )


async def test_store_matches_a_decimal_receipt_to_a_hex_response(store: SqliteStore) -> None:
    m = msg(carrier="sim")
    await store.accept([m])
    await store.begin_attempts([(m.id, 1)])
    await store.record_outcomes([_submitted(m.id, "0A1B")])
    r = _receipt("2587")
    changes = await store.record_receipts([r])
    assert [(c.message_id, c.status) for c in changes] == [(m.id, S.DELIVERED)]
    assert r.matched_key == "a1b"
    assert await held_receipts(store) == []


async def test_store_matches_a_held_hex_receipt_when_its_decimal_response_lands(
    store: SqliteStore,
) -> None:
    m = msg(carrier="sim")
    await store.accept([m])
    await store.begin_attempts([(m.id, 1)])
    early = _receipt("0A1B")
    assert await store.record_receipts([early]) == []
    assert early.matched_key is None
    assert await store.still_unmatched([("sim", early.receipt_key)]) == {("sim", "a1b")}
    changes = await store.record_outcomes([_submitted(m.id, "2587")])
    assert (await store.get_message(m.id)).status == "delivered"  # type: ignore[union-attr]
    assert S.DELIVERED in [c.status for c in changes]
    assert await store.still_unmatched([("sim", "a1b")]) == set()


# -- (b) counts, warning, learned reading ------------------------------------------------------


async def test_unmatched_after_the_hold_is_counted_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeStore()
    clock = [1000.0]
    handler = ReceiptHandler(store, [carrier()], clock=lambda: clock[0], linger=0)
    await handler.start()
    try:
        bind = StubBind(store)
        for seq in range(1, 61):
            DeliverSmRouter(handler).request(bind, receipt(str(5000 + seq), seq=seq))  # type: ignore[arg-type]
        await store.wait_until(lambda: len(store.receipts) == 60)
        await asyncio.sleep(0)
        alpha = handler.correlation["alpha"]
        assert (alpha.matched, alpha.unmatched, alpha.held) == (0, 0, 60)
        await handler.check_held()  # within the hold: nothing decided yet
        assert alpha.held == 60
        with caplog.at_level(logging.WARNING, logger="smsgw.receipts"):
            await handler.check_held(now=1000.0 + 60 + HOLD_SLACK_SECONDS + 1)
        assert (alpha.matched, alpha.unmatched, alpha.held) == (0, 60, 0)
        warnings = [r for r in caplog.records if r.getMessage() == "receipts.unmatched"]
        assert len(warnings) == 1  # rate-limited: one line for the 60
        fields = warnings[0].__dict__["smsgw_fields"]
        assert fields["carrier"] == "alpha" and fields["sample_id"].startswith("50")
        health = handler.health()["alpha"]
        assert health["unmatched"] == 60 and health["last_unmatched_id"] == "5060"
    finally:
        await handler.stop(drain=1.0)


async def test_auto_learns_the_reading_and_counts_matches() -> None:
    store = FakeStore()
    cfg = carrier(message_id_form=IdForm.AUTO, receipt_id_form=None)
    handler = ReceiptHandler(store, [cfg], linger=0)
    await handler.start()
    try:
        messages = [new_message() for _ in range(3)]
        await store.accept(messages)
        await store.record_outcomes(
            [
                SubmitOutcome(m.id, 1, "alpha", S.SUBMITTED, 1.0, hex_id, AUTO.response_key(hex_id))
                for m, hex_id in zip(messages, ["0A1B", "0A1C", "0A1D"], strict=True)
            ]
        )
        bind = StubBind(store)
        for seq, decimal in enumerate(["2587", "2588", "2589"], 1):
            DeliverSmRouter(handler).request(bind, receipt(decimal, seq=seq))  # type: ignore[arg-type]
        await store.wait_until(lambda: all(store.status(m.id) is S.DELIVERED for m in messages))
        await asyncio.sleep(0)
        alpha = handler.correlation["alpha"]
        assert (alpha.matched, alpha.unmatched) == (3, 0)
        assert alpha.reading is IdReading.DECIMAL_TO_HEX
        assert handler.health()["alpha"]["id_reading"] == "decimal_to_hex"
        # From now on the learned reading is the first key tried.
        DeliverSmRouter(handler).request(bind, receipt("2590", seq=4))  # type: ignore[arg-type]
        await store.wait_until(lambda: len(store.receipts) == 4)
        assert store.receipts[-1].match_keys[0] == "a1e"
    finally:
        await handler.stop(drain=1.0)


# -- (c) no receipt: expired -------------------------------------------------------------------


async def test_store_expires_what_waited_past_its_validity(store: SqliteStore) -> None:
    late = msg(carrier="sim", validity_until=1100.0, callback="https://example.test/cb")
    fresh = msg(carrier="sim", validity_until=5000.0)
    quiet = msg(carrier="sim", validity_until=1100.0, registered_delivery=False)
    endless = msg(carrier="sim", validity_until=None)
    other = msg(carrier="other", validity_until=1100.0)
    everyone = [late, fresh, quiet, endless, other]
    await store.accept(everyone)
    await store.begin_attempts([(m.id, 1) for m in everyone])
    await store.record_outcomes(
        [
            SubmitOutcome(m.id, 1, m.carrier, S.SUBMITTED, 1001.0, f"x{n}", f"x{n}")
            for n, m in enumerate(everyone)
        ]
    )
    changes = await store.expire_unreceipted("sim", 1200.0, 1001.0 - 3600, 1300.0, 100)
    assert [(c.message_id, c.status, c.error) for c in changes] == [
        (late.id, S.EXPIRED, NO_RECEIPT)
    ]
    for m, status in [(fresh, "submitted"), (quiet, "submitted"), (endless, "submitted")]:
        assert (await store.get_message(m.id)).status == status  # type: ignore[union-attr]
    view = await store.get_message(late.id)
    assert view is not None and view.error == NO_RECEIPT
    assert ("expired", {"carrier": "sim", "error": NO_RECEIPT}) in [
        (h.status, h.detail) for h in view.history
    ]
    callbacks = await store.callbacks_due(2000.0, 10)
    assert [json.loads(c.payload)["status"] for c in callbacks] == ["expired"]
    # Without a validity: after receipt_timeout from its submission.
    changes = await store.expire_unreceipted("sim", 1200.0, 1002.0, 1300.0, 100)
    assert [c.message_id for c in changes] == [endless.id]
    # A receipt that comes after all does not move a final status back.
    await store.record_receipts([_receipt("x0", IdForms())])
    assert (await store.get_message(late.id)).status == "expired"  # type: ignore[union-attr]


async def test_lost_receipts_end_expired_through_the_whole_gateway(tmp_path: Path) -> None:
    """The simulator holds its receipts for an hour (an SMSC that lost them): the messages
    stay submitted, then the sweep (time passed in) gives them up with their callbacks."""
    from smsc_simulator.config import DelayConfig, ReceiptsConfig

    sim = simulator_config(receipts=ReceiptsConfig(delay=DelayConfig(seconds=3600.0)))
    lab = Lab(tmp_path, sim)
    await lab.start()
    try:
        ids = [
            (
                await lab.post(
                    "/v1/messages",
                    {
                        "to": f"+3361234{n:04d}",
                        "from": "ACME",
                        "text": "lost",
                        "validity": 60,
                        "callback_url": "https://example.test/cb",
                    },
                )
            )["id"]
            for n in range(20)
        ]

        async def all_submitted() -> bool:
            return await lab.statuses(ids) == {"submitted": 20}

        await eventually(all_submitted)
        assert lab.gateway is not None
        handler = lab.gateway.dispatcher.receipts
        assert await handler.expire_overdue() == 0  # validity not over yet
        assert await handler.expire_overdue(now=time.time() + 60 + 600 + 5) == 20
        assert await lab.statuses(ids) == {"expired": 20}
        view = await lab.get(f"/v1/messages/{ids[0]}")
        assert view["status"] == "expired" and view["error"] == NO_RECEIPT
        due = await lab.gateway.store.callbacks_due(time.time() + 86400, 100)
        assert sorted(json.loads(c.payload)["id"] for c in due) == sorted(ids)
        assert handler.health()["sim"]["expired_no_receipt"] == 20
    finally:
        await lab.stop()


# -- end to end: the simulator writes receipt ids in the other base ----------------------------


async def test_auto_correlates_the_simulators_other_base_and_healthz_shows_it(
    tmp_path: Path,
) -> None:
    from smsc_simulator.config import MessageIdConfig, ReceiptsConfig

    sim = simulator_config(
        message_id=MessageIdConfig(base="hex", width=16),
        receipts=ReceiptsConfig(id_in_other_base=True),
    )
    lab = Lab(tmp_path, sim, message_id_form="auto")
    await lab.start()
    try:
        answer = await lab.post(
            "/v1/messages/batch",
            {"messages": [{"to": f"+3362{n:07d}", "from": "ACME", "text": "x"} for n in range(60)]},
        )
        ids = [m["id"] for m in answer["messages"]]

        async def all_delivered() -> bool:
            return await lab.statuses(ids) == {"delivered": 60}

        await eventually(all_delivered, within=30)
        assert lab.http is not None
        async with lab.http.get(lab.gw_url + "/healthz") as r:
            health = await r.json()
        sim_receipts = health["receipts"]["sim"]
        assert sim_receipts["id_reading"] == "decimal_to_hex"
        assert sim_receipts["unmatched"] == 0
        # Receipts held before their response are counted once their hold is over.
        assert lab.gateway is not None
        await lab.gateway.dispatcher.receipts.check_held(now=time.time() + 3600)
        async with lab.http.get(lab.gw_url + "/metrics") as r:
            metrics = await r.text()
        assert 'smsgw_receipts_correlated_total{carrier="sim",result="matched"} 60.0' in metrics
        assert 'smsgw_receipts_correlated_total{carrier="sim",result="unmatched"} 0.0' in metrics
    finally:
        await lab.stop()


async def test_misconfigured_forms_show_as_unmatched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case: forms set to hex on both sides while the carrier writes receipts in
    decimal: nothing matches, and that is now counted, logged and shown."""
    from smsc_simulator.config import MessageIdConfig, ReceiptsConfig

    sim = simulator_config(
        message_id=MessageIdConfig(base="hex"), receipts=ReceiptsConfig(id_in_other_base=True)
    )
    lab = Lab(tmp_path, sim, message_id_form="hex", receipt_id_form="hex")
    await lab.start()
    try:
        answer = await lab.post(
            "/v1/messages/batch",
            {"messages": [{"to": f"+3363{n:07d}", "from": "ACME", "text": "x"} for n in range(60)]},
        )
        ids = [m["id"] for m in answer["messages"]]

        async def receipts_stored() -> bool:
            stats = await lab.sim("GET", "/v1/stats")
            return bool(stats["deliver_sm_resp_by_status"].get("ESME_ROK") == 60)

        await eventually(receipts_stored)
        assert lab.gateway is not None
        handler = lab.gateway.dispatcher.receipts
        with caplog.at_level(logging.WARNING, logger="smsgw.receipts"):
            await handler.check_held(now=time.time() + 3600)
        assert await lab.statuses(ids) == {"submitted": 60}
        assert handler.correlation["sim"].unmatched == 60
        assert [r.getMessage() for r in caplog.records].count("receipts.unmatched") == 1
        assert lab.http is not None
        async with lab.http.get(lab.gw_url + "/healthz") as r:
            assert (await r.json())["receipts"]["sim"]["unmatched"] == 60
        async with lab.http.get(lab.gw_url + "/metrics") as r:
            metrics = await r.text()
        assert 'smsgw_receipts_correlated_total{carrier="sim",result="unmatched"} 60.0' in metrics
    finally:
        await lab.stop()
