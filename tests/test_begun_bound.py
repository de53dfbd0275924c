"""Issue 17.8: what a crash flags ``possible_duplicate`` is bounded by the windows.

A part is 'submitting' in the store from the commit that begins its attempt (at acceptance,
or by begin_attempts when staged) until its outcome is committed; a crash flags every such
part. The dispatcher begins only what the live binds' windows can take soon, so at no moment
are more than window x binds parts 'submitting' per carrier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store.sqlite import SqliteStore
from tests.e2e_helpers import Lab, eventually, simulator_config
from tests.fakes import new_message
from tests.store_helpers import status_counts

WINDOW = 20
BINDS = 2


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    lab = Lab(tmp_path, simulator_config(), window=WINDOW, binds=BINDS)
    await lab.start()
    # Responses take 5 ms: the windows, not the gateway's CPU, are what holds parts back.
    await lab.sim("PUT", "/v1/faults", {"slow_responses": 0.005})
    yield lab
    await lab.stop()


async def test_parts_submitting_never_exceed_window_times_binds(lab: Lab) -> None:
    gateway = lab.gateway
    assert gateway is not None
    store = gateway.store
    samples: list[int] = []
    sending = True

    async def sample() -> None:
        while sending:
            rows = await store._read("SELECT count(*) FROM parts WHERE status = 'submitting'")
            samples.append(int(rows[0][0]))
            await asyncio.sleep(0.001)

    sampler = asyncio.create_task(sample())
    ids: list[str] = []
    try:
        for batch in range(4):
            answer = await lab.post(
                "/v1/messages/batch",
                {
                    "messages": [
                        {"to": f"+3361{batch:03d}{i:04d}", "from": "ACME", "text": f"m{i}"}
                        for i in range(500)
                    ]
                },
            )
            ids.extend(m["id"] for m in answer["messages"])

        async def all_delivered() -> bool:
            counts = await status_counts(store)
            return counts.get("delivered", 0) >= len(ids)

        await eventually(all_delivered, within=120)
    finally:
        sending = False
        await sampler
    # The sampler saw the queue at work, and never more begun than the windows hold.
    assert max(samples) > 0, samples
    assert max(samples) <= WINDOW * BINDS, max(samples)


async def test_parts_left_submitting_by_a_crash_are_requeued_and_flagged_at_open(
    tmp_path: Path,
) -> None:
    # Otherwise a second crash before they were sent again would find them 'submitting'
    # besides the windows' worth the new process began: twice the bound.
    path = tmp_path / "smsgw.db"
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    begun = new_message("+33600000001", parts=2, carrier="sim")
    plain = new_message("+33600000002", carrier="sim")
    await store.accept([begun, plain], None, {begun.id})
    await store.close()  # the process died before the send

    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        rows = await store._read("SELECT count(*) FROM parts WHERE status = 'submitting'")
        assert rows[0][0] == 0
        view = await store.get_message(begun.id)
        assert view is not None and view.possible_duplicate is True
        pending = {m.id: m for m in await store.load_pending(None, 10)}
        assert pending[begun.id].possible_duplicate is True
        assert pending[begun.id].pending_parts == (1, 2)
        assert pending[begun.id].attempts == 1
        assert pending[plain.id].possible_duplicate is False
    finally:
        await store.close()
