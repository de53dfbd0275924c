"""The daemon's lifecycle: start every component or none, serve, shut down with a bounded drain.

Start-up order: HTTP listener first (so a port clash stops us before any carrier sees a
bind), then the binds. If anything fails to start, what did start is stopped again and the
error propagates: the daemon never runs half-started. Signals belong to the daemon (aiohttp
runs with ``handle_signals=False``): SIGTERM/SIGINT start a graceful stop, a second one forces
the exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import gctune
from gateway.app.lifecycle import ReloadHook, reload_gateway, wait_settled
from gateway.app.observe import gateway_metrics
from gateway.app.sdnotify import Notifier
from gateway.binds import BindSettings, CarrierBind, RefusingListener
from gateway.callback_policy import CallbackPolicy
from gateway.campaigns.wiring import Campaigns
from gateway.cluster import SlotKeeper
from gateway.config import CarrierConfig, GatewayConfig
from gateway.core.intake import CarrierTexts, Intake
from gateway.core.model import StatusChange
from gateway.core.routing import Route, Router
from gateway.engine.callbacks import CallbackSender
from gateway.engine.dispatcher import Dispatcher
from gateway.front.metric_families import front_metrics
from gateway.front.server import FrontServer
from gateway.http.app import (
    FAST_LANE_KEY,
    add_cluster_health,
    add_store_health,
    health,
    make_app,
)
from gateway.http.connguard import ConnectionGuard, GuardSettings, serve_guarded
from gateway.http.drain import Drain
from gateway.http.fastlane import FastLane
from gateway.http.inbound import InboundApi
from gateway.http.request_metrics import HttpMetrics
from gateway.inbound.campaign_directory import CampaignDirectory
from gateway.inbound.service import InboundService
from gateway.lease import LeaseKeeper
from gateway.links.server import LinkServer
from gateway.logs import log_event
from gateway.metrics import FunctionCollector
from gateway.reports.digest import DigestScheduler
from gateway.signing import Signers
from gateway.smpp.session import BindType, SessionConfig
from gateway.store.claims import WAKE_CALLBACKS, WAKE_FRONT, WAKE_QUEUE, ClaimSettings
from gateway.store.factory import open_store
from gateway.store.leases import NodeInfo
from gateway.takeover import Look, Takeover

log = logging.getLogger("smsgw.daemon")

FORCED_EXIT = 1
"""serve()'s exit code when a second SIGTERM/SIGINT cut the graceful stop short."""


class StartupError(Exception):
    """The gateway could not start (what did start was stopped again); the message says
    why. ``smsgw run`` prints it and exits 1."""


