"""Issue 3's acceptance: HTTP intake -> store -> binds -> simulator -> receipts, whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_helpers import Lab, eventually, simulator_config
from tests.store_helpers import held_receipts


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    lab = Lab(tmp_path, simulator_config(message_id=_hex_upper()))
    await lab.start()
    yield lab
    await lab.stop()


def _hex_upper() -> Any:
    from smsc_simulator.config import MessageIdConfig

    return MessageIdConfig(base="hex", uppercase=True, width=12)


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+336{10000000 + start + i:08d}" for i in range(n)]


async def send_batch(lab: Lab, texts: list[tuple[str, str]]) -> list[str]:
    answer = await lab.post(
        "/v1/messages/batch",
        {"messages": [{"to": to, "from": "ACME", "text": text} for to, text in texts]},
    )
    return [m["id"] for m in answer["messages"]]


async def test_thousand_messages_all_correlated_with_the_simulators_counts(lab: Lab) -> None:
    ids = await send_batch(lab, [(to, f"hello {to}") for to in numbers(1000)])
    assert len(set(ids)) == 1000

    async def all_delivered() -> bool:
        return await lab.statuses(ids) == {"delivered": 1000}

    await eventually(all_delivered, within=60)
    stats = await lab.sim("GET", "/v1/stats")
    assert stats["submit_sm"] == 1000
    assert stats["submit_sm_by_status"] == {"ESME_ROK": 1000}
    assert stats["receipts_sent"] == 1000
    assert stats["deliver_sm_resp_by_status"] == {"ESME_ROK": 1000}
    assert lab.gateway is not None
    assert await held_receipts(lab.gateway.store) == []


async def test_long_gsm_text_goes_as_septet_aligned_parts(lab: Lab) -> None:
    text = ("Prices in € rise [again] " * 16)[:400]
    answer = await lab.post("/v1/messages", {"to": "+33611111111", "from": "ACME", "text": text})
    assert answer["encoding"] == "gsm7" and answer["parts"] == 3

    async def delivered() -> bool:
        return (await lab.statuses([answer["id"]])) == {"delivered": 1}

    await eventually(delivered)
    received = (await lab.sim("GET", "/v1/messages?limit=10"))["messages"]
    parts = [m for m in received if m["destination"] == "33611111111"]
    assert len(parts) == 3
    assert {p["concat"]["total"] for p in parts} == {3}
    assert len({p["concat"]["ref"] for p in parts}) == 1
    assert all(p["data_coding"] == 0 and p["esm_class"] & 0x40 for p in parts)
    ordered = sorted(parts, key=lambda p: p["concat"]["seq"])
    assert "".join(p["text"] for p in ordered) == text  # no escape split across parts
    view = await lab.get(f"/v1/messages/{answer['id']}")
    assert [p["status"] for p in view["parts"]] == ["delivered"] * 3


async def test_cyrillic_text_goes_as_ucs2_parts(lab: Lab) -> None:
    text = ("Привет, как дела? " * 12)[:200]
    answer = await lab.post("/v1/messages", {"to": "+33622222222", "from": "ACME", "text": text})
    assert answer["encoding"] == "ucs2" and answer["parts"] == 3

    async def delivered() -> bool:
        return (await lab.statuses([answer["id"]])) == {"delivered": 1}

    await eventually(delivered)
    received = (await lab.sim("GET", "/v1/messages?limit=10"))["messages"]
    parts = sorted(
        (m for m in received if m["destination"] == "33622222222"),
        key=lambda p: p["concat"]["seq"],
    )
    assert [p["data_coding"] for p in parts] == [8, 8, 8]
    assert "".join(p["text"] for p in parts) == text


async def test_idempotent_retry_creates_no_second_message(lab: Lab) -> None:
    body = {"to": "+33633333333", "from": "ACME", "text": "once"}
    first = await lab.post("/v1/messages", body, {"Idempotency-Key": "order-42"})
    again = await lab.post("/v1/messages", body, {"Idempotency-Key": "order-42"})
    assert first["id"] == again["id"]

    async def delivered() -> bool:
        return (await lab.statuses([first["id"]])) == {"delivered": 1}

    await eventually(delivered)
    stats = await lab.sim("GET", "/v1/stats")
    assert stats["submit_sm"] == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"throttle": 0.3},
        {"queue_full": 0.3},
        {"receipt_before_response": True},
        {"generic_nack": 0.2},
    ],
    ids=["throttled", "queue_full", "receipt_before_response", "generic_nack"],
)
async def test_carrier_faults_lose_nothing(lab: Lab, fault: dict[str, Any]) -> None:
    await lab.sim("PUT", "/v1/faults", fault)
    # 80 messages: at a 30 % refusal rate the AIMD cut holds the bind near its floor rate,
    # so the run's length grows with the count (tests/test_faults.py covers each mode too).
    ids = await send_batch(lab, [(to, "fault test") for to in numbers(80, 5000)])

    async def all_final() -> bool:
        counts = await lab.statuses(ids)
        return counts.get("delivered", 0) + counts.get("failed", 0) == 80

    await eventually(all_final, within=60)
    counts = await lab.statuses(ids)
    stats = await lab.sim("GET", "/v1/stats")
    # Each message accepted by the simulator was delivered; the rest failed after their
    # retries (20 attempts at a 20-30 % fault rate: practically none).
    assert stats["submit_sm_by_status"].get("ESME_ROK") == counts["delivered"]
    assert counts.get("failed", 0) <= 2
    assert lab.gateway is not None
    assert await held_receipts(lab.gateway.store) == []


async def test_receipt_ids_in_the_other_base_still_correlate(tmp_path: Path) -> None:
    from smsc_simulator.config import MessageIdConfig, ReceiptsConfig

    sim = simulator_config(
        message_id=MessageIdConfig(base="hex"), receipts=ReceiptsConfig(id_in_other_base=True)
    )
    lab = Lab(tmp_path, sim, message_id_form="hex", receipt_id_form="decimal")
    await lab.start()
    try:
        ids = await send_batch(lab, [(to, "bases") for to in numbers(50, 7000)])

        async def all_delivered() -> bool:
            return await lab.statuses(ids) == {"delivered": 50}

        await eventually(all_delivered)
    finally:
        await lab.stop()


async def test_restart_in_the_middle_of_a_send_loses_nothing(tmp_path: Path) -> None:
    lab = Lab(tmp_path, simulator_config(tps=300.0))  # slow carrier: the send takes a while
    await lab.start()
    try:
        ids = await send_batch(lab, [(to, "restart") for to in numbers(300, 9000)])
        await eventually(lambda: _some_sent(lab), within=10)
        await lab.stop_gateway()  # graceful stop mid-send
        await lab.start_gateway()

        async def all_final() -> bool:
            counts = await lab.statuses(ids)
            return counts.get("delivered", 0) == 300

        await eventually(all_final, within=60)
        stats = await lab.sim("GET", "/v1/stats")
        ok = stats["submit_sm_by_status"].get("ESME_ROK", 0)
        assert ok >= 300  # every message reached the carrier (duplicates are allowed)
    finally:
        await lab.stop()


async def _some_sent(lab: Lab) -> bool:
    stats = await lab.sim("GET", "/v1/stats")
    return int(stats["submit_sm"]) >= 30
