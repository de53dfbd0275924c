"""The SMPP server front: upstream ESMEs bind to smsgw as to a carrier's SMSC.

One protocol implementation, two roles: each connection is the shared sans-IO ``Session``
in the SMSC role behind the shared ``SmppConnection`` adapter (as the simulator); the
session answers enquire_link, unbind, PDUs in the wrong state and undecodable PDUs
(generic_nack) by itself. ``UpstreamBind`` is the handler of one connection.

Binds: system_id and password (salted PBKDF2, checked in a worker thread), the peer's IP
against the account's networks, and ``max_binds``. Unknown system_id: ESME_RINVSYSID; wrong
password: ESME_RINVPASWD; address not allowed, too many binds: ESME_RBINDFAIL.

submit_sm / data_sm: window (submit_sm owed a response on this bind, ESME_RMSGQFUL over it)
and the account's TPS (ESME_RTHROTTLED), then the sender rules, the same intake checks as
the HTTP API (E.164 destination, sender, length, encoding; see gateway.core.intake), the
opt-out list; then ``store.accept`` and only after its commit the submit_sm_resp with
smsgw's message id.

Long messages (UDH or SAR parts) behave as an SMSC's: each part is checked alone, held
durably (``store.front_parts_add``) and answered at once after that commit with its own id
(``<message id>-<seq>``), so a stop-and-wait ESME (window 1) can send one. When the last
part is in, the parts are joined (gateway.front.submits), checked again as one text and
committed as one message with the id the first part reserved; the dispatcher cuts it again
the way the carrier wants. Its final status comes back as one receipt per part, each with
the part's id (the store writes them, see ``FrontPart``). A restart in between loses no
part: the held ones are loaded at start. Parts whose siblings do not come within
``reassembly_timeout`` (from the first part) are sent as they are, joined in order: an SMSC
would have delivered each part it accepted (logged ``front.incomplete``, counted). A joined
message the checks refuse (opted out since, too long as a whole) fails its parts with a
REJECTD receipt each.

Receipts and MO go through a durable outbox in the store (``front_*`` methods): a message
from an upstream account that asked for a receipt carries the callback URL
``smpp:<account>?rd=<n>``, and the store writes its final status into the front outbox in the
transaction that records it. One task per account sends what is due to the account's
receivers (RX/TRX binds, round robin) and removes an item only when its deliver_sm_resp is
ROK; an error or a timeout makes it due again after ``retry_delay``; a lost link makes it
due at once. Items older than the account's ``hold_max_age`` are dropped (counted, logged).
Delivery is at least once: a deliver_sm whose response was lost is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from gateway.config.front import FrontAccountConfig, FrontConfig
from gateway.core.errors import FieldError
from gateway.core.intake import Intake
from gateway.core.ledger import front_account
from gateway.core.model import MessageStatus, NewMessage, Replacement, StatusChange, new_message_id
from gateway.core.submit import Handoff, accept_and_enqueue
from gateway.core.validation import MAX_PRIORITY, MAX_VALIDITY, MIN_VALIDITY
from gateway.engine.throttle import TokenBucket
from gateway.front import manage
from gateway.front.guard import BindGuard, GuardLimits, client_key, retry_after
from gateway.front.outgoing import build_mo, build_receipt, mo_payload, receipt_info
from gateway.front.passwords import PBKDF2_ITERATIONS, verify_password
from gateway.front.refusals import RefusalLog
from gateway.front.submits import (
    Group,
    GroupKey,
    Piece,
    SubmitReassembler,
    extract,
    is_binary,
    smpp_time,
)
from gateway.logs import log_event
from gateway.smpp.address import as_number
from gateway.smpp.aio import SmppConnection, unbind_all
from gateway.smpp.constants import Status, status_name
from gateway.smpp.errors import EncodeError, LocalProtocolError
from gateway.smpp.pdu import (
    Bind,
    CancelSm,
    DataSm,
    DeliverSm,
    GenericNack,
    Pdu,
    QuerySm,
    ReplaceSm,
    SubmitSm,
    decode,
    encode,
)
from gateway.smpp.session import (
    BindRequested,
    BindType,
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
)
from gateway.smpp.smsc import (
    BIND_STOPPING,
    BIND_UNKNOWN_SYSTEM_ID,
    BIND_WRONG_PASSWORD,
    Received,
    accept_bind,
    max_binds_refusal,
    receipt_requested,
    receives,
)
from gateway.smpp.text import decode_short_message
from gateway.store.base import FRONT_CALLBACK_SCHEME, FrontItem, FrontPart
from gateway.store.ports import FrontPorts

log = logging.getLogger("smsgw.front")

POLL_SECONDS: Final = 1.0
"""Without a wake-up, an account's outbox task looks for due items this often (retries are
seconds apart; one small indexed query a second per account costs nothing)."""

REASSEMBLY_CHECK_SECONDS: Final = 1.0
"""How often incomplete long messages are checked against ``reassembly_timeout``."""

STORE_RETRY_SECONDS: Final = 1.0
"""Wait after a failed store call before the outbox task tries again."""

ACCOUNT_BURST_SECONDS: Final = 1.0
"""An account's TPS allows a burst of one second's worth, as carriers count it."""

UNBIND_GRACE_SECONDS: Final = 2.0
"""On stop, how long upstream binds get to answer our unbind before their links are cut."""

MAX_LOGGED_ID: Final = 16
"""A bind's system_id is cut to this many characters in log lines (SMPP allows 15; a hostile
peer can send thousands)."""

_REASONS: Final[dict[int, str]] = {
    Status.RSYSERR: "store failure, send again",
    Status.RSUBMITFAIL: "submit failed",
}
"""The reason logged for a refusal that gave none of its own."""

FIELD_STATUS: Final[dict[str, int]] = {
    "to": Status.RINVDSTADR,
    "from": Status.RINVSRCADR,
    "text": Status.RINVMSGLEN,
    "encoding": Status.RINVMSGLEN,
    "scheduled_at": Status.RINVSCHED,
    "validity": Status.RINVEXPIRY,
}
"""Intake field errors as the command_status of the submit_sm_resp; any other field:
ESME_RSUBMITFAIL."""


class Outbound(Handoff, Protocol):
    """What the front needs from the dispatcher (as the HTTP API), and the hold it puts on a
    message while cancel_sm or replace_sm edits it (gateway.front.manage)."""

    def carriers_up(self) -> set[str]: ...

    def withdraw(self, message_id: str) -> bool: ...

    def settle(
        self, message_id: str, *, removed: bool, replacement: Replacement | None = None
    ) -> None: ...


@dataclass(slots=True)
class AccountStats:
    submit_sm: Counter[int] = field(default_factory=Counter)
    """submit_sm (and data_sm) answered, by command_status."""
    receipts_sent: int = 0
    mo_sent: int = 0
    deliver_failed: int = 0
    """deliver_sm answered with an error, or not answered in time (retried)."""
    expired: int = 0
    """Receipts and MO dropped after hold_max_age with no receiver to take them."""
    bind_refused: Counter[int] = field(default_factory=Counter)
    incomplete: int = 0
    """Long messages sent with parts missing after reassembly_timeout."""
    parts_refused: int = 0
    """Parts (answered ROK) whose joined message the checks refused: receipted REJECTD."""
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    """query_sm, cancel_sm and replace_sm answered, by (command, command_status)."""


class FrontAccount:
    """One upstream system_id: its limits, its binds, and the sending of its outbox."""

    def __init__(self, config: FrontAccountConfig, now: float) -> None:
        self.config = config
        self.system_id = config.system_id
        self.networks = [ipaddress.ip_network(n, strict=False) for n in config.allowed_ips]
        self.bucket = (
            TokenBucket(config.tps, now, ACCOUNT_BURST_SECONDS) if config.tps > 0 else None
        )
        self.binds: list[UpstreamBind] = []
        self.receivers: list[UpstreamBind] = []
        self.stats = AccountStats()
        self.held = 0
        """Items in the outbox at the last count."""
        self.wake = asyncio.Event()
        self.in_flight: dict[int, int] = {}
        """Outbox item id -> its deliver_sm parts not answered yet."""
        self.settled: dict[int, float | None] = {}
        """Answered items not yet written back: id -> next attempt time, None when done."""
        self._rr = 0

    def allows(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack listener shows IPv4 peers so
        return any(address in network for network in self.networks)

    def receiver_with_room(self, parts: int) -> UpstreamBind | None:
        count = len(self.receivers)
        for offset in range(count):
            index = (self._rr + offset) % count
            bind = self.receivers[index]
            conn = bind.conn
            if conn is not None and conn.session.is_bound and conn.session.window_free >= parts:
                self._rr = index + 1
                return bind
        return None

    def room(self) -> int:
        return sum(
            b.conn.session.window_free
            for b in self.receivers
            if b.conn is not None and b.conn.session.is_bound
        )


class _Gate:
    """Binds from one client address waiting for, or in, their check."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


