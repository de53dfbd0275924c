"""gateway.store.rows: the row conversions both store backends (SQLite, PostgreSQL) share."""

from __future__ import annotations

import json

import pytest

from gateway.core.model import IncomingReceipt, MessageStatus, Replacement
from gateway.store import rows
from gateway.store.base import FrontPart
from gateway.store.campaign_base import CampaignClick


def test_message_view_shows_submitting_as_queued_and_sorts_history() -> None:
    m = ("m1", "queued", "+100", "S", "gsm7", 10.0, "ref", None, "c1", 1, None, "acct")
    parts = [
        (1, "submitting", "c1", "x1", 2, None, 12.0),
        (2, "delivered", "c1", "x2", 1, None, None),
    ]
    receipts = [(2, "delivered", "DELIVRD", None, 11.0, "x2")]
    events = [(1, 13.0, "queued", json.dumps({"retry_at": 20.0}))]
    view = rows.message_view(m, parts, receipts, events)
    assert [p.status for p in view.parts] == ["queued", "delivered"]
    assert [(h.at, h.status) for h in view.history] == [
        (10.0, "accepted"),
        (11.0, "delivered"),
        (12.0, "submitted"),
        (13.0, "queued"),
    ]
    assert view.history[3].detail == {"retry_at": 20.0}
    assert view.possible_duplicate is True and view.account == "acct"


def test_receipt_rows_match_an_other_reading_and_keep_the_rest_unmatched() -> None:
    a = IncomingReceipt(
        "c1", "k1", "K1", MessageStatus.DELIVERED, "DELIVRD", 5.0, match_keys=("k1", "k1b")
    )
    b = IncomingReceipt("c1", "zz", "ZZ", MessageStatus.EXPIRED, "EXPIRED", 6.0, raw="r")
    owner = {("c1", "k1b"): ("m1", 2)}
    assert rows.other_receipt_keys([a, b], owner) == [("c1", "k1b")]
    got, matches = rows.receipt_rows([a, b], owner)
    assert matches == [("m1", 2), None]
    assert a.matched_key == "k1b" and b.matched_key is None
    assert got[0][1] == "k1b" and got[0][8:] == ("m1", 2)
    assert rows.resent_key(got[0]) is None
    assert rows.resent_key(got[1]) == ("c1", "zz", "expired", "EXPIRED", "r")


def test_front_part_status_takes_the_message_final_status_from_its_receipt() -> None:
    part = FrontPart("p2", "m1", "acct", "S", "+100", 7, 2, 2, b"", 1.0, "joined")
    carrier = [("delivered", 3.0), ("queued", None)]
    status = rows.front_part_status(part, MessageStatus.QUEUED, 2.0, ["p1", "p2"], carrier)
    assert (status.status, status.final_at) == (MessageStatus.QUEUED, None)
    status = rows.front_part_status(part, MessageStatus.EXPIRED, 9.0, ["p1", "p2"], carrier)
    assert (status.status, status.final_at) == (MessageStatus.EXPIRED, 9.0)


def test_resent_unmatched_receipts_are_kept_once_and_matched_rows_pass() -> None:
    # (carrier, key, cmid, status, state, error, raw, received_at, message_id, part)
    unmatched = ("c1", "k9", "K9", "delivered", "DELIVRD", None, "raw9", 5.0, None, None)
    again = ("c1", "k9", "K9", "delivered", "DELIVRD", None, "raw9", 6.0, None, None)
    other = ("c1", "k8", "K8", "expired", "EXPIRED", None, "raw8", 7.0, None, None)
    matched = ("c1", "k1", "K1", "delivered", "DELIVRD", None, "raw1", 8.0, "m1", 1)
    candidates, keys = rows.resent_once([unmatched, matched, again, other, matched])
    assert keys == [
        ("c1", "k9", "delivered", "DELIVRD", "raw9"),
        ("c1", "k8", "expired", "EXPIRED", "raw8"),
    ]
    # The store keeps k8 already: its row goes; the first k9 stays, its repeat is gone.
    assert rows.not_kept(candidates, [keys[1]]) == [unmatched, matched, matched]
    assert rows.not_kept(candidates, []) == [unmatched, matched, other, matched]


def test_front_outbox_rows_are_due_at_once() -> None:
    got = rows.front_outbox_rows([("acct", "receipt", "{}")], 12.5)
    assert got == [("acct", "receipt", "{}", 12.5, 12.5)]


def test_record_fills_fields_in_order_converting_the_named_ones() -> None:
    click = rows.record(CampaignClick, (7, 1.5, "+100", "abc", None, "ua", 1), bot=bool)
    assert click == CampaignClick(7, 1.5, "+100", "abc", None, "ua", True)
    # A shorter row leaves the last fields at their defaults (MessageRow.text).
    row = rows.message_row(
        ("m1", "queued", "+1", "S", "gsm7", 1, None, None, None, 0, None, 1.0, 2.0, "acct")
    )
    assert row.possible_duplicate is False and row.text is None and row.account == "acct"
    with pytest.raises(ValueError, match="8 columns for 7 fields"):
        rows.record(CampaignClick, (7, 1.5, "+100", "abc", None, "ua", 1, "extra"))


def test_interaction_campaign_and_import_read_their_json_columns() -> None:
    received = (1, "c1", "+1", "+2", "hi", 0, 2, 1, "[2]", 5.0, 6.0, "pending")
    interaction = rows.interaction(
        (*received, None, None, None, '[{"kind": "reply"}]', None, 0, None, "open", None)
    )
    assert interaction.missing == (2,) and interaction.actions == [{"kind": "reply"}]
    campaign = rows.campaign(("c", "n", "S", "t", '{"lists": [1]}', "draft", 1.0))
    assert campaign.spec == {"lists": [1]} and campaign.recipients == 0
    job = rows.import_job(("i", 1, "done", "web", 1.0, 3, 2, 1, '[{"row": 2}]'))
    assert job.errors == [{"row": 2}] and job.finished_at is None


def test_a_replacement_of_another_length_rebuilds_the_parts_from_the_old_ones() -> None:
    old = [(1, "queued", 2, 50.0), (2, "accepted", 3, None)]
    new = Replacement("hello", "gsm7", 3, None, 99.0, None)
    assert rows.replaced_parts("m1", old, 3) == [
        ("m1", 1, "queued", 3, 50.0),
        ("m1", 2, "queued", 3, 50.0),
        ("m1", 3, "queued", 3, 50.0),
    ]
    assert rows.replaced_parts("m1", old, 2) == []  # same length: the rows stay
    message_id, at, status, detail = rows.replaced_event("m1", old, new, 7.0)
    assert (message_id, at, status) == ("m1", 7.0, "queued")
    assert json.loads(detail) == {
        "replaced": "replace_sm",
        "parts": 3,
        "scheduled_at": None,
        "validity_until": 99.0,
    }
    assert rows.replacement_row("m1", new, 7.0) == ("hello", "gsm7", 3, None, 99.0, None, 7.0, "m1")


def test_messages_taken_over_name_the_lapsed_node_and_flag_the_requeued() -> None:
    columns = ("S", "hi", "gsm7", "c1", 0, 1.0, None, None, 1, 0)  # sender .. possible_duplicate
    taken = rows.taken_over([("m1", "+1", *columns, "gw-b"), ("m2", "+2", *columns, None)], ["m1"])
    assert [(m.id, m.taken_from, m.possible_duplicate) for m in taken.values()] == [
        ("m1", "gw-b", True),
        ("m2", None, False),
    ]
