"""SMPP times (spec 7.1.1) written by the gateway: the relative form of validity_period.

Pure code over plain values, as the rest of ``gateway.smpp``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["relative_time"]

_DAY: Final = 86400
_MONTH: Final = 30 * _DAY
_YEAR: Final = 365 * _DAY
"""A relative time's months and years: the spec leaves them loose; SMSCs count them so."""

_MAX_DAYS_ALONE: Final = 99
"""Up to 99 days the time is written in days, hours, minutes and seconds only (exact);
beyond, years and months take the rest."""


_CACHE_SIZE: Final = 1024
"""Times kept written: the submit path writes one per part, and the parts of a burst
(accepted together) mostly share their second, so a small cache answers most of them (a
dict hit is a tenth of the arithmetic below)."""

_cache: dict[int, str] = {}


def relative_time(seconds: int) -> str:
    """``YYMMDDhhmmss000R``: ``seconds`` from now as a relative SMPP time. At least one
    second (a zero time reads as "no validity" to some SMSCs); at most 99 years."""
    text = _cache.get(seconds)
    if text is None:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        text = _cache[seconds] = _relative_time(seconds)
    return text


def _relative_time(seconds: int) -> str:
    s = min(max(int(seconds), 1), 99 * _YEAR + 11 * _MONTH + 29 * _DAY + 86399)
    years = months = 0
    if s >= (_MAX_DAYS_ALONE + 1) * _DAY:
        years, s = divmod(s, _YEAR)
        months, s = divmod(s, _MONTH)
    days, s = divmod(s, _DAY)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return f"{years:02d}{months:02d}{days:02d}{hours:02d}{minutes:02d}{s:02d}000R"