Waiting = tuple["UpstreamBind", Received]
"""A submit_sm (or data_sm) whose response is owed, with the bind it came on."""


@dataclass(slots=True)
class HeldPart:
    """A part of a long message: as stored, as received, and as read."""

    stored: FrontPart
    pdu: Received
    piece: Piece
    to: str
    sender: str
    """Destination and sender as intake wrote them (for opt-outs and refusal receipts)."""


PartGroup = Group[HeldPart]


class UpstreamBind:
    """The handler of one upstream connection (``gateway.smpp.aio.SessionHandler``)."""

    def __init__(self, front: FrontServer) -> None:
        self.front = front
        self.conn: SmppConnection | None = None
        self.account: FrontAccount | None = None
        self.bind_type: BindType | None = None
        self.ip = ""
        self.peer = ""
        self.owed = 0
        """submit_sm received and not answered yet (the account's window counts these)."""

    # -- SessionHandler --------------------------------------------------------------------

    def connection_made(self, conn: SmppConnection) -> None:
        self.conn = conn
        peer = conn.peer
        if isinstance(peer, tuple):
            self.ip = str(peer[0])
            self.peer = f"{peer[0]}:{peer[1]}"
        else:
            self.peer = str(peer)
        self.front.connections.add(self)

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        self._unregister("connection lost" if exc else "connection closed")
        self.front.connections.discard(self)

    def events_received(self, conn: SmppConnection, events: list[Event]) -> None:
        for event in events:
            try:
                self._event(conn, event)
            except Exception:  # one bad PDU must never take the front down
                log.exception("front.handler_failed peer=%s", self.peer)

    def _event(self, conn: SmppConnection, event: Event) -> None:
        if isinstance(event, RequestReceived):
            pdu = event.pdu
            if isinstance(pdu, SubmitSm | DataSm):
                self._on_message(conn, pdu)
            elif isinstance(pdu, QuerySm | CancelSm | ReplaceSm):
                self.front.manage(self, conn, pdu)
            elif pdu.RESPONSE is not None:
                conn.send_response(pdu.make_response(Status.RINVCMDID))
        elif isinstance(event, ResponseReceived):
            self.front.delivered(self, event.context, event.response)
        elif isinstance(event, RequestTimedOut):
            lost = conn.session.state is State.CLOSED
            self.front.not_delivered(self, event.context, at_once=lost)
        elif isinstance(event, BindRequested):
            self.front.bind_requested(self, conn, event)
        elif isinstance(event, Unbound | LinkFailed):
            self._unregister(str(event))
        elif isinstance(event, ProtocolError):
            log_event(
                log,
                "front.protocol_error",
                logging.DEBUG,
                peer=self.peer,
                status=event.error.command_status,
                error=str(event.error),
            )

    # -- binds -----------------------------------------------------------------------------

    def register(self, account: FrontAccount, bind_type: BindType) -> None:
        self.account = account
        self.bind_type = bind_type
        account.binds.append(self)
        if receives(bind_type):
            account.receivers.append(self)
            account.wake.set()

    def _unregister(self, reason: str) -> None:
        account = self.account
        if account is None:
            return
        self.account = None
        if self in account.binds:
            account.binds.remove(self)
        if self in account.receivers:
            account.receivers.remove(self)
        log_event(log, "front.unbound", peer=self.peer, system_id=account.system_id, reason=reason)

    # -- submit_sm -------------------------------------------------------------------------

    def answer(self, pdu: Received, status: int, message_id: str = "", reason: str = "") -> None:
        """Send the response owed for ``pdu``; a refusal is logged (rate-limited)."""
        self.owed -= 1
        account = self.account
        if account is not None:
            account.stats.submit_sm[status] += 1
        if status != Status.ROK:
            self.front.refused(self, pdu, status, reason)
        conn = self.conn
        if conn is not None:
            conn.send_response(pdu.make_response(status, message_id=message_id))

    def _on_message(self, conn: SmppConnection, pdu: Received) -> None:
        account = self.account
        if account is None:  # the session passes submit_sm only once bound
            conn.send_response(pdu.make_response(Status.RINVBNDSTS))
            return
        self.owed += 1
        if self.front.stopping:
            self.answer(pdu, Status.RSYSERR, reason="stopping")
            return
        if self.owed > account.config.window:
            self.answer(pdu, Status.RMSGQFUL, reason=f"window {account.config.window} full")
            return
        bucket = account.bucket
        if bucket is not None:
            now = conn.now()
            if bucket.available(now) < 1:
                self.answer(pdu, Status.RTHROTTLED, reason=f"over tps {account.config.tps:g}")
                return
            bucket.take(1, now)
        self.front.submit(account, self, pdu)


