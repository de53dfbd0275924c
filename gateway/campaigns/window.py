"""A campaign's daily send window (e.g. 09:00-20:00 in Europe/Paris). Pure code.

``from`` is inclusive and ``to`` exclusive, in local time of ``time_zone``. A window whose
``to`` is earlier than its ``from`` (22:00-06:00) runs across midnight; equal times mean the
whole day. Daylight-saving changes are handled by zoneinfo: the window follows the wall
clock, so it is 11 hours long in UTC terms on both sides of the change.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HHMM: Final = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class WindowError(ValueError):
    """A send window that cannot be used; the message is for the client."""


def parse_hhmm(value: object) -> datetime.time:
    if not isinstance(value, str) or not _HHMM.fullmatch(value):
        raise WindowError(f"must be a time of day as HH:MM (00:00-23:59), got {value!r}")
    hours, minutes = value.split(":")
    return datetime.time(int(hours), int(minutes))


@dataclass(frozen=True, slots=True)
class SendWindow:
    start: datetime.time
    end: datetime.time
    zone: ZoneInfo

    @classmethod
    def from_json(cls, value: Any) -> SendWindow:
        if not isinstance(value, dict):
            raise WindowError('must be an object {"from": "09:00", "to": "20:00", "time_zone"}')
        unknown = set(value) - {"from", "to", "time_zone"}
        if unknown:
            raise WindowError(f"unknown field(s): {', '.join(sorted(unknown))}")
        zone_name = value.get("time_zone", "UTC")
        if not isinstance(zone_name, str) or not zone_name:
            raise WindowError("time_zone must be an IANA time zone name such as Europe/Paris")
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise WindowError(f"time_zone: unknown time zone {zone_name!r}") from None
        return cls(parse_hhmm(value.get("from")), parse_hhmm(value.get("to")), zone)

    def as_json(self) -> dict[str, str]:
        return {
            "from": self.start.strftime("%H:%M"),
            "to": self.end.strftime("%H:%M"),
            "time_zone": self.zone.key,
        }

    def _open_at(self, local: datetime.time) -> bool:
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def is_open(self, now: float) -> bool:
        local = datetime.datetime.fromtimestamp(now, self.zone)
        return self._open_at(local.time().replace(second=0, microsecond=0))

    def next_open(self, now: float) -> float:
        """``now`` when the window is open, else the epoch time it next opens."""
        if self.is_open(now):
            return now
        local = datetime.datetime.fromtimestamp(now, self.zone)
        for days in range(0, 3):
            day = local.date() + datetime.timedelta(days=days)
            opening = datetime.datetime.combine(day, self.start, tzinfo=self.zone)
            at = opening.timestamp()
            if at > now:
                return at
        raise AssertionError("a daily window opens within two days")  # pragma: no cover
