"""Counters of the MO path, for /metrics (collected by :class:`InboundService`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(slots=True)
class InboundStats:
    """Counters for /metrics; labels are bounded: configured numbers and rule names."""

    mo: Counter[tuple[str, str]]  # (number, keyword)
    actions: Counter[str]
    failed: Counter[str]
    parts: int = 0
    incomplete: int = 0
    retried: int = 0
    quarantined: int = 0
    taken_over: int = 0
    """Pending MOs taken over from nodes that stopped (``InboundService.take_over``)."""

    @classmethod
    def new(cls) -> InboundStats:
        return cls(Counter(), Counter(), Counter())
