"""Checks of single values of a message request. Pure code: no I/O, no aiohttp.

Each check returns the normalised value or raises :class:`Invalid` with a message that
says what is wrong and what is accepted; the caller names the field.

Phone numbers go through ``phonenumbers`` (Google's libphonenumber metadata). Parsing and
validating is the slow part of intake (some 40 us a number), so :class:`Numbers` takes a
fast path for a number already written in E.164 (:class:`NumberValidity`: no parse, one
regex) and keeps a bounded cache of recent answers.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Final
from urllib.parse import urlsplit

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneMetadata,
    PhoneNumberDesc,
    PhoneNumberFormat,
    ValidationResult,
)

# -- limits ---------------------------------------------------------------------------------

MAX_CLIENT_REF: Final = 64
"""client_ref and campaign_id: room for a UUID (36) or a database key with a prefix."""
MAX_CAMPAIGN_ID: Final = 64
MAX_URL: Final = 2048
"""callback_url: the length past which common HTTP stacks start refusing request lines."""
MIN_VALIDITY: Final = 60
"""A minute: below that a message rarely survives one carrier round trip and retry."""
MAX_VALIDITY: Final = 7 * 24 * 3600
"""A week: the longest validity period SMSCs commonly honour."""
MAX_PRIORITY: Final = 9
"""0..9, higher first: ten levels are plenty to order traffic classes."""
MAX_SCHEDULE_AHEAD: Final = 365 * 24 * 3600.0
"""scheduled_at at most a year ahead: catches epoch milliseconds sent as seconds (a date
thousands of years away) while allowing any real campaign plan."""
MAX_NUMBER_INPUT: Final = 32
"""A phone number as typed: 15 E.164 digits plus '+', spaces and punctuation."""
SHORT_CODE_DIGITS: Final = (3, 8)
"""Short codes are 3 to 8 digits across the countries that use them."""
MAX_ALPHANUMERIC_SENDER: Final = 11
"""3GPP TS 23.040 9.1.2.5: an alphanumeric TP-OA holds 11 GSM characters."""
NUMBER_CACHE_SIZE: Final = 100_000
"""Distinct numbers remembered by :class:`Numbers` (a few tens of MB at most)."""

ENCODINGS: Final = ("auto", "gsm7", "ucs2", "latin1")


class Invalid(ValueError):
    """A value that cannot be used; the message is for the client."""


# -- phone numbers ----------------------------------------------------------------------------

# Characters a phone number may be written with: digits, a leading '+', and the usual
# separators. Letters are refused before phonenumbers sees them (it would read "1-800-FLOWERS"
# as digits, and "ext. 12" as an extension).
_NUMBER_CHARS: Final = re.compile(r"\+?[0-9 ().\-/]+")
_E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")
_COUNTRY_CODES: Final = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)

_PARSE_ERRORS: Final = {
    NumberParseException.INVALID_COUNTRY_CODE: "has no known country code",
    NumberParseException.NOT_A_NUMBER: "is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short to be a phone number",
    NumberParseException.TOO_SHORT_NSN: "is too short to be a phone number",
    NumberParseException.TOO_LONG: "is too long to be a phone number",
}


NUMBER_CHECKS: Final = ("valid", "possible")
"""``[messages] number_check``: see :class:`Numbers`."""

_POSSIBLE_ERRORS: Final = {
    ValidationResult.TOO_SHORT: "is too short to be a phone number",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "is too short to be a phone number (a local form)",
    ValidationResult.TOO_LONG: "is too long to be a phone number",
    ValidationResult.INVALID_COUNTRY_CODE: "has no known country code",
}


class Numbers:
    """Validate phone numbers and write them in E.164 (``+33612345678``).

    ``default_region`` (ISO 3166 alpha-2, e.g. ``FR``) lets national numbers in; without it
    only international ones (``+`` and the country code) are accepted.

    ``number_check`` (``[messages] number_check``): ``"valid"`` accepts only numbers in a
    range phonenumbers' metadata lists for the country (a number in a range opened since the
    library's release is refused until it is upgraded); ``"possible"`` accepts any number of
    a length the country uses (a known country code, the right number of digits), so a new
    range goes through, and so does a mistyped digit that keeps the length.
    """

    def __init__(
        self,
        default_region: str = "",
        cache_size: int = NUMBER_CACHE_SIZE,
        *,
        number_check: str = "valid",
    ) -> None:
        if number_check not in NUMBER_CHECKS:
            raise ValueError(f"number_check must be one of {', '.join(NUMBER_CHECKS)}")
        self.region = default_region.upper() or None
        self.possible = number_check == "possible"
        self._cache: dict[str, tuple[bool, str]] = {}  # (valid, E.164 or the reason)
        self._cache_size = cache_size
        self._validity = NumberValidity()

    def e164(self, raw: str) -> str:
        """``raw`` in E.164; Invalid when it is not a valid number."""
        answer = self._cache.get(raw)
        if answer is None:
            try:
                answer = (True, self._check(raw))
            except Invalid as exc:
                answer = (False, str(exc))
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # simpler than LRU, and a refill costs one batch
            self._cache[raw] = answer
        ok, value = answer
        if not ok:
            raise Invalid(value)  # a new one each time: a re-raised one grows its traceback
        return value

    def _check(self, raw: str) -> str:
        if not raw:
            raise Invalid("must not be empty")
        if len(raw) > MAX_NUMBER_INPUT:
            raise Invalid("is too long to be a phone number")
        if _E164.fullmatch(raw) and self._valid_e164(raw):
            return raw
        if not _NUMBER_CHARS.fullmatch(raw):
            raise Invalid("may hold only digits, a leading '+', spaces and - . ( ) /")
        if self.region is None and not raw.startswith("+"):
            raise Invalid(
                "must be in international format: '+' then the country code"
                " (no default region is configured for national numbers)"
            )
        try:
            number = phonenumbers.parse(raw, self.region)
        except NumberParseException as exc:
            raise Invalid(_PARSE_ERRORS.get(exc.error_type, "is not a phone number")) from None
        if number.country_code not in _COUNTRY_CODES:
            raise Invalid("has no known country code")
        if self.possible:
            # Valid numbers are possible ones: the fast path above took most of them.
            reason = phonenumbers.is_possible_number_with_reason(number)
            if reason != ValidationResult.IS_POSSIBLE:
                raise Invalid(
                    _POSSIBLE_ERRORS.get(
                        reason,
                        f"is not a possible phone number for country code +{number.country_code}",
                    )
                )
        elif not phonenumbers.is_valid_number(number):
            raise Invalid(f"is not a valid phone number for country code +{number.country_code}")
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)

    def _valid_e164(self, raw: str) -> bool:
        """Whether ``raw`` (``+`` and digits) is a valid number exactly as written, without
        phonenumbers.parse. A False is not final: parse may still read the digits as a valid
        number written differently (a national prefix kept after the country code), so the
        caller then goes the slow way."""
        digits = raw[1:]
        for length in (1, 2, 3):  # country codes are prefix-free (ITU-T E.164)
            code = int(digits[:length])
            if code in _COUNTRY_CODES:
                break
        else:
            return False
        national = digits[length:]
        if national.startswith("0"):  # leading zeros need parse's italian_leading_zero rules
            return False
        return self._validity.is_valid(code, national)


_TYPE_DESCS: Final = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
"""The number types phonenumbers tries, in its _number_type_helper; a number of none of them
is invalid."""


class NumberValidity:
    """``phonenumbers.is_valid_number`` for a country code and a national significant number,
    about five times faster.

    phonenumbers tries the region's patterns one type after another, each through several
    Python calls. Here the patterns of every type whose possible lengths admit the number's
    length are joined into one regex per (region, length), behind a look-ahead for the
    region's general pattern: one regex call decides. The region of a shared country code
    (+1, +7, +44 ...) is found as phonenumbers finds it. ``tests/test_api_validation.py``
    compares the two on numbers of every region, so a phonenumbers upgrade that changes
    the rules shows up there.
    """

    def __init__(self) -> None:
        self._patterns: dict[tuple[int, str, int], re.Pattern[str] | None] = {}

    def is_valid(self, country_code: int, national: str) -> bool:
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
        if not regions:
            return False
        region = regions[0]
        if len(regions) > 1:  # as phonenumberutil._region_code_for_number_from_list
            for candidate in regions:
                metadata = PhoneMetadata.metadata_for_region(candidate.upper(), None)
                if metadata is None:
                    continue
                if metadata.leading_digits is not None:
                    if re.match(metadata.leading_digits, national):
                        region = candidate
                        break
                elif self._matches(metadata, national):
                    region = candidate
                    break
            else:
                return False
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region.upper())
        return metadata is not None and self._matches(metadata, national)

    def _matches(self, metadata: PhoneMetadata, national: str) -> bool:
        key = (metadata.country_code or 0, metadata.id, len(national))
        try:
            pattern = self._patterns[key]
        except KeyError:
            pattern = self._patterns[key] = _type_pattern(metadata, len(national))
        return pattern is not None and pattern.fullmatch(national) is not None


def _takes(desc: PhoneNumberDesc | None, length: int) -> bool:
    # As phonenumberutil._is_number_matching_desc: no lengths listed means any length.
    if desc is None or not desc.national_number_pattern:
        return False
    return not desc.possible_length or length in desc.possible_length


def _type_pattern(metadata: PhoneMetadata, length: int) -> re.Pattern[str] | None:
    """One regex that fully matches exactly the national numbers of ``length`` digits that
    phonenumbers gives a type in this region; None when there are none."""
    general = metadata.general_desc
    if general is None or not _takes(general, length):
        return None
    types = [getattr(metadata, name) for name in _TYPE_DESCS]
    alternatives = [f"(?:{d.national_number_pattern})" for d in types if _takes(d, length)]
    if not alternatives:
        return None
    return re.compile(f"(?=(?:{general.national_number_pattern})\\Z)(?:{'|'.join(alternatives)})")


# -- sender -----------------------------------------------------------------------------------

_ALPHANUMERIC: Final = re.compile(r"[A-Za-z0-9 ]+")


def sender(raw: str, numbers: Numbers) -> str:
    """A short code (3-8 digits), a phone number (normalised to E.164) or an alphanumeric
    sender id (1-11 of A-Z a-z 0-9 and space, at least one letter)."""
    if not raw:
        raise Invalid("must not be empty")
    if any(c.isalpha() for c in raw):
        if len(raw) > MAX_ALPHANUMERIC_SENDER:
            raise Invalid(
                f"an alphanumeric sender id has at most {MAX_ALPHANUMERIC_SENDER} characters"
            )
        if not _ALPHANUMERIC.fullmatch(raw):
            raise Invalid(
                "an alphanumeric sender id may hold only the letters A-Z and a-z, digits and spaces"
            )
        if raw[0] == " " or raw[-1] == " ":
            raise Invalid("an alphanumeric sender id must not start or end with a space")
        return raw
    if raw.isascii() and raw.isdigit() and len(raw) <= SHORT_CODE_DIGITS[1]:
        if len(raw) < SHORT_CODE_DIGITS[0]:
            raise Invalid(
                f"a short code has {SHORT_CODE_DIGITS[0]} to {SHORT_CODE_DIGITS[1]} digits"
            )
        return raw
    try:
        return numbers.e164(raw)
    except Invalid as exc:
        raise Invalid(
            f"{exc}; a sender is a short code ({SHORT_CODE_DIGITS[0]}-{SHORT_CODE_DIGITS[1]}"
            f" digits), a phone number or an alphanumeric id of at most"
            f" {MAX_ALPHANUMERIC_SENDER} characters"
        ) from None


# -- other fields -----------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole_number(value: object) -> int:
    """An integer, or a float with no fraction (``60.0``); JSON does not tell them apart."""
    if _is_int(value):
        return value  # type: ignore[return-value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise Invalid("must be a whole number")


def label(value: object, max_length: int) -> str:
    """client_ref, campaign_id: a non-empty string of printable characters."""
    if not isinstance(value, str):
        raise Invalid("must be a string")
    if not value:
        raise Invalid("must not be empty (leave the field out instead)")
    if len(value) > max_length:
        raise Invalid(f"must be at most {max_length} characters (got {len(value)})")
    if not value.isprintable():
        raise Invalid("must not hold control characters")
    return value


def callback_url(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid("must be a string")
    if len(value) > MAX_URL:
        raise Invalid(f"must be at most {MAX_URL} characters")
    if not value.isprintable() or " " in value:
        raise Invalid("must not hold spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number 0..65535
    except ValueError:
        raise Invalid("is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise Invalid("must be an http:// or https:// URL")
    if not parts.hostname:
        raise Invalid("must name a host")
    return value


def validity(value: object) -> int:
    seconds = whole_number(value)
    if not MIN_VALIDITY <= seconds <= MAX_VALIDITY:
        raise Invalid(f"must be {MIN_VALIDITY}..{MAX_VALIDITY} seconds (got {seconds})")
    return seconds


def priority(value: object) -> int:
    if not _is_int(value):
        raise Invalid("must be an integer")
    assert isinstance(value, int)
    if not 0 <= value <= MAX_PRIORITY:
        raise Invalid(f"must be 0..{MAX_PRIORITY} (got {value})")
    return value


def encoding(value: object) -> str:
    if value not in ENCODINGS:
        raise Invalid("must be one of " + ", ".join(ENCODINGS))
    assert isinstance(value, str)
    return value


def timestamp(value: object, now: float) -> float:
    """scheduled_at: ISO-8601 with a UTC offset (``2030-01-02T03:04:05Z``), or epoch
    seconds. At most :data:`MAX_SCHEDULE_AHEAD` ahead of ``now``; a past time means now."""
    if isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise Invalid(
                "must be an ISO-8601 date and time with a UTC offset, e.g."
                " '2030-01-02T03:04:05Z', or epoch seconds"
            ) from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise Invalid("must include a UTC offset, e.g. 'Z' or '+02:00'")
        at = moment.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            at = float(value)
        except OverflowError:  # an integer beyond any float
            at = math.inf
        if not math.isfinite(at):
            raise Invalid("must be a finite number of seconds")
    else:
        raise Invalid("must be an ISO-8601 string or a number of epoch seconds")
    if at > now + MAX_SCHEDULE_AHEAD:
        raise Invalid("must be at most a year ahead (epoch seconds, not milliseconds)")
    return at
