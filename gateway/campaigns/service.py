"""Campaigns as the API sees them: checked requests, the life cycle, progress and statistics.

Life cycle (``POST /v1/campaigns/{id}/<action>``)::

    draft --start--> scheduled (start_at in the future) --(start_at)--> running --> done
    running/scheduled --pause--> paused --resume--> running (or scheduled)
    draft/scheduled/running/paused --cancel--> cancelled

A campaign is created as a draft; ``start`` is what sends it. Its audience (the members of
its lists and the contacts with one of its tags, each number once) is fixed when it begins
running. Pause and cancel stop the making of new messages at once; messages already made
(at most the runner's backlog, see gateway.campaigns.runner) still go out.

Statistics (``GET /v1/campaigns/{id}/stats``), from the messages of the campaign and the
interactions (MOs) the inbound side logged under it:

- ``recipients``: the audience; ``pending``: recipients not messaged yet plus messages
  waiting for a carrier; ``undeliverable``, ``expired``, ``rejected``, ``failed``: messages
  by status;
- ``sent``, ``delivered``, ``replies``, ``unique_responders``, ``opt_outs``,
  ``resubscriptions``, ``replies_from_others``: the store's ``campaign_counts`` since the
  start, the one definition the daily digest uses too (gateway.store.base.CampaignCounts:
  sent = messages a carrier accepted, rejected ones included; responders = recipients
  whose reply is not a re-subscription); ``delivery_rate`` = delivered / sent;
  ``reply_rate`` = unique_responders / sent;
- ``answers_per_keyword``: responses (recipients' MOs, re-subscriptions left out) by
  matched keyword;
- ``median_seconds_to_first_reply``: per responder, first response minus the creation of
  their first message (null without responses);
- ``per_hour``: MOs in each of the first 24 hours after the start; ``per_day``: in each of
  the first 10 days (the ``replies`` of the timelines below);
- ``clicks``, ``unique_clickers``, ``bot_requests``: the store's ``campaign_counts`` for the
  campaign's short links (gateway.links); ``click_rate`` = unique_clickers / sent;
  ``clicks_per_hour`` and ``clicks_per_day``: the ``clicks`` of the timelines below;
- ``undelivered`` (``undelivered_by_status``, ``undelivered_by_error``): more of the
  store's counts since the start;
- ``funnel``: audience -> skipped (opted out, invalid) -> sent -> delivered -> clicked
  (= unique_clickers) -> replied (= unique_responders);
- ``timelines``: ``per_hour`` and ``per_day`` (the axes above) of every figure of the
  counts, each period's figure what ``campaign_counts`` gives for that period.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from gateway.campaigns.runner import (
    CANCELLED,
    DRAFT,
    PAUSED,
    RUNNING,
    SCHEDULED,
    CampaignRunner,
)
from gateway.campaigns.window import SendWindow, WindowError
from gateway.config import KeywordRuleConfig
from gateway.config.loader import ConfigError, load_dataclass
from gateway.core import validation as check
from gateway.core.errors import FieldError
from gateway.core.model import MessageStatus, new_message_id
from gateway.links.codes import link_errors, link_template
from gateway.logs import log_event
from gateway.store.base import UNDELIVERED_STATUSES, CampaignCounts, Periods
from gateway.store.campaign_base import CampaignRecord
from gateway.store.ports import CampaignAudience, CampaignReports

_log = logging.getLogger("smsgw.campaigns")

MAX_NAME: Final = 200
MAX_TEXT: Final = 1600
"""Ten parts of GSM7 text; intake refuses a rendering longer than the configured parts."""
MAX_TPS: Final = 10_000.0
MAX_REPLY_WINDOW_DAYS: Final = 366
MAX_DIGEST_ADDRESSES: Final = 5
MAX_DIGEST_DAYS: Final = 60
MAX_KEYWORD_RULES: Final = 100
MAX_TAGS: Final = 100
DEFAULT_REPLY_WINDOW_DAYS: Final = 10

FIELDS: Final = frozenset(
    {
        "name",
        "from",
        "text",
        "lists",
        "tags",
        "two_way",
        "keywords",
        "courtesy_reply",
        "reply_window_days",
        "start_at",
        "send_window",
        "tps",
        "digest",
        "track_links",
    }
)
_UNSENT: Final = (MessageStatus.ACCEPTED, MessageStatus.QUEUED)

TRANSITIONS: Final = {
    # action: (statuses it applies to, status it leads to; None: decided by start_at)
    "start": ((DRAFT,), None),
    "pause": ((RUNNING, SCHEDULED), PAUSED),
    "resume": ((PAUSED,), None),
    "cancel": ((DRAFT, SCHEDULED, RUNNING, PAUSED), CANCELLED),
}


class TransitionError(Exception):
    """An action the campaign's status does not allow."""


