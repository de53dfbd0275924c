"""/metrics parses with prometheus-client's own parser and moves as traffic flows."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Histogram, RateMeter, status_class
from tests.e2e_helpers import Lab, eventually, simulator_config


def test_histogram_buckets_are_cumulative() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 2.0, 3.0):
        h.observe(v)
    assert h.buckets() == [("0.1", 2.0), ("1.0", 3.0), ("+Inf", 5.0)]
    assert h.count == 5 and abs(h.sum - 5.65) < 1e-9


def test_rate_meter_averages_complete_seconds() -> None:
    m = RateMeter(span=5)
    for second in range(100, 104):
        m.add(200, now=second + 0.5)
    assert m.rate(now=104.1) == 200.0  # 4 full seconds of 200 over the last 4
    assert m.rate(now=120.0) == 0.0  # long idle: the old counts are gone


def test_status_classes_are_bounded() -> None:
    assert status_class(0) == "ok"
    assert status_class(0x58) == "throttled"
    assert status_class(0x14) == "queue_full"
    assert {status_class(s) for s in range(0x400, 0x500)} == {"permanent"}


def messages(n: int) -> dict[str, list[dict[str, str]]]:
    return {"messages": [{"to": f"+3361000{i:04d}", "from": "ACME", "text": "m"} for i in range(n)]}


async def scrape(lab: Lab) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    assert lab.http is not None
    async with lab.http.get(lab.gw_url + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(samples: dict[tuple[tuple[str, str], ...], float], **labels: str) -> float:
    return sum(
        v for k, v in samples.items() if all(dict(k).get(n) == want for n, want in labels.items())
    )


async def test_metrics_move_with_traffic(tmp_path: Path) -> None:
    lab = Lab(tmp_path, simulator_config())
    await lab.start()
    try:
        before = await scrape(lab)
        assert total(before["smsgw_binds_up"]) == 2
        assert total(before["smsgw_submit_sm_total"]) == 0
        answer = await lab.post(
            "/v1/messages/batch",
            {
                "messages": [
                    {"to": f"+3361000{i:04d}", "from": "ACME", "text": "m"} for i in range(40)
                ]
            },
        )
        ids = [m["id"] for m in answer["messages"]]

        async def delivered() -> bool:
            return await lab.statuses(ids) == {"delivered": 40}

        await eventually(delivered)
        after = await scrape(lab)
        assert total(after["smsgw_submit_sm_total"]) == 40
        responses = after["smsgw_submit_sm_responses_total"]
        assert total(responses, status="ESME_ROK", **{"class": "ok"}) == 40
        assert total(after["smsgw_submit_sm_response_seconds_count"]) == 40
        assert total(after["smsgw_parts_total"], outcome="submitted") == 40
        assert total(after["smsgw_receipts_total"], result="stored") == 40
        assert total(after["smsgw_store_commits_total"]) > total(
            before["smsgw_store_commits_total"]
        )
        batch = after["smsgw_http_requests_total"]
        assert total(batch, route="/v1/messages/batch", method="POST", status="2xx") == 1
        assert total(after["smsgw_bind_state"], state="bound") == 2
        assert total(after["smsgw_queue_depth"]) == 0
    finally:
        await lab.stop()
