"""``[compliance]``: rules every campaign keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.campaigns.window import SendWindow, WindowError, parse_hours
from gateway.config.loader import check


def _quiet_hours(value: str) -> str | None:
    if not value:
        return None
    try:
        hours = parse_hours(value)
    except WindowError as exc:
        return str(exc)
    if hours.start == hours.end:
        return f"{value!r} allows the whole day: leave quiet_hours out instead"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ComplianceConfig:
    """``[compliance]`` (optional): rules every campaign keeps."""

    quiet_hours: str = field(default="", metadata=check(_quiet_hours))
    """``"08:00-21:00"``: the hours campaign messages may go out, in each recipient's local
    time (the quiet hours are the rest of the day). A campaign's send window is kept inside
    them: one in the recipients' local time that reaches outside is refused, any other is
    intersected with them. Replies to an MO (opt-out confirmations, HELP, keyword replies)
    and API messages are not held. "" (the default): no gateway-wide hours."""

    def hours(self) -> SendWindow | None:
        return parse_hours(self.quiet_hours) if self.quiet_hours else None
