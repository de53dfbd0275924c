"""Contract: campaigns (the campaign side's Campaigns port): records and their status moves,
an audience fixed once, the cursor through it, recipients waiting for their send window,
and what a crash leaves of them."""

from __future__ import annotations

import pytest

from gateway.config import RetentionConfig
from gateway.store.base import InteractionOutcome, NewInteraction
from gateway.store.campaign_base import (
    CampaignRecord,
    ImportJob,
    ImportRow,
    ListInUse,
    MessageTemplate,
)
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, message

pytestmark = pytest.mark.port("campaigns")

NUMBERS = [f"+3360000000{n}" for n in range(1, 6)]


async def _campaign(backend: Harness, status: str = "draft") -> CampaignRecord:
    record = CampaignRecord(
        id="c1",
        name="spring",
        sender="ACME",
        text="hi {name}",
        spec={"lists": [1]},
        status=status,
        created_at=T0,
        account="acme",
    )
    await backend.campaigns.save_campaign(record)
    return record


async def test_a_campaign_moves_only_from_the_statuses_expected(backend: Harness) -> None:
    await _campaign(backend)
    moved = await backend.campaigns.set_campaign_status("c1", "running", T0 + 1, expect=["draft"])
    assert moved is not None and (moved.status, moved.started_at) == ("running", T0 + 1)
    assert (
        await backend.campaigns.set_campaign_status("c1", "running", T0, expect=["draft"]) is None
    )
    done = await backend.campaigns.set_campaign_status("c1", "done", T0 + 2, expect=["running"])
    assert done is not None and (done.started_at, done.finished_at) == (T0 + 1, T0 + 2)
    assert [c.id for c in await backend.campaigns.campaigns(["done"])] == ["c1"]
    assert await backend.campaigns.campaigns(["running"]) == []
    assert await backend.campaigns.get_campaign("nope") is None


async def test_the_audience_is_fixed_once_and_walked_by_a_cursor(backend: Harness) -> None:
    lst = await backend.campaigns.create_list("friends", T0)
    rows = [ImportRow(n, None, {}) for n in reversed(NUMBERS)]
    await backend.campaigns.import_rows(lst.id, rows, "form", T0)
    await _campaign(backend, "running")
    assert await backend.campaigns.fix_audience("c1", [lst.id], []) == 5
    more = await backend.campaigns.create_list("late", T0)
    await backend.campaigns.import_rows(more.id, [ImportRow("+33699999999", None, {})], "x", T0)
    assert await backend.campaigns.fix_audience("c1", [lst.id, more.id], []) == 5  # fixed
    first = await backend.campaigns.recipients_after("c1", None, 2)
    assert first == NUMBERS[:2]
    await backend.campaigns.advance_campaign("c1", first[-1], 2, 0, 0)
    await backend.crash()
    record = await backend.campaigns.get_campaign("c1")
    assert record is not None and (record.cursor, record.handled) == (NUMBERS[1], 2)
    assert await backend.campaigns.recipients_after("c1", record.cursor, 10) == NUMBERS[2:]


async def test_messages_already_made_are_known(backend: Harness) -> None:
    await _campaign(backend, "running")
    m = message(1, campaign_id="c1")
    await backend.store.accept([m])
    assert await backend.campaigns.already_messaged("c1", [m.to, NUMBERS[0]]) == {m.to}
    assert await backend.campaigns.unsent_count("c1") == 1
    assert await backend.campaigns.campaign_statuses("c1") == {"accepted": 1}


async def test_recipients_wait_for_their_window(backend: Harness) -> None:
    await _campaign(backend, "running")
    await backend.campaigns.defer_recipients("c1", [(NUMBERS[0], T0 + 60), (NUMBERS[1], T0 + 30)])
    await backend.campaigns.defer_recipients("c1", [(NUMBERS[0], T0 + 10)])  # moved earlier
    assert await backend.campaigns.deferred_count("c1") == 2
    assert await backend.campaigns.next_due("c1") == T0 + 10
    assert await backend.campaigns.due_recipients("c1", T0 + 5, 10) == []
    assert await backend.campaigns.due_recipients("c1", T0 + 30, 10) == NUMBERS[:2]
    await backend.campaigns.advance_deferred("c1", [NUMBERS[0]], T0 + 30, 1, 0, 0)
    assert await backend.campaigns.deferred_count("c1") == 1
    record = await backend.campaigns.get_campaign("c1")
    assert record is not None and (record.handled, record.cursor) == (1, None)


