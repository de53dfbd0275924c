"""The simulator's parts on their own (smsc_simulator.account, .esme, .subscribers): each is a
module of its own that works without a running ``Simulator`` around it, given the little of
one it reads (faults, stats, scheduler)."""

from __future__ import annotations

import random
from typing import Any

from gateway.config.loader import load_dataclass
from gateway.smpp.pdu import DeliverSm
from gateway.smpp.text import ConcatMethod
from smsc_simulator.account import Account, Outgoing
from smsc_simulator.config import AccountConfig, SubscribersConfig
from smsc_simulator.esme import EsmeConnection
from smsc_simulator.faults import Faults
from smsc_simulator.mo import build_mo
from smsc_simulator.server import Simulator
from smsc_simulator.stats import Stats
from smsc_simulator.subscribers import Subscribers


class StubSim:
    """What an Account and Subscribers read of the simulator."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.stats = Stats(0.0)
        self.later: list[tuple[float, Any, Any]] = []

    @property
    def scheduler(self) -> StubSim:
        return self

    def call_at(self, when: float, fn: Any, arg: Any) -> None:
        self.later.append((when, fn, arg))


def mo_part(text: str = "hello") -> DeliverSm:
    mo = build_mo(text, source="+33612345678", destination="36180", concat=ConcatMethod.UDH8, ref=1)
    [pdu] = mo.parts
    return pdu


def test_an_account_alone_holds_what_no_receiver_takes_up_to_held_max() -> None:
    sim = StubSim()
    config = load_dataclass(AccountConfig, {"system_id": "a", "password": "p", "held_max": 2})
    account = Account(config, sim, random.Random(1), 0.0)  # type: ignore[arg-type]
    receipt = Outgoing(mo_part(), 2)  # a receipt (state DELIVERED)
    for item in (Outgoing(mo_part(), 0), Outgoing(mo_part(), 0), Outgoing(mo_part(), 0), receipt):
        assert account.deliver(item) is None  # no receiver bound
    assert len(account.held) == 2
    assert (sim.stats.mo_dropped, sim.stats.receipts_dropped) == (1, 1)


def test_an_esme_connection_starts_unbound_and_counts_nothing_before_it_is_bound() -> None:
    sim = StubSim()
    handler = EsmeConnection(sim)  # type: ignore[arg-type]
    assert (handler.bound, handler.account, handler.conn) == (False, None, None)
    assert handler.push(Outgoing(mo_part(), 0)) is False
    assert sim.stats.mo_parts_sent == 0


def test_subscribers_alone_pick_the_same_numbers_every_run() -> None:
    config = load_dataclass(SubscribersConfig, {"reply_share": 0.5, "replies": [{"text": "STOP"}]})
    numbers = [f"+3361234{n:04d}" for n in range(400)]
    first = Subscribers(config, StubSim(), random.Random(1))  # type: ignore[arg-type]
    second = Subscribers(config, StubSim(), random.Random(2))  # type: ignore[arg-type]
    chosen = [n for n in numbers if first.replies(n)]
    assert chosen == [n for n in numbers if second.replies(n)]
    assert 120 < len(chosen) < 280  # about half


def test_the_simulator_module_holds_the_simulator_only() -> None:
    import smsc_simulator.server as server

    assert Simulator.__module__ == "smsc_simulator.server"
    for name in ("Account", "EsmeConnection", "Subscribers", "Outgoing"):
        assert getattr(server, name).__module__ != "smsc_simulator.server"
