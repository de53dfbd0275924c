"""The campaign runner: turns a running campaign's audience into messages, chunk by chunk.

Each step (:meth:`CampaignRunner.step`) handles the next chunk of recipients, in number
order after the campaign's cursor:

1. outside the daily send window, nothing: the step says when the window opens;
2. while the campaign has ``MAX_UNSENT`` messages not yet handed to a carrier, nothing: the
   runner keeps only a bounded backlog in the queue, so memory stays flat for any audience
   and a pause or cancel takes effect within that backlog;
3. numbers opted out of the campaign's sender (or of everything) are skipped, as are those
   that already have a message of this campaign (a crash between the commit of a chunk and
   the move of its cursor: no one gets the campaign twice);
4. each remaining recipient's text is the template rendered with their contact fields, and
   the message is prepared by the API's own intake (routing, encoding, parts), committed by
   ``store.accept`` with the campaign's id, and handed to the dispatcher, which sends it
   like any other accepted message (its TPS, window, retries and receipts);
5. the cursor moves past the chunk, with its counts.

Send windows in each recipient's local time (``time_zone: "recipient_local"``) and the
gateway's ``[compliance] quiet_hours`` depend on the recipient, so the cursor cannot wait
for them: a recipient outside their hours is written to ``campaign_deferred`` with the time
their hours open (:class:`~gateway.campaigns.window.LocalHours`, zones from the number's
prefix) and the cursor moves on, so recipients inside theirs are never held behind them
(no head-of-line blocking) and memory stays flat (the waiting are rows, not a list in
memory). Each step first takes the waiting recipients whose time has come (checked again,
and sent, or deferred again); the campaign is done when the cursor has passed everyone and
nobody waits. A recipient whose zones' hours never overlap is skipped as invalid.

With a campaign ``tps``, chunks are ``tps`` recipients per second and the step waits the
rest of that second; without one, chunks are ``CHUNK`` recipients and the pace is the
carriers' (the dispatcher's TPS). The step takes the time from the injected clock, so the
window and the pacing are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from typing import Final

from gateway.campaigns.window import LocalHours, SendWindow
from gateway.campaigns.zones import number_zones
from gateway.config.links import LinksConfig
from gateway.core.intake import Intake
from gateway.core.model import NewMessage
from gateway.core.submit import Outbound, accept_and_enqueue
from gateway.inbound.templates import contact_fields, render
from gateway.links.codes import link_fields, link_template, new_code
from gateway.logs import log_event
from gateway.store.base import Contact, LinkCodeTaken
from gateway.store.campaign_base import CampaignRecord
from gateway.store.ports import CampaignAudience, Submits

log = logging.getLogger("smsgw.campaigns")

DRAFT: Final = "draft"
SCHEDULED: Final = "scheduled"
RUNNING: Final = "running"
PAUSED: Final = "paused"
CANCELLED: Final = "cancelled"
DONE: Final = "done"
STATUSES: Final = (DRAFT, SCHEDULED, RUNNING, PAUSED, CANCELLED, DONE)

CHUNK: Final = 1000
"""Recipients per step without a campaign TPS: one store commit of 1000 messages takes
tens of milliseconds, and the dispatcher pages its queue in the same sizes."""
MAX_UNSENT: Final = 5000
"""Campaign messages waiting for a carrier before the runner stops making more: ten
seconds of a 500 msg/s carrier, enough to keep binds busy, small enough that a pause or a
cancel takes effect quickly and that memory does not grow with the audience."""
BACKLOG_WAIT: Final = 0.5
"""Seconds between looks at the backlog while it is full."""
MAX_WAIT: Final = 300.0
"""The longest a runner sleeps before looking again (a changed clock, a long window)."""
MAX_CODE_DRAWS: Final = 5
"""Times a chunk's short link codes are drawn when one is taken (about one chunk in 350,000
with ten million live 7-character codes; five clashes in a row do not happen)."""
CLAIMED_ELSEWHERE_WAIT: Final = 5.0
"""Seconds before looking again at a campaign another node runs (its claim may lapse)."""

ACCOUNT: Final = "campaigns"
"""The account campaign messages are accepted under when their campaign has none (made
before accounts existed); otherwise the campaign's account, so its token can read them."""


