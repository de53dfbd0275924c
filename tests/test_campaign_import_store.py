"""The import's store side writes contact attributes as json.dumps would."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.sqlite_campaigns import _encode_attributes


@settings(max_examples=1000, deadline=None)
@given(attributes=st.dictionaries(st.text(), st.text(), max_size=6))
def test_attributes_are_encoded_as_json_dumps_encodes_them(attributes: dict[str, str]) -> None:
    encoded = _encode_attributes(attributes)
    assert encoded == json.dumps(attributes, ensure_ascii=False)
    assert json.loads(encoded) == attributes


def test_quotes_backslashes_controls_and_non_ascii_survive() -> None:
    attributes = {'a "b"': "c\\d\n\x00", "ville": "Zürich ☃ \ud83d"}
    assert _encode_attributes(attributes) == json.dumps(attributes, ensure_ascii=False)
    assert _encode_attributes({}) == "{}"
