"""Hypothesis strategies for SMPP PDUs, and an in-memory ESME <-> SMSC session pair.

Reusable by any test module:

- ``pdus(cls)`` draws a valid value of one PDU class (random field values within their wire
  types); ``any_pdu`` and ``request_pdus`` draw from every class in ``PDU_CLASSES``.
- ``mutated_frames`` draws broken variants of valid frames (bit flips, truncation, a changed
  command_length or command_id, junk appended), the decoder's fuzz input.
- ``chunked(data)`` splits bytes at random points, the way TCP may deliver them.
- ``fuzz_settings`` sizes the long fuzz runs; ``SMSGW_FUZZ_EXAMPLES=5000`` scales them up for
  a bench or CI-heavy run without editing a test.
- ``ConnectionPair`` wires two sans-IO sessions back to back (the h11 tests' model): bytes
  are shuttled both ways by hand and time is passed in, so no socket and no sleep.
"""

from __future__ import annotations

import itertools
import os
import struct
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from gateway.smpp.constants import HEADER_LENGTH, RESPONSE_BIT
from gateway.smpp.errors import DecodeError
from gateway.smpp.pdu import (
    CSTR,
    MAX_SHORT_MESSAGE,
    PDU_CLASSES,
    SM,
    U8,
    Framer,
    Pdu,
    decode,
    encode,
)
from gateway.smpp.session import (
    BindRequested,
    BindType,
    Event,
    Role,
    Session,
    SessionConfig,
)

# -- fuzz sizing --------------------------------------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("SMSGW_FUZZ_EXAMPLES", "300"))
"""Examples per fuzz test. 300 keeps each test file under 30 s; raise it for a long run."""

fuzz_settings = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- field values -------------------------------------------------------------------------

u8s = st.integers(0, 0xFF)
u16s = st.integers(0, 0xFFFF)
u32s = st.integers(0, 0xFFFF_FFFF)
sequence_numbers = st.integers(1, 0x7FFF_FFFF)
"""The range a session uses (spec 5.1.4); the codec accepts any u32."""

cstrings = st.text(st.characters(min_codepoint=1, max_codepoint=0xFF), max_size=24)
"""C-octet string contents: Latin-1 characters, never NUL (the terminator)."""

short_messages = st.binary(max_size=MAX_SHORT_MESSAGE)
tlvs = st.lists(st.tuples(u16s, st.binary(max_size=48)), max_size=4).map(tuple)

_KIND_STRATEGY = {CSTR: cstrings, U8: u8s, SM: short_messages}

ALL_CLASSES: list[type[Pdu]] = sorted(PDU_CLASSES.values(), key=lambda c: c.command_id)
REQUEST_CLASSES = [c for c in ALL_CLASSES if not c.command_id & RESPONSE_BIT]
RESPONSE_CLASSES = [c for c in ALL_CLASSES if c.command_id & RESPONSE_BIT]


def pdus(cls: type[Pdu]) -> st.SearchStrategy[Pdu]:
    """Any valid value of ``cls``: every body field drawn within its wire type."""
    fields: dict[str, st.SearchStrategy[object]] = {
        name: _KIND_STRATEGY[kind] for name, kind in cls.BODY
    }
    fields["sequence_number"] = u32s
    fields["command_status"] = u32s
    if cls.HAS_TLVS:
        fields["tlvs"] = tlvs
    return st.builds(cls, **fields)


any_pdu: st.SearchStrategy[Pdu] = st.sampled_from(ALL_CLASSES).flatmap(pdus)
request_pdus: st.SearchStrategy[Pdu] = st.sampled_from(REQUEST_CLASSES).flatmap(pdus)


def frame(command_id: int, body: bytes = b"", *, status: int = 0, seq: int = 1) -> bytes:
    """A frame with a correct command_length around ``body``."""
    return struct.pack(">IIII", HEADER_LENGTH + len(body), command_id, status, seq) + body


# -- broken input -------------------------------------------------------------------------

_MUTATIONS = ("flip", "truncate", "length", "command_id", "append", "set_byte")


