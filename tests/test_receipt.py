"""Delivery receipts: esm_class recognition, lenient parsing, formatting, id keys."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smpp.receipt import (
    IdForm,
    IdForms,
    MessageState,
    NetworkError,
    Receipt,
    ReceiptKind,
    ReceiptParseError,
    format_receipt_text,
    is_final,
    is_receipt,
    normalise_message_id,
    parse_receipt,
    parse_receipt_date,
    receipt_kind,
    stat_word,
    state_from_stat,
)

RECEIPT = 0x04


def parse_text(text: bytes, esm_class: int = RECEIPT) -> Receipt:
    """Parse a text-only receipt (no TLVs) that must be recognised."""
    receipt = parse_receipt(esm_class, text, None, None, None)
    assert receipt is not None
    return receipt


# --------------------------------------------------------------------------- esm_class


@pytest.mark.parametrize(
    ("esm_class", "kind"),
    [
        (0x04, ReceiptKind.SMSC_DELIVERY_RECEIPT),
        (0x08, ReceiptKind.SME_DELIVERY_ACK),
        (0x20, ReceiptKind.INTERMEDIATE_NOTIFICATION),
        (0x44, ReceiptKind.SMSC_DELIVERY_RECEIPT),  # UDHI set as well
        (0x84, ReceiptKind.SMSC_DELIVERY_RECEIPT),  # reply path set as well
        (0x07, ReceiptKind.SMSC_DELIVERY_RECEIPT),  # messaging mode bits do not matter
        (0x00, None),  # ordinary MO
        (0x40, None),  # MO with UDH
        (0x10, None),  # SME manual/user acknowledgement
        (0x18, None),  # conversation abort
        (0x0C, None),  # not a defined message type: the field is not a set of flags
        (0x3C, None),
    ],
)
def test_receipt_kind_reads_the_message_type_field(
    esm_class: int, kind: ReceiptKind | None
) -> None:
    assert receipt_kind(esm_class) is kind
    assert is_receipt(esm_class) is (kind is not None)


def test_receipt_looking_text_in_an_ordinary_message_is_not_a_receipt() -> None:
    text = b"id:123 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD"
    assert parse_receipt(0x00, text, "123", 2, None) is None


def test_intermediate_notification_is_parsed_with_its_kind() -> None:
    receipt = parse_text(b"id:42 stat:ENROUTE err:000", esm_class=0x20)
    assert receipt.kind is ReceiptKind.INTERMEDIATE_NOTIFICATION
    assert receipt.state is MessageState.ENROUTE
    assert not receipt.is_final


# --------------------------------------------------------------------------- states


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("DELIVRD", MessageState.DELIVERED),
        ("EXPIRED", MessageState.EXPIRED),
        ("DELETED", MessageState.DELETED),
        ("UNDELIV", MessageState.UNDELIVERABLE),
        ("ACCEPTD", MessageState.ACCEPTED),
        ("UNKNOWN", MessageState.UNKNOWN),
        ("REJECTD", MessageState.REJECTED),
        ("ENROUTE", MessageState.ENROUTE),
        ("ACKED", MessageState.ACCEPTED),
        ("BUFFRED", MessageState.ENROUTE),
        ("delivrd", MessageState.DELIVERED),
        ("Delivered", MessageState.DELIVERED),
        ("UNDELIVERABLE", MessageState.UNDELIVERABLE),
        ("undelivered", MessageState.UNDELIVERABLE),
        ("FAILED", MessageState.UNDELIVERABLE),
        ("Rejected", MessageState.REJECTED),
        ("accepted", MessageState.ACCEPTED),
        ("buffered", MessageState.ENROUTE),
    ],
)
def test_stat_words_are_read_case_insensitively(word: str, state: MessageState) -> None:
    assert state_from_stat(word) is state


@pytest.mark.parametrize("word", ["NOROUTE", "", "DELIV", "SKIPPED", "2"])
def test_unknown_stat_words_give_none(word: str) -> None:
    assert state_from_stat(word) is None


def test_message_state_values_are_the_smpp_34_ones() -> None:
    assert {s.name: s.value for s in MessageState} == {
        "ENROUTE": 1,
        "DELIVERED": 2,
        "EXPIRED": 3,
        "DELETED": 4,
        "UNDELIVERABLE": 5,
        "ACCEPTED": 6,
        "UNKNOWN": 7,
        "REJECTED": 8,
    }


def test_only_enroute_and_unknown_are_not_final() -> None:
    not_final = {s for s in MessageState if not is_final(s)}
    assert not_final == {MessageState.ENROUTE, MessageState.UNKNOWN}


# --------------------------------------------------------------------------- golden receipts


def test_appendix_b_receipt() -> None:
    raw = (
        b"id:0123456789 sub:001 dlvrd:001 submit date:2401151230 done date:2401151231"
        b" stat:DELIVRD err:000 text:Hello world"
    )
    assert parse_text(raw) == Receipt(
        kind=ReceiptKind.SMSC_DELIVERY_RECEIPT,
        message_id="0123456789",
        state=MessageState.DELIVERED,
        stat="DELIVRD",
        err="000",
        network_error_code=None,
        submit_date=datetime(2024, 1, 15, 12, 30),
        done_date=datetime(2024, 1, 15, 12, 31),
        sub=1,
        dlvrd=1,
        text="Hello world",
        raw_text=raw.decode("latin-1"),
    )


def test_kannel_style_receipt_with_capital_text_key_and_hex_id() -> None:
    receipt = parse_text(
        b"id:3d2b1c4a sub:001 dlvrd:000 submit date:2403011200 done date:2403011209"
        b" stat:UNDELIV err:034 Text:Your code is 1234"
    )
    assert receipt.message_id == "3d2b1c4a"
    assert receipt.state is MessageState.UNDELIVERABLE
    assert receipt.err == "034"
    assert receipt.dlvrd == 0
    assert receipt.text == "Your code is 1234"


def test_jasmin_style_receipt_with_uuid_id_and_tlvs() -> None:
    uuid = "a4c5ef2c-4e2e-4a6f-9f29-9a6f2d1b3c5e"
    receipt = parse_receipt(
        RECEIPT,
        f"id:{uuid} sub:001 dlvrd:001 submit date:2405201745 done date:2405201746"
        " stat:DELIVRD err:000 text:".encode(),
        uuid,
        2,
        None,
    )
    assert receipt is not None
    assert receipt.message_id == uuid
    assert receipt.state is MessageState.DELIVERED
    assert receipt.text == ""


def test_twelve_digit_dates_with_seconds() -> None:
    receipt = parse_text(
        b"id:77 submit date:240115123045 done date:240115123102 stat:DELIVRD err:000"
    )
    assert receipt.submit_date == datetime(2024, 1, 15, 12, 30, 45)
    assert receipt.done_date == datetime(2024, 1, 15, 12, 31, 2)


def test_fourteen_digit_dates() -> None:
    receipt = parse_text(
        b"id:77 submit date:20240115123045 done date:20240115123102 stat:DELIVRD err:000"
    )
    assert receipt.submit_date == datetime(2024, 1, 15, 12, 30, 45)
    assert receipt.done_date == datetime(2024, 1, 15, 12, 31, 2)


def test_uppercase_keys() -> None:
    receipt = parse_text(
        b"ID:ABC123 SUB:001 DLVRD:000 SUBMIT DATE:2312312359 DONE DATE:2401010001"
        b" STAT:EXPIRED ERR:027 TEXT:Happy new year"
    )
    assert receipt.message_id == "ABC123"
    assert receipt.state is MessageState.EXPIRED
    assert receipt.submit_date == datetime(2023, 12, 31, 23, 59)
    assert receipt.done_date == datetime(2024, 1, 1, 0, 1)
    assert receipt.err == "027"
    assert receipt.text == "Happy new year"


def test_underscored_date_keys_fields_in_any_order_and_extra_fields() -> None:
    receipt = parse_text(
        b"stat:REJECTD mcc:234 id:0000a1b2 done_date:2402290000 mnc:15"
        b" submit_date:2402281159 err:0x0B dlvrd:0 sub:1"
    )
    assert receipt.message_id == "0000a1b2"
    assert receipt.state is MessageState.REJECTED
    assert receipt.submit_date == datetime(2024, 2, 28, 11, 59)
    assert receipt.done_date == datetime(2024, 2, 29, 0, 0)
    assert receipt.err == "0x0B"
    assert (receipt.sub, receipt.dlvrd) == (1, 0)
    assert receipt.text == ""


def test_missing_fields_are_none() -> None:
    receipt = parse_text(b"id:5 stat:DELIVRD")
    assert receipt.err is None
    assert receipt.submit_date is None
    assert receipt.done_date is None
    assert receipt.sub is None
    assert receipt.dlvrd is None
    assert receipt.text == ""


def test_empty_values_are_missing_not_the_next_field() -> None:
    receipt = parse_text(b"id:5 sub: dlvrd: submit date: done date: stat:DELIVRD err: text:x")
    assert (receipt.sub, receipt.dlvrd, receipt.err) == (None, None, None)
    assert receipt.submit_date is None
    assert receipt.text == "x"


def test_text_runs_to_the_end_and_keeps_colons_and_key_lookalikes() -> None:
    receipt = parse_text(
        b"id:9 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201"
        b" stat:UNDELIV err:001 text:Meet at 10:30: id:999 stat:DELIVRD"
    )
    assert receipt.message_id == "9"
    assert receipt.state is MessageState.UNDELIVERABLE
    assert receipt.text == "Meet at 10:30: id:999 stat:DELIVRD"


def test_space_after_colon_and_comma_separators_are_tolerated() -> None:
    receipt = parse_text(b"id: 12345, stat: DELIVRD, err: 000")
    assert receipt.message_id == "12345"
    assert receipt.state is MessageState.DELIVERED
    assert receipt.err == "000"


def test_trailing_nul_terminator_is_ignored_in_values() -> None:
    receipt = parse_text(b"id:12 stat:DELIVRD err:000\x00")
    assert receipt.err == "000"
    assert receipt.raw_text.endswith("\x00")


def test_first_of_a_repeated_key_wins() -> None:
    assert parse_text(b"id:1 id:2 stat:DELIVRD stat:UNDELIV").message_id == "1"
    assert parse_text(b"id:1 id:2 stat:DELIVRD stat:UNDELIV").state is MessageState.DELIVERED


def test_unknown_stat_word_gives_unknown_and_is_kept() -> None:
    receipt = parse_text(b"id:1 stat:NOROUTE err:200")
    assert receipt.state is MessageState.UNKNOWN
    assert receipt.stat == "NOROUTE"


def test_missing_stat_gives_unknown() -> None:
    assert parse_text(b"id:1 err:000").state is MessageState.UNKNOWN


@pytest.mark.parametrize(
    "date",
    [
        "2413011200",  # month 13
        "2402301200",  # 30 February
        "2401012400",  # hour 24
        "24010112",  # 8 digits
        "24010112000",  # 11 digits
        "2401011200000",  # 13 digits
        "240101120O",  # letter O
        "240101120\u00b2",  # SUPERSCRIPT TWO: str.isdigit() says yes, int() says no
        "\uff12\uff14\uff10\uff11\uff10\uff11\uff11\uff12\uff10\uff10",  # fullwidth digits
    ],
)
def test_unreadable_dates_are_none_not_errors(date: str) -> None:
    assert parse_receipt_date(date) is None
    receipt = parse_text(f"id:1 submit date:{date} stat:DELIVRD".encode("latin-1", "replace"))
    assert receipt.submit_date is None
    assert receipt.state is MessageState.DELIVERED


def test_twelve_digits_that_are_no_yymmddhhmmss_are_read_as_yyyymmddhhmm() -> None:
    assert parse_receipt_date("202401151230") == datetime(2024, 1, 15, 12, 30)
    assert parse_receipt_date("240115123059") == datetime(2024, 1, 15, 12, 30, 59)


def test_non_ascii_digits_in_sub_and_dlvrd_are_not_numbers() -> None:
    # Latin-1 0xB2 is SUPERSCRIPT TWO, which str.isdigit() accepts and int() refuses.
    receipt = parse_text(b"id:1 sub:\xb2 dlvrd:1\xb9 stat:DELIVRD")
    assert (receipt.sub, receipt.dlvrd) == (None, None)


# --------------------------------------------------------------------------- TLVs


def test_tlv_only_receipt_with_empty_short_message() -> None:
    receipt = parse_receipt(RECEIPT, b"", "5F3A2B", 2, b"\x03\x00\x00")
    assert receipt is not None
    assert receipt.message_id == "5F3A2B"
    assert receipt.state is MessageState.DELIVERED
    assert receipt.stat is None
    assert receipt.network_error_code == b"\x03\x00\x00"
    assert receipt.text == ""
    assert receipt.raw_text == ""


def test_tlv_state_wins_over_disagreeing_text() -> None:
    receipt = parse_receipt(RECEIPT, b"id:7 stat:DELIVRD err:000", None, 5, None)
    assert receipt is not None
    assert receipt.state is MessageState.UNDELIVERABLE
    assert receipt.stat == "DELIVRD"


def test_tlv_id_wins_over_text_id() -> None:
    receipt = parse_receipt(RECEIPT, b"id:6699 stat:DELIVRD", "1A2B", None, None)
    assert receipt is not None
    assert receipt.message_id == "1A2B"


def test_blank_tlv_id_falls_back_to_text() -> None:
    receipt = parse_receipt(RECEIPT, b"id:6699 stat:DELIVRD", " \x00", None, None)
    assert receipt is not None
    assert receipt.message_id == "6699"


def test_tlv_id_loses_surrounding_blanks_and_nul() -> None:
    receipt = parse_receipt(RECEIPT, b"", " abc-12\x00", None, None)
    assert receipt is not None
    assert receipt.message_id == "abc-12"


@pytest.mark.parametrize("value", [0, 9, 255, -1])
def test_message_state_outside_smpp_34_falls_back_to_text(value: int) -> None:
    receipt = parse_receipt(RECEIPT, b"id:1 stat:EXPIRED", None, value, None)
    assert receipt is not None
    assert receipt.state is MessageState.EXPIRED
    bare = parse_receipt(RECEIPT, b"", "1", value, None)
    assert bare is not None
    assert bare.state is MessageState.UNKNOWN


def test_network_error_code_is_decoded_when_three_octets() -> None:
    receipt = parse_receipt(RECEIPT, b"", "1", 5, b"\x03\x00\x22")
    assert receipt is not None
    assert receipt.network_error == NetworkError(network_type=3, error_code=0x22)
    short = parse_receipt(RECEIPT, b"", "1", 5, b"\x03\x22")
    assert short is not None
    assert short.network_error_code == b"\x03\x22"
    assert short.network_error is None


@pytest.mark.parametrize(
    "short_message",
    [b"", b"sub:001 dlvrd:001 stat:DELIVRD err:000", b"id: stat:DELIVRD", b"text:id:123"],
)
def test_receipt_without_any_id_raises_receipt_parse_error(short_message: bytes) -> None:
    with pytest.raises(ReceiptParseError, match="message id"):
        parse_receipt(RECEIPT, short_message, None, 2, None)


def test_receipt_parse_error_is_a_value_error() -> None:
    assert issubclass(ReceiptParseError, ValueError)


# --------------------------------------------------------------------------- fuzz

_FRAGMENTS = st.sampled_from(
    [
        "id:",
        "ID:",
        "sub:",
        "dlvrd:",
        "submit date:",
        "done_date:",
        "stat:",
        "err:",
        "text:",
        "Text:",
        " ",
        ",",
        ";",
        ":",
        "\x00",
        "DELIVRD",
        "2401011200",
        "240101120000",
        "20240101120000",
        "202413011200",
        "0xFF",
        "\xb2",
        "9" * 40,
    ]
)
_RECEIPTISH = st.lists(_FRAGMENTS | st.text(max_size=5), max_size=30).map(
    lambda parts: "".join(parts).encode("latin-1", "replace")
)


@settings(max_examples=500)
@given(
    esm_class=st.integers(min_value=0, max_value=255),
    short_message=st.binary(max_size=300) | _RECEIPTISH,
    receipted_message_id=st.none() | st.text(max_size=70),
    message_state=st.none() | st.integers(min_value=-(2**40), max_value=2**40),
    network_error_code=st.none() | st.binary(max_size=5),
)
def test_parse_receipt_raises_nothing_but_receipt_parse_error(
    esm_class: int,
    short_message: bytes,
    receipted_message_id: str | None,
    message_state: int | None,
    network_error_code: bytes | None,
) -> None:
    try:
        receipt = parse_receipt(
            esm_class, short_message, receipted_message_id, message_state, network_error_code
        )
    except ReceiptParseError:
        assert is_receipt(esm_class)
        return
    if not is_receipt(esm_class):
        assert receipt is None
        return
    assert receipt is not None
    assert receipt.message_id
    assert receipt.state in MessageState
    assert receipt.raw_text == short_message.decode("latin-1")


@given(st.text(max_size=20))
def test_parse_receipt_date_never_raises(value: str) -> None:
    result = parse_receipt_date(value)
    assert result is None or isinstance(result, datetime)


# --------------------------------------------------------------------------- format


@pytest.mark.parametrize("state", list(MessageState))
def test_format_then_parse_round_trips_every_state(state: MessageState) -> None:
    submitted = datetime(2024, 6, 1, 9, 15)
    done = datetime(2024, 6, 1, 9, 16)
    text = format_receipt_text("0A1B2C", state, submitted, done, err="005", text="Hi: there")
    assert f"stat:{stat_word(state)} " in text
    receipt = parse_text(text.encode("latin-1"))
    assert receipt.message_id == "0A1B2C"
    assert receipt.state is state
    assert receipt.stat == stat_word(state)
    assert receipt.submit_date == submitted
    assert receipt.done_date == done
    assert receipt.err == "005"
    assert receipt.sub == 1
    assert receipt.dlvrd == (1 if state is MessageState.DELIVERED else 0)
    assert receipt.text == "Hi: there"


def test_format_writes_the_appendix_b_layout() -> None:
    text = format_receipt_text(
        "42",
        MessageState.DELIVERED,
        datetime(2024, 1, 15, 12, 30, 45),
        datetime(2024, 1, 15, 12, 31, 2),
        text="Hello",
    )
    assert text == (
        "id:42 sub:001 dlvrd:001 submit date:2401151230 done date:2401151231"
        " stat:DELIVRD err:000 text:Hello"
    )


def test_format_with_seconds_writes_twelve_digit_dates() -> None:
    text = format_receipt_text(
        "42",
        MessageState.EXPIRED,
        datetime(2024, 1, 15, 12, 30, 45),
        datetime(2024, 1, 15, 12, 31, 2),
        seconds=True,
    )
    assert "submit date:240115123045 done date:240115123102 stat:EXPIRED" in text
    assert "dlvrd:000" in text


@pytest.mark.parametrize("bad_id", ["", "a b", "a,b", "a;b", "\x00", "é"])
def test_format_refuses_an_id_that_would_not_read_back(bad_id: str) -> None:
    with pytest.raises(ValueError, match="message_id"):
        format_receipt_text(
            bad_id, MessageState.DELIVERED, datetime(2024, 1, 1), datetime(2024, 1, 1)
        )


def test_format_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_receipt_text(
            "1", MessageState.DELIVERED, datetime(2024, 1, 1), datetime(2024, 1, 1), sub=-1
        )


_TOKENS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=",;"),
    min_size=1,
    max_size=64,
)
_DATES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59))


@given(
    message_id=_TOKENS,
    state=st.sampled_from(MessageState),
    submitted=_DATES,
    done=_DATES,
    err=_TOKENS,
    text=st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0xFF), max_size=40),
    sub=st.integers(min_value=0, max_value=999),
    dlvrd=st.integers(min_value=0, max_value=999),
    seconds=st.booleans(),
)
def test_format_then_parse_round_trips(
    message_id: str,
    state: MessageState,
    submitted: datetime,
    done: datetime,
    err: str,
    text: str,
    sub: int,
    dlvrd: int,
    seconds: bool,
) -> None:
    formatted = format_receipt_text(
        message_id, state, submitted, done, err, text, sub, dlvrd, seconds=seconds
    )
    receipt = parse_text(formatted.encode("latin-1"))

    def truncate(moment: datetime) -> datetime:
        return moment.replace(microsecond=0) if seconds else moment.replace(second=0, microsecond=0)

    assert receipt.message_id == message_id
    assert receipt.state is state
    assert receipt.err == err
    assert receipt.submit_date == truncate(submitted)
    assert receipt.done_date == truncate(done)
    assert (receipt.sub, receipt.dlvrd) == (sub, dlvrd)
    assert receipt.text == text.rstrip("\x00")


# --------------------------------------------------------------------------- message ids


def test_hex_response_and_decimal_receipt_give_one_key() -> None:
    forms = IdForms(response_form=IdForm.HEX, receipt_form=IdForm.DECIMAL)
    assert forms.response_key("1A2B") == forms.receipt_key("6699") == "1a2b"


def test_decimal_response_and_hex_receipt_give_one_key() -> None:
    forms = IdForms(response_form=IdForm.DECIMAL, receipt_form=IdForm.HEX)
    assert forms.response_key("0000006699") == forms.receipt_key("00001a2b")


@pytest.mark.parametrize(
    ("raw", "form", "key"),
    [
        ("1A2B", IdForm.HEX, "1a2b"),
        ("001a2b", IdForm.HEX, "1a2b"),
        ("6699", IdForm.DECIMAL, "1a2b"),
        ("0006699", IdForm.DECIMAL, "1a2b"),
        ("0", IdForm.DECIMAL, "0"),
        ("0000", IdForm.HEX, "0"),
        ("0000", IdForm.AS_IS, "0"),
        ("00AbC", IdForm.AS_IS, "abc"),
        ("  1A2B\x00", IdForm.HEX, "1a2b"),
        ("0ABC-12", IdForm.AS_IS, "0abc-12"),  # not a number: only case is folded
        ("A4C5EF2C-4E2E", IdForm.HEX, "a4c5ef2c-4e2e"),  # not hex: falls back to as_is
        ("00FF", IdForm.DECIMAL, "ff"),  # letters in a "decimal" id: as_is, no error
        ("", IdForm.DECIMAL, ""),
    ],
)
def test_normalise_message_id(raw: str, form: IdForm, key: str) -> None:
    assert normalise_message_id(raw, form) == key


def test_case_and_leading_zeros_do_not_matter_as_is() -> None:
    forms = IdForms()
    assert forms.response_key("000ABCDEF") == forms.receipt_key("abcdef")
    assert forms.response_key("0042") == forms.receipt_key("42")


def test_as_is_and_decimal_differ_for_the_same_digits() -> None:
    assert normalise_message_id("2587", IdForm.AS_IS) != normalise_message_id(
        "2587", IdForm.DECIMAL
    )


def test_an_overlong_numeric_id_is_kept_opaque() -> None:
    digits = "9" * 65
    assert normalise_message_id(digits, IdForm.DECIMAL) == digits


def test_id_forms_are_strings_for_config() -> None:
    assert IdForm("hex") is IdForm.HEX
    assert IdForm("decimal") is IdForm.DECIMAL
    assert IdForm("as_is") is IdForm.AS_IS


@given(
    # 59 decimal digits plus 5 of padding stay within the 64 characters of a message_id.
    number=st.integers(min_value=0, max_value=10**59 - 1),
    hex_pad=st.integers(min_value=0, max_value=5),
    dec_pad=st.integers(min_value=0, max_value=5),
    upper=st.booleans(),
)
def test_a_number_gets_one_key_in_every_form_and_padding(
    number: int, hex_pad: int, dec_pad: int, upper: bool
) -> None:
    hex_id = "0" * hex_pad + (f"{number:X}" if upper else f"{number:x}")
    dec_id = "0" * dec_pad + str(number)
    key = format(number, "x")
    assert normalise_message_id(hex_id, IdForm.HEX) == key
    assert normalise_message_id(hex_id, IdForm.AS_IS) == key
    assert normalise_message_id(dec_id, IdForm.DECIMAL) == key


@given(raw=st.text(max_size=200), form=st.sampled_from(IdForm))
def test_normalise_message_id_never_raises_and_is_idempotent_as_is(raw: str, form: IdForm) -> None:
    key = normalise_message_id(raw, form)
    assert normalise_message_id(key, IdForm.AS_IS) == key
