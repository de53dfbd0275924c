"""Status callbacks: POST the store's outbox to clients' callback URLs, with retries.

The store writes a callback (url, JSON payload) into its outbox in the same transaction as
the status change it reports; this sender only delivers them. A feeder asks the store for
due callbacks (``callbacks_due``) and hands them to a fixed pool of workers (bounded
concurrency over one ``CallbackClient``: keep-alive connections per receiver, the callback
policy checked on every connection; ``gateway.engine.callback_client``). Delivery is at
least once: a callback whose outcome could not be recorded is sent again later; receivers
can deduplicate on the ``X-Smsgw-Callback-Id`` header: the store never hands an id out
twice for the life of the database (a high-water mark, not ``max(id) + 1``).

- 2xx: recorded done. The callbacks delivered in one loop turn are recorded with one store
  call (``callbacks_done``, joining the store's next group commit as each ``callback_done``
  did): one write per batch instead of one per callback. A callback stays "in progress" (not
  handed out again) until its batch is committed; a crash before that commit sends it
  again (at least once: receivers deduplicate on ``X-Smsgw-Callback-Id``), never loses it.
- anything else (other status, redirect, connection error, timeout, a response that is no
  HTTP, a connection closed before the answer): ``callback_retry`` with
  exponential backoff and jitter: ``BASE_DELAY * 2**(attempts-1)``, capped at ``MAX_DELAY``.
- every failed attempt is logged (``callbacks.failed``: the receiver's host and the HTTP
  status or error, never the body), at most once per host per ``FAILURE_LOG_SECONDS`` with
  the count of failures since.
- after ``MAX_ATTEMPTS`` attempts, or at once for a URL that ``allowed`` (by default the
  policy's ``allows_url``) refuses, the
  callback is parked: kept in the outbox for inspection with its last error, its next
  attempt set to ``PARKED_AT`` (the year 9999) so it is never due again. An operator lists
  them (``GET /v1/callbacks?state=parked``) and re-arms them (``POST
  /v1/callbacks/{id}/retry``, ``POST /v1/callbacks/retry``): a new round of attempts,
  picked up at the next poll; nothing is deleted.

Signatures (gateway.signing): a callback whose signer (the message's account, or the
webhook actions' ``WEBHOOK_SIGNER``) has secrets carries ``X-Smsgw-Signature``, computed
here over the very ``bytes`` object written after the request's head, with the time of this
attempt. ``signers`` is replaced in place on a reload (secret rotation without a restart).

The sender wakes when ``notify()`` says new callbacks exist (the dispatcher and the receipt
handler call it after a store call returned status changes); otherwise it looks every
``IDLE_POLL_SECONDS`` for retries coming due.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from gateway.callback_policy import CallbackPolicy
from gateway.core.ledger import wants_callback
from gateway.core.model import StatusChange
from gateway.engine.callback_client import CallbackClient
from gateway.logs import log_event
from gateway.signing import SIGNATURE_HEADER, Signers
from gateway.store.base import CALLBACK_PARKED_AT, Callback
from gateway.store.ports import CallbackOutbox

log = logging.getLogger("smsgw.callbacks")

CONCURRENCY: Final = 32
"""POSTs in flight at once: enough to hide a slow client's latency, few enough not to flood
one client's server when it comes back after an outage."""

REQUEST_TIMEOUT_SECONDS: Final = 10.0
"""A client that takes longer than this to answer is treated as failing (and retried)."""

MAX_ATTEMPTS: Final = 12
"""Attempts before a callback is parked: with the delays below, about eight hours of tries."""

BASE_DELAY_SECONDS: Final = 5.0
"""Delay before the second attempt; it doubles with each further one."""

MAX_DELAY_SECONDS: Final = 3600.0
"""Backoff cap: a client down for a day is still tried every hour until MAX_ATTEMPTS."""

JITTER: Final = 0.1
"""Each delay is scaled by 1 +/- this share, so callbacks that failed together (a client's
outage) do not all come back in the same second."""

