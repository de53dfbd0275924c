"""Persistent ESME binds to a carrier's SMSC: connect, bind, keep alive, reconnect.

A ``CarrierBind`` owns one TCP connection at a time and runs forever until stopped: connect,
bind, serve until the link fails, wait a backoff, again. The backoff grows exponentially from
``reconnect_initial`` to ``reconnect_max`` with random jitter, so a carrier that is down is not
hammered by a fixed loop, and a fleet of gateways does not reconnect in lock step.

The application sees a bind through ``BindListener`` hooks (responses, timeouts, requests
such as deliver_sm, state changes) and sends through ``submit``; it never touches sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from gateway.logs import log_event
from gateway.metrics import Histogram, RateMeter
from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import CommandId, Status, status_name
from gateway.smpp.pdu import Pdu
from gateway.smpp.session import (
    BindFailed,
    BindType,
    Bound,
    Event,
    LinkFailed,
    ProtocolError,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
    State,
    Unbound,
    UnexpectedResponse,
)

log = logging.getLogger("smsgw.bind")

_GENERIC_NACK = int(CommandId.GENERIC_NACK)


class BindState(StrEnum):
    """What /healthz shows for a bind."""

    CONNECTING = "connecting"
    BINDING = "binding"
    BOUND = "bound"
    BACKOFF = "backoff"
    UNBINDING = "unbinding"
    STOPPED = "stopped"
    STANDBY = "standby"
    """Not connected: its bind slot is leased to another node, or not yet to this one
    (gateway.cluster)."""


TlsVersion = Literal["1.2", "1.3"]
"""Oldest TLS version a bind accepts. Older ones are not offered: OpenSSL 3 refuses TLS 1.0
and 1.1 at its default security level, and RFC 8996 deprecates them."""

_TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


class TlsSetupError(ValueError):
    """A TLS file could not be used; ``key`` names the carrier setting at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How a bind speaks TLS to its SMSC (the carrier's ``tls_*`` keys).

    The context is built at every connect, so a renewed CA bundle or client certificate is
    read on the next reconnect without a restart."""

    ca_file: str = ""
    """PEM bundle of the CAs trusted for the SMSC's certificate; "" is the system store."""
    server_name: str = ""
    """The name the SMSC's certificate must carry, also sent as SNI; "" is the host."""
    cert_file: str = ""
    """PEM client certificate chain, for SMSCs that ask for one (mutual TLS)."""
    key_file: str = ""
    """Its private key; "" when the key is in ``cert_file``."""
    min_version: TlsVersion = "1.2"
    verify: bool = True
    """False accepts any certificate under any name (logged as a warning at each start)."""

    def context(self) -> ssl.SSLContext:
        """A client context for these settings; TlsSetupError names the file at fault."""
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=self.ca_file or None
            )
        except (OSError, ValueError) as exc:
            raise TlsSetupError(
                "tls_ca_file", f"cannot load CA certificates from {self.ca_file}: {_why(exc)}"
            ) from None
        context.minimum_version = _TLS_VERSIONS[self.min_version]
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            try:
                context.load_cert_chain(self.cert_file, self.key_file or None)
            except (OSError, ValueError) as exc:
                raise TlsSetupError(
                    "tls_cert",
                    f"cannot load the client certificate {self.cert_file}"
                    f"{' with key ' + self.key_file if self.key_file else ''}: {_why(exc)}",
                ) from None
        return context


