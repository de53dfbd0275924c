"""Refusals on the front as log lines an operator can read, without a flood.

Every refused bind and every submit_sm / data_sm answered with an error is one
``front.rejected`` (or ``front.bind_refused``) line at info, with the account, the peer,
the command_status and the reason; as the HTTP API's ``api.rejected``. A misbehaving ESME
can be refused thousands of times a second, so lines are limited per (event, account,
status): at most ``burst`` in each ``interval`` seconds; the first line after a quiet spell
says how many were left out (``suppressed=N``). The metrics count every one.

The same limit holds ``front.accept_failed`` (a warning: the store refused a commit of
submits, e.g. while it is short of space or its file is gone), keyed by the error's type:
while the store is degraded every batch fails, and one warning per batch would flood the log.

Time is passed in (the event loop's clock), so tests need no sleeps. Memory is bounded: at
most ``max_keys`` keys, the oldest forgotten first.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Final

from gateway.logs import log_event

INTERVAL_SECONDS: Final = 10.0
"""Lines per key are counted over this long: a refusal storm shows up within ten seconds."""

BURST: Final = 5
"""Lines per key and interval: enough to see a few examples of what is refused."""

MAX_KEYS: Final = 1_000
"""Keys are (event, account, status); accounts come from the configuration, but a bind may
name any system_id: bounded so a stream of made-up ids cannot grow the table."""


class _Count:
    __slots__ = ("lines", "since", "suppressed")

    def __init__(self, since: float) -> None:
        self.since = since
        self.lines = 0
        self.suppressed = 0


class RefusalLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = INTERVAL_SECONDS,
        burst: int = BURST,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.burst = burst
        self.max_keys = max_keys
        self.suppressed_total = 0
        self._counts: OrderedDict[tuple[str, str, str], _Count] = OrderedDict()

    def log(
        self,
        event: str,
        now: float,
        *,
        account: str,
        status: str,
        level: int = logging.INFO,
        **fields: Any,
    ) -> bool:
        """Log one refusal (at ``level``) unless its key is over the limit; True when a line
        was written."""
        key = (event, account, status)
        count = self._counts.get(key)
        if count is None:
            if len(self._counts) >= self.max_keys:
                self._counts.popitem(last=False)
            count = self._counts[key] = _Count(now)
        elif now - count.since >= self.interval:
            count.since = now
            count.lines = 0
        self._counts.move_to_end(key)
        if count.lines >= self.burst:
            count.suppressed += 1
            self.suppressed_total += 1
            return False
        count.lines += 1
        extra: dict[str, Any] = {}
        if count.suppressed:
            extra["suppressed"] = count.suppressed
            count.suppressed = 0
        log_event(
            self.logger,
            event,
            level,
            account=account,
            status=status,
            **fields,
            **extra,
        )
        return True


__all__ = ["RefusalLog"]
