"""``/v1/messages``: accept messages (one or a batch) and show one message's fate.

The order of things for a POST, and why:

1. check the ``Idempotency-Key`` header and read the raw body (400, 415 and 413 first:
   cheap, and nothing else is worth doing then);
2. with an ``Idempotency-Key``, look for a stored answer: a retry is answered from it
   before any other work;
3. parse and check everything; 400 lists every field error (every item's, in a batch);
4. refuse opted-out destinations (422 ``opted_out``). A batch with any is refused whole,
   naming each such item's index, like a batch with invalid items: accepting the rest
   would give an answer whose items no longer match the request one for one, and a client
   that wants them sent drops the named items and resends;
5. ``store.accept`` commits the messages and, in the same transaction, the answer under the
   idempotency key: only then is 202 said, so an accepted message survives a crash. The
   messages the dispatcher can send at once (``Outbound.reserve``: bind up, window and TPS
   room, nothing queued ahead) are committed with their first attempt begun;
6. hand the messages to the dispatcher (``Outbound.enqueue``: the begun ones leave in that
   call, before the 202 is written) and answer.

A batch is one transaction: all its messages are accepted, or none.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from aiohttp import web

from gateway.core.errors import FieldError
from gateway.core.intake import Intake, answer_json, batch_answer_json
from gateway.core.model import HistoryEntry, MessageView, NewMessage
from gateway.core.submit import Outbound, accept_and_enqueue
from gateway.http.auth import ACCOUNT_KEY, Principal, principal
from gateway.http.body import parse_json, read_body
from gateway.http.errors import (
    IDEMPOTENCY_CONFLICT,
    IDEMPOTENCY_MISMATCH,
    NOT_FOUND,
    OPTED_OUT,
    ApiError,
    invalid,
    json_response,
)
from gateway.http.message_list import parse_query, row_json
from gateway.logs import log_event
from gateway.reports.csvfile import iso_utc
from gateway.store.base import IdempotencyConflict, IdempotentAnswer
from gateway.store.ports import MessageReads, Submits

log = logging.getLogger("smsgw.api")

MAX_BATCH: Final = 10_000
"""Messages per batch request: one transaction the store commits in well under a second."""
LOGGED_IDS: Final = 100
"""Message ids named on an ``api.accepted`` debug line (the first ones of a big batch)."""
MAX_IDEMPOTENCY_KEY: Final = 128
"""Room for a UUID or a hash with a prefix; longer keys are refused, not truncated."""
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
"""Set to ``true`` on an answer replayed from an earlier request with the same key."""

_KEY_CHARS: Final = re.compile(r"[\x21-\x7e]+")  # visible ASCII, as HTTP tokens
_MESSAGE_ID: Final = re.compile(r"[0-9a-f]{26}")  # gateway.core.model.new_message_id


def view_json(view: MessageView) -> dict[str, Any]:
    """The GET /v1/messages/{id} answer."""
    return {
        "id": view.id,
        "status": view.status,
        "to": view.to,
        "from": view.sender,
        "encoding": view.encoding,
        "carrier": view.carrier,
        "client_ref": view.client_ref,
        "campaign_id": view.campaign_id,
        "possible_duplicate": view.possible_duplicate,
        "error": view.error,
        "created_at": iso_utc(view.created_at),
        "parts": [
            {
                "part": p.part,
                "status": p.status,
                "carrier": p.carrier,
                "carrier_message_id": p.carrier_message_id,
                "attempts": p.attempts,
                "error": p.error,
            }
            for p in view.parts
        ],
        "history": [_history_json(entry) for entry in view.history],
    }


def _history_json(entry: HistoryEntry) -> dict[str, Any]:
    # The store's details (error codes, carrier ids) come along; they never replace the
    # three fields every entry has.
    out = dict(entry.detail)
    out["at"] = iso_utc(entry.at)
    out["status"] = entry.status
    out["part"] = entry.part
    return out


def _request_hash(path: str, raw: bytes) -> str:
    """What "the same request" means for an idempotency key: same path, same body bytes."""
    digest = hashlib.sha256(path.encode("utf-8"))
    digest.update(b"\n")
    digest.update(raw)
    return digest.hexdigest()


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    return None if key is None else checked_key(key)


def checked_key(key: str) -> str:
    """An ``Idempotency-Key`` header's value, or the 400 that refuses it."""
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not _KEY_CHARS.fullmatch(key):
        raise invalid(
            [
                FieldError(
                    f"headers.{IDEMPOTENCY_HEADER}",
                    f"must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters",
                )
            ]
        )
    return key


