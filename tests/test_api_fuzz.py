"""Schemathesis against /v1/openapi.json of a running gateway (``python -m bench.api_fuzz``
runs it bigger): no 5xx, and every status answered is documented for its operation."""

from __future__ import annotations

from pathlib import Path

from bench.api_fuzz import run


def test_schemathesis_finds_no_server_error_and_no_undocumented_status(tmp_path: Path) -> None:
    result = run(tmp_path, max_examples=5, phases="coverage,fuzzing", timeout=240)
    assert result.exit_code == 0, result.output[-6000:]
    assert result.cases > 0, result.output[-3000:]
