"""The simulator's MO load (smsc_simulator.moload): request checks, reply matching, pacing."""

from __future__ import annotations

import asyncio

from smsc_simulator.moload import MoLoad, parse_load, run_load


def test_a_load_request_lists_every_error() -> None:
    _, errors = parse_load({"to": "", "text": 5, "count": 0, "rate": -1, "extra": 1})
    assert errors == [
        "extra: unknown field",
        "to: required, an address of at most 20 ASCII characters",
        "text: required, 1..160 characters (one part)",
        "count: must be an integer 1..10000000",
        "rate: must be a number above 0 and at most 1e+06",
    ]
    values, errors = parse_load({"to": "36180", "text": "YES", "count": 3, "rate": 100})
    assert errors == []
    assert values["first_from"] == 4915200000000


def test_a_reply_is_matched_to_its_mo_by_the_sender_with_or_without_plus() -> None:
    load = MoLoad(count=2, started_at=100.0)
    load.sent("+4915200000000", 100.5)
    load.sent("+4915200000001", 100.6)
    load.submit_seen("4915200000000", 100.52)  # the gateway writes it without '+'
    load.submit_seen("+4915299999999", 100.7)  # not a reply to any MO
    load.submit_seen("4915200000000", 100.9)  # a second MT to the same number: not a reply
    doc = load.to_json()
    assert doc["replies"] == 1 and doc["unanswered"] == 1 and doc["queued"] == 2
    assert abs(doc["p50_ms"] - 20.0) < 1e-6 and doc["p99_ms"] == doc["p50_ms"]
    assert abs(doc["first_mo_s"] - 0.5) < 1e-9 and abs(doc["last_reply_s"] - 0.52) < 1e-9


def test_run_load_sends_each_sender_once_in_order() -> None:
    load = MoLoad(count=25)
    sent: list[str] = []
    asyncio.run(run_load(load, sent.append, first_from=4915200000000, count=25, rate=1000.0))
    assert sent == [f"+{4915200000000 + i}" for i in range(25)]
    assert load.queued == 25 and len(load.waiting) == 25
