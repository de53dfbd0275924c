"""Figures, targets, the printed table and the JSON file."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One measured value, with the issue's target beside it where there is one."""

    label: str
    value: float | str | None
    unit: str = ""
    target: str = ""
    met: bool | None = None
    """True / False against the target; None where there is no target or no value."""
    note: str = ""

    def shown(self) -> str:
        value = self.value
        if value is None:
            return "n/a"
        if isinstance(value, str):
            return value
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 100:
            text = f"{value:,.0f}"
        elif abs(value) >= 10:
            text = f"{value:.1f}"
        else:
            text = f"{value:.3g}" if value else "0"
        return f"{text} {self.unit}".rstrip()


@dataclass
class ScenarioResult:
    name: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def figure(self, label: str) -> Figure | None:
        for f in self.figures:
            if f.label == label:
                return f
        return None


def at_least(value: float | None, target: float) -> bool | None:
    return None if value is None or math.isnan(value) else value >= target


def at_most(value: float | None, target: float) -> bool | None:
    return None if value is None or math.isnan(value) else value <= target


def _mark(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: ""}[met]


def table(results: Sequence[ScenarioResult]) -> str:
    rows: list[tuple[str, str, str, str, str]] = []
    for result in results:
        name = result.name
        if result.error:
            rows.append((name, "error", result.error.splitlines()[0][:70], "", ""))
        for fig in result.figures:
            rows.append((name, fig.label, fig.shown(), fig.target, _mark(fig.met)))
            name = ""
    headers = ("scenario", "figure", "value", "target", "")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)

    def fmt(row: Sequence[str]) -> str:
        cells = [
            row[i].rjust(widths[i]) if i == 2 else row[i].ljust(widths[i]) for i in range(len(row))
        ]
        return "  ".join(cells).rstrip()

    out = [fmt(headers), line]
    previous = None
    for row in rows:
        if row[0] and previous is not None:
            out.append("")
        out.append(fmt(row))
        previous = row
    return "\n".join(out)


def write_json(path: Path, meta: dict[str, Any], results: Sequence[ScenarioResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "scenarios": [asdict(r) for r in results]}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when there are none)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]