IDLE_POLL_SECONDS: Final = 1.0
"""Without a notify(), look for due retries this often: retries are seconds apart, so a
second of lateness is nothing, and one small query a second costs nothing."""

STORE_RETRY_SECONDS: Final = 1.0
"""Wait after a failed store call before asking again."""

PARKED_AT: Final = CALLBACK_PARKED_AT
"""next_at of a parked callback: 9999-12-31T23:59:59Z, never due."""

ERROR_TEXT_LIMIT: Final = 200
"""Characters of an error kept with a callback."""

STOP_DRAIN_SECONDS: Final = 5.0
"""On stop, how long POSTs under way may take to finish."""

URL_VERDICTS: Final = 1024
"""Callback URLs whose ``allowed`` verdict the sender keeps (emptied when full)."""

FAILURE_LOG_SECONDS: Final = 60.0
"""At most one ``callbacks.failed`` warning per receiver host this often: a client's outage
fails every callback to it, and one line a minute (with the count) says as much as
thousands."""


@dataclass(slots=True)
class CallbackStats:
    delivered: int = 0
    failed_attempts: int = 0
    parked: int = 0
    store_errors: int = 0
    taken_over: int = 0
    """Callbacks another node held when its claim lapsed, taken over by this sender."""


class CallbackSender:
    def __init__(
        self,
        store: CallbackOutbox,
        client_factory: Callable[[], CallbackClient] | None = None,
        allowed: Callable[[str], bool] | None = None,
        *,
        policy: CallbackPolicy | None = None,
        clock: Callable[[], float] = time.time,
        concurrency: int = CONCURRENCY,
        max_attempts: int = MAX_ATTEMPTS,
        base_delay: float = BASE_DELAY_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
        idle_poll: float = IDLE_POLL_SECONDS,
        rng: random.Random | None = None,
        signers: Signers | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._store = store
        # No policy given: the strict default (public addresses only). Reaching a private or
        # loopback receiver takes an explicit allowed_networks entry, never a missing argument.
        rules = policy if policy is not None else CallbackPolicy()
        self._client_factory = client_factory or (
            lambda: CallbackClient(rules, timeout=REQUEST_TIMEOUT_SECONDS, max_idle=concurrency)
        )
        self._allowed = allowed or rules.allows_url
        self._clock = clock
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._idle_poll = idle_poll
        self._rng = rng or random.Random()
        self.signers = signers if signers is not None else Signers()
        self.stats = CallbackStats()
        self._client: CallbackClient | None = None
        self._queue: asyncio.Queue[Callback] = asyncio.Queue()
        self._in_progress: set[int] = set()
        self._wake = asyncio.Event()
        self._feeder: asyncio.Task[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._busy = 0
        self._stopping = False
        self._verdicts: dict[str, bool] = {}
        """``allowed`` per callback URL: every callback of a client names the same URL, and
        the check (yarl, IDNA, address rules) cost ~1.5 % of the gateway's CPU at one
        callback per message."""
        self._failures: dict[str, tuple[float, int]] = {}
        """Per receiver host: when its last failure was logged, failures since."""
        self._delivered: list[int] = []
        """Ids delivered (2xx) in this loop turn: the next batch recorded done."""
        self._recording: set[asyncio.Task[None]] = set()
        """Batches being recorded."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._feeder is not None:
            return
        loop = asyncio.get_running_loop()
        self._client = self._client_factory()
        self._stopping = False
        self._queue = asyncio.Queue()
        self._wake = asyncio.Event()
        self._workers = [
            loop.create_task(self._work(), name=f"callback-{n}") for n in range(self._concurrency)
        ]
        self._feeder = loop.create_task(self._feed(), name="callbacks")

    async def stop(self, drain: float = STOP_DRAIN_SECONDS) -> None:
        """Stop fetching; let POSTs under way finish within ``drain`` seconds; close the
        connections. Callbacks not yet sent stay due in the store."""
        feeder, self._feeder = self._feeder, None
        if feeder is None:
            return
        self._stopping = True
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        while not self._queue.empty():  # not started: still due in the store
            self._in_progress.discard(self._queue.get_nowait().id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain
        while self._busy and loop.time() < deadline:
            self._wake.clear()
            await self._wait_wake(deadline - loop.time())
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        self._flush()  # the delivered ones are recorded before we go
        await asyncio.gather(*self._recording, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None

    def notify(self) -> None:
        """New callbacks may be in the outbox."""
        self._wake.set()

    def notify_changes(self, changes: Sequence[StatusChange]) -> None:
        """A ``ChangesHook``: wake when a status change reported by a store call has queued
        a callback: a final status of a message with an HTTP callback_url (the store queues
        no other: ``ledger.wants_callback``). Changes without one (most bulk traffic) cost
        no outbox read."""
        for change in changes:
            if change.callback_url and wants_callback(change):
                self._wake.set()
                return

    # -- the feeder ----------------------------------------------------------------------------

    async def _wait_wake(self, seconds: float) -> None:
        """Until notify() or a worker says so, or ``seconds``. (A timer on the event,
        not asyncio.wait_for: on 3.11 wait_for can swallow a cancel that races the event.)"""
        handle = asyncio.get_running_loop().call_later(seconds, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            handle.cancel()

    async def _feed(self) -> None:
        while not self._stopping:
            self._wake.clear()
            room = 2 * self._concurrency - len(self._in_progress)
            more = False
            if room > 0:
                try:
                    # Ask past the ones in progress: they stay due until their result is
                    # recorded, and would otherwise hide the ones behind them.
                    due = await self._store.callbacks_due(
                        self._clock(), room + len(self._in_progress)
                    )
                except Exception as exc:
                    self.stats.store_errors += 1
                    log_event(log, "callbacks.store_failed", logging.WARNING, error=repr(exc))
                    await asyncio.sleep(STORE_RETRY_SECONDS)
                    continue
                self._count_taken_over(due)
                fresh = 0
                for cb in due:
                    if cb.id in self._in_progress or fresh >= room:
                        continue
                    fresh += 1
                    self._in_progress.add(cb.id)
                    self._queue.put_nowait(cb)
                more = fresh >= room  # a full page: there may be more due right now
            if more:
                # Wait for room (a worker finishing sets the event), not for the poll.
                await self._wake.wait()
                continue
            await self._wait_wake(self._idle_poll)

    def _count_taken_over(self, due: Sequence[Callback]) -> None:
        """Count and log the callbacks of a dead node's lapsed claims in ``due``."""
        nodes = {cb.taken_from for cb in due if cb.taken_from is not None}
        if not nodes:
            return
        taken = sum(1 for cb in due if cb.taken_from is not None)
        self.stats.taken_over += taken
        log_event(
            log,
            "callbacks.took_over",
            logging.WARNING,
            callbacks=taken,
            nodes=",".join(sorted(nodes)),
            detail="claimed by a node whose claim lapsed: POSTed from here",
        )

    # -- the workers ---------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            cb = await self._queue.get()
            self._busy += 1
            handed = False  # delivered: the recorder takes it out of progress when recorded
            try:
                handed = await self._deliver(cb)
            except Exception as exc:  # a store error: the callback stays due, tried again
                self.stats.store_errors += 1
                log_event(
                    log,
                    "callbacks.record_failed",
                    logging.WARNING,
                    id=cb.id,
                    message=_message_id(cb),
                    error=repr(exc),
                )
            finally:
                self._busy -= 1
                if not handed:
                    self._in_progress.discard(cb.id)
                    self._wake.set()

    def _record_done(self, callback_id: int) -> None:
        """Hand a delivered callback to the next batch: those delivered in this loop turn
        are recorded by one store call, made at the start of the next turn."""
        self._delivered.append(callback_id)
        if len(self._delivered) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        batch, self._delivered = self._delivered, []
        if batch:  # each batch its own call: it joins the store's next group commit
            task = asyncio.get_running_loop().create_task(
                self._record(batch), name="callbacks-done"
            )
            self._recording.add(task)
            task.add_done_callback(self._recording.discard)

    async def _record(self, batch: list[int]) -> None:
        try:
            await self._store.callbacks_done(batch)
        except Exception as exc:  # still due in the store: sent again later
            self.stats.store_errors += 1
            log_event(
                log,
                "callbacks.record_failed",
                logging.WARNING,
                ids=len(batch),
                first=batch[0],
                error=repr(exc),
            )
        else:
            self.stats.delivered += len(batch)
        finally:
            self._in_progress.difference_update(batch)
            self._wake.set()

    async def _deliver(self, cb: Callback) -> bool:
        """Send ``cb`` once and record the outcome; True when it was delivered and handed
        to the batch recorder (which records it done and ends its time in progress)."""
        attempts = cb.attempts + 1
        allowed = self._verdicts.get(cb.url)
        if allowed is None:  # [callbacks] is read at start only: a verdict holds
            allowed = self._allowed(cb.url)
            if len(self._verdicts) >= URL_VERDICTS:
                self._verdicts.clear()
            self._verdicts[cb.url] = allowed
        if not allowed:
            await self._park(cb, attempts, "callback url not allowed")
            return False
        client = self._client
        assert client is not None
        error: str
        body = cb.payload.encode("utf-8")
        headers = [("Content-Type", "application/json"), ("X-Smsgw-Callback-Id", str(cb.id))]
        signer = self.signers.get(cb.signer)
        if signer is not None:  # over ``body`` itself: the bytes sent are the bytes signed
            headers.append((SIGNATURE_HEADER, signer.header(body, int(self._clock()))))
        try:
            # Redirects are never followed: a 3xx is a failed attempt like any non-2xx.
            status = await client.post(cb.url, body, headers)
        except (OSError, TimeoutError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            if 200 <= status < 300:
                self._record_done(cb.id)
                return True
            error = f"HTTP {status}"
        self.stats.failed_attempts += 1
        self._log_failure(cb, attempts, error)
        if attempts >= self._max_attempts:
            await self._park(cb, attempts, f"gave up after {attempts} attempts: {error}")
            return False
        await self._store.callback_retry(
            cb.id, self._clock() + self.backoff(attempts), error[:ERROR_TEXT_LIMIT]
        )
        return False

    def _log_failure(self, cb: Callback, attempts: int, error: str) -> None:
        """A failed attempt, as a warning with the receiver's host and the status or
        error (never the body), at most one per host per FAILURE_LOG_SECONDS."""
        host = _host(cb.url)
        now = time.monotonic()
        last, count = self._failures.get(host, (None, 0))
        count += 1
        if last is not None and now - last < FAILURE_LOG_SECONDS:
            self._failures[host] = (last, count)
            return
        self._failures[host] = (now, 0)
        log_event(
            log,
            "callbacks.failed",
            logging.WARNING,
            host=host,
            status=error[:ERROR_TEXT_LIMIT],
            id=cb.id,
            message=_message_id(cb),
            attempt=attempts,
            failures=count,
        )

    async def _park(self, cb: Callback, attempts: int, error: str) -> None:
        self.stats.parked += 1
        log_event(
            log,
            "callbacks.parked",
            logging.WARNING,
            id=cb.id,
            message=_message_id(cb),
            error=error,
        )
        await self._store.callback_retry(cb.id, PARKED_AT, error[:ERROR_TEXT_LIMIT])

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones."""
        delay = min(self._max_delay, self._base_delay * 2.0 ** min(attempts - 1, 40))
        return delay * (1 + self._rng.uniform(-JITTER, JITTER))


def _host(url: str) -> str:
    """host[:port] of a callback URL, for log lines (no path, query or credentials)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return ""


def _message_id(cb: Callback) -> str:
    """The message a callback is about (its payload's ``id``), for log lines."""
    try:
        payload = json.loads(cb.payload)
    except ValueError:
        return ""
    return str(payload.get("id", "")) if isinstance(payload, dict) else ""
