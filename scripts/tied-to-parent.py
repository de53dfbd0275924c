#!/usr/bin/env python3
"""Run a command in a session of its own, stopped with SIGTERM when its parent dies.

    tied-to-parent.py PARENT_PID COMMAND [ARG...]

scripts/dev-run.sh starts the simulator and the gateway through this. Their own session keeps
a Ctrl-C (or a signal to the script's process group) from reaching them directly: the script
stops each with a single SIGTERM, a graceful drain. And however the script ends, even by
SIGKILL after a supervisor's timeout, the kernel sends them SIGTERM (Linux
PR_SET_PDEATHSIG, kept across exec), so neither outlives it holding its ports.

PARENT_PID is the pid the caller expects as parent: if it is already gone by the time the
guard is set (the parent died in between), the command is not started at all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""


def tie_to_parent(parent: int) -> bool:
    """SIGTERM to this process when its parent dies; False where Linux prctl is missing."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # died before the guard was set: it would never fire
        raise SystemExit(0)
    return True


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit():
        raise SystemExit("usage: tied-to-parent.py PARENT_PID COMMAND [ARG...]")
    os.setsid()
    if not tie_to_parent(int(argv[0])):
        print(
            f"{argv[1]}: no parent-death signal on {sys.platform}: stop it yourself if"
            " the script is killed",
            file=sys.stderr,
        )
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
