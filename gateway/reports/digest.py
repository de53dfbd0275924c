"""The daily campaign digest: counts of the day and its interactions (CSV), by e-mail.

When: every day at ``[digest] time`` (18:00 by default) in the digest's time zone, for the
first N days of a campaign (``days`` of the campaign, else ``[digest] days``, 10). Day 1 is
the first day whose digest time comes after the campaign started: a campaign started at
19:00 gets its first digest at 18:00 the next day. Each digest covers the time since the
previous digest time (the first: since the campaign started), so the digests of a campaign
add up to its whole activity, and a day across a DST change is 23 or 25 hours long.

What: the counts of the period and since the start, as the store defines them once for the
digest and the campaign statistics alike (gateway.store.base.CampaignCounts: sent, delivered,
replies, unique responders, opt-outs, re-subscriptions), and the period's interactions as a CSV
attachment (:mod:`gateway.reports.csvfile`; at most :data:`MAX_ATTACHED_ROWS` rows, the body
says when there were more and how to export them all).

Once: a digest sent is recorded in the store under (campaign, local date) right after the SMTP
server took it, and a restarted daemon looks there first. The Message-ID is derived from
(campaign, date, node), so in the rare crash between the server's acceptance and that record
the copy sent again carries the same Message-ID, which mail systems use to drop duplicates.

Catching up: the scheduler sends the latest digest that is due. After downtime over a digest
time it sends that one (late) when it is back, if it is less than :data:`CATCH_UP` old; a
digest missed before that (downtime of several days) is skipped, not sent in a burst.
A digest that fails (SMTP down, refused) is tried again every ``retry_interval`` until it is
sent or the next one is due.

Campaigns live elsewhere: this module asks a :class:`DigestCampaigns` for the campaigns that
want a digest; the default knows none.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Final, Protocol

import aiosmtplib

from gateway.config import DigestConfig, SmtpConfig
from gateway.logs import log_event
from gateway.reports import csvfile
from gateway.store.base import CampaignCounts
from gateway.store.ports import CampaignReports

log = logging.getLogger("smsgw.digest")

MAX_RECIPIENTS: Final = 5
"""Addresses per campaign digest (issue 4): a report for a team, not a mailing list."""
MAX_ATTACHED_ROWS: Final = 50_000
"""Interactions attached to one digest: ~5 MB of CSV, ~7 MB once base64-encoded, under the
10-25 MB most mail servers accept. The rest is in the CSV export."""
CATCH_UP: Final = 2 * 86400.0
"""How late a missed digest is still sent after downtime (the last one of a campaign has no
next one to replace it)."""
PAGE: Final = 1000
"""Interactions read from the store at a time while the attachment is built."""

_ADDRESS: Final = re.compile(r"[^@\s<>(),;:\\\"\[\]]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@dataclass(frozen=True, slots=True)
class DigestCampaign:
    """What the digest needs to know of a campaign."""

    id: str
    name: str
    started_at: float  # epoch seconds; the first digest is the first digest time after it
    to: tuple[str, ...]  # e-mail addresses, at most MAX_RECIPIENTS are used
    days: int | None = None  # digests to send; None: [digest] days


class DigestCampaigns(Protocol):
    """Where the campaigns that want a digest come from (the campaigns side implements it)."""

    async def digest_campaigns(self, now: float) -> Sequence[DigestCampaign]:
        """Started campaigns with digest addresses whose digest days may not be over at
        ``now`` (returning more is harmless: the scheduler checks the dates itself)."""


class NoDigestCampaigns:
    """No campaigns: nothing to send."""

    async def digest_campaigns(self, now: float) -> Sequence[DigestCampaign]:
        return ()


class MailSender(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Hand ``message`` to the mail server; raise when it was not accepted."""


class SmtpSender:
    """Sends through SMTP with aiosmtplib, as ``[digest.smtp]`` says. The password is used to
    log in and is never logged."""

    def __init__(self, smtp: SmtpConfig) -> None:
        self.smtp = smtp

    async def send(self, message: EmailMessage) -> None:
        smtp = self.smtp
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.effective_port,
            username=smtp.user or None,
            password=smtp.password or None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            timeout=smtp.timeout,
        )


@dataclass(frozen=True, slots=True)
class DigestDay:
    """One digest of one campaign: its local date, its number (1..days) and the period."""

    day: datetime.date
    number: int
    days: int
    since: float
    until: float  # the digest time


def _at(day: datetime.date, at: datetime.time, tz: datetime.tzinfo) -> float:
    # zoneinfo resolves the local time to the right UTC offset for that date (DST included);
    # a time that does not exist that day (spring forward) reads as the offset before it.
    return datetime.datetime.combine(day, at, tzinfo=tz).timestamp()


