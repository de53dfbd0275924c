"""The benchmark harness works: a toy-sized ``python -m bench`` run produces every figure and
leaves no process behind. It proves the harness, not the speed: no figure is compared with
a target here (speed is shown by ``make bench``, never by a timed assertion)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

SMOKE_ARGS = [
    "--messages",
    "300",
    "--batch",
    "100",
    "--binds",
    "2",
    "--latency-seconds",
    "0.5",
    "--latency-rate",
    "200",
    "--throttle-seconds",
    "1",
    "--throttle-tps",
    "200",
    "--contacts",
    "3000",
    "--campaign-sends",
    "3000",
    "--mo-rate",
    "200",
    "--mo-seconds",
    "1",
    "--carrier-messages",
    "60",
]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _figures(document: dict[str, Any], scenario: str) -> dict[str, Any]:
    for entry in document["scenarios"]:
        if entry["name"] == scenario:
            assert entry["error"] is None, entry["details"].get("traceback", entry["error"])
            return {f["label"]: f["value"] for f in entry["figures"]}
    raise AssertionError(f"no {scenario} in the results")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    if not Path("/proc/self/stat").exists():
        pytest.skip("the harness measures processes through /proc (Linux)")
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", *SMOKE_ARGS, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(out.read_text()), completed.stdout


def test_every_scenario_is_in_the_table(smoke_run: tuple[dict[str, Any], str]) -> None:
    document, stdout = smoke_run
    names = [s["name"] for s in document["scenarios"]]
    assert names == [
        "e2e_mt",
        "throttle",
        "campaign_fanout",
        "inbound_mo",
        "simulator_alone",
        "carrier",
    ]
    for name in names:
        assert name in stdout
    assert "not run" not in stdout


def test_e2e_figures_are_measured(smoke_run: tuple[dict[str, Any], str]) -> None:
    figures = _figures(smoke_run[0], "e2e_mt")
    assert figures["messages accepted"] == 300
    assert figures["sustained (accept -> all final)"] > 0
    assert figures["receipt correlation (delivered/accepted)"] == 100
    assert figures["gateway CPU per 1,000 msgs"] > 0
    assert figures["accept->submit_sm p99"] is not None
    assert figures["intake->submit_sm p99 (upper bound)"] is not None
    commits, per_commit = figures["store commits / write ops per commit"].split(" / ")
    assert int(commits.replace(",", "")) > 0
    assert float(per_commit) >= 1


def test_throttle_and_simulator_figures_are_measured(
    smoke_run: tuple[dict[str, Any], str],
) -> None:
    throttle = _figures(smoke_run[0], "throttle")
    assert [k for k in throttle if k.startswith("achieved rate")]
    assert throttle["ESME_RTHROTTLED"] is not None
    simulator = _figures(smoke_run[0], "simulator_alone")
    assert simulator["submit_sm/s with receipts"] > 0


def test_campaign_figures_are_measured(smoke_run: tuple[dict[str, Any], str]) -> None:
    figures = _figures(smoke_run[0], "campaign_fanout")
    assert figures["contacts imported / rejected"] == "3000 / 0"
    assert figures["3,000-contact CSV import"] > 0
    assert figures["time to first submit_sm"] > 0
    assert figures["gateway CPU through the import (upload and parse)"] >= 0
    [rate] = [k for k in figures if k.startswith("campaign send rate (first ")]
    assert rate.startswith("campaign send rate (first 3,000 of 3,000") and "timed out" not in rate
    assert figures[rate] > 0
    [peak] = [k for k in figures if k.startswith("gateway peak RSS, import + ")]
    assert figures[peak] >= figures["gateway peak RSS after import"] > 0


def test_inbound_figures_are_measured(smoke_run: tuple[dict[str, Any], str]) -> None:
    figures = _figures(smoke_run[0], "inbound_mo")
    # Every MO got its auto-reply: the simulator matched a submit_sm to each MO's sender.
    assert figures["auto-replies received / MOs"] == "200 / 200"
    assert figures["MO -> keyword -> auto-reply"] > 0
    [p50] = [v for k, v in figures.items() if k.startswith("p50 MO deliver_sm -> reply")]
    [p99] = [v for k, v in figures.items() if k.startswith("p99 MO deliver_sm -> reply")]
    assert 0 < p50 <= p99


def _carrier_run_complete(run: dict[str, Any], messages: int, callbacks: bool) -> None:
    """A carrier-settings run finished: every message accepted and delivered, and (with
    callbacks) exactly one callback received per message. Counts only, never timing."""
    assert run["error"] == "", run
    assert run["accepted"] == messages, run
    assert run["store_statuses"] == {"delivered": messages}, run
    assert run["simulator_receipts_sent"] == messages, run
    if callbacks:
        assert run["callbacks_received"] == messages, run
        assert run["callback_statuses"] == {"delivered": messages}, run
        assert run["p50_ms"] <= run["p99_ms"], run
    # Measured (a number), whatever its size: a tiny run may fall between two CPU ticks.
    assert run["rate"] > 0 and run["gateway_cpu_us_per_message"] >= 0, run


def test_carrier_settings_every_callback_arrives(smoke_run: tuple[dict[str, Any], str]) -> None:
    document, _stdout = smoke_run
    [entry] = [s for s in document["scenarios"] if s["name"] == "carrier"]
    assert entry["error"] is None, entry["error"]
    runs = entry["details"]["runs"]
    assert {(r["window"], r["intake"], r["quickack"]) for r in runs} == {
        (w, i, q) for w in (100, 10) for i in ("post", "batch") for q in (False, True)
    }
    for run in runs:
        _carrier_run_complete(run, 60, callbacks=True)


def test_carrier_module_runs_another_gateway_executable(tmp_path: Path) -> None:
    """``python -m bench.carrier`` on its own, with the gateway given as an executable (how
    another checkout is measured) and without callbacks (the end is read from the store)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("the harness measures processes through /proc (Linux)")
    smsgw = Path(sys.executable).parent / "smsgw"
    if not smsgw.exists():
        pytest.skip("no smsgw executable beside this Python (make install)")
    out = tmp_path / "carrier.json"
    args = ["--messages", "50", "--window", "10", "--intake", "post", "--intake", "batch"]
    args += ["--batch", "20", "--ack", "quick", "--gateway", f"this={smsgw}"]
    completed = subprocess.run(
        [sys.executable, "-m", "bench.carrier", *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    document = json.loads(out.read_text())
    runs = document["runs"]
    assert [(r["gateway"], r["intake"], r["quickack"]) for r in runs] == [
        ("this", "post", True),
        ("this", "batch", True),
    ]
    for run in runs:
        _carrier_run_complete(run, 50, callbacks=True)
    gateways = [p for p in document["meta"]["processes"] if "gateway" in p["name"]]
    assert gateways and all(str(smsgw) in p["argv"] for p in gateways)
    for proc in document["meta"]["processes"]:
        assert proc["stopped_by"], proc
        assert not _alive(proc["pid"]), proc

    args = ["--messages", "50", "--window", "100", "--intake", "post", "--ack", "delayed"]
    completed = subprocess.run(
        [sys.executable, "-m", "bench.carrier", *args, "--no-callbacks", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    [run] = json.loads(out.read_text())["runs"]
    _carrier_run_complete(run, 50, callbacks=False)
    assert run["callbacks_received"] == 0


def test_every_process_started_was_stopped(smoke_run: tuple[dict[str, Any], str]) -> None:
    processes = smoke_run[0]["meta"]["processes"]
    names = {p["name"] for p in processes}
    assert {
        "simulator",
        "gateway",
        "tap",
        "gateway-latency",
        "gateway-throttle",
        "gateway-campaign",
        "simulator-campaign",
        "gateway-inbound",
        "simulator-inbound",
        "carrier-gateway-1",
        "carrier-simulator-1",
        "carrier-receiver-1",
        "carrier-loadgen-1",
    } <= names
    for proc in processes:
        assert proc["stopped_by"], proc
        assert proc["alive_after_stop"] is False, proc
        assert not _alive(proc["pid"]), proc
