"""The import's store side: contacts and memberships stored exactly as given, attributes
written as json.dumps would write them."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.store.campaign_base import ImportRow
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_campaigns import SqliteCampaignStore, _encode_attributes


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


ODD = [
    'Zoë "the" O\'Brien',
    "back\\slash",
    "tab\there, newline\nthere",
    "emoji 😀 and CJK 漢字",
    "\u2028 line separator",
    "",
]


async def test_import_rows_stores_every_string_as_given_and_upserts_in_order(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "gateway.db")
    await store.open()
    try:
        campaigns = SqliteCampaignStore(store.db)
        await campaigns.open()
        listed = await campaigns.create_list("odd", 1.0)
        other = await campaigns.create_list("other", 1.0)
        rows = [
            ImportRow(f"+3361234567{i}", name, {"note": name, name or "k": "v"})
            for i, name in enumerate(ODD)
        ]
        # Same batch: a number again (its last name and merged attributes win), and one
        # without a name column (the name is kept).
        rows.append(ImportRow("+33612345670", "Second", {"extra": "x"}))
        rows.append(ImportRow("+33612345671", None, {"note": "changed"}))
        await campaigns.import_rows(listed.id, rows, "fair", 2.0)
        await campaigns.import_rows(other.id, [ImportRow("+33612345672", None, {})], "web", 3.0)
        found = await campaigns.contacts_by_number([r.number for r in rows])
        assert found["+33612345670"].name == "Second"
        assert found["+33612345670"].attributes == {"note": ODD[0], ODD[0]: "v", "extra": "x"}
        assert found["+33612345671"].name == ODD[1]
        assert found["+33612345671"].attributes == {"note": "changed", ODD[1]: "v"}
        for i, name in enumerate(ODD[2:], start=2):
            contact = found[f"+3361234567{i}"]
            assert contact.name == name
            assert contact.attributes == {"note": name, name or "k": "v"}
        assert (await campaigns.get_list(listed.id)).contacts == len(ODD)  # type: ignore[union-attr]
        assert [
            (m.list_id, m.opt_in_source, m.opt_in_at)
            for m in await campaigns.memberships("+33612345672")
        ] == [(listed.id, "fair", 2.0), (other.id, "web", 3.0)]
    finally:
        await store.close()
