"""Contract: messages as the API and the console list them (``MessageReads.list_messages``,
``minute_counts``): every filter, pages by id either way, and the per-minute overview."""

from __future__ import annotations

import pytest

from gateway.core.model import MessageStatus
from gateway.store.base import MessageQuery
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, key, message, outcome, receipt

pytestmark = pytest.mark.port("lists")


async def test_filters_and_pages_by_id_either_way(backend: Harness) -> None:
    a1 = message(1, account="crm", client_ref="r-1", campaign_id="c1")
    a2 = message(61, account="crm", campaign_id="c1")
    b1 = message(62, account="erp", client_ref="r-1")
    a3 = message(130, account="crm")
    await backend.store.accept([a1, a2, b1, a3])
    await backend.store.begin_attempts([(a2.id, 1)])
    await backend.store.record_outcomes([outcome(a2, 1)])
    await backend.store.record_receipts([receipt(key(a2, 1))])

    async def ids(**kw: object) -> list[str]:
        query = MessageQuery(**{"account": None, **kw})  # type: ignore[arg-type]
        return [row.id for row in await backend.store.list_messages(query)]

    assert await ids() == [a3.id, b1.id, a2.id, a1.id]
    assert await ids(newest_first=False) == [a1.id, a2.id, b1.id, a3.id]
    assert await ids(account="crm") == [a3.id, a2.id, a1.id]
    assert await ids(campaign_id="c1") == [a2.id, a1.id]
    assert await ids(client_ref="r-1") == [b1.id, a1.id]
    assert await ids(to=b1.to) == [b1.id]
    assert await ids(statuses=("delivered",)) == [a2.id]
    assert await ids(statuses=("accepted", "delivered"), account="crm") == [a3.id, a2.id, a1.id]
    assert await ids(since=T0 + 61, until=T0 + 130) == [b1.id, a2.id]
    # Pages: after the last id of the previous one, in the order asked.
    assert await ids(limit=2) == [a3.id, b1.id]
    assert await ids(limit=2, after=b1.id) == [a2.id, a1.id]
    assert await ids(limit=2, after=a2.id, newest_first=False) == [b1.id, a3.id]
    assert await ids(after=a1.id) == []
    [row] = await backend.store.list_messages(MessageQuery(account=None, statuses=("delivered",)))
    assert (row.status, row.to, row.sender, row.account, row.campaign_id, row.parts) == (
        "delivered",
        a2.to,
        a2.sender,
        "crm",
        "c1",
        1,
    )
    assert (row.created_at, row.carrier, row.text, row.possible_duplicate) == (
        T0 + 61,
        "sim",
        a2.text,
        False,
    )


async def test_minute_counts_group_the_messages_made_since_by_minute_and_status(
    backend: Harness,
) -> None:
    old, m1, m2, m3 = message(0), message(60), message(61), message(125)
    await backend.store.accept([old, m1, m2, m3])
    await backend.store.begin_attempts([(m2.id, 1)])
    await backend.store.record_outcomes([outcome(m2, 1, MessageStatus.REJECTED, error="x")])
    minute = int(T0 + 60) // 60 * 60
    counts = sorted(await backend.store.minute_counts(T0 + 30))
    assert counts == sorted(
        [(minute, "accepted", 1), (minute, "rejected", 1), (minute + 60, "accepted", 1)]
    )
    assert await backend.store.minute_counts(T0 + 200) == []
