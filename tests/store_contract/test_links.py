"""Contract: short links (gateway.store.ports.Links): a code is stored with its message in
the accept's transaction (a taken code refuses the whole accept), found by code until it is
pruned, oldest first and at most a batch at a time; clicks and bots' requests are kept for
the campaign's figures, pruned codes' included."""

from __future__ import annotations

import math

import pytest

from gateway.store.base import Click, Link, LinkCodeTaken
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, message

pytestmark = pytest.mark.port("links")

TARGET = "https://shop.example/spring"


async def test_a_code_is_found_with_what_its_message_said(backend: Harness) -> None:
    m = message(1, campaign_id="c1", links=(("Abc1234", TARGET), ("Xyz9876", TARGET + "/b")))
    await backend.store.accept([m])
    await backend.crash()
    found = await backend.links.find("Abc1234")
    assert found == Link("Abc1234", m.id, "c1", m.to, TARGET, m.created_at)
    other = await backend.links.find("Xyz9876")
    assert other is not None and other.target == TARGET + "/b"
    assert await backend.links.find("abc1234") is None  # codes are case-sensitive
    assert await backend.links.find("Nothing") is None


async def test_a_taken_code_refuses_the_whole_accept(backend: Harness) -> None:
    first = message(1, campaign_id="c1", links=(("Taken01", TARGET),))
    await backend.store.accept([first])
    fresh, clash = (
        message(2, campaign_id="c2", links=(("Fresh01", TARGET),)),
        message(3, campaign_id="c2", links=(("Taken01", TARGET + "/other"),)),
    )
    with pytest.raises(LinkCodeTaken):
        await backend.store.accept([fresh, clash])
    assert await backend.store.get_message(fresh.id) is None  # nothing half-written
    assert await backend.links.find("Fresh01") is None
    kept = await backend.links.find("Taken01")
    assert kept is not None and (kept.message_id, kept.target) == (first.id, TARGET)


async def test_pruning_takes_the_oldest_codes_a_batch_at_a_time(backend: Harness) -> None:
    made = [message(n, campaign_id="c1", links=((f"Code{n:03d}", TARGET),)) for n in range(5)]
    await backend.store.accept(made)  # code n made at T0 + n
    assert await backend.links.prune(T0 + 3, 2) == 2  # 0 and 1: the oldest first
    assert [await backend.links.find(f"Code{n:03d}") is None for n in range(5)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert await backend.links.prune(T0 + 3, 10) == 1  # 2 (3 is not before T0 + 3)
    assert await backend.links.prune(T0 + 3, 10) == 0
    assert await backend.links.find("Code003") is not None


@pytest.mark.port("reports")
async def test_clicks_count_for_their_campaign_after_their_code_is_pruned(
    backend: Harness,
) -> None:
    m = message(1, campaign_id="c1", links=(("Abc1234", TARGET),))
    await backend.store.accept([m])
    await backend.links.record_clicks(
        [
            Click("Abc1234", "c1", m.to, T0 + 10, "Mozilla/5.0", False),
            Click("Abc1234", "c1", m.to, T0 + 11, "Mozilla/5.0", False),
            Click("Abc1234", "c1", m.to, T0 + 12, "WhatsApp/2", True),
            Click("Other01", "c2", m.to, T0 + 13, "Mozilla/5.0", False),
            Click("NoCamp1", None, m.to, T0 + 14, "Mozilla/5.0", False),
        ]
    )
    await backend.links.record_clicks([])
    assert await backend.links.prune(T0 + 60, 100) == 1
    await backend.reopen()
    counts = await backend.store.campaign_counts("c1", 0.0, math.inf)
    assert (counts.clicks, counts.unique_clickers, counts.bot_requests) == (2, 1, 1)
    other = await backend.store.campaign_counts("c2", 0.0, math.inf)
    assert (other.clicks, other.unique_clickers, other.bot_requests) == (1, 1, 0)
