"""Contract: contacts, their lists and opt-outs (the campaign side's Contacts and Imports
ports, with the message side's OptOuts): imports that create or update contacts, search,
edits, deletion, list ids never reused, opt-outs as listed."""

from __future__ import annotations

import pytest

from gateway.store.campaign_base import ImportRow
from tests.store_contract.conftest import Harness
from tests.store_contract.helpers import T0

pytestmark = pytest.mark.port("contacts")

ANN, BOB = "+33600000001", "+33600000002"


async def test_an_import_makes_members_and_merges_attributes(backend: Harness) -> None:
    friends = await backend.campaigns.create_list("friends", T0, account="acme")
    rows = [ImportRow(ANN, "Ann", {"city": "Paris"}), ImportRow(BOB, None, {})]
    await backend.campaigns.import_rows(friends.id, rows, "web form", T0)
    await backend.campaigns.import_rows(friends.id, [ImportRow(ANN, None, {"age": "40"})], "x", T0)
    found = await backend.campaigns.contacts_by_number([ANN, BOB, "+33699999999"])
    assert set(found) == {ANN, BOB}
    assert (found[ANN].name, found[ANN].attributes) == ("Ann", {"city": "Paris", "age": "40"})
    [member] = await backend.campaigns.memberships(ANN)
    assert (member.list_id, member.list_name) == (friends.id, "friends")
    listed = await backend.campaigns.get_list(friends.id)
    assert listed is not None and (listed.contacts, listed.account) == (2, "acme")


async def test_search_edit_and_delete_a_contact(backend: Harness) -> None:
    friends = await backend.campaigns.create_list("friends", T0)
    rows = [ImportRow(ANN, "Ann Martin", {}), ImportRow(BOB, "Bob", {})]
    await backend.campaigns.import_rows(friends.id, rows, "form", T0)
    assert [c.number for c in await backend.campaigns.search_contacts("martin", None, "", 10)] == [
        ANN
    ]
    assert [c.number for c in await backend.campaigns.search_contacts(None, None, ANN, 10)] == [BOB]
    changed = await backend.campaigns.update_contact(ANN, None, {"city": "Lyon"}, T0 + 1)
    assert changed is not None and (changed.name, changed.attributes) == (
        "Ann Martin",
        {"city": "Lyon"},
    )
    assert await backend.campaigns.update_contact("+33611111111", "x", {}, T0) is None
    assert await backend.campaigns.delete_contact(ANN, None)
    assert not await backend.campaigns.delete_contact(ANN, None)
    assert await backend.campaigns.contacts_by_number([ANN]) == {}


async def test_a_deleted_list_id_is_never_given_again(backend: Harness) -> None:
    first = await backend.campaigns.create_list("a", T0)
    await backend.campaigns.import_rows(first.id, [ImportRow(ANN, "Ann", {})], "form", T0)
    assert await backend.campaigns.delete_list(first.id, T0 + 1) == 1
    assert await backend.campaigns.delete_list(first.id, T0 + 2) is None
    await backend.reopen()
    second = await backend.campaigns.create_list("b", T0 + 3)
    await backend.crash()
    third = await backend.campaigns.create_list("c", T0 + 4)
    assert first.id < second.id < third.id
    assert [lst.id for lst in await backend.campaigns.contact_lists()] == [second.id, third.id]


async def test_opt_outs_are_listed_by_number_and_sender(backend: Harness) -> None:
    await backend.store.add_opt_out(BOB, None, "api", T0)
    await backend.store.add_opt_out(ANN, "ACME", "mo", T0 + 1)
    await backend.store.add_opt_out(ANN, "SHOP", "mo", T0 + 2)
    listed = await backend.campaigns.opt_outs(None, ("", ""), 10)
    assert [(n, r.sender, r.source) for n, r in listed] == [
        (ANN, "ACME", "mo"),
        (ANN, "SHOP", "mo"),
        (BOB, None, "api"),
    ]
    assert [r.sender for r in await backend.campaigns.opt_outs_of(ANN)] == ["ACME", "SHOP"]
    await backend.store.lift_opt_out(ANN, "ACME")
    assert [r.sender for r in await backend.campaigns.opt_outs_of(ANN)] == ["SHOP"]


