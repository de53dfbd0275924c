"""``[digest]``: the daily campaign digest by e-mail."""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.common import MAX_PORT, _time_zone
from gateway.config.loader import check, in_range, non_empty, regex
from gateway.config.node import NodeConfig

# [digest] is optional: without it no digest is sent. With it, [digest.smtp] names the mail
# server. gateway.reports.digest describes what is sent and when.

SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}
"""The usual port of each SMTP security mode: submission (RFC 6409), submissions (RFC 8314),
plain SMTP."""

MAX_DIGEST_DAYS = 366

_EMAIL = r"[^@\s<>(),;:\\\"\[\]]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
"""A plain address ``local@domain.tld``: what a digest may be sent from or to."""


def _clock_time(value: str) -> str | None:
    try:
        datetime.time.fromisoformat(value)
    except ValueError:
        return f"must be a time of day as HH:MM, got {value!r}"
    return None if len(value) == 5 else f"must be a time of day as HH:MM, got {value!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpConfig:
    """``[digest.smtp]``: the mail server digests go through (aiosmtplib)."""

    host: str = field(metadata=check(non_empty))
    port: int | None = field(default=None, metadata=check(in_range(1, MAX_PORT)))
    """Default by ``security``: 587 (starttls), 465 (tls), 25 (none)."""
    security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls``: plain connection upgraded with STARTTLS (required, not opportunistic);
    ``tls``: TLS from the first byte; ``none``: no encryption (a relay on localhost)."""
    user: str = ""
    """Log in as this user when set."""
    password: str = field(default="", repr=False)
    """Never logged, never shown in repr()."""
    timeout: float = field(default=30.0, metadata=check(in_range(1, 600)))
    """Seconds for each SMTP step."""

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else SMTP_PORTS[self.security]

    def validate(self) -> list[str]:
        if self.password and not self.user:
            return ["password: set without a user"]
        return []


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestConfig:
    """``[digest]``: each day at ``time`` (in ``time_zone``), for the first ``days`` days of a
    campaign (a campaign may ask for another number), an e-mail with that day's counts and
    interactions (CSV attached) to the campaign's digest addresses (at most 5)."""

    smtp: SmtpConfig
    from_address: str = field(metadata=check(regex(_EMAIL, "an e-mail address")))
    """The From: of digests."""
    time: str = field(default="18:00", metadata=check(_clock_time))
    """Local time of day the digest goes out, HH:MM."""
    time_zone: str = field(default="", metadata=check(lambda v: _time_zone(v) if v else None))
    """IANA time zone of ``time`` and of the day boundaries; "" is ``node.time_zone``."""
    days: int = field(default=10, metadata=check(in_range(1, MAX_DIGEST_DAYS)))
    """Digests per campaign, from its start, when the campaign does not say."""
    check_interval: float = field(default=60.0, metadata=check(in_range(1, 3600)))
    """Seconds between looks for a digest due: a digest leaves at most this late."""
    retry_interval: float = field(default=300.0, metadata=check(in_range(1, 86400)))
    """Seconds before a digest that failed (SMTP down) is tried again."""

    @property
    def clock_time(self) -> datetime.time:
        return datetime.time.fromisoformat(self.time)

    def tzinfo(self, node: NodeConfig) -> datetime.tzinfo:
        """The zone of ``time``: ``time_zone``, or the node's."""
        name = self.time_zone or node.time_zone
        return datetime.UTC if name == "UTC" else zoneinfo.ZoneInfo(name)