async def test_a_list_a_campaign_will_use_or_an_import_fills_is_not_deleted(
    backend: Harness,
) -> None:
    lst = await backend.campaigns.create_list("friends", T0)
    other = await backend.campaigns.create_list("other", T0)
    await backend.campaigns.import_rows(lst.id, [ImportRow(NUMBERS[0], None, {})], "form", T0)
    draft = CampaignRecord("c1", "c1", "ACME", "hi", {"lists": [other.id, lst.id]}, "draft", T0)
    await backend.campaigns.save_campaign(draft)
    with pytest.raises(ListInUse, match="c1"):
        await backend.campaigns.delete_list(lst.id, T0 + 1)
    assert await backend.campaigns.get_list(lst.id) is not None
    await backend.campaigns.set_campaign_status("c1", "cancelled", T0 + 2, expect=["draft"])
    job = ImportJob("i1", lst.id, "running", "form", T0)
    await backend.campaigns.save_import(job)
    with pytest.raises(ListInUse, match="i1"):
        await backend.campaigns.delete_list(lst.id, T0 + 3)
    job.status, job.finished_at = "done", T0 + 4
    await backend.campaigns.save_import(job)
    assert await backend.campaigns.delete_list(lst.id, T0 + 5) == 1
    assert await backend.campaigns.get_list(lst.id) is None
    assert await backend.campaigns.deleted_lists_with_members() == []
    saved = await backend.campaigns.get_import("i1")
    assert saved is not None and (saved.status, saved.finished_at) == ("done", T0 + 4)


async def test_a_draft_is_replaced_only_while_a_draft(backend: Harness) -> None:
    record = await _campaign(backend)
    record.name, record.spec, record.start_at = "summer", {"lists": [2], "tps": 5}, T0 + 60
    assert await backend.campaigns.replace_draft(record)
    got = await backend.campaigns.get_campaign("c1")
    assert got is not None and (got.name, got.spec, got.start_at) == (
        "summer",
        {"lists": [2], "tps": 5},
        T0 + 60,
    )
    await backend.campaigns.set_campaign_status("c1", "scheduled", T0, expect=["draft"])
    record.name = "autumn"
    assert not await backend.campaigns.replace_draft(record)
    got = await backend.campaigns.get_campaign("c1")
    assert got is not None and (got.name, got.status) == ("summer", "scheduled")


async def test_templates_are_saved_replaced_listed_by_account_and_deleted(
    backend: Harness,
) -> None:
    first = MessageTemplate("t1", "acme", "hello", "Hi {name}", T0, T0)
    second = MessageTemplate("t2", "shop", "promo", "Sale!", T0, T0)
    for template in (second, first):
        await backend.campaigns.save_template(template)
    await backend.campaigns.save_template(
        MessageTemplate("t1", "acme", "hello", "Hello {name}", T0, T0 + 1)
    )
    got = await backend.campaigns.get_template("t1")
    assert got is not None and (got.text, got.updated_at) == ("Hello {name}", T0 + 1)
    assert [t.id for t in await backend.campaigns.templates(None)] == ["t1", "t2"]
    assert [t.id for t in await backend.campaigns.templates("shop")] == ["t2"]
    assert await backend.campaigns.delete_template("t2")
    assert not await backend.campaigns.delete_template("t2")
    assert await backend.campaigns.get_template("t2") is None


