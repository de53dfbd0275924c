"""Pure intake code: the fast paths agree with the slow libraries they stand in for."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import MessagesConfig
from gateway.config.loader import ConfigError, load_dataclass
from gateway.core import validation as check
from gateway.core.e164 import FastE164
from gateway.core.intake import SHORT_GSM7_CHARS, Intake, answer, answer_json, batch_answer_json
from gateway.core.model import NewMessage
from gateway.core.validation import Invalid, Numbers, NumberValidity
from gateway.smpp.text import GSM7_BASIC, GSM7_EXTENSION, ConcatMethod, split_message
from tests.api_fakes import NOW, carrier, make_config, router_for


def numbers_of_every_region() -> list[str]:
    """Example numbers of every region and type, and near misses of each (a digit changed,
    one dropped, one added), in E.164."""
    rng = random.Random(7)
    examples: list[str] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in range(11):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                examples.append(phonenumbers.format_number(example, 0))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            examples.append(phonenumbers.format_number(example, 0))
    out = list(examples)
    for number in examples:
        for _ in range(4):
            digits = list(number)
            digits[rng.randrange(2, len(digits))] = rng.choice("0123456789")
            out.append("".join(digits))
        out.append(number[:-1])
        out.append(number + rng.choice("0123456789"))
    return sorted(set(out))


def split_e164(number: str) -> tuple[int, str] | None:
    digits = number[1:]
    for length in (1, 2, 3):
        if int(digits[:length]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return int(digits[:length]), digits[length:]
    return None


def test_fast_validity_agrees_with_phonenumbers_on_every_region() -> None:
    validity = NumberValidity()
    checked = valid = 0
    for number in numbers_of_every_region():
        parts = split_e164(number)
        if parts is None or not parts[1] or parts[1].startswith("0"):
            continue
        code, national = parts
        expected = phonenumbers.is_valid_number(
            phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
        )
        assert validity.is_valid(code, national) == expected, number
        checked += 1
        valid += expected
    assert checked > 5000 and valid > 1000  # the sample has both kinds, plenty of each


def test_numbers_gives_what_parse_and_format_give() -> None:
    numbers = Numbers()
    for number in numbers_of_every_region():
        try:
            parsed = phonenumbers.parse(number, None)
            expected = (
                phonenumbers.format_number(parsed, 0)
                if phonenumbers.is_valid_number(parsed)
                else None
            )
        except phonenumbers.NumberParseException:
            expected = None
        try:
            got: str | None = numbers.e164(number)
        except Invalid:
            got = None
        assert got == expected, number


def test_the_number_cache_stays_bounded_and_remembers_refusals() -> None:
    numbers = Numbers(cache_size=3)
    for n in range(10):
        numbers.e164(f"+3361234567{n}")
        assert len(numbers._cache) <= 3
    for _ in range(2):
        with pytest.raises(Invalid, match="is not a phone number") as caught:
            numbers.e164("+33")
        assert caught.value.__traceback__ is not None
        assert caught.value.__traceback__.tb_next is not None
        assert caught.value.__traceback__.tb_next.tb_next is None  # a fresh one each time


def test_answer_json_is_the_json_of_answer() -> None:
    for encoding, to in [("gsm7", "+33612345678"), ("ucs2", "+14155552671"), ("latin1", "+4")]:
        message = NewMessage(
            id="0123456789abcdef0123456789",
            to=to,
            sender="ACME",
            text="x",
            encoding=encoding,
            parts=12,
            carrier="alpha",
            created_at=NOW,
        )
        assert json.loads(answer_json(message)) == answer(message)
        assert json.loads(batch_answer_json([message, message])) == {
            "messages": [answer(message), answer(message)]
        }


GSM_TEXT = st.text(
    alphabet=st.sampled_from(GSM7_BASIC.replace("\x1b", "") + "".join(GSM7_EXTENSION)),
    max_size=SHORT_GSM7_CHARS,
)


@settings(max_examples=300, deadline=None)
@given(text=GSM_TEXT.filter(bool), concat=st.sampled_from(list(ConcatMethod)), packed=st.booleans())
def test_the_short_gsm7_shortcut_counts_as_split_message(
    text: str, concat: ConcatMethod, packed: bool
) -> None:
    config = make_config(carriers=[carrier("alpha", concat=concat.value, gsm7_packed=packed)])
    intake = Intake(config.messages, config.carriers, router_for(config))
    prepared = intake.prepare(
        {"to": "+33612345678", "from": "ACME", "text": text}, account="a", now=NOW, up={"alpha"}
    )
    assert isinstance(prepared, NewMessage)
    split = split_message(text, None, concat=concat, ref=0, packed=packed)
    assert (prepared.encoding, prepared.parts) == (split.encoding.value, len(split.parts))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["+33612345678", "ACME", "36180", "2030-01-01T00:00:00Z", "auto", "latin1"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELD_NAMES = st.sampled_from(
    [
        "to",
        "from",
        "text",
        "client_ref",
        "callback_url",
        "validity",
        "scheduled_at",
        "priority",
        "encoding",
        "campaign_id",
        "other",
    ]
)


_FR_CONFIG = make_config(default_region="FR")
FR_INTAKE = Intake(_FR_CONFIG.messages, _FR_CONFIG.carriers, router_for(_FR_CONFIG))


@settings(max_examples=400, deadline=None)
@given(item=st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=11) | JSON_VALUES)
def test_prepare_never_raises_on_any_json_value(item: object) -> None:
    prepared = FR_INTAKE.prepare(item, account="a", now=NOW, up={"alpha"})
    if isinstance(prepared, list):
        assert prepared and all(e.message for e in prepared)
    else:
        assert isinstance(prepared, NewMessage)
        assert prepared.to.startswith("+") and prepared.parts >= 1


def test_number_check_possible_takes_a_range_the_metadata_does_not_know_yet() -> None:
    new_range = "+33700000000"  # right length for France, in no range phonenumbers lists
    with pytest.raises(check.Invalid, match="not a valid phone number for country code"):
        check.Numbers("").e164(new_range)
    possible = check.Numbers("FR", number_check="possible")
    assert possible.e164(new_range) == new_range
    assert possible.e164("07 00 00 00 00") == new_range  # national, as default_region says
    assert possible.e164("+33612345678") == "+33612345678"
    for wrong, reason in (
        ("+33612", "too short"),
        ("+336123456789", "too long"),
        ("+99912345678", "no known country code"),
    ):
        with pytest.raises(check.Invalid, match=reason):
            possible.e164(wrong)
    fast = FastE164(possible)
    assert fast.e164(new_range) == new_range


def test_number_check_is_a_messages_setting(tmp_path: Path) -> None:
    assert MessagesConfig().number_check == "valid"
    assert load_dataclass(MessagesConfig, {"number_check": "possible"}).number_check == "possible"
    with pytest.raises(ConfigError, match="number_check"):
        load_dataclass(MessagesConfig, {"number_check": "any"})
    config = make_config()
    config = dataclasses.replace(
        config, messages=dataclasses.replace(config.messages, number_check="possible")
    )
    intake = Intake(config.messages, config.carriers, router_for(config))
    prepared = intake.prepare(
        {"to": "+33700000000", "from": "ACME", "text": "hi"}, account="t", now=0.0, up=set()
    )
    assert not isinstance(prepared, list) and prepared.to == "+33700000000"


def test_a_callback_url_is_checked_once_and_its_verdict_given_every_time() -> None:
    """The callback_url checks (form, then the callback policy) cost more than the rest of
    a plain message's: their verdict on a URL string is kept, refusals included, and every
    request still gets it."""
    from gateway.callback_policy import CallbackPolicy

    class Counting(CallbackPolicy):
        calls = 0

        def url_refusal(self, url: str) -> str | None:
            Counting.calls += 1
            return super().url_refusal(url)

    config = make_config()
    intake = Intake(config.messages, config.carriers, router_for(config), Counting())
    base = {"to": "+33612345678", "from": "ACME", "text": "Hi"}

    def prepare(url: object) -> NewMessage | list[str]:
        got = intake.prepare({**base, "callback_url": url}, account="acme", now=NOW, up={"alpha"})
        return got if isinstance(got, NewMessage) else [f"{e.path}: {e.message}" for e in got]

    for _ in range(20):
        got = prepare("https://hooks.example.com/cb")
        assert isinstance(got, NewMessage) and got.callback_url == "https://hooks.example.com/cb"
    for _ in range(3):
        assert prepare("http://10.0.0.1/cb") == [
            "callback_url: address 10.0.0.1 is not public and not in the gateway's allowed networks"
        ]
        assert prepare("ftp://hooks.example.com/cb") == [
            "callback_url: must be an http:// or https:// URL"
        ]
        assert prepare(42) == ["callback_url: must be a string"]
    assert Counting.calls == 2  # one per distinct URL that passed the form check
