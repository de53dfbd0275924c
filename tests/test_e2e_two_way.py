"""Issue 4, "Done when": the acceptance test of two-way campaigns, end to end.

A whole Gateway and the bundled simulator with scripted subscribers. 1,000 contacts are
imported by CSV over HTTP; campaign A goes to them from a short code that campaign B (a
smaller list, part of it A's) shares; each has its own keyword rules. Subscribers answer
YES / NO / STOP / free text in a known mix, each number once (``reply_once="number"``).
Then: the keyword actions ran, the courtesy reply went once per free-text sender, STOP
numbers never get another message (send-to-responders and campaign B skip them), the
statistics and the CSV export equal what the simulator counted, and the daily digest
reaches an SMTP server on loopback with the same counts (its clock is passed in).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app.daemon import Gateway
from gateway.config import CallbacksConfig, DigestConfig, SmtpConfig
from smsc_simulator.config import DelayConfig, MessagesConfig, ReplyConfig, SubscribersConfig
from tests.e2e_helpers import AUTH, eventually, gateway_config
from tests.store_helpers import survey_answers
from tests.test_digest import Inbox, LoopbackController
from tests.test_e2e_inbound import SHORT_CODE, InboundLab, inbound_raw

CONTACTS = 1000
B_OLD = 200  # campaign B's list: the first 200 of A's contacts ...
B_NEW = 100  # ... and 100 numbers A never wrote to
REPLY_SHARE = 0.5
FREE_TEXT = "what time does it start"
REPLIES = (
    ReplyConfig("YES", 4),
    ReplyConfig("no", 3),
    ReplyConfig("STOP", 2),
    ReplyConfig(FREE_TEXT, 1),
)
A_TEXT = "Hi {name}, concert on Friday: reply YES or NO"
B_TEXT = "Last seats for Sunday: reply YES"
A_YES = "Great {name}, see you Friday!"
A_NO = "Maybe next time."
B_YES = "Sunday it is, {name}."
A_COURTESY = "A: please reply YES or NO."
B_COURTESY = "B: please reply YES."
FOLLOW_UP = "Doors open at 20:00."
OPS = "ops@example.net"


class TwoWayLab(InboundLab):
    """InboundLab (the short code, its config rules) with the daily digest configured."""

    smtp_port = 0

    async def start_gateway(self) -> None:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port)
        digest = DigestConfig(
            smtp=SmtpConfig(host="127.0.0.1", port=self.smtp_port, security="none", timeout=5),
            from_address="digest@example.net",
            time_zone="Europe/Paris",
        )
        callbacks = CallbacksConfig(allowed_networks=("127.0.0.0/8",))
        config = dataclasses.replace(
            config, inbound=self.inbound, callbacks=callbacks, digest=digest
        )
        assert config.validate() == []
        self.gateway = Gateway(config)
        await self.gateway.start()
        await eventually(self._bound)

    async def call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        assert self.http is not None
        headers = {**AUTH, **kwargs.pop("headers", {})}
        async with self.http.request(method, self.gw_url + path, headers=headers, **kwargs) as r:
            assert r.status == status, await r.text()
            if r.content_type == "text/csv":
                return await r.text()
            return await r.json()

    async def import_list(self, name: str, numbers: list[str]) -> Any:
        created = await self.call("POST", "/v1/lists", 201, json={"name": name})
        body = "number,name,city\n" + "".join(
            f"{n},Fan{i} Doe,Lyon\n" for i, n in enumerate(numbers)
        )
        job = await self.call(
            "POST",
            f"/v1/lists/{created['id']}/import",
            202,
            data=body.encode(),
            headers={"Content-Type": "text/csv"},
        )
        got: dict[str, Any] = {}

        async def done() -> bool:
            nonlocal got
            got = await self.call("GET", f"/v1/imports/{job['import_id']}", 200)
            return bool(got["status"] != "running")

        await eventually(done)
        assert (got["status"], got["imported"], got["rejected"]) == ("done", len(numbers), 0)
        return created["id"]

    async def finished(self, campaign_id: str) -> dict[str, Any]:
        stats: dict[str, Any] = {}

        async def done() -> bool:
            nonlocal stats
            status = (await self.call("GET", f"/v1/campaigns/{campaign_id}", 200))["status"]
            stats = await self.call("GET", f"/v1/campaigns/{campaign_id}/stats", 200)
            return bool(status == "done" and stats["pending"] == 0)

        await eventually(done, within=60)
        return stats

    async def received(self) -> list[dict[str, Any]]:
        """Every MT the simulator received, oldest first (destinations in E.164)."""
        got = (await self.sim("GET", "/v1/messages?limit=10000"))["messages"]
        return [{**m, "destination": "+" + m["destination"]} for m in got]

    async def mo_log(self) -> list[dict[str, Any]]:
        """Every MO the simulator sent, oldest first."""
        return list((await self.sim("GET", "/v1/mo?limit=10000"))["mo"])

    async def export(self, query: str) -> list[dict[str, str]]:
        text = await self.call("GET", f"/v1/interactions/export.csv?{query}", 200)
        return read_csv(text)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[tuple[TwoWayLab, Inbox]]:
    inbox = Inbox()
    controller = LoopbackController(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    subscribers = SubscribersConfig(
        reply_share=REPLY_SHARE,
        reply_once="number",
        delay=DelayConfig(distribution="uniform", min=0.01, max=0.2),
        replies=REPLIES,
    )
    lab = TwoWayLab(
        tmp_path,
        inbound_raw("http://127.0.0.1:9/unused"),
        subscribers=subscribers,
        messages=MessagesConfig(keep=10_000),
    )
    lab.smtp_port = controller.port
    try:
        await lab.start()
        yield lab, inbox
    finally:
        await lab.stop()
        controller.stop()


def read_csv(text: str) -> list[dict[str, str]]:
    """Rows of an export as a spreadsheet shows them: the export puts an apostrophe before
    a cell a spreadsheet could take for a formula, E.164 numbers included (csvfile.py)."""
    rows = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    return [{k: v[1:] if v.startswith("'+") else v for k, v in r.items()} for r in rows]


def replying(number: str) -> bool:
    """The simulator's documented choice of replying numbers (SubscribersConfig.reply_share)."""
    return zlib.crc32(number.lstrip("+").encode()) < int(REPLY_SHARE * 0x1_0000_0000)


