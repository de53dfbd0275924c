"""Contract: cancel_sm, replace_sm and query_sm of the SMPP front (``MessageEdits``): an
edit acts only on a message of its account none of whose parts has left, in one commit with
what it emits."""

from __future__ import annotations

import json

import pytest

from gateway.core.model import CANCELLED, MessageStatus, Replacement
from gateway.store.base import EDIT_DONE, EDIT_REFUSED, EDIT_UNKNOWN
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0, message, outcome

pytestmark = pytest.mark.port("edits")

ACCOUNT = "crm"


async def test_a_cancel_fails_the_message_with_its_callback_in_the_same_commit(
    backend: Harness,
) -> None:
    m = message(1, parts=2, account=ACCOUNT, callback_url="http://crm.example/cb")
    await backend.store.accept([m])
    answer, changes = await backend.store.cancel_message(m.id, ACCOUNT, T0 + 50)
    assert answer == EDIT_DONE
    assert [(c.message_id, c.status, c.error) for c in changes] == [
        (m.id, MessageStatus.FAILED, CANCELLED)
    ]
    await backend.reopen()  # committed, not only answered
    summary = await backend.store.message_summary(m.id)
    assert summary is not None
    assert (summary.status, summary.error, summary.updated_at) == ("failed", CANCELLED, T0 + 50)
    view = await backend.store.get_message(m.id)
    assert view is not None and {p.status for p in view.parts} == {"failed"}
    assert [h.status for h in view.history][-1] == "failed"
    [callback] = await backend.store.callbacks_due(T0 + 60, 10)
    assert callback.url == "http://crm.example/cb"
    payload = json.loads(callback.payload)
    assert (payload["id"], payload["status"]) == (m.id, "failed")
    # Final now: not loaded for sending, and a second cancel is too late.
    assert m.id not in {p.id for p in await backend.store.load_pending(None, 10, T0 + 60)}
    assert (await backend.store.cancel_message(m.id, ACCOUNT, T0 + 70))[0] == EDIT_REFUSED


async def test_an_edit_refuses_a_message_handed_over_and_knows_only_its_account(
    backend: Harness,
) -> None:
    begun, sent, theirs = (
        message(1, account=ACCOUNT),
        message(2, account=ACCOUNT),
        message(3, account="erp"),
    )
    await backend.store.accept([begun, sent, theirs])
    await backend.store.begin_attempts([(begun.id, 1), (sent.id, 1)])
    await backend.store.record_outcomes([outcome(sent, 1)])
    new = Replacement("other", "gsm7", 1, None, None, None)
    for m in (begun, sent):
        assert (await backend.store.cancel_message(m.id, ACCOUNT, T0 + 50))[0] == EDIT_REFUSED
        assert await backend.store.replace_message(m.id, ACCOUNT, new, T0 + 50) == EDIT_REFUSED
    assert (await backend.store.cancel_message(theirs.id, ACCOUNT, T0 + 50))[0] == EDIT_UNKNOWN
    assert await backend.store.replace_message(theirs.id, ACCOUNT, new, T0 + 50) == EDIT_UNKNOWN
    assert (await backend.store.cancel_message("no-such-id", ACCOUNT, T0 + 50))[0] == EDIT_UNKNOWN
    # Nothing changed by the refusals.
    view = await backend.store.get_message(theirs.id)
    assert view is not None and view.status == "accepted"
    summary = await backend.store.message_summary(sent.id)
    assert summary is not None and summary.status == "submitted"
    assert await backend.store.message_summary("no-such-id") is None


async def test_a_replace_changes_the_text_and_the_part_rows_follow(backend: Harness) -> None:
    m = message(1, account=ACCOUNT)
    await backend.store.accept([m])
    new = Replacement("x" * 400, "gsm7", 3, T0 + 500, T0 + 9000, "http://crm.example/new")
    assert await backend.store.replace_message(m.id, ACCOUNT, new, T0 + 50) == EDIT_DONE
    await backend.reopen()
    summary = await backend.store.message_summary(m.id)
    assert summary is not None
    assert (
        summary.status,
        summary.scheduled_at,
        summary.validity_until,
        summary.callback_url,
        summary.updated_at,
    ) == ("accepted", T0 + 500, T0 + 9000, "http://crm.example/new", T0 + 50)
    view = await backend.store.get_message(m.id)
    assert view is not None and [p.part for p in view.parts] == [1, 2, 3]
    [pending] = await backend.store.load_pending(None, 10, T0 + 60)
    assert (pending.text, pending.scheduled_at) == ("x" * 400, T0 + 500)
    assert pending.pending_parts in (None, (1, 2, 3))  # every part is still to send
    # Back to one part: one row again; the message is still editable and cancellable.
    short = Replacement("short", "gsm7", 1, None, None, None)
    assert await backend.store.replace_message(m.id, ACCOUNT, short, T0 + 60) == EDIT_DONE
    view = await backend.store.get_message(m.id)
    assert view is not None and [p.part for p in view.parts] == [1]
    assert (await backend.store.cancel_message(m.id, ACCOUNT, T0 + 70))[0] == EDIT_DONE
