"""What happens to one MO: its campaign, the rule it matches, the actions that rule runs.

:meth:`Decider.decide` routes one logged MO (an *interaction*) and runs its actions through
the table of :mod:`gateway.inbound.actions`; its replies are prepared in memory, committed by
the caller (:mod:`gateway.inbound.batches`) with the others of its batch.

- Campaign correlation: the newest MT with a campaign_id from this number to the subscriber
  within the campaign's reply window (``[inbound].reply_window`` when the directory does
  not know the campaign). A campaign rule that matches names the campaign instead.
- An MO to a number that is not configured still gets the built-in opt-out and opt-in
  words (STOP ..., STOPALL, START ..., YES from an opted-out sender), silently.
- A number routed to an upstream SMPP account (``[front.mo_routes]``) hands every MO up,
  STOP too; the upstream system answers, so no courtesy reply goes from here.
- Loop guard: a sender repeating the same text ``loop_repeats`` times in ``loop_window``
  gets no automatic reply at all; the courtesy reply goes at most once per
  ``courtesy_interval`` per (number or campaign, sender).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from gateway.config import DAY, InboundActionConfig, InboundConfig
from gateway.core.model import NewMessage
from gateway.inbound.actions import ActionContext, ActionServices, run_action
from gateway.inbound.addresses import Addresses
from gateway.inbound.campaign_directory import CampaignDirectory, CampaignInfo
from gateway.inbound.keywords import KeywordRule, Match, match
from gateway.inbound.message import InboundMessage
from gateway.inbound.numbers import InboundNumber, builtin_rules, rule_of
from gateway.inbound.replies import NOT_SENT_LOOP, NOT_SENT_NO_NUMBER, Outbox, Replies
from gateway.inbound.stats import InboundStats
from gateway.inbound.templates import contact_fields, render
from gateway.logs import log_event
from gateway.store.base import (
    Contact,
    Interaction,
    InteractionOutcome,
    MoFacts,
    MoLookup,
)
from gateway.store.ports import MoLog

log = logging.getLogger("smsgw.inbound")

MAX_REPLY_WINDOW: Final = 366 * DAY
"""How far back correlation looks for a campaign's last MT (the longest window allowed)."""


class UpstreamMo(Protocol):
    """The SMPP server front, as the MO path sees it."""

    def mo_account_for(self, destination: str) -> str | None: ...

    async def deliver_mo(
        self,
        account: str,
        *,
        source: str,
        destination: str,
        text: str,
        received_at: float | None = None,
    ) -> None: ...


