"""A campaign's daily send window (e.g. 09:00-20:00 in Europe/Paris). Pure code.

``from`` is inclusive and ``to`` exclusive, in local time of ``time_zone``; with
``time_zone = "recipient_local"`` in each recipient's own local time (:class:`LocalHours`,
zones from gateway.campaigns.zones), and the gateway's ``[compliance] quiet_hours`` hold
for every campaign in the recipient's local time as well. A window whose
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


RECIPIENT_LOCAL: Final = "recipient_local"
"""``time_zone`` of a window kept in each recipient's own local time."""

UTC_ZONE: Final = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class SendWindow:
    start: datetime.time
    end: datetime.time
    zone: ZoneInfo
    recipient_local: bool = False
    """The hours are each recipient's local time (``zone`` is then unused: UTC)."""

    @classmethod
    def from_json(cls, value: Any) -> SendWindow:
        if not isinstance(value, dict):
            raise WindowError('must be an object {"from": "09:00", "to": "20:00", "time_zone"}')
        unknown = set(value) - {"from", "to", "time_zone"}
        if unknown:
            raise WindowError(f"unknown field(s): {', '.join(sorted(unknown))}")
        zone_name = value.get("time_zone", "UTC")
        if zone_name == RECIPIENT_LOCAL:
            return cls(parse_hhmm(value.get("from")), parse_hhmm(value.get("to")), UTC_ZONE, True)
        if not isinstance(zone_name, str) or not zone_name:
            raise WindowError(
                "time_zone must be an IANA time zone name such as Europe/Paris,"
                f" or {RECIPIENT_LOCAL!r}"
            )
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise WindowError(f"time_zone: unknown time zone {zone_name!r}") from None
        return cls(parse_hhmm(value.get("from")), parse_hhmm(value.get("to")), zone)

    def as_json(self) -> dict[str, str]:
        return {
            "from": self.start.strftime("%H:%M"),
            "to": self.end.strftime("%H:%M"),
            "time_zone": RECIPIENT_LOCAL if self.recipient_local else self.zone.key,
        }

    def in_zone(self, zone: ZoneInfo) -> SendWindow:
        """These hours in ``zone``."""
        return SendWindow(self.start, self.end, zone)

    def within(self, outer: SendWindow) -> bool:
        """Whether every minute of these daily hours is inside ``outer``'s (same clock)."""
        if outer.start == outer.end:
            return True
        if self.start == self.end:
            return False
        minutes = _minutes(self.start, self.end)
        allowed = set(_minutes(outer.start, outer.end))
        return all(m in allowed for m in minutes)

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


def _minutes(start: datetime.time, end: datetime.time) -> list[int]:
    """Minutes of the day (0-1439) from ``start`` (inclusive) to ``end`` (exclusive)."""
    first = start.hour * 60 + start.minute
    last = end.hour * 60 + end.minute
    if last <= first:
        last += 24 * 60
    return [m % (24 * 60) for m in range(first, last)]


def parse_hours(value: str) -> SendWindow:
    """``"08:00-21:00"`` as daily hours (in UTC until placed with ``in_zone``)."""
    start, sep, end = value.partition("-")
    if not sep:
        raise WindowError(f"must be HH:MM-HH:MM, got {value!r}")
    return SendWindow(parse_hhmm(start.strip()), parse_hhmm(end.strip()), UTC_ZONE)


SEARCH_DAYS: Final = 3
"""How far ahead the common opening of several windows is searched: daily windows that
overlap at all do so within two days."""


def common_opening(windows: list[SendWindow], now: float) -> float | None:
    """The first time from ``now`` at which every one of ``windows`` is open (``now`` if
    they all are); None when they never are together (hours that do not overlap, such as
    08:00-21:00 in time zones 21 hours apart)."""
    at = now
    horizon = now + SEARCH_DAYS * 86400
    while at <= horizon:
        closed = next((w for w in windows if not w.is_open(at)), None)
        if closed is None:
            return at
        at = closed.next_open(at)
    return None


class LocalHours:
    """When a recipient may get a campaign message: every window in force (the campaign's,
    fixed or in the recipient's zones, and the gateway's quiet hours in the recipient's
    zones) open at once. A number whose prefix spans several zones must be inside the hours
    in each of them (the most restrictive reading). Results are cached per set of zones:
    a few hundred sets exist, whatever the audience."""

    def __init__(self, campaign: SendWindow | None, quiet: SendWindow | None, now: float) -> None:
        self.campaign = campaign
        self.quiet = quiet
        self.now = now
        self._due: dict[tuple[str, ...], float | None] = {}

    @property
    def per_recipient(self) -> bool:
        """Whether the answer depends on the recipient at all."""
        return self.quiet is not None or (
            self.campaign is not None and self.campaign.recipient_local
        )

    def due(self, zones: tuple[str, ...]) -> float | None:
        """When a recipient in ``zones`` may be sent to: ``now`` when now, a later time when
        they must wait, None when never (the hours never overlap in their zones)."""
        if zones in self._due:
            return self._due[zones]
        windows: list[SendWindow] = []
        places = [ZoneInfo(z) for z in zones]
        if self.campaign is not None:
            if self.campaign.recipient_local:
                windows += [self.campaign.in_zone(p) for p in places]
            else:
                windows.append(self.campaign)
        if self.quiet is not None:
            windows += [self.quiet.in_zone(p) for p in places]
        due = common_opening(windows, self.now)
        self._due[zones] = due
        return due
