"""The daily campaign digest: when it is due (time zones, DST, day boundaries, catch-up), what
it counts, and that it reaches a real SMTP server on loopback (aiosmtpd) once, restarts
included. The clock is injected: nothing waits for 18:00."""

from __future__ import annotations

import csv
import datetime
import email
import email.policy
import io
import logging
import threading
import tomllib
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from gateway.config import DigestConfig, GatewayConfig, SmtpConfig
from gateway.config.loader import ConfigError, load_dataclass
from gateway.core.model import IncomingReceipt, MessageStatus, NewMessage, SubmitOutcome
from gateway.reports.csvfile import COLUMNS
from gateway.reports.digest import (
    DigestCampaign,
    DigestScheduler,
    due_digest,
    recipients_of,
)
from gateway.store.base import InteractionOutcome, NewInteraction
from gateway.store.sqlite import SqliteStore

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
SIX_PM = datetime.time(18, 0)
HOUR = 3600.0
DAY = 86400.0


def paris(*args: int) -> float:
    """Epoch seconds of a wall-clock time in Paris."""
    return datetime.datetime(*args, tzinfo=PARIS).timestamp()  # type: ignore[misc]


# -- when ---------------------------------------------------------------------------------


def test_the_first_digest_is_the_first_digest_time_after_the_start() -> None:
    start = paris(2030, 3, 29, 9, 0)
    assert due_digest(start, 10, paris(2030, 3, 29, 17, 59), SIX_PM, PARIS) is None
    due = due_digest(start, 10, paris(2030, 3, 29, 18, 0), SIX_PM, PARIS)
    assert due is not None
    assert (due.day, due.number, due.since, due.until) == (
        datetime.date(2030, 3, 29),
        1,
        start,
        paris(2030, 3, 29, 18, 0),
    )
    late_start = paris(2030, 3, 29, 19, 0)  # after that day's digest time
    assert due_digest(late_start, 10, paris(2030, 3, 29, 23, 0), SIX_PM, PARIS) is None
    due = due_digest(late_start, 10, paris(2030, 3, 30, 18, 0), SIX_PM, PARIS)
    assert due is not None and (due.day.day, due.number, due.since) == (30, 1, late_start)


def test_a_period_runs_from_one_digest_time_to_the_next_across_dst() -> None:
    start = paris(2030, 3, 29, 9, 0)
    due = due_digest(start, 10, paris(2030, 3, 31, 20, 0), SIX_PM, PARIS)
    assert due is not None
    assert (due.day, due.number) == (datetime.date(2030, 3, 31), 3)
    # Clocks went forward that night: 18:00 CET to 18:00 CEST is 23 hours.
    assert due.since == paris(2030, 3, 30, 18, 0)
    assert due.until - due.since == 23 * HOUR
    assert due.until == datetime.datetime(2030, 3, 31, 16, 0, tzinfo=datetime.UTC).timestamp()
    autumn = due_digest(paris(2030, 10, 20, 8, 0), 10, paris(2030, 10, 27, 18, 0), SIX_PM, PARIS)
    assert autumn is not None and autumn.until - autumn.since == 25 * HOUR


def test_the_time_zone_decides_the_day_and_the_hour() -> None:
    start = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC).timestamp()
    now = datetime.datetime(2030, 6, 1, 20, 0, tzinfo=datetime.UTC).timestamp()
    # 20:00 UTC is 22:00 in Paris (digest due) but 16:00 in New York (not yet).
    assert due_digest(start, 10, now, SIX_PM, PARIS) is not None
    assert due_digest(start, 10, now, SIX_PM, zoneinfo.ZoneInfo("America/New_York")) is None
    due = due_digest(start, 10, now + 2 * HOUR, SIX_PM, zoneinfo.ZoneInfo("America/New_York"))
    assert due is not None and due.until == now + 2 * HOUR


def test_digests_stop_after_n_days_and_a_missed_one_is_caught_up_once() -> None:
    start = paris(2030, 5, 1, 9, 0)
    last = due_digest(start, 3, paris(2030, 5, 3, 18, 30), SIX_PM, PARIS)
    assert last is not None and (last.day.day, last.number) == (3, 3)
    # After the third day the latest due stays the third (a catch-up after downtime) ...
    later = due_digest(start, 3, paris(2030, 5, 4, 18, 30), SIX_PM, PARIS)
    assert later is not None and (later.day.day, later.number) == (3, 3)
    # ... but not forever.
    assert due_digest(start, 3, paris(2030, 5, 6, 18, 30), SIX_PM, PARIS) is None
    # Down over two digest times: only the latest is due, not both.
    back = due_digest(start, 10, paris(2030, 5, 5, 10, 0), SIX_PM, PARIS)
    assert back is not None and back.day == datetime.date(2030, 5, 4)


