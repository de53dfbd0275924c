"""Text encodings and long-message splitting for SMPP 3.4. Pure code: no I/O, stdlib only.

Outbound: :func:`split_message` picks an alphabet (or takes the one asked for), encodes the
text and cuts it into parts ready for submit_sm, each with its UDH or SAR values.
Inbound: :func:`parse_udh` takes the concatenation info off a short_message and
:func:`decode_short_message` turns the rest into text without ever raising.

Alphabets
    - GSM 03.38 (3GPP TS 23.038 §6.2.1) default alphabet plus its extension table. An
      extension character is sent as ESC (0x1B) and a second septet, so it costs 2 septets.
      Over SMPP the septets normally travel unpacked, one per octet (data_coding 0x00);
      some carriers want them packed 8 septets to 7 octets: that is ``packed=True``.
    - Latin-1 (data_coding 0x03), only when the carrier allows it.
    - UCS-2 (data_coding 0x08), sent as UTF-16-BE: a character outside the BMP (most emoji)
      takes two 16-bit units, a surrogate pair, and the pair is never split across parts.

Limits (3GPP TS 23.040 §9.2.3.24: TP-User-Data holds 140 octets, UDH included)
    ======================  ============  =======  ===========
    per part                GSM7 septets  Latin-1  UCS-2 units
    ======================  ============  =======  ===========
    single part, no UDH              160      140           70
    8-bit-ref UDH (6 oct.)           153      134           67
    16-bit-ref UDH (7 oct.)          152      133           66
    SAR TLVs (see below)             152      133           66
    ======================  ============  =======  ===========

SAR parts carry no UDH over SMPP, but the SMSC turns the sar_* TLVs into a concatenation
UDH on the air interface, so each part must leave room for it. sar_msg_ref_num is 16 bits
wide and the SMSC may use the 16-bit-ref IE, so SAR parts are sized for a 7-octet UDH.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "MAX_PARTS",
    "MAX_PAYLOAD_OCTETS",
    "USER_DATA_OCTETS",
    "ConcatMethod",
    "Encoding",
    "MessagePart",
    "MessageTooLongError",
    "SplitResult",
    "TextEncodingError",
    "Udh",
    "choose_encoding",
    "decode_short_message",
    "gsm7_decode",
    "gsm7_encode",
    "gsm7_length",
    "gsm7_pack",
    "gsm7_unpack",
    "is_gsm7",
    "parse_udh",
    "split_message",
    "udh_fill_bits",
]


# --------------------------------------------------------------------------------------------
# Errors


class TextEncodingError(ValueError):
    """Text that cannot be sent as asked.

    ``char`` and ``index`` name the first character the chosen alphabet cannot hold; both are
    None when the problem is the message as a whole (too long).
    """

    def __init__(
        self,
        message: str,
        *,
        encoding: str | None = None,
        char: str | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.encoding = encoding
        self.char = char
        self.index = index


class MessageTooLongError(TextEncodingError):
    """The message needs more parts than a concatenation header can number (255)."""


def _unencodable(text: str, index: int, encoding: str) -> TextEncodingError:
    char = text[index]
    return TextEncodingError(
        f"character {char!r} (U+{ord(char):04X}) at index {index} cannot be encoded in {encoding}",
        encoding=encoding,
        char=char,
        index=index,
    )


# --------------------------------------------------------------------------------------------
# GSM 03.38 tables (3GPP TS 23.038 §6.2.1 and §6.2.1.1)

#: The default alphabet, indexed by septet value. 0x1B is the escape to the extension table.
GSM7_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

#: The extension table: character -> septet sent after ESC. Each costs 2 septets.
GSM7_EXTENSION: Final[dict[str, int]] = {
    "\x0c": 0x0A,  # form feed
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_ESC: Final = 0x1B
_SEPTET_MASK: Final = 0x7F

assert len(GSM7_BASIC) == 128
assert _ESC not in GSM7_EXTENSION.values()
assert not set(GSM7_EXTENSION) & set(GSM7_BASIC)


def _build_encode_table() -> dict[int, str]:
    # str.translate table: every GSM character maps to its septet(s) as ASCII code points,
    # so that ``text.translate(table).encode("ascii")`` does the whole encoding in C.
    table: dict[int, str] = {}
    for septet, char in enumerate(GSM7_BASIC):
        if septet != _ESC:
            table[ord(char)] = chr(septet)
    for char, septet in GSM7_EXTENSION.items():
        table[ord(char)] = chr(_ESC) + chr(septet)
    return table


_ENCODE_TABLE: Final = _build_encode_table()
_GSM7_CHARS: Final = frozenset(GSM7_BASIC.replace("\x1b", "")) | frozenset(GSM7_EXTENSION)

_GSM7_LATIN1: Final = frozenset(c for c in GSM7_BASIC.replace("\x1b", "") if ord(c) < 0x100)
"""Basic-table characters that are Latin-1 too: most texts hold nothing else."""
_LATIN1_TO_SEPTET: Final = bytes(
    GSM7_BASIC.index(chr(code)) if chr(code) in _GSM7_LATIN1 else 0 for code in range(0x100)
)
"""bytes.translate table from Latin-1 octets to septets, for texts made of ``_GSM7_LATIN1``
only (other octets map to 0 and never occur then)."""

# Decoding: a lone ESC (at the end of the data) reads as a space, as 23.038 allows a receiver
# that does not know the escape mechanism to show it.
_DECODE_TABLE: Final = GSM7_BASIC.replace("\x1b", " ")
_EXT_DECODE: Final[dict[int, str]] = {septet: char for char, septet in GSM7_EXTENSION.items()}
# 0x1B 0x1B is reserved for a further extension table: "display a space" (23.038 §6.2.1.1).
_EXT_DECODE[_ESC] = " "
_MASK7_TABLE: Final = bytes(code & _SEPTET_MASK for code in range(256))


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in the GSM 03.38 alphabet or its extension."""
    return _GSM7_CHARS.issuperset(text)


