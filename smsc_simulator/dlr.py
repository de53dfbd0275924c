"""What an SMSC decides about a message after accepting it: when its receipt comes, what it
says, and the deliver_sm that carries it (built by gateway.smpp.smsc.receipt_deliver_sm, as
the front's receipts; whether one is wanted: gateway.smpp.smsc.wants_receipt)."""

from __future__ import annotations

import bisect
import itertools
import random
from datetime import datetime
from typing import Final

from gateway.smpp.constants import Tag
from gateway.smpp.pdu import DeliverSm
from gateway.smpp.receipt import MessageState, format_receipt_text
from gateway.smpp.smsc import Received, receipt_deliver_sm, user_data
from gateway.smpp.text import decode_short_message
from smsc_simulator.config import DelayConfig, OutcomesConfig

# The err: value and the network_error_code TLV (network type 3 = GSM, then a GSM MAP error
# code, the usual content in the field) written for each final state.
_GSM: Final = 3
ERROR_CODES: Final[dict[MessageState, int]] = {
    MessageState.DELIVERED: 0,
    MessageState.UNDELIVERABLE: 1,  # MAP unknown subscriber
    MessageState.EXPIRED: 27,  # MAP absent subscriber
    MessageState.REJECTED: 13,  # MAP call barred
}
_NETWORK_ERROR: Final[dict[MessageState, bytes]] = {
    state: bytes((_GSM,)) + code.to_bytes(2, "big") for state, code in ERROR_CODES.items()
}
NETWORK_ERROR: Final = _NETWORK_ERROR
"""The network_error_code value written for each final state (others: 03 00 00)."""
_ERR_TEXT: Final[dict[int, str]] = {state: f"{code:03d}" for state, code in ERROR_CODES.items()}

RECEIPT_TEXT_CHARS: Final = 20
"""Appendix B: the text: field holds the first 20 characters of the original message.
Printable ASCII stays; anything else becomes '?', so the receipt reads the same in GSM 03.38
(data_coding 0), ASCII and Latin-1."""


class DelaySampler:
    __slots__ = ("_fixed", "_high", "_low", "_rng")

    def __init__(self, config: DelayConfig, rng: random.Random) -> None:
        self._rng = rng
        self._fixed: float | None = config.seconds if config.distribution == "fixed" else None
        self._low = config.min
        self._high = config.max

    @property
    def fixed(self) -> float | None:
        """The delay when it is always the same, else None."""
        return self._fixed

    def __call__(self) -> float:
        if self._fixed is not None:
            return self._fixed
        return self._rng.uniform(self._low, self._high)


class OutcomePicker:
    """Draws a final state with the configured weights (one bisect; no draw for one state)."""

    __slots__ = ("_cumulative", "_only", "_rng", "_states", "_total")

    def __init__(self, config: OutcomesConfig, rng: random.Random) -> None:
        weighted = [
            (MessageState.DELIVERED, config.delivered),
            (MessageState.UNDELIVERABLE, config.undeliverable),
            (MessageState.EXPIRED, config.expired),
            (MessageState.REJECTED, config.rejected),
        ]
        weighted = [(s, w) for s, w in weighted if w > 0]
        self._rng = rng
        self._states = [s for s, _ in weighted]
        self._cumulative = list(itertools.accumulate(w for _, w in weighted))
        self._total = self._cumulative[-1]
        self._only = self._states[0] if len(self._states) == 1 else None

    @property
    def only(self) -> MessageState | None:
        """The state when only one is configured (no draw needed), else None."""
        return self._only

    def __call__(self) -> MessageState:
        if self._only is not None:
            return self._only
        index = bisect.bisect_right(self._cumulative, self._rng.random() * self._total)
        return self._states[min(index, len(self._states) - 1)]


def message_text(pdu: Received) -> tuple[str, tuple[int, int, int] | None]:
    """The text of one received part (UDH removed) and its concat info (ref, total, seq):
    the UDH's (gateway.smpp.smsc.user_data), else the SAR TLVs' as they are (the simulator
    reports what it was sent, where the front checks them)."""
    data, concat = user_data(pdu)
    if concat is None:
        get_tlv = pdu.get_tlv
        ref = get_tlv(Tag.SAR_MSG_REF_NUM)
        total = get_tlv(Tag.SAR_TOTAL_SEGMENTS)
        seq = get_tlv(Tag.SAR_SEGMENT_SEQNUM)
        if ref and total and seq:
            concat = (int.from_bytes(ref, "big"), total[0], seq[0])
    return decode_short_message(data, pdu.data_coding), concat


class ReceiptText:
    """``format_receipt_text`` at the speed of a string join.

    The Appendix B text changes with the dates only once a minute (a second with
    ``date_seconds``), so the formatter runs once per (submit time, done time, state) at
    that resolution, with a marker for the id; each receipt then fills in its id and text.
    The wording stays ``gateway.smpp.receipt``'s (one formatter in the code base).
    """

    _MARK: Final = "IDMARK"
    MAX_CACHED: Final = 4096

    __slots__ = ("_cache", "_resolution", "_seconds")

    def __init__(self, date_seconds: bool = False) -> None:
        self._seconds = date_seconds
        self._resolution = 1 if date_seconds else 60
        self._cache: dict[tuple[int, int, int], tuple[bytes, bytes]] = {}

    def __call__(
        self, receipt_id: str, state: int, submitted: float, done: float, text: str
    ) -> bytes:
        head, tail = self.parts(state, submitted, done)
        return b"".join((head, receipt_id.encode("ascii"), tail, text_field(text)))

    def parts(self, state: int, submitted: float, done: float) -> tuple[bytes, bytes]:
        """The text before the id and the text between the id and the message's text."""
        resolution = self._resolution
        key = (int(submitted // resolution), int(done // resolution), state)
        parts = self._cache.get(key)
        if parts is None:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            template = format_receipt_text(
                self._MARK,
                MessageState(state),
                datetime.fromtimestamp(submitted),
                datetime.fromtimestamp(done),
                err=_ERR_TEXT.get(state, "000"),
                text="",
                seconds=self._seconds,
            )
            head, tail = template.split(self._MARK, 1)
            parts = (head.encode("ascii"), tail.encode("ascii"))
            self._cache[key] = parts
        return parts


def text_field(text: str) -> bytes:
    """The text: field of a receipt: the first RECEIPT_TEXT_CHARS characters, printable
    ASCII kept, anything else '?'."""
    text = text[:RECEIPT_TEXT_CHARS]
    if not (text.isascii() and text.isprintable()):
        text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text.encode("ascii")


def build_receipt(
    *,
    receipt_id: str,
    submit: Received,
    state: MessageState,
    submitted: float,
    done: float,
    text: ReceiptText | None,
    tlvs: bool,
) -> DeliverSm:
    """The deliver_sm receipt for one accepted part (``submit`` is its submit_sm or data_sm):
    from the part's destination to its source, esm_class 0x04. ``submitted`` and ``done``
    are wall-clock times (seconds since the epoch); ``text`` None leaves short_message empty.
    """
    short_message = b""
    if text is not None:
        original, _concat = message_text(submit)
        short_message = text(receipt_id, state, submitted, done, original)
    return receipt_deliver_sm(
        source=(submit.dest_addr_ton, submit.dest_addr_npi, submit.destination_addr),
        destination=(submit.source_addr_ton, submit.source_addr_npi, submit.source_addr),
        short_message=short_message,
        receipt_id=receipt_id,
        state=state,
        tlvs=tlvs,
        network_error=_NETWORK_ERROR.get(state, b"\x03\x00\x00"),
    )