def iso(at: float | None) -> str | None:
    if at is None:
        return None
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: object) -> float:
    if not isinstance(value, str):
        raise check.Invalid("must be an ISO 8601 date and time with an offset, or null")
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise check.Invalid(f"is not an ISO 8601 date and time: {value!r}") from None
    if moment.tzinfo is None:
        raise check.Invalid("needs a UTC offset (e.g. 2030-01-02T09:00:00+01:00 or ...Z)")
    return moment.timestamp()


def _email(value: object) -> str:
    if not isinstance(value, str) or value.count("@") != 1 or len(value) > 254:
        raise check.Invalid(f"is not an e-mail address: {value!r}")
    local, domain = value.split("@")
    if not local or "." not in domain or any(c.isspace() for c in value):
        raise check.Invalid(f"is not an e-mail address: {value!r}")
    return value


@dataclass(slots=True)
class CampaignRequest:
    name: str
    sender: str
    text: str
    spec: dict[str, Any]
    start_at: float | None


def check_rules(value: object, errors: list[FieldError], path: str = "keywords") -> list[Any]:
    """Keyword rules in the ``[[inbound.numbers.rules]]`` shape; their JSON as given."""
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(FieldError(path, "must be an array of keyword rules"))
        return []
    if len(value) > MAX_KEYWORD_RULES:
        errors.append(FieldError(path, f"at most {MAX_KEYWORD_RULES} rules"))
        return []
    names: set[str] = set()
    for i, rule in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(rule, dict):
            errors.append(FieldError(where, "must be an object"))
            continue
        if "campaign_id" in rule:
            errors.append(FieldError(f"{where}.campaign_id", "is set by the campaign"))
            continue
        try:
            load_dataclass(KeywordRuleConfig, rule, where)
        except ConfigError as exc:
            for problem in exc.errors:
                key, _, text = problem.partition(": ")
                errors.append(FieldError(key if text else where, text or problem))
            continue
        if rule["name"] in names:
            errors.append(FieldError(f"{where}.name", "another rule has this name"))
        names.add(rule["name"])
    return list(value)


def rules_of(campaign: CampaignRecord) -> tuple[KeywordRuleConfig, ...]:
    """The campaign's keyword rules, tied to it (``campaign_id`` set). A rule kept by an
    older version that this one refuses (a pattern RE2 does not take) is left out, with an
    error logged: one stored rule must not stop the directory, or the daemon's start."""
    rules = []
    for rule in campaign.spec.get("keywords", []):
        try:
            rules.append(
                load_dataclass(KeywordRuleConfig, {**rule, "campaign_id": campaign.id}, "keywords")
            )
        except ConfigError as exc:
            log_event(
                _log,
                "campaigns.rule_refused",
                logging.ERROR,
                campaign=campaign.id,
                rule=str(rule.get("name", "")) if isinstance(rule, dict) else "",
                errors="; ".join(exc.errors),
            )
    return tuple(rules)