def _replay(stored: IdempotentAnswer, request_hash: str) -> web.Response:
    if stored.request_hash != request_hash:
        raise ApiError(
            422,
            IDEMPOTENCY_MISMATCH,
            f"this {IDEMPOTENCY_HEADER} was first used with a different request; use a new"
            " key for a new request",
        )
    return web.Response(
        status=stored.status,
        text=stored.body,
        content_type="application/json",
        headers={REPLAYED_HEADER: "true"},
    )


@dataclass(frozen=True, slots=True)
class Submission:
    """A POST as read: who sent it, its idempotency key and what identifies its body."""

    account: str
    key: str | None
    raw: bytes
    request_hash: str  # "" without a key


Prepared = tuple[list[NewMessage], str, float]
"""Checked messages, the text of their 202, and their time of acceptance."""


class MessagesApiPorts(Submits, MessageReads, Protocol):
    """What ``/v1/messages`` reads and writes."""


class OptOutReads:
    """The opt-out checks of the single-message POSTs of one event-loop turn, read in one
    store call per sender rather than one each.

    With 50 clients posting one message at a time, tens of requests reach this check in
    the same turn; each store read is a hop to the reader thread and back (about 4 % of
    the gateway's CPU at one message per POST, py-spy). The read is the same query, made
    after every request of the turn has asked: a request's answer is as fresh as it was
    alone. A failed read fails every request that waited on it (as it would have alone)."""

    def __init__(self, store: MessagesApiPorts) -> None:
        self._store = store
        self._waiting: dict[str, list[tuple[str, asyncio.Future[bool]]]] = {}
        self.reads = 0
        """Store reads made (the check's requests divided by this: how much was shared)."""

    def opted_out(self, number: str, sender: str) -> asyncio.Future[bool]:
        """Whether ``number`` opted out of ``sender`` (or of every sender)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)  # after the requests already due this turn
        self._waiting.setdefault(sender, []).append((number, waiter))
        return waiter

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for sender, asks in waiting.items():
            self.reads += 1
            task = asyncio.get_running_loop().create_task(self._read(sender, asks))
            _READS.add(task)
            task.add_done_callback(_READS.discard)

    async def _read(self, sender: str, asks: list[tuple[str, asyncio.Future[bool]]]) -> None:
        try:
            found = await self._store.opted_out(sorted({n for n, _ in asks}), sender)
        except Exception as exc:
            for _, waiter in asks:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for number, waiter in asks:
            if not waiter.done():  # a request cancelled meanwhile
                waiter.set_result(number in found)


_READS: Final[set[asyncio.Task[None]]] = set()
"""Opt-out reads under way (a task nobody holds may be collected mid-run)."""


class MessagesApi:
    """The handlers of ``/v1/messages``, over one store and one dispatcher."""

    def __init__(
        self,
        store: MessagesApiPorts,
        outbound: Outbound,
        intake: Intake,
        clock: Callable[[], float],
        campaign_account: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self.store = store
        self.outbound = outbound
        self.intake = intake
        self.clock = clock
        self.campaign_account = campaign_account
        """The account of a campaign by id (None: no such campaign); without it (campaigns
        not wired) a campaign_id is taken as a plain label."""
        self.opt_out_reads = OptOutReads(store)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/messages", self.post_message)
        router.add_get("/v1/messages", self.list_messages, allow_head=False)
        router.add_post("/v1/messages/batch", self.post_batch)
        router.add_get("/v1/messages/{id}", self.get_message, allow_head=False)

    # -- handlers ---------------------------------------------------------------------------

    async def post_message(self, request: web.Request) -> web.Response:
        submission = await self._submission(request)
        if isinstance(submission, web.Response):
            return submission
        messages, text, now = await self.prepare_one(principal(request), submission.raw)
        return await self.accept(messages, text, submission, now)

    async def post_batch(self, request: web.Request) -> web.Response:
        submission = await self._submission(request)
        if isinstance(submission, web.Response):
            return submission
        messages, text, now = await self.prepare_batch(principal(request), submission.raw)
        return await self.accept(messages, text, submission, now)

    async def prepare_one(self, who: Principal, raw: bytes) -> Prepared:
        """The message of a ``POST /v1/messages`` body, checked (steps 3 and 4 above): the
        messages to commit, the 202's text, the time of acceptance. ApiError for a refusal;
        nothing is written."""
        body = parse_json(raw)
        now = self.clock()
        prepared = self.intake.prepare(
            body, account=who.account, now=now, up=self.outbound.carriers_up()
        )
        if isinstance(prepared, list):
            raise invalid(prepared)
        await self._refuse_others_campaigns(who, [prepared], batch=False)
        if await self.opt_out_reads.opted_out(prepared.to, prepared.sender):
            raise ApiError(
                422,
                OPTED_OUT,
                f"{prepared.to} has opted out of messages from {prepared.sender}",
                [FieldError("to", "has opted out of messages from this sender")],
            )
        return [prepared], answer_json(prepared), now

    async def prepare_batch(self, who: Principal, raw: bytes) -> Prepared:
        """As :meth:`prepare_one` for a ``POST /v1/messages/batch`` body."""
        items = _batch_items(parse_json(raw))
        now = self.clock()
        up = self.outbound.carriers_up()
        prepare = self.intake.prepare
        account = who.account
        messages: list[NewMessage] = []
        errors: list[FieldError] = []
        for index, item in enumerate(items):
            prepared = prepare(item, account=account, now=now, up=up)
            if isinstance(prepared, list):
                errors.extend(_in_batch(index, e) for e in prepared)
            else:
                messages.append(prepared)
        if errors:
            raise invalid(errors)
        await self._refuse_others_campaigns(who, messages, batch=True)
        await self._refuse_opted_out(messages)
        return messages, batch_answer_json(messages), now

    async def accept_plain(self, messages: list[NewMessage], account: str) -> None:
        """Commit and enqueue checked ``messages`` of a request without an idempotency key
        (step 5 and 6 above; the caller answers 202 once this returns). Not shielded (a
        task and a future fewer per request): the caller's task must never be cancelled
        between the commit and the enqueue. The fast lane (gateway.http.fastlane) never
        cancels its tasks; an aiohttp handler goes through :meth:`accept`, shielded."""
        await self._commit(messages, None)
        self._log_accepted(account, messages)

    async def get_message(self, request: web.Request) -> web.Response:
        message_id = request.match_info["id"]
        view = None
        if _MESSAGE_ID.fullmatch(message_id):
            view = await self.store.get_message(message_id)
        # Another account's message is answered as one that does not exist.
        if view is None or not principal(request).owns(view.account):
            raise ApiError(404, NOT_FOUND, "no message with this id")
        return json_response(view_json(view))

    async def list_messages(self, request: web.Request) -> web.Response:
        who = principal(request)
        query = parse_query(request.query, None if who.admin else who.account)
        if isinstance(query, list):
            raise invalid(query)
        limit = query.limit
        rows = await self.store.list_messages(replace(query, limit=limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = rows[-1].id if more else None
        return json_response({"items": [row_json(r) for r in rows], "next": next_cursor})

    # -- steps ------------------------------------------------------------------------------

    async def _submission(self, request: web.Request) -> Submission | web.Response:
        """The raw request, or the stored answer when its idempotency key was seen."""
        account = request[ACCOUNT_KEY]
        key = _idempotency_key(request)
        raw = await read_body(request)
        if key is None:
            return Submission(account, None, raw, "")
        return await self.keyed_submission(account, key, request.path, raw)

    async def keyed_submission(
        self, account: str, key: str, path: str, raw: bytes
    ) -> Submission | web.Response:
        """A POST of ``raw`` to ``path`` with the (checked) idempotency ``key``, or the
        answer stored under that key when it was seen (a replay, or the 422 for another
        request under the same key)."""
        request_hash = _request_hash(path, raw)
        stored = await self.store.find_idempotent(account, key)
        if stored is not None:
            return _replay(stored, request_hash)
        return Submission(account, key, raw, request_hash)

    async def _refuse_others_campaigns(
        self, who: Principal, messages: Sequence[NewMessage], *, batch: bool
    ) -> None:
        """400 for a campaign_id naming another account's campaign: its figures, and the
        MOs answering it, are that account's (an admin token may label any)."""
        if who.admin or self.campaign_account is None:
            return
        owners: dict[str, str | None] = {}
        errors: list[FieldError] = []
        for index, message in enumerate(messages):
            campaign_id = message.campaign_id
            if campaign_id is None:
                continue
            if campaign_id not in owners:
                owners[campaign_id] = await self.campaign_account(campaign_id)
            owner = owners[campaign_id]
            if owner is not None and owner != who.account:
                error = FieldError("campaign_id", "names a campaign of another account")
                errors.append(_in_batch(index, error) if batch else error)
        if errors:
            raise invalid(errors)

    async def _refuse_opted_out(self, messages: Sequence[NewMessage]) -> None:
        """422 naming every item whose destination opted out of its sender."""
        by_sender: dict[str, set[str]] = {}
        for message in messages:
            by_sender.setdefault(message.sender, set()).add(message.to)
        refused: set[tuple[str, str]] = set()
        for sender, numbers in by_sender.items():
            for number in await self.store.opted_out(sorted(numbers), sender):
                refused.add((number, sender))
        if not refused:
            return
        details = [
            FieldError(f"messages[{i}].to", "has opted out of messages from this sender", i)
            for i, m in enumerate(messages)
            if (m.to, m.sender) in refused
        ]
        raise ApiError(
            422,
            OPTED_OUT,
            f"the batch was refused whole: {len(details)} of its messages go to numbers that"
            " opted out of their sender (see details); send it again without them",
            details,
        )

    async def _commit(
        self, messages: list[NewMessage], remembered: IdempotentAnswer | None
    ) -> None:
        # Messages the dispatcher can send at once are begun in the accept transaction: after
        # the commit their submit_sm leave in this turn, with no begin_attempts commit.
        await accept_and_enqueue(self.store, self.outbound, messages, remembered)

    async def accept(
        self, messages: list[NewMessage], text: str, submission: Submission, now: float
    ) -> web.Response:
        """Commit, then enqueue, then answer ``text`` with 202."""
        account, key, request_hash = submission.account, submission.key, submission.request_hash
        remembered = None
        if key is not None:
            remembered = IdempotentAnswer(account, key, request_hash, 202, text, now)
        try:
            # Shielded: a client that hangs up mid-commit must not leave a committed
            # message out of the dispatcher's queue.
            await asyncio.shield(self._commit(messages, remembered))
        except IdempotencyConflict:
            # A twin request with the same key committed first: answer as it was answered.
            assert key is not None
            stored = await self.store.find_idempotent(account, key)
            if stored is None:
                raise ApiError(
                    409,
                    IDEMPOTENCY_CONFLICT,
                    f"a concurrent request with this {IDEMPOTENCY_HEADER} did not settle; retry it",
                ) from None
            return _replay(stored, request_hash)
        self._log_accepted(account, messages)
        return web.Response(status=202, text=text, content_type="application/json")

    @staticmethod
    def _log_accepted(account: str, messages: Sequence[NewMessage]) -> None:
        log_event(
            log,
            "api.accepted",
            logging.DEBUG,
            account=account,
            messages=len(messages),
            ids=",".join(m.id for m in messages[:LOGGED_IDS]),
        )


def _in_batch(index: int, error: FieldError) -> FieldError:
    path = f"messages[{index}].{error.path}" if error.path else f"messages[{index}]"
    return FieldError(path, error.message, index)


def _batch_items(body: object) -> list[Any]:
    if not isinstance(body, dict):
        raise invalid([FieldError("", "must be a JSON object with a 'messages' array")])
    errors = [FieldError(k, "unknown field") for k in body if k != "messages"]
    items = body.get("messages")
    if items is None:
        errors.append(FieldError("messages", "is required"))
    elif not isinstance(items, list):
        errors.append(FieldError("messages", "must be an array of messages"))
    elif not items:
        errors.append(FieldError("messages", "must hold at least one message"))
    elif len(items) > MAX_BATCH:
        errors.append(
            FieldError("messages", f"must hold at most {MAX_BATCH} messages (got {len(items)})")
        )
    if errors:
        raise invalid(errors)
    assert isinstance(items, list)
    return items
