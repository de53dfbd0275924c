"""Scripted handsets: a fixed share of destination numbers answer each MT with an MO."""

from __future__ import annotations

import random
import zlib
from typing import TYPE_CHECKING

from gateway.smpp.smsc import Received
from smsc_simulator.config import SubscribersConfig
from smsc_simulator.dlr import DelaySampler, message_text
from smsc_simulator.mo import MoError

if TYPE_CHECKING:
    from smsc_simulator.account import Account
    from smsc_simulator.server import Simulator


class Subscribers:
    """Scripted handsets: a fixed share of destination numbers answer each MT with an MO."""

    def __init__(self, config: SubscribersConfig, sim: Simulator, rng: random.Random) -> None:
        self.config = config
        self.sim = sim
        self.rng = rng
        # crc32 spreads numbers evenly over 32 bits and is the same in every run and process.
        self._threshold = int(config.reply_share * 0x1_0000_0000)
        self._texts = [r.text for r in config.replies]
        self._weights = [r.weight for r in config.replies]
        self._delay = DelaySampler(config.delay, rng)
        self._per_number = config.reply_once == "number"
        self.replied: set[str] = set()

    def replies(self, number: str) -> bool:
        """Whether this number is one of the replying ones (a pure function of the number)."""
        return zlib.crc32(number.encode("latin-1")) < self._threshold

    def consider(self, account: Account, pdu: Received, now: float) -> None:
        number = pdu.destination_addr
        if not self.replies(number):
            return
        _text, concat = message_text(pdu)
        if concat is not None and concat[2] != 1:
            return  # one reply per message: on its first part
        if self._per_number:
            if number in self.replied:
                return
            self.replied.add(number)
        self.sim.scheduler.call_at(
            now + self._delay(), self._reply, (account, number, pdu.source_addr)
        )

    def _reply(self, arg: tuple[Account, str, str]) -> None:
        account, number, to = arg
        text = self.rng.choices(self._texts, self._weights)[0]
        try:
            self.sim.send_mo(account, source=number, destination=to, text=text)
        except MoError:
            self.sim.stats.internal_errors += 1
            return
        self.sim.stats.subscriber_replies[text] += 1
