"""The callback sender reads its outbox when a status change has queued a callback (a final
status of a message with an HTTP callback_url), not on every change of bulk traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.model import MessageStatus, StatusChange
from gateway.engine.callbacks import CallbackSender
from gateway.store.sqlite import SqliteStore

S = MessageStatus


def _change(status: MessageStatus, url: str | None) -> StatusChange:
    return StatusChange(message_id="m1", status=status, at=1.0, callback_url=url)


@pytest.mark.parametrize(
    ("changes", "woken"),
    [
        ([_change(S.DELIVERED, "https://example.test/cb")], True),
        ([_change(S.FAILED, "http://127.0.0.1:9/cb")], True),
        ([_change(S.SUBMITTED, None), _change(S.REJECTED, "https://example.test/cb")], True),
        ([_change(S.SUBMITTED, "https://example.test/cb")], False),
        ([_change(S.QUEUED, "https://example.test/cb")], False),
        ([_change(S.DELIVERED, None)], False),
        ([_change(S.DELIVERED, "smpp:acme?rd=1")], False),  # the front outbox's, not ours
        ([], False),
    ],
)
async def test_wakes_only_for_a_queued_callback(
    tmp_path: Path, changes: list[StatusChange], woken: bool
) -> None:
    sender = CallbackSender(SqliteStore(tmp_path / "unused.db"))
    sender._wake.clear()
    sender.notify_changes(changes)
    assert sender._wake.is_set() is woken
