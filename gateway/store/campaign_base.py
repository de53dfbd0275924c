"""The campaign side of the store: contact lists, CSV imports, campaigns and their figures.

A narrow async interface like :mod:`gateway.store.base`: nothing above it knows SQL. The
SQLite implementation is :class:`gateway.store.sqlite_campaigns.SqliteCampaignStore`; it
shares the message store's file, writer task and group commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from gateway.store.base import CampaignCounts, Contact, Periods

IMPORT_RUNNING: Final = "running"
IMPORT_DONE: Final = "done"
IMPORT_FAILED: Final = "failed"

MAX_IMPORT_ERRORS: Final = 1000
"""Row errors kept per import (the count of rejected rows goes on)."""


class ListInUse(Exception):
    """A list an import is still filling, or a campaign not yet begun (draft, scheduled)
    will take its audience from: it cannot be deleted now (the message says which)."""


@dataclass(slots=True)
class ContactList:
    id: int
    name: str
    contacts: int
    created_at: float
    account: str = ""
    """The HTTP token's account that made it; "" before accounts existed."""


@dataclass(slots=True)
class ImportJob:
    """One CSV import into a list, and how far it got."""

    id: str
    list_id: int
    status: str  # running | done | failed
    opt_in_source: str
    created_at: float
    rows: int = 0
    imported: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # {"row", "error"}, first 1000
    finished_at: float | None = None
    failure: str | None = None


@dataclass(slots=True)
class ImportRow:
    """A valid CSV row: the number in E.164, its name (None: column absent) and attributes."""

    number: str
    name: str | None
    attributes: dict[str, str]


@dataclass(slots=True)
class ListMembership:
    list_id: int
    list_name: str
    opt_in_source: str
    opt_in_at: float


@dataclass(slots=True)
class OptOutRecord:
    sender: str | None  # None: every sender
    source: str
    at: float


@dataclass(slots=True)
class CampaignRecord:
    """A campaign as stored. ``spec`` holds the request fields that only the runner and the
    inbound side read (lists, tags, keywords, send window ...), as JSON-able values."""

    id: str
    name: str
    sender: str
    text: str
    spec: dict[str, Any]
    status: str
    created_at: float
    start_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    recipients: int = 0  # audience size, fixed when the campaign starts
    cursor: str | None = None  # the last recipient handled (recipients go in number order)
    handled: int = 0  # recipients handled: messaged or skipped
    skipped_opted_out: int = 0
    skipped_invalid: int = 0
    account: str = ""
    """The HTTP token's account that made it; "" before accounts existed (its messages go
    under the account ``campaigns``)."""


@dataclass(slots=True)
class ReplyFigures:
    """What the interactions of one campaign say beyond its counts (``campaign_counts``:
    replies, responders, opt-outs ...): responses by keyword, each responder's time to the
    first response. (MOs per hour and per day are the ``replies`` of ``campaign_series``.)"""

    per_keyword: dict[str, int]
    seconds_to_first_reply: list[float]


@dataclass(frozen=True, slots=True)
class CampaignClick:
    """One request for a campaign's short link (gateway.links), as exported."""

    id: int
    at: float
    number: str
    code: str
    target: str | None
    """None once the code expired and was deleted."""
    user_agent: str
    bot: bool


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """A saved message text with ``{field}`` placeholders (gateway.inbound.templates), its
    account's as lists and campaigns are."""

    id: str
    account: str
    name: str
    text: str
    created_at: float
    updated_at: float