def _why(exc: BaseException) -> str:
    """An ssl or OS error as one readable phrase (``[SSL: X] y (_ssl.c:123)`` -> ``y``)."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        if exc.reason == "PEM_LIB" or exc.library == "PEM":
            return f"not a usable PEM file ({exc.reason})"
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class BindSettings:
    """Everything one bind needs, independent of how the configuration file is laid out."""

    carrier: str
    name: str
    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    bind_type: BindType = BindType.TRX
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    session: SessionConfig = field(default_factory=SessionConfig)
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
    reconnect_jitter: float = 0.2
    tls: TlsSettings | None = None
    """Connect with TLS; None is plain TCP."""
    slot: int = 0
    """Which of the carrier's ``binds`` this is, from 0: the slot leased across the
    cluster (gateway.cluster); bind ``<carrier>-<n>`` is slot n - 1."""


class Backoff:
    """Exponential backoff with jitter: initial * 2**n, capped, times 1 +/- jitter."""

    def __init__(
        self, initial: float, maximum: float, jitter: float, rng: random.Random | None = None
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * float(2 ** min(self.failures, 30)))
        self.failures += 1
        if self.jitter:
            base *= 1 + self._rng.uniform(-self.jitter, self.jitter)
        return max(0.0, min(base, self.maximum * (1 + self.jitter)))

    def reset(self) -> None:
        self.failures = 0


@dataclass(slots=True)
class BindMetrics:
    """What one bind counts for /metrics; plain numbers, updated on the event loop."""

    sent: int = 0
    """Requests sent through submit() (submit_sm, data_sm, query_sm)."""
    responses: dict[int, int] = field(default_factory=dict)
    """Their responses by command_status (generic_nack counted under its status too)."""
    generic_nacks: int = 0
    timeouts: int = 0
    lost: int = 0
    """Requests in flight when the link went down."""
    protocol_errors: int = 0
    tls_failures: int = 0
    """Connections whose TLS handshake failed or could not be set up."""
    latency: Histogram = field(default_factory=Histogram)
    """Seconds from a request on the wire to its response."""
    rate: RateMeter = field(default_factory=RateMeter)


class OutboundHooks(Protocol):
    """What a bind tells the sending side. Called from the event loop; must not block."""

    def bind_up(self, bind: CarrierBind) -> None: ...

    def bind_down(self, bind: CarrierBind, lost: list[RequestTimedOut]) -> None:
        """The link is gone; ``lost`` are requests that never got an answer."""

    def response(self, bind: CarrierBind, event: ResponseReceived) -> None: ...

    def timeout(self, bind: CarrierBind, event: RequestTimedOut) -> None: ...


class RequestHook(Protocol):
    def request(self, bind: CarrierBind, pdu: Pdu) -> None:
        """deliver_sm, data_sm or alert_notification; answer with bind.respond()."""


class BindListener(OutboundHooks, RequestHook, Protocol):
    """The application's hooks on a bind. Called from the event loop; must not block."""


class BindHooks:
    """A listener made of two sides: the outbound hooks of ``outbound`` (the dispatcher) and
    the ``request`` hook of ``inbound`` (deliver_sm, data_sm, alert_notification:
    gateway.net.deliver). The hooks are the two objects' own bound methods: no call in
    between."""

    __slots__ = ("bind_down", "bind_up", "request", "response", "timeout")

    def __init__(self, outbound: OutboundHooks, inbound: RequestHook) -> None:
        self.bind_up = outbound.bind_up
        self.bind_down = outbound.bind_down
        self.response = outbound.response
        self.timeout = outbound.timeout
        self.request = inbound.request


class RefusingListener:
    """Until a store is wired in, refuse deliver_sm with a temporary error so the SMSC keeps
    the receipt or MO and retries, rather than acknowledging something we would drop."""

    def bind_up(self, bind: CarrierBind) -> None:
        pass

    def bind_down(self, bind: CarrierBind, lost: list[RequestTimedOut]) -> None:
        pass

    def response(self, bind: CarrierBind, event: ResponseReceived) -> None:
        pass

    def timeout(self, bind: CarrierBind, event: RequestTimedOut) -> None:
        pass

    def request(self, bind: CarrierBind, pdu: Pdu) -> None:
        if pdu.RESPONSE is not None:
            bind.respond(pdu.make_response(Status.RX_T_APPN))