def _gsm7_encode_or_none(text: str) -> bytes | None:
    # Most texts: Latin-1 basic-table characters only, one octet each; bytes.translate
    # with a 256-octet table is several times faster than str.translate with a dict.
    if _GSM7_LATIN1.issuperset(text):
        return text.encode("latin-1").translate(_LATIN1_TO_SEPTET)
    # The set test first: it is fast, and translate is slow on characters missing from its
    # table. After it, every character has a mapping and the ascii encode cannot fail.
    if not _GSM7_CHARS.issuperset(text):
        return None
    return text.translate(_ENCODE_TABLE).encode("ascii")


def gsm7_encode(text: str) -> bytes:
    """Encode to GSM 03.38 septets, unpacked: one septet per octet, ESC pairs included.

    Raises TextEncodingError naming the first character outside the alphabet.
    """
    septets = _gsm7_encode_or_none(text)
    if septets is None:
        raise _unencodable(text, _first_non_gsm7(text), Encoding.GSM7)
    return septets


def _first_non_gsm7(text: str) -> int:
    for index, char in enumerate(text):
        if char not in _GSM7_CHARS:
            return index
    raise AssertionError("no unencodable character found")  # pragma: no cover


def gsm7_length(text: str) -> int:
    """Septets ``text`` takes in GSM 03.38: extension characters count 2.

    Raises TextEncodingError if the text is not GSM 03.38.
    """
    return len(gsm7_encode(text))


def gsm7_decode(data: bytes) -> str:
    """Decode unpacked GSM 03.38 septets. Never raises.

    Tolerant of what peers send: the top bit of an octet is ignored; ESC followed by a
    septet with no extension character gives the default-alphabet character (23.038
    §6.2.1.1); ESC ESC and a trailing ESC give a space.
    """
    if not data.isascii():
        data = data.translate(_MASK7_TABLE)
    if _ESC not in data:
        return codecs.charmap_decode(data, "strict", _DECODE_TABLE)[0]
    out: list[str] = []
    start = 0
    end = len(data)
    while True:
        esc = data.find(_ESC, start)
        if esc < 0:
            out.append(codecs.charmap_decode(data[start:], "strict", _DECODE_TABLE)[0])
            break
        out.append(codecs.charmap_decode(data[start:esc], "strict", _DECODE_TABLE)[0])
        if esc + 1 >= end:
            out.append(" ")
            break
        septet = data[esc + 1]
        out.append(_EXT_DECODE.get(septet) or _DECODE_TABLE[septet])
        start = esc + 2
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Septet packing (3GPP TS 23.038 §6.1.2.1.1): septets laid end to end, least significant bit
# first. When a UDH precedes packed septets, fill bits pad the UDH to a septet boundary
# (23.040 §9.2.3.24) and the first septet starts after them.