def test_recipients_are_checked_and_capped_at_five() -> None:
    campaign = DigestCampaign(
        id="c",
        name="c",
        started_at=0.0,
        to=("a@x.org", "A@x.org", "not-an-address", *(f"u{n}@x.org" for n in range(6))),
    )
    used, refused = recipients_of(campaign)
    assert used == ["a@x.org", "u0@x.org", "u1@x.org", "u2@x.org", "u3@x.org"]
    assert "not-an-address" in refused and "u5@x.org" in refused


# -- config -------------------------------------------------------------------------------


def _raw(digest: dict[str, Any] | None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "node": {"data_dir": "/tmp/x", "time_zone": "Europe/Paris"},
        "http": {"tokens": [{"name": "t", "sha256": "0" * 64}]},
        "log": {},
        "store": {},
        "carriers": [
            {"name": "a", "host": "h", "port": 1, "system_id": "s", "password": "p"},
        ],
    }
    if digest is not None:
        raw["digest"] = digest
    return raw


def test_without_a_digest_section_there_is_no_digest() -> None:
    assert load_dataclass(GatewayConfig, _raw(None)).digest is None


@pytest.mark.parametrize(
    ("digest", "expected"),
    [
        (
            {"from_address": "d@example.net", "smtp": {"host": "mx", "password": "s3cret"}},
            "digest.smtp.password: set without a user",
        ),
        ({"from_address": "nobody", "smtp": {"host": "mx"}}, "digest.from_address: must be"),
        ({"from_address": "d@example.net", "time": "6pm", "smtp": {"host": "mx"}}, "digest.time"),
        (
            {"from_address": "d@example.net", "time_zone": "Mars/Olympus", "smtp": {"host": "m"}},
            "digest.time_zone: unknown time zone",
        ),
        ({"from_address": "d@example.net"}, "digest.smtp: missing required key"),
    ],
)
def test_bad_digest_settings_are_reported(digest: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_dataclass(GatewayConfig, _raw(digest))
    assert any(e.startswith(expected) for e in caught.value.errors), caught.value.errors


def test_defaults_and_the_node_time_zone() -> None:
    config = load_dataclass(
        GatewayConfig, _raw({"from_address": "d@example.net", "smtp": {"host": "mx"}})
    )
    digest = config.digest
    assert digest is not None
    assert (digest.time, digest.days) == ("18:00", 10)
    assert digest.tzinfo(config.node) == PARIS
    assert digest.smtp.effective_port == 587
    assert SmtpConfig(host="mx", security="tls").effective_port == 465
    assert "s3cret" not in repr(SmtpConfig(host="mx", user="u", password="s3cret"))


# -- sending, against a real SMTP server ---------------------------------------------------


@dataclass
class Inbox:
    """aiosmtpd handler: keeps what it is given; can refuse for a while."""

    mails: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    refuse: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 try again later"
        with self.lock:
            self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"s3cret")

    def parsed(self, n: int) -> EmailMessage:
        message = email.message_from_bytes(self.mails[n][2], policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


class LoopbackController(Controller):
    """aiosmtpd's Controller on port 0: learn the port before its readiness probe."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, LoopbackController]]:
    inbox = Inbox()
    controller = LoopbackController(
        inbox,
        hostname="127.0.0.1",
        port=0,
        authenticator=inbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, controller
    finally:
        controller.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "digest.db", synchronous="normal")
    await sqlite.open()
    try:
        yield sqlite
    finally:
        await sqlite.close()


class Campaigns:
    def __init__(self, *campaigns: DigestCampaign) -> None:
        self.campaigns = list(campaigns)

    async def digest_campaigns(self, now: float) -> list[DigestCampaign]:
        return [c for c in self.campaigns if c.started_at <= now]


def digest_config(port: int, **smtp: Any) -> DigestConfig:
    return DigestConfig(
        smtp=SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=5, **smtp),
        from_address="digest@example.net",
    )


START = paris(2030, 3, 30, 9, 0)
SPRING = DigestCampaign(
    id="spring",
    name="Spring sale",
    started_at=START,
    to=("ops@example.net", "boss@example.org"),
)


async def mt(
    store: SqliteStore,
    n: int,
    campaign: str,
    submitted_at: float,
    delivered_at: float | None = None,
) -> None:
    message_id = f"{n:026x}"
    await store.accept(
        [
            NewMessage(
                id=message_id,
                to=f"+3361234{n:04d}",
                sender="36180",
                text="Spring sale! Reply YES",
                encoding="gsm7",
                parts=1,
                carrier="alpha",
                created_at=submitted_at - 1,
                campaign_id=campaign,
            )
        ]
    )
    key = f"k{n}"
    await store.record_outcomes(
        [SubmitOutcome(message_id, 1, "alpha", MessageStatus.SUBMITTED, submitted_at, key, key, 0)]
    )
    if delivered_at is not None:
        await store.record_receipts(
            [IncomingReceipt("alpha", key, key, MessageStatus.DELIVERED, "DELIVRD", delivered_at)]
        )


async def mo(
    store: SqliteStore,
    n: int,
    text: str,
    at: float,
    campaign: str = "spring",
    actions: list[dict[str, Any]] | None = None,
    keyword: str | None = None,
    rule: str | None = None,
) -> int:
    new_id = await store.record_interaction(
        NewInteraction(
            carrier="alpha",
            source=f"+3361234{n:04d}",
            destination="36180",
            text=text,
            data_coding=0,
            parts=1,
            parts_received=1,
            received_at=at,
            completed_at=at,
        )
    )
    await store.finish_interactions(
        [
            InteractionOutcome(
                new_id,
                keyword=keyword,
                rule=rule,
                campaign_id=campaign,
                actions=actions or [],
                at=at,
            )
        ]
    )
    return new_id


async def seed(store: SqliteStore) -> dict[str, int]:
    """Day 1 (30 March, 09:00 to 18:00 CET) and the start of day 2."""
    for n in range(6):
        delivered = START + 600 + n if n < 4 else None
        await mt(store, n, "spring", START + 60 + n, delivered)
    await mt(store, 50, "autumn", START + 60, START + 70)  # another campaign
    ids = {
        "yes": await mo(store, 0, "Yes", START + HOUR, keyword="YES"),
        "yes_again": await mo(store, 0, "yes!!", START + 2 * HOUR, keyword="YES"),
        "stop": await mo(
            store, 1, "STOP", START + 3 * HOUR, actions=[{"type": "opt_out", "ok": True}]
        ),
        "formula": await mo(store, 2, "=1+2", paris(2030, 3, 30, 17, 59, 59)),
        # 18:00:00 sharp belongs to the next period; so does another campaign's MO.
        "next_day": await mo(store, 3, "No", paris(2030, 3, 30, 18, 0), keyword="NO"),
        "other": await mo(store, 4, "Yes", START + HOUR, campaign="autumn"),
    }
    await mt(store, 7, "spring", paris(2030, 3, 30, 19, 0))  # sent in day 2
    return ids


async def test_the_digest_arrives_with_the_counts_and_the_csv(
    store: SqliteStore, smtp: tuple[Inbox, LoopbackController]
) -> None:
    inbox, controller = smtp
    ids = await seed(store)
    scheduler = DigestScheduler(
        digest_config(controller.port), PARIS, store, Campaigns(SPRING), node_id="gw-1"
    )
    assert await scheduler.run_once(paris(2030, 3, 30, 17, 59)) == []
    assert inbox.mails == []
    sent = await scheduler.run_once(paris(2030, 3, 30, 18, 0, 30))
    assert [(s.campaign_id, s.day.isoformat(), s.rows) for s in sent] == [
        ("spring", "2030-03-30", 4)
    ]
    counts = sent[0].counts
    assert (counts.sent, counts.delivered, counts.replies) == (6, 4, 4)
    assert (counts.unique_responders, counts.opt_outs) == (3, 1)

    (mail_from, rcpt, _) = inbox.mails[0]
    assert mail_from == "digest@example.net"
    assert rcpt == ["ops@example.net", "boss@example.org"]
    message = inbox.parsed(0)
    assert message["Subject"] == "Campaign digest: Spring sale, day 1 of 10 (2030-03-30)"
    assert message["Message-ID"] == "<digest.spring.2030-03-30@gw-1.smsgw>"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    for label, today in [
        ("Sent", 6),
        ("Delivered", 4),
        ("Replies", 4),
        ("Unique responders", 3),
        ("Opt-outs", 1),
    ]:
        assert f"{label:<20}{today:>12}{today:>14}" in text
    assert "Period: 2030-03-30 09:00 CET to 2030-03-30 18:00 CET." in text
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "interactions-spring-2030-03-30.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_content_charset() == "utf-8"  # what a mail client decodes it with
    raw = attachment.get_payload(decode=True)
    assert isinstance(raw, bytes) and raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert [int(r["id"]) for r in rows] == [
        ids["yes"],
        ids["yes_again"],
        ids["stop"],
        ids["formula"],
    ]
    assert list(rows[0]) == list(COLUMNS)
    assert rows[2]["actions"] == "opt_out"
    assert rows[3]["text"] == "'=1+2"
    assert rows[0]["source"] == "'+33612340000"


async def test_a_digest_is_not_sent_twice_even_after_a_restart(
    tmp_path: Path, smtp: tuple[Inbox, LoopbackController]
) -> None:
    inbox, controller = smtp
    path = tmp_path / "restart.db"
    config = digest_config(controller.port)
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        await seed(store)
        scheduler = DigestScheduler(config, PARIS, store, Campaigns(SPRING))
        assert len(await scheduler.run_once(paris(2030, 3, 30, 18, 1))) == 1
        assert await scheduler.run_once(paris(2030, 3, 30, 18, 2)) == []
    finally:
        await store.close()
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        again = DigestScheduler(config, PARIS, store, Campaigns(SPRING))
        assert await again.run_once(paris(2030, 3, 30, 21, 0)) == []
        assert len(inbox.mails) == 1
        # The next day's digest covers 18:00 to 18:00: the 18:00:00 'No' and the 19:00 MT.
        (day2,) = await again.run_once(paris(2030, 3, 31, 18, 0))
        assert day2.day == datetime.date(2030, 3, 31)
        assert (day2.counts.sent, day2.counts.replies, day2.rows) == (1, 1, 1)
        assert len(inbox.mails) == 2
        assert "day 2 of 10" in inbox.parsed(1)["Subject"]
    finally:
        await store.close()


async def test_after_downtime_one_missed_digest_is_caught_up(
    store: SqliteStore, smtp: tuple[Inbox, LoopbackController]
) -> None:
    inbox, controller = smtp
    await seed(store)
    scheduler = DigestScheduler(digest_config(controller.port), PARIS, store, Campaigns(SPRING))
    # Down from before day 1's digest until the morning of day 3: days 1 and 2 were missed;
    # only day 2's (the latest) goes out, once.
    back = paris(2030, 4, 1, 9, 0)
    sent = await scheduler.run_once(back)
    assert [s.day.isoformat() for s in sent] == ["2030-03-31"]
    assert await scheduler.run_once(back + 60) == []
    assert len(inbox.mails) == 1


async def test_a_refused_digest_is_retried_later_then_sent_once(
    store: SqliteStore, smtp: tuple[Inbox, LoopbackController]
) -> None:
    inbox, controller = smtp
    await seed(store)
    scheduler = DigestScheduler(digest_config(controller.port), PARIS, store, Campaigns(SPRING))
    inbox.refuse = True
    at = paris(2030, 3, 30, 18, 0)
    assert await scheduler.run_once(at) == []
    assert scheduler.failed == 1
    inbox.refuse = False
    assert await scheduler.run_once(at + 60) == []  # waits for retry_interval
    assert len(await scheduler.run_once(at + scheduler.config.retry_interval)) == 1
    assert len(inbox.mails) == 1


async def test_smtp_login_works_and_the_password_is_never_logged(
    store: SqliteStore,
    smtp: tuple[Inbox, LoopbackController],
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox, controller = smtp
    await seed(store)
    caplog.set_level(logging.DEBUG)
    config = digest_config(controller.port, user="reports", password="s3cret")
    scheduler = DigestScheduler(config, PARIS, store, Campaigns(SPRING))
    await scheduler.start()
    await scheduler.stop()
    assert len(await scheduler.run_once(paris(2030, 3, 30, 18, 0))) == 1
    assert inbox.logins == [("reports", "s3cret")]
    wrong = digest_config(controller.port, user="reports", password="nope")
    refused = DigestScheduler(wrong, PARIS, store, Campaigns(SPRING))
    assert await refused.run_once(paris(2030, 3, 31, 18, 0)) == []
    assert refused.failed == 1
    assert "s3cret" not in caplog.text and "nope" not in caplog.text
    assert "digest.send_failed" in caplog.text


def test_the_commented_example_in_the_shipped_config_loads() -> None:
    shipped = (Path(__file__).parent.parent / "conf" / "gateway.toml").read_text()
    example = shipped[shipped.index("# [digest]") :]
    lines = [line[2:] for line in example.splitlines() if line.startswith("# ")]
    digest = load_dataclass(DigestConfig, tomllib.loads("\n".join(lines))["digest"])
    assert (digest.time, digest.time_zone, digest.smtp.effective_port) == (
        "18:00",
        "Europe/Paris",
        587,
    )
