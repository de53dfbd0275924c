"""Start-up as a process: a gateway that cannot start exits 1 with a message, and a second
``smsgw run`` on a data directory in use leaves the running daemon alone."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gateway.app.cli import main
from gateway.config import load_config
from gateway.store.sqlite import SqliteStore
from tests.e2e_helpers import eventually
from tests.test_ops_process import Daemon, config_text

EXIT_WITHIN = 30.0
"""A generous bound on a failed start: the bug was a process that never exits."""


def dead_port() -> int:
    """A port nothing listens on: the binds retry, which is all these tests need."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(tmp_path / "data", dead_port(), "alpha"))
    return config


def run(config: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``smsgw run`` to its end (or EXIT_WITHIN, then killed: the test fails)."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "gateway", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=EXIT_WITHIN,
    )


@pytest.fixture
def unprivileged() -> Iterator[tuple[str, ...]]:
    """A command prefix under which file permissions hold. Root ignores them; in a user
    namespace where our uid is not root, the files stay ours but no capability overrides
    their mode bits."""
    if os.geteuid() != 0:
        yield ()
        return
    unshare = shutil.which("unshare")
    prefix = (unshare or "unshare", "--user", "--map-user=1000", "--map-group=1000")
    probe = subprocess.run([*prefix, "true"], capture_output=True) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("running as root without user namespaces: permissions cannot bind")
    yield prefix


# -- a failed start exits 1 ---------------------------------------------------------------


def test_a_random_file_as_the_database_exits_1_with_the_reason(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "smsgw.db").write_bytes(os.urandom(8192))
    result = run(config)
    assert result.returncode == 1, result.stderr
    assert "cannot start" in result.stderr and "smsgw.db" in result.stderr
    assert "file is not a database" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("earlier_run", [True, False], ids=["earlier-run", "empty"])
async def test_a_read_only_data_directory_exits_1_with_the_reason(
    tmp_path: Path, unprivileged: tuple[str, ...], earlier_run: bool
) -> None:
    config = write_config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    if earlier_run:  # its database and lock file are there: the store is what fails
        store = SqliteStore(load_config(config).store_path)
        await store.open()
        await store.close()
        (data / "smsgw.lock").write_text("1\n")
    data.chmod(0o555)
    try:
        result = run(config, unprivileged)
    finally:
        data.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert "cannot start" in result.stderr
    if earlier_run:
        assert "attempt to write a readonly database" in result.stderr, result.stderr
    else:
        assert "cannot lock" in result.stderr and "Permission denied" in result.stderr
    assert "Traceback" not in result.stderr


# -- one process per data directory -------------------------------------------------------


async def test_a_second_run_on_the_same_data_directory_leaves_the_first_alone(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    text = config.read_text().replace("[shutdown]\n", '[shutdown]\npid_file = "smsgw.pid"\n', 1)
    config.write_text(text)
    data = tmp_path / "data"
    first = Daemon(config, tmp_path / "first.log", "")
    try:
        await first.wait_started()
        pid_file = data / "smsgw.pid"
        assert pid_file.read_text() == f"{first.proc.pid}\n"
        # An import the first daemon is (as far as the database says) still running: a
        # second start must not mark it failed.
        db = sqlite3.connect(data / "smsgw.db")
        with db:
            db.execute(
                "INSERT INTO contact_imports(id, list_id, status, opt_in_source, rows, imported,"
                " rejected, errors, created_at) VALUES ('imp1', 1, 'running', 'web', 0, 0, 0,"
                " '[]', 0)"
            )

        second = run(config)
        assert second.returncode == 1, second.stderr
        assert f"pid {first.proc.pid}" in second.stderr, second.stderr
        assert str(data) in second.stderr
        assert "Traceback" not in second.stderr

        # Untouched: the pid file, the import, the daemon (it still answers and reloads).
        assert pid_file.read_text() == f"{first.proc.pid}\n"
        with db:
            [(status,)] = db.execute("SELECT status FROM contact_imports WHERE id = 'imp1'")
        db.close()
        assert status == "running"
        async with aiohttp.ClientSession() as http, http.get(first.url + "/healthz") as r:
            assert r.status == 200
        assert main(["reload", "--config", str(config)]) == 0

        async def reloaded() -> bool:
            return '"event": "reload.applied"' in first.log_path.read_text()

        await eventually(reloaded)
        first.proc.send_signal(signal.SIGTERM)
        assert await first.wait_exit() == 0
        assert not pid_file.exists()
    finally:
        first.kill()
    # Once the first has gone, the directory is free again.
    after = Daemon(config, tmp_path / "after.log", "")
    try:
        await after.wait_started()
        after.proc.send_signal(signal.SIGTERM)
        assert await after.wait_exit() == 0
    finally:
        after.kill()