class Decider:
    """Routes MOs to their rule and runs its actions (see the module's doc)."""

    def __init__(
        self,
        inbound: InboundConfig,
        store: MoLog,
        directory: CampaignDirectory,
        outbox: Outbox,
        addresses: Addresses,
        services: ActionServices,
        stats: InboundStats,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.directory = directory
        self.outbox = outbox
        self.addresses = addresses
        self.services = services
        self.stats = stats
        self.clock = clock
        self.upstream: UpstreamMo | None = None
        """Where MOs to numbers routed to an upstream SMPP account go (the server front)."""
        self.reload(inbound)

    def reload(self, inbound: InboundConfig) -> None:
        self.inbound = inbound
        self._builtin = builtin_rules(inbound)

    async def correlate(self, source: str, sender: str, now: float) -> CampaignInfo | None:
        """The campaign that last messaged ``source`` from ``sender``, if that was within
        its reply window (the directory's, else ``[inbound].reply_window``)."""
        [fact] = await self.store.mo_facts(
            [MoLookup(source, sender, "", "")], now - MAX_REPLY_WINDOW, now
        )
        return await self.correlated(fact.last_campaign, now)

    async def correlated(self, last: tuple[str, float] | None, now: float) -> CampaignInfo | None:
        """``correlate`` from the newest campaign MT (id, created at) within the longest
        window: its campaign when that MT is within the campaign's own window."""
        if last is None:
            return None
        campaign_id, created_at = last
        campaign = await self.directory.campaign(campaign_id)
        window = campaign.reply_window if campaign is not None else self.inbound.reply_window
        if created_at < now - window:
            return None
        return campaign or CampaignInfo(campaign_id, reply_window=window)

    async def decide(
        self,
        interaction: Interaction,
        entry: InboundNumber | None,
        facts: MoFacts,
        now: float,
        keyword_campaigns: dict[str, Sequence[CampaignInfo]],
    ) -> tuple[InteractionOutcome, list[NewMessage]]:
        """Route one MO and run its actions; its replies are prepared, not committed."""
        source = interaction.source
        sender = self.addresses.sender_of(entry, interaction.destination)
        opted_out = facts.opted_out
        campaign = await self.correlated(facts.last_campaign, now)
        # A number not configured still gets the built-in opt-out and opt-in words.
        rules: list[KeywordRule] = list(entry.rules if entry is not None else self._builtin[0])
        campaign_actions: dict[tuple[str, str], tuple[InboundActionConfig, ...]] = {}
        campaigns: dict[str, CampaignInfo] = {}
        if entry is not None:
            for info in keyword_campaigns.get(entry.number, ()):
                campaigns[info.id] = info
                for rule in info.keywords:
                    rules.append(rule_of(rule, info.id))
                    campaign_actions[(info.id, rule.name)] = rule.actions
        found = match(
            rules,
            interaction.text,
            opted_out=opted_out,
            campaign_id=campaign.id if campaign else None,
        )
        if found is not None and found.rule.campaign_id is not None:
            cid = found.rule.campaign_id
            if campaign is None or campaign.id != cid:
                campaign = campaigns.get(cid) or await self.directory.campaign(cid)
                campaign = campaign or CampaignInfo(cid, reply_window=self.inbound.reply_window)
        loop = facts.repeats >= self.inbound.loop_repeats
        deferred: list[NewMessage] = []
        replies = Replies(
            self.outbox,
            to=source,
            sender=sender,
            client_ref=f"mo-{interaction.id}",
            # Replies carry no campaign_id: they are not the campaign's sends (its statistics
            # and the reply-window correlation count only those); client_ref ties them.
            campaign_id=None,
            blocked=NOT_SENT_LOOP if loop else (NOT_SENT_NO_NUMBER if entry is None else None),
            deferred=deferred,
            opted_out=opted_out,
        )
        contact = facts.contact
        message = InboundMessage(
            id=interaction.id,
            source=source,
            destination=interaction.destination,
            text=interaction.text,
            received_at=interaction.received_at,
            keyword=found.keyword if found else None,
            rule=found.rule.name if found else None,
            campaign_id=campaign.id if campaign else None,
            complete=interaction.complete,
            carrier=interaction.carrier,
        )
        done: list[dict[str, Any]] = []
        if found is not None:
            if found.rule.campaign_id is not None and (
                (found.rule.campaign_id, found.rule.name) in campaign_actions
            ):
                actions = campaign_actions[(found.rule.campaign_id, found.rule.name)]
            elif entry is not None:
                actions = entry.actions.get(found.rule.name, ())
            elif found.rule.system:
                actions = self._builtin[1].get(found.rule.name, ())
            else:
                actions = ()
            fields = contact_fields(source, contact)
            for action in actions:
                context = ActionContext(
                    action=action,
                    message=message,
                    found=found,
                    number=entry.config if entry is not None else None,
                    contact=contact,
                    campaign=campaign,
                    replies=replies,
                    fields=fields,
                    inbound=self.inbound,
                    services=self.services,
                )
                done.append(await run_action(context, self.stats))
        account = self.upstream.mo_account_for(interaction.destination) if self.upstream else None
        if account is not None and self.upstream is not None:
            # The upstream system owns this number: it gets every MO (STOP too: it must
            # know), and it answers, so no courtesy reply goes from here.
            done.append(await self._to_upstream(account, message))
        elif found is None and entry is not None:
            courtesy = await self._courtesy(entry, campaign, source, contact, now, replies)
            if courtesy is not None:
                done.append(courtesy)
        self.stats.mo[(entry.number if entry else "other", _keyword_label(found, entry))] += 1
        outcome = InteractionOutcome(
            interaction_id=interaction.id,
            keyword=found.keyword if found else None,
            rule=found.rule.name if found else None,
            campaign_id=campaign.id if campaign else None,
            actions=done,
            at=self.clock(),
        )
        return outcome, deferred

    async def _courtesy(
        self,
        entry: InboundNumber,
        campaign: CampaignInfo | None,
        source: str,
        contact: Contact | None,
        now: float,
        replies: Replies,
    ) -> dict[str, Any] | None:
        if campaign is not None and campaign.courtesy_reply:
            text, scope = campaign.courtesy_reply, f"campaign:{campaign.id}"
        else:
            text, scope = entry.config.courtesy_reply, f"number:{entry.number}"
        if not text:
            return None
        if replies.blocked is not None:
            return {"type": "courtesy_reply", "ok": False, "not_sent": replies.blocked}
        claimed = await self.store.claim_courtesy(
            scope, source, now, self.inbound.courtesy_interval
        )
        if not claimed:
            return {"type": "courtesy_reply", "ok": False, "not_sent": "rate_limited"}
        self.stats.actions["courtesy_reply"] += 1
        # The contact's fields, as keyword replies have them ("Hi {first_name}").
        result = await replies.reply(render(text, contact_fields(source, contact)))
        return {"type": "courtesy_reply", **result.as_json()}

    async def _to_upstream(self, account: str, message: InboundMessage) -> dict[str, Any]:
        assert self.upstream is not None
        self.stats.actions["upstream"] += 1
        try:
            await self.upstream.deliver_mo(
                account,
                source=message.source,
                destination=message.destination,
                text=message.text,
                received_at=message.received_at,
            )
        except Exception as exc:
            self.stats.failed["upstream"] += 1
            log_event(
                log,
                "inbound.upstream_failed",
                logging.WARNING,
                interaction=message.id,
                account=account,
                error=repr(exc),
            )
            return {"type": "upstream", "account": account, "ok": False, "error": repr(exc)[:500]}
        return {"type": "upstream", "account": account, "ok": True}


def _keyword_label(found: Match | None, entry: InboundNumber | None) -> str:
    if found is None:
        return "none"
    rule = found.rule
    if rule.system or (entry is not None and rule.campaign_id is None):
        return rule.name
    return "campaign"
