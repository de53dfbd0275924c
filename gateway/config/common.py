"""What several sections share: name and port rules, and the checks they use."""

from __future__ import annotations

import zoneinfo
from typing import Any

from gateway.config.loader import all_of, non_empty, regex

NAME_PATTERN = r"[a-z0-9_-]+"
"""Carrier and token names: they appear in logs, metrics labels and bind names."""

MAX_PORT = 65535
"""TCP ports are 16-bit."""

DAY = 86400.0
"""Seconds in a day: config durations are in seconds."""


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be above 0, got {value:g}"


def _time_zone(value: str) -> str | None:
    if value == "UTC":
        return None  # always known, even without a tz database
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r} (an IANA name such as 'Europe/Paris')"
    return None


def _unique(items: tuple[Any, ...], attr: str, section: str) -> list[str]:
    errors: list[str] = []
    seen: dict[Any, int] = {}
    for n, item in enumerate(items):
        value = getattr(item, attr)
        if value in seen:
            errors.append(f"{section}[{n}].{attr}: duplicate of {section}[{seen[value]}].{attr}")
        seen.setdefault(value, n)
    return errors


_name_check = all_of(non_empty, regex(NAME_PATTERN, "lower-case letters, digits, _ and -"))
