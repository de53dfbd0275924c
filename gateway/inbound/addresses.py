"""Subscribers' and our numbers' addresses, as the HTTP API writes them.

The subscriber's address is normalised as the HTTP API does (E.164 for a TON international
or '+' number; a short code or alphanumeric sender is kept as it is), so opt-outs and
contacts match those of MTs. An MO to a number that is not configured is answered (and its
opt-outs kept) as from a short code (up to 8 digits) or an international number (E.164 when
valid), else as written.
"""

from __future__ import annotations

from typing import Final

from gateway.core import validation as check
from gateway.core.intake import Intake
from gateway.inbound.numbers import InboundNumber

TON_INTERNATIONAL: Final = 1
SHORT_CODE_MAX: Final = 8
"""Digits of the longest short code (as ``subscriber`` reads addresses)."""


class Addresses:
    """Reads addresses with the number rules of the HTTP API (``intake.numbers``)."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    def subscriber(self, address: str, ton: int) -> str:
        """A subscriber's address as the HTTP API writes numbers."""
        raw = address.strip()
        bare = raw.lstrip("+")
        if not bare.isascii() or not bare.isdigit():
            return raw  # alphanumeric: kept as it is
        if raw.startswith("+") or ton == TON_INTERNATIONAL:
            candidate = "+" + bare
        elif len(bare) <= SHORT_CODE_MAX:
            return bare  # a short code or a national short form
        else:
            candidate = bare
        try:
            return self.intake.numbers.e164(candidate)
        except check.Invalid:
            return raw

    def sender_of(self, entry: InboundNumber | None, destination: str) -> str:
        """The ``from`` of MTs that an MO to ``destination`` answers: opt-outs are kept
        against it. A number not configured is read as a short code (up to 8 digits) or an
        international number (E.164 when valid), else kept as written."""
        if entry is not None:
            return entry.sender
        long_number = len(destination.strip().lstrip("+")) > SHORT_CODE_MAX
        return self.subscriber(destination, TON_INTERNATIONAL if long_number else 0)

    def our_number(self, number: str) -> str:
        """One of our numbers as senders write it at the HTTP API (``from``)."""
        return check.sender(number, self.intake.numbers)
