"""The inbound fast paths (issue 6) answer exactly as the general ones do."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api.errors import FieldError
from gateway.api.intake import Intake
from gateway.model import NewMessage
from tests.api_fakes import NOW, carrier, make_config, router_for

_CONFIG = make_config(default_region="FR", carriers=[carrier("alpha"), carrier("beta")])
INTAKE = Intake(_CONFIG.messages, _CONFIG.carriers, router_for(_CONFIG))

NUMBERS = [
    "+33612345678",
    "+4915112345678",
    "0612345678",  # national, FR region
    "36180",  # a short code
    "ACME",  # alphanumeric
    "+999",  # no country code
    "",
    "+33 6 12 34 56 78",
]
TEXTS = [
    "Thanks! You are in. Reply STOP to opt out",
    "",
    "é€ü {x} [y]",
    "Привет",
    "x" * 161,
    "ü" * 900,
    "a" * 1700,
]
REFS = [None, "mo-12", "r" * 65, "r" * 300, "bad\nref"]


def _same(fast: NewMessage | list[FieldError], slow: NewMessage | list[FieldError]) -> None:
    if isinstance(slow, list):
        assert fast == slow
    else:
        assert isinstance(fast, NewMessage), fast
        assert dataclasses.replace(fast, id=slow.id) == slow


@settings(max_examples=400, deadline=None)
@given(
    to=st.sampled_from(NUMBERS),
    sender=st.sampled_from(NUMBERS),
    text=st.sampled_from(TEXTS) | st.text(max_size=200),
    client_ref=st.sampled_from(REFS),
    campaign_id=st.sampled_from(REFS),
    delay=st.sampled_from([0.0, 30.0, 400 * 86400.0]),
    up=st.sampled_from([set(), {"beta"}, {"alpha", "beta"}]),
)
def test_prepare_reply_answers_as_prepare(
    to: str,
    sender: str,
    text: str,
    client_ref: str | None,
    campaign_id: str | None,
    delay: float,
    up: set[str],
) -> None:
    item: dict[str, object] = {"to": to, "from": sender, "text": text}
    if client_ref is not None:
        item["client_ref"] = client_ref
    if campaign_id is not None:
        item["campaign_id"] = campaign_id
    scheduled = NOW + delay if delay > 0 else None
    if scheduled is not None:
        item["scheduled_at"] = scheduled
    slow = INTAKE.prepare(item, account="inbound", now=NOW, up=up)
    fast = INTAKE.prepare_reply(
        to=to,
        sender=sender,
        text=text,
        account="inbound",
        now=NOW,
        up=up,
        client_ref=client_ref,
        campaign_id=campaign_id,
        scheduled_at=scheduled,
    )
    _same(fast, slow)


@pytest.mark.parametrize("to", ["ACME", "36180", "+999"])
def test_prepare_reply_refuses_what_prepare_refuses(to: str) -> None:
    fast = INTAKE.prepare_reply(
        to=to, sender="36180", text="hi", account="inbound", now=NOW, up={"alpha"}
    )
    assert isinstance(fast, list) and [e.path for e in fast] == ["to"]
