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
from prometheus_client import CollectorRegistry

from gateway.api.app import make_app
from gateway.api.intake import Intake
from gateway.binds import BindSettings, CarrierBind, RefusingListener
from gateway.callback_policy import CallbackPolicy, policy_session
from gateway.config import CarrierConfig, GatewayConfig
from gateway.engine.callbacks import CONCURRENCY, REQUEST_TIMEOUT_SECONDS, CallbackSender
from gateway.engine.dispatcher import Dispatcher
from gateway.front.metrics import front_metrics
from gateway.front.server import FrontServer
from gateway.inbound.api import InboundApi
from gateway.inbound.directory import CampaignDirectory
from gateway.inbound.service import InboundService
from gateway.logs import log_event
from gateway.metrics import FunctionCollector
from gateway.model import StatusChange
from gateway.observe import HttpMetrics, gateway_metrics
from gateway.reports.digest import DigestScheduler
from gateway.routing import Route, Router
from gateway.sdnotify import Notifier
from gateway.smpp.session import BindType, SessionConfig
from gateway.store.sqlite import SqliteStore

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
    """Every component of one gateway process, started in order and stopped in reverse."""

    def __init__(
        self,
        config: GatewayConfig,
        notifier: Notifier | None = None,
        campaigns: CampaignDirectory | None = None,
    ) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self.store = SqliteStore(config.store_path, config.store.synchronous)
        self.binds: list[CarrierBind] = [
            CarrierBind(settings, RefusingListener())
            for carrier in config.carriers
            for settings in bind_settings(carrier)
        ]
        self.router = Router(
            [Route(r.prefix, r.carriers, r.weights) for r in config.routes],
            [c.name for c in config.carriers],
        )
        policy = CallbackPolicy.from_config(config.callbacks)
        self.callbacks = CallbackSender(
            self.store,
            session_factory=lambda: policy_session(policy, CONCURRENCY, REQUEST_TIMEOUT_SECONDS),
            allowed=policy.allows_url,
        )
        # The dispatcher becomes every bind's listener (responses, timeouts, deliver_sm).
        self.dispatcher = Dispatcher(
            config, self.store, self.binds, self.router, on_changes=self._on_changes
        )
        self.front: FrontServer | None = None
        if config.front is not None:  # the SMPP server for upstream ESMEs
            intake = Intake(config.messages, config.carriers, self.router)
            self.front = FrontServer(config.front, self.store, intake, self.dispatcher)
        # MOs: the receipt handler hands every deliver_sm that is no receipt to the inbound
        # service, whose replies go out through the dispatcher like any accepted message.
        self.inbound = InboundService(
            config,
            self.store,
            Intake(config.messages, config.carriers, self.router),
            self.dispatcher,
            directory=campaigns,
            notify_callbacks=self.callbacks.notify,
        )
        self.dispatcher.receipts.mo_handler = self.inbound.handle_pdu
        self.inbound.upstream = self.front  # [front.mo_routes]: numbers owned upstream
        # The daily campaign digest, when [digest] is configured; its campaigns are set by
        # the campaign side (``self.digest.campaigns``), none until then.
        self.digest: DigestScheduler | None = None
        if config.digest is not None:
            tz = config.digest.tzinfo(config.node)
            self.digest = DigestScheduler(config.digest, tz, self.store, node_id=config.node.id)
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()
        self._started: list[str] = []
        self.http_port: int | None = None

    def _on_changes(self, changes: Sequence[StatusChange]) -> None:
        self.callbacks.notify_changes(changes)
        if self.front is not None:
            self.front.notify_changes(changes)

    async def start(self) -> None:
        """Start everything, or stop what started and raise: never half-started."""
        try:
            await self.store.open()
            self._started.append("store")
            await self._start_http()
            self._started.append("http")
            await self.dispatcher.start()
            self._started.append("dispatcher")
            # After the dispatcher (pending interactions may reply at once), before the
            # binds (until then an MO would be answered ESME_RX_T_APPN).
            await self.inbound.start()
            self._started.append("inbound")
            for bind in self.binds:
                bind.start()
            self._started.append("binds")
            await self.callbacks.start()
            self._started.append("callbacks")
            if self.front is not None:
                self._started.append("front")
                await self.front.start()
            if self.digest is not None:
                await self.digest.start()
                self._started.append("digest")
        except BaseException:
            await self.stop()
            raise
        self.notifier.start_watchdog()
        self.notifier.ready(f"{len(self.binds)} binds starting")
        log_event(
            log,
            "daemon.started",
            http=f"{self.config.http.host}:{self.http_port}",
            binds=len(self.binds),
            store=str(self.config.store_path),
        )

    async def _start_http(self) -> None:
        http = self.config.http
        http_metrics = HttpMetrics()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FunctionCollector(lambda: gateway_metrics(self, http_metrics)))
        front = self.front
        if front is not None:
            registry.register(FunctionCollector(lambda: front_metrics(front)))
        registry.register(FunctionCollector(self.inbound.collect))
        app = make_app(
            self.binds,
            config=self.config,
            store=self.store,
            outbound=self.dispatcher,
            router=self.router,
            http_metrics=http_metrics,
            registry=registry,
            front_health=self.front.health if self.front is not None else None,
            inbound=InboundApi(self.config, self.store, self.inbound.numbers, self.inbound.outbox),
        )
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, http.host, http.port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            self.http_port = address[1]
            break

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        """Stop sending, unbind (reading responses and receipts meanwhile), commit, close."""
        self.notifier.stopping()
        log_event(log, "daemon.stopping")
        started = self._started
        if "front" in started and self.front is not None:
            await self.front.stop()
        if "digest" in started and self.digest is not None:
            await self.digest.stop()
        if "dispatcher" in started:
            await self.dispatcher.stop(SHUTDOWN_DRAIN_SECONDS)
        if "binds" in started:
            await asyncio.gather(
                *(b.stop(SHUTDOWN_DRAIN_SECONDS) for b in self.binds), return_exceptions=True
            )
        if "inbound" in started:
            await self.inbound.stop()
        if "callbacks" in started:
            await self.callbacks.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if "store" in started:
            await self.store.close()
        self._started = []
        await self.notifier.close()
        log_event(log, "daemon.stopped")


async def serve(config: GatewayConfig) -> int:
    """Run the gateway until SIGTERM/SIGINT. Returns the process exit code."""
    gateway = Gateway(config)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    forced = asyncio.Event()

    def on_signal(signum: int) -> None:
        if gateway.stop_requested:
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