@pytest.mark.port("retention")
async def test_finished_campaigns_and_imports_past_their_age_go_with_their_audience(
    backend: Harness,
) -> None:
    """``[retention] campaigns_days``: a campaign done or cancelled before the cutoff goes
    with its audience and waiting recipients, in batches; a younger one, one still running,
    and the lists and contacts stay. Finished imports past the age go; a running one stays."""
    day, now = 86400.0, T0 + 10 * 86400.0
    lst = await backend.campaigns.create_list("friends", T0)
    await backend.campaigns.import_rows(lst.id, [ImportRow(n, None, {}) for n in NUMBERS], "x", T0)
    kept = {"young": ("done", now - day / 2), "live": ("running", None)}
    gone = {"old": ("done", T0 + 1), "dropped": ("cancelled", T0 + 2), "older": ("done", T0)}
    for cid, (status, finished) in {**kept, **gone}.items():
        record = CampaignRecord(cid, cid, "ACME", "hi", {"lists": [lst.id]}, status, T0)
        record.finished_at = finished
        await backend.campaigns.save_campaign(record)
        assert await backend.campaigns.fix_audience(cid, [lst.id], []) == len(NUMBERS)
    await backend.campaigns.defer_recipients("old", [(NUMBERS[0], T0 + 60)])
    for job_id, status, finished in (("i-old", "done", T0 + 1), ("i-live", "running", None)):
        job = ImportJob(job_id, lst.id, status, "x", T0, finished_at=finished)
        await backend.campaigns.save_import(job)
    retention = RetentionConfig(
        messages_days=0.0, idempotency_days=0.0, interactions_days=0.0, campaigns_days=1.0, batch=2
    )
    deleted = await backend.pruner(retention, clock=lambda: now).run_once()
    assert (deleted["campaigns"], deleted["imports"]) == (3, 1), deleted
    for cid in gone:
        assert await backend.campaigns.get_campaign(cid) is None
        assert await backend.campaigns.recipients_after(cid, None, 10) == []
    assert await backend.campaigns.deferred_count("old") == 0
    for cid, (status, _) in kept.items():
        record = await backend.campaigns.get_campaign(cid)
        assert record is not None and record.status == status
        assert await backend.campaigns.recipients_after(cid, None, 10) == NUMBERS
    assert await backend.campaigns.get_import("i-old") is None
    live = await backend.campaigns.get_import("i-live")
    assert live is not None and live.status == "running"
    listed = await backend.campaigns.get_list(lst.id)
    assert listed is not None and listed.contacts == len(NUMBERS)


@pytest.mark.port("reports")  # MO come through the inbound side's interaction log
async def test_reply_figures_and_an_audience_of_responders(backend: Harness) -> None:
    """A campaign's responses are MO from its recipients that are no re-subscription
    (START, YES from an opted-out sender): counted by keyword, timed from the campaign's
    first message to each, and the audience of a campaign "to those who replied"."""
    await _campaign(backend, "running")
    ann, bob = message(1, campaign_id="c1"), message(2, campaign_id="c1")
    await backend.store.accept([ann, bob])
    us, stranger = "+33700000000", "+33611111111"
    replies = [
        (ann.to, T0 + 61, "YES", "yes"),
        (ann.to, T0 + 90, "STOP", "opt_out"),
        (bob.to, T0 + 302, "START", "opt_in"),  # a re-subscription: no response
        (stranger, T0 + 100, "YES", "yes"),  # not a recipient
    ]
    ids = await backend.store.record_interactions(
        [NewInteraction("sim", src, us, kw, 0, 1, 1, at, at) for src, at, kw, _ in replies]
    )
    await backend.store.finish_interactions(
        [
            InteractionOutcome(i, kw, rule, "c1", [], at + 1)
            for i, (_, at, kw, rule) in zip(ids, replies, strict=True)
        ]
    )
    figures = await backend.campaigns.reply_figures("c1")
    assert figures.per_keyword == {"STOP": 1, "YES": 1}
    assert figures.seconds_to_first_reply == [60.0]  # ann: made at T0 + 1, replied at T0 + 61
    assert await backend.campaigns.fix_audience("c2", [], [], ("c1", "yes")) == 1
    assert await backend.campaigns.recipients_after("c2", None, 10) == [ann.to]
    assert await backend.campaigns.fix_audience("c3", [], [], ("c1", None)) == 1
    assert await backend.campaigns.fix_audience("c4", [], [], ("c1", "NO")) == 0
