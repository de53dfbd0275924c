"""Random message journeys for the ledger's property tests, and a book that keeps them with
the ledger's rules alone (gateway.core.ledger): the reference the stores are compared with.

A journey is messages of 1-3 parts and a sequence of *batches*, each of one kind, as the
engine hands them to a store:

- ``Outcomes``: submit outcomes (each part was begun first: ``begin_attempts``);
- ``Receipts``: delivery receipts by carrier key, possibly before their response (early);
- ``Timeout``: the no-receipt sweep (``expire_unreceipted``) at that time.

Each part's outcomes keep their order (zero to two retries, then submitted, rejected or
failed); receipts and timeouts fall anywhere. Times grow by one second an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from hypothesis import strategies as st

from gateway.core import ledger
from gateway.core.ledger import PartState
from gateway.core.model import FINAL_STATUSES, MessageStatus, StatusChange

CARRIER: Final = "alpha"
BASE_TIME: Final = 1_700_000_000.0
CALLBACK_URL: Final = "https://receiver.example/cb"


@dataclass(frozen=True)
class Outcome:
    message: int
    part: int  # 1-based
    status: MessageStatus  # SUBMITTED, QUEUED, REJECTED or FAILED
    key: str | None  # the receipt key of a SUBMITTED outcome
    error: str | None


@dataclass(frozen=True)
class Receipt:
    key: str
    status: MessageStatus  # final, or SUBMITTED (ENROUTE)
    error: str | None


@dataclass(frozen=True)
class Timeout:
    pass


Event = Outcome | Receipt | Timeout


@dataclass(frozen=True)
class Batch:
    events: tuple[Event, ...]
    at: float  # the time of its last event

    @property
    def kind(self) -> type:
        return type(self.events[0])


@dataclass(frozen=True)
class Journey:
    parts: tuple[int, ...]  # parts of message 0, 1, ...
    callbacks: tuple[bool, ...]  # whether message i has a callback_url
    batches: tuple[Batch, ...]

    @property
    def events(self) -> list[Event]:
        return [e for b in self.batches for e in b.events]


_RECEIPT_STATUSES: Final = (
    MessageStatus.DELIVERED,
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERABLE,
    MessageStatus.EXPIRED,
    MessageStatus.REJECTED,
)
_ERRORS: Final = st.sampled_from([None, "err:001", "err:002"])


@st.composite
def part_chain(
    draw: st.DrawFn, message: int, part: int, one_final_receipt: bool
) -> tuple[list[Outcome], list[Receipt]]:
    """One part's outcomes (in order) and the receipts its carrier sends."""
    outcomes = [
        Outcome(
            message, part, MessageStatus.QUEUED, None, draw(st.sampled_from(["throttled", None]))
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    last = draw(
        st.sampled_from(
            [MessageStatus.SUBMITTED] * 4 + [MessageStatus.REJECTED, MessageStatus.FAILED]
        )
    )
    if last is not MessageStatus.SUBMITTED:
        outcomes.append(Outcome(message, part, last, None, f"refused {message}.{part}"))
        return outcomes, []
    key = f"k{message}x{part}"
    outcomes.append(Outcome(message, part, last, key, None))
    receipts = []
    if draw(st.booleans()):
        receipts.append(Receipt(key, MessageStatus.SUBMITTED, None))  # ENROUTE
    finals = draw(st.integers(0, 1) if one_final_receipt else st.integers(0, 2))
    for _ in range(finals):
        receipts.append(Receipt(key, draw(st.sampled_from(_RECEIPT_STATUSES)), draw(_ERRORS)))
    return outcomes, receipts


def _place(order: list[Event], chains: list[list[Outcome]]) -> list[Event]:
    """``order`` with each part's outcomes put back in their chain order, in the positions
    the shuffle gave them (a response never overtakes an earlier one of its part)."""
    placed = list(order)
    for chain in chains:
        if len(chain) < 2:
            continue
        members = set(map(id, chain))
        slots = [i for i, e in enumerate(placed) if id(e) in members]
        for i, outcome in zip(slots, chain, strict=True):
            placed[i] = outcome
    return placed


def _batches(events: list[Event], cuts: list[bool]) -> tuple[Batch, ...]:
    """Consecutive events of one kind form a batch unless cut; a timeout is a batch alone."""
    batches: list[Batch] = []
    current: list[Event] = []
    for n, event in enumerate(events):
        at = BASE_TIME + n + 1
        if current and (
            type(event) is not type(current[0]) or isinstance(event, Timeout) or cuts[n]
        ):
            batches.append(Batch(tuple(current), at - 1))
            current = []
        current.append(event)
    if current:
        batches.append(Batch(tuple(current), BASE_TIME + len(events)))
    return tuple(batches)


@st.composite
def journeys(
    draw: st.DrawFn,
    *,
    max_messages: int = 3,
    timeouts: bool = True,
    one_final_receipt: bool = False,
) -> Journey:
    count = draw(st.integers(1, max_messages))
    parts = tuple(draw(st.integers(1, 3)) for _ in range(count))
    callbacks = tuple(draw(st.sampled_from([True, True, False])) for _ in range(count))
    chains: list[list[Outcome]] = []
    events: list[Event] = []
    for m, n in enumerate(parts):
        for p in range(1, n + 1):
            outcomes, receipts = draw(part_chain(m, p, one_final_receipt))
            chains.append(outcomes)
            events += outcomes
            events += receipts
    if timeouts:
        events += [Timeout() for _ in range(draw(st.integers(0, 2)))]
    order = _place(draw(st.permutations(events)), chains)
    cuts = draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    return Journey(parts, callbacks, _batches(order, cuts))


# -- the book: the ledger's rules alone --------------------------------------------------------


@dataclass
class Book:
    """Messages kept by the ledger's functions, as a store keeps them: the receipt map, the
    receipts held for a response still to come, one settle per batch, the callbacks made."""

    journey: Journey
    parts: dict[tuple[int, int], PartState] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)
    error: dict[int, str | None] = field(default_factory=dict)
    updated_at: dict[int, float] = field(default_factory=dict)
    owner: dict[str, tuple[int, int]] = field(default_factory=dict)
    held: dict[str, list[Receipt]] = field(default_factory=dict)
    changes: list[StatusChange] = field(default_factory=list)
    callbacks: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for m, n in enumerate(self.journey.parts):
            self.status[m] = MessageStatus.ACCEPTED
            self.error[m] = None
            self.updated_at[m] = BASE_TIME
            for p in range(1, n + 1):
                self.parts[(m, p)] = PartState(MessageStatus.ACCEPTED)

    def run(self) -> Book:
        for batch in self.journey.batches:
            self.apply(batch)
        return self

    def apply(self, batch: Batch) -> list[StatusChange]:
        touched: dict[int, str] = {}
        for event in batch.events:
            if isinstance(event, Outcome):
                self._outcome(event, touched)
            elif isinstance(event, Receipt):
                self._receipt(event, touched)
            else:
                self._timeout(batch.at, touched)
        return self._settle(touched, batch.at)

    def _outcome(self, o: Outcome, touched: dict[int, str]) -> None:
        touched.setdefault(o.message, self.status[o.message])
        key = (o.message, o.part)
        part = ledger.begin_attempt(self.parts[key])
        held: list[Receipt] = []
        if o.key is not None and part.status not in ledger.FINAL:
            self.owner[o.key] = key
            held = self.held.pop(o.key, [])
        self.parts[key] = ledger.answer(
            part, o.status, o.error, [(r.status, r.error) for r in held]
        )

    def _receipt(self, r: Receipt, touched: dict[int, str]) -> None:
        owner = self.owner.get(r.key)
        if owner is None:
            self.held.setdefault(r.key, []).append(r)
            return
        touched.setdefault(owner[0], self.status[owner[0]])
        self.parts[owner] = ledger.apply_receipt(self.parts[owner], r.status, r.error)

    def _timeout(self, at: float, touched: dict[int, str]) -> None:
        for m, n in enumerate(self.journey.parts):
            if ledger.unreceipted_due(self.status[m], True, None, self.updated_at[m], at, at):
                touched.setdefault(m, self.status[m])
                for p in range(1, n + 1):
                    self.parts[(m, p)] = ledger.expire_unreceipted(self.parts[(m, p)])

    def _settle(self, touched: dict[int, str], at: float) -> list[StatusChange]:
        changes = []
        for m, before in touched.items():
            settled = ledger.settle(before, self.message_parts(m))
            if settled is None:
                continue
            self.status[m], self.error[m] = settled
            self.updated_at[m] = at
            change = StatusChange(
                message_id=message_id(m),
                status=settled.status,
                at=at,
                callback_url=CALLBACK_URL if self.journey.callbacks[m] else None,
                carrier=CARRIER,
                error=settled.error,
            )
            changes.append(change)
            callback = ledger.callback_of(change)
            if callback is not None:
                self.callbacks.append(callback)
        self.changes += changes
        return changes

    def message_parts(self, m: int) -> list[PartState]:
        return [self.parts[(m, p)] for p in range(1, self.journey.parts[m] + 1)]

    def end_state(self) -> dict[str, tuple[str, str | None, tuple[tuple[str, str | None], ...]]]:
        """Per message id: (status, error, ((part status, part error), ...)), statuses as
        clients see them (submitting shows as queued)."""
        return {
            message_id(m): (
                str(self.status[m]),
                self.error[m],
                tuple((ledger.counts_as(p.status).value, p.error) for p in self.message_parts(m)),
            )
            for m in range(len(self.journey.parts))
        }


def message_id(m: int) -> str:
    """A message id that sorts as the index does (and as ids made by time do)."""
    return f"{int(BASE_TIME * 1000):012x}{m:014x}"


def finals(changes: list[StatusChange]) -> list[StatusChange]:
    return [c for c in changes if c.status in FINAL_STATUSES]


__all__ = [
    "Batch",
    "Book",
    "Journey",
    "Outcome",
    "Receipt",
    "Timeout",
    "finals",
    "journeys",
    "message_id",
]
