"""POST /v1/messages and GET /v1/messages/{id}: checks, normalisation, encodings, opt-out,
durability order, idempotency, and the message view."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.core.model import HistoryEntry, MessageView, PartView
from gateway.http.messages import OptOutReads
from gateway.store.base import StoreError
from tests.api_fakes import NOW, OTHER_TOKEN, FakeStore, carrier, make_config, running_api

GOOD: dict[str, Any] = {"to": "+33612345678", "from": "ACME", "text": "Hello"}


def message(**changes: Any) -> dict[str, Any]:
    body = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def paths(answer_body: dict[str, Any]) -> dict[str, str]:
    return {d["path"]: d["message"] for d in answer_body["error"]["details"]}


# -- acceptance ---------------------------------------------------------------------------


async def test_a_valid_message_is_accepted_with_id_parts_and_encoding() -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", GOOD)
        assert got.status == 202
        assert got.body["status"] == "accepted"
        assert got.body["parts"] == 1
        assert got.body["encoding"] == "gsm7"
        assert got.body["to"] == "+33612345678"
        stored = api.store.messages[got.body["id"]]
        assert stored.account == "acme"
        assert stored.carrier == "alpha"
        assert stored.created_at == NOW
        assert stored.validity_until == NOW + api.config.messages.default_validity
        assert stored.priority == 0
        assert api.outbound.enqueued == [stored]


async def test_every_optional_field_reaches_the_stored_message() -> None:
    body = message(
        client_ref="order-42",
        callback_url="https://example.com/hook?x=1",
        validity=3600,
        scheduled_at="2030-03-17T19:46:40+01:00",  # NOW + 1 h, written with an offset
        priority=7,
        encoding="ucs2",
        campaign_id="spring",
    )
    async with running_api() as api:
        got = await api.post("/v1/messages", body)
        assert got.status == 202, got.body
        stored = api.store.messages[got.body["id"]]
        assert stored.client_ref == "order-42"
        assert stored.callback_url == "https://example.com/hook?x=1"
        assert stored.scheduled_at == NOW + 3600
        # A scheduled message's validity runs from its schedule, not from intake.
        assert stored.validity_until == NOW + 3600 + 3600
        assert stored.priority == 7
        assert stored.encoding == "ucs2"
        assert stored.campaign_id == "spring"


async def test_scheduled_at_takes_epoch_seconds_and_a_past_time_means_now() -> None:
    async with running_api() as api:
        later = await api.post("/v1/messages", message(scheduled_at=NOW + 60))
        past = await api.post("/v1/messages", message(scheduled_at="2001-01-01T00:00:00Z"))
        assert api.store.messages[later.body["id"]].scheduled_at == NOW + 60
        assert api.store.messages[past.body["id"]].scheduled_at is None


async def test_null_optional_fields_mean_left_out() -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", message(client_ref=None, priority=None))
        assert got.status == 202
        assert api.store.messages[got.body["id"]].priority == 0


# -- numbers and senders ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "e164"),
    [
        ("+33612345678", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("+370862511724", "+37062511724"),  # national prefix after the country code
        ("+390612345678", "+390612345678"),  # Italian leading zero kept
    ],
)
async def test_to_is_normalised_to_e164(given: str, e164: str) -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", message(to=given))
        assert got.status == 202, got.body
        assert got.body["to"] == e164
        assert api.store.messages[got.body["id"]].to == e164


async def test_national_numbers_need_a_default_region() -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", message(to="06 12 34 56 78"))
        assert got.status == 400
        assert "international format" in paths(got.body)["to"]
    async with running_api(config=make_config(default_region="FR")) as api:
        national = await api.post("/v1/messages", message(to="06 12 34 56 78"))
        international = await api.post("/v1/messages", message(to="+14155552671"))
        assert national.body["to"] == "+33612345678"
        assert international.body["to"] == "+14155552671"


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("+3361234", "not a valid phone number for country code +33"),
        ("+999123456789", "no known country code"),
        ("+33 6 12 34 AB", "only digits"),
        ("1-800-FLOWERS", "only digits"),
        ("+" + "1" * 40, "too long"),
        ("+33612345678;ext=1", "only digits"),
    ],
)
async def test_invalid_numbers_are_refused_with_a_reason(given: str, words: str) -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", message(to=given))
        assert got.status == 400
        assert words in paths(got.body)["to"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("36180", "36180"),  # short code
        ("123", "123"),
        ("12345678", "12345678"),
        ("+44 20 7946 0958", "+442079460958"),  # long number, normalised
        ("ACME", "ACME"),
        ("Acme Shop 1", "Acme Shop 1"),  # 11 characters with spaces
    ],
)
async def test_sender_kinds(given: str, stored: str) -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", message(**{"from": given}))
        assert got.status == 202, got.body
        assert api.store.messages[got.body["id"]].sender == stored


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("12", "short code has 3 to 8 digits"),
        ("ACME SHOP 12", "at most 11 characters"),
        ("ACMÉ", "only the letters"),
        ("ACME!", "only the letters"),
        (" ACME", "start or end with a space"),
        ("123456789", "international format"),  # too long for a short code, no region
    ],
)
async def test_bad_senders_are_refused(given: str, words: str) -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", message(**{"from": given}))
        assert got.status == 400
        assert words in paths(got.body)["from"]


# -- field errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"to": ...}, "to", "is required"),
        ({"to": None}, "to", "is required"),
        ({"to": 33612345678}, "to", "must be a string"),
        ({"to": ""}, "to", "must not be empty"),
        ({"from": ...}, "from", "is required"),
        ({"from": ["ACME"]}, "from", "must be a string"),
        ({"text": ...}, "text", "is required"),
        ({"text": ""}, "text", "must not be empty"),
        ({"text": 5}, "text", "must be a string"),
        ({"client_ref": "x" * 65}, "client_ref", "at most 64"),
        ({"client_ref": ""}, "client_ref", "must not be empty"),
        ({"client_ref": "a\nb"}, "client_ref", "control characters"),
        ({"client_ref": 12}, "client_ref", "must be a string"),
        ({"campaign_id": "c" * 65}, "campaign_id", "at most 64"),
        ({"callback_url": "ftp://example.com/"}, "callback_url", "http:// or https://"),
        ({"callback_url": "https:///nohost"}, "callback_url", "must name a host"),
        ({"callback_url": "http://example.com:99999/"}, "callback_url", "not a valid URL"),
        ({"callback_url": "http://exa mple.com/"}, "callback_url", "spaces"),
        ({"callback_url": 7}, "callback_url", "must be a string"),
        ({"validity": 59}, "validity", "60..604800"),
        ({"validity": 604801}, "validity", "60..604800"),
        ({"validity": 90.5}, "validity", "whole number"),
        ({"validity": "3600"}, "validity", "whole number"),
        ({"validity": True}, "validity", "whole number"),
        ({"scheduled_at": "tomorrow"}, "scheduled_at", "ISO-8601"),
        ({"scheduled_at": "2030-01-01T10:00:00"}, "scheduled_at", "UTC offset"),
        ({"scheduled_at": NOW * 1000}, "scheduled_at", "at most a year ahead"),
        ({"scheduled_at": 10**400}, "scheduled_at", "finite"),
        ({"scheduled_at": False}, "scheduled_at", "ISO-8601 string or a number"),
        ({"priority": 10}, "priority", "0..9"),
        ({"priority": -1}, "priority", "0..9"),
        ({"priority": 1.5}, "priority", "integer"),
        ({"priority": True}, "priority", "integer"),
        ({"encoding": "utf8"}, "encoding", "auto, gsm7, ucs2, latin1"),
        ({"encoding": "gsm7", "text": "Привет"}, "text", "cannot be encoded in gsm7"),
        ({"encoding": "latin1"}, "encoding", "not set up for latin1"),
        ({"txet": "typo"}, "txet", "unknown field"),
    ],
)
async def test_each_field_error_names_its_field(
    changes: dict[str, Any], path: str, words: str
) -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", message(**changes))
        assert got.status == 400
        assert got.body["error"]["code"] == "invalid_request"
        errors = paths(got.body)
        assert list(errors) == [path]
        assert words in errors[path]
        assert api.store.accept_calls == []


async def test_every_field_error_is_listed_at_once() -> None:
    body = {
        "to": "+3361234",
        "from": "way too long sender",
        "text": "€" * 2000,
        "client_ref": "",
        "callback_url": "mailto:x@example.com",
        "validity": 1,
        "scheduled_at": "soon",
        "priority": 99,
        "campaign_id": 3,
        "extra": 1,
    }
    async with running_api() as api:
        got = await api.post("/v1/messages", body)
        assert got.status == 400
        assert set(paths(got.body)) == {
            "to",
            "from",
            "text",
            "client_ref",
            "callback_url",
            "validity",
            "scheduled_at",
            "priority",
            "campaign_id",
            "extra",
        }
        assert "10 field errors" in got.body["error"]["message"]


async def test_a_body_that_is_not_an_object_is_refused() -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", ["to", "from"])
        assert got.status == 400
        assert paths(got.body) == {"": "must be a JSON object"}


# -- encodings and parts ------------------------------------------------------------------


async def test_400_gsm_characters_with_euro_and_bracket_make_3_gsm7_parts() -> None:
    text = ("Only 5€ today [promo] " + "Lorem ipsum dolor sit amet. " * 15)[:400]
    assert len(text) == 400  # 402 septets: '€' and '[' take two each; 153 fit per part
    async with running_api() as api:
        got = await api.post("/v1/messages", message(text=text))
        assert (got.status, got.body["encoding"], got.body["parts"]) == (202, "gsm7", 3)


async def test_200_cyrillic_characters_make_3_ucs2_parts() -> None:
    text = ("Привет мир " * 20)[:200]
    async with running_api() as api:
        got = await api.post("/v1/messages", message(text=text))
        assert (got.status, got.body["encoding"], got.body["parts"]) == (202, "ucs2", 3)


async def test_latin1_is_chosen_only_where_the_carrier_takes_it() -> None:
    text = "Grüße, Ça va? ¿Qué tal? ¥ Ë"  # Ë is Latin-1, not GSM 03.38
    config = make_config(carriers=[carrier("alpha", latin1=True)])
    async with running_api(config=config) as api:
        got = await api.post("/v1/messages", message(text=text))
        assert got.body["encoding"] == "latin1"
        forced = await api.post("/v1/messages", message(text="Hi", encoding="latin1"))
        assert forced.body["encoding"] == "latin1"
    async with running_api() as api:
        got = await api.post("/v1/messages", message(text=text))
        assert got.body["encoding"] == "ucs2"


async def test_the_parts_follow_the_chosen_carriers_concatenation() -> None:
    text = "x" * 153 * 2  # exactly two UDH8 parts; SAR parts hold 152
    config = make_config(
        carriers=[
            carrier("alpha"),
            carrier("beta", concat="sar"),
            carrier("gamma", concat="payload"),
        ]
    )
    counts = {}
    for name in ("alpha", "beta", "gamma"):
        async with running_api(config=config, up={name}) as api:
            got = await api.post("/v1/messages", message(text=text))
            assert api.store.messages[got.body["id"]].carrier == name
            counts[name] = got.body["parts"]
    assert counts == {"alpha": 2, "beta": 3, "gamma": 1}


async def test_more_parts_than_max_parts_is_refused() -> None:
    async with running_api(config=make_config(max_parts=2)) as api:
        fits = await api.post("/v1/messages", message(text="x" * 306))
        over = await api.post("/v1/messages", message(text="x" * 307))
        assert fits.status == 202
        assert over.status == 400
        assert "needs 3 parts as gsm7, at most 2" in paths(over.body)["text"]


async def test_a_payload_carrier_still_counts_segments_against_max_parts() -> None:
    config = make_config(carriers=[carrier("alpha", concat="payload")], max_parts=2)
    async with running_api(config=config) as api:
        over = await api.post("/v1/messages", message(text="x" * 307))
        assert over.status == 400
        assert "needs 3 parts" in paths(over.body)["text"]


# -- opt-out ------------------------------------------------------------------------------


async def test_an_opted_out_destination_is_refused_with_422() -> None:
    async with running_api() as api:
        api.store.opt_outs.add(("+33612345678", "ACME"))
        got = await api.post("/v1/messages", GOOD)
        assert got.status == 422
        assert got.body["error"]["code"] == "opted_out"
        other_sender = await api.post("/v1/messages", message(**{"from": "OTHER"}))
        assert other_sender.status == 202
        assert api.store.opted_out_calls[0] == (["+33612345678"], "ACME")
        assert len(api.store.messages) == 1


async def test_an_opt_out_of_everything_refuses_every_sender() -> None:
    async with running_api() as api:
        api.store.opt_outs.add(("+33612345678", None))
        got = await api.post("/v1/messages", message(**{"from": "OTHER"}))
        assert got.status == 422


async def test_opt_out_checks_of_one_loop_turn_share_one_read_per_sender() -> None:
    """The single-message POSTs that reach the opt-out check in the same turn are answered
    by one store read per sender, each with its own answer."""
    store = FakeStore([])
    store.opt_outs |= {("+33600000002", "ACME"), ("+33600000003", None)}
    reads = OptOutReads(store)  # type: ignore[arg-type]
    asks = [
        ("+33600000001", "ACME"),
        ("+33600000002", "ACME"),
        ("+33600000003", "ACME"),
        ("+33600000002", "OTHER"),
        ("+33600000003", "OTHER"),
        ("+33600000001", "ACME"),
    ]
    answers = await asyncio.gather(*(reads.opted_out(n, s) for n, s in asks))
    assert answers == [False, True, True, False, True, False]
    assert sorted(store.opted_out_calls) == [
        (["+33600000001", "+33600000002", "+33600000003"], "ACME"),
        (["+33600000002", "+33600000003"], "OTHER"),
    ]
    assert reads.reads == 2
    # The next turn reads again: nothing is remembered between turns.
    store.opt_outs.add(("+33600000001", "ACME"))
    assert await reads.opted_out("+33600000001", "ACME") is True
    assert reads.reads == 3


async def test_a_failed_shared_opt_out_read_fails_each_request_that_waited() -> None:
    store = FakeStore([])

    async def broken(numbers: list[str], sender: str) -> set[str]:
        raise StoreError("disk I/O error")

    store.opted_out = broken  # type: ignore[method-assign]
    reads = OptOutReads(store)  # type: ignore[arg-type]
    got = await asyncio.gather(
        reads.opted_out("+33600000001", "ACME"),
        reads.opted_out("+33600000002", "ACME"),
        return_exceptions=True,
    )
    assert [type(g) for g in got] == [StoreError, StoreError]


async def test_concurrent_posts_each_get_their_own_opt_out_answer() -> None:
    async with running_api() as api:
        api.store.opt_outs.add(("+33612345671", "ACME"))
        numbers = [f"+3361234567{n}" for n in range(10)]
        got = await asyncio.gather(*(api.post("/v1/messages", message(to=n)) for n in numbers))
        assert [g.status for g in got] == [202, 422] + [202] * 8
        assert len(api.store.messages) == 9


# -- durability ---------------------------------------------------------------------------


async def test_accept_completes_before_enqueue_and_before_the_answer() -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", GOOD)
        assert got.status == 202
        assert api.events == ["accept.start", "accept.done", "enqueue", "response"]


async def test_a_store_failure_answers_503_and_enqueues_nothing() -> None:
    async with running_api() as api:
        api.store.accept_error = StoreError("disk I/O error")
        got = await api.post("/v1/messages", GOOD)
        assert got.status == 503
        assert got.body["error"]["code"] == "store_unavailable"
        assert api.outbound.enqueued == []
        assert "enqueue" not in api.events


async def test_a_failing_dispatcher_does_not_undo_an_accepted_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_api() as api:
        api.outbound.error = RuntimeError("queue closed")
        got = await api.post("/v1/messages", GOOD)
        assert got.status == 202
        assert got.body["id"] in api.store.messages
        assert "api.enqueue_failed" in caplog.text


async def test_an_unexpected_error_is_a_json_500() -> None:
    async with running_api() as api:
        api.store.accept_error = RuntimeError("bug")
        got = await api.post("/v1/messages", GOOD)
        assert got.status == 500
        assert got.body["error"]["code"] == "internal_error"
        assert "bug" not in got.text


# -- idempotency --------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_gets_the_first_answer_and_no_new_message() -> None:
    async with running_api() as api:
        key = {"Idempotency-Key": "order-42-try"}
        first = await api.post("/v1/messages", GOOD, headers=key)
        again = await api.post("/v1/messages", GOOD, headers=key)
        assert first.status == again.status == 202
        assert again.text == first.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert len(api.store.messages) == 1
        assert len(api.store.accept_calls) == 1
        assert len(api.outbound.enqueued) == 1
        stored = api.store.answers[("acme", "order-42-try")]
        assert (stored.status, stored.body) == (202, first.text)


async def test_the_same_key_with_another_body_is_refused() -> None:
    async with running_api() as api:
        key = {"Idempotency-Key": "k1"}
        await api.post("/v1/messages", GOOD, headers=key)
        other = await api.post("/v1/messages", message(text="Other"), headers=key)
        assert other.status == 422
        assert other.body["error"]["code"] == "idempotency_mismatch"
        assert len(api.store.messages) == 1


async def test_keys_belong_to_one_token() -> None:
    async with running_api() as api:
        key = {"Idempotency-Key": "shared"}
        first = await api.post("/v1/messages", GOOD, headers=key)
        second = await api.post("/v1/messages", GOOD, headers=key, token=OTHER_TOKEN)
        assert first.body["id"] != second.body["id"]
        assert api.store.messages[second.body["id"]].account == "beta"


async def test_a_concurrent_twin_that_loses_the_race_replays_the_winner() -> None:
    async with running_api() as api:
        gate = asyncio.Event()
        api.store.accept_gate = gate
        key = {"Idempotency-Key": "race"}
        both = asyncio.gather(
            api.post("/v1/messages", GOOD, headers=key),
            api.post("/v1/messages", GOOD, headers=key),
        )
        for _ in range(2):  # both passed find_idempotent and reached accept
            await api.store.accepts_started.get()
        gate.set()
        one, two = await both
        assert one.status == two.status == 202
        assert one.body["id"] == two.body["id"]
        assert len(api.store.messages) == 1
        assert len(api.outbound.enqueued) == 1


@pytest.mark.parametrize("key", ["", "x" * 129, "bad key", "clé"])
async def test_a_bad_idempotency_key_is_refused(key: str) -> None:
    async with running_api() as api:
        got = await api.request(
            "POST",
            "/v1/messages",
            json=GOOD,
            headers={"Idempotency-Key": key.encode("utf-8").decode("latin-1")},
        )
        assert got.status == 400
        assert list(paths(got.body)) == ["headers.Idempotency-Key"]


async def test_errors_are_not_remembered_under_the_key() -> None:
    async with running_api() as api:
        key = {"Idempotency-Key": "fix-and-retry"}
        bad = await api.post("/v1/messages", message(to="nope"), headers=key)
        good = await api.post("/v1/messages", GOOD, headers=key)
        assert (bad.status, good.status) == (400, 202)


# -- GET ----------------------------------------------------------------------------------


async def test_get_shows_an_accepted_message() -> None:
    async with running_api() as api:
        body = message(client_ref="r1", campaign_id="c1", text="y" * 200)
        posted = await api.post("/v1/messages", body)
        got = await api.get(f"/v1/messages/{posted.body['id']}")
        assert got.status == 200
        view = got.body
        assert view["id"] == posted.body["id"]
        assert (view["status"], view["to"], view["from"]) == ("accepted", "+33612345678", "ACME")
        assert (view["client_ref"], view["campaign_id"], view["carrier"]) == ("r1", "c1", "alpha")
        assert [p["part"] for p in view["parts"]] == [1, 2]
        assert view["created_at"] == "2030-03-17T17:46:40.000Z"
        assert view["history"] == [
            {"at": "2030-03-17T17:46:40.000Z", "status": "accepted", "part": None}
        ]


async def test_get_shows_parts_and_history_with_details() -> None:
    store = FakeStore()
    store.views["0" * 26] = MessageView(
        id="0" * 26,
        status="delivered",
        to="+33612345678",
        sender="ACME",
        encoding="gsm7",
        parts=[PartView(1, "delivered", "alpha", "abc123", 2, None)],
        history=[
            HistoryEntry(NOW, "accepted"),
            HistoryEntry(NOW + 1.5, "queued", 1, {"error": "ESME_RTHROTTLED"}),
            HistoryEntry(NOW + 2, "submitted", 1, {"carrier_message_id": "abc123"}),
            HistoryEntry(NOW + 9, "delivered", 1, {"status": "overridden?"}),
        ],
        created_at=NOW,
        carrier="alpha",
        possible_duplicate=True,
    )
    async with running_api(store=store) as api:
        got = await api.get("/v1/messages/" + "0" * 26)
        assert got.status == 200
        assert got.body["parts"] == [
            {
                "part": 1,
                "status": "delivered",
                "carrier": "alpha",
                "carrier_message_id": "abc123",
                "attempts": 2,
                "error": None,
            }
        ]
        history = got.body["history"]
        assert history[1] == {
            "at": "2030-03-17T17:46:41.500Z",
            "status": "queued",
            "part": 1,
            "error": "ESME_RTHROTTLED",
        }
        assert history[2]["carrier_message_id"] == "abc123"
        assert history[3]["status"] == "delivered"  # details never replace the entry's own
        assert got.body["possible_duplicate"] is True


@pytest.mark.parametrize("message_id", ["0" * 26, "not-an-id", "%2e%2e"])
async def test_an_unknown_message_is_a_json_404(message_id: str) -> None:
    async with running_api() as api:
        got = await api.get(f"/v1/messages/{message_id}")
        assert got.status == 404
        assert got.body["error"]["code"] == "not_found"


async def test_a_request_cancelled_mid_commit_still_enqueues_what_it_committed() -> None:
    from gateway.core.intake import Intake, answer_json
    from gateway.core.model import NewMessage
    from gateway.http.messages import MessagesApi, Submission
    from tests.api_fakes import FakeOutbound, router_for

    config = make_config()
    events: list[str] = []
    store, outbound = FakeStore(events), FakeOutbound(events)
    intake = Intake(config.messages, config.carriers, router_for(config))
    api = MessagesApi(store, outbound, intake, lambda: NOW)
    prepared = intake.prepare(GOOD, account="acme", now=NOW, up={"alpha"})
    assert isinstance(prepared, NewMessage)
    store.accept_gate = asyncio.Event()
    handler = asyncio.create_task(
        api.accept([prepared], answer_json(prepared), Submission("acme", None, b"", ""), NOW)
    )
    await store.accepts_started.get()
    handler.cancel()
    store.accept_gate.set()
    with pytest.raises(asyncio.CancelledError):
        await handler
    for _ in range(5):
        await asyncio.sleep(0)
    assert events == ["accept.start", "accept.done", "enqueue"]
    assert outbound.enqueued == [prepared]