def due_digest(
    started_at: float,
    days: int,
    now: float,
    at: datetime.time,
    tz: datetime.tzinfo,
    catch_up: float = CATCH_UP,
) -> DigestDay | None:
    """The latest digest of a campaign due at ``now``, or None (none yet, or all too old)."""
    one = datetime.timedelta(days=1)
    first = datetime.datetime.fromtimestamp(started_at, tz).date()
    if _at(first, at, tz) <= started_at:
        first += one
    day = datetime.datetime.fromtimestamp(now, tz).date()
    if _at(day, at, tz) > now:
        day -= one
    if day < first:
        return None
    number = (day - first).days + 1
    if number > days:
        day, number = first + (days - 1) * one, days
    until = _at(day, at, tz)
    if now - until > catch_up:
        return None
    since = started_at if number == 1 else _at(day - one, at, tz)
    return DigestDay(day=day, number=number, days=days, since=since, until=until)


@dataclass(frozen=True, slots=True)
class SentDigest:
    campaign_id: str
    day: datetime.date
    recipients: tuple[str, ...]
    counts: CampaignCounts
    rows: int


def is_address(value: str) -> bool:
    """Whether ``value`` is a plain address ``local@domain.tld`` (what digests go to)."""
    return _ADDRESS.fullmatch(value) is not None


def recipients_of(campaign: DigestCampaign) -> tuple[list[str], list[str]]:
    """(addresses used, addresses refused): well-formed ones, without repeats, at most 5."""
    used: list[str] = []
    refused: list[str] = []
    for address in campaign.to:
        address = address.strip()
        if not _ADDRESS.fullmatch(address):
            refused.append(address)
        elif address.lower() not in (u.lower() for u in used):
            if len(used) < MAX_RECIPIENTS:
                used.append(address)
            else:
                refused.append(address)
    return used, refused


def _message_id(campaign_id: str, day: datetime.date, node_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9.-]", "_", campaign_id)[:64]
    node = re.sub(r"[^A-Za-z0-9.-]", "_", node_id)
    return f"<digest.{safe}.{day.isoformat()}@{node}.smsgw>"


def _local(at: float, tz: datetime.tzinfo) -> str:
    return datetime.datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d %H:%M %Z")


def build_message(
    *,
    campaign: DigestCampaign,
    due: DigestDay,
    counts: CampaignCounts,
    totals: CampaignCounts,
    attachment: bytes,
    rows: int,
    more: bool,
    sender: str,
    recipients: Sequence[str],
    tz: datetime.tzinfo,
    node_id: str,
    now: float,
) -> EmailMessage:
    """The digest e-mail: a plain-text body with the counts, the CSV attached."""
    message = EmailMessage()
    message["Subject"] = (
        f"Campaign digest: {campaign.name}, day {due.number} of {due.days} ({due.day.isoformat()})"
    )
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = email.utils.formatdate(now, localtime=False)
    message["Message-ID"] = _message_id(campaign.id, due.day, node_id)
    lines = [
        f"Campaign {campaign.name} ({campaign.id}), day {due.number} of {due.days}.",
        f"Period: {_local(due.since, tz)} to {_local(due.until, tz)}.",
        "",
        f"{'':<20}{'this period':>12}{'since start':>14}",
    ]
    for label, field in (
        ("Sent", "sent"),
        ("Delivered", "delivered"),
        ("Replies", "replies"),
        ("Unique responders", "unique_responders"),
        ("Opt-outs", "opt_outs"),
        ("Re-subscriptions", "resubscriptions"),
    ):
        lines.append(f"{label:<20}{getattr(counts, field):>12}{getattr(totals, field):>14}")
    lines.append("")
    if more:
        lines.append(
            f"The attached CSV holds the first {rows} interactions of the period; export them"
            f" all with GET /v1/interactions/export.csv?campaign_id={campaign.id}."
        )
    else:
        lines.append(f"The attached CSV holds the {rows} interactions of the period.")
    message.set_content("\n".join(lines) + "\n")
    attach_csv(message, attachment, f"interactions-{campaign.id}-{due.day.isoformat()}.csv")
    return message


def attach_csv(message: EmailMessage, attachment: bytes, filename: str) -> None:
    """Attach an export's CSV bytes as ``text/csv`` named ``filename``."""
    message.add_attachment(
        attachment,
        maintype="text",
        subtype="csv",
        # The bytes are UTF-8 (with a BOM unless told otherwise): say so, or a mail client
        # decodes them in its own default (often Latin-1) and garbles names and emoji.
        params={"charset": "utf-8"},
        filename=filename,
    )


