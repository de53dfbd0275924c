"""A faster :meth:`gateway.core.validation.Numbers.e164` for numbers already in E.164, for
bulk imports.

``Numbers.e164`` takes a fast path for a number written in E.164 (no phonenumbers.parse: a
regex, the country code found digit by digit, then :class:`NumberValidity`'s one regex for
the region and the length), but it pays for that resolution, and for its answer cache, on
every number: about 3 us each, a third of a contact import's time. Here the resolution is
done once per (first three digits, length): those digits fix the country calling code
(country codes are prefix-free), and when the code has a single region, the code and the
length fix the one regex that decides. A number then costs two string checks, one dict look-up
and that regex.

Everything else goes to ``Numbers.e164`` unchanged: numbers not written as ``+`` and ASCII
digits, country codes shared by several regions (+1, +7, +44 ...: the region depends on the
digits), national numbers with a leading zero, and every number the regex refuses (parse may
still read it as a valid number written differently, and it words the error). So this
accepts a number only where ``Numbers.e164`` returns it unchanged, and refuses exactly what
it refuses, with the same message; ``tests/test_campaign_e164.py`` checks that with
hypothesis against ``Numbers.e164``.
"""

from __future__ import annotations

import re
from typing import Final

import phonenumbers
from phonenumbers import PhoneMetadata

from gateway.core import validation as check

_MIN_LENGTH: Final = 8
_MAX_LENGTH: Final = 16
"""``+`` and 7 to 15 digits: validation's _E164 pattern, outside which its fast path is not
taken."""


class FastE164:
    """``e164(raw)`` as ``numbers.e164(raw)``, faster for valid numbers in E.164."""

    def __init__(self, numbers: check.Numbers) -> None:
        self._numbers = numbers
        self._slow = numbers.e164
        # (digits 1-3, length) -> (position of the national number, its regex), or None:
        # always the slow path for these.
        self._plans: dict[tuple[str, int], tuple[int, re.Pattern[str]] | None] = {}

    def e164(self, raw: str) -> str:
        """``raw`` in E.164; :class:`~gateway.core.validation.Invalid` when it is not valid."""
        key = (raw[1:4], len(raw))
        try:
            plan = self._plans[key]
        except KeyError:
            plan = self._plans[key] = _plan(raw)
        if (
            plan is not None
            and raw[0] == "+"
            and raw.isascii()
            and raw[1:].isdigit()
            and raw[plan[0]] != "0"
            and plan[1].fullmatch(raw[plan[0] :]) is not None
        ):
            return raw
        return self._slow(raw)


def _plan(raw: str) -> tuple[int, re.Pattern[str]] | None:
    """How to decide every number of ``raw``'s first three digits and length, as
    validation.Numbers._valid_e164 and NumberValidity.is_valid do; None: not here."""
    digits = raw[1:4]
    if not (_MIN_LENGTH <= len(raw) <= _MAX_LENGTH) or not (
        digits.isascii() and digits.isdigit() and digits[0] != "0"
    ):
        return None
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]
    if len(regions) != 1:
        return None  # the region depends on the national number
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0].upper())
    if metadata is None:
        return None
    start = 1 + length
    pattern = check._type_pattern(metadata, len(raw) - start)
    if pattern is None:
        return None
    return start, pattern
