"""Contract: what the interaction export and the daily digest read and remember: marks that
never move back, the settled bound, a campaign's interactions and counts, digests sent once."""

from __future__ import annotations

import math

import pytest

from gateway.store.base import InteractionOutcome, NewInteraction
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, key, message, receipt, sent

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