class FrontServer:
    """The listener, its accounts, and the delivery of receipts and MO to them.

    ``await start()`` returns once it listens (``port`` holds the actual port, useful with
    port 0); ``await stop()`` stops taking binds and submits, lets commits under way finish,
    unbinds every upstream bind, and writes back what was delivered meanwhile.
    """

    def __init__(
        self,
        config: FrontConfig,
        store: FrontPorts,
        intake: Intake,
        outbound: Outbound,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.intake = intake
        self.outbound = outbound
        self.clock = clock
        self.accounts: dict[str, FrontAccount] = {}
        self.took_over = 0
        """Outbox items another node held when its claim lapsed, taken over here."""
        self.connections: set[UpstreamBind] = set()
        self.reassembler: SubmitReassembler[HeldPart] = SubmitReassembler(config.reassembly_timeout)
        self._parts: list[tuple[HeldPart, GroupKey, UpstreamBind]] = []
        """Parts checked in this loop turn, to hold in one commit."""
        self._unjoined: list[PartGroup] = []
        """Whole (or timed-out) groups whose message commit failed: tried again."""
        self.port: int | None = None
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._batch: list[tuple[NewMessage, list[Waiting], PartGroup | None]] = []
        self._loops: list[asyncio.Task[None]] = []
        self._rng = random.Random()
        self._session_config = SessionConfig(
            response_timeout=config.response_timeout,
            enquire_link_interval=config.enquire_link_interval,
            bind_timeout=config.bind_timeout,
        )
        self.guard = BindGuard(
            GuardLimits(
                per_address=config.bind_failures_per_address,
                per_system_id=config.bind_failures_per_system_id,
                window=config.bind_failure_window,
                lockout=config.bind_lockout,
                delay=config.bind_failure_delay,
            )
        )
        self.bind_failures: Counter[str] = Counter()
        """Failed binds counted by the guard, by reason (password, system_id)."""
        self.bind_locked_out: Counter[str] = Counter()
        """Binds refused because their address or system_id is locked out, by scope."""
        self.accept_failed: Counter[str] = Counter()
        """submit_sm / data_sm answered ESME_RSYSERR because the store refused their commit,
        by the error's type (StoreUnavailable while it is short of space or its file is gone)."""
        self.refusals = RefusalLog(log)
        self._gates: dict[str, _Gate] = {}
        # An unknown system_id, when hidden, costs the same hashing as a wrong password.
        # (same iteration count as the accounts' hashes; a digest no password gives).
        rounds = config.accounts[0].password_hash.split("$")[1] if config.accounts else ""
        self._decoy_hash = f"pbkdf2_sha256${rounds or PBKDF2_ITERATIONS}${'00' * 16}${'0' * 64}"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.stopping = False
        self.accounts = {a.system_id: FrontAccount(a, now) for a in self.config.accounts}
        context: ssl.SSLContext | None = None
        if self.config.tls_cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        self._server = await loop.create_server(
            self._new_connection,
            self.config.host,
            self.config.port,
            ssl=context,
            reuse_address=True,
            backlog=128,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        await self._resume_parts()
        self._loops = [
            loop.create_task(self._outbox(account), name=f"front-{account.system_id}")
            for account in self.accounts.values()
        ]
        self._loops.append(loop.create_task(self._housekeeping(), name="front-housekeeping"))
        log_event(
            log,
            "front.started",
            listen=f"{self.config.host}:{self.port}",
            tls=context is not None,
            accounts=",".join(self.accounts),
        )

    async def stop(self, drain: float = UNBIND_GRACE_SECONDS) -> None:
        if self._server is None:
            return
        self.stopping = True
        self._server.close()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        self._commit_parts()
        self._commit_batch()
        if self._tasks:  # commits under way: their submit_sm_resp go out before the unbind
            await asyncio.wait(list(self._tasks), timeout=drain)
        # Parts still waiting for their siblings are held in the store: the next start
        # loads them (_resume_parts).
        self.reassembler.groups.clear()
        self._unjoined.clear()
        await self._unbind_all(drain)
        for account in self.accounts.values():
            with contextlib.suppress(Exception):
                await self._write_back(account)
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None
        log_event(log, "front.stopped")

    async def _unbind_all(self, grace: float) -> None:
        await unbind_all([h.conn for h in list(self.connections) if h.conn is not None], grace)

    def _new_connection(self) -> SmppConnection:
        session = Session(Role.SMSC, self._session_config, asyncio.get_running_loop().time())
        return SmppConnection(session, UpstreamBind(self))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- binds -----------------------------------------------------------------------------

    def bind_requested(
        self, handler: UpstreamBind, conn: SmppConnection, event: BindRequested
    ) -> None:
        self._spawn(self._bind(handler, conn, event))

    async def _bind(
        self, handler: UpstreamBind, conn: SmppConnection, event: BindRequested
    ) -> None:
        pdu = event.pdu
        account = self.accounts.get(pdu.system_id)
        # Binds from one client address are checked one at a time, the failure delay
        # included: 32 connections guess no faster than one, and none slips past the
        # lockout while the others are being hashed.
        key = client_key(handler.ip)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate()
        gate.users += 1
        try:
            async with gate.lock:
                if conn.session.state is not State.OPEN or conn.closed.done():
                    return  # gone while it waited
                status, reason = await self._check_bind(handler, conn, pdu, account, key)
        finally:
            gate.users -= 1
            if not gate.users:
                del self._gates[key]
        if conn.session.state is not State.OPEN or conn.closed.done():
            return  # gone meanwhile
        if status != Status.ROK or account is None:
            if account is not None:
                account.stats.bind_refused[status] += 1
            conn.session.reject_bind(pdu, status)
            conn.apply(None)
            self.refusals.log(
                "front.bind_refused",
                conn.now(),
                account=account.system_id if account is not None else "",
                status=status_name(status),
                peer=handler.peer,
                system_id=pdu.system_id[:MAX_LOGGED_ID],
                bind_type=event.bind_type.value,
                reason=reason,
            )
            return
        accept_bind(
            conn.session, pdu, self.config.system_id, conn.now(), account.config.deliver_window
        )
        handler.register(account, event.bind_type)
        conn.apply(None)
        log_event(
            log,
            "front.bound",
            peer=handler.peer,
            system_id=account.system_id,
            bind_type=event.bind_type.value,
            binds=len(account.binds),
        )

    async def _check_bind(
        self,
        handler: UpstreamBind,
        conn: SmppConnection,
        pdu: Bind,
        account: FrontAccount | None,
        key: str,
    ) -> tuple[int, str]:
        """The bind_resp status for a bind, and the reason when it is refused."""
        status: int = Status.ROK
        reason = ""
        failed: str | None = None  # what the guard counts, as bind_failures labels it
        now = conn.now()
        lock = self.guard.locked(key, pdu.system_id if account else None, now)
        if self.stopping:
            status, reason = BIND_STOPPING
        elif lock is not None:
            # Refused before the password is read: a guess now tells nothing, right or wrong.
            status = Status.RBINDFAIL
            reason = f"{lock.scope} locked out after failed binds, {retry_after(lock, now)} s left"
            self.bind_locked_out[lock.scope] += 1
        elif account is None:
            failed = "system_id"
            if self.config.hide_unknown_system_id:
                await asyncio.to_thread(verify_password, pdu.password, self._decoy_hash)
                status, reason = Status.RINVPASWD, BIND_UNKNOWN_SYSTEM_ID.reason
            else:
                status, reason = BIND_UNKNOWN_SYSTEM_ID
        elif not account.allows(handler.ip):
            status, reason = Status.RBINDFAIL, f"address {handler.ip} not allowed"
            if self.config.hide_unknown_system_id:
                # Told apart from an unknown system_id, it would say the id exists.
                await asyncio.to_thread(verify_password, pdu.password, self._decoy_hash)
                status = Status.RINVPASWD
                failed = "address_not_allowed"
                account = None  # counted against the address only, never the system_id
        elif not await asyncio.to_thread(
            verify_password, pdu.password, account.config.password_hash
        ):
            status, reason = BIND_WRONG_PASSWORD
            failed = "password"
        elif (full := max_binds_refusal(len(account.binds), account.config.max_binds)) is not None:
            status, reason = full
        if failed is not None:
            self.bind_failures[failed] += 1
            delay = self._count_failed_bind(handler, account, conn.now())
            if delay > 0 and not self.stopping:
                await asyncio.sleep(delay)  # answered late: guessing slows to one a second
        return status, reason

    def _count_failed_bind(
        self, handler: UpstreamBind, account: FrontAccount | None, now: float
    ) -> float:
        """Give a failed bind to the guard; log a lockout it starts (once per lockout).
        Returns the seconds to hold its bind_resp back."""
        before = self.guard.lockouts()
        system_id = account.system_id if account is not None else None
        delay = self.guard.failed(client_key(handler.ip), system_id, now)
        after = self.guard.lockouts()
        for scope, key in (
            ("address", client_key(handler.ip)),
            ("system_id", account.system_id if account is not None else ""),
        ):
            if after[scope] > before[scope]:
                log_event(
                    log,
                    "front.bind_lockout",
                    logging.WARNING,
                    scope=scope,
                    key=key,
                    seconds=self.config.bind_lockout,
                    peer=handler.peer,
                )
        return delay

    def refused(self, bind: UpstreamBind, pdu: Pdu, status: int, reason: str) -> None:
        """A request answered with an error: one rate-limited info line."""
        account = bind.account
        self.refusals.log(
            "front.rejected",
            asyncio.get_running_loop().time(),
            account=account.system_id if account is not None else "",
            status=status_name(status),
            peer=bind.peer,
            command=pdu.name,
            reason=reason or _REASONS.get(status, ""),
        )

    # -- query_sm, cancel_sm, replace_sm -----------------------------------------------------

    def manage(
        self, bind: UpstreamBind, conn: SmppConnection, pdu: QuerySm | CancelSm | ReplaceSm
    ) -> None:
        """Answer a query_sm, cancel_sm or replace_sm (gateway.front.manage) once the store
        has; in the order they finish, as SMPP allows (responses carry the sequence)."""
        account = bind.account
        if account is None:  # the session passes them only once bound
            conn.send_response(pdu.make_response(Status.RINVBNDSTS))
            return
        self._spawn(self._manage(bind, conn, account, pdu))

    async def _manage(
        self,
        bind: UpstreamBind,
        conn: SmppConnection,
        account: FrontAccount,
        pdu: QuerySm | CancelSm | ReplaceSm,
    ) -> None:
        try:
            if self.stopping:
                answer = manage.Answer(pdu.make_response(Status.RSYSERR), "stopping")
            elif isinstance(pdu, QuerySm):
                answer = await manage.query(self, account.system_id, pdu)
            elif isinstance(pdu, CancelSm):
                answer = await manage.cancel(self, account.system_id, pdu)
            else:
                answer = await manage.replace(self, account.system_id, pdu)
        except Exception as exc:  # the store failed: the ESME may ask again
            log_event(
                log, "front.request_failed", logging.WARNING, command=pdu.name, error=repr(exc)
            )
            answer = manage.Answer(pdu.make_response(Status.RSYSERR), "store failure")
        status = answer.pdu.command_status
        account.stats.requests[(pdu.name, status)] += 1
        if status != Status.ROK:
            self.refused(bind, pdu, status, answer.reason)
        with contextlib.suppress(LocalProtocolError):
            conn.send_response(answer.pdu)

    # -- submit_sm -------------------------------------------------------------------------

    def submit(self, account: FrontAccount, bind: UpstreamBind, pdu: Received) -> None:
        """A submit_sm within the limits: join its parts, check it, commit it, answer."""
        piece = extract(pdu)
        if piece.concat is None:
            text = decode_short_message(piece.data, piece.data_coding)
            self._prepare(account, [(bind, pdu)], pdu, text)
            return
        # A part of a long message: checked alone, held, answered with its own id.
        status, checked, reason = self._check(
            account, pdu, decode_short_message(piece.data, piece.data_coding)
        )
        if checked is None:
            bind.answer(pdu, status, reason=reason)
            return
        ref, total, seq = piece.concat
        key: GroupKey = (account.system_id, pdu.source_addr, pdu.destination_addr, ref, total)
        group = self.reassembler.open(
            key, piece, asyncio.get_running_loop().time(), lambda: new_message_id(self.clock())
        )
        group.pending += 1
        stored = FrontPart(
            part_id=f"{group.id}-{seq}",  # the same part sent again gets the same id
            message_id=group.id,
            account=account.system_id,
            source=pdu.source_addr,
            destination=pdu.destination_addr,
            ref=ref,
            total=total,
            seq=seq,
            pdu=encode(pdu),
            received_at=self.clock(),
        )
        held = HeldPart(stored, pdu, piece, checked.to, checked.sender)
        if not self._parts:
            asyncio.get_running_loop().call_soon(self._commit_parts)
        self._parts.append((held, key, bind))

    def _commit_parts(self) -> None:
        batch, self._parts = self._parts, []
        if batch:
            self._spawn(self._hold_parts(batch))

    async def _hold_parts(self, batch: list[tuple[HeldPart, GroupKey, UpstreamBind]]) -> None:
        """Hold the parts checked in one loop turn in one commit, then answer each with its
        id; a group whose last part this was is joined."""
        refused: set[str] = set()  # part ids opted out
        status: int = Status.ROK
        try:
            by_sender: dict[str, list[HeldPart]] = {}
            for held, _, _ in batch:
                by_sender.setdefault(held.sender, []).append(held)
            for sender, helds in by_sender.items():
                out = await self.store.opted_out([h.to for h in helds], sender)
                refused.update(h.stored.part_id for h in helds if h.to in out)
            await self.store.front_parts_add(
                [h.stored for h, _, _ in batch if h.stored.part_id not in refused]
            )
        except Exception as exc:
            log_event(log, "front.hold_failed", logging.WARNING, error=repr(exc))
            status = Status.RSYSERR  # temporary: the ESME sends the part again
        now = asyncio.get_running_loop().time()
        for held, key, bind in batch:
            part_id = held.stored.part_id
            answer = Status.RSUBMITFAIL if part_id in refused else status
            reason = "recipient opted out" if part_id in refused else ""
            bind.answer(held.pdu, answer, part_id if answer == Status.ROK else "", reason)
            group = self.reassembler.groups.get(key)
            if group is None or group.id != held.stored.message_id:
                continue  # joined or sent meanwhile: this was a copy of a part it has
            group.pending -= 1
            if answer != Status.ROK:
                continue
            whole, _ = self.reassembler.add(key, held.piece, held, now)
            if whole is not None:
                self._join(whole)

    def _join(self, group: PartGroup) -> None:
        """Check the parts' text as one message and commit it with the group's id; refused,
        the parts fail with a receipt each."""
        helds = group.attached()
        if not helds:
            return  # every part's commit failed: nothing was accepted
        first = helds[0]
        account = self.accounts.get(first.stored.account)
        if account is None:  # removed from the configuration since: left held
            log_event(
                log,
                "front.parts_orphaned",
                logging.WARNING,
                account=first.stored.account,
                message_id=group.id,
            )
            return
        status, message, reason = self._check(account, first.pdu, group.text())
        if message is None:
            error = f"{status_name(status)}: {reason or _REASONS.get(status, '')}"
            self._spawn(self._refuse_parts(account, group, error))
            return
        message.id = group.id
        self._queue_commit(message, [], group)

    async def _refuse_parts(self, account: FrontAccount, group: PartGroup, error: str) -> None:
        """Fail the parts of a joined message that cannot go: each gets a REJECTD receipt
        (when its registered_delivery asks for one), written with the parts' new state."""
        helds = group.attached()
        at = self.clock()
        receipts = []
        for held in helds:
            registered = receipt_requested(held.pdu.registered_delivery)
            if not registered:
                continue
            payload = {
                "id": held.stored.part_id,
                "message_id": group.id,
                "status": MessageStatus.REJECTED.value,
                "error": error,
                "at": at,
                "url": f"{FRONT_CALLBACK_SCHEME}{account.system_id}?rd={registered}",
                "to": held.to,
                "sender": held.sender,
                "created_at": held.stored.received_at,
            }
            receipts.append((account.system_id, "receipt", json.dumps(payload)))
        account.stats.parts_refused += len(helds)
        log_event(
            log,
            "front.parts_refused",
            logging.WARNING,
            account=account.system_id,
            message_id=group.id,
            parts=len(helds),
            error=error,
        )
        try:
            await self.store.front_parts_failed([group.id], receipts, at)
        except Exception as exc:
            log_event(log, "front.hold_failed", logging.WARNING, error=repr(exc))
            self._unjoined.append(group)  # held still: tried again
            return
        account.wake.set()

    async def _resume_parts(self) -> None:
        """Load the parts held before a restart back into the reassembler; join those
        whose group is whole (a stop between the last part and its join)."""
        loop_now = asyncio.get_running_loop().time()
        wall = self.clock()
        groups: dict[str, tuple[GroupKey, PartGroup]] = {}
        for stored in await self.store.front_parts_held():
            try:
                pdu = decode(stored.pdu)
            except Exception as exc:
                log_event(
                    log, "front.bad_part", logging.WARNING, id=stored.part_id, error=repr(exc)
                )
                continue
            if not isinstance(pdu, SubmitSm | DataSm):
                continue
            piece = extract(pdu)
            if piece.concat is None:
                continue
            key: GroupKey = (
                stored.account,
                stored.source,
                stored.destination,
                stored.ref,
                stored.total,
            )
            started = loop_now - max(0.0, wall - stored.received_at)
            entry = groups.get(stored.message_id)
            if entry is None:
                group: PartGroup = Group(
                    stored.total, piece.data_coding, started, id=stored.message_id
                )
                entry = groups[stored.message_id] = (key, group)
            group = entry[1]
            group.started = min(group.started, started)
            sender = as_number(pdu.source_addr, pdu.source_addr_ton) if pdu.source_addr else ""
            to = as_number(pdu.destination_addr, pdu.dest_addr_ton)
            group.parts[stored.seq] = (piece, HeldPart(stored, pdu, piece, to, sender))
        for key, group in sorted(groups.values(), key=lambda e: e[1].started):
            if group.complete():
                self._join(group)
                continue
            older = self.reassembler.groups.get(key)
            if older is not None:  # two groups under one key: the older goes as it is
                self._join(older)
            self.reassembler.groups[key] = group
        if groups:
            log_event(log, "front.parts_resumed", groups=len(groups))

    def _prepare(
        self, account: FrontAccount, waiting: list[Waiting], pdu: Received, text: str
    ) -> None:
        status, message, reason = self._check(account, pdu, text)
        if message is None:
            for bind, part in waiting:
                bind.answer(part, status, reason=reason)
            return
        self._queue_commit(message, waiting, None)

    def _check(
        self, account: FrontAccount, pdu: Received, text: str
    ) -> tuple[int, NewMessage | None, str]:
        """The status to answer, the message to commit when it is ROK, and why not."""
        config = account.config
        sender = pdu.source_addr or config.default_sender
        if not sender:
            return Status.RINVSRCADR, None, "no source_addr and no default_sender"
        if config.allowed_senders and sender not in config.allowed_senders:
            return Status.RINVSRCADR, None, "sender not in allowed_senders"
        if is_binary(pdu.data_coding):
            # smsgw carries text; binary would be mangled
            return Status.RSUBMITFAIL, None, f"binary data_coding 0x{pdu.data_coding:02x}"
        ton = pdu.source_addr_ton if pdu.source_addr else 0
        item: dict[str, Any] = {
            "to": as_number(pdu.destination_addr, pdu.dest_addr_ton),
            "from": as_number(sender, ton),
            "text": text,
        }
        if isinstance(pdu, SubmitSm) and pdu.priority_flag:
            item["priority"] = min(pdu.priority_flag, MAX_PRIORITY)
        now = self.clock()
        if isinstance(pdu, SubmitSm):
            try:
                if pdu.validity_period:
                    seconds = smpp_time(pdu.validity_period, now) - now
                    item["validity"] = int(min(max(seconds, MIN_VALIDITY), MAX_VALIDITY))
            except ValueError:
                return Status.RINVEXPIRY, None, "unreadable validity_period"
            try:
                if pdu.schedule_delivery_time:
                    item["scheduled_at"] = smpp_time(pdu.schedule_delivery_time, now)
            except ValueError:
                return Status.RINVSCHED, None, "unreadable schedule_delivery_time"
        prepared = self.intake.prepare(
            item, account=account.system_id, now=now, up=self.outbound.carriers_up()
        )
        if isinstance(prepared, list):
            return _status_of(prepared), None, "; ".join(f"{e.path}: {e.message}" for e in prepared)
        registered = receipt_requested(pdu.registered_delivery)
        if registered:
            prepared.callback_url = f"{FRONT_CALLBACK_SCHEME}{account.system_id}?rd={registered}"
        return Status.ROK, prepared, ""

    def _queue_commit(
        self, message: NewMessage, waiting: list[Waiting], group: PartGroup | None
    ) -> None:
        """Commit with the other messages checked in this loop turn: a burst of submit_sm
        read from one or more sockets becomes one opt-out query per sender and one
        ``store.accept`` (which group-commits with the HTTP API's)."""
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._commit_batch)
        self._batch.append((message, waiting, group))

    def _commit_batch(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            self._spawn(self._commit(batch))

    async def _commit(
        self, batch: list[tuple[NewMessage, list[Waiting], PartGroup | None]]
    ) -> None:
        refused: set[str] = set()  # message ids opted out
        accepted: list[NewMessage] = []
        status: int = Status.ROK
        try:
            by_sender: dict[str, list[NewMessage]] = {}
            for message, _, _ in batch:
                by_sender.setdefault(message.sender, []).append(message)
            for sender, messages in by_sender.items():
                out = await self.store.opted_out([m.to for m in messages], sender)
                refused.update(m.id for m in messages if m.to in out)
            accepted = [m for m, _, _ in batch if m.id not in refused]
            # Durable before answered; those a bind has room for leave with no second commit.
            await accept_and_enqueue(self.store, self.outbound, accepted)
        except Exception as exc:
            status = Status.RSYSERR  # temporary: the ESME sends them again
            error = type(exc).__name__
            self.accept_failed[error] += sum(len(waiting) for _, waiting, _ in batch)
            # Every batch fails while the store is degraded: rate-limited, counted above.
            self.refusals.log(
                "front.accept_failed",
                asyncio.get_running_loop().time(),
                account="",
                status=error,
                level=logging.WARNING,
                error=repr(exc),
                messages=len(batch),
            )
        joined: list[str] = []
        for message, waiting, group in batch:
            answer = Status.RSUBMITFAIL if message.id in refused else status
            message_id = message.id if answer == Status.ROK else ""
            reason = "recipient opted out" if message.id in refused else ""
            for bind, pdu in waiting:
                bind.answer(pdu, answer, message_id, reason)
            if group is None:
                continue
            if answer == Status.ROK:
                joined.append(group.id)
            elif answer == Status.RSYSERR:
                self._unjoined.append(group)  # its parts are held: tried again
            else:
                account = self.accounts.get(group.attached()[0].stored.account)
                if account is not None:
                    await self._refuse_parts(account, group, "refused: opted out")
        if joined:
            try:  # their data is no longer needed; a restart would mark them as well
                await self.store.front_parts_joined(joined)
            except Exception as exc:
                log_event(log, "front.hold_failed", logging.WARNING, error=repr(exc))

    # -- receipts and MO: the outbox -------------------------------------------------------

    async def deliver_mo(
        self,
        account: str,
        *,
        source: str,
        destination: str,
        text: str,
        received_at: float | None = None,
    ) -> None:
        """Hold an MO for ``account`` durably and deliver it as deliver_sm to one of its
        RX/TRX binds, with the same holding and retry as receipts. Returns once the MO is
        committed (answer the carrier's deliver_sm after that). KeyError: no such account."""
        found = self.accounts[account]
        at = self.clock() if received_at is None else received_at
        await self.store.front_enqueue(
            [(account, "mo", mo_payload(source, destination, text, at))], self.clock()
        )
        found.wake.set()

    def wake_outbox(self, account: str) -> None:
        """Items for ``account`` ("": for any) are in the outbox (another node's commit,
        gateway.takeover): its outbox looks now, not at its next poll."""
        targets = self.accounts.values() if not account else [self.accounts.get(account)]
        for found in targets:
            if found is not None:
                found.wake.set()

    def notify_changes(self, changes: Sequence[StatusChange]) -> None:
        """A ``ChangesHook``: wake the accounts whose messages reached a final status (the
        store has just put their receipts in the outbox)."""
        for change in changes:
            if not change.callback_url:
                continue
            name = front_account(change.callback_url)
            account = self.accounts.get(name) if name is not None else None
            if account is not None:
                account.wake.set()

    def mo_account_for(self, destination: str) -> str | None:
        """The upstream account ``[front] mo_routes`` sends MO to ``destination`` to."""
        routes = self.config.mo_routes
        found = routes.get(destination)
        if found is None and destination.startswith("+"):
            found = routes.get(destination[1:])
        elif found is None:
            found = routes.get("+" + destination)
        return found

    def _owner(self, item_id: int) -> FrontAccount | None:
        for account in self.accounts.values():
            if item_id in account.in_flight:
                return account
        return None

    def delivered(self, bind: UpstreamBind, context: Any, response: Pdu) -> None:
        """A deliver_sm was answered: the item is done once all its parts are ROK."""
        if not isinstance(context, int):
            return
        ok = response.command_id != GenericNack.command_id and response.command_status == 0
        if not ok:
            self.not_delivered(bind, context, at_once=False)
            return
        account = self._owner(context)
        if account is None:  # a part of an item already failed on another part
            return
        left = account.in_flight[context]
        if left > 1:
            account.in_flight[context] = left - 1
            return
        del account.in_flight[context]
        account.settled[context] = None
        account.wake.set()

    def not_delivered(self, bind: UpstreamBind, context: Any, *, at_once: bool) -> None:
        """Refused or unanswered: due again after retry_delay, or at once for a lost link."""
        account = self._owner(context) if isinstance(context, int) else None
        if account is None:
            return
        del account.in_flight[context]
        account.stats.deliver_failed += not at_once
        delay = 0.0 if at_once else self.config.retry_delay
        account.settled[context] = self.clock() + delay
        account.wake.set()

    async def _write_back(self, account: FrontAccount) -> None:
        settled = dict(account.settled)
        if not settled:
            return
        done = [i for i, at in settled.items() if at is None]
        if done:
            await self.store.front_done(done)
        retry: dict[float, list[int]] = {}
        for item_id, at in settled.items():
            if at is not None:
                retry.setdefault(at, []).append(item_id)
        for at, ids in retry.items():
            await self.store.front_retry(ids, at)
        for item_id in settled:
            if account.settled.get(item_id, 0.0) == settled[item_id]:
                del account.settled[item_id]

    async def _outbox(self, account: FrontAccount) -> None:
        while True:
            account.wake.clear()
            try:
                await self._write_back(account)
                if await self._send_due(account):
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_event(
                    log,
                    "front.outbox_failed",
                    logging.WARNING,
                    account=account.system_id,
                    error=repr(exc),
                )
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await account.wake.wait()

    async def _send_due(self, account: FrontAccount) -> bool:
        """Send due items to receivers with room. True when it should run again at once."""
        room = account.room()
        if room <= 0:
            return False
        skip = len(account.in_flight) + len(account.settled)
        now = self.clock()
        items = await self.store.front_due(account.system_id, now, room + skip)
        taken = [item for item in items if item.taken_from is not None]
        if taken:
            self.took_over += len(taken)
            log_event(
                log,
                "front.took_over",
                logging.WARNING,
                account=account.system_id,
                items=len(taken),
                nodes=",".join(sorted({str(item.taken_from) for item in taken})),
                detail="claimed by a node whose claim lapsed: delivered from here",
            )
        sent = 0
        for item in items:
            if item.id in account.in_flight or item.id in account.settled:
                continue
            if now - item.created_at > account.config.hold_max_age:
                account.stats.expired += 1
                account.settled[item.id] = None
                log_event(
                    log,
                    "front.expired",
                    logging.WARNING,
                    account=account.system_id,
                    kind=item.kind,
                    id=item.id,
                )
                continue
            pdus = self._pdus(item)
            if not pdus:  # not asked for (failure-only receipts), or unusable: done
                account.settled[item.id] = None
                continue
            bind = account.receiver_with_room(len(pdus))
            if bind is None or bind.conn is None:
                break
            try:
                for pdu in pdus:
                    bind.conn.send_request(pdu, item.id)
            except (LocalProtocolError, EncodeError) as exc:
                log_event(log, "front.deliver_failed", logging.WARNING, error=repr(exc))
                break
            account.in_flight[item.id] = len(pdus)
            sent += 1
            if item.kind == "receipt":
                account.stats.receipts_sent += 1
            else:
                account.stats.mo_sent += 1
        return bool(account.settled) or (sent > 0 and len(items) >= room + skip)

    def _pdus(self, item: FrontItem) -> list[DeliverSm]:
        try:
            if item.kind == "mo":
                account = self.accounts[item.account]
                window = account.config.deliver_window
                return build_mo(item.payload, self._rng.randrange(0x100), window)
            receipt = build_receipt(receipt_info(item.payload))
            return [receipt] if receipt is not None else []
        except (ValueError, KeyError, TypeError) as exc:
            log_event(log, "front.bad_item", logging.WARNING, id=item.id, error=repr(exc))
            return []

    async def _housekeeping(self) -> None:
        """Send long messages whose parts stopped coming; count what each account holds."""
        loop = asyncio.get_running_loop()
        while True:
            retry, self._unjoined = self._unjoined, []
            for group in retry:
                self._join(group)
            for group in self.reassembler.expired(loop.time()):
                self._incomplete(group)
            with contextlib.suppress(Exception):
                held = await self.store.front_pending()
                for account in self.accounts.values():
                    account.held = held.get(account.system_id, 0)
            await asyncio.sleep(REASSEMBLY_CHECK_SECONDS)

    def _incomplete(self, group: PartGroup) -> None:
        """Parts whose siblings did not come within reassembly_timeout: each was accepted,
        so it goes, joined in order with the others that came (an SMSC delivers every part
        it accepted; the handset shows what it got)."""
        helds = group.attached()
        if not helds:
            return
        account = self.accounts.get(helds[0].stored.account)
        if account is not None:
            account.stats.incomplete += 1
        missing = [seq for seq in range(1, group.total + 1) if seq not in group.parts]
        log_event(
            log,
            "front.incomplete",
            logging.WARNING,
            account=helds[0].stored.account,
            message_id=group.id,
            missing=",".join(map(str, missing)),
        )
        self._join(group)

    # -- observation -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``front`` in /healthz: where it listens, and each account's binds."""
        return {
            "listen": f"{self.config.host}:{self.port}",
            "accounts": [
                {
                    "account": account.system_id,
                    "binds": [
                        {
                            "type": b.bind_type.value if b.bind_type else "",
                            "peer": b.peer,
                        }
                        for b in account.binds
                    ],
                    "held": account.held,
                }
                for account in self.accounts.values()
            ],
        }


def _status_of(errors: list[FieldError]) -> int:
    for error in errors:
        status = FIELD_STATUS.get(error.path)
        if status is not None:
            return status
    return Status.RSUBMITFAIL


__all__ = ["FrontAccount", "FrontServer", "UpstreamBind"]
