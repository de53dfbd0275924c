"""Issue 19: plain POSTs of messages answered by the fast lane (gateway.http.fastlane), byte
for byte as aiohttp answers them; everything else handed over to aiohttp, in order.

Every other API test (tests/test_api_*.py) runs through the lane too (tests/api_fakes.py
serves the app as the daemon does); these tests prove which of the two answered and that
the answers are the same."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from gateway.http.app import FAST_LANE_KEY
from gateway.http.connguard import IDLE_TIMEOUT, GuardSettings
from gateway.http.fastlane import NEED_MORE, NOT_PLAIN, PlainRequest, read_plain
from gateway.http.request_metrics import HttpMetrics
from gateway.store.base import StoreError
from tests.api_fakes import TOKEN, Api, running_api

GOOD: dict[str, Any] = {"to": "+33612345678", "from": "ACME", "text": "Hello"}
BODY = json.dumps(GOOD).encode()
MAX_BODY = 1_000_000
LIVENESS = 60.0
"""A bound on waiting for an answer (not a speed assertion)."""


def request(
    body: bytes = BODY,
    *,
    path: str = "/v1/messages",
    token: str = TOKEN,
    extra: str = "",
    content_type: str = "application/json",
) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


# -- reading a request (no socket) --------------------------------------------------------


def test_a_plain_request_is_read_with_its_body_and_size() -> None:
    raw = request()
    got = read_plain(raw + b"POST /next", MAX_BODY)
    assert got == PlainRequest("/v1/messages", f"Bearer {TOKEN}", None, BODY, len(raw))
    keyed = read_plain(request(extra="Idempotency-Key:  order-42 \r\n"), MAX_BODY)
    assert isinstance(keyed, PlainRequest)
    assert keyed.idempotency_key == "order-42"
    batch = read_plain(request(b"{}", path="/v1/messages/batch"), MAX_BODY)
    assert isinstance(batch, PlainRequest)
    assert batch.route == "/v1/messages/batch"


def test_a_head_not_complete_yet_is_waited_for() -> None:
    raw = request()
    assert read_plain(raw[: raw.index(b"\r\n\r\n")], MAX_BODY) == NEED_MORE
    assert read_plain(b"", MAX_BODY) == NEED_MORE


@pytest.mark.parametrize(
    "raw",
    [
        request(path="/v1/messages?x=1"),
        request(path="/v1/messages/"),
        request().replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        request().replace(b"POST", b"PUT", 1),
        b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n",
        request(extra="Transfer-Encoding: chunked\r\n"),
        request(extra="Expect: 100-continue\r\n"),
        request(extra="Connection: close\r\n"),
        request(extra="Upgrade: websocket\r\n"),
        request(extra="Authorization: Bearer again\r\n"),  # a header twice
        request(extra="X-Bad : 1\r\n"),  # whitespace before the colon
        request(extra=" folded\r\n"),  # an obsolete line folding
        request(extra="X-Text: caf\u00e9\r\n".encode("utf-8").decode("latin-1")),
        request(extra="X-Ctl: a\x01b\r\n"),
        request(content_type="text/plain"),
        request(content_type="application/json; charset=latin-1"),
        request().replace(b"Content-Length: ", b"Content-Length: +"),
        request(BODY + b" " * MAX_BODY),  # over the body limit
        request()[:-1],  # the body not all in yet
        request().replace(b"\r\nAuthorization: Bearer " + TOKEN.encode(), b""),
        b"POST /v1/messages HTTP/1.1\r\nX: " + b"a" * 9000,  # a head longer than aiohttp's
    ],
)
def test_anything_but_the_plain_case_is_left_to_aiohttp(raw: bytes) -> None:
    assert read_plain(raw, MAX_BODY) == NOT_PLAIN


# -- over a socket, against aiohttp's own answers -------------------------------------------


async def exchange(api: Api, raw: bytes, answers: int = 1) -> list[bytes]:
    """``raw`` written at once on a new connection; the ``answers`` read back, each whole."""
    reader, writer = await asyncio.open_connection("127.0.0.1", api.client.port)
    try:
        writer.write(raw)
        got = []
        for _ in range(answers):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), LIVENESS)
            length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
            got.append(head + await reader.readexactly(length))
        return got
    finally:
        writer.close()


def comparable(answer: bytes) -> bytes:
    """An answer less what differs between two runs: its date and message ids."""
    answer = re.sub(rb"Date: [^\r]+", b"Date: -", answer)
    return re.sub(rb'"id":"[0-9a-f]{26}"', b'"id":"-"', answer)


def lane_of(api: Api) -> Any:
    return api.client.app[FAST_LANE_KEY]


async def both(raw: bytes, *, store_error: bool = False) -> tuple[bytes, bytes, int]:
    """The answer to ``raw`` through the lane and through aiohttp alone, and how many
    requests the lane answered."""
    answers = []
    answered = -1
    for lane in (True, False):
        async with running_api(lane=lane) as api:
            if store_error:
                api.store.accept_error = StoreError("disk I/O error")
            answers.append((await exchange(api, raw))[0])
            if lane:
                answered = lane_of(api).answered
    return answers[0], answers[1], answered


async def test_a_plain_post_is_answered_by_the_lane_as_aiohttp_answers_it() -> None:
    lane, alone, answered = await both(request())
    assert answered == 1
    assert lane.startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert comparable(lane) == comparable(alone)


async def test_a_batch_is_answered_by_the_lane_as_aiohttp_answers_it() -> None:
    body = json.dumps({"messages": [GOOD, {**GOOD, "to": "+33612345679"}]}).encode()
    lane, alone, answered = await both(request(body, path="/v1/messages/batch"))
    assert answered == 1
    assert comparable(lane) == comparable(alone)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (json.dumps({**GOOD, "text": ""}).encode(), b"400"),  # a field error
        (b"{not json", b"400"),
        (json.dumps({**GOOD, "callback_url": "ftp://x"}).encode(), b"400"),
        (json.dumps([1]).encode(), b"400"),
    ],
)
async def test_refusals_in_the_lane_are_aiohttps_refusals(body: bytes, status: bytes) -> None:
    lane, alone, answered = await both(request(body))
    assert answered == 1
    assert lane.startswith(b"HTTP/1.1 " + status)
    assert comparable(lane) == comparable(alone)


async def test_a_failed_commit_gets_the_same_503_with_its_retry_after() -> None:
    lane, alone, answered = await both(request(), store_error=True)
    assert answered == 1
    assert lane.startswith(b"HTTP/1.1 503 ")
    assert comparable(lane) == comparable(alone)


async def test_an_opted_out_destination_gets_the_same_422_through_the_lane() -> None:
    answers = []
    for lane in (True, False):
        async with running_api(lane=lane) as api:
            api.store.opt_outs.add(("+33612345678", "ACME"))
            answers.append((await exchange(api, request()))[0])
    assert answers[0].startswith(b"HTTP/1.1 422 ")
    assert comparable(answers[0]) == comparable(answers[1])


async def test_a_request_the_lane_does_not_answer_goes_to_aiohttp_with_what_follows() -> None:
    # A plain POST, a wrong token (aiohttp's 401), then a plain POST: written at once, the
    # three answers come back in order; the lane answered the first only.
    raw = request() + request(token="wrong") + request()
    async with running_api() as api:
        got = await exchange(api, raw, answers=3)
        lane = lane_of(api)
        assert [g.split(b" ", 2)[1] for g in got] == [b"202", b"401", b"202"]
        assert b'WWW-Authenticate: Bearer realm="smsgw", error="invalid_token"' in got[1]
        assert (lane.answered, lane.handed_over) == (1, 1)
        assert len(api.store.messages) == 2


async def test_the_lane_commits_before_it_answers() -> None:
    async with running_api() as api:
        got = await api.post("/v1/messages", GOOD)
        assert got.status == 202
        assert lane_of(api).answered == 1
        assert api.events == ["accept.start", "accept.done", "enqueue", "response"]


async def test_lane_answers_are_counted_per_route_as_aiohttps() -> None:
    counts = []
    for lane in (True, False):
        metrics = HttpMetrics()
        async with running_api(lane=lane, http_metrics=metrics) as api:
            await exchange(api, request() + request(b"{}"), answers=2)
            assert lane_of(api).answered == (2 if lane else 0)
        counts.append((metrics.requests, {k: h.count for k, h in metrics.latency.items()}))
    assert counts[0] == counts[1]
    assert counts[0][0] == {("/v1/messages", "POST", "2xx"): 1, ("/v1/messages", "POST", "4xx"): 1}


async def test_idempotency_keys_are_answered_by_the_lane_as_aiohttp_answers_them() -> None:
    # First use, a retry (the stored answer replayed), the same key on another body (422),
    # and a key that is not visible ASCII (400): one after the other on one connection.
    key = "Idempotency-Key: order-42\r\n"
    other = json.dumps({**GOOD, "text": "Other"}).encode()
    raw = (
        request(extra=key)
        + request(extra=key)
        + request(other, extra=key)
        + request(extra=f"Idempotency-Key: {'k' * 200}\r\n")
    )
    answers = []
    for lane in (True, False):
        async with running_api(lane=lane) as api:
            answers.append(await exchange(api, raw, answers=4))
            assert lane_of(api).answered == (4 if lane else 0)
            assert len(api.store.messages) == 1
    through_lane, alone = answers
    assert [a.split(b" ", 2)[1] for a in through_lane] == [b"202", b"202", b"422", b"400"]
    assert b"Idempotent-Replayed: true" in through_lane[1]
    assert through_lane[0].split(b"\r\n\r\n")[1] == through_lane[1].split(b"\r\n\r\n")[1]
    assert [comparable(a) for a in through_lane] == [comparable(a) for a in alone]


# -- a connection the lane holds, closed as aiohttp closed its own ---------------------------


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), LIVENESS)


async def test_a_kept_alive_lane_connection_is_closed_when_the_server_stops() -> None:
    # Deadlines far away: only the server's stop can close the connection.
    patient = GuardSettings(header_timeout=3600, idle_timeout=3600)
    async with running_api(guard=patient) as api:
        reader, writer = await asyncio.open_connection("127.0.0.1", api.client.port)
        writer.write(request())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), LIVENESS)
        assert head.startswith(b"HTTP/1.1 202")
        assert lane_of(api).answered == 1
        await api.client.close()  # the server stops: the lane closes what it holds
        rest = await read_to_eof(reader)
        assert reader.at_eof()
        assert len(rest) <= len(head) + 200  # the answer's body, then the end
        writer.close()


async def test_an_idle_lane_connection_gets_the_guards_idle_timeout() -> None:
    # aiohttp never saw this connection (its own keep-alive timer is not there): the
    # guard's idle_timeout closes it, counted as for any connection.
    async with running_api(guard=GuardSettings(idle_timeout=0.05)) as api:
        reader, writer = await asyncio.open_connection("127.0.0.1", api.client.port)
        writer.write(request())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), LIVENESS)
        await read_to_eof(reader)
        assert reader.at_eof()
        assert lane_of(api).answered == 1
        assert api.client.server.guard.closed[IDLE_TIMEOUT] == 1  # type: ignore[attr-defined]
        writer.close()
