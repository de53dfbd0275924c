"""The campaign side's values: contact lists, CSV imports, campaigns and their figures.

What the campaign ports (gateway.store.ports: ``Contacts``, ``Imports``, ``Campaigns``,
``Templates``) take and give. The SQLite implementation,
``gateway.store.sqlite_campaigns.SqliteCampaignStore``, shares the message store's file,
writer task and group commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

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
    bytes_total: int = 0
    """The file's size (0 for an import recorded before sizes were)."""
    bytes_read: int = 0
    """How far the parsing got in it: the import's progress is bytes_read / bytes_total."""


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