class CampaignRequests:
    """Checks a POST /v1/campaigns body against the gateway's rules."""

    def __init__(
        self, numbers: check.Numbers, links: bool = False, quiet_hours: SendWindow | None = None
    ) -> None:
        self.numbers = numbers
        self.links = links
        """Whether [links] is configured: without it a text with links is refused."""
        self.quiet_hours = quiet_hours
        """``[compliance] quiet_hours``: a recipient_local window may not reach outside."""

    def parse(
        self, body: object, known_lists: set[int], now: float, need_audience: bool = True
    ) -> CampaignRequest:
        errors: list[FieldError] = []
        if not isinstance(body, dict):
            raise _FieldErrors([FieldError("", "must be a JSON object")])
        errors.extend(FieldError(k, "unknown field") for k in body if k not in FIELDS)

        def text_field(key: str, limit: int, required: bool = True) -> str | None:
            value = body.get(key)
            if value is None:
                if required:
                    errors.append(FieldError(key, "is required"))
                return None
            if not isinstance(value, str) or not value.strip():
                errors.append(FieldError(key, "must be a non-empty string"))
                return None
            if len(value) > limit:
                errors.append(FieldError(key, f"must be at most {limit} characters"))
                return None
            return value

        name = text_field("name", MAX_NAME)
        text = text_field("text", MAX_TEXT)
        raw_sender = text_field("from", 32)
        sender = None
        if raw_sender is not None:
            try:
                sender = check.sender(raw_sender, self.numbers)
            except check.Invalid as exc:
                errors.append(FieldError("from", str(exc)))
        courtesy = body.get("courtesy_reply")
        if courtesy is not None and (not isinstance(courtesy, str) or len(courtesy) > MAX_TEXT):
            errors.append(FieldError("courtesy_reply", "must be a string or null"))
            courtesy = None

        lists = body.get("lists") or []
        if not isinstance(lists, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in lists
        ):
            errors.append(FieldError("lists", "must be an array of list ids"))
            lists = []
        for i, list_id in enumerate(lists):
            if list_id not in known_lists:
                errors.append(FieldError(f"lists[{i}]", f"no list with id {list_id}"))
        tags = body.get("tags") or []
        if (
            not isinstance(tags, list)
            or len(tags) > MAX_TAGS
            or not all(isinstance(t, str) and t for t in tags)
        ):
            errors.append(FieldError("tags", f"must be an array of at most {MAX_TAGS} tags"))
            tags = []
        if need_audience and not lists and not tags:
            errors.append(FieldError("lists", "give at least one list or one tag (the audience)"))

        two_way = body.get("two_way", False)
        if not isinstance(two_way, bool):
            errors.append(FieldError("two_way", "must be true or false"))
            two_way = False
        keywords = check_rules(body.get("keywords"), errors)

        reply_days = body.get("reply_window_days")
        if reply_days is None:
            reply_days = DEFAULT_REPLY_WINDOW_DAYS
        elif (
            not isinstance(reply_days, int | float)
            or isinstance(reply_days, bool)
            or not 0 <= reply_days <= MAX_REPLY_WINDOW_DAYS
        ):
            errors.append(
                FieldError(
                    "reply_window_days", f"must be a number from 0 to {MAX_REPLY_WINDOW_DAYS}"
                )
            )
        start_at = None
        if body.get("start_at") is not None:
            try:
                start_at = _parse_time(body["start_at"])
            except check.Invalid as exc:
                errors.append(FieldError("start_at", str(exc)))
        window = None
        if body.get("send_window") is not None:
            try:
                parsed = SendWindow.from_json(body["send_window"])
                window = parsed.as_json()
            except WindowError as exc:
                errors.append(FieldError("send_window", str(exc)))
            else:
                quiet = self.quiet_hours
                if parsed.recipient_local and quiet is not None and not parsed.within(quiet):
                    allowed = f"{quiet.start:%H:%M}-{quiet.end:%H:%M}"
                    errors.append(
                        FieldError(
                            "send_window",
                            f"reaches outside the gateway's sending hours {allowed} in the"
                            " recipient's local time ([compliance] quiet_hours); campaigns"
                            " cannot widen them",
                        )
                    )
        tps = body.get("tps")
        if tps is not None and (
            not isinstance(tps, int | float) or isinstance(tps, bool) or not 0 < tps <= MAX_TPS
        ):
            errors.append(FieldError("tps", f"must be a number above 0 and at most {MAX_TPS:g}"))
            tps = None
        digest = body.get("digest")
        if digest is not None:
            digest = self._digest(digest, errors)
        track_links = body.get("track_links", False)
        if not isinstance(track_links, bool):
            errors.append(FieldError("track_links", "must be true or false"))
            track_links = False
        if text is not None:
            errors.extend(self._links(text, track_links))
        if errors:
            raise _FieldErrors(errors)
        assert name is not None and text is not None and sender is not None
        spec = {
            "lists": lists,
            "tags": tags,
            "two_way": two_way,
            "keywords": keywords,
            "courtesy_reply": courtesy,
            "reply_window_days": reply_days,
            "send_window": window,
            "tps": tps,
            "digest": digest,
            "track_links": track_links,
        }
        return CampaignRequest(name, sender, text, spec, start_at)

    def _links(self, text: str, track_links: bool) -> list[FieldError]:
        _, targets = link_template(text, track_links)
        if not targets:
            return []
        if not self.links:
            return [
                FieldError(
                    "text",
                    "has links ({link:...} or, with track_links, URLs) but this gateway has no"
                    " [links] section to shorten and count them",
                )
            ]
        return [FieldError("text", error) for error in link_errors(text, track_links)]

    @staticmethod
    def _digest(value: object, errors: list[FieldError]) -> dict[str, Any] | None:
        if not isinstance(value, dict) or set(value) - {"to", "days"}:
            errors.append(FieldError("digest", 'must be {"to": [addresses], "days": N} or null'))
            return None
        to = value.get("to")
        if not isinstance(to, list) or not 1 <= len(to) <= MAX_DIGEST_ADDRESSES:
            errors.append(
                FieldError(
                    "digest.to", f"must be an array of 1 to {MAX_DIGEST_ADDRESSES} addresses"
                )
            )
            return None
        for i, address in enumerate(to):
            try:
                _email(address)
            except check.Invalid as exc:
                errors.append(FieldError(f"digest.to[{i}]", str(exc)))
        days = value.get("days", DEFAULT_REPLY_WINDOW_DAYS)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DIGEST_DAYS:
            errors.append(
                FieldError("digest.days", f"must be an integer from 1 to {MAX_DIGEST_DAYS}")
            )
        return {"to": list(to), "days": days}