SHUTDOWN_DRAIN_SECONDS = 5.0
"""The default of ``[shutdown] drain_seconds`` (kept for callers of this name)."""


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
            tls=carrier.tls_settings,
            slot=n - 1,
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
        claims = ClaimSettings(config.node.id, config.node.claim_seconds)
        # The configured backend ([store] backend): each consumer below gets the ports it
        # uses; nothing here names a backend.
        self.stores = open_store(config.store, config.node.data_path, claims)
        self.store = self.stores.store
        self.lease = LeaseKeeper(self.store, claims)
        self.binds: list[CarrierBind] = [
            CarrierBind(settings, RefusingListener())
            for carrier in config.carriers
            for settings in bind_settings(carrier)
        ]
        self.started_at = time.time()
        # The binds run only while their slot is leased to this node (gateway.cluster): on
        # one SQLite file, every slot; on a shared database, this node's share.
        self.slots = SlotKeeper(
            self.stores.leases,
            self.binds,
            config.cluster.lease_seconds,
            self._node_info,
        )
        self.retention = self.stores.pruner(config.retention)
        self.router = Router(
            [Route(r.prefix, r.carriers, r.weights) for r in config.routes],
            [c.name for c in config.carriers],
        )
        # One intake, shared by the HTTP API, the SMPP front and the MO replies; the
        # campaign runner has its own (a smaller number cache) over the same carrier
        # settings. A reload updates those settings once, for every path.
        self.carrier_texts = CarrierTexts(config.carriers)
        self.intake = Intake(
            config.messages,
            self.carrier_texts,
            self.router,
            CallbackPolicy.from_config(config.callbacks),
        )
        policy = CallbackPolicy.from_config(config.callbacks)
        self.callbacks = CallbackSender(
            self.store, policy=policy, signers=Signers(config.signing_secrets())
        )
        # The dispatcher listens on every bind: its outbound hooks (responses, timeouts) and
        # its deliveries (deliver_sm: receipts and MO, gateway.net.deliver).
        self.dispatcher = Dispatcher(
            config, self.store, self.binds, self.router, on_changes=self._on_changes
        )
        self.campaigns = Campaigns(
            config,
            self.store,
            self.dispatcher,
            self.router,
            carriers=self.carrier_texts,
            tables=self.stores.campaigns,
        )
        self.front: FrontServer | None = None
        if config.front is not None:  # the SMPP server for upstream ESMEs
            self.front = FrontServer(config.front, self.store, self.intake, self.dispatcher)
        # MOs: the receipt handler hands every deliver_sm that is no receipt to the inbound
        # service, whose replies go out through the dispatcher like any accepted message.
        self.inbound = InboundService(
            config,
            self.store,
            self.intake,
            self.dispatcher,
            directory=campaigns or self.campaigns.directory,
            notify_callbacks=self.callbacks.notify,
        )
        self.slots.on_share = self.dispatcher.set_account_share
        self.dispatcher.deliveries.mo_handler = self.inbound.handle_pdu
        self.dispatcher.deliveries.mo_batch_handler = self.inbound.handle_pdus
        self.inbound.upstream = self.front  # [front.mo_routes]: numbers owned upstream
        # The daily campaign digest, when [digest] is configured; its campaigns are set by
        # the campaign side (``self.digest.campaigns``), none until then.
        self.digest: DigestScheduler | None = None
        if config.digest is not None:
            tz = config.digest.tzinfo(config.node)
            self.digest = DigestScheduler(config.digest, tz, self.store, node_id=config.node.id)
            self.digest.campaigns = self.campaigns.digest_source
        # The public short-link listener, when [links] is configured (gateway.links).
        self.links: LinkServer | None = None
        if config.links is not None:
            self.links = LinkServer(config.links, self.stores.links)
        # Work other nodes left, taken up while this node runs (gateway.takeover): woken by
        # the store's commits (PostgreSQL NOTIFY), and at each kind's polling rhythm.
        every = config.node.takeover_seconds
        self.takeover = Takeover(
            self.store,
            [
                Look("message", every, self._take_over_messages, WAKE_QUEUE, self.dispatcher.wants),
                Look("interaction", every, self.inbound.take_over),
                Look("campaign", 2 * every, self.campaigns.runner.take_over),
                Look("import", config.node.claim_seconds, self.campaigns.importer.take_over),
            ],
            hooks={WAKE_CALLBACKS: self._wake_callbacks, WAKE_FRONT: self._wake_front},
        )
        self._runner: web.AppRunner | None = None
        self._fast_lane: FastLane | None = None
        self._http_server: asyncio.Server | None = None
        self.http_guard = ConnectionGuard(GuardSettings.from_config(config.http))
        self.drain = Drain(config.shutdown.retry_after_seconds, self._health)
        self.reload_hooks: list[ReloadHook] = [self.inbound.reload, self._reload_signers]
        """Called with the new GatewayConfig on every accepted SIGHUP reload."""
        self._ready_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._started: list[str] = []
        self.http_port: int | None = None

    def _node_info(self) -> NodeInfo:
        """What this node says of itself at each lease round (gateway.cluster)."""
        front = self.front
        return NodeInfo(
            self.config.node.id,
            http=f"{self.config.http.host}:{self.http_port}" if self.http_port else "",
            front=f"{front.config.host}:{front.port}" if front and front.port else "",
            started_at=self.started_at,
        )

    def _reload_signers(self, config: GatewayConfig) -> None:
        """Signing secrets change on a reload (a rotation needs no restart)."""
        self.callbacks.signers.update(config.signing_secrets())

    async def _take_over_messages(self) -> None:
        self.dispatcher.take_over()

    def _wake_callbacks(self, key: str) -> None:
        self.callbacks.notify()

    def _wake_front(self, account: str) -> None:
        if self.front is not None:
            self.front.wake_outbox(account)

    def taken_over(self) -> dict[str, int]:
        """Work taken over from other nodes while running, by kind (``/metrics``)."""
        return {
            "message": self.dispatcher.took_over,
            "interaction": self.inbound.stats.taken_over,
            "campaign": self.campaigns.runner.took_over,
            "import": self.campaigns.importer.took_over,
            "callback": self.callbacks.stats.taken_over,
            "front": self.front.took_over if self.front is not None else 0,
        }

    def _on_changes(self, changes: Sequence[StatusChange]) -> None:
        self.callbacks.notify_changes(changes)
        if self.front is not None:
            self.front.notify_changes(changes)

    async def start(self) -> None:
        """Start everything, or stop what started and raise: never half-started."""
        try:
            await self.store.open()
            self._started.append("store")
            await self.lease.start()
            self._started.append("lease")
            await self.campaigns.open()
            await self._start_http()
            self._started.append("http")
            await self.dispatcher.start()
            self._started.append("dispatcher")
            # After the dispatcher (pending interactions may reply at once), before the
            # binds (until then an MO would be answered ESME_RX_T_APPN).
            await self.inbound.start()
            self._started.append("inbound")
            self._started.append("binds")
            await self.slots.start()  # starts the binds of the slots leased to this node
            self._started.append("slots")
            await self.callbacks.start()
            self._started.append("callbacks")
            await self.campaigns.start()
            self._started.append("campaigns")
            await self.retention.start()
            self._started.append("retention")
            if self.links is not None:
                self._started.append("links")
                await self.links.start()
            if self.front is not None:
                self._started.append("front")
                await self.front.start()
            if self.digest is not None:
                await self.digest.start()
                self._started.append("digest")
            # Last: every component a look hands work to is running.
            await self.takeover.start()
            self._started.append("takeover")
        except BaseException:
            await self.stop()
            raise
        self.notifier.start_watchdog()
        self._ready_task = asyncio.create_task(self._announce_ready(), name="ready")
        log_event(
            log,
            "daemon.started",
            http=f"{self.config.http.host}:{self.http_port}",
            binds=len(self.binds),
            store=str(self.config.store_path),
        )
        if self.config.node.development:
            log_event(
                log,
                "daemon.development",
                logging.WARNING,
                reason="[node] development = true: credentials published in the repository"
                " are accepted; never set it in production",
            )

    def _health(self) -> dict[str, object]:
        """/healthz's body (the draining answer reuses it)."""
        body: dict[str, object] = health(self.binds)
        if self.front is not None:
            body["front"] = self.front.health()
        body["receipts"] = self.dispatcher.receipts.health()
        add_cluster_health(body, self.slots.health())
        add_store_health(body, self.stores.health)
        return body

    def new_bind(self, settings: BindSettings) -> CarrierBind:
        return CarrierBind(settings, RefusingListener())

    async def _announce_ready(self) -> None:
        """READY=1 once every bind is bound or retrying (the HTTP port already listens)."""
        await wait_settled(self.binds)
        up = sum(b.bound for b in self.binds)
        self.notifier.ready(f"{up}/{len(self.binds)} binds up")
        log_event(log, "daemon.ready", binds_up=up, binds=len(self.binds))

    async def _start_http(self) -> None:
        http = self.config.http
        if len(http.tokens) > 1:
            # Several tokens, some without scopes: they still see every account (as every
            # token did before accounts); say so, once per start.
            for token in http.tokens:
                if token.scopes is None:
                    log_event(
                        log,
                        "http.token_admin",
                        logging.WARNING,
                        token=token.name,
                        reason="no scopes: admin on every account; give it scopes"
                        " (send, read, campaigns) to confine it to its account",
                    )
        http_metrics = HttpMetrics()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FunctionCollector(lambda: gateway_metrics(self, http_metrics)))
        front = self.front
        if front is not None:
            registry.register(FunctionCollector(lambda: front_metrics(front)))
        registry.register(FunctionCollector(self.inbound.collect))
        if self.links is not None:
            registry.register(FunctionCollector(self.links.collect))
        registry.register(FunctionCollector(self.http_guard.collect))
        app = make_app(
            self.binds,
            config=self.config,
            store=self.store,
            outbound=self.dispatcher,
            router=self.router,
            http_metrics=http_metrics,
            registry=registry,
            campaigns=self.campaigns.parts,
            front_health=self.front.health if self.front is not None else None,
            store_health=self.stores.health,
            inbound=InboundApi(self.config, self.store, self.inbound.numbers, self.inbound.outbox),
            intake=self.intake,
            receipts_health=self.dispatcher.receipts.health,
            requeued=self.inbound.requeued,
            queue_depth=self.dispatcher.queue_depth,
            # The guard sees every request start and end (gateway.http.connguard); refusals
            # are logged; a draining gateway answers 503 before errors and auth run.
            guard=self.http_guard,
            drain=self.drain,
            log_refusals=True,
            cluster_health=self.slots.health,
        )
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=http.idle_timeout,
        )
        await runner.setup()
        try:
            server = await serve_guarded(
                runner, self.http_guard, http.host, http.port, app[FAST_LANE_KEY]
            )
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._http_server = server
        self._fast_lane = app[FAST_LANE_KEY]
        for sock in server.sockets:
            self.http_port = sock.getsockname()[1]
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
        self.drain.start()
        drain = self.config.shutdown.drain_seconds
        log_event(log, "daemon.stopping", drain_seconds=drain)
        if self._ready_task is not None:
            self._ready_task.cancel()
            self._ready_task = None
        started = self._started
        if "takeover" in started:  # first: take no more work up
            await self.takeover.stop()
        if "slots" in started:  # no bind starts or stops by a lease from now on
            await self.slots.stop()
        if "front" in started and self.front is not None:
            await self.front.stop()
        if "digest" in started and self.digest is not None:
            await self.digest.stop()
        if "links" in started and self.links is not None:
            await self.links.stop()
        if "retention" in started:
            await self.retention.stop()
        if "store" in started:
            await self.campaigns.stop()

        async def unbind() -> None:
            await asyncio.gather(*(b.stop(drain) for b in self.binds), return_exceptions=True)

        # The binds unbind between the dispatcher's wait for answers and the end of its
        # receipt handling: a receipt that comes while a bind drains is stored, not refused.
        if "dispatcher" in started:
            await self.dispatcher.stop(drain, unbind if "binds" in started else None)
        elif "binds" in started:
            await unbind()
        if "inbound" in started:
            await self.inbound.stop()
        if "callbacks" in started:
            await self.callbacks.stop()
        if self._http_server is not None:
            self._http_server.close()  # no new connections; runner.cleanup closes the rest
            self._http_server = None
        if self._fast_lane is not None:  # its answers under way, then its connections
            await self._fast_lane.close(drain)
            self._fast_lane = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if "slots" in started:  # unbound: the other nodes may bind these slots at once
            await self.slots.leave()
        if "lease" in started:  # everything that claims has stopped: give the rest up
            await self.lease.stop()
        if "store" in started:
            await self.store.close()
        self._started = []
        await self.notifier.close()
        log_event(log, "daemon.stopped")