class CampaignStore(Protocol):
    # -- lists, contacts, imports ------------------------------------------------------------

    async def create_list(self, name: str, at: float, account: str = "") -> ContactList: ...

    async def contact_lists(self) -> list[ContactList]: ...

    async def get_list(self, list_id: int) -> ContactList | None: ...

    async def import_rows(
        self,
        list_id: int,
        rows: Sequence[ImportRow],
        opt_in_source: str,
        at: float,
        progress: ImportJob | None = None,
    ) -> None:
        """Create or update the contacts (a name column replaces the name, attributes are
        merged) and make them members of the list with this opt-in record. With
        ``progress``, that import record is saved in the same transaction (as
        :meth:`save_import`), so the progress shown never runs ahead of the rows."""

    async def save_import(self, job: ImportJob) -> None:
        """Create or update an import's record (progress, status, errors)."""

    async def get_import(self, import_id: str) -> ImportJob | None: ...

    async def fail_running_imports(self, reason: str, at: float) -> int:
        """Mark imports left running (by a stopped process) failed; how many."""

    async def memberships(self, number: str) -> list[ListMembership]: ...

    async def opt_outs_of(self, number: str) -> list[OptOutRecord]: ...

    async def tags_of(self, number: str) -> list[str]: ...

    async def contacts_by_number(self, numbers: Sequence[str]) -> dict[str, Contact]: ...

    async def search_contacts(
        self, q: str | None, lists: Sequence[int] | None, after: str, limit: int
    ) -> list[Contact]:
        """Contacts by number above ``after``, at most ``limit``: with ``q``, those whose name
        holds it (ASCII case ignored) or, when it is digits (a '+' allowed), whose number
        does; with ``lists``, only members of those lists (None: every contact)."""

    async def update_contact(
        self, number: str, name: str | None, attributes: dict[str, str | None], at: float
    ) -> Contact | None:
        """Set the name (None: keep it) and merge ``attributes`` (a null removes that key);
        the contact as it now is, or None when there is no such contact."""

    async def delete_contact(self, number: str, lists: Sequence[int] | None) -> bool:
        """Take the number out of ``lists`` (None: out of every list); once it is in no list,
        forget the contact (name, attributes, tags). Opt-outs stay. False: nothing there."""

    async def delete_list(self, list_id: int, at: float) -> int | None:
        """Delete a list (its id is never reused) and its members; how many members went,
        None when there is no such list."""

    async def purge_deleted_list(self, list_id: int) -> int:
        """Remove the members a deleted list still has (a stop during its deletion)."""

    async def deleted_lists_with_members(self) -> list[int]: ...

    async def opt_outs(
        self, lists: Sequence[int] | None, after: tuple[str, str], limit: int
    ) -> list[tuple[str, OptOutRecord]]:
        """Opt-outs (number, record) by (number, sender) above ``after`` (sender '*' for
        every sender); with ``lists``, only of numbers in those lists."""

    # -- campaigns ---------------------------------------------------------------------------

    async def save_campaign(self, campaign: CampaignRecord) -> None:
        """Create or replace a campaign's record."""

    async def get_campaign(self, campaign_id: str) -> CampaignRecord | None: ...

    async def campaigns(self, statuses: Sequence[str] | None = None) -> list[CampaignRecord]: ...

    async def set_campaign_status(
        self, campaign_id: str, status: str, at: float, *, expect: Sequence[str]
    ) -> CampaignRecord | None:
        """Move a campaign to ``status`` if it is in one of ``expect`` (atomic). Sets
        started_at (running) and finished_at (done, cancelled) when first reached. None when
        the campaign was not in one of ``expect``."""

    async def fix_audience(
        self,
        campaign_id: str,
        lists: Sequence[int],
        tags: Sequence[str],
        responders_of: tuple[str, str | None] | None = None,
        clickers_of: str | None = None,
    ) -> int:
        """Write the campaign's recipients once (members of ``lists``, contacts with one of
        ``tags``, with ``responders_of`` = (campaign, keyword or None) the numbers that
        replied to that campaign, and with ``clickers_of`` the recipients of that campaign
        who clicked one of its short links, as ``CampaignCounts.unique_clickers`` counts
        them); returns how many distinct numbers. Called again it changes nothing and
        returns the same count."""

    async def recipients_after(self, campaign_id: str, cursor: str | None, limit: int) -> list[str]:
        """The next recipients in number order after ``cursor``."""

    async def already_messaged(self, campaign_id: str, numbers: Sequence[str]) -> set[str]:
        """Which of ``numbers`` already have a message of this campaign."""

    async def advance_campaign(
        self, campaign_id: str, cursor: str, handled: int, opted_out: int, invalid: int
    ) -> None:
        """Move the cursor past one chunk, adding its counts."""

    async def defer_recipients(
        self, campaign_id: str, waiting: Sequence[tuple[str, float]]
    ) -> None:
        """Keep (number, due_at) recipients outside their send window until due_at (a
        number already waiting gets the new time)."""

    async def due_recipients(self, campaign_id: str, now: float, limit: int) -> list[str]:
        """Waiting recipients whose time has come, earliest first."""

    async def next_due(self, campaign_id: str) -> float | None:
        """The earliest due_at of the campaign's waiting recipients; None when none wait."""

    async def deferred_count(self, campaign_id: str) -> int:
        """How many of the campaign's recipients wait for their send window."""

    async def advance_deferred(
        self,
        campaign_id: str,
        numbers: Sequence[str],
        now: float,
        handled: int,
        opted_out: int,
        invalid: int,
    ) -> None:
        """In one commit: ``numbers`` stop waiting (those due by ``now``; one deferred
        again to a later time stays) and the counts are added, the cursor unchanged."""

    async def unsent_count(self, campaign_id: str) -> int:
        """The campaign's messages not yet handed to a carrier (accepted or queued)."""

    async def campaign_statuses(self, campaign_id: str) -> dict[str, int]:
        """The campaign's messages by status."""

    async def campaign_counts(self, campaign_id: str, since: float, until: float) -> CampaignCounts:
        """The campaign's figures in [since, until): the store's one definition of them,
        which the daily digest uses too (gateway.store.base.CampaignCounts)."""

    async def campaign_series(
        self, campaign_id: str, axes: Sequence[Periods]
    ) -> list[list[CampaignCounts]]:
        """``campaign_counts`` in each period of each axis (gateway.store.base.ReportStore)."""

    async def campaign_clicks(
        self, campaign_id: str, after: tuple[float, int], limit: int
    ) -> list[CampaignClick]:
        """The campaign's click records (bots' too) by time, after ``after`` = (at, id)."""

    async def reply_figures(self, campaign_id: str) -> ReplyFigures: ...

    # -- message templates -------------------------------------------------------------------

    async def save_template(self, template: MessageTemplate) -> None:
        """Insert or replace (by id)."""

    async def get_template(self, template_id: str) -> MessageTemplate | None: ...

    async def templates(self, account: str | None) -> list[MessageTemplate]:
        """By id; ``account`` None: every account's."""

    async def delete_template(self, template_id: str) -> bool:
        """False when there was none."""