def rule(keyword: str, question: str, tag: str, reply: str) -> dict[str, Any]:
    return {
        "name": f"{keyword.lower()}-{question}",
        "keyword": keyword,
        "actions": [
            {"type": "answer", "question": question},
            {"type": "tag", "tag": tag},
            {"type": "reply", "text": reply},
        ],
    }


async def test_two_campaigns_on_one_short_code_answered_by_scripted_subscribers(
    lab: tuple[TwoWayLab, Inbox],
) -> None:
    gw_lab, inbox = lab
    a_numbers = [f"+336{70000000 + i:08d}" for i in range(CONTACTS)]
    b_numbers = a_numbers[:B_OLD] + [f"+336{71000000 + i:08d}" for i in range(B_NEW)]
    a_list = await gw_lab.import_list("a", a_numbers)
    b_list = await gw_lab.import_list("b", b_numbers)

    a_rules = [
        rule("YES", "a-attend", "a-yes", A_YES),
        {
            "name": "no-a",
            "keyword": "NO",
            "actions": [
                {"type": "answer", "question": "a-attend"},
                {"type": "reply", "text": A_NO},
            ],
        },
    ]
    campaign_a = await gw_lab.call(
        "POST",
        "/v1/campaigns",
        201,
        json={
            "name": "A",
            "from": SHORT_CODE,
            "text": A_TEXT,
            "lists": [a_list],
            "two_way": True,
            "keywords": a_rules,
            "courtesy_reply": A_COURTESY,
            "digest": {"to": [OPS], "days": 10},
        },
    )
    a_id = campaign_a["id"]
    await gw_lab.call("POST", f"/v1/campaigns/{a_id}/start", 200)
    a_stats = await gw_lab.finished(a_id)

    # Every replying number of A answers once; wait until all its MOs are handled.
    a_responders = [n for n in a_numbers if replying(n)]
    assert 0 < len(a_responders) < CONTACTS
    await gw_lab.handled(len(a_responders))
    sim = await gw_lab.sim("GET", "/v1/stats")
    said = Counter(sim["subscriber_replies"])
    assert sum(said.values()) == sim["mo_sent"] == len(a_responders)
    assert all(said[r.text] > 0 for r in REPLIES)  # the mix has every kind

    # The CSV export of A equals what the simulator sent, number by number.
    rows = await gw_lab.export(f"campaign_id={a_id}")
    assert len(rows) == len(a_responders)
    assert sorted(r["source"] for r in rows) == sorted(a_responders)
    assert all(r["destination"] == SHORT_CODE and r["campaign_id"] == a_id for r in rows)
    assert Counter(r["text"] for r in rows) == said
    mo_log = await gw_lab.mo_log()
    assert sorted(("+" + m["source"], m["destination"], m["text"]) for m in mo_log) == sorted(
        (r["source"], r["destination"], r["text"]) for r in rows
    )
    by_text: dict[str, set[str]] = {}
    for r in rows:
        by_text.setdefault(r["text"], set()).add(r["source"])
    yes, no, stop, free = (by_text[t] for t in ("YES", "no", "STOP", FREE_TEXT))
    assert Counter(r["keyword"] for r in rows) == {
        "YES": len(yes),
        "NO": len(no),
        "STOP": len(stop),
        "": len(free),
    }

    # The keyword actions ran: replies (the simulator received them), answers, tags.
    async def replies_arrived() -> bool:
        got = await gw_lab.received()
        return len(got) == CONTACTS + len(yes) + len(no) + len(stop) + len(free)

    await eventually(replies_arrived)
    received = await gw_lab.received()
    texts_to: dict[str, list[str]] = {}
    for m in received:
        assert m["source"] == SHORT_CODE
        texts_to.setdefault(m["destination"], []).append(m["text"])
    first = {n: f"Fan{i}" for i, n in enumerate(a_numbers)}
    for n in a_numbers:
        assert texts_to[n][0] == f"Hi {first[n]} Doe, concert on Friday: reply YES or NO"
    for n in yes:
        assert texts_to[n][1:] == [f"Great {first[n]} Doe, see you Friday!"]
    for n in no:
        assert texts_to[n][1:] == [A_NO]
    for n in free:
        assert texts_to[n][1:] == [A_COURTESY]
    for n in stop:
        assert len(texts_to[n]) == 2  # the campaign message and the opt-out confirmation
    for n in set(a_numbers) - set(a_responders):
        assert len(texts_to[n]) == 1
    answers = await survey_answers(gw_lab.gw.store, "a-attend")
    assert Counter(a.answer for a in answers) == {"YES": len(yes), "NO": len(no)}
    assert {a.source for a in answers} == yes | no
    for n in list(yes)[:5] + list(no)[:5]:
        contact = await gw_lab.call("GET", f"/v1/contacts/{n}", 200)
        assert ("a-yes" in contact["tags"]) == (n in yes)

    # The courtesy reply goes once per sender: a second unmatched MO gets none.
    again = sorted(free)[0]
    await gw_lab.mo(again, "hello??")
    await gw_lab.handled(len(a_responders) + 1)

    # Campaign A's statistics equal the simulator's counts.
    a_stats = await gw_lab.call("GET", f"/v1/campaigns/{a_id}/stats", 200)
    receipts = sim["receipts_by_state"]
    assert a_stats["recipients"] == a_stats["sent"] == CONTACTS
    # Every message the simulator received so far came back delivered (its default outcome).
    assert set(receipts) == {"DELIVRD"}
    assert a_stats["delivered"] == CONTACTS
    assert a_stats["replies"] == len(a_responders) + 1
    assert a_stats["unique_responders"] == len(a_responders)
    assert a_stats["reply_rate"] == round(len(a_responders) / CONTACTS, 4)
    assert a_stats["per_hour"][0] == a_stats["per_day"][0] == a_stats["replies"]
    assert a_stats["median_seconds_to_first_reply"] is not None
    assert a_stats["opt_outs"] == said["STOP"]
    assert a_stats["answers_per_keyword"] == {
        "YES": said["YES"],
        "NO": said["no"],
        "STOP": said["STOP"],
    }

    # The paged interaction list holds the same MOs as the export.
    listed: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = await gw_lab.call(
            "GET", f"/v1/interactions?campaign_id={a_id}&limit=100{cursor}", 200
        )
        listed += page["items"]
        if page["next"] is None:
            break
        cursor = f"&after={page['next']}"
    assert sorted(i["source"] for i in listed) == sorted([*a_responders, again])

    # Nor can a helpdesk answer or a single message reach a STOP number from this sender.
    stopped = sorted(stop)[0]
    stop_row = next(r for r in rows if r["source"] == stopped)
    await gw_lab.call(
        "POST", f"/v1/interactions/{stop_row['id']}/reply", 422, json={"text": "Sure?"}
    )
    await gw_lab.call(
        "POST", "/v1/messages", 422, json={"to": stopped, "from": SHORT_CODE, "text": "Hi"}
    )

    # A follow-up to A's responders and campaign B (part of A's list) skip the STOP numbers.
    follow = await gw_lab.call(
        "POST", f"/v1/campaigns/{a_id}/send-to-responders", 201, json={"text": FOLLOW_UP}
    )
    await gw_lab.call("POST", f"/v1/campaigns/{follow['id']}/start", 200)
    follow_stats = await gw_lab.finished(follow["id"])
    assert follow_stats["sent"] == len(a_responders) - len(stop)
    b_rules = [rule("YES", "b-attend", "b-yes", B_YES)]
    campaign_b = await gw_lab.call(
        "POST",
        "/v1/campaigns",
        201,
        json={
            "name": "B",
            "from": SHORT_CODE,
            "text": B_TEXT,
            "lists": [b_list],
            "two_way": True,
            "keywords": b_rules,
            "courtesy_reply": B_COURTESY,
        },
    )
    b_id = campaign_b["id"]
    await gw_lab.call("POST", f"/v1/campaigns/{b_id}/start", 200)
    b_stats = await gw_lab.finished(b_id)
    b_stopped = stop & set(b_numbers)
    assert b_stopped
    assert b_stats["sent"] == len(b_numbers) - len(b_stopped)

    # B's new numbers answer B (each replying number answers its first message only).
    b_responders = [n for n in b_numbers[B_OLD:] if replying(n)]
    await gw_lab.handled(len(a_responders) + 1 + len(b_responders))
    sim = await gw_lab.sim("GET", "/v1/stats")
    said_b = Counter(sim["subscriber_replies"]) - said
    b_rows = await gw_lab.export(f"campaign_id={b_id}")
    assert sorted(r["source"] for r in b_rows) == sorted(b_responders)
    assert Counter(r["text"] for r in b_rows) == said_b
    b_log = (await gw_lab.mo_log())[len(mo_log) + 1 :]  # after A's and the "hello??"
    assert sorted(("+" + m["source"], m["text"]) for m in b_log) == sorted(
        (r["source"], r["text"]) for r in b_rows
    )
    b_yes = {r["source"] for r in b_rows if r["text"] == "YES"}
    b_no = {r["source"] for r in b_rows if r["text"] == "no"}  # the number's own NO rule
    b_free = {r["source"] for r in b_rows if r["text"] == FREE_TEXT}
    b_stop = {r["source"] for r in b_rows if r["text"] == "STOP"}

    async def b_replies_arrived() -> bool:
        got = await gw_lab.received()
        expected = len(received) + follow_stats["sent"] + b_stats["sent"]
        return len(got) == expected + len(b_yes) + len(b_no) + len(b_free) + len(b_stop)

    await eventually(b_replies_arrived)
    final = await gw_lab.received()
    sent_texts = Counter(m["text"] for m in final)
    assert sum(n for t, n in sent_texts.items() if t.startswith("Hi ")) == a_stats["sent"]
    assert sent_texts[FOLLOW_UP] == follow_stats["sent"]
    assert sent_texts[B_TEXT] == b_stats["sent"]
    texts_to = {}
    for m in final:
        texts_to.setdefault(m["destination"], []).append(m["text"])
    assert texts_to[again].count(A_COURTESY) == 1  # once per sender
    for n in stop:  # never messaged again after STOP
        assert len(texts_to[n]) == 2, (n, texts_to[n])
    for n in b_yes:  # B's own rule, not A's, on the shared number
        assert texts_to[n][-1] == f"Sunday it is, Fan{b_numbers.index(n)} Doe."
    for n in b_no:
        assert texts_to[n][-1] == "OK, noted."
    for n in b_free:
        assert texts_to[n][-1] == B_COURTESY
    for n in b_stop:
        assert len(texts_to[n]) == 2
    b_answers = await survey_answers(gw_lab.gw.store, "b-attend")
    assert {a.source for a in b_answers} == b_yes
    b_stats = await gw_lab.call("GET", f"/v1/campaigns/{b_id}/stats", 200)
    assert b_stats["replies"] == b_stats["unique_responders"] == len(b_responders)
    assert b_stats["opt_outs"] == len(b_stop)
    expected_b = {"YES": said_b["YES"], "NO": said_b["no"], "STOP": said_b["STOP"]}
    assert b_stats["answers_per_keyword"] == {k: n for k, n in expected_b.items() if n}

    # The digest of A, at its first digest time after the start.
    digest = gw_lab.gw.digest
    assert digest is not None
    started = (await gw_lab.call("GET", f"/v1/campaigns/{a_id}", 200))["started_at"]
    started_at = (
        datetime.datetime.fromisoformat(started).timestamp()
        if isinstance(started, str)
        else float(started)
    )
    tz = digest.tz
    local = datetime.datetime.fromtimestamp(started_at, tz)
    first_at = datetime.datetime.combine(local.date(), datetime.time(18, 0), tzinfo=tz)
    if first_at.timestamp() <= started_at:
        first_at += datetime.timedelta(days=1)
    sent = await digest.run_once(first_at.timestamp() + 30)
    (mine,) = [s for s in sent if s.campaign_id == a_id]
    counts = mine.counts
    assert (counts.sent, counts.delivered) == (CONTACTS, CONTACTS)
    assert counts.replies == len(a_responders) + 1
    assert counts.unique_responders == len(a_responders)
    assert counts.opt_outs == said["STOP"]
    assert mine.rows == len(a_responders) + 1
    assert len(inbox.mails) == 1
    mail = inbox.parsed(0)
    assert OPS in mail["To"]
    body = mail.get_body(("plain",))
    assert body is not None
    lines = body.get_content().splitlines()
    for label, n in (
        ("Sent", CONTACTS),
        ("Delivered", CONTACTS),
        ("Replies", len(a_responders) + 1),
        ("Unique responders", len(a_responders)),
        ("Opt-outs", said["STOP"]),
    ):
        assert f"{label:<20}{n:>12}{n:>14}" in lines, (label, n)
    (attachment,) = list(mail.iter_attachments())
    content = attachment.get_content()
    attached = read_csv(content if isinstance(content, str) else content.decode())
    assert Counter(r["source"] for r in attached) == Counter([*a_responders, again])
