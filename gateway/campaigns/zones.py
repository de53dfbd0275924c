"""A phone number's time zones, from phonenumbers' time-zone data. Pure code.

``phonenumbers.timezone.time_zones_for_number`` gives the zones of a number's area (a US
area code, a French number) or, for a number not tied to a place (an Australian mobile), of
its whole country: several zones. When it knows nothing (``Etc/Unknown``) the zones of the
country code are taken; when those are unknown too, ``fallback`` (``[node] time_zone``).
A zone name that this machine's tz database lacks is left out.
"""

from __future__ import annotations

import functools
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

UNKNOWN: Final = "Etc/Unknown"

_BY_PREFIX: Final[dict[str, tuple[str, ...]]] = getattr(pn_timezone, "TIMEZONE_DATA", {})
"""phonenumbers' table, prefix (country code first) to zones; its country-code entries are
the country's zones."""


@functools.lru_cache(maxsize=1024)
def _known(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def number_zones(number: str, fallback: str = "UTC") -> tuple[str, ...]:
    """The IANA zones of an E.164 ``number``, sorted; ``(fallback,)`` when unknown."""
    try:
        parsed = phonenumbers.parse(number)
        zones: tuple[str, ...] = tuple(pn_timezone.time_zones_for_number(parsed))
    except phonenumbers.NumberParseException:
        return (fallback,)
    if not zones or zones == (UNKNOWN,):
        zones = tuple(_BY_PREFIX.get(str(parsed.country_code), ()))
    found = tuple(sorted(z for z in zones if z != UNKNOWN and _known(z)))
    return found or (fallback,)
