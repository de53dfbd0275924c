"""The SMSC: accounts, binds, submit_sm handling, receipts, MO delivery and fault switches.

The ``Simulator`` here owns the listeners, the control API, the accounts and the MO
injection; the parts live in modules of their own: ``account`` (an ``Account``: limits,
binds, held deliver_sm), ``esme`` (an ``EsmeConnection`` per TCP connection: binds,
submit_sm, faults), ``subscribers`` (scripted handsets' replies).

Speed: a submit_sm costs a decode, a few counters, one response encode and, when a receipt
is asked for, one heap entry. Nothing on the way logs, creates a task or awaits; delayed
work (receipts, slow responses, subscriber replies) shares one timer (``Scheduler``).
In the common case of a bulk run, ``fastpath.FastConnection`` handles submit_sm, their
receipts and the deliver_sm_resp straight from the bytes, and everything else comes here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import deque
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from gateway.logs import log_event
from gateway.smpp.aio import SmppConnection, unbind_all
from gateway.smpp.constants import Tag
from gateway.smpp.pdu import DataSm, SubmitSm, decode
from gateway.smpp.session import Role, SessionConfig
from gateway.smpp.smsc import Received
from gateway.smpp.text import ConcatMethod
from smsc_simulator.account import Account, Outgoing
from smsc_simulator.config import SimulatorConfig, TlsListenerConfig
from smsc_simulator.control import make_app
from smsc_simulator.dlr import message_text
from smsc_simulator.esme import EsmeConnection
from smsc_simulator.fastpath import FastConnection, SimSession
from smsc_simulator.faults import Faults
from smsc_simulator.mo import NoReceiver, UnknownAccount, build_mo
from smsc_simulator.moload import MoLoad
from smsc_simulator.scheduler import Scheduler
from smsc_simulator.stats import Stats
from smsc_simulator.subscribers import Subscribers

log = logging.getLogger("smsc_sim")

UNBIND_GRACE_SECONDS: Final = 2.0
"""On stop, how long bound ESMEs get to answer our unbind before their links are cut."""


def tls_context(config: TlsListenerConfig) -> ssl.SSLContext:
    """The TLS listener's server context; with ``client_ca``, a client certificate signed
    by one of those CAs is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.cert, config.key)
    if config.client_ca:
        context.load_verify_locations(config.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class Simulator:
    """The SMSC simulator: an SMPP listener and its JSON control API.

    ``await start()`` returns once both listen (``smpp_port`` and ``control_port`` then hold
    the actual ports, useful with port 0); ``await stop()`` unbinds every ESME, closes the
    listeners and cancels every timer.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.stats = Stats(0.0)
        self.faults = Faults()
        self.faults_affect_submit = False
        self.connections: set[EsmeConnection] = set()
        self.accounts: dict[str, Account] = {}
        keep = config.messages.keep
        # The parts received: the PDU, or the submit_sm's frame when the fast path took it.
        self.messages: deque[tuple[float, str, str, Received | bytes]] | None = (
            deque(maxlen=keep) if keep else None
        )
        # The MOs sent (scripted replies and injected ones), as many as ``messages.keep``.
        self.mo_log: deque[tuple[float, str, str, str]] | None = (
            deque(maxlen=keep) if keep else None
        )
        self.subscribers: Subscribers | None = None
        self.smpp_port: int | None = None
        self.smpp_tls_port: int | None = None
        """The TLS listener's port when ``[smpp.tls]`` is set."""
        self.control_port: int | None = None
        self.stopping = False
        self.wall_offset = 0.0
        self._number = 0
        self._ref = self.rng.randrange(0x10000)
        self.mo_load = MoLoad()
        """POST /v1/mo/load: MOs at a steady rate and the time to their replies (moload.py)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: Scheduler | None = None
        self._server: asyncio.Server | None = None
        self._tls_server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._drop_timer: asyncio.TimerHandle | None = None
        self._session_config = SessionConfig(
            response_timeout=config.smpp.response_timeout,
            enquire_link_interval=config.smpp.enquire_link_interval,
            bind_timeout=config.smpp.bind_timeout,
        )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def scheduler(self) -> Scheduler:
        assert self._scheduler is not None, "start() first"
        return self._scheduler

    def wall_time(self) -> float:
        assert self._loop is not None
        return self._loop.time() + self.wall_offset

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        now = loop.time()
        self.wall_offset = time.time() - now
        self.stats = Stats(now)
        self._scheduler = Scheduler(loop)
        # Message ids start from the clock so that a restarted simulator does not hand out
        # ids a gateway still holds mappings for.
        self._number = int(time.time()) << 20
        self.accounts = {a.system_id: Account(a, self, self.rng, now) for a in self.config.accounts}
        if self.config.subscribers.reply_share > 0:
            self.subscribers = Subscribers(self.config.subscribers, self, self.rng)
        smpp = self.config.smpp
        control = self.config.control
        self._server = await loop.create_server(
            self._new_connection, smpp.host, smpp.port, reuse_address=True, backlog=512
        )
        try:
            self.smpp_port = self._server.sockets[0].getsockname()[1]
            if smpp.tls is not None:
                self._tls_server = await loop.create_server(
                    self._new_connection,
                    smpp.host,
                    smpp.tls.port,
                    ssl=tls_context(smpp.tls),
                    ssl_handshake_timeout=smpp.bind_timeout,
                    reuse_address=True,
                    backlog=512,
                )
                self.smpp_tls_port = self._tls_server.sockets[0].getsockname()[1]
            app = make_app(self, max_body_bytes=control.max_body_bytes)
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            self._runner = runner
            site = web.TCPSite(runner, control.host, control.port, reuse_address=True)
            await site.start()
            address = runner.addresses[0]
            self.control_port = int(address[1])
        except BaseException:
            await self._close_listeners()
            raise
        self.set_faults(self.faults)
        tls: dict[str, Any] = {"smpp_tls": f"{smpp.host}:{self.smpp_tls_port}"} if smpp.tls else {}
        log_event(
            log,
            "sim.started",
            smpp=f"{smpp.host}:{self.smpp_port}",
            control=f"{control.host}:{self.control_port}",
            accounts=",".join(self.accounts),
            **tls,
        )

    async def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        log_event(log, "sim.stopping", connections=len(self.connections))
        if self._drop_timer is not None:
            self._drop_timer.cancel()
            self._drop_timer = None
        if self._scheduler is not None:
            self._scheduler.stop()
        if self._server is not None:
            self._server.close()
        if self._tls_server is not None:
            self._tls_server.close()
        await self._unbind_all()
        await self._close_listeners()
        log_event(log, "sim.stopped")

    async def _unbind_all(self) -> None:
        conns = [h.conn for h in list(self.connections) if h.conn is not None]
        await unbind_all(conns, UNBIND_GRACE_SECONDS)

    async def _close_listeners(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._tls_server is not None:
            self._tls_server.close()
            await self._tls_server.wait_closed()
            self._tls_server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _new_connection(self) -> SmppConnection:
        assert self._loop is not None
        session = SimSession(Role.SMSC, self._session_config, self._loop.time())
        return FastConnection(session, EsmeConnection(self), self)

    # -- state -----------------------------------------------------------------------------

    def next_number(self) -> int:
        self._number += 1
        return self._number

    def set_faults(self, faults: Faults) -> None:
        previous = self.faults
        self.faults = faults
        self.faults_affect_submit = faults.affects_submit
        if self._loop is None:
            return
        if faults.drop_link_every != previous.drop_link_every or self._drop_timer is None:
            if self._drop_timer is not None:
                self._drop_timer.cancel()
                self._drop_timer = None
            if faults.drop_link_every > 0 and not self.stopping:
                self._drop_timer = self._loop.call_later(faults.drop_link_every, self._drop_links)
        if previous.black_hole and not faults.black_hole:
            for account in self.accounts.values():
                account.drain()

    def _drop_links(self) -> None:
        self._drop_timer = None
        dropped = 0
        for handler in list(self.connections):
            if handler.conn is not None:
                handler.conn.close()
                dropped += 1
        self.stats.links_dropped += dropped
        if dropped:
            log_event(log, "sim.links_dropped", connections=dropped)
        every = self.faults.drop_link_every
        if every > 0 and not self.stopping and self._loop is not None:
            self._drop_timer = self._loop.call_later(every, self._drop_links)

    def binds(self) -> list[dict[str, Any]]:
        rows = []
        for handler in self.connections:
            conn = handler.conn
            if conn is None or not handler.bound or handler.account is None:
                continue
            bind_type = conn.session.bind_type
            rows.append(
                {
                    "system_id": handler.account.system_id,
                    "bind_type": bind_type.value if bind_type else None,
                    "peer": handler.peer,
                    "deliver_in_flight": conn.session.in_flight,
                    "submit_outstanding": handler.outstanding,
                }
            )
        return sorted(rows, key=lambda r: (r["system_id"], r["peer"]))

    def stats_snapshot(self) -> dict[str, Any]:
        assert self._loop is not None
        return self.stats.snapshot(
            self._loop.time(),
            binds=sum(len(a.binds) for a in self.accounts.values()),
            binds_by_account={a.system_id: len(a.binds) for a in self.accounts.values()},
            peak_binds_by_account={a.system_id: a.peak_binds for a in self.accounts.values()},
            receipts_pending=sum(
                1 for a in self.accounts.values() for item in a.held if item.state
            ),
            mo_pending=sum(1 for a in self.accounts.values() for item in a.held if not item.state),
            connections_open=len(self.connections),
            scheduled=len(self.scheduler),
        )

    def reset_stats(self) -> None:
        assert self._loop is not None
        self.stats.reset(self._loop.time())
        if self.subscribers is not None:
            self.subscribers.replied.clear()

    def recent_mo(self, limit: int) -> list[dict[str, Any]]:
        if self.mo_log is None or limit <= 0:
            return []
        return [
            {
                "sent_at": datetime.fromtimestamp(wall).isoformat(timespec="milliseconds"),
                "source": source,
                "destination": destination,
                "text": text,
            }
            for wall, source, destination, text in list(self.mo_log)[-limit:]
        ]

    def recent_messages(self, limit: int) -> list[dict[str, Any]]:
        if self.messages is None or limit <= 0:
            return []
        items = list(self.messages)[-limit:]
        out = []
        for wall, system_id, message_id, received in items:
            pdu = decode(received) if isinstance(received, bytes) else received
            assert isinstance(pdu, SubmitSm | DataSm)
            text, concat = message_text(pdu)
            out.append(
                {
                    "message_id": message_id,
                    "system_id": system_id,
                    "command": "submit_sm" if isinstance(pdu, SubmitSm) else "data_sm",
                    "received_at": datetime.fromtimestamp(wall).isoformat(timespec="milliseconds"),
                    "source": pdu.source_addr,
                    "destination": pdu.destination_addr,
                    "text": text,
                    "data_coding": pdu.data_coding,
                    "esm_class": pdu.esm_class,
                    "registered_delivery": pdu.registered_delivery,
                    "priority_flag": pdu.priority_flag if isinstance(pdu, SubmitSm) else 0,
                    "validity_period": pdu.validity_period if isinstance(pdu, SubmitSm) else "",
                    "concat": (
                        {"ref": concat[0], "total": concat[1], "seq": concat[2]} if concat else None
                    ),
                    "payload": pdu.get_tlv(Tag.MESSAGE_PAYLOAD) is not None,
                }
            )
        return out

    # -- MO --------------------------------------------------------------------------------

    def account_for_mo(self, system_id: str | None) -> Account:
        if system_id is not None:
            account = self.accounts.get(system_id)
            if account is None:
                raise UnknownAccount(f"account: no account with system_id {system_id!r}")
            if not account.receivers:
                raise NoReceiver(f"no receiver or transceiver of {system_id!r} is bound")
            return account
        for account in self.accounts.values():
            if account.receivers:
                return account
        raise NoReceiver("no receiver or transceiver is bound")

    def send_mo(
        self,
        account: Account,
        *,
        source: str,
        destination: str,
        text: str,
        concat: ConcatMethod = ConcatMethod.UDH8,
        parts: int | None = None,
        shuffle: bool = False,
    ) -> tuple[int, int]:
        """Queue an MO to the account's receivers. Returns (parts, ref). Raises MoError."""
        self._ref = (self._ref + 1) & 0xFFFF
        mo = build_mo(
            text,
            source=source,
            destination=destination,
            concat=concat,
            ref=self._ref,
            parts=parts,
        )
        pdus = mo.parts
        if shuffle:
            self.rng.shuffle(pdus)
        for pdu in pdus:
            account.deliver(Outgoing(pdu, 0))
        self.stats.mo_sent += 1
        if self.mo_log is not None:
            self.mo_log.append((time.time(), source, destination, text))
        return len(pdus), mo.ref
