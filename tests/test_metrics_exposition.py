"""GET /metrics of a running gateway is a valid Prometheus exposition: ``promtool check
metrics`` (Debian package ``prometheus``; ``$PROMTOOL`` names another binary) accepts it,
and so does a strict reading here, which runs even where promtool is not installed: one HELP
and one TYPE per family, before its samples, every sample in a family of its name, a
family's samples together and with one set of label names, no series twice."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e_helpers import eventually
from tests.test_e2e_inbound import SHORT_CODE, InboundLab, inbound_raw

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "untyped": ("",),
}
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')


def strict_problems(text: str) -> list[str]:
    """What a strict exposition parser (Prometheus' own) refuses in ``text``."""
    problems: list[str] = []
    helps: set[str] = set()
    types: dict[str, str] = {}
    finished: set[str] = set()
    current: str | None = None
    label_names: dict[str, frozenset[str]] = {}
    series: set[tuple[str, frozenset[tuple[str, str]]]] = set()

    def family_of(name: str) -> str | None:
        for family, kind in types.items():
            # A counter is declared as smsgw_x_total (prometheus_client) or as smsgw_x.
            base = family.removesuffix("_total") if kind == "counter" else family
            if any(name == base + suffix for suffix in SUFFIXES.get(kind, ("",))):
                return family
        return None

    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            name = line.split()[2]
            seen = helps if line.startswith("# HELP") else types
            if name in seen:
                problems.append(f"line {number}: second {line.split()[1]} line for {name}")
            if name in finished or (current is not None and current != name and name in types):
                problems.append(f"line {number}: {name} declared again after other families")
            if line.startswith("# HELP"):
                helps.add(name)
            else:
                types[name] = line.split()[3]
            if current is not None and current != name:
                finished.add(current)
            current = name
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.fullmatch(line.strip())
        if m is None:
            problems.append(f"line {number}: unreadable sample {line!r}")
            continue
        name, labels_text = m.group(1), m.group(3) or ""
        family = family_of(name)
        if family is None or family != current:
            problems.append(f"line {number}: {name} is not a sample of the family declared above")
            continue
        labels = frozenset(LABEL.findall(labels_text))
        names = frozenset(k for k, _ in labels if k not in ("le", "quantile"))
        if label_names.setdefault(name, names) != names:
            problems.append(f"line {number}: {name} with labels {sorted(names)} and others")
        if (name, labels) in series:
            problems.append(f"line {number}: {name}{{{labels_text}}} twice")
        series.add((name, labels))
    return problems


def test_the_strict_reading_refuses_a_family_declared_twice() -> None:
    twice = (
        "# HELP smsgw_mo_total a\n# TYPE smsgw_mo_total counter\n"
        'smsgw_mo_total{result="received"} 1.0\n'
        "# HELP smsgw_mo_total b\n# TYPE smsgw_mo_total counter\n"
        'smsgw_mo_total{number="1",keyword="x"} 1.0\n'
    )
    assert strict_problems(twice)
    assert strict_problems(twice.split("# HELP smsgw_mo_total b")[0]) == []


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[InboundLab]:
    lab = InboundLab(tmp_path, inbound_raw("http://127.0.0.1:9/unused"))
    await lab.start()
    yield lab
    await lab.stop()


async def test_a_running_gateways_metrics_pass_promtool(lab: InboundLab) -> None:
    answer = await lab.post("/v1/messages", {"to": "+33612345678", "from": "ACME", "text": "m"})
    await lab.mo("+33611112222", "YES")  # an MO with a rule, and one with none
    await lab.mo("+33611113333", "what?")
    await lab.handled(2)

    async def delivered() -> bool:
        return await lab.statuses([answer["id"]]) == {"delivered": 1}

    await eventually(delivered)
    assert lab.http is not None
    for _ in range(2):  # the second scrape has the first in the HTTP metrics
        async with lab.http.get(lab.gw_url + "/metrics") as r:
            assert r.status == 200
            text = await r.text()
    assert strict_problems(text) == []
    assert f'smsgw_mo_total{{keyword="yes",number="{SHORT_CODE}"}} 1.0' in text
    assert 'smsgw_mo_deliver_sm_total{result="received"} 2.0' in text
    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if promtool is None:
        pytest.skip(
            "promtool not installed (Debian: apt-get install prometheus); strict reading passed"
        )
    child = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(child.communicate(text.encode()), 60)
    assert child.returncode == 0, out.decode()
