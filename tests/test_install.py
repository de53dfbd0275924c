"""The service installer's configuration: production, not the development file.

scripts/install-service.sh needs root and systemd; the configuration it writes comes from
scripts/production-config.py, run here as the installer runs it."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.app.cli import main
from gateway.config import KNOWN_FRONT_PASSWORDS, KNOWN_TOKENS, load_config
from gateway.config.loader import ConfigError

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "production-config.py"
SHIPPED = REPO / "conf" / "gateway.toml"

CARRIER = """
[[carriers]]
name = "acme"
host = "smsc.example.net"
port = 2775
system_id = "gw"
password = "pw"
"""


def produce(output: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(SHIPPED), str(output), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_production_file_has_a_fresh_token_no_account_and_no_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "gateway.toml"
    result = produce(output, tmp_path / "state")
    assert result.returncode == 0, result.stderr
    [token] = re.findall(r"HTTP API token \(shown once.*\): (\S+)", result.stdout)
    assert len(token) >= 40
    assert stat.S_IMODE(output.stat().st_mode) == 0o640
    text = output.read_text()
    assert token not in text  # only its SHA-256
    for known in (*KNOWN_TOKENS, *KNOWN_FRONT_PASSWORDS, "pbkdf2_sha256$100000$"):
        assert known not in text

    # No carrier yet: the file says so, and smsgw refuses it until one is added.
    with pytest.raises(ConfigError) as info:
        load_config(output)
    assert [e.split(":")[0] for e in info.value.errors] == ["carriers"]
    with pytest.raises(SystemExit) as exited:
        main(["check-config", "--config", str(output)])
    assert exited.value.code == 2
    assert "carriers" in capsys.readouterr().err

    output.write_text(text + CARRIER)
    config = load_config(output)
    assert config.node.development is False
    assert config.node.data_dir == str(tmp_path / "state")
    [only] = config.http.tokens
    assert only.matches(token) and not any(only.matches(t) for t in KNOWN_TOKENS)
    assert config.front is not None and config.front.accounts == ()
    assert [c.name for c in config.carriers] == ["acme"]
    assert main(["check-config", "--config", str(output)]) == 0

    # The simulator carrier is there as a commented example that loads once uncommented.
    example = re.search(r"(?ms)^# \[\[carriers\]\]\n.*?(?=^\S*$)", text)
    assert example is not None
    uncommented = "\n".join(line[2:] for line in example.group(0).splitlines())
    output.write_text(text + uncommented)
    assert [c.name for c in load_config(output).carriers] == ["sim"]


def test_an_existing_file_is_kept(tmp_path: Path) -> None:
    output = tmp_path / "gateway.toml"
    output.write_text("# mine\n")
    result = produce(output, tmp_path / "state")
    assert result.returncode == 3
    assert output.read_text() == "# mine\n"
    assert "kept" in result.stderr


def test_the_installer_writes_the_production_file_not_the_development_one() -> None:
    script = (REPO / "scripts" / "install-service.sh").read_text()
    commands = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    body = "\n".join(commands)
    assert (
        'scripts/production-config.py" \\\n        "$src/conf/gateway.toml" /etc/smsgw/gateway.toml'
        in body
    )
    assert not re.search(r"conf/gateway\.toml\"? *>", body)  # no copy of it any more
    assert "check-config --config /etc/smsgw/gateway.toml" in body
