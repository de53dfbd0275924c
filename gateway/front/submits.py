"""From upstream submit_sm/data_sm to message text: parts, concatenation, addresses
(``as_number``, the shared rule of gateway.smpp.address).

Pure code, no I/O. A long message may come as UDH parts (8- or 16-bit reference), as SAR
parts (sar_* TLVs) or whole in message_payload. Parts are joined *before* routing, into one
message (what most gateways do; the ESME still sees each part answered with its own id and
receipted on its own, gateway.front.server): the dispatcher then cuts it again the way
the chosen carrier wants it (its ``concat`` setting), so an upstream's UDH and a carrier's
SAR (or the other way round) never meet. The parts' bytes are joined first and decoded once,
since a sender may have cut between an escape and its character or inside a surrogate pair.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from gateway.smpp.smsc import Received, user_data
from gateway.smpp.text import decode_short_message

T = TypeVar("T")


@dataclass(slots=True)
class Piece:
    """One received PDU's message content."""

    data: bytes  # user data, UDH removed
    data_coding: int
    concat: tuple[int, int, int] | None  # (ref, total, seq)


def extract(pdu: Received) -> Piece:
    """The user data and concatenation info of one submit_sm or data_sm: the UDH's
    (gateway.smpp.smsc.user_data), else the SAR TLVs' when they are consistent; a "long"
    message of one part is a short one."""
    data, concat = user_data(pdu)
    if concat is None:
        ref, total, seq = pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum
        if ref is not None and total and seq and 1 <= seq <= total:
            concat = (ref, total, seq)
    if concat is not None and concat[1] == 1:
        concat = None  # a "long" message of one part is a short one
    return Piece(data, pdu.data_coding, concat)


def is_binary(data_coding: int) -> bool:
    """8-bit data (0x02, 0x04, or the 8-bit message-class group 0xF4-0xF7): smsgw carries
    text, which it may re-encode and re-split for the carrier, so binary is refused."""
    return data_coding in (0x02, 0x04) or 0xF4 <= data_coding <= 0xF7


RELATIVE_YEAR: Final = 365 * 86400
RELATIVE_MONTH: Final = 30 * 86400
"""A relative time's years and months in seconds: the spec leaves them loose, and SMSCs
count them this way."""


def smpp_time(value: str, now: float) -> float:
    """An SMPP time (spec 7.1.1, ``YYMMDDhhmmsstnnp``) as epoch seconds. ``p`` is ``+`` or
    ``-`` for an absolute time ``nn`` quarter hours ahead of or behind UTC, ``R`` for a time
    relative to ``now``. Raises ValueError for anything else."""
    if len(value) != 16 or not value[:15].isdigit() or value[15] not in "+-R":
        raise ValueError(f"not an SMPP time: {value!r}")
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2]) for i in range(0, 12, 2))
    tenths, quarters, sign = int(value[12]), int(value[13:15]), value[15]
    if sign == "R":
        seconds = yy * RELATIVE_YEAR + mo * RELATIVE_MONTH + dd * 86400 + hh * 3600
        return now + seconds + mi * 60 + ss
    if quarters > 48 or not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 60):
        raise ValueError(f"not an SMPP time: {value!r}")
    local = calendar.timegm((2000 + yy, mo, dd, hh, mi, ss, 0, 0, 0)) + tenths / 10
    offset = quarters * 900
    return local - offset if sign == "+" else local + offset


@dataclass(slots=True)
class Group(Generic[T]):
    """The parts of one long message seen so far, each with what the caller attached."""

    total: int
    data_coding: int
    started: float
    parts: dict[int, tuple[Piece, T]] = field(default_factory=dict)
    id: str = ""
    """The message id the joined parts will have (the front gives it at the first part)."""
    pending: int = 0
    """Parts of this group being committed (the front's count): it does not expire meanwhile."""

    def complete(self) -> bool:
        return len(self.parts) == self.total

    def text(self) -> str:
        data = b"".join(self.parts[seq][0].data for seq in sorted(self.parts))
        return decode_short_message(data, self.data_coding)

    def attached(self) -> list[T]:
        return [self.parts[seq][1] for seq in sorted(self.parts)]


GroupKey = tuple[str, str, str, int, int]
"""(account, source, destination, ref, total)."""


class SubmitReassembler(Generic[T]):
    """Long messages an upstream ESME submits in parts (submit_sm / data_sm), being put
    together; parts may come in any order and interleaved.

    Not the carriers' long MO (gateway.inbound.reassembly.MoReassembler), whose rules differ:
    here a part sent again replaces the first copy (returned, for the caller to answer), the
    group's message id is reserved at its first part, and parts being committed hold the
    group open; there the first copy stays, and a cap on open messages bounds memory."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.groups: dict[GroupKey, Group[T]] = {}

    def open(self, key: GroupKey, piece: Piece, now: float, new_id: Callable[[], str]) -> Group[T]:
        """The group ``key`` belongs to; a new one (with id ``new_id()``) when none is open."""
        assert piece.concat is not None
        group = self.groups.get(key)
        if group is None:
            group = Group(piece.concat[1], piece.data_coding, now, id=new_id())
            self.groups[key] = group
        return group

    def add(
        self, key: GroupKey, piece: Piece, attached: T, now: float
    ) -> tuple[Group[T] | None, T | None]:
        """Add one part. Returns (the group if now complete, a previous part's attachment
        that this one replaces: a part sent again, its first copy is answered by the caller)."""
        assert piece.concat is not None
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(piece.concat[1], piece.data_coding, now)
        seq = piece.concat[2]
        previous = group.parts.get(seq)
        group.parts[seq] = (piece, attached)
        replaced = previous[1] if previous is not None else None
        if group.complete():
            del self.groups[key]
            return group, replaced
        return None, replaced

    def expired(self, now: float) -> list[Group[T]]:
        """Groups older than the timeout, removed (not those with parts being committed)."""
        old = [
            k for k, g in self.groups.items() if now - g.started >= self.timeout and g.pending <= 0
        ]
        return [self.groups.pop(k) for k in old]
