"""``[messages]`` and ``[[routes]]``: intake and delivery policy, and which carriers take
which numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.config.loader import check, in_range, max_length, regex
from gateway.smpp.constants import Status


def _status_name(value: int | str) -> str | None:
    if isinstance(value, int):
        return None if 0 <= value <= 0xFFFFFFFF else f"must be a 32-bit status, got {value}"
    return None if value in _STATUS_NAMES else f"unknown command_status name {value!r}"


_STATUS_NAMES = frozenset({"timeout", "generic_nack"} | {"ESME_" + s.name for s in Status})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryRule:
    """``[[messages.retry]]``: what to do when a submit_sm gets this answer."""

    status: int | str = field(metadata=check(_status_name))
    """A command_status number, a name such as ``ESME_RTHROTTLED``, or ``timeout`` (no
    response in time) or ``generic_nack``."""
    attempts: int = field(default=5, metadata=check(in_range(1, 1000)))
    """Submit attempts in all before the message fails."""
    delay: float = field(default=5.0, metadata=check(in_range(0, 86400)))
    """Seconds before the next attempt; doubled after each further failure (capped at 1 h)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessagesConfig:
    """``[messages]``: intake and delivery policy. The section may be left out; every key
    has the default documented here."""

    default_region: str = field(default="", metadata=check(max_length(2)))
    """ISO country whose national numbers are accepted without ``+`` (e.g. ``FR``);
    "" accepts international numbers only."""
    number_check: Literal["valid", "possible"] = "valid"
    """Which phone numbers intake, imports and MO senders accept: ``valid`` (in a range
    phonenumbers' metadata lists; a newly opened range is refused until the library is
    upgraded) or ``possible`` (a known country code and a length that country uses)."""
    default_validity: float = field(default=48 * 3600.0, metadata=check(in_range(60, None)))
    """Seconds a message may wait to be sent when the client sets no ``validity``."""
    max_parts: int = field(default=10, metadata=check(in_range(1, 255)))
    """Longest text accepted, in parts (255 is the most a concatenation header counts)."""
    retry: tuple[RetryRule, ...] = ()
    """Rules that replace the built-in ones for the same status (see gateway.engine.retry)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteConfig:
    """``[[routes]]``: destinations starting with ``prefix`` go to ``carriers``."""

    prefix: str = field(default="", metadata=check(regex(r"\+?[0-9]*", "'+' and digits")))
    """E.164 prefix such as ``+33``; "" matches every number. The longest match wins."""
    carriers: tuple[str, ...] = field(
        metadata=check(lambda v: None if v else "at least one carrier is required")
    )
    weights: tuple[int, ...] = ()
    """Share of traffic per carrier, in the same order; () is equal shares. A carrier whose
    binds are all down is skipped (failover) until one is bound again."""

    def validate(self) -> list[str]:
        if self.weights and len(self.weights) != len(self.carriers):
            return [f"weights: {len(self.weights)} weights for {len(self.carriers)} carriers"]
        if any(w < 0 for w in self.weights) or (self.weights and not any(self.weights)):
            return ["weights: must be >= 0 and not all 0"]
        return []
