"""Contract: messages and their parts (the queue): accept, load what is pending, begin
attempts, record outcomes, and what a restart or a crash leaves (accept, idempotency and
ids on every intake store: test_intake.py)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.core.model import MessageStatus, NewMessage, SubmitOutcome, new_message_id
from tests.fakes import new_message
from tests.store_contract.conftest import Harness

pytestmark = pytest.mark.port("queue")

S = MessageStatus
T0 = 1_900_000_000.0


def message(n: int = 0, parts: int = 1, **kw: object) -> NewMessage:
    """A message made at T0 + n seconds (ids sort by creation time, so by ``n``)."""
    return new_message(
        f"+3361234{n:04d}",
        f"text {n}",
        parts=parts,
        now=T0 + n,
        carrier="sim",
        **kw,  # type: ignore[arg-type]
    )


def outcome(
    m: NewMessage, part: int, status: MessageStatus = S.SUBMITTED, **kw: object
) -> SubmitOutcome:
    values: dict[str, object] = {"at": T0 + 100}
    if status is S.SUBMITTED:
        values["carrier_message_id"] = f"C-{m.id}-{part}"
        values["receipt_key"] = f"c-{m.id}-{part}"
    values.update(kw)
    return SubmitOutcome(m.id, part, "sim", status, **values)  # type: ignore[arg-type]


async def test_an_accepted_message_is_pending_with_every_part(backend: Harness) -> None:
    m = message(1, parts=3, client_ref="r1", priority=5, validity_until=T0 + 600)
    await backend.store.accept([m])
    [out] = await backend.store.load_pending(None, 10)
    assert (out.id, out.to, out.sender, out.text, out.encoding, out.carrier) == (
        m.id,
        m.to,
        m.sender,
        m.text,
        m.encoding,
        "sim",
    )
    assert out.pending_parts == (1, 2, 3)
    assert (out.priority, out.validity_until, out.scheduled_at) == (5, T0 + 600, None)
    assert out.attempts == 0 and not out.possible_duplicate
    view = await backend.store.get_message(m.id)
    assert view is not None and view.status == "accepted" and len(view.parts) == 3


async def test_load_pending_pages_by_id(backend: Harness) -> None:
    messages = [message(n) for n in range(5)]
    await backend.store.accept(messages[3:])
    await backend.store.accept(messages[:3])
    first = await backend.store.load_pending(None, 2)
    assert [m.id for m in first] == [m.id for m in messages[:2]]
    rest = await backend.store.load_pending(first[-1].id, 10)
    assert [m.id for m in rest] == [m.id for m in messages[2:]]
    assert await backend.store.load_pending(messages[-1].id, 10) == []


async def test_a_submitted_message_is_no_longer_pending(backend: Harness) -> None:
    m = message(1, parts=2)
    await backend.store.accept([m])
    assert await backend.store.begin_attempts([(m.id, 1), (m.id, 2)]) == set()
    changes = await backend.store.record_outcomes([outcome(m, 1), outcome(m, 2)])
    assert [(c.message_id, c.status) for c in changes] == [(m.id, S.SUBMITTED)]
    assert await backend.store.load_pending(None, 10) == []
    view = await backend.store.get_message(m.id)
    assert view is not None and view.status == "submitted"
    assert [(p.status, p.attempts, p.carrier_message_id) for p in view.parts] == [
        ("submitted", 1, f"C-{m.id}-1"),
        ("submitted", 1, f"C-{m.id}-2"),
    ]


async def test_a_retried_part_comes_back_at_its_retry_time(backend: Harness) -> None:
    m = message(1, parts=2)
    await backend.store.accept([m])
    await backend.store.begin_attempts([(m.id, 1), (m.id, 2)])
    await backend.store.record_outcomes(
        [outcome(m, 1), outcome(m, 2, S.QUEUED, retry_at=T0 + 500, error="throttled")]
    )
    [out] = await backend.store.load_pending(None, 10)
    assert out.pending_parts == (2,)
    assert out.scheduled_at == T0 + 500 and out.attempts == 1
    assert not out.possible_duplicate


async def test_a_rejected_part_makes_the_message_final(backend: Harness) -> None:
    m = message(1)
    await backend.store.accept([m])
    await backend.store.begin_attempts([(m.id, 1)])
    changes = await backend.store.record_outcomes(
        [outcome(m, 1, S.REJECTED, command_status=0x45, error="ESME_RSUBMITFAIL")]
    )
    assert [(c.status, c.error) for c in changes] == [(S.REJECTED, "ESME_RSUBMITFAIL")]
    assert await backend.store.load_pending(None, 10) == []


async def test_begin_attempts_refuses_a_number_opted_out_since_intake(backend: Harness) -> None:
    kept, stopped, everything = message(1), message(2), message(3)
    await backend.store.accept([kept, stopped, everything])
    await backend.store.add_opt_out(stopped.to, stopped.sender, "mo", T0 + 10)
    await backend.store.add_opt_out(everything.to, None, "mo", T0 + 10)
    refused = await backend.store.begin_attempts(
        [(kept.id, 1), (stopped.id, 1), (everything.id, 1)]
    )
    assert refused == {stopped.id, everything.id}
    view = await backend.store.get_message(stopped.id)
    assert view is not None and view.parts[0].attempts == 0  # not marked


async def test_a_message_begun_at_acceptance_is_as_begin_attempts_leaves_it(
    backend: Harness,
) -> None:
    begun, plain = message(1, parts=2), message(2)
    await backend.store.accept([begun, plain], begun={begun.id})
    view = await backend.store.get_message(begun.id)
    assert view is not None and [p.attempts for p in view.parts] == [1, 1]
    changes = await backend.store.record_outcomes([outcome(begun, 1), outcome(begun, 2)])
    assert [c.status for c in changes] == [S.SUBMITTED]
    assert [m.id for m in await backend.store.load_pending(None, 10)] == [plain.id]


async def test_accepted_messages_survive_a_restart_and_a_crash(backend: Harness) -> None:
    a, b = message(1), message(2)
    await backend.store.accept([a])
    await backend.reopen()
    await backend.store.accept([b])
    await backend.crash()
    assert [m.id for m in await backend.store.load_pending(None, 10)] == [a.id, b.id]


async def test_a_part_begun_before_a_crash_comes_back_flagged(backend: Harness) -> None:
    m, untouched = message(1, parts=2), message(2)
    await backend.store.accept([m, untouched])
    await backend.store.begin_attempts([(m.id, 1)])
    await backend.crash()
    first, second = await backend.store.load_pending(None, 10)
    assert first.id == m.id and first.pending_parts == (1, 2)
    assert first.possible_duplicate and first.attempts == 1
    assert second.id == untouched.id and not second.possible_duplicate
    # The flag stays once the part is sent again and answered (it may have gone twice).
    await backend.store.begin_attempts([(m.id, 1), (m.id, 2)])
    await backend.store.record_outcomes([outcome(m, 1), outcome(m, 2)])
    await backend.reopen()
    view = await backend.store.get_message(m.id)
    assert view is not None and view.possible_duplicate
    assert [p.attempts for p in view.parts] == [2, 1]


async def test_message_ids_are_the_callers_and_sort_by_time(backend: Harness) -> None:
    ids = [new_message_id(T0 + n) for n in range(3)]
    await backend.store.accept([message(n, id=ids[n]) for n in (2, 0, 1)])
    await backend.reopen()
    assert [m.id for m in await backend.store.load_pending(None, 10)] == ids


async def test_two_nodes_loading_at_once_never_get_the_same_message(backend: Harness) -> None:
    messages = [message(n) for n in range(40)]
    await backend.store.accept(messages)
    other = await backend.node("smsgw-2")
    later = T0 + 3600  # the accepting node's claims have lapsed: both may claim every one
    mine, theirs = await asyncio.gather(
        backend.store.load_pending(None, 25, now=later), other.load_pending(None, 25, now=later)
    )
    got_mine, got_theirs = {m.id for m in mine}, {m.id for m in theirs}
    assert not got_mine & got_theirs
    assert len(got_mine | got_theirs) >= 25  # one of them, at least, got a whole page
    # Held now: neither is given the other's again while its claim lasts.
    assert not {m.id for m in await other.load_pending(None, 100, now=later + 1)} & got_mine


async def test_outcomes_and_the_next_attempts_commit_together(backend: Harness) -> None:
    answered, nxt, stopped = message(1), message(2), message(3)
    await backend.store.accept([answered, nxt, stopped], begun={answered.id})
    await backend.store.add_opt_out(stopped.to, None, "mo", T0 + 10)
    changes, refused = await backend.store.record_outcomes_and_begin(
        [outcome(answered, 1)], [(nxt.id, 1), (stopped.id, 1)]
    )
    assert [(c.message_id, c.status) for c in changes] == [(answered.id, S.SUBMITTED)]
    assert refused == {stopped.id}
    await backend.crash()
    # The next one was begun in that commit: after a crash it comes back flagged.
    [again, untouched] = await backend.store.load_pending(None, 10)
    assert (again.id, again.attempts, again.possible_duplicate) == (nxt.id, 1, True)
    assert (untouched.id, untouched.attempts) == (stopped.id, 0)
