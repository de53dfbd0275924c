"""The campaigns that want a daily digest, for gateway.reports.digest (its
``DigestCampaigns`` protocol): started campaigns with ``digest`` addresses.

A draft or scheduled campaign has not started: no digest. A cancelled one sends none
either (its owner stopped it). Running, paused and done campaigns get theirs for
``digest.days`` days after the start; returning one whose days are over is harmless (the
scheduler checks the dates), but those are left out when plainly past.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from gateway.campaigns.runner import DONE, PAUSED, RUNNING
from gateway.config import DAY
from gateway.reports.digest import DigestCampaign
from gateway.store.ports import Campaigns

_STARTED: Final = (RUNNING, PAUSED, DONE)


class CampaignDigestSource:
    def __init__(self, store: Campaigns) -> None:
        self.store = store

    async def digest_campaigns(self, now: float) -> Sequence[DigestCampaign]:
        found: list[DigestCampaign] = []
        for c in await self.store.campaigns(_STARTED):
            digest = c.spec.get("digest")
            if not digest or not digest.get("to") or c.started_at is None:
                continue
            days = digest.get("days")
            if days is not None and c.started_at + (int(days) + 1) * DAY < now:
                continue
            found.append(
                DigestCampaign(
                    id=c.id,
                    name=c.name,
                    started_at=c.started_at,
                    to=tuple(digest["to"]),
                    days=int(days) if days is not None else None,
                )
            )
        return found
