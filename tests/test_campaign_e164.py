"""The importer's E.164 fast path answers exactly as ``Numbers.e164``: the same number for
what it accepts, the same refusal (and message) for the rest."""

from __future__ import annotations

import phonenumbers
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.core.e164 import FastE164
from gateway.core.validation import Invalid, Numbers
from tests.test_api_validation import numbers_of_every_region


def outcome(check: Numbers | FastE164, raw: str) -> tuple[bool, str]:
    try:
        return True, check.e164(raw)
    except Invalid as exc:
        return False, str(exc)


class Counting(Numbers):
    """Numbers that counts the calls the fast path hands over."""

    def __init__(self, default_region: str = "") -> None:
        super().__init__(default_region)
        self.calls = 0

    def e164(self, raw: str) -> str:
        self.calls += 1
        return super().e164(raw)


def test_agrees_with_numbers_on_every_regions_examples_and_near_misses() -> None:
    for region in ("", "DE"):
        reference = Numbers(region)
        slow = Counting(region)
        fast = FastE164(slow)
        samples = numbers_of_every_region()
        accepted = 0
        for raw in samples:
            expected = outcome(reference, raw)
            assert outcome(fast, raw) == expected, raw
            accepted += expected[0]
        # The fast path answered most valid numbers itself (those of shared country codes
        # and refusals go the slow way).
        assert accepted > 1000
        assert slow.calls < len(samples) - accepted // 2


COUNTRY_CODES = sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)

e164_like = st.builds(
    lambda code, rest: f"+{code}{rest}",
    st.sampled_from(COUNTRY_CODES),
    st.text(alphabet="0123456789", min_size=0, max_size=14),
)
"""'+', a real country code, then digits: valid and invalid numbers of every region."""

anything_number_like = st.text(
    alphabet=st.sampled_from([*"+0123456789 -().", "\u0663", "\uff11", "\n"]),
    max_size=20,
)
"""Near-numbers: separators, a second '+', non-ASCII digits, a newline."""


@settings(max_examples=3000, deadline=None)
@given(raw=st.one_of(e164_like, anything_number_like), region=st.sampled_from(["", "DE", "US"]))
@example(raw="+4915200000001", region="")
@example(raw="+49015200000001", region="")  # national prefix kept after the code
@example(raw="+491520000000\u0663", region="")  # an Arabic-Indic digit
@example(raw="+14155552671", region="")  # a shared country code
@example(raw="+4915200000001\n", region="")
def test_fast_path_answers_as_numbers_does(raw: str, region: str) -> None:
    assert outcome(FastE164(Numbers(region)), raw) == outcome(Numbers(region), raw)


def test_repeated_prefixes_reuse_one_plan_and_still_check_every_digit() -> None:
    fast = FastE164(Numbers())
    good = [f"+49152{i:08d}" for i in range(0, 1000, 7)]
    assert [fast.e164(n) for n in good] == good
    assert len(fast._plans) == 1
    # Same first digits and length, refused by the regex: still refused, with the message.
    bad = "+4910000000000"
    assert outcome(fast, bad) == outcome(Numbers(), bad)
    assert outcome(fast, bad)[0] is False
