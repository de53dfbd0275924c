"""An MO as actions and Python handlers see it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """An MO as a Python handler sees it."""

    id: int
    """The interaction's id (``POST /v1/interactions/{id}/reply`` answers it)."""
    source: str
    destination: str
    text: str
    received_at: float
    keyword: str | None
    rule: str | None
    campaign_id: str | None
    complete: bool
    carrier: str
