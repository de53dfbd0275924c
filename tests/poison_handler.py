"""A keyword handler that kills the process it runs in (SIGKILL): an MO whose handling
crashes or freezes the daemon, for tests/test_inbound_hostile.py's restart test."""

from __future__ import annotations

import os
import signal
from typing import Any


async def crash(message: Any, contact: Any, campaign: Any, reply: Any) -> object:
    os.kill(os.getpid(), signal.SIGKILL)
    return None
