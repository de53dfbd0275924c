"""py-spy on a running process, and a plain-text summary of where its CPU went.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;...;frame count``, one
frame as ``function (file:line)``), sampled 100 times a second while a thread is on the CPU
(idle samples are left out). The summary gives the functions with the most samples at the
top of the stack (self time) and the most samples anywhere in it (inclusive time), both as
shares of every sample: what a flame graph shows, in a table that fits a terminal.
"""

from __future__ import annotations

import re
import shutil
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import PYTHON, SIMULATOR_CPU, Proc, ProcessSet

IDLE_FRAMES = ("_queue_SimpleQueue_get", "PyThread_acquire_lock_timed", "epoll_pwait", "epoll_wait")
"""With native frames py-spy cannot tell a thread waiting in C from one working: samples
whose stack passes through these waits (the SQLite worker waiting for work, the event
loop waiting for I/O) are idle and left out."""

_UNINFORMATIVE = (
    "<frozen runpy>:",
    "gateway/__main__.py:",
    "gateway/app/cli.py:",
    "asyncio/runners.py:",
    "asyncio/base_events.py:BaseEventLoop.run",
    "threading.py:",
    "loop.c:Loop__run",
    "libpython",
    "libc.so",
)
"""Frames on the way into every stack (interpreter start, event loop, thread start): they
would top the inclusive list and say nothing."""

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    """The py-spy executable: next to this Python, or on PATH."""
    beside = Path(PYTHON).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def start(
    procs: ProcessSet, pid: int, out: Path, native: bool = False, rate: int = 100
) -> Proc | None:
    """py-spy recording ``pid`` into ``out``; None when py-spy is not installed.

    By default py-spy reads the target's memory without stopping it (``--nonblocking``:
    the figures of the run stay nearly undisturbed). ``native`` adds C frames (SQLite,
    uvloop, the interpreter), which needs the target paused at each sample.
    """
    exe = py_spy()
    if exe is None:
        return None
    argv = [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate)]
    argv += ["--output", str(out)]
    argv.append("--native" if native else "--nonblocking")
    proc = procs.spawn("py-spy", argv, SIMULATOR_CPU)
    proc.wait_for(r"Sampling process", 10.0)
    return proc


def stop(procs: ProcessSet, proc: Proc) -> None:
    """py-spy writes its file on SIGINT (as on Ctrl-C)."""
    procs.stop(proc, signum=signal.SIGINT)


def _key(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        for marker in ("/gateway/", "/smsc_simulator/", "/bench/"):
            if marker in path:
                path = marker.strip("/") + "/" + path.split(marker, 1)[1]
                break
    return f"{path}:{match.group('func')}"


def _is_python(key: str) -> bool:
    path = key.split(":", 1)[0]
    return path.endswith(".py") or path.startswith("<")


@dataclass
class Summary:
    samples: int
    self_top: list[tuple[str, int]]
    """Leaf frames, C ones included when recorded with native frames."""
    python_self_top: list[tuple[str, int]]
    """Each sample charged to its deepest Python frame (C time goes to its Python caller)."""
    inclusive_top: list[tuple[str, int]]
    """Python frames anywhere in the stack."""

    def as_dict(self) -> dict[str, Any]:
        def rows(pairs: list[tuple[str, int]]) -> list[dict[str, Any]]:
            return [{"function": f, "samples": n} for f, n in pairs]

        return {
            "samples": self.samples,
            "self": rows(self.self_top),
            "python_self": rows(self.python_self_top),
            "inclusive": rows(self.inclusive_top),
        }

    def text(self) -> str:
        if not self.samples:
            return "no samples"

        def block(title: str, pairs: list[tuple[str, int]]) -> list[str]:
            return [title] + [f"  {n / self.samples:6.1%}  {f}" for f, n in pairs]

        lines = [f"{self.samples} samples on CPU (100/s; idle waits left out)"]
        if self.self_top != self.python_self_top:
            lines += block("self time, leaf frame (C frames included):", self.self_top)
        lines += block("self time by Python function:", self.python_self_top)
        lines += block(
            "inclusive time (Python functions anywhere in the stack):", self.inclusive_top
        )
        return "\n".join(lines)


def summarise(path: Path, top: int = 20) -> Summary:
    self_time: Counter[str] = Counter()
    python_self: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if any(idle in stack for idle in IDLE_FRAMES):
            continue
        frames = [_key(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        python = [f for f in frames if _is_python(f)]
        if python:
            python_self[python[-1]] += count
        for key in set(python):
            inclusive[key] += count
    inclusive_top = [
        (k, n) for k, n in inclusive.most_common() if not k.startswith(_UNINFORMATIVE)
    ][:top]
    return Summary(total, self_time.most_common(top), python_self.most_common(top), inclusive_top)
