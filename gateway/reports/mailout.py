"""Interactions sent by e-mail on demand (``POST /v1/interactions/email``), through the
daily digest's SMTP settings (``[digest.smtp]``, ``[digest] from_address``).

The CSV is the export's (:mod:`gateway.reports.csvfile`: the MO's columns, then the
sender's contact; formulas neutralised; UTF-8 with a BOM), built in memory and attached.
At most :data:`~gateway.reports.digest.MAX_ATTACHED_ROWS` rows go, as in a digest (most mail
servers refuse messages over 10-25 MB); the body says when there were more and how to
export them all.
"""

from __future__ import annotations

import datetime
import email.utils
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Final

from gateway.reports.digest import MailSender, attach_csv

MAX_RECIPIENTS: Final = 5
"""Addresses per e-mail: a report for a team, as a digest."""


@dataclass(frozen=True, slots=True)
class Mailer:
    """How on-demand e-mails leave: the digest's sender and From: address."""

    sender: MailSender
    from_address: str
    node_id: str = "smsgw"


def _stamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def build_export_message(
    *,
    mailer: Mailer,
    to: Sequence[str],
    selection: Mapping[str, object],
    attachment: bytes,
    rows: int,
    more: bool,
    now: float,
) -> EmailMessage:
    """The e-mail: what was selected and how many rows, the CSV attached."""
    message = EmailMessage()
    message["Subject"] = f"smsgw interactions: {rows} rows"
    message["From"] = mailer.from_address
    message["To"] = ", ".join(to)
    message["Date"] = email.utils.formatdate(now, localtime=False)
    node = re.sub(r"[^A-Za-z0-9.-]", "_", mailer.node_id) or "smsgw"
    message["Message-ID"] = email.utils.make_msgid("interactions", domain=f"{node}.smsgw")
    chosen = ", ".join(f"{k}={v}" for k, v in selection.items() if v is not None)
    lines = [
        "Interactions (MOs) as asked for over the smsgw API.",
        f"Selection: {chosen or 'every interaction'}.",
    ]
    if more:
        lines.append(
            f"The attached CSV holds the first {rows} of them, oldest first; export them all"
            " with GET /v1/interactions/export.csv and the same filters."
        )
    else:
        lines.append(f"The attached CSV holds the {rows} of them, oldest first.")
    message.set_content("\n".join(lines) + "\n")
    attach_csv(message, attachment, f"interactions-{_stamp(now)}.csv")
    return message