class CampaignRunner:
    """Runs every running or scheduled campaign as a task of its own."""

    def __init__(
        self,
        campaigns: CampaignAudience,
        store: Submits,
        outbound: Outbound,
        intake: Intake,
        clock: Callable[[], float],
        on_change: Callable[[], None] | None = None,
        links: LinksConfig | None = None,
        quiet_hours: SendWindow | None = None,
        fallback_zone: str = "UTC",
    ) -> None:
        """``on_change`` is called when the runner moves a campaign's status (scheduled to
        running, running to done), for caches such as the inbound directory. ``links``:
        [links], to give each recipient short links of their own (gateway.links).
        ``quiet_hours``: ``[compliance] quiet_hours``, the hours every campaign keeps in
        each recipient's local time; ``fallback_zone``: the zone of a number whose zone
        phonenumbers does not know (``[node] time_zone``)."""
        self.links = links
        self.quiet_hours = quiet_hours
        self.fallback_zone = fallback_zone
        self.campaigns = campaigns
        self.store = store
        self.outbound = outbound
        self.intake = intake
        self.clock = clock
        self.on_change = on_change
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._stopping = False
        self._elsewhere: set[str] = set()
        """Campaigns this runner found another node running (their claim was live)."""
        self.took_over = 0
        """Campaigns taken over from a node whose claim lapsed (it died)."""

    async def start(self) -> None:
        """Pick up the campaigns that were running or scheduled (after a restart)."""
        self._stopping = False
        for campaign in await self.campaigns.campaigns([RUNNING, SCHEDULED]):
            self.wake(campaign.id)

    async def take_over(self) -> int:
        """Look at every running or scheduled campaign this runner has no task for: one
        another node runs keeps a task here that claims it once that node's claim lapses
        (``step``); one another node started after this one is found so. How many new
        tasks. The look for campaigns of gateway.takeover."""
        if self._stopping:
            return 0
        found = 0
        for campaign in await self.campaigns.campaigns([RUNNING, SCHEDULED]):
            if not self.running(campaign.id):  # not this node's: another node ran it
                found += 1
                self._elsewhere.add(campaign.id)
                self.wake(campaign.id)
        return found

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def wake(self, campaign_id: str) -> None:
        """Look at a campaign now (it was started, resumed, paused or cancelled)."""
        if self._stopping:
            return
        event = self._wake.setdefault(campaign_id, asyncio.Event())
        event.set()
        task = self._tasks.get(campaign_id)
        if task is None or task.done():
            self._tasks[campaign_id] = asyncio.get_running_loop().create_task(
                self._run(campaign_id), name=f"campaign-{campaign_id}"
            )

    def running(self, campaign_id: str) -> bool:
        task = self._tasks.get(campaign_id)
        return task is not None and not task.done()

    async def wait_idle(self, campaign_id: str) -> None:
        """Until the campaign's task has ended (done, paused or cancelled)."""
        task = self._tasks.get(campaign_id)
        if task is not None:
            await asyncio.wait({task})

    async def _run(self, campaign_id: str) -> None:
        event = self._wake.setdefault(campaign_id, asyncio.Event())
        while True:
            event.clear()
            try:
                delay = await self.step(campaign_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A store failure: try again later rather than give up on the campaign.
                log.exception("campaign.step_failed campaign_id=%s", campaign_id)
                delay = 5.0
            if delay is None:
                return
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=min(delay, MAX_WAIT))
            else:
                await asyncio.sleep(0)

    async def step(self, campaign_id: str) -> float | None:
        """Handle one chunk; the seconds until the next step, or None when there is
        nothing more to do (done, paused, cancelled, unknown)."""
        campaign = await self.campaigns.get_campaign(campaign_id)
        if campaign is None or campaign.status not in (RUNNING, SCHEDULED):
            return None
        now = self.clock()
        if not await self.campaigns.claim_campaign(campaign_id, now):
            # Another node runs it (gateway.store.claims); look again later: this node
            # takes it over once that node's claim lapses.
            self._elsewhere.add(campaign_id)
            return CLAIMED_ELSEWHERE_WAIT
        if campaign_id in self._elsewhere:  # that node's claim lapsed: ours now
            self._elsewhere.discard(campaign_id)
            self.took_over += 1
            log_event(
                log,
                "campaign.took_over",
                logging.WARNING,
                campaign_id=campaign_id,
                cursor=campaign.cursor,
                detail="the node running it stopped; resumed from its cursor",
            )
        if campaign.status == SCHEDULED:
            if campaign.start_at is not None and now < campaign.start_at:
                return campaign.start_at - now
            started = await self.campaigns.set_campaign_status(
                campaign_id, RUNNING, now, expect=[SCHEDULED]
            )
            if started is None:
                return None
            campaign = started
            self._changed()
            log_event(log, "campaign.started", campaign_id=campaign_id)
        await self._fix_audience(campaign)
        window_json = campaign.spec.get("send_window")
        window = SendWindow.from_json(window_json) if window_json else None
        if window is not None and not window.recipient_local and not window.is_open(now):
            return window.next_open(now) - now
        hours = LocalHours(window, self.quiet_hours, now)
        local = hours if hours.per_recipient else None
        if await self.campaigns.unsent_count(campaign_id) >= MAX_UNSENT:
            return BACKLOG_WAIT
        tps = campaign.spec.get("tps")
        size = CHUNK if not tps else max(1, min(CHUNK, math.floor(tps)))
        if local is not None:
            due = await self.campaigns.due_recipients(campaign_id, now, size)
            if due:  # waiting recipients whose hours have come: before the cursor's
                sent = await self._send_chunk(campaign, due, now, local, cursor=None)
                return self._pace(tps, sent, now)
        numbers = await self.campaigns.recipients_after(campaign_id, campaign.cursor, size)
        if not numbers:
            waiting = await self.campaigns.next_due(campaign_id) if local is not None else None
            if waiting is not None:
                return max(waiting - now, 0.0)
            await self.campaigns.set_campaign_status(campaign_id, DONE, now, expect=[RUNNING])
            self._changed()
            log_event(log, "campaign.done", campaign_id=campaign_id)
            return None
        sent = await self._send_chunk(campaign, numbers, now, local, cursor=numbers[-1])
        return self._pace(tps, sent if local is not None else len(numbers), now)

    def _pace(self, tps: float | None, count: int, now: float) -> float:
        """Seconds until the next step: at once without a TPS, else the rest of the time
        ``count`` messages take at ``tps``."""
        if not tps:
            return 0.0
        pause: float = count / float(tps) - (self.clock() - now)
        return max(0.0, pause)

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("campaign.on_change_failed")

    async def _fix_audience(self, campaign: CampaignRecord) -> None:
        spec = campaign.spec
        responders = spec.get("responders_of")
        clicked = bool(responders and responders.get("clicked"))
        await self.campaigns.fix_audience(
            campaign.id,
            [int(i) for i in spec.get("lists", [])],
            [str(t) for t in spec.get("tags", [])],
            (responders["campaign_id"], responders.get("keyword"))
            if responders and not clicked
            else None,
            clickers_of=responders["campaign_id"] if responders and clicked else None,
        )

    async def _send_chunk(
        self,
        campaign: CampaignRecord,
        numbers: list[str],
        now: float,
        local: LocalHours | None = None,
        *,
        cursor: str | None,
    ) -> int:
        """Send to ``numbers`` (those inside their hours, with ``local``; the others wait),
        then move the cursor to ``cursor``, or, for waiting recipients (``cursor`` None),
        take the sent ones off the waiting list. Returns how many messages were made."""
        opted = await self.store.opted_out(numbers, campaign.sender)
        already = await self.campaigns.already_messaged(campaign.id, numbers)
        todo = [n for n in numbers if n not in opted and n not in already]
        waiting: list[tuple[str, float]] = []
        never = 0
        if local is not None:
            todo, waiting, never = self._split_by_hours(campaign, todo, local)
            # Before the cursor moves past them: a crash in between defers them again.
            await self.campaigns.defer_recipients(campaign.id, waiting)
        contacts = await self.campaigns.contacts_by_number(todo)
        up = self.outbound.carriers_up()
        template, targets = link_template(
            campaign.text, bool(campaign.spec.get("track_links", False))
        )
        for draw in range(1, MAX_CODE_DRAWS + 1):
            messages, invalid = self._messages(campaign, todo, contacts, template, targets, now, up)
            # Durable first; those a bind has room for leave begun, with no second commit
            # (a failing hand-off is logged: the dispatcher pages them in from the store).
            # Each message's short links are committed with it.
            try:
                await accept_and_enqueue(self.store, self.outbound, messages)
            except LinkCodeTaken:
                if draw == MAX_CODE_DRAWS:
                    raise
                log_event(log, "campaign.link_code_clash", campaign_id=campaign.id, draw=draw)
                continue
            break
        skipped_opted = len([n for n in numbers if n in opted and n not in already])
        handled = len(numbers) - len(waiting)
        if cursor is None:
            await self.campaigns.advance_deferred(
                campaign.id, numbers, now, handled, skipped_opted, invalid + never
            )
        else:
            await self.campaigns.advance_campaign(
                campaign.id, cursor, handled, skipped_opted, invalid + never
            )
        return len(messages)

    def _split_by_hours(
        self, campaign: CampaignRecord, numbers: list[str], local: LocalHours
    ) -> tuple[list[str], list[tuple[str, float]], int]:
        """``numbers`` inside their hours now, those waiting with their time, and how many
        can never be sent to (their zones' hours do not overlap)."""
        now_open: list[str] = []
        waiting: list[tuple[str, float]] = []
        never = 0
        for number in numbers:
            due = local.due(number_zones(number, self.fallback_zone))
            if due is None:
                never += 1
                log_event(
                    log,
                    "campaign.recipient_skipped",
                    logging.DEBUG,
                    campaign_id=campaign.id,
                    to=number,
                    error="its time zones share no hour of the send window",
                )
            elif due > local.now:
                waiting.append((number, due))
            else:
                now_open.append(number)
        return now_open, waiting, never

    def _messages(
        self,
        campaign: CampaignRecord,
        todo: list[str],
        contacts: Mapping[str, Contact],
        template: str,
        targets: list[str],
        now: float,
        up: set[str],
    ) -> tuple[list[NewMessage], int]:
        """The chunk's messages (with fresh link codes) and how many recipients were
        skipped as invalid."""
        links = self.links
        if targets and links is None:
            # Links accepted while [links] was configured, and the section gone since: the
            # targets themselves, untracked, rather than a text with {link:...} in it.
            log_event(log, "campaign.links_untracked", logging.WARNING, campaign_id=campaign.id)
        messages: list[NewMessage] = []
        invalid = 0
        for number in todo:
            fields = contact_fields(number, contacts.get(number))
            codes: list[str] = []
            if targets:
                if links is not None:
                    codes = [new_code(links.code_length) for _ in targets]
                    fields.update(link_fields(links.prefix, codes))
                else:
                    fields.update(link_fields("", targets))
            text = render(template, fields)
            prepared = self.intake.prepare(
                {"to": number, "from": campaign.sender, "text": text, "campaign_id": campaign.id},
                account=campaign.account or ACCOUNT,
                now=now,
                up=up,
            )
            if isinstance(prepared, list):
                invalid += 1  # an empty or too long rendering, a number no longer valid
                log_event(
                    log,
                    "campaign.recipient_skipped",
                    logging.DEBUG,
                    campaign_id=campaign.id,
                    to=number,
                    error="; ".join(f"{e.path}: {e.message}" for e in prepared),
                )
                continue
            if codes:
                prepared.links = tuple(zip(codes, targets, strict=True))
            messages.append(prepared)
        return messages, invalid
