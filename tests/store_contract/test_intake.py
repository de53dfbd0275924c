"""Contract: new messages (MessageIntake) and the opt-out check before them (OptOuts), on
every store the HTTP layer runs on, the API tests' fake included."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store.base import IdempotencyConflict, IdempotentAnswer, StoreError
from tests.fakes import new_message
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, message

pytestmark = pytest.mark.port("intake")


async def test_an_accepted_message_reads_back(backend: Harness) -> None:
    m = message(1, parts=2, client_ref="r1", account="acme")
    await backend.store.accept([m])
    view = await backend.store.get_message(m.id)
    assert view is not None
    assert (view.id, view.status, view.to, view.client_ref, view.account) == (
        m.id,
        "accepted",
        m.to,
        "r1",
        "acme",
    )
    assert [p.status for p in view.parts] == ["accepted", "accepted"]
    assert await backend.store.get_message("nope") is None


async def test_an_idempotent_answer_commits_with_its_messages_or_not_at_all(
    backend: Harness,
) -> None:
    answer = IdempotentAnswer("acme", "k1", "h1", 202, '{"id": "x"}', T0)
    m = message(1)
    await backend.store.accept([m], answer)
    assert await backend.store.find_idempotent("acme", "k1") == answer
    assert await backend.store.find_idempotent("other", "k1") is None
    again = message(2)
    with pytest.raises(IdempotencyConflict):
        await backend.store.accept([again], IdempotentAnswer("acme", "k1", "h2", 202, "{}", T0))
    assert await backend.store.get_message(again.id) is None
    assert await backend.store.find_idempotent("acme", "k1") == answer


async def test_a_message_id_is_never_taken_twice(backend: Harness) -> None:
    m = message(1)
    await backend.store.accept([m])
    twin = new_message("+33699999999", "another", id=m.id, now=T0 + 5, carrier="sim")
    other = message(2)
    results = await asyncio.gather(
        backend.store.accept([twin]), backend.store.accept([other]), return_exceptions=True
    )
    assert isinstance(results[0], StoreError) and results[1] is None, results
    view = await backend.store.get_message(m.id)
    assert view is not None and view.to == m.to
    assert await backend.store.get_message(other.id) is not None


async def test_opt_outs_by_sender_and_for_everything(backend: Harness) -> None:
    a, b, c = "+33600000001", "+33600000002", "+33600000003"
    await backend.store.add_opt_out(a, "ACME", "api", T0)
    await backend.store.add_opt_out(b, None, "api", T0)
    assert await backend.store.opted_out([a, b, c], "ACME") == {a, b}
    assert await backend.store.opted_out([a, b, c], "OTHER") == {b}
    await backend.store.remove_opt_out(a, "ACME")
    await backend.store.remove_opt_out(b, None)
    assert await backend.store.opted_out([a, b, c], "ACME") == set()
