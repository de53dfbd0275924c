"""`make run` (scripts/dev-run.sh) stops for certain.

A supervisor, a CI job's timeout or a closing terminal stops a program by SIGTERM to its
process group and SIGKILL a few seconds later. Whenever that comes (while the script starts
its two programs, or once they serve), no process of the run may be left, and every port
it used must be free again. The script runs on free ports and a data directory of its own,
through its environment variables."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "dev-run.sh"
START_WITHIN = 90.0
GONE_WITHIN = 30.0

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/cmdline").exists(), reason="the test reads /proc (Linux)"
)


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def processes_naming(marker: str) -> dict[int, str]:
    """Live processes (zombies aside) whose command line contains ``marker``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` again (as the programs do, SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


class DevRun:
    def __init__(self, tmp_path: Path) -> None:
        self.var = tmp_path / "var"
        self.ports = free_ports(4)
        http, front, smsc, control = self.ports
        env = {
            **os.environ,
            "SMSGW_HTTP_PORT": str(http),
            "SMSGW_FRONT_PORT": str(front),
            "SMSC_SIM_PORT": str(smsc),
            "SMSC_SIM_CONTROL_PORT": str(control),
            "SMSGW_VAR_DIR": str(self.var),
        }
        self.output = tmp_path / "dev-run.out"
        with self.output.open("wb") as out:
            # A session of its own: the group a supervisor would signal.
            self.proc = subprocess.Popen(
                ["bash", str(SCRIPT)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for(self, condition: str) -> None:
        deadline = time.monotonic() + START_WITHIN
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.text()
            if condition == "ready" and "smsgw is running" in self.text():
                return
            if condition == "starting" and processes_naming(str(self.var)):
                return
            time.sleep(0.05)
        raise AssertionError(f"dev-run.sh not {condition}:\n{self.text()}")

    def stop_as_a_supervisor(self, kill_after: float) -> None:
        """SIGTERM to the group, SIGKILL to it ``kill_after`` seconds later (if it is still
        there: the group may have gone by then)."""
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def leftovers(self) -> dict[int, str]:
        """What is still running after GONE_WITHIN (a graceful stop takes a few seconds)."""
        deadline = time.monotonic() + GONE_WITHIN
        while (left := processes_naming(str(self.var))) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


@pytest.fixture
def dev_run(tmp_path: Path) -> Iterator[DevRun]:
    run = DevRun(tmp_path)
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait()
        for pid in processes_naming(str(run.var)):  # a failed test leaves nothing either
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize(
    ("when", "kill_after"),
    [("ready", 3.0), ("ready", 0.0), ("starting", 3.0)],
    ids=["serving-kill-after-3s", "serving-kill-at-once", "starting-kill-after-3s"],
)
def test_a_supervisor_stop_leaves_no_process_and_frees_the_ports(
    dev_run: DevRun, when: str, kill_after: float
) -> None:
    dev_run.wait_for(when)
    dev_run.stop_as_a_supervisor(kill_after)
    left = dev_run.leftovers()
    assert not left, f"still running: {left}\n{dev_run.text()}"
    busy = [port for port in dev_run.ports if not port_is_free(port)]
    assert not busy, f"ports still taken: {busy}"


def test_the_banner_names_every_port(dev_run: DevRun) -> None:
    dev_run.wait_for("ready")
    http, front, smsc, control = dev_run.ports
    text = dev_run.text()
    for what in (f"127.0.0.1:{http}", f"127.0.0.1:{front}", f"127.0.0.1:{smsc}"):
        assert what in text
    assert f"127.0.0.1:{control}" in text and "SMPP front" in text
    console = f"http://127.0.0.1:{http}/console/"
    assert f"Web console: {console}" in text
    with urllib.request.urlopen(console, timeout=10) as answer:  # to the sign-in form
        assert answer.url.endswith("/console/signin")
        assert b'<label for="token">API token</label>' in answer.read()
    dev_run.stop_as_a_supervisor(10.0)  # the script's own stop: one SIGTERM each
    assert not dev_run.leftovers()
    assert "stopped." in dev_run.text()
    assert "daemon.stopped" in dev_run.text() and "sim.stopped" in dev_run.text()
