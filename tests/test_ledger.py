"""The ledger's rules (gateway.core.ledger) as properties over random message journeys
(tests/ledger_book.py): final states stick, the order of events does not change where a
message ends, an early receipt is as good as a late one, one callback per final state."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core import ledger
from gateway.core.ledger import SUBMITTING, PartState
from gateway.core.model import FINAL_STATUSES, MessageStatus, StatusChange
from tests.ledger_book import (
    BASE_TIME,
    Batch,
    Book,
    Event,
    Journey,
    Outcome,
    Receipt,
    finals,
    journeys,
    message_id,
)

part_statuses = st.sampled_from([*MessageStatus, SUBMITTING])
errors = st.sampled_from([None, "e1", "e2"])
part_states = st.builds(PartState, part_statuses, errors)
final_states = st.builds(PartState, st.sampled_from(sorted(FINAL_STATUSES)), errors)
statuses = st.sampled_from(list(MessageStatus))

_KEY = re.compile(r"k(\d+)x(\d+)")


def _one_by_one(journey: Journey, events: list[Event]) -> Journey:
    """The journey's messages with ``events`` each in a batch of its own."""
    batches = tuple(Batch((e,), BASE_TIME + n + 1) for n, e in enumerate(events))
    return replace(journey, batches=batches)


