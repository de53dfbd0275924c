"""The public redirect listener of short links: ``GET base_url/CODE`` answers 302 to the
code's stored target and records the click.

It faces the public, so it is small and says nothing else: one route, no token, no other
path (404), no server version in the headers; an unknown, malformed or expired code is a
plain 404 whatever the reason, and only targets stored with a code are ever redirected to
(no open redirect). ``Cache-Control: no-store`` so that every click reaches us;
``Referrer-Policy: no-referrer`` so the target never sees the code.

A request is a *click* unless it is a prefetch: a ``HEAD`` (link checkers, some previews),
an empty User-Agent, or one containing a piece of ``[links] prefetchers`` (messenger
previews, crawlers): those are recorded with ``bot = 1`` and counted apart. Requests are
answered at once; their records wait in memory and are written together every
``FLUSH_SECONDS`` (or at ``FLUSH_AT`` records) through the store's writer, so a burst of
clicks costs a few commits, not one each. At most ``MAX_BUFFERED`` records wait: beyond
that (the store stalled) clicks are still redirected but not recorded, counted in
``smsgw_link_clicks_dropped_total`` and logged once a minute. A crash loses at most the
last ``FLUSH_SECONDS`` of clicks (statistics, never messages).

Codes older than ``[links] retention_days`` answer 404 and are deleted in the background
(``PRUNE_BATCH`` at a time, every ``PRUNE_SECONDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Final

from aiohttp import web
from prometheus_client.core import Metric

from gateway.config.links import LinksConfig
from gateway.links.codes import CODE_PATTERN
from gateway.logs import log_event
from gateway.metrics import CounterMetricFamily
from gateway.store.base import Click
from gateway.store.ports import Links

log = logging.getLogger("smsgw.links")

FLUSH_SECONDS: Final = 0.5
FLUSH_AT: Final = 500
MAX_BUFFERED: Final = 10_000
"""Click records waiting for the store: 10,000 x ~200 bytes = 2 MB at most."""
MAX_USER_AGENT: Final = 256
"""Characters of a User-Agent kept: enough to tell a browser from a bot."""
PRUNE_SECONDS: Final = 3600.0
PRUNE_BATCH: Final = 500
DROP_LOG_INTERVAL: Final = 60.0
DAY: Final = 86400.0
RESULTS: Final = ("click", "bot", "not_found", "error")

SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
}


def is_prefetch(method: str, user_agent: str, prefetchers: Iterable[str]) -> bool:
    """Whether a request for a short link is a bot's or a preview's, not a person's."""
    if method == "HEAD" or not user_agent.strip():
        return True
    agent = user_agent.lower()
    return any(piece in agent for piece in prefetchers)


class LinkServer:
    """The listener, the click recorder and the pruning of expired codes."""

    def __init__(
        self,
        config: LinksConfig,
        links: Links,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.links = links
        self.clock = clock
        self.port: int | None = None
        self.requests: dict[str, int] = dict.fromkeys(RESULTS, 0)
        self.dropped = 0
        self.flush_failures = 0
        self.pruned = 0
        self._buffer: list[Click] = []
        self._flushed = asyncio.Event()
        self._wake = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_drop_log = -DROP_LOG_INTERVAL
        self._last_error_log = -DROP_LOG_INTERVAL
        self._prefetchers = tuple(config.prefetchers)
        base = urllib.parse.urlsplit(config.base_url).path.rstrip("/")
        self._path = f"{base}/{{code}}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024)
        app.router.add_get(self._path, self.redirect)  # HEAD too (allow_head)
        app.on_response_prepare.append(_plain_headers)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._flush_loop(), name="links-flush"),
            loop.create_task(self._prune_loop(), name="links-prune"),
        ]
        log_event(log, "links.started", listen=f"{self.config.host}:{self.port}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.flush()  # what was clicked before the stop is kept

    # -- the route ----------------------------------------------------------------------------

    async def redirect(self, request: web.Request) -> web.Response:
        code = request.match_info["code"]
        link = None
        if len(code) == self.config.code_length and CODE_PATTERN.fullmatch(code):
            try:
                link = await self.links.find(code)
            except Exception as exc:  # the store is closing or failing: say nothing more
                self.requests["error"] += 1
                now = time.monotonic()
                if now - self._last_error_log >= DROP_LOG_INTERVAL:
                    self._last_error_log = now
                    log_event(log, "links.lookup_failed", logging.ERROR, error=str(exc))
                return web.Response(status=503, text="unavailable", headers=SECURITY_HEADERS)
        now = self.clock()
        retention = self.config.retention_days * DAY
        if link is None or (retention > 0 and link.created_at < now - retention):
            self.requests["not_found"] += 1
            return web.Response(status=404, text="not found", headers=SECURITY_HEADERS)
        agent = request.headers.get("User-Agent", "")[:MAX_USER_AGENT]
        bot = is_prefetch(request.method, agent, self._prefetchers)
        self.requests["bot" if bot else "click"] += 1
        self._record(Click(code, link.campaign_id, link.number, now, agent, bot))
        return web.Response(status=302, headers={**SECURITY_HEADERS, "Location": link.target})

    # -- recording -----------------------------------------------------------------------------

    def _record(self, click: Click) -> None:
        if len(self._buffer) >= MAX_BUFFERED:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_INTERVAL:
                self._last_drop_log = now
                log_event(
                    log,
                    "links.clicks_dropped",
                    logging.WARNING,
                    dropped=self.dropped,
                    reason="the store is not keeping up; clicks are redirected, not recorded",
                )
            return
        self._buffer.append(click)
        if len(self._buffer) >= FLUSH_AT:
            self._wake.set()

    async def flush(self) -> None:
        """Write the clicks waiting, now (kept in memory for the next try on failure)."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            await self.links.record_clicks(batch)
        except Exception as exc:
            self.flush_failures += 1
            room = MAX_BUFFERED - len(self._buffer)
            self.dropped += max(0, len(batch) - room)
            self._buffer[:0] = batch[:room]
            log_event(log, "links.flush_failed", logging.ERROR, clicks=len(batch), error=str(exc))

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            await self.flush()

    async def _prune_loop(self) -> None:
        days = self.config.retention_days
        if days <= 0:
            return
        while True:
            try:
                while True:
                    deleted = await self.links.prune(self.clock() - days * DAY, PRUNE_BATCH)
                    self.pruned += deleted
                    if deleted < PRUNE_BATCH:
                        break
            except Exception as exc:
                log_event(log, "links.prune_failed", logging.ERROR, error=str(exc))
            await asyncio.sleep(PRUNE_SECONDS)

    # -- metrics ---------------------------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "smsgw_link_requests",
            "Requests to the short link listener: click (a person), bot (HEAD, no or a"
            " prefetcher's User-Agent), not_found (unknown, malformed or expired code),"
            " error (the store failed: 503).",
            labels=["result"],
        )
        for result, count in self.requests.items():
            requests.add_metric([result], float(count))
        yield requests
        yield CounterMetricFamily(
            "smsgw_link_clicks_dropped",
            "Clicks redirected but not recorded (the store did not keep up).",
            value=float(self.dropped),
        )
        yield CounterMetricFamily(
            "smsgw_link_flush_failures",
            "Writes of click records that failed (retried).",
            value=float(self.flush_failures),
        )
        yield CounterMetricFamily(
            "smsgw_link_codes_pruned", "Expired codes deleted.", value=float(self.pruned)
        )


async def _plain_headers(request: web.Request, response: web.StreamResponse) -> None:
    # No aiohttp/Python version to the public.
    response.headers["Server"] = "smsgw"
