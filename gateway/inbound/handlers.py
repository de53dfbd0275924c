"""Python handlers named in the configuration as ``package.module:function``.

A handler is an ``async def handler(message, contact, campaign, reply)``: the
:class:`~gateway.inbound.message.InboundMessage`, the sender's
:class:`~gateway.store.base.Contact` (None when unknown), the campaign (None until campaigns
exist) and a :class:`~gateway.inbound.replies.ReplyApi`. What it returns (a string or a
JSON-able value) is logged with the interaction. It is imported when the configuration is
loaded, so a typo stops the daemon from starting instead of failing on the first MO; a plain
``def`` is refused there.

Handlers run off the gateway's event loop (:class:`HandlerRunner`): each call goes to one of
``HANDLER_THREADS`` threads, each with an event loop of its own, and the gateway waits for it
at most ``[inbound].handler_timeout``. So a handler that blocks (``time.sleep``, a
synchronous HTTP client, a long computation in Python) holds up its thread, never the SMPP
binds, the HTTP API or the other MOs: at the timeout its action fails (it is cancelled at its
next ``await``), and a thread still blocked by it is not given another handler until it is
free. ``reply.send`` is carried to the gateway's loop and back. A handler therefore must not
share asyncio objects (locks, events, sessions) with the gateway's loop; module-level state
guarded by ``threading`` primitives is fine. One thing no thread can stop: C code that holds
the GIL for a long time (a catastrophic pattern in Python's ``re``); the quarantine of
:mod:`gateway.inbound.scheduling` is the last resort there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import inspect
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final

Handler = Callable[[Any, Any, Any, Any], Awaitable[object]]

_SPEC: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


class HandlerError(ValueError):
    """A handler name that does not lead to a usable async function."""


def resolve_handler(spec: str) -> Handler:
    """The function ``spec`` names; HandlerError saying why not."""
    if not _SPEC.fullmatch(spec):
        raise HandlerError(f"must be 'package.module:function', got {spec!r}")
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error at import is the handler's problem to report
        raise HandlerError(f"cannot import {module_name!r}: {exc!r}") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise HandlerError(f"module {module_name!r} has no attribute {name!r}")
    if not inspect.iscoroutinefunction(fn):
        raise HandlerError(f"{spec} must be an async function (async def)")
    try:
        inspect.signature(fn).bind(None, None, None, None)
    except TypeError:
        raise HandlerError(
            f"{spec} must take four arguments: (message, contact, campaign, reply)"
        ) from None
    handler: Handler = fn
    return handler


HANDLER_THREADS: Final = 4
"""Threads that run handlers: a few slow or blocked handlers leave the others room; handlers
wait on I/O, so more would not make them faster."""

STOP_JOIN_SECONDS: Final = 1.0
"""On stop, how long each handler thread may take to finish; one still blocked is left
(a daemon thread: it does not keep the process alive)."""


class HandlersBlocked(RuntimeError):
    """Every handler thread is held by a handler that overran ``handler_timeout``."""


class _Worker:
    def __init__(self, index: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.in_flight = 0
        self.blocked = 0  # calls that overran their timeout and have not ended yet
        self.thread = threading.Thread(target=self._run, name=f"smsgw-handler-{index}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            # Stopped: cancel what is left (handlers past their timeout) and let it unwind.
            left = asyncio.all_tasks(self.loop)
            for task in left:
                task.cancel()
            if left:
                self.loop.run_until_complete(asyncio.wait(left, timeout=STOP_JOIN_SECONDS))
        finally:
            with contextlib.suppress(Exception):
                self.loop.close()


class ThreadReply:
    """The ReplyApi a handler gets in its thread: ``send`` runs on the gateway's loop."""

    def __init__(self, replies: Any, gateway_loop: asyncio.AbstractEventLoop) -> None:
        self._replies = replies
        self._loop = gateway_loop
        self.to: str = replies.to
        self.sender: str = replies.sender
        self.closed = False
        """Set when the call is over (returned or timed out): a late send is not made."""

    async def send(self, text: str, *, delay: float = 0.0) -> str | None:
        if self.closed:
            return None
        future = asyncio.run_coroutine_threadsafe(self._send(text, delay), self._loop)
        result: str | None = await asyncio.wrap_future(future)
        return result

    async def _send(self, text: str, delay: float) -> str | None:
        if self.closed:  # checked again on the gateway's loop, where it is set
            return None
        result: str | None = await self._replies.send(text, delay=delay)
        return result


class HandlerRunner:
    """Runs handlers on threads of their own (see the module's doc)."""

    def __init__(self, threads: int = HANDLER_THREADS) -> None:
        self._size = max(1, threads)
        self._workers: list[_Worker] = []

    def _pick(self) -> _Worker:
        if not self._workers:
            self._workers = [_Worker(n) for n in range(self._size)]
        free = [w for w in self._workers if not w.blocked]
        if not free:
            raise HandlersBlocked(
                "every handler thread is held by a handler that overran handler_timeout"
            )
        return min(free, key=lambda w: w.in_flight)

    @property
    def blocked(self) -> int:
        """Threads held by a handler that overran its timeout."""
        return sum(1 for w in self._workers if w.blocked)

    async def call(
        self,
        handler: Handler,
        message: Any,
        contact: Any,
        campaign: Any,
        reply: Any,
        timeout: float,  # noqa: ASYNC109 - the gateway waits this long, whatever the handler does
    ) -> object:
        """``handler(message, contact, campaign, reply)`` on a handler thread, awaited at
        most ``timeout`` seconds (TimeoutError after that)."""
        worker = self._pick()
        gateway_loop = asyncio.get_running_loop()
        proxy = ThreadReply(reply, gateway_loop)
        call = _Call(worker, gateway_loop)
        future: concurrent.futures.Future[object] = asyncio.run_coroutine_threadsafe(
            _called(call, handler, message, contact, campaign, proxy), worker.loop
        )
        worker.in_flight += 1
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            call.overran()  # the thread counts as held until the handler really ends
            raise
        finally:
            proxy.closed = True
            worker.in_flight -= 1

    def stop(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            with contextlib.suppress(RuntimeError):  # its loop is closed already
                worker.loop.call_soon_threadsafe(worker.loop.stop)
        for worker in workers:
            worker.thread.join(STOP_JOIN_SECONDS)


class _Call:
    """One handler call: whether it has ended on its thread, and whether it overran."""

    def __init__(self, worker: _Worker, gateway_loop: asyncio.AbstractEventLoop) -> None:
        self.worker = worker
        self.gateway_loop = gateway_loop
        self.ended = False
        self.held = False

    def overran(self) -> None:
        """On the gateway's loop: the call timed out."""
        if not self.ended and not self.held:
            self.held = True
            self.worker.blocked += 1

    def end(self) -> None:
        """On the gateway's loop: the handler has returned, raised or been cancelled."""
        self.ended = True
        if self.held:
            self.held = False
            self.worker.blocked -= 1


async def _called(call: _Call, handler: Handler, *args: Any) -> object:
    try:
        return await handler(*args)
    finally:
        with contextlib.suppress(RuntimeError):  # the gateway's loop is closed: nothing to tell
            call.gateway_loop.call_soon_threadsafe(call.end)