async def serve(config: GatewayConfig, config_path: Path | None = None) -> int:
    """Run the gateway until SIGTERM/SIGINT; SIGHUP reloads ``config_path`` (see
    gateway.app.lifecycle). Returns the process exit code."""
    gateway = Gateway(config)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    forced = asyncio.Event()
    reload_lock = asyncio.Lock()
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        async with reload_lock:  # one at a time, in the order the signals came
            if config_path is not None and not gateway.stop_requested:
                await reload_gateway(gateway, config_path)

    def on_hangup() -> None:
        log_event(log, "daemon.signal", signal="SIGHUP")
        task = loop.create_task(reload(), name="reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    def on_signal(signum: int) -> None:
        if gateway.stop_requested:
            log_event(log, "daemon.forced_exit", logging.WARNING, signal=signum)
            forced.set()
        else:
            log_event(log, "daemon.signal", signal=signal.Signals(signum).name)
            gateway.request_stop()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        try:
            await gateway.start()
        except Exception as exc:
            raise StartupError(str(exc) or type(exc).__name__) from exc
        gctune.tune()  # started: freeze what start-up made, fewer collections from now on
        await gateway.wait_stopped()
        if reloads:  # a reload under way finishes first: never stop half-reloaded
            await asyncio.gather(*reloads, return_exceptions=True)
        stop_task = asyncio.create_task(gateway.stop())
        forced_task = asyncio.create_task(forced.wait())
        done, _ = await asyncio.wait({stop_task, forced_task}, return_when=asyncio.FIRST_COMPLETED)
        forced_task.cancel()
        if stop_task not in done:
            # Forced: leave the stop where it is. The caller exits the process at once
            # (gateway.app.cli); every accepted message is already committed, and a crash-safe
            # store needs no orderly close.
            return FORCED_EXIT
        return 0
    finally:
        for sig in (*signals, signal.SIGHUP):
            loop.remove_signal_handler(sig)