class _FieldErrors(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} field errors")
        self.errors = errors


FieldErrors = _FieldErrors


class CampaignService:
    """Create campaigns, move them through their life cycle, report on them."""

    def __init__(
        self,
        store: CampaignAudience,
        runner: CampaignRunner,
        numbers: check.Numbers,
        clock: Callable[[], float],
        on_change: Callable[[], None] | None = None,
        links: bool = False,
        *,
        reports: CampaignReports,
    ) -> None:
        self.store = store
        self.reports = reports
        self.runner = runner
        self.requests = CampaignRequests(numbers, links, runner.quiet_hours)
        self.clock = clock
        self.on_change = on_change

    async def create(
        self,
        body: object,
        *,
        responders_of: dict[str, Any] | None = None,
        account: str = "",
        any_list: bool = True,
    ) -> CampaignRecord:
        """A new draft campaign of ``account``; its lists must be ``account``'s unless
        ``any_list`` (an admin token)."""
        known = {c.id for c in await self.store.contact_lists() if any_list or c.account == account}
        now = self.clock()
        request = self.requests.parse(body, known, now, need_audience=responders_of is None)
        if responders_of is not None:
            request.spec["responders_of"] = responders_of
        campaign = CampaignRecord(
            id=new_message_id(now),
            name=request.name,
            sender=request.sender,
            text=request.text,
            spec=request.spec,
            status=DRAFT,
            created_at=now,
            start_at=request.start_at,
            account=account,
        )
        await self.store.save_campaign(campaign)
        self._changed()
        return campaign

    async def edit(
        self, campaign: CampaignRecord, body: object, *, any_list: bool = True
    ) -> CampaignRecord:
        """Replace a draft's fields with ``body`` (checked as :meth:`create` checks it; a
        campaign made for responders keeps that audience). TransitionError once it is no
        longer a draft: the change and a start cannot cross (the store replaces a draft
        only)."""
        if campaign.status != DRAFT:
            raise TransitionError(
                f"cannot edit a campaign that is {campaign.status} (only a draft)"
            )
        known = {
            c.id
            for c in await self.store.contact_lists()
            if any_list or c.account == campaign.account
        }
        responders = campaign.spec.get("responders_of")
        request = self.requests.parse(body, known, self.clock(), need_audience=not responders)
        if responders:
            request.spec["responders_of"] = responders
        changed = dataclasses.replace(
            campaign,
            name=request.name,
            sender=request.sender,
            text=request.text,
            spec=request.spec,
            start_at=request.start_at,
        )
        if not await self.store.replace_draft(changed):
            fresh = await self.store.get_campaign(campaign.id)
            status = fresh.status if fresh else "gone"
            raise TransitionError(f"cannot edit a campaign that is {status} (only a draft)")
        self._changed()
        return changed

    async def act(self, campaign_id: str, action: str) -> CampaignRecord | None:
        """Apply ``action``; None when there is no such campaign; TransitionError when its
        status does not allow it."""
        campaign = await self.store.get_campaign(campaign_id)
        if campaign is None:
            return None
        allowed, target = TRANSITIONS[action]
        if campaign.status not in allowed:
            raise TransitionError(
                f"cannot {action} a campaign that is {campaign.status}"
                f" (only one that is {' or '.join(allowed)})"
            )
        now = self.clock()
        if target is None:
            future = campaign.start_at is not None and campaign.start_at > now
            target = SCHEDULED if future else RUNNING
        changed = await self.store.set_campaign_status(campaign_id, target, now, expect=allowed)
        if changed is None:  # changed meanwhile by another request
            fresh = await self.store.get_campaign(campaign_id)
            status = fresh.status if fresh else "gone"
            raise TransitionError(f"cannot {action} a campaign that is {status}")
        self.runner.wake(campaign_id)
        self._changed()
        return changed

    async def stats(self, campaign: CampaignRecord) -> dict[str, Any]:
        statuses = await self.store.campaign_statuses(campaign.id)
        # The counts since the start, as the digest's "since start" column has them, and the
        # same counts per hour and per day: one definition of each figure, in the store
        # (gateway.store.base.CampaignCounts), read in one pass for all three.
        started = campaign.started_at
        axes = [Periods(started if started is not None else 0.0, math.inf, 1)]
        if started is not None:
            axes += [Periods(started, 3600.0, HOURS), Periods(started, 86400.0, DAYS)]
        series = await self.reports.campaign_series(campaign.id, axes)
        counts = series[0][0]
        empty = CampaignCounts()
        per_hour = series[1] if started is not None else [empty] * HOURS
        per_day = series[2] if started is not None else [empty] * DAYS
        figures = await self.store.reply_figures(campaign.id)
        made = sum(statuses.values())
        sent = counts.sent
        delivered = counts.delivered
        unsent = sum(statuses.get(s.value, 0) for s in _UNSENT)
        not_made = 0
        if campaign.status not in (CANCELLED,):
            skipped = campaign.skipped_opted_out + campaign.skipped_invalid
            not_made = max(0, campaign.recipients - made - skipped)
        median = (
            statistics.median(figures.seconds_to_first_reply)
            if figures.seconds_to_first_reply
            else None
        )
        errors = _error_keys(counts.undelivered_by_error)
        return {
            "recipients": campaign.recipients,
            "sent": sent,
            "delivered": delivered,
            "undeliverable": statuses.get(MessageStatus.UNDELIVERABLE.value, 0),
            "expired": statuses.get(MessageStatus.EXPIRED.value, 0),
            "pending": unsent + not_made,
            "delivery_rate": round(delivered / sent, 4) if sent else 0.0,
            "replies": counts.replies,
            "unique_responders": counts.unique_responders,
            "reply_rate": round(counts.unique_responders / sent, 4) if sent else 0.0,
            "opt_outs": counts.opt_outs,
            "answers_per_keyword": figures.per_keyword,
            "median_seconds_to_first_reply": median,
            "per_hour": [c.replies for c in per_hour],
            "per_day": [c.replies for c in per_day],
            "clicks": counts.clicks,
            "unique_clickers": counts.unique_clickers,
            "click_rate": round(counts.unique_clickers / sent, 4) if sent else 0.0,
            "bot_requests": counts.bot_requests,
            "clicks_per_hour": [c.clicks for c in per_hour],
            "clicks_per_day": [c.clicks for c in per_day],
            # Beyond the agreed shape:
            "messages": made,
            "rejected": statuses.get(MessageStatus.REJECTED.value, 0),
            "failed": statuses.get(MessageStatus.FAILED.value, 0),
            "skipped_opted_out": campaign.skipped_opted_out,
            "skipped_invalid": campaign.skipped_invalid,
            "resubscriptions": counts.resubscriptions,
            "replies_from_others": counts.replies_from_others,
            "waiting_for_window": await self.store.deferred_count(campaign.id),
            "undelivered": counts.undelivered,
            "undelivered_by_status": dict(counts.undelivered_by_status),
            "undelivered_by_error": _by_error(counts, errors),
            "funnel": {
                "audience": campaign.recipients,
                "skipped_opted_out": campaign.skipped_opted_out,
                "skipped_invalid": campaign.skipped_invalid,
                "sent": sent,
                "delivered": delivered,
                "clicked": counts.unique_clickers,
                "replied": counts.unique_responders,
            },
            "timelines": {
                "per_hour": _timeline(per_hour, errors),
                "per_day": _timeline(per_day, errors),
            },
        }

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


