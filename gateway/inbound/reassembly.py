"""Long MO reassembly. Pure code: parts in, messages out, time passed in.

A long MO comes as several deliver_sm, tied by a concatenation reference in a UDH (8- or
16-bit, 3GPP TS 23.040 9.2.3.24.1 and .8) or in the SAR TLVs (sar_msg_ref_num,
sar_total_segments, sar_segment_seqnum); a message_payload holds a whole message in one.
Parts arrive in any order, and parts of different senders' messages interleave: they are
grouped by :class:`~gateway.store.base.MoKey` (carrier, source, destination, reference and
part count).

A group is whole when it holds every part; it *times out* ``timeout`` seconds after its
first part arrived, and is then taken as it is (incomplete). Counting from the first part
bounds how late any keyword reply can be.

The text is decoded after the parts' bytes are joined, never part by part: a sender may
have cut a UCS-2 surrogate pair or a GSM escape sequence between two parts. A missing part
breaks the join: the runs either side are decoded on their own.

:class:`MoReassembler` only decides; the service mirrors every change in the store (a part is
kept there before it is acknowledged) and arms one timer at :meth:`MoReassembler.next_deadline`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from gateway.smpp.constants import EsmClass
from gateway.smpp.pdu import DataSm, DeliverSm
from gateway.smpp.text import (
    decode_short_message,
    gsm7_unpack,
    parse_udh,
    udh_fill_bits,
)
from gateway.store.base import MoKey, MoPart

MAX_OPEN_MESSAGES: Final = 10_000
"""Unfinished long MOs held at once. Real traffic has a handful (parts of one message come
within seconds); past this, the oldest is taken as it is, so a peer sending first parts
only cannot grow memory without bound (each group holds at most 255 parts of 140 octets)."""

_CR: Final = 0x0D


@dataclass(frozen=True, slots=True)
class Concat:
    """Where a part sits in its message."""

    ref: int
    total: int
    seq: int


@dataclass(frozen=True, slots=True)
class RawMo:
    """What one deliver_sm / data_sm carries, before grouping."""

    concat: Concat | None
    data_coding: int
    data: bytes  # user data, UDH taken off
    udh_length: int


def read_pdu(pdu: DeliverSm | DataSm) -> RawMo:
    """The user data and concatenation info of an MO PDU. Never raises.

    The body is short_message, or message_payload when short_message is empty (a
    message_payload is a whole message; it may still carry a UDH). Concatenation comes from
    a UDH when esm_class has UDHI, else from the three SAR TLVs when all are present and
    consistent. A part "1 of 1" is a whole message.
    """
    short = pdu.short_message if isinstance(pdu, DeliverSm) else b""
    body = short or pdu.message_payload or b""
    concat: Concat | None = None
    data = body
    if pdu.esm_class & EsmClass.UDHI and body:
        udh, data = parse_udh(body)
        if udh is not None:
            concat = Concat(udh.ref, udh.total, udh.seq)
    udh_length = len(body) - len(data)
    if concat is None:
        ref, total, seq = pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum
        if ref is not None and total is not None and seq is not None and 1 <= seq <= total:
            concat = Concat(ref, total, seq)
    if concat is not None and concat.total <= 1:
        concat = None
    return RawMo(concat, pdu.data_coding, data, udh_length)


def is_gsm7(data_coding: int) -> bool:
    """Whether a data_coding means the GSM 03.38 default alphabet (23.038 section 4)."""
    if data_coding == 0x00 or 0xC0 <= data_coding <= 0xDF:
        return True
    if 0x10 <= data_coding <= 0x3F:  # general data coding group: bits 3-2 are the alphabet
        return not data_coding & 0x0C
    return 0xF0 <= data_coding and not data_coding & 0x04


def _septets(part: MoPart) -> bytes:
    """A packed GSM 03.38 part unpacked to one septet per octet.

    The octet count does not give the septet count: when the last 7 bits are spare a
    receiver reads one septet too many, which the sender should have made a CR (23.038
    6.1.2.3.1). Such a last CR, or '@' (a sender that left the bits zero), is dropped.
    """
    fill = udh_fill_bits(part.udh_length) if part.udh_length else 0
    bits = len(part.data) * 8 - fill
    if bits < 7:
        return b""
    septets = gsm7_unpack(part.data, bits // 7, fill)
    if bits % 7 == 0 and bits >= 8 and septets[-1] in (0x00, _CR):
        septets = septets[:-1]
    return septets


def decode_parts(parts: Sequence[MoPart], packed: bool = False) -> str:
    """The text of parts (in seq order): consecutive parts with one data_coding are joined
    and decoded at once. ``packed``: GSM 03.38 parts come packed (the carrier's setting)."""
    text: list[str] = []
    run = bytearray()
    coding: int | None = None
    last_seq: int | None = None
    for part in parts:
        gsm_packed = packed and is_gsm7(part.data_coding)
        data = _septets(part) if gsm_packed else part.data
        if coding is not None and (
            part.data_coding != coding or last_seq is None or part.seq != last_seq + 1
        ):
            text.append(decode_short_message(bytes(run), coding))
            run.clear()
        coding = part.data_coding
        last_seq = part.seq
        run += data
    if coding is not None:
        text.append(decode_short_message(bytes(run), coding))
    return "".join(text)


@dataclass(slots=True)
class Assembly:
    """A message put together: whole, or what came before its timeout."""

    key: MoKey
    parts: list[MoPart]  # by seq
    complete: bool

    @property
    def first_at(self) -> float:
        return min(p.received_at for p in self.parts)

    @property
    def missing(self) -> tuple[int, ...]:
        have = {p.seq for p in self.parts}
        return tuple(n for n in range(1, self.key.total + 1) if n not in have)


@dataclass(slots=True)
class _Group:
    generation: int
    first_at: float
    parts: dict[int, MoPart] = field(default_factory=dict)


class MoReassembler:
    """Open long MOs by key; decides when each is whole or timed out."""

    def __init__(self, timeout: float, max_open: int = MAX_OPEN_MESSAGES) -> None:
        self.timeout = timeout
        self.max_open = max_open
        self._groups: dict[MoKey, _Group] = {}  # insertion order: oldest first
        self._deadlines: list[tuple[float, int, MoKey]] = []  # heap; stale entries skipped
        self._generations = itertools.count(1)

    def __len__(self) -> int:
        return len(self._groups)

    def holds(self, part: MoPart) -> bool:
        """Whether this very part (key and seq) is already held: a resend."""
        group = self._groups.get(part.key)
        return group is not None and part.seq in group.parts

    def add(self, part: MoPart) -> Assembly | None:
        """Take a part; the whole message when this part completed it. A single-part
        message (total 1) comes straight back. A part already held is ignored."""
        key = part.key
        if key.total <= 1:
            return Assembly(key, [part], complete=True)
        group = self._groups.get(key)
        if group is None:
            group = _Group(next(self._generations), part.received_at)
            self._groups[key] = group
            heapq.heappush(
                self._deadlines, (part.received_at + self.timeout, group.generation, key)
            )
        group.parts.setdefault(part.seq, part)
        if len(group.parts) < key.total:
            return None
        del self._groups[key]
        return Assembly(key, _ordered(group.parts.values()), complete=True)

    def discard(self, part: MoPart) -> None:
        """Forget a part (the store refused it, so the SMSC will send it again)."""
        group = self._groups.get(part.key)
        if group is None or group.parts.get(part.seq) is not part:
            return
        del group.parts[part.seq]
        if not group.parts:
            del self._groups[part.key]

    def take(self, key: MoKey) -> Assembly | None:
        """Remove an open message and return it as it is (incomplete)."""
        group = self._groups.pop(key, None)
        if group is None:
            return None
        return Assembly(key, _ordered(group.parts.values()), complete=False)

    def due(self, now: float) -> list[MoKey]:
        """Open messages to take now: those past their deadline, and the oldest beyond
        ``max_open``. Nothing is removed (see :meth:`take`)."""
        keys: list[MoKey] = []
        heap = self._deadlines
        while heap:
            deadline, generation, key = heap[0]
            group = self._groups.get(key)
            if group is None or group.generation != generation:
                heapq.heappop(heap)  # completed or taken since
                continue
            if deadline > now:
                break
            keys.append(key)
            heapq.heappop(heap)
            # Taken by the caller, or put back (and pushed again) if recording fails.
        excess = len(self._groups) - len(keys) - self.max_open
        if excess > 0:
            chosen = set(keys)
            for key in self._groups:
                if excess <= 0:
                    break
                if key not in chosen:
                    keys.append(key)
                    excess -= 1
        return keys

    def expire(self, now: float) -> list[Assembly]:
        """Take every open message :meth:`due` names."""
        out = []
        for key in self.due(now):
            assembly = self.take(key)
            if assembly is not None:
                out.append(assembly)
        return out

    def next_deadline(self) -> float | None:
        """When the oldest open message times out; None with none open."""
        heap = self._deadlines
        while heap:
            _, generation, key = heap[0]
            group = self._groups.get(key)
            if group is not None and group.generation == generation:
                return heap[0][0]
            heapq.heappop(heap)
        return None


def _ordered(parts: Iterable[MoPart]) -> list[MoPart]:
    return sorted(parts, key=lambda p: p.seq)
