"""conf/grafana-smsgw.json queries only metrics (and labels) that GET /metrics exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e_helpers import Lab, eventually, simulator_config

DASHBOARD = Path(__file__).resolve().parent.parent / "conf" / "grafana-smsgw.json"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
METRIC = re.compile(r"\bsmsgw_[a-z0-9_]+")
GROUPING = re.compile(r"\bby \(([^)]*)\)")
MATCHER = re.compile(r"\{([^}]*)\}")


def exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    found = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    assert found, "the dashboard has no queries"
    return found


async def exposed(tmp_path: Path) -> tuple[set[str], dict[str, set[str]]]:
    """Series names a query can use, and the label names seen on each, after some traffic."""
    lab = Lab(tmp_path, simulator_config())
    await lab.start()
    try:
        answer = await lab.post(
            "/v1/messages", {"to": "+33612345678", "from": "ACME", "text": "dashboard"}
        )

        async def delivered() -> bool:
            return await lab.statuses([answer["id"]]) == {"delivered": 1}

        await eventually(delivered)
        assert lab.http is not None
        for _ in range(2):  # the second scrape shows the first in the HTTP metrics
            async with lab.http.get(lab.gw_url + "/metrics") as r:
                text = await r.text()
    finally:
        await lab.stop()
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return names, labels


async def test_every_dashboard_query_uses_exposed_metrics_and_labels(tmp_path: Path) -> None:
    names, labels = await exposed(tmp_path)
    for expr in exprs():
        used = set(METRIC.findall(expr))
        assert used, f"no smsgw metric in {expr!r}"
        unknown = used - names
        assert not unknown, f"{expr!r} uses {sorted(unknown)}, not in /metrics"
        available = {"le"}.union(*(labels.get(n, set()) for n in used))
        wanted = {x.strip() for g in GROUPING.findall(expr) for x in g.split(",") if x.strip()}
        wanted |= {m.split("=")[0].strip() for g in MATCHER.findall(expr) for m in g.split(",")}
        assert wanted <= available, f"{expr!r} uses labels {sorted(wanted - available)}"


def test_the_dashboard_covers_the_issue_list() -> None:
    used = {m for e in exprs() for m in METRIC.findall(e)}
    for name in (
        "smsgw_binds_up",
        "smsgw_bind_state",
        "smsgw_submit_sm_total",
        "smsgw_submit_sm_responses_total",
        "smsgw_bind_window_in_use",
        "smsgw_bind_submit_rate",
        "smsgw_submit_sm_response_seconds_bucket",
        "smsgw_queue_depth",
        "smsgw_receipts_total",
        "smsgw_mo_total",
        "smsgw_http_requests_total",
        "smsgw_http_request_seconds_bucket",
        "smsgw_store_commit_seconds_bucket",
    ):
        assert name in used, name
