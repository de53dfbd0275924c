"""Contract: what the interaction export and the daily digest read and remember: marks that
never move back, the settled bound, a campaign's interactions and counts (each figure by
campaign and period, timelines equal to the counts of their periods), digests sent once."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gateway.core.model import IncomingReceipt, MessageStatus, NewMessage, SubmitOutcome
from gateway.store.base import (
    UNDELIVERED_STATUSES,
    CampaignCounts,
    Click,
    InteractionOutcome,
    NewInteraction,
    Periods,
)
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, key, message, receipt, sent
from tests.test_digest import mo as logged
from tests.test_digest import mt

pytestmark = pytest.mark.port("reports")

US = "+33700000000"


def mo(source: str, at: float) -> NewInteraction:
    return NewInteraction("sim", source, US, "YES", 0, 1, 1, at, at)


async def test_export_marks_never_move_back_and_survive_a_crash(backend: Harness) -> None:
    assert await backend.store.export_mark("acme") == 0
    await backend.store.advance_export_mark("acme", 7, T0)
    await backend.store.advance_export_mark("acme", 3, T0 + 1)
    await backend.crash()
    assert await backend.store.export_mark("acme") == 7
    assert await backend.store.export_mark("other") == 0


async def test_the_settled_bound_stops_below_the_first_pending(backend: Harness) -> None:
    ids = await backend.store.record_interactions([mo("+33600000001", T0 + n) for n in range(3)])
    assert await backend.store.settled_interaction_bound() == ids[0] - 1
    await backend.store.finish_interactions(
        [InteractionOutcome(i, None, None, None, [], T0 + 9) for i in (ids[0], ids[2])]
    )
    assert await backend.store.settled_interaction_bound() == ids[0]
    got = await backend.store.interactions_by_ids([ids[2], 999_999, ids[0]])
    assert [i.id for i in got] == [ids[0], ids[2]]


async def test_a_campaigns_interactions_and_counts(backend: Harness) -> None:
    m, other = message(1, campaign_id="c1"), message(2, campaign_id="c1")
    await sent(backend.store, m, other)
    await backend.store.record_receipts([receipt(key(m, 1))])
    ids = await backend.store.record_interactions([mo(m.to, T0 + 300), mo(m.to, T0 + 900)])
    await backend.store.finish_interactions(
        [InteractionOutcome(i, "YES", "yes", "c1", [], T0 + 901) for i in ids]
    )
    inside = await backend.store.campaign_interactions("c1", T0, T0 + 600, 0, 10)
    assert [i.id for i in inside] == ids[:1]
    counts = await backend.store.campaign_counts("c1", 0.0, math.inf)
    assert (counts.sent, counts.delivered, counts.replies, counts.unique_responders) == (2, 1, 2, 1)


async def test_a_digest_is_recorded_once(backend: Harness) -> None:
    assert not await backend.store.digest_sent("c1", "2030-03-17")
    assert await backend.store.record_digest("c1", "2030-03-17", T0, ["ops@example.net"])
    assert not await backend.store.record_digest("c1", "2030-03-17", T0 + 1, ["x@example.net"])
    await backend.reopen()
    assert await backend.store.digest_sent("c1", "2030-03-17")
    assert not await backend.store.digest_sent("c1", "2030-03-18")


async def test_counts_belong_to_their_campaign_and_period(backend: Harness) -> None:
    await mt(backend.store, 1, "spring", 100.0, 150.0)
    await mt(backend.store, 2, "spring", 100.0, 250.0)  # delivered after the period
    await mt(backend.store, 3, "spring", 300.0)
    await mt(backend.store, 4, "autumn", 100.0, 150.0)
    await logged(backend.store, 1, "STOP", 120.0, actions=[{"type": "opt_out"}])
    await logged(backend.store, 1, "STOP", 130.0, actions=[{"type": "opt_out"}])
    await logged(backend.store, 2, "hi", 140.0, actions=[{"type": "reply"}])
    await logged(
        backend.store, 3, "STOP", 141.0, actions=[{"type": "opt_out", "ok": False, "error": "x"}]
    )
    await logged(backend.store, 4, "STOP", 140.0, campaign="autumn", actions=[{"type": "opt_out"}])
    counts = await backend.store.campaign_counts("spring", 0.0, 200.0)
    assert (counts.sent, counts.delivered, counts.replies) == (2, 1, 4)
    assert (counts.unique_responders, counts.opt_outs) == (3, 1)
    assert (counts.resubscriptions, counts.replies_from_others) == (0, 0)
    later = await backend.store.campaign_counts("spring", 200.0, 400.0)
    assert (later.sent, later.delivered, later.replies) == (1, 1, 0)
    # Later: a re-subscription (not a response), a stranger's reply (nor one), a STOP whose
    # opt-out could not be stored (a response, no opt-out).
    await logged(
        backend.store,
        1,
        "YES",
        410.0,
        keyword="YES",
        rule="resubscribe",
        actions=[{"type": "opt_in"}],
    )
    await logged(backend.store, 9, "YES", 420.0, keyword="YES")
    await logged(backend.store, 3, "STOP", 430.0, actions=[{"type": "opt_out", "ok": False}])
    last = await backend.store.campaign_counts("spring", 400.0, 500.0)
    assert (last.replies, last.unique_responders, last.opt_outs) == (3, 1, 0)
    assert (last.resubscriptions, last.replies_from_others) == (1, 1)
    page = await backend.store.campaign_interactions("spring", 125.0, 200.0, 0, 10)
    assert [i.text for i in page] == ["STOP", "hi", "STOP"]


async def ended(store: Any, n: int, status: MessageStatus, at: float, error: str) -> None:
    """A spring message that reached a carrier at ``at - 10`` and ended in ``status``."""
    await mt(store, n, "spring", at - 10)
    key = f"k{n}"
    await store.record_receipts([IncomingReceipt("alpha", key, key, status, "X", at, error=error)])


async def refused(store: Any, n: int, at: float, error: str) -> None:
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
    backend: Harness,
) -> None:
    """Timelines and the funnel's figures: sent, delivered, undelivered by status and by
    error, clicks and clickers, replies, responders and opt-outs, per period, each equal
    to campaign_counts over that period, and the whole equal to campaign_counts of all."""
    store, links = backend.store, backend.links
    hour = 3600.0
    await mt(store, 1, "spring", 100.0, 200.0)
    await mt(store, 2, "spring", 150.0, hour + 50)  # delivered in the second hour
    await mt(store, 3, "spring", hour + 10)  # no receipt yet
    await ended(store, 4, MessageStatus.UNDELIVERABLE, 300.0, "stat:UNDELIV err:001")
    await ended(store, 5, MessageStatus.UNDELIVERABLE, hour + 300, "stat:UNDELIV err:001")
    await ended(store, 6, MessageStatus.REJECTED, 2 * hour + 5, "stat:REJECTD err:013")
    await refused(store, 7, 400.0, "ESME_RINVDSTADR")  # undelivered, not sent
    await mt(store, 50, "autumn", 100.0, 200.0)  # another campaign's
    await logged(store, 1, "YES", 500.0, keyword="YES")
    await logged(store, 1, "YES again", hour + 500, keyword="YES")
    await logged(store, 2, "STOP", hour + 600, actions=[{"type": "opt_out"}])
    await logged(store, 9, "YES", 700.0, keyword="YES")  # a stranger
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
