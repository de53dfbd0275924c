"""Tests of gateway.smpp.text: GSM 03.38, packing, encoding choice, splitting, inbound UDH."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.smpp.text import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    ConcatMethod,
    Encoding,
    MessagePart,
    MessageTooLongError,
    SplitResult,
    TextEncodingError,
    Udh,
    choose_encoding,
    decode_short_message,
    gsm7_decode,
    gsm7_encode,
    gsm7_length,
    gsm7_pack,
    gsm7_unpack,
    is_gsm7,
    parse_udh,
    split_message,
    udh_fill_bits,
)

GSM_BASIC_CHARS = GSM7_BASIC.replace("\x1b", "")
GSM_EXT_CHARS = "".join(GSM7_EXTENSION)
CYRILLIC = "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
LATIN1_ONLY = "çÿ©®«»"  # Latin-1 but not GSM 03.38
EMOJI = "😀🎉👍🚀❤🇫🇷"  # ❤ is in the BMP; the rest take surrogate pairs

gsm_texts = st.text(alphabet=GSM_BASIC_CHARS + GSM_EXT_CHARS, max_size=700)
mixed_texts = st.text(
    alphabet=st.sampled_from(GSM_BASIC_CHARS + GSM_EXT_CHARS + CYRILLIC + EMOJI + LATIN1_ONLY),
    max_size=700,
)
# Texts heavy in the characters that sit on boundaries: ESC pairs and surrogate pairs.
boundary_texts = st.lists(st.sampled_from(["a", "€", "[", "😀", "ж", "é", "ç"]), max_size=400).map(
    "".join
)
any_text = st.one_of(gsm_texts, mixed_texts, boundary_texts)
concats = st.sampled_from([ConcatMethod.UDH8, ConcatMethod.UDH16, ConcatMethod.SAR])

SINGLE = {Encoding.GSM7: 160, Encoding.LATIN1: 140, Encoding.UCS2: 70}
PER_PART = {
    ConcatMethod.UDH8: {Encoding.GSM7: 153, Encoding.LATIN1: 134, Encoding.UCS2: 67},
    ConcatMethod.UDH16: {Encoding.GSM7: 152, Encoding.LATIN1: 133, Encoding.UCS2: 66},
    # The SMSC builds a UDH from the SAR TLVs, possibly the 16-bit-ref one.
    ConcatMethod.SAR: {Encoding.GSM7: 152, Encoding.LATIN1: 133, Encoding.UCS2: 66},
}
UDH_OCTETS = {ConcatMethod.UDH8: 6, ConcatMethod.UDH16: 7, ConcatMethod.SAR: 0}


def payload_of(part: MessagePart, concat: ConcatMethod) -> bytes:
    """The encoded text of a part, UDH removed."""
    if part.esm_class_udhi:
        return part.short_message[UDH_OCTETS[concat] :]
    return part.short_message


def unit_cost(char: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return 2 if char in GSM7_EXTENSION else 1
    if encoding is Encoding.UCS2:
        return 2 if ord(char) > 0xFFFF else 1
    return 1


# --------------------------------------------------------------------------------------------
# GSM 03.38 encode / decode


def test_at_sign_is_septet_zero_and_survives_round_trip() -> None:
    assert gsm7_encode("@") == b"\x00"
    assert gsm7_decode(b"\x00") == "@"
    assert gsm7_decode(gsm7_encode("a@b@")) == "a@b@"
    assert gsm7_decode(gsm7_unpack(gsm7_pack(gsm7_encode("@@@")), 3)) == "@@@"


def test_basic_table_landmarks() -> None:
    assert gsm7_encode("£$¥") == b"\x01\x02\x03"
    assert gsm7_encode("\n\r") == b"\x0a\x0d"
    assert gsm7_encode("_") == b"\x11"
    assert gsm7_encode("\u0394\u03a9") == b"\x10\x15"  # Greek capital delta, omega
    assert gsm7_encode("¡¿§à") == b"\x40\x60\x5f\x7f"
    assert gsm7_encode("Az09 ") == b"\x41\x7a\x30\x39\x20"


@pytest.mark.parametrize(
    ("char", "septets"),
    [
        ("\x0c", b"\x1b\x0a"),
        ("^", b"\x1b\x14"),
        ("{", b"\x1b\x28"),
        ("}", b"\x1b\x29"),
        ("\\", b"\x1b\x2f"),
        ("[", b"\x1b\x3c"),
        ("~", b"\x1b\x3d"),
        ("]", b"\x1b\x3e"),
        ("|", b"\x1b\x40"),
        ("€", b"\x1b\x65"),
    ],
)
def test_extension_chars_cost_two_septets(char: str, septets: bytes) -> None:
    assert gsm7_encode(char) == septets
    assert gsm7_length(char) == 2
    assert gsm7_decode(septets) == char


def test_encode_error_names_first_unencodable_char_and_index() -> None:
    with pytest.raises(TextEncodingError) as info:
        gsm7_encode("price `5` ж")
    assert info.value.char == "`"
    assert info.value.index == 6
    assert "'`'" in str(info.value) and "index 6" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", ["ж", "ç", "😀", "\x1b", "\t", "\x00"])
def test_chars_outside_the_alphabet_are_rejected(text: str) -> None:
    assert not is_gsm7(text)
    with pytest.raises(TextEncodingError) as info:
        gsm7_encode("ok" + text)
    assert info.value.index == 2


def test_gsm7_length_counts_extension_twice() -> None:
    assert gsm7_length("") == 0
    assert gsm7_length("hello") == 5
    assert gsm7_length("5€ [x]") == 9
    with pytest.raises(TextEncodingError):
        gsm7_length("ж")


def test_decode_tolerates_unknown_and_dangling_escapes() -> None:
    assert gsm7_decode(b"\x1b\x41") == "A"  # no extension char: the base char
    assert gsm7_decode(b"a\x1b") == "a "  # dangling ESC at the end: a space
    assert gsm7_decode(b"\x1b\x1b\x41") == " A"  # ESC ESC is reserved: a space
    assert gsm7_decode(b"\xc1\x9b\xe5") == "A€"  # top bit ignored


@given(gsm_texts)
def test_gsm7_round_trip(text: str) -> None:
    septets = gsm7_encode(text)
    assert is_gsm7(text)
    assert len(septets) == gsm7_length(text)
    assert septets.isascii()
    assert gsm7_decode(septets) == text


@given(st.binary(max_size=400))
@example(b"\x1b")
@example(b"\x1b\x1b")
@example(b"\xff\x9b")
def test_gsm7_decode_never_raises(data: bytes) -> None:
    assert isinstance(gsm7_decode(data), str)


# --------------------------------------------------------------------------------------------
# Packing


def test_pack_hellohello_from_the_spec() -> None:
    assert gsm7_pack(gsm7_encode("hellohello")) == bytes.fromhex("e8329bfd4697d9ec37")
    assert gsm7_pack(gsm7_encode("hello")) == bytes.fromhex("e8329bfd06")


def test_unpack_hellohello() -> None:
    septets = gsm7_unpack(bytes.fromhex("e8329bfd4697d9ec37"), 10)
    assert gsm7_decode(septets) == "hellohello"


def test_pack_with_fill_bit_shifts_septets() -> None:
    assert gsm7_pack(b"\x68", 1) == b"\xd0"  # 'h' << 1
    assert gsm7_unpack(b"\xd0", 1, 1) == b"\x68"
    assert gsm7_pack(b"", 3) == b""


def test_eight_septets_fill_seven_octets() -> None:
    assert len(gsm7_pack(b"\x7f" * 8)) == 7
    assert gsm7_pack(b"\x7f" * 8) == b"\xff" * 7


def test_udh_fill_bits() -> None:
    assert udh_fill_bits(6) == 1  # 8-bit-ref concat UDH
    assert udh_fill_bits(7) == 0  # 16-bit-ref concat UDH
    assert udh_fill_bits(0) == 0
    assert [udh_fill_bits(n) for n in range(1, 8)] == [6, 5, 4, 3, 2, 1, 0]


def test_pack_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        gsm7_pack(b"\x80")
    with pytest.raises(ValueError):
        gsm7_pack(b"a", 7)
    with pytest.raises(ValueError):
        gsm7_unpack(b"a", 1, -1)
    with pytest.raises(TextEncodingError):
        gsm7_unpack(b"\x00" * 7, 9)


@given(st.binary(max_size=300).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
def test_pack_unpack_round_trip(septets: bytes, fill_bits: int) -> None:
    packed = gsm7_pack(septets, fill_bits)
    if septets:
        assert len(packed) == (fill_bits + 7 * len(septets) + 7) // 8
        assert packed[0] & ((1 << fill_bits) - 1) == 0  # fill bits are zero
    else:
        assert packed == b""
    assert gsm7_unpack(packed, len(septets), fill_bits) == septets


def test_unpack_large_payload_is_linear() -> None:
    septets = bytes(range(128)) * 500  # 64000 septets, a message_payload's worth
    assert gsm7_unpack(gsm7_pack(septets, 2), len(septets), 2) == septets


# --------------------------------------------------------------------------------------------
# Choosing an encoding


def test_encoding_data_coding_values() -> None:
    assert Encoding.GSM7.data_coding == 0x00
    assert Encoding.LATIN1.data_coding == 0x03
    assert Encoding.UCS2.data_coding == 0x08
    assert Encoding("gsm7") is Encoding.GSM7 and str(Encoding.UCS2) == "ucs2"


@pytest.mark.parametrize(
    ("text", "allow_latin1", "expected"),
    [
        ("", False, Encoding.GSM7),
        ("Hello {world} €5 @home", False, Encoding.GSM7),
        ("façade", False, Encoding.UCS2),  # ç is not in GSM 03.38 (Ç is)
        ("façade", True, Encoding.LATIN1),
        ("façade €", True, Encoding.UCS2),  # € is GSM but not Latin-1
        ("Привет", True, Encoding.UCS2),
        ("hi 😀", False, Encoding.UCS2),
    ],
)
def test_choose_encoding(text: str, allow_latin1: bool, expected: Encoding) -> None:
    assert choose_encoding(text, allow_latin1) is expected
    assert split_message(text, ref=1, allow_latin1=allow_latin1).encoding is expected


def test_explicit_encoding_is_honoured() -> None:
    result = split_message("hello", Encoding.UCS2, ref=1)
    assert result.encoding is Encoding.UCS2 and result.data_coding == 0x08
    assert result.parts[0].short_message == "hello".encode("utf-16-be")
    result = split_message("hello", Encoding.LATIN1, ref=1)
    assert result.data_coding == 0x03 and result.parts[0].short_message == b"hello"


def test_explicit_encoding_that_cannot_hold_the_text_raises() -> None:
    with pytest.raises(TextEncodingError) as info:
        split_message("abc ж", Encoding.GSM7, ref=1)
    assert info.value.index == 4 and info.value.char == "ж"
    with pytest.raises(TextEncodingError) as info:
        split_message("a😀", Encoding.LATIN1, ref=1)
    assert info.value.index == 1
    with pytest.raises(TextEncodingError):
        split_message("lone \udc00 surrogate", Encoding.UCS2, ref=1)


# --------------------------------------------------------------------------------------------
# Splitting: golden examples


def test_short_text_is_one_part_without_udh() -> None:
    result = split_message("a" * 160, ref=9)
    assert isinstance(result, SplitResult)
    assert result.data_coding == 0x00
    [part] = result.parts
    assert part == MessagePart(b"a" * 160, False, None, "a" * 160, 160)


def test_empty_text_is_one_empty_part() -> None:
    [part] = split_message("", ref=1).parts
    assert part.short_message == b"" and part.text == "" and part.septets_or_units == 0


def test_400_chars_with_euro_and_bracket_split_on_septet_boundaries() -> None:
    # '€' would straddle septets 152/153 and '[' septets 304/305: each part closes early.
    text = "a" * 152 + "€" + "b" * 150 + "[" + "c" * 96
    assert len(text) == 400 and gsm7_length(text) == 402
    result = split_message(text, ref=0x42)
    assert result.encoding is Encoding.GSM7
    assert [p.septets_or_units for p in result.parts] == [152, 152, 98]
    assert all(p.septets_or_units <= 153 for p in result.parts)
    assert [p.text for p in result.parts] == ["a" * 152, "€" + "b" * 150, "[" + "c" * 96]
    assert [p.short_message[:6] for p in result.parts] == [
        bytes.fromhex("050003420301"),
        bytes.fromhex("050003420302"),
        bytes.fromhex("050003420303"),
    ]
    assert result.parts[1].short_message[6:8] == b"\x1b\x65"
    assert all(p.esm_class_udhi and p.sar is None for p in result.parts)


def test_full_153_septet_parts() -> None:
    result = split_message("x" * 306, ref=1)
    assert [p.septets_or_units for p in result.parts] == [153, 153]
    assert len(split_message("x" * 307, ref=1).parts) == 3


def test_200_cyrillic_chars_go_as_three_ucs2_parts() -> None:
    text = ("Привет, мир! " * 20)[:200]
    result = split_message(text, ref=0x10)
    assert result.encoding is Encoding.UCS2 and result.data_coding == 0x08
    assert len(result.parts) == 3
    assert [p.septets_or_units for p in result.parts] == [67, 67, 66]
    assert all(len(p.short_message) == 6 + 2 * p.septets_or_units for p in result.parts)
    assert "".join(p.text for p in result.parts) == text


def test_emoji_surrogate_pair_is_not_split() -> None:
    # The emoji takes units 67 and 68: the first part stops at 66.
    text = "ж" * 66 + "😀" + "ж" * 10
    result = split_message(text, ref=1)
    assert [p.septets_or_units for p in result.parts] == [66, 12]
    assert result.parts[1].text.startswith("😀")
    assert result.parts[1].short_message[6:10] == "😀".encode("utf-16-be")


def test_emoji_counts_two_units_for_the_single_part_limit() -> None:
    assert len(split_message("😀" * 35, ref=1).parts) == 1
    assert len(split_message("😀" * 35 + "a", ref=1).parts) == 2


def test_udh16_bytes() -> None:
    result = split_message("z" * 200, concat=ConcatMethod.UDH16, ref=0x1234)
    assert [p.short_message[:7] for p in result.parts] == [
        bytes.fromhex("06080412340201"),
        bytes.fromhex("06080412340202"),
    ]
    assert [p.septets_or_units for p in result.parts] == [152, 48]
    assert result.ref == 0x1234


def test_udh8_keeps_low_byte_of_ref() -> None:
    result = split_message("z" * 200, ref=0x1234)
    assert result.ref == 0x34
    assert result.parts[0].short_message[:6] == bytes.fromhex("050003340201")


def test_sar_parts_have_no_udh_and_carry_tlv_values() -> None:
    result = split_message("s" * 200, concat=ConcatMethod.SAR, ref=0x0102)
    assert [p.sar for p in result.parts] == [(0x0102, 2, 1), (0x0102, 2, 2)]
    assert not any(p.esm_class_udhi for p in result.parts)
    assert [p.short_message for p in result.parts] == [b"s" * 152, b"s" * 48]


def test_sar_single_part_has_no_sar_values() -> None:
    [part] = split_message("s" * 160, concat=ConcatMethod.SAR, ref=1).parts
    assert part.sar is None and not part.esm_class_udhi


def test_latin1_limits() -> None:
    result = split_message("ç" * 140, ref=1, allow_latin1=True)
    assert result.encoding is Encoding.LATIN1 and len(result.parts) == 1
    result = split_message("ç" * 141, ref=1, allow_latin1=True)
    assert [p.septets_or_units for p in result.parts] == [134, 7]
    assert result.parts[0].short_message == bytes.fromhex("050003010201") + b"\xe7" * 134


def test_payload_is_one_part_whatever_the_length() -> None:
    text = "long " * 2000
    result = split_message(text, concat=ConcatMethod.PAYLOAD, ref=1)
    assert result.concat is ConcatMethod.PAYLOAD
    [part] = result.parts
    assert part.short_message == text.encode("ascii")
    assert not part.esm_class_udhi and part.sar is None and part.text == text


def test_payload_limit_is_65535_octets() -> None:
    split_message("a" * 0xFFFF, concat=ConcatMethod.PAYLOAD, ref=1)
    with pytest.raises(MessageTooLongError):
        split_message("a" * 0x10000, concat=ConcatMethod.PAYLOAD, ref=1)
    # Packing makes room: 70000 septets take 61250 octets.
    result = split_message("a" * 70000, concat=ConcatMethod.PAYLOAD, ref=1, packed=True)
    assert len(result.parts[0].short_message) == 61250


def test_255_parts_is_the_most() -> None:
    assert len(split_message("m" * (153 * 255), ref=1).parts) == 255
    with pytest.raises(MessageTooLongError) as info:
        split_message("m" * (153 * 255 + 1), ref=1)
    assert isinstance(info.value, TextEncodingError)


def test_ref_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError):
        split_message("x", ref=0x10000)
    with pytest.raises(ValueError):
        split_message("x", ref=-1)


def test_packed_single_part() -> None:
    [part] = split_message("hellohello", ref=1, packed=True).parts
    assert part.short_message == bytes.fromhex("e8329bfd4697d9ec37")
    assert part.septets_or_units == 10


def test_packed_udh8_parts_start_after_one_fill_bit() -> None:
    text = "hello" * 40  # 200 septets: 153 + 47
    result = split_message(text, ref=0x42, packed=True)
    first, second = result.parts
    assert first.short_message[:6] == bytes.fromhex("050003420201")
    # 6 UDH octets + 1 fill bit + 153 septets = 1120 bits = 140 octets exactly.
    assert len(first.short_message) == 140
    assert first.short_message[6] == (ord("h") << 1) & 0xFF
    body = gsm7_unpack(first.short_message[6:], 153, 1)
    assert gsm7_decode(body) == text[:153]
    assert gsm7_decode(gsm7_unpack(second.short_message[6:], 47, 1)) == text[153:]


def test_packed_udh16_parts_need_no_fill_bits() -> None:
    text = "hello" * 40
    first, _ = split_message(text, concat=ConcatMethod.UDH16, ref=1, packed=True).parts
    assert len(first.short_message) == 7 + 133  # 152 septets in 133 octets
    assert first.short_message[7:] == gsm7_pack(gsm7_encode(text[:152]))


def test_packed_is_ignored_for_ucs2() -> None:
    [part] = split_message("ж", ref=1, packed=True).parts
    assert part.short_message == b"\x04\x36"


# --------------------------------------------------------------------------------------------
# Splitting: properties


@settings(max_examples=300)
@given(any_text, concats, st.integers(0, 0xFFFF), st.booleans(), st.booleans())
@example("a" * 152 + "€" * 10, ConcatMethod.UDH8, 0, False, False)
@example("ж" * 66 + "😀" * 10, ConcatMethod.UDH8, 0, False, False)
@example("€" * 81, ConcatMethod.UDH16, 0, True, False)
@example("ç" * 300, ConcatMethod.SAR, 0, False, True)
def test_split_properties(
    text: str, concat: ConcatMethod, ref: int, packed: bool, allow_latin1: bool
) -> None:
    result = split_message(text, concat=concat, ref=ref, packed=packed, allow_latin1=allow_latin1)
    assert result.encoding is choose_encoding(text, allow_latin1)
    encoding = result.encoding
    parts = result.parts
    total = len(parts)

    assert "".join(p.text for p in parts) == text
    assert result.data_coding == encoding.data_coding
    assert 1 <= total <= 255
    assert sum(p.septets_or_units for p in parts) == sum(unit_cost(c, encoding) for c in text)

    if total == 1:
        [part] = parts
        assert not part.esm_class_udhi and part.sar is None
        assert part.septets_or_units <= SINGLE[encoding]
        return

    limit = PER_PART[concat][encoding]
    wire_ref = ref & 0xFF if concat is ConcatMethod.UDH8 else ref
    udh_octets = UDH_OCTETS[concat]
    for seq, part in enumerate(parts, 1):
        assert part.text
        assert part.septets_or_units <= limit
        payload = payload_of(part, concat)
        # On the air the part still needs a UDH; with SAR the SMSC adds it (up to 7 octets).
        air_udh = 7 if concat is ConcatMethod.SAR else udh_octets
        if encoding is Encoding.GSM7:
            fill = udh_fill_bits(udh_octets)
            septets = gsm7_unpack(payload, part.septets_or_units, fill) if packed else payload
            assert len(septets) == part.septets_or_units
            assert not septets.endswith(b"\x1b")  # never split an escape from its char
            assert gsm7_decode(septets) == part.text
            assert air_udh * 8 + udh_fill_bits(air_udh) + 7 * len(septets) <= 140 * 8
        elif encoding is Encoding.LATIN1:
            assert len(payload) == part.septets_or_units
            assert air_udh + len(payload) <= 140
            assert payload.decode("latin-1") == part.text
        else:
            assert len(payload) == 2 * part.septets_or_units
            assert air_udh + len(payload) <= 140
            last_unit = int.from_bytes(payload[-2:], "big")
            first_unit = int.from_bytes(payload[:2], "big")
            assert not 0xD800 <= last_unit <= 0xDBFF  # no surrogate pair split
            assert not 0xDC00 <= first_unit <= 0xDFFF
            assert decode_short_message(payload, result.data_coding) == part.text
        assert len(part.short_message) <= 254

        if concat is ConcatMethod.SAR:
            assert part.sar == (ref, total, seq) and not part.esm_class_udhi
        else:
            assert part.esm_class_udhi and part.sar is None
            udh, rest = parse_udh(part.short_message)
            assert udh == Udh(wire_ref, total, seq, 8 if udh_octets == 6 else 16, udh_octets)
            assert rest == payload

        # Greedy: a part other than the last is full; its next character would not fit.
        if seq < total:
            next_char = parts[seq].text[0]
            assert part.septets_or_units + unit_cost(next_char, encoding) > limit


# --------------------------------------------------------------------------------------------
# Inbound: UDH and decoding


def test_parse_udh_8bit_concat() -> None:
    udh, rest = parse_udh(bytes.fromhex("050003420302") + b"hello")
    assert udh == Udh(ref=0x42, total=3, seq=2, ref_bits=8, length=6)
    assert rest == b"hello"


def test_parse_udh_16bit_concat() -> None:
    udh, rest = parse_udh(bytes.fromhex("06080412340201") + b"hi")
    assert udh == Udh(ref=0x1234, total=2, seq=1, ref_bits=16, length=7)
    assert rest == b"hi"


def test_parse_udh_skips_other_ies() -> None:
    # Port addressing IE (0x05, 4 octets) before the concat IE.
    data = bytes.fromhex("0b0504158a0000" + "000307" + "0201") + b"x"
    udh, rest = parse_udh(data)
    assert udh == Udh(ref=7, total=2, seq=1, ref_bits=8, length=12)
    assert rest == b"x"


def test_parse_udh_without_concat_strips_the_header() -> None:
    assert parse_udh(bytes.fromhex("060504158a0000") + b"x") == (None, b"x")
    assert parse_udh(b"\x00abc") == (None, b"abc")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("0a000301"),  # UDHL past the end
        bytes.fromhex("0300050102"),  # IE length past the UDHL
        bytes.fromhex("0100"),  # IE header cut
    ],
)
def test_parse_udh_malformed_returns_raw(data: bytes) -> None:
    assert parse_udh(data) == (None, data)


@pytest.mark.parametrize("value", ["420300", "420003", "420304"])
def test_parse_udh_ignores_invalid_concat_numbers(value: str) -> None:
    assert parse_udh(bytes.fromhex("050003" + value) + b"x") == (None, b"x")


def test_parse_udh_last_concat_ie_wins() -> None:
    udh, _ = parse_udh(bytes.fromhex("0b" + "000301" + "0201" + "08040102" + "0302"))
    assert udh == Udh(ref=0x0102, total=3, seq=2, ref_bits=16, length=12)


@given(st.binary(max_size=300))
def test_parse_udh_never_raises(data: bytes) -> None:
    udh, rest = parse_udh(data)
    if udh is None:
        assert data.endswith(rest)
    else:
        assert 1 <= udh.seq <= udh.total and rest == data[udh.length :]


@pytest.mark.parametrize(
    ("data", "data_coding", "expected"),
    [
        (b"\x00\x1b\x65", 0x00, "@€"),
        (b"hello", 0x01, "hello"),
        (b"caf\xe9", 0x03, "café"),
        (b"\xff\x00", 0x02, "\xff\x00"),
        (b"\xff\x00", 0x04, "\xff\x00"),
        ("жж😀".encode("utf-16-be"), 0x08, "жж😀"),
        (b"\x04\x36\x04", 0x08, "ж\ufffd"),  # odd length
        (b"\xd8\x3d", 0x08, "\ufffd"),  # lone high surrogate
        (b"caf\xe9", 0x99, "café"),  # unknown: Latin-1
        (b"\x00\x41", 0xF0, "@A"),  # class 0, GSM7
        (b"\xe9", 0xF4, "é"),  # class 0, 8-bit
        (b"\x04\x36", 0xE0, "ж"),  # MWI group, UCS-2
        (b"\xb0\xd8", 0x06, "Аи"),  # ISO-8859-5
    ],
)
def test_decode_short_message(data: bytes, data_coding: int, expected: str) -> None:
    assert decode_short_message(data, data_coding) == expected


@given(st.binary(max_size=300), st.integers(-1, 300))
def test_decode_short_message_never_raises(data: bytes, data_coding: int) -> None:
    assert isinstance(decode_short_message(data, data_coding), str)


@given(any_text, st.integers(0, 0xFFFF), st.booleans())
def test_outbound_parts_reassemble_through_inbound_helpers(
    text: str, ref: int, allow_latin1: bool
) -> None:
    result = split_message(text, ref=ref, allow_latin1=allow_latin1)
    pieces: dict[int, bytes] = {}
    for part in reversed(result.parts):  # arrival order does not matter
        udh, rest = parse_udh(part.short_message) if part.esm_class_udhi else (None, b"")
        if udh is None:
            pieces[1] = part.short_message
        else:
            pieces[udh.seq] = rest
    joined = b"".join(pieces[seq] for seq in sorted(pieces))
    assert decode_short_message(joined, result.data_coding) == text
