"""Messages, outcomes and receipts for the contract tests (times from T0)."""

from __future__ import annotations

from gateway.core.model import IncomingReceipt, MessageStatus, NewMessage, SubmitOutcome
from tests.fakes import new_message

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


def key(m: NewMessage, part: int) -> str:
    return f"c-{m.id}-{part}"


def outcome(
    m: NewMessage, part: int, status: MessageStatus = S.SUBMITTED, **kw: object
) -> SubmitOutcome:
    values: dict[str, object] = {"at": T0 + 100}
    if status is S.SUBMITTED:
        values["carrier_message_id"] = key(m, part).upper()
        values["receipt_key"] = key(m, part)
    values.update(kw)
    return SubmitOutcome(m.id, part, "sim", status, **values)  # type: ignore[arg-type]


def receipt(
    receipt_key: str, status: MessageStatus = S.DELIVERED, at: float = T0 + 200, **kw: object
) -> IncomingReceipt:
    state = {S.DELIVERED: "DELIVRD", S.UNDELIVERABLE: "UNDELIV", S.SUBMITTED: "ENROUTE"}.get(
        status, status.value.upper()
    )
    return IncomingReceipt(
        "sim",
        receipt_key,
        receipt_key.upper(),
        status,
        state,
        at,
        **kw,  # type: ignore[arg-type]
    )


async def sent(store: object, *messages: NewMessage) -> None:
    """Accept, begin and submit every part of ``messages``."""
    await store.accept(list(messages))  # type: ignore[attr-defined]
    parts = [(m.id, p) for m in messages for p in range(1, m.parts + 1)]
    await store.begin_attempts(parts)  # type: ignore[attr-defined]
    await store.record_outcomes([outcome(m, p) for m in messages for p in range(1, m.parts + 1)])  # type: ignore[attr-defined]
