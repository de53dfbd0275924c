"""Contact lists, CSV import, opt-outs, campaigns (window, pacing, life cycle, restart) and
their statistics, on the real SQLite store with a recording dispatcher and a test clock."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite

from gateway.campaigns.runner import CHUNK, CampaignRunner
from gateway.campaigns.window import SendWindow
from gateway.core.model import MessageStatus
from gateway.store.base import InteractionOutcome, NewInteraction
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_campaigns import SqliteCampaignStore
from tests.api_fakes import NOW
from tests.campaign_helpers import Rig, campaign_rig

PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int) -> float:
    return datetime.datetime(*args, tzinfo=PARIS).timestamp()  # type: ignore[misc]


def csv_of(rows: list[str], header: str = "number,name,city") -> str:
    return "\n".join([header, *rows]) + "\n"


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+336{10000000 + start + i:08d}" for i in range(n)]


async def list_with(rig: Rig, count: int, start: int = 0) -> int:
    list_id = await rig.new_list()
    rows = [f"{n},Person {i},Lyon" for i, n in enumerate(numbers(count, start))]
    got = await rig.import_csv(list_id, csv_of(rows))
    assert got["imported"] == count
    return list_id


async def new_campaign(rig: Rig, list_id: int, **fields: Any) -> dict[str, Any]:
    body = {"name": "spring", "from": "36180", "text": "Hi {first_name} from {city}", **fields}
    body.setdefault("lists", [list_id])
    created: dict[str, Any] = await rig.post("/v1/campaigns", body, 201)
    assert created["status"] == "draft"
    return created


# -- CSV import -------------------------------------------------------------------------------


async def test_import_normalises_numbers_and_reports_bad_rows_by_row_number(
    tmp_path: Path,
) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await rig.new_list()
        text = (
            "\ufeffNumber , Name,City,plan\r\n"
            "06 12 34 56 78,Ada Lovelace,London,gold\r\n"  # row 2: national, region FR
            "not a number,Bob,Paris,\r\n"  # row 3
            '+33612345679,Chloé,"Paris, 15e",silver\r\n'  # row 4: quoted comma
            "+33612345680,Too,Many,Cells,Here\r\n"  # row 5
            ",Nobody,Nice,\r\n"  # row 6
            "\r\n"  # a blank line is no row
            '+44 7911 123456,Dan,"Line\nbreak",\r\n'  # row 8: a quoted newline
        )
        got = await rig.import_csv(list_id, text)
        assert got["status"] == "done"
        assert (got["rows"], got["imported"], got["rejected"]) == (6, 3, 3)
        assert [e["row"] for e in got["errors"]] == [3, 5, 6]
        assert "number" in got["errors"][0]["error"]
        assert "cells" in got["errors"][1]["error"]

        ada = await rig.get("/v1/contacts/%2B33612345678")
        assert ada["name"] == "Ada Lovelace"
        assert ada["attributes"] == {"city": "London", "plan": "gold"}
        assert ada["lists"][0]["id"] == list_id
        assert ada["lists"][0]["opt_in_source"] == "import"
        chloe = await rig.get("/v1/contacts/%2B33612345679")
        assert chloe["attributes"]["city"] == "Paris, 15e"
        dan = await rig.get("/v1/contacts/%2B447911123456")
        assert dan["attributes"] == {"city": "Line\nbreak"}
        assert (await rig.get(f"/v1/lists/{list_id}"))["contacts"] == 3

        # A second import into the list updates contacts and merges attributes.
        again = await rig.import_csv(list_id, "number,plan\n+33612345678,platinum\n")
        assert again["imported"] == 1
        ada = await rig.get("/v1/contacts/%2B33612345678")
        assert ada["name"] == "Ada Lovelace"
        assert ada["attributes"] == {"city": "London", "plan": "platinum"}


async def test_import_without_number_column_or_not_utf8_fails_with_a_reason(
    tmp_path: Path,
) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await rig.new_list()
        got = await rig.import_csv(list_id, "phone,name\n+33612345678,A\n")
        assert got["status"] == "failed" and "number" in got["failure"]
        answer = await rig.api.request(
            "POST",
            f"/v1/lists/{list_id}/import",
            data=b"number\n+33612345678\n\xff\xfe\n",
            content_type="text/csv",
        )
        assert answer.status == 202
        await rig.importer.wait()
        got = await rig.get(f"/v1/imports/{answer.body['import_id']}")
        assert got["status"] == "failed" and "UTF-8" in got["failure"]
        wrong_type = await rig.api.request(
            "POST", f"/v1/lists/{list_id}/import", data=b"number\n", content_type="text/plain"
        )
        assert wrong_type.status == 415
        assert (await rig.api.request("POST", "/v1/lists/999/import", data=b"x")).status == 404


async def test_opt_in_source_is_recorded_from_the_query(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await rig.new_list()
        async with rig.api.client.post(
            f"/v1/lists/{list_id}/import?opt_in_source=web-form",
            data=b"number\n+33612345678\n",
            headers={"Authorization": "Bearer tok-acme-0123456789", "Content-Type": "text/csv"},
        ) as response:
            assert response.status == 202
        await rig.importer.wait()
        contact = await rig.get("/v1/contacts/%2B33612345678")
        assert contact["lists"][0]["opt_in_source"] == "web-form"
        assert contact["lists"][0]["opt_in_at"] is not None


# -- opt-outs ---------------------------------------------------------------------------------


async def test_opted_out_numbers_are_never_messaged(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 6)
        to = numbers(6)
        await rig.post("/v1/opt-outs", {"number": to[0], "sender": "36180"}, 201)  # this sender
        await rig.post("/v1/opt-outs", {"number": to[1]}, 201)  # every sender
        await rig.post("/v1/opt-outs", {"number": to[2], "sender": "ACME"}, 201)  # another one
        await rig.post("/v1/opt-outs", {"number": to[3]}, 201)
        lifted = await rig.api.request("DELETE", "/v1/opt-outs", json={"number": to[3]})
        assert lifted.status == 200
        contact = await rig.get(f"/v1/contacts/%2B{to[1][1:]}")
        assert contact["opt_outs"] == [
            {"sender": None, "source": "api", "at": contact["opt_outs"][0]["at"]}
        ]

        campaign = await new_campaign(rig, list_id)
        await rig.post(f"/v1/campaigns/{campaign['id']}/start", None, 200)
        await rig.run_to_end(campaign["id"])
        sent = [dest for dest, _ in await rig.messages_of(campaign["id"])]
        assert sent == [to[2], to[3], to[4], to[5]]
        assert sorted(m.to for m in rig.outbound.enqueued) == sent
        stats = await rig.get(f"/v1/campaigns/{campaign['id']}/stats")
        assert stats["recipients"] == 6 and stats["skipped_opted_out"] == 2
        assert stats["pending"] == 4  # made, not yet handed to a carrier (fake dispatcher)


# -- the runner -------------------------------------------------------------------------------


async def test_template_is_rendered_with_each_contacts_fields(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 3)
        campaign = await new_campaign(rig, list_id, text="Hi {first_name}, {city} {{ok}} {x}")
        await rig.post(f"/v1/campaigns/{campaign['id']}/start", None, 200)
        assert rig.runner.woken == [campaign["id"]]
        await rig.run_to_end(campaign["id"])
        texts = [text for _, text in await rig.messages_of(campaign["id"])]
        assert texts == ["Hi Person, Lyon {ok} "] * 3
        assert all(m.campaign_id == campaign["id"] for m in rig.outbound.enqueued)
        done = await rig.get(f"/v1/campaigns/{campaign['id']}")
        assert done["status"] == "done" and done["progress"]["handled"] == 3


async def test_sending_waits_for_the_daily_window_in_its_time_zone(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 3)
        rig.clock[0] = paris(2030, 3, 18, 21, 30)  # after 20:00 in Paris
        window = {"from": "09:00", "to": "20:00", "time_zone": "Europe/Paris"}
        campaign = await new_campaign(rig, list_id, send_window=window)
        await rig.post(f"/v1/campaigns/{campaign['id']}/start", None, 200)
        delay = await rig.runner.step(campaign["id"])
        assert delay == paris(2030, 3, 19, 9, 0) - rig.now()
        assert rig.outbound.enqueued == []
        rig.clock[0] = paris(2030, 3, 19, 8, 59, 59)
        assert await rig.runner.step(campaign["id"]) == 1.0
        assert rig.outbound.enqueued == []
        rig.clock[0] = paris(2030, 3, 19, 9, 0)
        await rig.run_to_end(campaign["id"])
        assert len(rig.outbound.enqueued) == 3
        assert all(m.created_at == paris(2030, 3, 19, 9, 0) for m in rig.outbound.enqueued)


def test_send_window_across_midnight_and_daylight_saving() -> None:
    night = SendWindow.from_json({"from": "22:00", "to": "06:00", "time_zone": "Europe/Paris"})
    assert night.is_open(paris(2030, 1, 1, 23, 0)) and night.is_open(paris(2030, 1, 2, 5, 59))
    assert not night.is_open(paris(2030, 1, 2, 6, 0))
    assert night.next_open(paris(2030, 1, 2, 12, 0)) == paris(2030, 1, 2, 22, 0)
    day = SendWindow.from_json({"from": "09:00", "to": "20:00", "time_zone": "Europe/Paris"})
    # The night clocks go forward (2030-03-31): the window still opens at 09:00 local.
    assert day.next_open(paris(2030, 3, 30, 21, 0)) == paris(2030, 3, 31, 9, 0)
    assert day.next_open(paris(2030, 3, 31, 9, 0) - 3600 * 24) == paris(2030, 3, 30, 9, 0)


async def test_campaign_tps_sets_chunk_size_and_pace(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 10)
        campaign = await new_campaign(rig, list_id, tps=4)
        await rig.post(f"/v1/campaigns/{campaign['id']}/start", None, 200)
        delays = []
        for _ in range(3):
            delays.append(await rig.runner.step(campaign["id"]))
        assert [len(rig.outbound.enqueued)] == [10]
        assert delays == [1.0, 1.0, 0.5]  # 4, 4 and 2 recipients at 4 per second
        assert await rig.runner.step(campaign["id"]) is None


async def test_pause_resume_and_cancel(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 10)
        campaign = await new_campaign(rig, list_id, tps=2)
        cid = campaign["id"]
        assert (await rig.api.post(f"/v1/campaigns/{cid}/pause")).status == 409  # a draft
        await rig.post(f"/v1/campaigns/{cid}/start", None, 200)
        await rig.runner.step(cid)
        assert len(rig.outbound.enqueued) == 2
        paused = await rig.post(f"/v1/campaigns/{cid}/pause", None, 200)
        assert paused["status"] == "paused" and paused["progress"]["handled"] == 2
        assert await rig.runner.step(cid) is None
        assert len(rig.outbound.enqueued) == 2
        resumed = await rig.post(f"/v1/campaigns/{cid}/resume", None, 200)
        assert resumed["status"] == "running"
        await rig.runner.step(cid)
        assert len(rig.outbound.enqueued) == 4
        cancelled = await rig.post(f"/v1/campaigns/{cid}/cancel", None, 200)
        assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
        assert await rig.runner.step(cid) is None
        assert len(rig.outbound.enqueued) == 4
        again = await rig.api.post(f"/v1/campaigns/{cid}/resume")
        assert again.status == 409 and again.body["error"]["code"] == "invalid_state"
        stats = await rig.get(f"/v1/campaigns/{cid}/stats")
        assert stats["recipients"] == 10 and stats["messages"] == 4


async def test_a_draft_is_edited_with_put_and_only_while_a_draft(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 3)
        other = await list_with(rig, 2, start=10)
        campaign = await new_campaign(rig, list_id)
        cid = campaign["id"]
        body = {
            "name": "autumn",
            "from": "36180",
            "text": "Bye {first_name}",
            "lists": [other],
            "two_way": True,
            "keywords": [{"name": "y", "keyword": "YES", "actions": [{"type": "help"}]}],
            "courtesy_reply": "Thanks",
            "send_window": {"from": "09:00", "to": "20:00", "time_zone": "Europe/Paris"},
            "tps": 5,
            "digest": {"to": ["ops@example.net"], "days": 3},
        }
        edited = (await rig.api.request("PUT", f"/v1/campaigns/{cid}", json=body)).body
        got = await rig.get(f"/v1/campaigns/{cid}")
        assert got == edited and got["id"] == cid and got["status"] == "draft"
        assert {key: got[key] for key in body} == body
        # Checked as POST checks it: every problem listed, nothing changed.
        bad = await rig.api.request(
            "PUT", f"/v1/campaigns/{cid}", json={**body, "name": "", "tps": -1, "lists": [999]}
        )
        assert bad.status == 400
        paths = {d["path"] for d in bad.body["error"]["details"]}
        assert paths == {"name", "tps", "lists[0]"}
        assert await rig.get(f"/v1/campaigns/{cid}") == got
        await rig.post(f"/v1/campaigns/{cid}/start", None, 200)
        late = await rig.api.request("PUT", f"/v1/campaigns/{cid}", json=body)
        assert late.status == 409 and late.body["error"]["code"] == "invalid_state"
        missing = await rig.api.request("PUT", "/v1/campaigns/" + "0" * 26, json=body)
        assert missing.status == 404
        await rig.runner.step(cid)
        assert {m.to for m in rig.outbound.enqueued} == set(numbers(2, start=10))


async def test_scheduled_start_waits_for_start_at(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 2)
        start_at = datetime.datetime.fromtimestamp(NOW + 3600, datetime.UTC).isoformat()
        campaign = await new_campaign(rig, list_id, start_at=start_at)
        started = await rig.post(f"/v1/campaigns/{campaign['id']}/start", None, 200)
        assert started["status"] == "scheduled"
        assert await rig.runner.step(campaign["id"]) == 3600.0
        assert rig.outbound.enqueued == []
        rig.clock[0] += 3600
        await rig.run_to_end(campaign["id"])
        assert len(rig.outbound.enqueued) == 2


async def test_restart_mid_chunk_sends_no_one_twice(tmp_path: Path) -> None:
    count = CHUNK + 500
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, count)
        campaign = await new_campaign(rig, list_id)
        cid = campaign["id"]
        await rig.post(f"/v1/campaigns/{cid}/start", None, 200)
        await rig.runner.step(cid)  # the first chunk, cursor moved

        # A crash after the second chunk's messages are committed, before its cursor moves.
        class Crash(Exception):
            pass

        async def crash(*args: Any) -> None:
            raise Crash

        rig.campaigns.advance_campaign = crash  # type: ignore[method-assign]
        try:
            await rig.runner.step(cid)
        except Crash:
            pass
        else:
            raise AssertionError("the step did not crash")
        assert len(await rig.messages_of(cid)) == count
        await rig.store.close()

    # A new process on the same file picks the campaign up and finishes it.
    store = SqliteStore(tmp_path / "gateway.db", "normal")
    await store.open()
    try:
        campaigns = SqliteCampaignStore(store.db)
        await campaigns.open()
        from gateway.core.intake import Intake
        from tests.api_fakes import FakeOutbound, make_config, router_for

        config = make_config(default_region="FR")
        outbound = FakeOutbound([], {"alpha"})
        runner = CampaignRunner(
            campaigns,
            store,
            outbound,
            Intake(config.messages, config.carriers, router_for(config)),
            lambda: NOW,
        )
        await runner.start()
        assert runner.running(cid)
        await runner.wait_idle(cid)
        record = await campaigns.get_campaign(cid)
        assert record is not None and record.status == "done" and record.handled == count
        rows = await store._read(
            "SELECT dest, count(*) FROM messages WHERE campaign_id = ? GROUP BY dest", (cid,)
        )
        assert len(rows) == count and {r[1] for r in rows} == {1}
        assert outbound.enqueued == []  # everything was made before the restart
    finally:
        await store.close()


# -- statistics -------------------------------------------------------------------------------


async def _set_status(store: SqliteStore, campaign_id: str, dests: list[str], status: str) -> None:
    async def op(db: aiosqlite.Connection) -> None:
        await db.executemany(
            "UPDATE messages SET status = ? WHERE campaign_id = ? AND dest = ?",
            [(status, campaign_id, d) for d in dests],
        )
        if status not in (MessageStatus.ACCEPTED, MessageStatus.QUEUED):
            # It reached a carrier: its part was accepted (what "sent" counts).
            await db.executemany(
                "UPDATE parts SET submitted_at = (SELECT created_at FROM messages m"
                " WHERE m.id = parts.message_id) WHERE message_id IN"
                " (SELECT id FROM messages WHERE campaign_id = ? AND dest = ?)",
                [(campaign_id, d) for d in dests],
            )

    await store._write(op)


async def _reply(
    rig: Rig,
    campaign_id: str,
    source: str,
    at: float,
    keyword: str | None,
    text: str,
    rule: str | None = None,
    actions: list[dict[str, Any]] | None = None,
) -> None:
    interaction = NewInteraction(
        carrier="alpha",
        source=source,
        destination="36180",
        text=text,
        data_coding=0,
        parts=1,
        parts_received=1,
        received_at=at,
        completed_at=at,
    )
    new_id = await rig.store.record_interaction(interaction)
    await rig.store.finish_interactions(
        [
            InteractionOutcome(
                new_id,
                keyword=keyword,
                rule=rule,
                campaign_id=campaign_id,
                actions=actions or [],
                at=at,
            )
        ]
    )


async def test_stats_from_a_seeded_store(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 10)
        to = numbers(10)
        campaign = await new_campaign(rig, list_id)
        cid = campaign["id"]
        await rig.post(f"/v1/campaigns/{cid}/start", None, 200)
        started = rig.now()
        await rig.run_to_end(cid)
        await _set_status(rig.store, cid, to[0:5], MessageStatus.DELIVERED)
        await _set_status(rig.store, cid, to[5:7], MessageStatus.UNDELIVERABLE)
        await _set_status(rig.store, cid, to[7:8], MessageStatus.EXPIRED)
        await _set_status(rig.store, cid, to[8:9], MessageStatus.SUBMITTED)
        # to[9] stays accepted: pending.
        await _reply(rig, cid, to[0], started + 60, "YES", "yes")
        await _reply(rig, cid, to[0], started + 2 * 3600 + 5, None, "thanks!")
        await _reply(rig, cid, to[1], started + 300, "NO", "No")
        await _reply(rig, cid, to[2], started + 3 * 86400, "YES", "Yes please")
        opt_out = [{"type": "opt_out", "ok": True}]
        await _reply(rig, cid, to[3], started + 600, "STOP", "stop", "opt_out", opt_out)
        await rig.store.add_opt_out(to[3], "36180", "keyword", started + 600)
        await rig.store.add_opt_out(to[4], None, "api", started + 700)  # no reply: not counted
        await rig.store.add_opt_out(to[5], "ACME", "keyword", started + 700)  # other sender
        # to[6] stops, then comes back with YES: an opt-out and a re-subscription, which is
        # no YES answer; a number the campaign never messaged texts its keyword: a reply,
        # but no responder.
        await _reply(rig, cid, to[6], started + 800, "STOP", "STOP", "opt_out", opt_out)
        await _reply(rig, cid, to[6], started + 900, "YES", "yes", "resubscribe")
        await _reply(rig, cid, "+33699999999", started + 1000, "YES", "yes", "yes")
        stats = await rig.get(f"/v1/campaigns/{cid}/stats")
        per_hour = [0] * 24
        per_hour[0], per_hour[2] = 6, 1
        per_day = [0] * 10
        per_day[0], per_day[3] = 7, 1
        # The funnel and the timelines (15.2): beside the fields that were, which stay.
        funnel = stats.pop("funnel")
        timelines = stats.pop("timelines")
        assert funnel == {
            "audience": 10,
            "skipped_opted_out": 0,
            "skipped_invalid": 0,
            "sent": 9,
            "delivered": 5,
            "clicked": 0,
            "replied": 5,
        }
        assert timelines["per_hour"]["replies"] == per_hour
        assert timelines["per_day"]["replies"] == per_day
        assert timelines["per_hour"]["unique_responders"][:3] == [4, 0, 1]
        assert timelines["per_day"]["opt_outs"][0] == 2
        assert sum(timelines["per_day"]["sent"]) == 9
        assert timelines["per_day"]["undelivered_by_status"]["undeliverable"][0] == 2
        assert stats.pop("undelivered") == 3
        assert stats.pop("undelivered_by_status") == {
            "undeliverable": 2,
            "expired": 1,
            "rejected": 0,
            "failed": 0,
        }
        assert stats.pop("undelivered_by_error") == {"(none)": 3}
        assert stats == {
            "recipients": 10,
            "sent": 9,
            "delivered": 5,
            "undeliverable": 2,
            "expired": 1,
            "pending": 1,
            "delivery_rate": round(5 / 9, 4),
            "replies": 8,
            "unique_responders": 5,
            "reply_rate": round(5 / 9, 4),
            "opt_outs": 2,
            "answers_per_keyword": {"NO": 1, "STOP": 2, "YES": 2},
            "median_seconds_to_first_reply": 600,  # of 60, 300, 600, 800, 3 days
            "per_hour": per_hour,
            "per_day": per_day,
            "messages": 10,
            "rejected": 0,
            "failed": 0,
            "skipped_opted_out": 0,
            "skipped_invalid": 0,
            "resubscriptions": 1,
            "replies_from_others": 1,
            "waiting_for_window": 0,
            # No short links: no clicks (tests/test_e2e_links.py counts some).
            "clicks": 0,
            "unique_clickers": 0,
            "click_rate": 0.0,
            "bot_requests": 0,
            "clicks_per_hour": [0] * 24,
            "clicks_per_day": [0] * 10,
        }

        # Send to responders: everyone who replied, or only those who said YES.
        again = await rig.post(
            f"/v1/campaigns/{cid}/send-to-responders", {"text": "Thanks!", "keyword": "yes"}, 201
        )
        assert again["responders_of"] == {"campaign_id": cid, "keyword": "yes"}
        await rig.post(f"/v1/campaigns/{again['id']}/start", None, 200)
        await rig.run_to_end(again["id"])
        assert [d for d, _ in await rig.messages_of(again["id"])] == [to[0], to[2]]
        everyone = await rig.post(
            f"/v1/campaigns/{cid}/send-to-responders", {"text": "Thanks!"}, 201
        )
        await rig.post(f"/v1/campaigns/{everyone['id']}/start", None, 200)
        await rig.run_to_end(everyone["id"])
        # to[3] opted out of 36180 by STOP: a responder, but not messaged; to[6] is back.
        assert [d for d, _ in await rig.messages_of(everyone["id"])] == [
            to[0],
            to[1],
            to[2],
            to[6],
        ]


# -- the API's checks and the inbound side's lookups --------------------------------------------


async def test_campaign_requests_are_checked_field_by_field(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        answer = await rig.api.post(
            "/v1/campaigns",
            {
                "name": "",
                "from": "not a sender!",
                "text": "Hi",
                "lists": [42],
                "send_window": {"from": "9am", "to": "20:00", "time_zone": "Mars/Base"},
                "tps": 0,
                "keywords": [{"name": "yes", "keyword": "two words", "actions": []}],
                "digest": {"to": ["nobody"], "days": 10},
                "colour": "blue",
            },
        )
        assert answer.status == 400
        paths = {d["path"] for d in answer.body["error"]["details"]}
        assert {"name", "from", "lists[0]", "send_window", "tps", "digest.to[0]", "colour"} <= paths
        assert any(p.startswith("keywords[0]") for p in paths)
        assert (await rig.api.get("/v1/campaigns/0123456789abcdef0123456789")).status == 404
        assert (await rig.api.get("/v1/lists/7")).status == 404
        assert (await rig.api.get("/v1/imports/nope")).status == 404
        assert (await rig.api.get("/v1/contacts/%2B33699999999")).status == 404


async def test_directory_answers_the_inbound_sides_questions(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 2)
        rules = [
            {
                "name": "yes",
                "keyword": "OUI",
                "aliases": ["YES"],
                "actions": [{"type": "reply", "text": "Merci {first_name}"}],
            },
            {"name": "size", "patterns": ["^taille\\s+\\d+"], "actions": [{"type": "help"}]},
        ]
        two_way = await new_campaign(
            rig,
            list_id,
            two_way=True,
            keywords=rules,
            courtesy_reply="Reply OUI or NON",
            reply_window_days=3,
        )
        one_way = await new_campaign(rig, list_id, name="notice", keywords=rules)
        for c in (two_way, one_way):
            await rig.post(f"/v1/campaigns/{c['id']}/start", None, 200)
        await rig.directory.refresh()
        d = rig.directory
        assert await d.campaign_for_keyword("36180", "Oui !") == two_way["id"]
        assert await d.campaign_for_keyword("36180", "yés") == two_way["id"]
        assert await d.campaign_for_keyword("36180", "Taille 42") == two_way["id"]
        assert await d.campaign_for_keyword("36180", "maybe") is None
        assert await d.campaign_for_keyword("36999", "OUI") is None  # another number
        assert await d.courtesy_reply(two_way["id"]) == "Reply OUI or NON"
        assert await d.courtesy_reply(one_way["id"]) is None
        assert await d.reply_window(two_way["id"]) == 3 * 86400
        assert await d.reply_window(one_way["id"]) == 10 * 86400
        rules_of = await d.keyword_rules(two_way["id"])
        assert [r.name for r in rules_of] == ["yes", "size"]
        assert {r.campaign_id for r in rules_of} == {two_way["id"]}
        assert rules_of[0].actions[0].type == "reply"
        assert await d.keyword_rules(one_way["id"]) == ()
        # The inbound branch's protocol: campaign(id) and keyword_campaigns(number).
        info = await d.campaign(two_way["id"])
        assert info is not None and info.sender == "36180"
        assert info.courtesy_reply == "Reply OUI or NON" and info.reply_window == 3 * 86400
        assert [r.name for r in info.keywords] == ["yes", "size"]
        quiet = await d.campaign(one_way["id"])
        assert quiet is not None and quiet.keywords == () and quiet.courtesy_reply == ""
        assert await d.campaign("0" * 26) is None
        assert [c.id for c in await d.keyword_campaigns("36180")] == [two_way["id"]]
        assert await d.keyword_campaigns("36999") == []
        await rig.post(f"/v1/campaigns/{two_way['id']}/cancel", None, 200)
        await d.refresh()
        assert await d.campaign_for_keyword("36180", "OUI") is None
        assert await d.keyword_campaigns("36180") == []


async def test_the_wired_runner_keeps_the_directory_current(tmp_path: Path) -> None:
    from gateway.campaigns.wiring import Campaigns
    from gateway.store.campaign_base import ImportRow
    from tests.api_fakes import FakeOutbound, make_config, router_for
    from tests.e2e_helpers import eventually

    config = make_config(default_region="FR")
    store = SqliteStore(tmp_path / "gateway.db", "normal")
    await store.open()
    clock = [NOW]
    outbound = FakeOutbound([], {"alpha"})
    wired = Campaigns(
        config,
        store,
        outbound,
        router_for(config),
        clock=lambda: clock[0],
        tables=SqliteCampaignStore(store.db),
    )
    try:
        await wired.open()
        await wired.start()
        contacts = await wired.store.create_list("l", NOW)
        await wired.store.import_rows(contacts.id, [ImportRow("+33612345678", "A", {})], "t", NOW)
        start_at = datetime.datetime.fromtimestamp(NOW + 60, datetime.UTC).isoformat()
        rule = {"name": "yes", "keyword": "YES", "actions": [{"type": "help"}]}
        body = {
            "name": "later",
            "from": "36180",
            "text": "Hi",
            "lists": [contacts.id],
            "two_way": True,
            "keywords": [rule],
            "start_at": start_at,
        }
        created = await wired.service.create(body)
        started = await wired.service.act(created.id, "start")
        assert started is not None and started.status == "scheduled"
        await wired.directory.refresh()
        assert await wired.directory.keyword_campaigns("36180") == []  # not started yet
        clock[0] += 60
        wired.runner.wake(created.id)  # the runner's own timer would wait 60 real seconds

        async def done_and_known() -> bool:
            info = await wired.directory.campaign(created.id)
            return info is not None and info.extra["status"] == "done"

        await eventually(done_and_known, within=10)
        assert [c.id for c in await wired.directory.keyword_campaigns("36180")] == [created.id]
        assert [m.to for m in outbound.enqueued] == ["+33612345678"]
    finally:
        await wired.stop()
        await store.close()


async def test_audience_is_lists_and_tags_each_number_once_written_in_pages(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import gateway.store.sqlite_campaigns as sqlite_campaigns

    monkeypatch.setattr(sqlite_campaigns, "AUDIENCE_PAGE", 2)
    async with campaign_rig(tmp_path) as rig:
        first = await list_with(rig, 5)  # numbers 0-4
        second = await list_with(rig, 5, start=3)  # numbers 3-7
        to = numbers(10)
        await rig.store.tag_contact(to[9], ["vip"], NOW)
        await rig.store.tag_contact(to[0], ["vip"], NOW)
        campaign = await new_campaign(rig, first, lists=[first, second], tags=["vip"])
        await rig.post(f"/v1/campaigns/{campaign['id']}/start", None, 200)
        await rig.run_to_end(campaign["id"])
        assert [d for d, _ in await rig.messages_of(campaign["id"])] == [*to[:8], to[9]]
        fixed = await rig.campaigns.fix_audience(campaign["id"], [first, second], ["vip"])
        assert fixed == 9  # fixed once: a second call changes nothing
        await list_with(rig, 1, start=20)
        assert await rig.campaigns.fix_audience(campaign["id"], [first], []) == 9


async def test_started_campaigns_with_addresses_get_a_digest(tmp_path: Path) -> None:
    from gateway.campaigns.digest_source import CampaignDigestSource

    async with campaign_rig(tmp_path) as rig:
        list_id = await list_with(rig, 1)
        digest = {"to": ["ops@example.com", "boss@example.org"], "days": 2}
        wanted = await new_campaign(rig, list_id, name="wanted", digest=digest)
        await new_campaign(rig, list_id, name="no digest")
        await new_campaign(rig, list_id, name="draft", digest=digest)
        stopped = await new_campaign(rig, list_id, name="cancelled", digest=digest)
        for c in (wanted, stopped):
            await rig.post(f"/v1/campaigns/{c['id']}/start", None, 200)
        await rig.post(f"/v1/campaigns/{stopped['id']}/cancel", None, 200)
        await rig.run_to_end(wanted["id"])
        source = CampaignDigestSource(rig.campaigns)
        found = await source.digest_campaigns(rig.now())
        assert [(c.id, c.name, c.to, c.days) for c in found] == [
            (wanted["id"], "wanted", ("ops@example.com", "boss@example.org"), 2)
        ]
        assert found[0].started_at == NOW
        assert await source.digest_campaigns(NOW + 4 * 86400) == []  # its days are over


async def test_an_import_reports_how_far_it_got_in_its_file(tmp_path: Path) -> None:
    from gateway.campaigns.imports import BATCH_ROWS

    async with campaign_rig(tmp_path) as rig:
        list_id = await rig.new_list()
        rows = [f"{n},Person {i},Lyon" for i, n in enumerate(numbers(3 * BATCH_ROWS))]
        text = csv_of(rows)
        seen: list[tuple[int, int]] = []
        store = rig.importer.store
        original = store.import_rows

        async def recording(*args: Any) -> None:
            progress = args[-1]
            if progress is not None:  # the progress saved with a batch, mid-import
                seen.append((progress.bytes_read, progress.bytes_total))
            await original(*args)

        store.import_rows = recording  # type: ignore[method-assign]
        got = await rig.import_csv(list_id, text)
        assert got["status"] == "done" and got["imported"] == 3 * BATCH_ROWS
        size = len(text.encode())
        assert got["bytes"] == got["bytes_read"] == size
        assert len(seen) >= 2 and all(total == size for _, total in seen)
        read = [r for r, _ in seen]
        assert read == sorted(read) and 0 < read[0] < size and read[-1] <= size
