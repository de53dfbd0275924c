"""The processes a benchmark starts: spawn pinned, find their ports, measure them, stop them.

Every child runs in its own session (``start_new_session``), so its process group is its
pid: stopping sends SIGTERM to the whole group, waits, then SIGKILLs the group. A Ctrl-C at
the terminal reaches only the benchmark (the children are in other process groups); the
benchmark's ``finally`` then stops them. Output goes to a log file per process, never to a
pipe nobody reads (a full pipe would stall a daemon mid-run).

CPU time and peak memory come from ``/proc/<pid>/stat`` (utime + stime, every thread of the
process included) and ``/proc/<pid>/status`` (``VmHWM``, the resident set's high-water mark).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

STOP_GRACE_SECONDS = 15.0
"""SIGTERM first: the gateway unbinds and drains for up to 5 s (gateway.app.daemon
SHUTDOWN_DRAIN_SECONDS) and the simulator for 2 s; after this long the group is killed."""

GATEWAY_CPU = 0
SIMULATOR_CPU = 1
"""On the 2-core reference machine the gateway gets one core, and the simulator (with the
benchmark's own client, which is light) the other."""

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def pinning() -> bool:
    """Whether processes can be pinned: ``taskset`` is there and CPUs 0 and 1 are ours."""
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        return False
    return {GATEWAY_CPU, SIMULATOR_CPU} <= os.sched_getaffinity(0)


def pin_self(cpu: int | None) -> set[int] | None:
    """Pin this process to ``cpu`` (None: leave it). Returns the previous affinity."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    return before


def restore_affinity(cpus: set[int] | None) -> None:
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far; 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy() -> float:
    """CPU-seconds every CPU of the machine has spent busy since boot (/proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def _status_kib(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def peak_rss_mib(pid: int) -> float:
    """Peak resident set (VmHWM) in MiB; 0.0 once the process is gone."""
    return _status_kib(pid, "VmHWM") / 1024


def alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class StartError(RuntimeError):
    """A process did not come up; the message carries the tail of its log."""


@dataclass
class Proc:
    """One child process and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    cpu: int | None
    argv: list[str]
    exit_code: int | None = None
    stopped_by: str = ""
    """How it ended: "" (running), "exited", "sigterm", "sigkill"."""
    samples: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until a line of the log matches ``pattern``; StartError if the process
        exits first or ``timeout`` passes."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = self.log_path.read_text(errors="replace")
            except OSError:
                text = ""
            match = regex.search(text)
            if match is not None:
                return match
            if self.popen.poll() is not None:
                raise StartError(
                    f"{self.name} exited with {self.popen.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise StartError(f"{self.name} not ready within {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.02)

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "cpu": self.cpu,
            "argv": self.argv,
            "exit_code": self.exit_code,
            "stopped_by": self.stopped_by,
            "alive_after_stop": alive(self.pid) if self.stopped_by else None,
        }


class ProcessSet:
    """Every process a benchmark run started; ``stop_all`` (in a ``finally``) ends them."""

    def __init__(self, log_dir: Path, pin: bool) -> None:
        self.log_dir = log_dir
        self.pin = pin
        self.taskset = shutil.which("taskset") if pin else None
        self.procs: list[Proc] = []

    def spawn(self, name: str, argv: list[str], cpu: int | None = None) -> Proc:
        command = list(argv)
        if self.taskset is not None and cpu is not None:
            command = [self.taskset, "-c", str(cpu), *command]  # taskset execs: same pid
        else:
            cpu = None
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path, cpu, command)
        self.procs.append(proc)
        return proc

    def spawn_python(self, name: str, args: list[str], cpu: int | None = None) -> Proc:
        return self.spawn(name, [PYTHON, *args], cpu)

    def stop(
        self, proc: Proc, grace: float = STOP_GRACE_SECONDS, signum: int = signal.SIGTERM
    ) -> None:
        """``signum`` (SIGTERM) to the process group, wait up to ``grace``, then SIGKILL the
        group. Idempotent."""
        if proc.stopped_by:
            return
        popen = proc.popen
        if popen.poll() is not None:
            proc.stopped_by = "exited"
        else:
            _signal_group(popen.pid, signum)
            try:
                popen.wait(timeout=grace)
                proc.stopped_by = signal.Signals(signum).name.lower()
            except subprocess.TimeoutExpired:
                # The leader is not reaped yet, so its pid is still the group's id.
                _signal_group(popen.pid, signal.SIGKILL)
                popen.wait(timeout=5)
                proc.stopped_by = "sigkill"
        proc.exit_code = popen.returncode

    def stop_all(self) -> None:
        """Stop every process still running, the last started first."""
        errors: list[BaseException] = []
        for proc in reversed(self.procs):
            try:
                self.stop(proc)
            except BaseException as exc:  # keep stopping the others, then re-raise
                errors.append(exc)
        if errors:
            raise errors[0]

    def records(self) -> list[dict[str, Any]]:
        return [p.record() for p in self.procs]


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass
