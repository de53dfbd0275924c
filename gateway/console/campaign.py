"""What a campaign's page shows, from ``GET /v1/campaigns/{id}`` and its ``/stats``: the
funnel, the first 24 hours by the hour and the first 10 days by the day, the keyword
breakdown (gateway.campaigns.service documents every figure)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final

from markupsafe import Markup

from gateway.console.charts import COLOURS, Series, bar_chart, line_chart

CAMPAIGN_REFRESH_SECONDS: Final = 10
"""A campaign's page asks for fresh figures this often while they can still move."""
MOVING: Final = frozenset({"scheduled", "running", "paused"})
"""Statuses in which a campaign's figures still change (sends, receipts, replies)."""
TIMELINE: Final = (
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("undelivered", "Failed"),
    ("replies", "Replies"),
    ("clicks", "Clicks"),
    ("opt_outs", "Opt-outs"),
)
"""The figures of the hourly and daily charts, as ``timelines`` names them."""


def _at(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def still_moving(campaign: Mapping[str, Any], now: float) -> bool:
    """Whether the page should refresh itself: while the campaign sends (scheduled,
    running, paused), and once done for as long as its replies are still matched to it
    (its ``reply_window_days`` after it finished)."""
    status = campaign.get("status")
    if status in MOVING:
        return True
    finished = _at(campaign.get("finished_at"))
    days = campaign.get("reply_window_days")
    if status != "done" or finished is None or not isinstance(days, int | float):
        return False
    return now < finished + float(days) * 86400


def _timeline(
    chart_id: str, title: str, unit: str, labels: list[str], timeline: Mapping[str, Any]
) -> dict[str, Any]:
    series = [
        Series(name, label, [int(v) for v in timeline.get(name, [])])
        for name, label in TIMELINE
        if isinstance(timeline.get(name), list)
    ]
    totals = ", ".join(f"{s.label.lower()} {sum(s.values)}" for s in series)
    desc = f"One point per {unit}: {totals}. The same figures are in the table below."
    return {
        "svg": line_chart(chart_id, title, desc, labels, series),
        "labels": labels,
        "series": series,
    }


def campaign_charts(campaign: Mapping[str, Any], stats: Mapping[str, Any]) -> dict[str, Any]:
    """The page's charts (inline SVG) and the rows of the tables beside them."""
    funnel = stats.get("funnel") or {}
    steps = [
        ("Audience", int(funnel.get("audience", 0))),
        ("Sent", int(funnel.get("sent", 0))),
        ("Delivered", int(funnel.get("delivered", 0))),
        ("Clicked", int(funnel.get("clicked", 0))),
        ("Replied", int(funnel.get("replied", 0))),
    ]
    described = ", ".join(f"{label.lower()} {value}" for label, value in steps)
    timelines = stats.get("timelines") or {}
    per_hour = timelines.get("per_hour") or {}
    per_day = timelines.get("per_day") or {}
    hours = len(per_hour.get("sent", [])) or 24
    days = len(per_day.get("sent", [])) or 10
    keywords = sorted(
        ((str(k), int(v)) for k, v in (stats.get("answers_per_keyword") or {}).items()),
        key=lambda kv: (-kv[1], kv[0]),
    )
    out: dict[str, Any] = {
        "funnel": bar_chart(
            "funnel",
            "Funnel",
            f"From the audience to the replies: {described}.",
            steps,
            COLOURS["sent"],
            share=True,
        ),
        "funnel_rows": steps,
        "hours": _timeline(
            "per-hour",
            "The first 24 hours, by the hour",
            "hour after the start",
            [f"+{h} h" for h in range(hours)],
            per_hour,
        ),
        "days": _timeline(
            "per-day",
            "The first 10 days, by the day",
            "day after the start",
            [f"day {d + 1}" for d in range(days)],
            per_day,
        ),
        "keywords": keywords,
        "keywords_svg": bar_chart(
            "keywords",
            "Answers per keyword",
            "Responses by the keyword they matched: "
            + (", ".join(f"{k} {v}" for k, v in keywords) or "none yet")
            + ".",
            keywords,
            COLOURS["replies"],
        )
        if keywords
        else Markup(""),
    }
    return out