class DigestScheduler:
    """Looks every ``check_interval`` for digests due and sends them (see the module doc).

    ``clock`` gives epoch seconds; tests call :meth:`run_once` with the time they want."""

    def __init__(
        self,
        config: DigestConfig,
        tz: datetime.tzinfo,
        store: CampaignReports,
        campaigns: DigestCampaigns | None = None,
        sender: MailSender | None = None,
        *,
        node_id: str = "smsgw",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.tz = tz
        self.store = store
        self.campaigns: DigestCampaigns = campaigns or NoDigestCampaigns()
        self.sender: MailSender = sender or SmtpSender(config.smtp)
        self.node_id = node_id
        self.clock = clock
        self.sent = 0
        self.failed = 0
        self._retry_at: dict[tuple[str, datetime.date], float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="digest")
        log_event(
            log,
            "digest.started",
            time=self.config.time,
            time_zone=str(self.tz),
            smtp=f"{self.config.smtp.host}:{self.config.smtp.effective_port}",
            security=self.config.smtp.security,
            user=self.config.smtp.user or None,
        )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:  # a store hiccup must not end the schedule
                log_event(log, "digest.check_failed", logging.ERROR, error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.check_interval)

    async def run_once(self, now: float | None = None) -> list[SentDigest]:
        """Send every digest due at ``now`` (default: the clock) not sent yet."""
        now = self.clock() if now is None else now
        sent: list[SentDigest] = []
        for campaign in await self.campaigns.digest_campaigns(now):
            days = campaign.days or self.config.days
            due = due_digest(campaign.started_at, days, now, self.config.clock_time, self.tz)
            if due is None:
                continue
            key = (campaign.id, due.day)
            if self._retry_at.get(key, 0.0) > now:
                continue
            if await self.store.digest_sent(campaign.id, due.day.isoformat()):
                continue
            done = await self._send(campaign, due, now)
            if done is None:
                self._retry_at[key] = now + self.config.retry_interval
            else:
                self._retry_at.pop(key, None)
                sent.append(done)
        return sent

    async def _attachment(self, campaign_id: str, due: DigestDay) -> tuple[bytes, int, bool]:
        chunks = [csvfile.header(bom=True)]
        rows = 0
        after = 0
        while rows < MAX_ATTACHED_ROWS:
            page = await self.store.campaign_interactions(
                campaign_id, due.since, due.until, after, min(PAGE, MAX_ATTACHED_ROWS - rows)
            )
            if not page:
                return b"".join(chunks), rows, False
            chunks.append(csvfile.rows(page))
            rows += len(page)
            after = page[-1].id
        more = bool(
            await self.store.campaign_interactions(campaign_id, due.since, due.until, after, 1)
        )
        return b"".join(chunks), rows, more

    async def _send(
        self, campaign: DigestCampaign, due: DigestDay, now: float
    ) -> SentDigest | None:
        recipients, refused = recipients_of(campaign)
        if refused:
            log_event(
                log,
                "digest.recipients_refused",
                logging.WARNING,
                campaign=campaign.id,
                refused=len(refused),
                limit=MAX_RECIPIENTS,
            )
        if not recipients:
            log_event(log, "digest.no_recipient", logging.WARNING, campaign=campaign.id)
            return None
        counts = await self.store.campaign_counts(campaign.id, due.since, due.until)
        totals = await self.store.campaign_counts(campaign.id, campaign.started_at, due.until)
        attachment, rows, more = await self._attachment(campaign.id, due)
        message = build_message(
            campaign=campaign,
            due=due,
            counts=counts,
            totals=totals,
            attachment=attachment,
            rows=rows,
            more=more,
            sender=self.config.from_address,
            recipients=recipients,
            tz=self.tz,
            node_id=self.node_id,
            now=now,
        )
        try:
            await self.sender.send(message)
        except Exception as exc:  # SMTP down, refused, TLS failure: try again later
            self.failed += 1
            log_event(
                log,
                "digest.send_failed",
                logging.WARNING,
                campaign=campaign.id,
                day=due.day.isoformat(),
                error=f"{type(exc).__name__}: {exc}",
                retry_in=self.config.retry_interval,
            )
            return None
        await self.store.record_digest(campaign.id, due.day.isoformat(), now, recipients)
        self.sent += 1
        log_event(
            log,
            "digest.sent",
            campaign=campaign.id,
            day=due.day.isoformat(),
            number=due.number,
            recipients=len(recipients),
            rows=rows,
        )
        return SentDigest(campaign.id, due.day, tuple(recipients), counts, rows)