class CarrierBind:
    """One persistent bind. ``run()`` until ``stop()``."""

    def __init__(
        self,
        settings: BindSettings,
        listener: BindListener,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.state = BindState.STOPPED
        self.conn: SmppConnection | None = None
        self.backoff = Backoff(
            settings.reconnect_initial, settings.reconnect_max, settings.reconnect_jitter, rng
        )
        self.connects = 0
        self.last_error = ""
        self._stopping = False
        self._bound: asyncio.Future[bool] | None = None
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.became_bound = asyncio.Event()
        self.settled = asyncio.Event()
        """Set once the first attempt is over: bound, or retrying (readiness waits for it)."""
        self.metrics = BindMetrics()
        self._lost: list[RequestTimedOut] = []

    # -- what the application uses ---------------------------------------------------------

    @property
    def carrier(self) -> str:
        return self.settings.carrier

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def bound(self) -> bool:
        return self.state is BindState.BOUND

    @property
    def window_free(self) -> int:
        conn = self.conn
        if conn is None or self.state is not BindState.BOUND or not conn.writable:
            return 0
        return conn.session.window_free

    def submit(self, pdu: Pdu, context: Any = None) -> int:
        """Send a request (submit_sm, data_sm, query_sm); check window_free first."""
        conn = self.conn
        if conn is None or self.state is not BindState.BOUND:
            raise RuntimeError(f"bind {self.name} is not bound")
        seq = conn.send_request(pdu, context)
        metrics = self.metrics
        metrics.sent += 1
        metrics.rate.add(1, conn.now())
        return seq

    def respond(self, pdu: Pdu) -> None:
        if self.conn is not None:
            self.conn.send_response(pdu)

    def start(self) -> asyncio.Task[None]:
        """Run (again, after a ``stop``: a bind slot leased back to this node)."""
        self._stopping = False
        self._wakeup.clear()
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"bind-{self.name}")
        return self._task

    @property
    def running(self) -> bool:
        """Started and not stopped (connected, connecting or backing off)."""
        return self._task is not None and not self._task.done() and not self._stopping

    def hold(self) -> None:
        """Stop sending at once (fencing, gateway.cluster): ``submit`` refuses and the
        window shows no room from now on; ``stop`` then unbinds."""
        if self.state is BindState.BOUND:
            self._set_state(BindState.UNBINDING, reason="fenced")

    def standby(self) -> None:
        """Not running because its slot is not leased to this node: shown as such, and
        settled (readiness does not wait for a bind another node holds)."""
        if not self.running:
            self._set_state(BindState.STANDBY)
            self.settled.set()

    async def stop(self, drain: float = 5.0) -> None:
        """Unbind, keep reading responses and receipts up to ``drain`` seconds, close."""
        self._stopping = True
        self._wakeup.set()
        conn = self.conn
        if conn is not None and conn.session.is_bound:
            self._set_state(BindState.UNBINDING)
            conn.session.unbind(conn.now())
            conn.apply(None)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.closed), drain)
        if conn is not None:
            conn.abort()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._set_state(BindState.STOPPED)

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        tls = self.settings.tls
        if tls is not None and not tls.verify:
            log_event(
                log,
                "bind.tls_unverified",
                logging.WARNING,
                carrier=self.carrier,
                bind=self.name,
                reason="tls_verify is false: any certificate is accepted under any name",
            )
        while not self._stopping:
            await self._connect_and_serve()
            if self._stopping:
                break
            delay = self.backoff.next_delay()
            self._set_state(BindState.BACKOFF, delay=round(delay, 2), error=self.last_error)
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)

    async def _connect_and_serve(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        self._set_state(BindState.CONNECTING)
        self.connects += 1
        session = Session(Role.ESME, s.session, loop.time())
        context: ssl.SSLContext | None = None
        server_name: str | None = None
        if s.tls is not None:
            server_name = s.tls.server_name or s.host
            try:
                context = s.tls.context()
            except TlsSetupError as exc:  # a file gone or broken since the start
                self._tls_failed(f"setup: {exc}", server_name)
                return
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: SmppConnection(session, self),
                    s.host,
                    s.port,
                    ssl=context,
                    server_hostname=server_name,
                ),
                s.session.bind_timeout,
            )
        except ssl.SSLError as exc:  # the handshake failed (an SSLError is an OSError)
            self._tls_failed(_why(exc), server_name)
            return
        except (TimeoutError, OSError) as exc:
            self.last_error = f"connect: {exc or type(exc).__name__}"
            return
        if self._stopping:
            # stop() came while connecting; its cancel can be lost when the connection
            # completes at the same moment (asyncio.wait_for in 3.11): do not bind.
            conn.abort()
            return
        self.conn = conn
        self._bound = loop.create_future()
        self._set_state(BindState.BINDING)
        session.bind(
            s.bind_type,
            conn.now(),
            system_id=s.system_id,
            password=s.password,
            system_type=s.system_type,
            interface_version=s.interface_version,
            addr_ton=s.addr_ton,
            addr_npi=s.addr_npi,
            address_range=s.address_range,
        )
        conn.apply(None)
        try:
            if await self._bound:
                self.backoff.reset()
                tls = conn.transport.get_extra_info("ssl_object") if conn.transport else None
                extra = {"tls": tls.version()} if tls is not None else {}
                self._set_state(BindState.BOUND, smsc=session.system_id, **extra)
                self.became_bound.set()
                self.listener.bind_up(self)
            await conn.closed
        finally:
            if not conn.closed.done():
                conn.abort()
            self.conn = None
            self.became_bound.clear()

    # -- SessionHandler --------------------------------------------------------------------

    def connection_made(self, conn: SmppConnection) -> None:
        pass

    def events_received(self, conn: SmppConnection, events: list[Event]) -> None:
        listener = self.listener
        metrics = self.metrics
        lost: list[RequestTimedOut] = []
        for event in events:
            if isinstance(event, ResponseReceived):
                response = event.response
                status = response.command_status
                metrics.responses[status] = metrics.responses.get(status, 0) + 1
                if response.command_id == _GENERIC_NACK:
                    metrics.generic_nacks += 1
                metrics.latency.observe(conn.now() - event.sent_at)
                listener.response(self, event)
            elif isinstance(event, RequestReceived):
                listener.request(self, event.pdu)
            elif isinstance(event, RequestTimedOut):
                if conn.session.state is State.CLOSED:
                    lost.append(event)
                    metrics.lost += 1
                else:
                    metrics.timeouts += 1
                    listener.timeout(self, event)
            elif isinstance(event, Bound):
                self._resolve_bind(True)
            elif isinstance(event, BindFailed):
                refused = event.command_status
                self.last_error = (
                    "bind: no response" if refused is None else f"bind: {status_name(refused)}"
                )
                self._resolve_bind(False)
            elif isinstance(event, LinkFailed):
                self.last_error = event.reason
                log_event(
                    log, "bind.link_failed", logging.WARNING, bind=self.name, reason=event.reason
                )
            elif isinstance(event, Unbound):
                self.last_error = "unbound by peer" if event.by_peer else "unbound"
            elif isinstance(event, ProtocolError):
                metrics.protocol_errors += 1
                log_event(
                    log,
                    "bind.protocol_error",
                    logging.WARNING,
                    bind=self.name,
                    error=str(event.error),
                )
            elif isinstance(event, UnexpectedResponse):
                log_event(
                    log,
                    "bind.unexpected_response",
                    logging.DEBUG,
                    bind=self.name,
                    pdu=event.pdu.name,
                    seq=event.pdu.sequence_number,
                )
        if lost:
            self._lost.extend(lost)

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        if isinstance(exc, ssl.SSLError) and self.state is BindState.BINDING:
            # Refused after the handshake (TLS 1.3 checks a client certificate then).
            tls = self.settings.tls
            self._tls_failed(_why(exc), tls.server_name or self.settings.host if tls else None)
        self._resolve_bind(False)
        lost, self._lost = self._lost, []
        if lost or self.state in (BindState.BOUND, BindState.UNBINDING):
            self.listener.bind_down(self, lost)

    def _tls_failed(self, reason: str, server_name: str | None) -> None:
        """Count and log a TLS failure; the loop then backs off as for any failed connect,
        which also bounds how often this line is written."""
        self.metrics.tls_failures += 1
        self.last_error = f"tls: {reason}"
        log_event(
            log,
            "bind.tls_failed",
            logging.WARNING,
            carrier=self.carrier,
            bind=self.name,
            host=f"{self.settings.host}:{self.settings.port}",
            server_name=server_name,
            reason=reason,
        )

    def _resolve_bind(self, ok: bool) -> None:
        if self._bound is not None and not self._bound.done():
            self._bound.set_result(ok)

    def _set_state(self, state: BindState, **fields: Any) -> None:
        if state is not self.state:
            self.state = state
            if state in (BindState.BOUND, BindState.BACKOFF):
                self.settled.set()
            log_event(
                log,
                "bind.state",
                carrier=self.carrier,
                bind=self.name,
                state=state.value,
                **fields,
            )
