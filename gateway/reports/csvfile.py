"""Interactions as CSV, one page of rows at a time, safe to open in a spreadsheet.

Choices, and why:

- UTF-8 *with* a byte order mark by default. The people who open these files mostly use
  Excel, which reads a CSV without a BOM in the machine's ANSI code page: accented names and
  emoji come out garbled. Python's csv (``encoding="utf-8-sig"``), pandas, LibreOffice and
  Google Sheets all accept the BOM. The export takes ``bom=0`` for tools that choke on it.
- Comma-separated, fields quoted when needed, CRLF line ends (RFC 4180).
- Formula injection (CWE-1236) is neutralised: a cell starting with ``=``, ``+``, ``-``,
  ``@``, tab or carriage return (or their full-width forms U+FF1D, U+FF0B, U+FF0D, U+FF20,
  which some spreadsheets also take for operators) gets a leading apostrophe, so a
  subscriber who texts ``=HYPERLINK(...)`` cannot make a spreadsheet run anything.
  International numbers (``+33...``) get one too: a spreadsheet then shows them as text
  instead of eating the ``+`` and the leading digits.
- Times are ISO-8601 in UTC with milliseconds, as everywhere in the API.
- The interactions export (and its e-mail) add the sender's contact after those columns:
  ``name``, then one ``attr.<key>`` column per attribute key the exported contacts have
  (sorted; the ``attr.`` prefix keeps a key such as ``text`` from passing for a column of
  the MO), empty where a contact has no such key or there is no contact. At most
  :data:`MAX_ATTRIBUTE_COLUMNS` keys get a column; past that, a last ``other_attributes``
  column holds the rest as JSON, so nothing is left out silently. (The digest's attachment
  keeps the MO columns only.)
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.store.base import Contact, Interaction
from gateway.store.campaign_base import CampaignClick

BOM: Final = "\ufeff"

COLUMNS: Final = (
    "id",
    "received_at",
    "source",
    "destination",
    "text",
    "keyword",
    "campaign_id",
    "actions",
    "carrier",
    "complete",
)
"""The header row. ``actions`` lists what was done (``reply; tag:vip``), ``complete`` says
whether every part of a long MO arrived."""

MAX_ATTRIBUTE_COLUMNS: Final = 100
"""Attribute keys given a column of their own (an import has at most 99)."""
ATTRIBUTE_PREFIX: Final = "attr."
OTHER_ATTRIBUTES: Final = "other_attributes"


@dataclass(frozen=True, slots=True)
class ContactColumns:
    """The contact columns of an export: the name, then the attribute keys given a column,
    and ``overflow`` when some keys did not get one (they go in ``other_attributes``)."""

    keys: tuple[str, ...] = ()
    overflow: bool = False

    @classmethod
    def of(cls, keys: Iterable[str]) -> ContactColumns:
        ordered = sorted(set(keys))
        return cls(tuple(ordered[:MAX_ATTRIBUTE_COLUMNS]), len(ordered) > MAX_ATTRIBUTE_COLUMNS)

    def header(self) -> list[str]:
        other = [OTHER_ATTRIBUTES] if self.overflow else []
        return ["name", *(ATTRIBUTE_PREFIX + k for k in self.keys), *other]

    def cells(self, contact: Contact | None) -> list[str]:
        attributes = contact.attributes if contact is not None else {}
        cells = [contact.name if contact is not None else ""]
        cells += [str(attributes.get(k, "")) for k in self.keys]
        if self.overflow:
            rest = {k: v for k, v in attributes.items() if k not in self.keys}
            cells.append(json.dumps(rest, ensure_ascii=False, sort_keys=True) if rest else "")
        return cells


FORMULA_STARTS: Final = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def neutralise(cell: str) -> str:
    """``cell`` with a leading apostrophe when a spreadsheet would take it for a formula."""
    if cell and cell[0] in FORMULA_STARTS:
        return "'" + cell
    return cell


def iso_utc(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe_action(action: dict[str, Any]) -> str:
    """One action as a short cell fragment: its ``type``, the tag or question it names, and
    ``(failed)`` when it did not succeed, ``(not sent: why)`` for a reply held back on
    purpose (rate limit, opted out); JSON for an entry of another shape."""
    kind = action.get("type")
    if not isinstance(kind, str):
        return json.dumps(action, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    detail = action.get("tag") or action.get("question")
    text = f"{kind}:{detail}" if isinstance(detail, str) and detail else kind
    not_sent = action.get("not_sent")
    if action.get("error") or (action.get("ok") is False and not not_sent):
        text += " (failed)"
    elif not_sent:
        text += f" (not sent: {not_sent})"
    return text


def row_of(
    item: Interaction,
    columns: ContactColumns | None = None,
    contacts: Mapping[str, Contact] | None = None,
) -> list[str]:
    cells = [
        str(item.id),
        iso_utc(item.received_at),
        item.source,
        item.destination,
        item.text,
        item.keyword or "",
        item.campaign_id or "",
        "; ".join(describe_action(a) for a in item.actions if isinstance(a, dict)),
        item.carrier,
        "yes" if item.complete else "no",
    ]
    if columns is not None:
        cells += columns.cells((contacts or {}).get(item.source))
    return [neutralise(c) for c in cells]


def _format(rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue()


def table(rows: Iterable[Sequence[str]], bom: bool = False) -> bytes:
    """Any rows as CSV lines, UTF-8, every cell neutralised (``bom``: a BOM first)."""
    text = _format([neutralise(c) for c in row] for row in rows)
    return ((BOM if bom else "") + text).encode("utf-8")


def header(bom: bool = True, columns: ContactColumns | None = None) -> bytes:
    names = [*COLUMNS, *(columns.header() if columns is not None else ())]
    return ((BOM if bom else "") + _format([[neutralise(n) for n in names]])).encode("utf-8")


def rows(
    items: Iterable[Interaction],
    columns: ContactColumns | None = None,
    contacts: Mapping[str, Contact] | None = None,
) -> bytes:
    """CSV lines for ``items`` (a page), UTF-8; with ``columns``, each with the contact of
    its source (from ``contacts``, by number)."""
    return _format(row_of(i, columns, contacts) for i in items).encode("utf-8")


CLICK_COLUMNS: Final = ("at", "number", "code", "target", "bot", "user_agent")
"""The header of a campaign's clicks export (GET /v1/campaigns/{id}/clicks.csv): ``bot`` is
``yes`` for a bot's or a link preview's request, ``no`` for a person's click; ``target`` is
empty once the code has expired and been deleted."""


def click_header(bom: bool = True) -> bytes:
    return ((BOM if bom else "") + _format([CLICK_COLUMNS])).encode("utf-8")


def click_rows(items: Iterable[CampaignClick]) -> bytes:
    """CSV lines for a page of clicks, UTF-8, neutralised as interactions are."""
    return _format(
        [
            neutralise(c)
            for c in (
                iso_utc(i.at),
                i.number,
                i.code,
                i.target or "",
                "yes" if i.bot else "no",
                i.user_agent,
            )
        ]
        for i in items
    ).encode("utf-8")