HOURS: Final = 24
"""The hourly axis of the statistics: the first day of a campaign, when most replies come."""
DAYS: Final = 10
"""The daily axis: the default reply window (DEFAULT_REPLY_WINDOW_DAYS)."""
MAX_ERRORS: Final = 20
"""Errors named in ``undelivered_by_error`` (the most frequent); the others are added up
under OTHER_ERRORS, so a carrier that writes a new text per message cannot grow the answer
without bound."""
OTHER_ERRORS: Final = "(other)"
NO_ERROR: Final = "(none)"
"""The key of undelivered messages whose status came with no error text."""
_TIMELINE_FIGURES: Final = (
    "sent",
    "delivered",
    "undelivered",
    "clicks",
    "unique_clickers",
    "bot_requests",
    "replies",
    "unique_responders",
    "opt_outs",
    "resubscriptions",
    "replies_from_others",
)


def _error_keys(by_error: dict[str, int]) -> list[str]:
    """The MAX_ERRORS most frequent errors (ties by text), the ones named in the answer."""
    ranked = sorted(by_error.items(), key=lambda item: (-item[1], item[0]))
    return [error for error, _ in ranked[:MAX_ERRORS]]


def _by_error(counts: CampaignCounts, named: list[str]) -> dict[str, int]:
    out = {error or NO_ERROR: counts.undelivered_by_error.get(error, 0) for error in named}
    other = counts.undelivered - sum(counts.undelivered_by_error.get(e, 0) for e in named)
    if other:
        out[OTHER_ERRORS] = other
    return out


