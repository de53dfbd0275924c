"""Issue 6, accept -> submit_sm: a message the binds have room for is begun in its accept
transaction and leaves before the 202, with no begin_attempts commit in between; the rest
(no room, throttled, scheduled) still go through ``Queue.begin_attempts``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from gateway.core.model import MessageStatus, NewMessage, StatusChange, SubmitOutcome
from gateway.engine.dispatcher import MAX_BATCH_PARTS
from gateway.smpp.pdu import Pdu, SubmitSm
from gateway.store.sqlite import SqliteStore
from tests.e2e_helpers import Lab, eventually, simulator_config
from tests.fakes import new_message


class Spy:
    """Counts, on a running gateway, the parts the store began after their accept (by
    begin_attempts, or with outcomes: record_outcomes_and_begin) and its commits at the
    moments that matter: after each accept returns, and at each submit_sm handed to a bind."""

    def __init__(self, lab: Lab) -> None:
        gateway = lab.gateway
        assert gateway is not None
        store = gateway.store
        self.store = store
        self.begun_parts: list[tuple[str, int]] = []
        self.commits_after_accept: dict[str, int] = {}
        self.commits_at_submit: dict[str, int] = {}
        """Destination (as on the wire) -> store commits when its first submit_sm left."""

        begin = store.begin_attempts
        accept = store.accept
        joint = store.record_outcomes_and_begin

        async def begin_attempts(parts: Sequence[tuple[str, int]]) -> set[str]:
            self.begun_parts.extend(parts)
            return await begin(parts)

        async def outcomes_and_begin(
            outcomes: Sequence[SubmitOutcome], parts: Sequence[tuple[str, int]]
        ) -> tuple[list[StatusChange], set[str] | None]:
            self.begun_parts.extend(parts)
            return await joint(outcomes, parts)

        async def accept_spy(
            messages: Sequence[NewMessage],
            idempotency: Any = None,
            begun: Collection[str] = (),
            unclaimed: Collection[str] = (),
        ) -> None:
            await accept(messages, idempotency, begun, unclaimed)
            for m in messages:
                self.commits_after_accept[m.to.lstrip("+")] = store.commits

        store.begin_attempts = begin_attempts  # type: ignore[method-assign]
        store.record_outcomes_and_begin = outcomes_and_begin  # type: ignore[method-assign]
        store.accept = accept_spy  # type: ignore[method-assign]
        for bind in gateway.binds:
            bind.submit = self._wrap(bind.submit)  # type: ignore[method-assign]

    def _wrap(self, submit: Callable[[Pdu, Any], int]) -> Callable[[Pdu, Any], int]:
        def spy(pdu: Pdu, context: Any = None) -> int:
            if isinstance(pdu, SubmitSm):
                self.commits_at_submit.setdefault(pdu.destination_addr, self.store.commits)
            return submit(pdu, context)

        return spy


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+336{20000000 + start + i:08d}" for i in range(n)]


async def post_batch(lab: Lab, tos: list[str], **fields: Any) -> list[str]:
    answer = await lab.post(
        "/v1/messages/batch",
        {"messages": [{"to": to, "from": "ACME", "text": f"hi {to}", **fields} for to in tos]},
    )
    return [m["id"] for m in answer["messages"]]


async def delivered(lab: Lab, ids: list[str]) -> None:
    async def check() -> bool:
        return await lab.statuses(ids) == {"delivered": len(ids)}

    await eventually(check, within=30)


@pytest.fixture
async def lab(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Lab]:
    carrier: dict[str, Any] = getattr(request, "param", {})
    lab = Lab(tmp_path, simulator_config(), **carrier)
    await lab.start()
    yield lab
    await lab.stop()


async def test_a_message_with_room_leaves_before_the_202_with_no_commit_after_its_accept(
    lab: Lab,
) -> None:
    spy = Spy(lab)
    to = numbers(1)[0]
    answer = await lab.post("/v1/messages", {"to": to, "from": "ACME", "text": "fast one"})
    wire = to.lstrip("+")
    # On the wire (handed to the bind) by the time the 202 is read, and no commit since the
    # accept's own: no begin_attempts transaction stood in between.
    assert wire in spy.commits_at_submit
    assert spy.commits_at_submit[wire] == spy.commits_after_accept[wire]
    assert spy.begun_parts == []
    await delivered(lab, [answer["id"]])
    view = await lab.get(f"/v1/messages/{answer['id']}")
    assert [p["attempts"] for p in view["parts"]] == [1]
    assert view["possible_duplicate"] is False


async def test_a_batch_is_begun_at_acceptance_only_as_far_as_the_windows_reach(lab: Lab) -> None:
    # window 50 x 2 binds, nothing in flight: the first 100 go with the accept, the other 20
    # are queued and begun by the pump, as before.
    spy = Spy(lab)
    tos = numbers(120)
    ids = await post_batch(lab, tos)
    await delivered(lab, ids)
    by_id = dict(zip(ids, tos, strict=True))
    assert sorted(by_id[mid] for mid, _ in spy.begun_parts) == tos[100:]
    early = [to.lstrip("+") for to in tos[:100]]
    assert all(spy.commits_at_submit[w] == spy.commits_after_accept[w] for w in early)
    late = [to.lstrip("+") for to in tos[100:]]
    assert all(spy.commits_at_submit[w] > spy.commits_after_accept[w] for w in late)
    stats = await lab.sim("GET", "/v1/stats")
    assert stats["submit_sm"] == 120
    assert lab.gateway is not None and lab.gateway.dispatcher.stats.begun_at_accept == 100


@pytest.mark.parametrize("lab", [{"tps": 20.0}], indirect=True)
async def test_throttled_messages_beyond_the_tokens_go_through_begin_attempts(lab: Lab) -> None:
    # 20 TPS per bind: one token each at the start (1 + 20 x 5 ms), so two messages can
    # leave at once; the other six wait for tokens, begun by the pump.
    spy = Spy(lab)
    tos = numbers(8, start=500)
    ids = await post_batch(lab, tos)
    await delivered(lab, ids)
    by_id = dict(zip(ids, tos, strict=True))
    assert sorted(by_id[mid] for mid, _ in spy.begun_parts) == tos[2:]
    stats = await lab.sim("GET", "/v1/stats")
    assert stats["submit_sm_by_status"] == {"ESME_ROK": 8}


async def test_a_scheduled_message_is_begun_when_due_not_at_acceptance(lab: Lab) -> None:
    spy = Spy(lab)
    to = numbers(1, start=900)[0]
    ids = await post_batch(lab, [to], scheduled_at=time.time() + 0.5)
    assert spy.commits_at_submit == {}
    await delivered(lab, ids)
    assert [mid for mid, _ in spy.begun_parts] == ids


async def test_reserved_room_is_given_back_when_the_commit_fails(lab: Lab) -> None:
    gateway = lab.gateway
    assert gateway is not None
    dispatcher = gateway.dispatcher
    first = [new_message(to, carrier="sim") for to in numbers(100, start=1000)]
    assert dispatcher.reserve(first) == {m.id for m in first}
    more = [new_message(numbers(1, start=2000)[0], carrier="sim")]
    assert dispatcher.reserve(more) == set()  # the windows are promised
    dispatcher.release(first, {m.id for m in first})
    assert dispatcher.reserve(more) == {more[0].id}
    dispatcher.release(more, {more[0].id})


async def test_a_crash_after_an_accept_with_begun_parts_flags_them_on_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "smsgw.db"
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    begun = new_message("+33600000001", parts=2, carrier="sim")
    plain = new_message("+33600000002", carrier="sim")
    await store.accept([begun, plain], None, {begun.id})
    await store.close()  # nothing after the accept: the process died before the send

    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        pending = {m.id: m for m in await store.load_pending(None, 10)}
        assert pending[begun.id].possible_duplicate is True
        assert pending[begun.id].attempts == 1
        assert pending[begun.id].pending_parts == (1, 2)
        assert pending[plain.id].possible_duplicate is False
        assert pending[plain.id].attempts == 0
    finally:
        await store.close()


async def test_an_accept_queued_behind_bulk_writes_commits_before_them(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "smsgw.db", synchronous="normal")
    await store.open()
    try:
        old = new_message("+33600000003", carrier="sim")
        await store.accept([old])
        gate = asyncio.Event()

        async def hold(db: aiosqlite.Connection) -> None:
            await gate.wait()  # a long commit under way

        held = asyncio.ensure_future(store._write(hold))
        await asyncio.sleep(0.01)
        done: list[str] = []

        async def track(name: str, call: Awaitable[object]) -> None:
            await call
            done.append(name)

        outcome = SubmitOutcome(old.id, 1, "sim", MessageStatus.FAILED, time.time(), error="x")
        bulk = asyncio.ensure_future(track("outcomes", store.record_outcomes([outcome])))
        await asyncio.sleep(0)
        fresh = new_message("+33600000004", carrier="sim")
        urgent = asyncio.ensure_future(track("accept", store.accept([fresh], None, {fresh.id})))
        await asyncio.sleep(0.01)
        commits = store.commits
        gate.set()
        await asyncio.gather(held, bulk, urgent)
        # The accept came second but went first, alone: the bulk write followed.
        assert done == ["accept", "outcomes"]
        assert store.commits - commits == 3
    finally:
        await store.close()


@pytest.mark.parametrize("lab", [{"window": 1000, "binds": 2}], indirect=True)
async def test_one_reserve_promises_at_most_one_pump_turn_of_parts(lab: Lab) -> None:
    gateway = lab.gateway
    assert gateway is not None
    dispatcher = gateway.dispatcher
    batch = [new_message(to, carrier="sim") for to in numbers(1500, start=3000)]
    reserved = dispatcher.reserve(batch)
    assert reserved == {m.id for m in batch[:MAX_BATCH_PARTS]}
    dispatcher.release(batch, reserved)
