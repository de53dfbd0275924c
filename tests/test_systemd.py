"""The systemd units: `systemd-analyze verify` passes, and the promised settings are there."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNITS = ("smsgw.service", "smsc-sim.service")


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((REPO / "systemd" / name).read_text())
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # ExecStart must name an existing file for verify; point it at this checkout's venv.
    bin_dir = Path(sys.executable).parent
    paths = []
    for name in UNITS:
        text = (REPO / "systemd" / name).read_text().replace("/opt/smsgw/venv/bin", str(bin_dir))
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    result = subprocess.run(
        ["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in result.stderr.splitlines() if str(tmp_path) in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_gateway_unit_is_notify_with_watchdog_and_hardening() -> None:
    service = unit("smsgw.service")["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["User"] == "smsgw"
    assert service["StateDirectory"] == "smsgw"
    assert service["ConfigurationDirectory"] == "smsgw"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
    }.items():
        assert service[key] == value, key
    assert "AF_UNIX" in service["RestrictAddressFamilies"]  # the notify socket needs it
    assert "/etc/smsgw/gateway.toml" in service["ExecStart"]