_BIN7: Final = tuple(format(code, "07b") for code in range(128))


def udh_fill_bits(udh_length: int) -> int:
    """Fill bits between a UDH of ``udh_length`` octets (UDHL octet included) and packed
    septets: 6 octets -> 1, 7 octets -> 0."""
    if udh_length < 0:
        raise ValueError(f"udh_length must not be negative, got {udh_length}")
    return (7 - (udh_length * 8) % 7) % 7


def _check_fill_bits(fill_bits: int) -> None:
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, got {fill_bits}")


def gsm7_pack(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets (one per octet, each < 0x80) into octets, after ``fill_bits`` zero bits.

    The result has ceil((fill_bits + 7 * n) / 8) octets, none for no septets. Note that the
    octet length does not say the septet count: when 7 bits are left over, a receiver that
    guesses the count from the octets reads an extra '@'; give it the count (sm_length of an
    unpacked message, TP-UDL on the air).
    """
    _check_fill_bits(fill_bits)
    if not septets.isascii():
        raise ValueError("septets must be < 0x80")
    count = len(septets)
    if count == 0:
        return b""
    # One big integer, septet 0 in the least significant bits: a string of 7-bit groups,
    # most significant septet first, read in base 2. Linear time, all in C.
    bits = "".join(map(_BIN7.__getitem__, reversed(septets)))
    value = int(bits, 2) << fill_bits
    return value.to_bytes((fill_bits + 7 * count + 7) // 8, "little")


def gsm7_unpack(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Unpack ``count`` septets from packed ``data``, skipping ``fill_bits`` leading bits.

    Returns one septet per octet. Raises TextEncodingError if ``data`` holds fewer than
    ``count`` septets.
    """
    _check_fill_bits(fill_bits)
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    available = (len(data) * 8 - fill_bits) // 7 if data else 0
    if count > available:
        raise TextEncodingError(
            f"{len(data)} octets with {fill_bits} fill bits hold {available} septets, not {count}"
        )
    if count == 0:
        return b""
    nbits = 7 * count
    value = (int.from_bytes(data, "little") >> fill_bits) & ((1 << nbits) - 1)
    # Every 7 octets hold exactly 8 septets: work on small integers, block by block.
    blocks = value.to_bytes(7 * ((count + 7) // 8), "little")
    out = bytearray()
    for offset in range(0, len(blocks), 7):
        block = int.from_bytes(blocks[offset : offset + 7], "little")
        out += bytes(
            (
                block & 0x7F,
                (block >> 7) & 0x7F,
                (block >> 14) & 0x7F,
                (block >> 21) & 0x7F,
                (block >> 28) & 0x7F,
                (block >> 35) & 0x7F,
                (block >> 42) & 0x7F,
                (block >> 49) & 0x7F,
            )
        )
    return bytes(out[:count])


# --------------------------------------------------------------------------------------------
# Choosing an alphabet


class Encoding(StrEnum):
    """The alphabets the gateway sends, with their SMPP data_coding (spec 5.2.19)."""

    GSM7 = "gsm7"
    LATIN1 = "latin1"
    UCS2 = "ucs2"

    @property
    def data_coding(self) -> int:
        return _DATA_CODING[self]


_DATA_CODING: Final[dict[Encoding, int]] = {
    Encoding.GSM7: 0x00,  # SMSC default alphabet, GSM 03.38 on the carriers we talk to
    Encoding.LATIN1: 0x03,  # ISO-8859-1
    Encoding.UCS2: 0x08,  # ISO/IEC 10646, sent as UTF-16-BE
}


def _is_latin1(text: str) -> bool:
    return not text or max(text) <= "\xff"


def choose_encoding(text: str, allow_latin1: bool = False) -> Encoding:
    """GSM7 if the text fits the GSM 03.38 alphabet, else Latin-1 if allowed and enough,
    else UCS-2."""
    if is_gsm7(text):
        return Encoding.GSM7
    if allow_latin1 and _is_latin1(text):
        return Encoding.LATIN1
    return Encoding.UCS2


def _encode(text: str, encoding: Encoding) -> bytes:
    if encoding is Encoding.GSM7:
        return gsm7_encode(text)
    codec = "latin-1" if encoding is Encoding.LATIN1 else "utf-16-be"
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:  # Latin-1 above U+00FF; UCS-2 a lone surrogate
        raise _unencodable(text, exc.start, encoding) from None


# --------------------------------------------------------------------------------------------
# Splitting


class ConcatMethod(StrEnum):
    """How a long message is carried; a per-carrier setting."""

    UDH8 = "udh8"  # UDH `05 00 03 ref total seq` in short_message, esm_class UDHI (0x40)
    UDH16 = "udh16"  # UDH `06 08 04 refHi refLo total seq`, esm_class UDHI
    SAR = "sar"  # no UDH; sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs
    PAYLOAD = "payload"  # one PDU, whole message in message_payload (0x0424), sm_length 0


#: TP-User-Data size (23.040 §9.2.3.24), UDH included.
USER_DATA_OCTETS: Final = 140
#: A concatenation header numbers parts with one octet (23.040 §9.2.3.24.1).
MAX_PARTS: Final = 255
#: message_payload has a 2-octet length (SMPP 3.4 §5.3.2.32).
MAX_PAYLOAD_OCTETS: Final = 0xFFFF

_IEI_CONCAT_8: Final = 0x00
_IEI_CONCAT_16: Final = 0x08
_UDH8_OCTETS: Final = 6  # UDHL + IEI + IEL + ref + total + seq
_UDH16_OCTETS: Final = 7  # UDHL + IEI + IEL + refHi + refLo + total + seq
# Room the SMSC needs for the concatenation UDH it builds from the SAR TLVs.
_SAR_RESERVED_OCTETS: Final = _UDH16_OCTETS


def _units_per_part(encoding: Encoding, udh_octets: int) -> int:
    """Septets, octets or UTF-16 units that fit beside a UDH of ``udh_octets``."""
    if encoding is Encoding.GSM7:
        return (USER_DATA_OCTETS - udh_octets) * 8 // 7
    if encoding is Encoding.LATIN1:
        return USER_DATA_OCTETS - udh_octets
    return (USER_DATA_OCTETS - udh_octets) // 2


_UDH_OCTETS: Final[dict[ConcatMethod, int]] = {
    ConcatMethod.UDH8: _UDH8_OCTETS,
    ConcatMethod.UDH16: _UDH16_OCTETS,
    ConcatMethod.SAR: _SAR_RESERVED_OCTETS,
}
_SINGLE_LIMIT: Final[dict[Encoding, int]] = {e: _units_per_part(e, 0) for e in Encoding}
_PART_LIMIT: Final[dict[tuple[Encoding, ConcatMethod], int]] = {
    (e, c): _units_per_part(e, octets) for e in Encoding for c, octets in _UDH_OCTETS.items()
}


@dataclass(frozen=True, slots=True)
class MessagePart:
    """One submit_sm's worth of a message.

    short_message: what goes in short_message, UDH first when ``esm_class_udhi``; GSM7
        septets one per octet, or packed when asked. With ConcatMethod.PAYLOAD it is the
        value for message_payload instead (short_message then stays empty, sm_length 0).
    esm_class_udhi: set esm_class bit 0x40.
    sar: (sar_msg_ref_num, sar_total_segments, sar_segment_seqnum) to send as TLVs, or None.
    text: the part of the original text this part carries.
    septets_or_units: its size without UDH: GSM7 septets (ESC counted), Latin-1 octets or
        UTF-16 units.
    """

    short_message: bytes
    esm_class_udhi: bool
    sar: tuple[int, int, int] | None
    text: str
    septets_or_units: int


@dataclass(frozen=True, slots=True)
class SplitResult:
    """A message ready for the wire: one data_coding, one or more parts in order.

    ``ref`` is the reference number on the wire (the low 8 bits of the one asked for with
    UDH8); it is the same in every part.
    """

    encoding: Encoding
    data_coding: int
    concat: ConcatMethod
    ref: int
    parts: tuple[MessagePart, ...]


def _part_bounds(data: bytes, encoding: Encoding, limit: int) -> list[tuple[int, int]]:
    """Greedy cut into [start, end) unit ranges of at most ``limit`` units, never after an
    ESC (GSM7) nor after a high surrogate (UCS-2)."""
    if encoding is Encoding.UCS2:
        units = len(data) // 2
    else:
        units = len(data)
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < units:
        end = min(start + limit, units)
        if end < units:
            if encoding is Encoding.GSM7:
                if data[end - 1] == _ESC:  # ESC is never a character's second septet
                    end -= 1
            elif encoding is Encoding.UCS2 and 0xD8 <= data[2 * end - 2] <= 0xDB:
                end -= 1
        bounds.append((start, end))
        start = end
    return bounds


def _concat_udh(concat: ConcatMethod, ref: int, total: int, seq: int) -> bytes:
    if concat is ConcatMethod.UDH8:
        return bytes((_UDH8_OCTETS - 1, _IEI_CONCAT_8, 3, ref, total, seq))
    return bytes((_UDH16_OCTETS - 1, _IEI_CONCAT_16, 4, ref >> 8, ref & 0xFF, total, seq))


def split_message(
    text: str,
    encoding: Encoding | None = None,
    *,
    concat: ConcatMethod = ConcatMethod.UDH8,
    ref: int,
    packed: bool = False,
    allow_latin1: bool = False,
) -> SplitResult:
    """Encode ``text`` and cut it into submit_sm parts.

    encoding: None picks one as :func:`choose_encoding` does (``allow_latin1`` applies only
        then); an explicit one that cannot hold the text raises TextEncodingError.
    concat: how parts are linked; a text that fits one part is one part with neither UDH
        nor SAR values. PAYLOAD gives one part whatever the length (up to 65535 octets).
    ref: concatenation reference, 0..65535; UDH8 keeps its low 8 bits.
    packed: pack GSM7 septets 8 to 7 octets, after the UDH's fill bits (GSM7 only; the
        other alphabets are octets already).

    Raises TextEncodingError for a character the alphabet lacks, MessageTooLongError for
    more than 255 parts or a payload over 65535 octets.
    """
    if not 0 <= ref <= 0xFFFF:
        raise ValueError(f"ref must be 0..65535, got {ref}")
    if not isinstance(concat, ConcatMethod):  # Enum() costs a microsecond on the hot path
        concat = ConcatMethod(concat)
    data: bytes | None
    if encoding is None:
        data = _gsm7_encode_or_none(text)
        if data is not None:
            encoding = Encoding.GSM7
        else:
            encoding = Encoding.LATIN1 if allow_latin1 and _is_latin1(text) else Encoding.UCS2
            data = _encode(text, encoding)
    else:
        if not isinstance(encoding, Encoding):
            encoding = Encoding(encoding)
        data = _encode(text, encoding)

    pack = packed and encoding is Encoding.GSM7
    unit = 2 if encoding is Encoding.UCS2 else 1
    total_units = len(data) // unit
    wire_ref = ref & 0xFF if concat is ConcatMethod.UDH8 else ref

    if concat is ConcatMethod.PAYLOAD or total_units <= _SINGLE_LIMIT[encoding]:
        body = gsm7_pack(data) if pack else data
        if len(body) > MAX_PAYLOAD_OCTETS:
            raise MessageTooLongError(
                f"message takes {len(body)} octets, message_payload holds {MAX_PAYLOAD_OCTETS}"
            )
        part = MessagePart(body, False, None, text, total_units)
        return SplitResult(encoding, encoding.data_coding, concat, wire_ref, (part,))

    limit = _PART_LIMIT[encoding, concat]
    bounds = _part_bounds(data, encoding, limit)
    total = len(bounds)
    if total > MAX_PARTS:
        raise MessageTooLongError(
            f"message needs {total} parts of at most {limit} {encoding} units, "
            f"concatenation allows {MAX_PARTS}"
        )

    use_udh = concat is not ConcatMethod.SAR
    parts: list[MessagePart] = []
    char_pos = 0
    for seq, (start, end) in enumerate(bounds, 1):
        chunk = data[start * unit : end * unit]
        if encoding is Encoding.GSM7:
            nchars = (end - start) - chunk.count(_ESC)
            part_text = text[char_pos : char_pos + nchars]
            char_pos += nchars
        elif encoding is Encoding.LATIN1:
            part_text = text[start:end]
        else:
            part_text = chunk.decode("utf-16-be")
        if use_udh:
            udh = _concat_udh(concat, wire_ref, total, seq)
            body = gsm7_pack(chunk, udh_fill_bits(len(udh))) if pack else chunk
            parts.append(MessagePart(udh + body, True, None, part_text, end - start))
        else:
            body = gsm7_pack(chunk) if pack else chunk
            parts.append(MessagePart(body, False, (wire_ref, total, seq), part_text, end - start))
    return SplitResult(encoding, encoding.data_coding, concat, wire_ref, tuple(parts))


# --------------------------------------------------------------------------------------------
# Inbound


@dataclass(frozen=True, slots=True)
class Udh:
    """Concatenation info from a UDH (23.040 §9.2.3.24.1 and .8).

    ref_bits: 8 or 16, the IE it came from.
    length: octets the whole UDH takes, UDHL octet included (for :func:`udh_fill_bits`).
    """

    ref: int
    total: int
    seq: int
    ref_bits: int
    length: int


def parse_udh(short_message: bytes) -> tuple[Udh | None, bytes]:
    """Split a short_message sent with esm_class UDHI into (concat info, user data).

    Other IEs are skipped. A concat IE of the wrong length, or with total 0, seq 0 or seq
    above total, is ignored (23.040 says to); if there are several, the last one counts.
    A UDH without a usable concat IE gives (None, data after the UDH); a malformed UDH
    (lengths running past the end) gives (None, short_message unchanged). Never raises.
    """
    if not short_message:
        return None, short_message
    udh_end = 1 + short_message[0]
    if udh_end > len(short_message):
        return None, short_message
    found: Udh | None = None
    pos = 1
    while pos < udh_end:
        if pos + 2 > udh_end:
            return None, short_message
        iei = short_message[pos]
        value_start = pos + 2
        pos = value_start + short_message[pos + 1]
        if pos > udh_end:
            return None, short_message
        value = short_message[value_start:pos]
        if iei == _IEI_CONCAT_8 and len(value) == 3:
            ref, total, seq, bits = value[0], value[1], value[2], 8
        elif iei == _IEI_CONCAT_16 and len(value) == 4:
            ref, total, seq, bits = (value[0] << 8) | value[1], value[2], value[3], 16
        else:
            continue
        if 1 <= seq <= total:
            found = Udh(ref=ref, total=total, seq=seq, ref_bits=bits, length=udh_end)
    return found, short_message[udh_end:]


_OCTET_CODECS: Final[dict[int, str]] = {
    0x01: "ascii",  # IA5 (CCITT T.50)
    0x02: "latin-1",  # octet unspecified (8-bit binary)
    0x03: "latin-1",  # ISO-8859-1
    0x04: "latin-1",  # octet unspecified (8-bit binary)
    0x06: "iso8859-5",  # Cyrillic
    0x07: "iso8859-8",  # Latin/Hebrew
    0x08: "utf-16-be",  # UCS-2; UTF-16 also reads surrogate pairs from senders that use them
}


def decode_short_message(data: bytes, data_coding: int) -> str:
    """Text of a short_message or message_payload (UDH already removed). Never raises.

    0x00 GSM 03.38 unpacked; 0x01 IA5/ASCII; 0x02/0x04 octets and 0x03 read as Latin-1;
    0x06 ISO-8859-5; 0x07 ISO-8859-8; 0x08 UCS-2 (an odd trailing octet or a broken
    surrogate becomes U+FFFD); GSM message-class and indication groups (0xC0-0xFF) by their
    alphabet bits; anything else as Latin-1. To reassemble a long message, join the parts'
    bytes first and decode once: a sender may have cut an ESC pair or a surrogate pair.
    """
    if data_coding == 0x00 or 0xC0 <= data_coding <= 0xDF:
        return gsm7_decode(data)
    if 0xE0 <= data_coding <= 0xEF:
        codec = "utf-16-be"
    elif 0xF0 <= data_coding <= 0xFF:
        # Data coding/message class group: bit 2 is the alphabet, 0 GSM7, 1 8-bit.
        if not data_coding & 0x04:
            return gsm7_decode(data)
        codec = "latin-1"
    else:
        codec = _OCTET_CODECS.get(data_coding, "latin-1")
    return data.decode(codec, "replace")