@pytest.mark.port("inbound")  # tags come from MO (MoLog.tag_contact)
async def test_tags_given_by_mo_are_listed(backend: Harness) -> None:
    await backend.store.tag_contact(ANN, ["vip", "fan"], T0)
    await backend.store.tag_contact(ANN, ["vip"], T0 + 1)
    assert sorted(await backend.campaigns.tags_of(ANN)) == ["fan", "vip"]
    assert await backend.campaigns.tags_of(BOB) == []


async def test_a_number_twice_in_one_batch_is_one_contact_as_two_rows_in_turn_leave_it(
    backend: Harness,
) -> None:
    friends = await backend.campaigns.create_list("friends", T0)
    rows = [
        ImportRow(ANN, "Ann", {"city": "Paris"}),
        ImportRow(BOB, "Bob", {}),
        ImportRow(ANN, "Annie", {"age": "40"}),
    ]
    await backend.campaigns.import_rows(friends.id, rows, "form", T0)
    found = await backend.campaigns.contacts_by_number([ANN])
    assert (found[ANN].name, found[ANN].attributes) == ("Annie", {"city": "Paris", "age": "40"})
    listed = await backend.campaigns.get_list(friends.id)
    assert listed is not None and listed.contacts == 2
    # A null in an edit removes that attribute; the others stay.
    edited = await backend.campaigns.update_contact(ANN, "Ann", {"city": None, "z": "1"}, T0)
    assert edited is not None and edited.attributes == {"age": "40", "z": "1"}


async def test_search_and_opt_outs_within_lists(backend: Harness) -> None:
    one = await backend.campaigns.create_list("one", T0)
    two = await backend.campaigns.create_list("two", T0)
    await backend.campaigns.import_rows(one.id, [ImportRow(ANN, "Ann_1%", {})], "form", T0)
    await backend.campaigns.import_rows(two.id, [ImportRow(BOB, "Bob", {})], "form", T0)
    search = backend.campaigns.search_contacts
    assert [c.number for c in await search(None, [one.id], "", 10)] == [ANN]
    assert [c.number for c in await search(None, [one.id, two.id], "", 10)] == [ANN, BOB]
    assert await search(None, [], "", 10) == []
    assert [c.number for c in await search("ANN", None, "", 10)] == [ANN]  # case ignored
    assert [c.number for c in await search("_1%", None, "", 10)] == [ANN]  # taken as is
    assert await search("A_n", None, "", 10) == []  # "_" is no wildcard
    assert [c.number for c in await search("+336000000", None, "", 1)] == [ANN]  # digits
    assert [c.number for c in await search("00002", [one.id], "", 10)] == []
    await backend.store.add_opt_out(ANN, None, "api", T0)
    await backend.store.add_opt_out(BOB, "ACME", "mo", T0)
    assert [n for n, _ in await backend.campaigns.opt_outs([two.id], ("", ""), 10)] == [BOB]
    assert [n for n, _ in await backend.campaigns.opt_outs(None, (ANN, "*"), 10)] == [BOB]
    assert await backend.campaigns.opt_outs([], ("", ""), 10) == []


async def test_a_contact_leaves_one_list_and_is_forgotten_when_in_none(backend: Harness) -> None:
    one = await backend.campaigns.create_list("one", T0)
    two = await backend.campaigns.create_list("two", T0)
    for lst in (one, two):
        await backend.campaigns.import_rows(lst.id, [ImportRow(ANN, "Ann", {})], "form", T0)
    await backend.store.add_opt_out(ANN, None, "api", T0)
    assert await backend.campaigns.delete_contact(ANN, [one.id])
    assert [m.list_id for m in await backend.campaigns.memberships(ANN)] == [two.id]
    assert set(await backend.campaigns.contacts_by_number([ANN])) == {ANN}  # still in two
    assert not await backend.campaigns.delete_contact(ANN, [one.id])
    assert await backend.campaigns.delete_contact(ANN, [two.id])
    assert await backend.campaigns.contacts_by_number([ANN]) == {}
    assert [r.sender for r in await backend.campaigns.opt_outs_of(ANN)] == [None]  # stays