def _timeline(periods: list[CampaignCounts], errors: list[str]) -> dict[str, Any]:
    """Each figure of the counts as one list, a value per period."""
    timeline: dict[str, Any] = {
        name: [getattr(c, name) for c in periods] for name in _TIMELINE_FIGURES
    }
    timeline["undelivered_by_status"] = {
        status: [c.undelivered_by_status.get(status, 0) for c in periods]
        for status in UNDELIVERED_STATUSES
    }
    by_error = [_by_error(c, errors) for c in periods]
    keys = [error or NO_ERROR for error in errors]
    if any(OTHER_ERRORS in b for b in by_error):
        keys.append(OTHER_ERRORS)
    timeline["undelivered_by_error"] = {key: [b.get(key, 0) for b in by_error] for key in keys}
    return timeline


def campaign_json(c: CampaignRecord) -> dict[str, Any]:
    spec = c.spec
    progress = round(c.handled / c.recipients, 4) if c.recipients else 0.0
    out: dict[str, Any] = {
        "id": c.id,
        "name": c.name,
        "status": c.status,
        "from": c.sender,
        "text": c.text,
        "lists": spec.get("lists", []),
        "tags": spec.get("tags", []),
        "two_way": spec.get("two_way", False),
        "keywords": spec.get("keywords", []),
        "courtesy_reply": spec.get("courtesy_reply"),
        "reply_window_days": spec.get("reply_window_days", DEFAULT_REPLY_WINDOW_DAYS),
        "start_at": iso(c.start_at),
        "send_window": spec.get("send_window"),
        "tps": spec.get("tps"),
        "digest": spec.get("digest"),
        "track_links": spec.get("track_links", False),
        "created_at": iso(c.created_at),
        "started_at": iso(c.started_at),
        "finished_at": iso(c.finished_at),
        "progress": {
            "recipients": c.recipients,
            "handled": c.handled,
            "skipped_opted_out": c.skipped_opted_out,
            "skipped_invalid": c.skipped_invalid,
            "fraction": progress if c.status != "done" else 1.0,
        },
    }
    responders = spec.get("responders_of")
    if responders:
        out["responders_of"] = responders
    return out
