"""Issue 15.5: POST /v1/interactions/email sends the interactions selected (filters or ids)
as the export's CSV, attached, to at most five addresses, through the digest's SMTP settings;
here to an aiosmtpd server on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from gateway.app.cli import main
from gateway.config import DigestConfig, SmtpConfig
from gateway.reports.csvfile import COLUMNS
from gateway.store.base import Contact
from gateway.store.sqlite import SqliteStore
from tests.api_fakes import TOKEN, Api, make_config, running_api
from tests.store_helpers import put_contacts
from tests.test_digest import Inbox, LoopbackController
from tests.test_interactions_api import log_mo

ANN = "+33611111111"
BOB = "+33622222222"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, LoopbackController]]:
    inbox = Inbox()
    controller = LoopbackController(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield inbox, controller
    finally:
        controller.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "mo.db", synchronous="normal")
    await sqlite.open()
    try:
        yield sqlite
    finally:
        await sqlite.close()


def with_digest(port: int) -> Any:
    digest = DigestConfig(
        smtp=SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=5),
        from_address="smsgw@example.net",
    )
    return dataclasses.replace(make_config(), digest=digest)


def attachment(message: EmailMessage) -> tuple[str, list[list[str]]]:
    (part,) = list(message.iter_attachments())
    assert part.get_content_type() == "text/csv"
    assert part.get_param("charset") == "utf-8"
    raw = part.get_payload(decode=True)
    assert isinstance(raw, bytes) and raw.startswith(b"\xef\xbb\xbf")
    return str(part.get_filename()), list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


async def email(api: Api, body: Any) -> Any:
    return await api.request("POST", "/v1/interactions/email", json=body)


async def test_the_selection_is_mailed_as_the_exports_csv(
    store: SqliteStore, smtp: tuple[Inbox, LoopbackController]
) -> None:
    inbox, controller = smtp
    await put_contacts(store, [Contact(ANN, "Ann", {"city": "Paris"})])
    spring = [
        await log_mo(store, "YES", source=ANN),
        await log_mo(store, "=cmd|' /C calc'!A0", source=BOB),
    ]
    other = await log_mo(store, "no", source=BOB, campaign_id="autumn")
    async with running_api(store=store, config=with_digest(controller.port)) as api:
        sent = await email(api, {"campaign_id": "spring", "to": ["ops@example.net"]})
        assert sent.status == 200, sent.text
        assert sent.body == {"to": ["ops@example.net"], "rows": 2, "truncated": False}
        chosen = await email(
            api,
            {"ids": [other, spring[0]], "to": ["a@example.net", "B@example.org", "A@example.net"]},
        )
        assert chosen.status == 200, chosen.text
        assert chosen.body["to"] == ["a@example.net", "B@example.org"]  # each address once
    assert len(inbox.mails) == 2
    mail_from, rcpt, _ = inbox.mails[0]
    assert mail_from == "smsgw@example.net" and rcpt == ["ops@example.net"]
    message = inbox.parsed(0)
    assert message["From"] == "smsgw@example.net" and "2 rows" in message["Subject"]
    body = message.get_body(("plain",))
    assert body is not None and "campaign_id=spring" in body.get_content()
    filename, rows = attachment(message)
    assert filename.startswith("interactions-") and filename.endswith(".csv")
    assert rows[0] == [*COLUMNS, "name", "attr.city"]
    text, source = COLUMNS.index("text"), COLUMNS.index("source")
    assert [int(r[0]) for r in rows[1:]] == spring
    assert rows[1][len(COLUMNS) :] == ["Ann", "Paris"]
    assert rows[2][text] == "'=cmd|' /C calc'!A0" and rows[2][source] == "'" + BOB
    assert rows[2][len(COLUMNS) :] == ["", ""]
    assert sorted(inbox.mails[1][1]) == ["B@example.org", "a@example.net"]
    _, rows = attachment(inbox.parsed(1))
    assert [int(r[0]) for r in rows[1:]] == [spring[0], other]


async def test_a_selection_over_the_limit_is_cut_and_says_so(
    store: SqliteStore, smtp: tuple[Inbox, LoopbackController], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, controller = smtp
    ids = [await log_mo(store, f"reply {n}") for n in range(3)]
    monkeypatch.setattr("gateway.http.interactions.MAX_ATTACHED_ROWS", 2)
    async with running_api(store=store, config=with_digest(controller.port)) as api:
        sent = await email(api, {"to": ["ops@example.net"]})
        assert sent.body == {"to": ["ops@example.net"], "rows": 2, "truncated": True}
        exact = await email(api, {"ids": ids[:2], "to": ["ops@example.net"]})
        assert exact.body["truncated"] is False
    message = inbox.parsed(0)
    body = message.get_body(("plain",))
    assert body is not None and "first 2" in body.get_content()
    assert "/v1/interactions/export.csv" in body.get_content()
    _, rows = attachment(message)
    assert [int(r[0]) for r in rows[1:]] == ids[:2]


async def test_bad_requests_are_refused_with_every_field_named(
    store: SqliteStore, smtp: tuple[Inbox, LoopbackController]
) -> None:
    inbox, controller = smtp
    async with running_api(store=store, config=with_digest(controller.port)) as api:
        refused = await email(
            api,
            {
                "to": ["ok@example.net", "not an address"],
                "ids": [0],
                "campaign_id": "",
                "new": 1,
            },
        )
        assert refused.status == 400
        paths = {d["path"] for d in refused.body["error"]["details"]}
        assert paths == {"to[1]", "ids", "campaign_id", "new"}
        six = [f"p{n}@example.net" for n in range(6)]
        assert (await email(api, {"to": six})).status == 400
        assert (await email(api, {"to": []})).status == 400
        assert (await email(api, ["ops@example.net"])).status == 400
    assert inbox.mails == []


async def test_a_mail_server_refusing_is_a_502_and_no_digest_a_503(
    store: SqliteStore, smtp: tuple[Inbox, LoopbackController]
) -> None:
    inbox, controller = smtp
    await log_mo(store, "YES")
    inbox.refuse = True
    async with running_api(store=store, config=with_digest(controller.port)) as api:
        failed = await email(api, {"to": ["ops@example.net"]})
        assert failed.status == 502, failed.text
        assert failed.body["error"]["code"] == "email_failed"
        assert "451" in failed.body["error"]["message"]
        inbox.refuse = False
        assert (await email(api, {"to": ["ops@example.net"]})).status == 200
    async with running_api(store=store) as api:
        unavailable = await email(api, {"to": ["ops@example.net"]})
        assert unavailable.status == 503
        assert unavailable.body["error"]["code"] == "email_unavailable"
    assert len(inbox.mails) == 1


async def test_the_cli_mails_a_selection(
    store: SqliteStore, smtp: tuple[Inbox, LoopbackController], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, controller = smtp
    first = await log_mo(store, "YES")
    await log_mo(store, "later")
    async with running_api(store=store, config=with_digest(controller.port)) as api:
        monkeypatch.setenv("SMSGW_URL", str(api.client.make_url("")).rstrip("/"))
        monkeypatch.setenv("SMSGW_TOKEN", TOKEN)
        out = io.StringIO()
        monkeypatch.setattr("sys.stdout", out)
        argv = ["interactions", "email", "--to", "ops@example.net", "--ids", str(first)]
        code = await asyncio.to_thread(main, argv)
        assert code == 0 and out.getvalue().strip() == "1 interactions sent to ops@example.net"
        code = await asyncio.to_thread(main, [*argv[:4], "--ids", "x"])
        assert code == 2
    _, rows = attachment(inbox.parsed(0))
    assert [int(r[0]) for r in rows[1:]] == [first]