@st.composite
def mutated_frames(draw: st.DrawFn, base: st.SearchStrategy[Pdu] = any_pdu) -> bytes:
    """A valid frame after one to four random mutations; half the time its command_length
    is then made to match again, so the damage reaches the body parser."""
    data = bytearray(encode(draw(base)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(_MUTATIONS))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif op == "length" and len(data) >= 4:
            announced = draw(
                st.one_of(
                    st.integers(0, HEADER_LENGTH - 1),
                    st.integers(max(0, len(data) - 8), len(data) + 8),
                    u32s,
                )
            )
            data[0:4] = announced.to_bytes(4, "big")
        elif op == "command_id" and len(data) >= 8:
            command_id = draw(st.one_of(st.sampled_from(sorted(PDU_CLASSES)), u32s))
            data[4:8] = command_id.to_bytes(4, "big")
        elif op == "append":
            data += draw(st.binary(min_size=1, max_size=16))
        elif op == "set_byte" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(u8s)
    if len(data) >= 4 and draw(st.booleans()):
        data[0:4] = len(data).to_bytes(4, "big")
    return bytes(data)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at random points (empty chunks included, as a reader may see them)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


byte_streams: st.SearchStrategy[bytes] = st.lists(
    st.one_of(
        any_pdu.map(encode),
        mutated_frames(),
        st.binary(max_size=64),
    ),
    max_size=6,
).map(b"".join)
"""Valid frames, broken frames and plain noise, back to back."""


def decode_all(data: bytes) -> list[Pdu]:
    """Every PDU in a well-formed byte stream (what a session queued for the wire)."""
    out: list[Pdu] = []
    framer = Framer()
    for item in framer.feed(data):
        if isinstance(item, DecodeError):
            raise item
        out.append(decode(item))
    if framer.buffered:
        raise AssertionError(f"{framer.buffered} octets left over after the last frame")
    return out


# -- an in-memory connection --------------------------------------------------------------


@dataclass
class Exchange:
    """Events each side produced during one shuttle."""

    esme: list[Event] = field(default_factory=list)
    smsc: list[Event] = field(default_factory=list)


class ConnectionPair:
    """An ESME session and an SMSC session joined by an in-memory wire.

    Nothing moves until ``shuttle()``: it carries each side's ``data_to_send()`` to the other
    until both are quiet, and returns the events each side produced. Every PDU carried is
    logged, decoded, in ``esme_sent`` / ``smsc_sent``. ``now`` is the pair's clock; tests set
    it by passing ``now=`` or with ``tick()``.
    """

    def __init__(
        self,
        config: SessionConfig | None = None,
        *,
        esme_config: SessionConfig | None = None,
        smsc_config: SessionConfig | None = None,
        now: float = 0.0,
    ) -> None:
        self.now = now
        self.esme = Session(Role.ESME, esme_config or config, now)
        self.smsc = Session(Role.SMSC, smsc_config or config, now)
        self.esme_sent: list[Pdu] = []
        self.smsc_sent: list[Pdu] = []

    def shuttle(self, now: float | None = None) -> Exchange:
        if now is not None:
            self.now = now
        ex = Exchange()
        while True:
            to_smsc = self.esme.data_to_send()
            if to_smsc:
                self.esme_sent += decode_all(to_smsc)
                ex.smsc += self.smsc.receive_data(to_smsc, self.now)
            to_esme = self.smsc.data_to_send()
            if to_esme:
                self.smsc_sent += decode_all(to_esme)
                ex.esme += self.esme.receive_data(to_esme, self.now)
            if not to_smsc and not to_esme:
                return ex

    def tick(self, now: float) -> Exchange:
        """Advance the clock and run both sessions' timers (nothing is shuttled)."""
        self.now = now
        return Exchange(esme=self.esme.handle_timer(now), smsc=self.smsc.handle_timer(now))

    def bind(
        self,
        bind_type: BindType = BindType.TRX,
        *,
        system_id: str = "esme1",
        password: str = "secret",
        smsc_system_id: str = "SMSC1",
    ) -> Exchange:
        """Bind the ESME and accept it on the SMSC side; returns the events of both sides."""
        self.esme.bind(bind_type, self.now, system_id=system_id, password=password)
        ex = self.shuttle()
        requested = [e for e in ex.smsc if isinstance(e, BindRequested)]
        assert len(requested) == 1, ex
        ex.smsc.append(self.smsc.accept_bind(requested[0].pdu, smsc_system_id, self.now))
        ex.esme += self.shuttle().esme
        return ex
