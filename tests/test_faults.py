"""Issue 7, carrier faults: each of the simulator's failure modes against a whole gateway.

For every mode: the daemon stays up (its HTTP API answers), the binds come back, every
message reaches a final state and is delivered (nothing lost: the carrier took each at least
once), and ``GET /metrics`` shows what happened (the matching counter moved). Retry rules are
fast (tests/e2e_helpers.py) so each case takes a few seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e_helpers import Lab, eventually, simulator_config
from tests.store_helpers import held_receipts

N = 120


def _numbers(n: int, start: int) -> list[str]:
    return [f"+336{20000000 + start + i:08d}" for i in range(n)]


async def metrics(lab: Lab) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    assert lab.http is not None
    async with lab.http.get(lab.gw_url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = sample.value
    return out


def total(
    m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= ls)


async def healthy(lab: Lab) -> bool:
    assert lab.http is not None
    async with lab.http.get(lab.gw_url + "/healthz") as r:
        return r.status == 200 and (await r.json())["status"] == "ok"


async def run_case(
    lab: Lab,
    fault: dict[str, Any],
    start: int,
    during: Callable[[], Awaitable[None]] | None = None,
) -> list[str]:
    """Switch ``fault`` on, send N messages, run ``during``, and wait until all are final."""
    await lab.sim("PUT", "/v1/faults", fault)
    body = {"messages": [{"to": to, "from": "ACME", "text": "fault"} for to in _numbers(N, start)]}
    ids = [m["id"] for m in (await lab.post("/v1/messages/batch", body))["messages"]]
    if during is not None:
        await during()

    async def all_final() -> bool:
        counts = await lab.statuses(ids)
        return sum(counts.get(s, 0) for s in ("delivered", "failed")) == N

    await eventually(all_final, within=40)
    return ids


async def check_delivered(lab: Lab, ids: list[str], start: int) -> None:
    """Nothing lost: every message delivered, the carrier saw each destination, binds up."""
    assert await lab.statuses(ids) == {"delivered": N}
    received = (await lab.sim("GET", "/v1/messages?limit=5000"))["messages"]
    seen = {m["destination"] for m in received}
    assert {n.lstrip("+") for n in _numbers(N, start)} <= seen
    await eventually(lambda: healthy(lab), within=20)


@pytest.fixture
def make_lab(tmp_path: Path) -> Callable[..., Lab]:
    def make(**carrier: Any) -> Lab:
        return Lab(tmp_path, simulator_config(), **carrier)

    return make


async def test_throttling_slows_down_and_delivers_all(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    await lab.start()
    try:
        ids = await run_case(lab, {"throttle": 0.3}, 0)
        await check_delivered(lab, ids, 0)
        m = await metrics(lab)
        assert total(m, "smsgw_submit_sm_responses_total", status="ESME_RTHROTTLED") > 0
        assert total(m, "smsgw_parts_total", outcome="throttled") > 0
    finally:
        await lab.stop()


async def test_queue_full_is_retried_and_delivers_all(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    await lab.start()
    try:
        ids = await run_case(lab, {"queue_full": 0.3}, 1000)
        await check_delivered(lab, ids, 1000)
        m = await metrics(lab)
        assert total(m, "smsgw_submit_sm_responses_total", status="ESME_RMSGQFUL") > 0
        assert total(m, "smsgw_parts_total", outcome="retried") > 0
    finally:
        await lab.stop()


async def test_black_hole_times_out_then_recovers(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(response_timeout=0.5, enquire_link_interval=0.5)
    await lab.start()
    try:

        async def silence_then_back() -> None:
            async def noticed() -> bool:
                m = await metrics(lab)
                return (
                    total(m, "smsgw_submit_sm_timeouts_total")
                    + total(m, "smsgw_submit_sm_lost_on_link_down_total")
                    > 0
                )

            await eventually(noticed, within=15)
            await lab.sim("PUT", "/v1/faults", {"black_hole": False})

        ids = await run_case(lab, {"black_hole": True}, 2000, silence_then_back)
        await check_delivered(lab, ids, 2000)
        stats = await lab.sim("GET", "/v1/stats")
        assert stats["submit_sm_unanswered"] > 0  # the silence really happened
    finally:
        await lab.stop()


async def test_slow_responses_are_waited_for(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    await lab.start()
    try:
        ids = await run_case(lab, {"slow_responses": 0.3}, 3000)
        await check_delivered(lab, ids, 3000)
        m = await metrics(lab)
        count = total(m, "smsgw_submit_sm_response_seconds_count")
        assert count >= N
        # The latency histogram shows the carrier's slowness: no answer faster than 0.3 s.
        assert total(m, "smsgw_submit_sm_response_seconds_bucket", le="0.25") == 0
        assert total(m, "smsgw_submit_sm_response_seconds_sum") / count >= 0.29
    finally:
        await lab.stop()


async def test_link_dropped_every_few_seconds_reconnects(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    await lab.start()
    try:
        # A slow carrier keeps submits in flight while the links are cut under them.
        await lab.sim("PUT", "/v1/faults", {"slow_responses": 0.2})

        async def drops_seen() -> None:
            async def reconnected() -> bool:
                m = await metrics(lab)
                return total(m, "smsgw_bind_connects_total") >= 6  # 2 binds, 2+ drops

            await eventually(reconnected, within=20)

        ids = await run_case(lab, {"drop_link_every": 0.4}, 4000, drops_seen)
        await lab.sim("PUT", "/v1/faults", {"drop_link_every": 0, "slow_responses": 0})
        await check_delivered(lab, ids, 4000)
        stats = await lab.sim("GET", "/v1/stats")
        assert stats["links_dropped"] >= 2
        m = await metrics(lab)
        assert total(m, "smsgw_bind_connects_total") >= 6
    finally:
        await lab.stop()


async def test_garbage_answers_are_survived(make_lab: Callable[..., Lab]) -> None:
    # Junk can leave the stream without PDU boundaries: the keep-alive notices, so it is short.
    lab = make_lab(response_timeout=1.0, enquire_link_interval=1.0)
    await lab.start()
    try:

        async def some_junk_then_clean() -> None:
            async def junk_sent() -> bool:
                return int((await lab.sim("GET", "/v1/stats"))["submit_sm_garbage"]) >= 3

            await eventually(junk_sent, within=20)
            await lab.sim("PUT", "/v1/faults", {"garbage": 0})

        ids = await run_case(lab, {"garbage": 0.05}, 5000, some_junk_then_clean)
        await check_delivered(lab, ids, 5000)
        stats = await lab.sim("GET", "/v1/stats")
        assert stats["submit_sm_garbage"] > 0
        m = await metrics(lab)
        # Junk on the wire shows as protocol errors, or as links closed and reopened and
        # the submits on them counted lost (a bad header length ends the link).
        moved = (
            total(m, "smsgw_protocol_errors_total")
            + total(m, "smsgw_submit_sm_lost_on_link_down_total")
            + total(m, "smsgw_submit_sm_timeouts_total")
        )
        assert moved > 0
    finally:
        await lab.stop()


async def test_receipts_before_responses_correlate(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    await lab.start()
    try:
        ids = await run_case(lab, {"receipt_before_response": True}, 6000)
        await check_delivered(lab, ids, 6000)
        assert lab.gateway is not None
        assert await held_receipts(lab.gateway.store) == []
        m = await metrics(lab)
        assert total(m, "smsgw_receipts_total", result="stored") >= N
    finally:
        await lab.stop()


async def test_generic_nack_is_retried_and_delivers_all(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    await lab.start()
    try:
        ids = await run_case(lab, {"generic_nack": 0.2}, 7000)
        await check_delivered(lab, ids, 7000)
        stats = await lab.sim("GET", "/v1/stats")
        m = await metrics(lab)
        assert total(m, "smsgw_submit_sm_generic_nacks_total") == stats["submit_sm_generic_nack"]
        assert stats["submit_sm_generic_nack"] > 0
    finally:
        await lab.stop()
