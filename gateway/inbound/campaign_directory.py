"""What the MO path asks of campaigns: the :class:`CampaignDirectory` protocol.

Campaigns live elsewhere (the campaigns engine). The MO path needs only four things of them:
which campaign an MO belongs to (``campaign``: its reply window), which keyword rules are
active on one of our numbers (``keyword_rules``: a campaign keyword wins over correlation),
the campaign's courtesy reply, and what a Python handler is given as ``campaign``.
:class:`NoCampaigns` is the default: it knows no campaign, so correlation falls back to the
``campaign_id`` of the MTs and ``[inbound].reply_window``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.config import DAY, KeywordRuleConfig

DEFAULT_REPLY_WINDOW = 10 * DAY


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    """A campaign as the MO path sees it."""

    id: str
    name: str = ""
    sender: str | None = None
    """The number it sends from (our number), when known."""
    keywords: tuple[KeywordRuleConfig, ...] = ()
    """Its keyword rules; their ``campaign_id`` is taken to be ``id``."""
    courtesy_reply: str = ""
    """Reply to an MO of this campaign that matches no rule; "" for the number's."""
    reply_window: float = DEFAULT_REPLY_WINDOW
    """Seconds after its last MT to a subscriber during which the subscriber's MOs are its."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else the campaigns engine wants handlers to see."""


class CampaignDirectory(Protocol):
    async def campaign(self, campaign_id: str) -> CampaignInfo | None:
        """The campaign with this id, or None (unknown, deleted)."""

    async def keyword_campaigns(self, number: str) -> Sequence[CampaignInfo]:
        """Campaigns whose keyword rules are active on ``number`` (ours, as configured)."""


class NoCampaigns:
    """The directory of a gateway without the campaigns engine: no campaign is known."""

    async def campaign(self, campaign_id: str) -> CampaignInfo | None:
        return None

    async def keyword_campaigns(self, number: str) -> Sequence[CampaignInfo]:
        return ()
