"""POST /v1/messages/batch: one transaction, answers in order, refused whole on any bad item."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_fakes import make_config, running_api


def item(n: int, **changes: Any) -> dict[str, Any]:
    return {"to": f"+336123456{n:02d}", "from": "ACME", "text": f"Message {n}", **changes}


def details(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body["error"]["details"])


async def test_a_batch_is_one_accept_with_answers_in_order() -> None:
    items = [item(n) for n in range(5)]
    items[2]["text"] = "Привет"
    async with running_api() as api:
        got = await api.post("/v1/messages/batch", {"messages": items})
        assert got.status == 202
        answers = got.body["messages"]
        assert [a["to"] for a in answers] == [f"+336123456{n:02d}" for n in range(5)]
        assert [a["encoding"] for a in answers] == ["gsm7", "gsm7", "ucs2", "gsm7", "gsm7"]
        assert len({a["id"] for a in answers}) == 5
        assert len(api.store.accept_calls) == 1
        assert [m.id for m in api.store.accept_calls[0]] == [a["id"] for a in answers]
        assert [m.id for m in api.outbound.enqueued] == [a["id"] for a in answers]
        assert api.events == ["accept.start", "accept.done", "enqueue", "response"]


async def test_one_bad_item_refuses_the_whole_batch_listing_each_bad_item() -> None:
    items = [item(0), item(1, to="+3361"), item(2), "not an object", item(4, priority=12, text="")]
    async with running_api() as api:
        got = await api.post("/v1/messages/batch", {"messages": items})
        assert got.status == 400
        assert got.body["error"]["code"] == "invalid_request"
        assert [(d["index"], d["path"]) for d in details(got.body)] == [
            (1, "messages[1].to"),
            (3, "messages[3]"),
            (4, "messages[4].text"),
            (4, "messages[4].priority"),
        ]
        assert api.store.accept_calls == []
        assert api.outbound.enqueued == []


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        ([item(0)], "", "JSON object with a 'messages' array"),
        ({}, "messages", "is required"),
        ({"messages": {"0": item(0)}}, "messages", "must be an array"),
        ({"messages": []}, "messages", "at least one"),
        ({"messages": [item(0)], "mesages": []}, "mesages", "unknown field"),
    ],
)
async def test_a_malformed_batch_is_refused(body: Any, path: str, words: str) -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages/batch", body)
        assert got.status == 400
        found = {d["path"]: d["message"] for d in details(got.body)}
        assert path in found
        assert words in found[path]


async def test_opted_out_items_refuse_the_batch_with_their_indices() -> None:
    items = [item(0), item(1), item(2, **{"from": "OTHER"}), item(1, **{"from": "OTHER"})]
    async with running_api() as api:
        api.store.opt_outs.add(("+33612345601", "ACME"))
        got = await api.post("/v1/messages/batch", {"messages": items})
        assert got.status == 422
        assert got.body["error"]["code"] == "opted_out"
        assert [(d["index"], d["path"]) for d in details(got.body)] == [(1, "messages[1].to")]
        # One question per distinct sender, each number once.
        assert sorted(api.store.opted_out_calls) == [
            (["+33612345600", "+33612345601"], "ACME"),
            (["+33612345601", "+33612345602"], "OTHER"),
        ]
        assert api.store.accept_calls == []


async def test_a_batch_retried_with_its_key_is_answered_from_the_first() -> None:
    body = {"messages": [item(0), item(1)]}
    async with running_api() as api:
        key = {"Idempotency-Key": "batch-7"}
        first = await api.post("/v1/messages/batch", body, headers=key)
        again = await api.post("/v1/messages/batch", body, headers=key)
        assert again.text == first.text
        assert len(api.store.messages) == 2
        other = await api.post("/v1/messages/batch", {"messages": [item(0)]}, headers=key)
        assert other.status == 422
        assert other.body["error"]["code"] == "idempotency_mismatch"


async def test_a_key_used_on_one_path_does_not_replay_on_another() -> None:
    async with running_api() as api:
        key = {"Idempotency-Key": "k"}
        await api.post("/v1/messages", item(0), headers=key)
        got = await api.post("/v1/messages/batch", {"messages": [item(0)]}, headers=key)
        assert got.status == 422


async def test_10000_messages_go_in_one_accept_and_10001_are_refused() -> None:
    config = make_config(max_body_bytes=4 * 1024 * 1024)
    async with running_api(config=config) as api:
        full = [item(n % 100) for n in range(10_000)]
        got = await api.post("/v1/messages/batch", {"messages": full})
        assert got.status == 202
        assert len(got.body["messages"]) == 10_000
        assert [len(call) for call in api.store.accept_calls] == [10_000]
        over = await api.post("/v1/messages/batch", {"messages": [*full, item(0)]})
        assert over.status == 400
        assert "at most 10000" in details(over.body)[0]["message"]