def _without_error(state: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    return {mid: (status, parts) for mid, (status, _, parts) in state.items()}


def _owner(event: Event) -> tuple[int, int]:
    if isinstance(event, Outcome):
        return event.message, event.part
    assert isinstance(event, Receipt)
    found = _KEY.fullmatch(event.key)
    assert found is not None
    return int(found.group(1)), int(found.group(2))


# -- parts --------------------------------------------------------------------------------------


@settings(deadline=None)
@given(final_states, statuses, errors)
def test_a_final_part_never_moves(
    part: PartState, status: MessageStatus, error: str | None
) -> None:
    assert ledger.apply_outcome(part, status, error) is part
    assert ledger.apply_receipt(part, status, error) is part
    assert ledger.answer(part, MessageStatus.SUBMITTED, None, [(status, error)]) is part
    assert ledger.begin_attempt(part) is part
    assert ledger.expire_unreceipted(part) is part
    assert ledger.requeue_in_flight(part) is part


@settings(deadline=None)
@given(part_states, statuses, errors)
def test_an_event_that_changes_nothing_returns_the_part_itself(
    part: PartState, status: MessageStatus, error: str | None
) -> None:
    for new in (
        ledger.apply_outcome(part, status, error),
        ledger.apply_receipt(part, status, error),
        ledger.begin_attempt(part),
        ledger.expire_unreceipted(part),
        ledger.requeue_in_flight(part),
    ):
        assert (new is part) == (new == part)


@settings(deadline=None)
@given(part_states, st.sampled_from([MessageStatus.SUBMITTED, MessageStatus.ACCEPTED]), errors)
def test_only_a_final_receipt_moves_a_part(
    part: PartState, status: MessageStatus, error: str | None
) -> None:
    assert ledger.apply_receipt(part, status, error) is part


def test_a_submitted_outcome_clears_the_error_and_a_retry_keeps_its_own() -> None:
    queued = ledger.apply_outcome(PartState(SUBMITTING), MessageStatus.QUEUED, "throttled")
    submitted = ledger.apply_outcome(queued, MessageStatus.SUBMITTED, "x")
    assert queued == PartState(MessageStatus.QUEUED, "throttled")
    assert submitted == PartState(MessageStatus.SUBMITTED, None)


@settings(deadline=None)
@given(st.lists(part_states, max_size=4))
def test_a_message_is_as_its_worst_part_and_its_error_is_its_first_parts(
    parts: list[PartState],
) -> None:
    status = ledger.message_status(parts)
    counted = [ledger.counts_as(p.status) for p in parts]
    if not parts:
        assert status is MessageStatus.ACCEPTED
    elif any(s in FINAL_STATUSES - {MessageStatus.DELIVERED} for s in counted):
        assert status in FINAL_STATUSES - {MessageStatus.DELIVERED}
    elif all(s is MessageStatus.DELIVERED for s in counted):
        assert status is MessageStatus.DELIVERED
    else:
        assert status in counted and status not in FINAL_STATUSES
    first = next((p.error for p in parts if p.error is not None), None)
    assert ledger.message_error(status, parts) == (first if status in FINAL_STATUSES else None)


@settings(deadline=None)
@given(part_states, statuses)
def test_settle_single_is_settle_of_one_part(part: PartState, before: MessageStatus) -> None:
    assert ledger.settle_single(before, part) == ledger.settle(before, [part])


# -- journeys -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(journeys())
def test_final_states_stick(journey: Journey) -> None:
    book = Book(journey)
    for batch in journey.batches:
        parts = dict(book.parts)
        status = dict(book.status)
        book.apply(batch)
        for key, part in parts.items():
            if part.status in ledger.FINAL:
                assert book.parts[key] is part
        for m, before in status.items():
            if before in FINAL_STATUSES:
                # Still final; only a worse failure of another part can change which.
                assert book.status[m] in FINAL_STATUSES
                assert before != MessageStatus.DELIVERED or book.status[m] == before


@settings(max_examples=300, deadline=None)
@given(journeys(timeouts=False, one_final_receipt=True))
def test_any_order_of_responses_and_receipts_ends_the_same(journey: Journey) -> None:
    """Responses and receipts of every part in any interleaving, receipts before or after
    their response, in any batches: the same end state as one part after the other, each
    response then its receipts. (At most one final receipt a part: with two, the first
    wins, which is order by definition; a timeout expires what has no receipt *yet*.)"""
    events = journey.events
    canonical = sorted(events, key=lambda e: (*_owner(e), isinstance(e, Receipt), events.index(e)))
    shuffled = Book(journey).run()
    ordered = Book(_one_by_one(journey, canonical)).run()
    # The message's error is left out: it is set when the status moves, from the first
    # part (in part order) that has one then, so it can depend on which part's final
    # state came first (as the SQLite store has always done; see the ledger's docstring).
    assert _without_error(shuffled.end_state()) == _without_error(ordered.end_state())
    for m in range(len(journey.parts)):
        ends = [c for c in shuffled.changes if c.message_id == message_id(m)]
        assert (ends[-1].status if ends else MessageStatus.ACCEPTED) == shuffled.status[m]


@settings(max_examples=300, deadline=None)
@given(journeys(), st.data())
def test_an_early_receipt_then_its_response_is_the_response_then_the_receipt(
    journey: Journey, data: st.DataObject
) -> None:
    events = journey.events
    answered = [e for e in events if isinstance(e, Outcome) and e.key is not None]
    if not answered:
        return
    response = data.draw(st.sampled_from(answered))
    receipts = [e for e in events if isinstance(e, Receipt) and e.key == response.key]
    rest = [e for e in events if e not in receipts]
    at = rest.index(response)
    late = rest[: at + 1] + receipts + rest[at + 1 :]
    early = rest[:at] + receipts + rest[at:]
    a = Book(_one_by_one(journey, late)).run()
    b = Book(_one_by_one(journey, early)).run()
    assert a.end_state() == b.end_state()
    assert [(c.message_id, c.status, c.error) for c in finals(a.changes)] == [
        (c.message_id, c.status, c.error) for c in finals(b.changes)
    ]


@settings(max_examples=300, deadline=None)
@given(journeys())
def test_exactly_one_callback_per_final_state(journey: Journey) -> None:
    book = Book(journey).run()
    expected: list[tuple[str, dict[str, object]]] = []
    for m in range(len(journey.parts)):
        mine = [c for c in book.changes if c.message_id == message_id(m)]
        statuses = [MessageStatus.ACCEPTED, *(c.status for c in mine)]
        assert all(a != b for a, b in itertools.pairwise(statuses))  # moves only
        made = [c for c in mine if c.status in FINAL_STATUSES]
        # Never the same final status twice, and none missing: the last is where it ended.
        assert len({c.status for c in made}) == len(made)
        if book.status[m] in FINAL_STATUSES:
            assert made and made[-1].status == book.status[m]
        else:
            assert not made
    for change in book.changes:
        if change.status in FINAL_STATUSES and change.callback_url:
            expected.append((change.callback_url, ledger.callback_payload(change)))
    assert book.callbacks == expected


# -- what a change emits --------------------------------------------------------------------------


@settings(deadline=None)
@given(statuses, st.sampled_from([None, "https://x.example/cb", "smpp:esme1?rd=1"]))
def test_a_change_emits_a_callback_or_front_receipts_only_when_final(
    status: MessageStatus, url: str | None
) -> None:
    change = StatusChange("m1", status, 5.0, "ref", url, "alpha", "err", None)
    http = ledger.callback_of(change)
    front = ledger.wants_front_receipts(change)
    final = status in FINAL_STATUSES
    assert (http is not None) == (final and url is not None and url.startswith("https:"))
    assert front == (final and url is not None and url.startswith("smpp:"))
    if http is not None:
        assert http == (
            url,
            {
                "id": "m1",
                "client_ref": "ref",
                "status": status.value,
                "error": "err",
                "carrier": "alpha",
                "at": 5.0,
            },
        )
    assert ledger.front_account(url) == ("esme1" if url and url.startswith("smpp:") else None)


def test_front_receipts_one_per_upstream_part_with_its_own_final_state() -> None:
    change = StatusChange("m1", MessageStatus.UNDELIVERABLE, 9.0, None, "smpp:e?rd=1", "alpha")
    whole = ledger.front_receipts(change, "+331", "ACME", 1.0, None)
    assert whole == [
        {
            "id": "m1",
            "client_ref": None,
            "status": "undeliverable",
            "error": None,
            "carrier": "alpha",
            "at": 9.0,
            "url": "smpp:e?rd=1",
            "to": "+331",
            "sender": "ACME",
            "created_at": 1.0,
        }
    ]
    carrier = [MessageStatus.DELIVERED, MessageStatus.UNDELIVERABLE, MessageStatus.SUBMITTED]
    shares = ledger.upstream_shares(["u1", "u2"], carrier)
    # Two upstream parts over three carrier parts: u1 covers 1-2, u2 covers 2-3.
    assert shares == [("u1", MessageStatus.UNDELIVERABLE), ("u2", MessageStatus.UNDELIVERABLE)]
    each = ledger.front_receipts(change, "+331", "ACME", 1.0, [("u1", MessageStatus.DELIVERED)])
    assert [(r["id"], r["status"], r["message_id"]) for r in each] == [("u1", "delivered", "m1")]
    pending = ledger.front_receipts(change, "+331", "ACME", 1.0, [("u1", MessageStatus.QUEUED)])
    assert pending[0]["status"] == "undeliverable"  # not final: the message's


@settings(deadline=None)
@given(st.integers(1, 6), st.integers(1, 6))
def test_upstream_shares_cover_every_carrier_part(count: int, total: int) -> None:
    covered: set[int] = set()
    for k in range(count):
        first, last = ledger.share(k, count, total)
        assert 0 <= first < last <= total
        covered.update(range(first, last))
    assert covered == set(range(total))
