"""What the inbound (MO) side asks about campaigns, answered from the campaign store.

:class:`StoreCampaignDirectory` is this branch's implementation of the inbound side's
campaign lookup (the ``CampaignDirectory`` protocol of gateway.inbound.campaign_directory:
``campaign(id)`` and ``keyword_campaigns(number)``, both answering its ``CampaignInfo``), plus
finer questions: a campaign's keyword rules, its courtesy reply, its reply window, and
which campaign owns a keyword on one of our numbers. Campaigns are read from the store and
kept in memory; :meth:`refresh` reloads them (the campaign service calls it on every
change).

Only two-way campaigns answer MOs: a one-way campaign has no rules and no courtesy reply.
A keyword belongs to the two-way campaign sending from that number that started last and
is running, paused or done within its reply window (a draft, scheduled or cancelled
campaign owns nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from gateway.campaigns.runner import DONE, PAUSED, RUNNING
from gateway.campaigns.service import DEFAULT_REPLY_WINDOW_DAYS, rules_of
from gateway.config import DAY, KeywordRuleConfig
from gateway.inbound.campaign_directory import CampaignInfo
from gateway.inbound.keywords import KeywordRule, read
from gateway.store.campaign_base import CampaignRecord
from gateway.store.ports import Campaigns

_LIVE: Final = (RUNNING, PAUSED, DONE)


class StoreCampaignDirectory:
    def __init__(self, store: Campaigns, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self._campaigns: dict[str, CampaignRecord] = {}
        self._rules: dict[str, tuple[KeywordRuleConfig, ...]] = {}

    async def refresh(self) -> None:
        campaigns = {c.id: c for c in await self.store.campaigns()}
        self._rules = {cid: rules_of(c) for cid, c in campaigns.items()}
        self._campaigns = campaigns

    def record(self, campaign_id: str) -> CampaignRecord | None:
        return self._campaigns.get(campaign_id)

    def _info(self, c: CampaignRecord) -> CampaignInfo:
        two_way = bool(c.spec.get("two_way"))
        return CampaignInfo(
            id=c.id,
            name=c.name,
            sender=c.sender,
            keywords=self._rules.get(c.id, ()) if two_way else (),
            courtesy_reply=(c.spec.get("courtesy_reply") or "") if two_way else "",
            reply_window=float(c.spec.get("reply_window_days", DEFAULT_REPLY_WINDOW_DAYS)) * DAY,
            extra={"status": c.status, "two_way": two_way, "text": c.text},
        )

    async def campaign(self, campaign_id: str) -> CampaignInfo | None:
        """The campaign with this id (any status), or None."""
        c = self._campaigns.get(campaign_id)
        return None if c is None else self._info(c)

    async def keyword_campaigns(self, number: str) -> Sequence[CampaignInfo]:
        """Two-way campaigns whose rules are active on ``number``, newest start first."""
        return [self._info(c) for c in self._active(number)]

    def _active(self, number: str) -> list[CampaignRecord]:
        now = self.clock()
        active = []
        for c in self._campaigns.values():
            if c.sender != number or c.status not in _LIVE or not c.spec.get("two_way"):
                continue
            window = float(c.spec.get("reply_window_days", DEFAULT_REPLY_WINDOW_DAYS)) * DAY
            if c.status == DONE and (c.finished_at or now) + window < now:
                continue
            active.append(c)
        active.sort(key=lambda c: c.started_at or c.created_at, reverse=True)
        return active

    async def keyword_rules(self, campaign_id: str) -> tuple[KeywordRuleConfig, ...]:
        """The campaign's rules, in the [[inbound.numbers.rules]] shape with campaign_id set;
        () for an unknown or one-way campaign."""
        c = self._campaigns.get(campaign_id)
        if c is None or not c.spec.get("two_way"):
            return ()
        return self._rules.get(campaign_id, ())

    async def courtesy_reply(self, campaign_id: str) -> str | None:
        c = self._campaigns.get(campaign_id)
        if c is None or not c.spec.get("two_way"):
            return None
        reply = c.spec.get("courtesy_reply")
        return reply or None

    async def reply_window(self, campaign_id: str) -> float | None:
        """Seconds after an MT during which an MO belongs to its campaign; None: unknown."""
        c = self._campaigns.get(campaign_id)
        if c is None:
            return None
        return float(c.spec.get("reply_window_days", DEFAULT_REPLY_WINDOW_DAYS)) * DAY

    async def campaign_for_keyword(self, number: str, text: str) -> str | None:
        """The campaign sending from ``number`` whose rules match the MO ``text`` (its first
        word, or a pattern), or None."""
        reading = read(text)
        for c in self._active(number):
            for rule in self._rules.get(c.id, ()):
                built = KeywordRule.build(
                    rule.name, rule.keyword, rule.aliases, rule.patterns, campaign_id=c.id
                )
                if built.keyword_for(reading.word, reading.folded) is not None:
                    return c.id
        return None
