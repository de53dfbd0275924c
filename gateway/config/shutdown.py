"""``[shutdown]``: what SIGTERM does."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.loader import check, in_range


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownConfig:
    """``[shutdown]``: what SIGTERM does (see gateway.app.lifecycle). The section may be left
    out; every key has the default documented here."""

    drain_seconds: float = field(default=5.0, metadata=check(in_range(0, 600)))
    """After SIGTERM: seconds to wait for answers to submit_sm in flight, then seconds each
    bind keeps reading responses and receipts after its unbind. Stays well inside systemd's
    TimeoutStopSec (45 s in systemd/smsgw.service)."""
    retry_after_seconds: int = field(default=30, metadata=check(in_range(1, 3600)))
    """``Retry-After`` on the 503 that intake routes answer while the gateway drains."""
    pid_file: str = ""
    """When set, ``smsgw run`` writes its pid there (relative to ``node.data_dir``) for
    ``smsgw reload``; under systemd, ``systemctl reload smsgw`` needs none."""
