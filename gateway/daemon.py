"""The daemon's lifecycle: start every component or none, serve, shut down with a bounded drain.

Start-up order: HTTP listener first (so a port clash stops us before any carrier sees a
bind), then the binds. If anything fails to start, what did start is stopped again and the
error propagates: the daemon never runs half-started. Signals belong to the daemon (aiohttp
runs with ``handle_signals=False``): SIGTERM/SIGINT start a graceful stop, a second one forces
the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from aiohttp import web

from gateway.api.app import make_app
from gateway.binds import BindListener, BindSettings, CarrierBind, RefusingListener
from gateway.config import CarrierConfig, GatewayConfig
from gateway.logs import log_event
from gateway.smpp.session import BindType, SessionConfig

log = logging.getLogger("smsgw.daemon")

SHUTDOWN_DRAIN_SECONDS = 5.0
"""How long a stopping bind keeps reading responses and receipts after its unbind."""


def bind_settings(carrier: CarrierConfig) -> list[BindSettings]:
    """The binds one carrier entry asks for, named ``<carrier>-<n>`` from 1."""
    session = SessionConfig(
        window=carrier.window,
        response_timeout=carrier.response_timeout,
        enquire_link_interval=carrier.enquire_link_interval,
        bind_timeout=carrier.bind_timeout,
    )
    return [
        BindSettings(
            carrier=carrier.name,
            name=f"{carrier.name}-{n}",
            host=carrier.host,
            port=carrier.port,
            system_id=carrier.system_id,
            password=carrier.password,
            bind_type=BindType(carrier.bind_type),
            system_type=carrier.system_type,
            interface_version=carrier.interface_version,
            addr_ton=carrier.addr_ton,
            addr_npi=carrier.addr_npi,
            address_range=carrier.address_range,
            session=session,
            reconnect_initial=carrier.reconnect_initial,
            reconnect_max=carrier.reconnect_max,
            reconnect_jitter=carrier.reconnect_jitter,
        )
        for n in range(1, carrier.binds + 1)
    ]


class Gateway:
    def __init__(self, config: GatewayConfig, listener: BindListener | None = None) -> None:
        self.config = config
        self.listener: BindListener = listener or RefusingListener()
        self.binds: list[CarrierBind] = [
            CarrierBind(settings, self.listener)
            for carrier in config.carriers
            for settings in bind_settings(carrier)
        ]
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()
        self.http_port: int | None = None

    async def start(self) -> None:
        http = self.config.http
        app = make_app(self.binds, max_body_bytes=http.max_body_bytes)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, http.host, http.port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        sockets: Sequence[object] = getattr(server, "sockets", None) or ()
        for sock in sockets:
            self.http_port = sock.getsockname()[1]  # type: ignore[attr-defined]
            break
        for bind in self.binds:
            bind.start()
        log_event(
            log,
            "daemon.started",
            http=f"{http.host}:{self.http_port}",
            binds=len(self.binds),
        )

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        log_event(log, "daemon.stopping")
        await asyncio.gather(
            *(b.stop(SHUTDOWN_DRAIN_SECONDS) for b in self.binds), return_exceptions=True
        )
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        log_event(log, "daemon.stopped")


async def serve(config: GatewayConfig) -> int:
    """Run the gateway until SIGTERM/SIGINT. Returns the process exit code."""
    gateway = Gateway(config)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    forced = asyncio.Event()

    def on_signal(signum: int) -> None:
        if gateway._stop.is_set():
            log_event(log, "daemon.forced_exit", logging.WARNING, signal=signum)
            forced.set()
        else:
            log_event(log, "daemon.signal", signal=signal.Signals(signum).name)
            gateway.request_stop()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await gateway.start()
        await gateway.wait_stopped()
        stop_task = asyncio.create_task(gateway.stop())
        forced_task = asyncio.create_task(forced.wait())
        done, _ = await asyncio.wait({stop_task, forced_task}, return_when=asyncio.FIRST_COMPLETED)
        forced_task.cancel()
        if stop_task not in done:
            stop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop_task
            return 1
        return 0
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
