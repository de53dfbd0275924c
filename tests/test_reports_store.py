"""The report queries of the SQLite store: responders for "send to responders", export marks,
the settled bound, selected ids, and campaign counts kept apart per campaign."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.model import IncomingReceipt, MessageStatus, NewMessage, SubmitOutcome
from gateway.store.base import (
    UNDELIVERED_STATUSES,
    CampaignCounts,
    Click,
    NewInteraction,
    Periods,
)
from gateway.store.ports import InteractionReads
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_links import SqliteLinks
from tests.test_digest import mo, mt


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    sqlite = SqliteStore(tmp_path / "reports.db", synchronous="normal")
    await sqlite.open()
    try:
        yield sqlite
    finally:
        await sqlite.close()


def test_the_sqlite_store_keeps_interactions_for_the_api(tmp_path: Path) -> None:
    assert isinstance(SqliteStore(tmp_path / "x.db"), InteractionReads)


async def test_export_marks_only_move_forward(store: SqliteStore) -> None:
    assert await store.export_mark("s") == 0
    await store.advance_export_mark("s", 7, 1.0)
    await store.advance_export_mark("s", 3, 2.0)
    assert await store.export_mark("s") == 7
    assert await store.export_mark("other") == 0


async def test_the_settled_bound_stops_below_the_first_pending(store: SqliteStore) -> None:
    assert await store.settled_interaction_bound() == 0
    a = await mo(store, 1, "a", 1.0)
    assert await store.settled_interaction_bound() == a
    pending = await store.record_interaction(
        NewInteraction("alpha", "+1", "36180", "p", 0, 1, 1, 2.0, 2.0)
    )
    await mo(store, 2, "b", 3.0)
    assert await store.settled_interaction_bound() == pending - 1
    found = await store.interactions_by_ids([pending, a, 999, a])
    assert [i.id for i in found] == [a, pending]


async def test_counts_belong_to_their_campaign_and_period(store: SqliteStore) -> None:
    await mt(store, 1, "spring", 100.0, 150.0)
    await mt(store, 2, "spring", 100.0, 250.0)  # delivered after the period
    await mt(store, 3, "spring", 300.0)
    await mt(store, 4, "autumn", 100.0, 150.0)
    await mo(store, 1, "STOP", 120.0, actions=[{"type": "opt_out"}])
    await mo(store, 1, "STOP", 130.0, actions=[{"type": "opt_out"}])
    await mo(store, 2, "hi", 140.0, actions=[{"type": "reply"}])
    await mo(store, 3, "STOP", 141.0, actions=[{"type": "opt_out", "ok": False, "error": "x"}])
    await mo(store, 4, "STOP", 140.0, campaign="autumn", actions=[{"type": "opt_out"}])
    counts = await store.campaign_counts("spring", 0.0, 200.0)
    assert (counts.sent, counts.delivered, counts.replies) == (2, 1, 4)
    assert (counts.unique_responders, counts.opt_outs) == (3, 1)
    assert (counts.resubscriptions, counts.replies_from_others) == (0, 0)
    later = await store.campaign_counts("spring", 200.0, 400.0)
    assert (later.sent, later.delivered, later.replies) == (1, 1, 0)
    # Later: a re-subscription (not a response), a stranger's reply (nor one), a STOP whose
    # opt-out could not be stored (a response, no opt-out).
    await mo(
        store, 1, "YES", 410.0, keyword="YES", rule="resubscribe", actions=[{"type": "opt_in"}]
    )
    await mo(store, 9, "YES", 420.0, keyword="YES")
    await mo(store, 3, "STOP", 430.0, actions=[{"type": "opt_out", "ok": False}])
    last = await store.campaign_counts("spring", 400.0, 500.0)
    assert (last.replies, last.unique_responders, last.opt_outs) == (3, 1, 0)
    assert (last.resubscriptions, last.replies_from_others) == (1, 1)
    page = await store.campaign_interactions("spring", 125.0, 200.0, 0, 10)
    assert [i.text for i in page] == ["STOP", "hi", "STOP"]


def test_resubscription_rules_are_the_inbound_sides_built_in_opt_in_rules() -> None:
    from gateway.inbound.numbers import SYSTEM_OPT_IN, SYSTEM_RESUBSCRIBE
    from gateway.store.rows import RESUBSCRIPTION_RULES

    assert RESUBSCRIPTION_RULES == (SYSTEM_OPT_IN, SYSTEM_RESUBSCRIBE)


async def ended(store: SqliteStore, n: int, status: MessageStatus, at: float, error: str) -> None:
    """A spring message that reached a carrier at ``at - 10`` and ended in ``status``."""
    await mt(store, n, "spring", at - 10)
    key = f"k{n}"
    await store.record_receipts([IncomingReceipt("alpha", key, key, status, "X", at, error=error)])


async def refused(store: SqliteStore, n: int, at: float, error: str) -> None:
    """A spring message the carrier refused at submit: undelivered, never sent."""
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
                created_at=at - 1,
                campaign_id="spring",
            )
        ]
    )
    outcome = SubmitOutcome(message_id, 1, "alpha", MessageStatus.REJECTED, at, error=error)
    await store.record_outcomes([outcome])


async def test_a_series_gives_each_period_what_campaign_counts_gives_it(
    store: SqliteStore,
) -> None:
    """Timelines and the funnel's figures: sent, delivered, undelivered by status and by
    error, clicks and clickers, replies, responders and opt-outs, per period, each equal
    to campaign_counts over that period, and the whole equal to campaign_counts of all."""
    hour = 3600.0
    await mt(store, 1, "spring", 100.0, 200.0)
    await mt(store, 2, "spring", 150.0, hour + 50)  # delivered in the second hour
    await mt(store, 3, "spring", hour + 10)  # no receipt yet
    await ended(store, 4, MessageStatus.UNDELIVERABLE, 300.0, "stat:UNDELIV err:001")
    await ended(store, 5, MessageStatus.UNDELIVERABLE, hour + 300, "stat:UNDELIV err:001")
    await ended(store, 6, MessageStatus.REJECTED, 2 * hour + 5, "stat:REJECTD err:013")
    await refused(store, 7, 400.0, "ESME_RINVDSTADR")  # undelivered, not sent
    await mt(store, 50, "autumn", 100.0, 200.0)  # another campaign's
    await mo(store, 1, "YES", 500.0, keyword="YES")
    await mo(store, 1, "YES again", hour + 500, keyword="YES")
    await mo(store, 2, "STOP", hour + 600, actions=[{"type": "opt_out"}])
    await mo(store, 9, "YES", 700.0, keyword="YES")  # a stranger
    links = SqliteLinks(store.db)
    await links.record_clicks(
        [
            Click("c1", "spring", "+33612340001", 600.0, "Mozilla", False),
            Click("c1", "spring", "+33612340001", hour + 600, "Mozilla", False),
            Click("c2", "spring", "+33612340002", 610.0, "Mozilla", False),
            Click("c2", "spring", "+33612340002", 620.0, "WhatsApp/2", True),  # a preview
            Click("c3", "spring", "+33612340003", 2 * hour + 1, "", True),  # a bot alone
            Click("a1", "autumn", "+33612340050", 600.0, "Mozilla", False),
        ]
    )

    hours = Periods(0.0, hour, 3)
    [whole], per_hour = await store.campaign_series("spring", [Periods(0.0, math.inf, 1), hours])
    assert whole == await store.campaign_counts("spring", 0.0, math.inf)
    for k, got in enumerate(per_hour):
        assert got == await store.campaign_counts("spring", k * hour, (k + 1) * hour), k
    assert [c.sent for c in per_hour] == [3, 3, 0]  # 1, 2, 4 then 3, 5, 6; never 7
    assert [c.delivered for c in per_hour] == [1, 1, 0]
    assert [c.undelivered for c in per_hour] == [2, 1, 1]
    assert per_hour[0].undelivered_by_status == {
        "undeliverable": 1,
        "expired": 0,
        "rejected": 1,
        "failed": 0,
    }
    assert whole.undelivered_by_error == {
        "ESME_RINVDSTADR": 1,
        "stat:REJECTD err:013": 1,
        "stat:UNDELIV err:001": 2,
    }
    assert [c.clicks for c in per_hour] == [2, 1, 0]
    assert [c.unique_clickers for c in per_hour] == [2, 1, 0]
    assert [c.bot_requests for c in per_hour] == [1, 0, 1]
    assert (whole.clicks, whole.unique_clickers) == (3, 2)  # one clicker in two hours
    assert [c.replies for c in per_hour] == [2, 2, 0]
    assert [c.unique_responders for c in per_hour] == [1, 2, 0]
    assert [c.opt_outs for c in per_hour] == [0, 1, 0]
    assert (whole.sent, whole.delivered, whole.undelivered) == (6, 2, 4)
    assert (whole.replies, whole.unique_responders, whole.replies_from_others) == (4, 2, 1)
    # Outside the axis: nothing counted, and an empty axis list is no query.
    [[late]] = await store.campaign_series("spring", [Periods(10 * hour, hour, 1)])
    assert late == CampaignCounts(undelivered_by_status=dict.fromkeys(UNDELIVERED_STATUSES, 0))
    assert await store.campaign_series("spring", []) == []
