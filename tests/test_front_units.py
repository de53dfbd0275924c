"""The front's pure parts and its store outbox: config and passwords, joining parts,
addresses, receipt and MO PDUs, and the front outbox of the SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config.front import FrontConfig
from gateway.config.loader import ConfigError, load_dataclass
from gateway.core.model import (
    IncomingReceipt,
    MessageStatus,
    NewMessage,
    SubmitOutcome,
    new_message_id,
)
from gateway.front.outgoing import (
    ReceiptInfo,
    build_mo,
    build_receipt,
    created_at_of,
    registered_delivery_of,
)
from gateway.front.passwords import hash_password, verify_password
from gateway.front.passwords import main as passwords_main
from gateway.front.submits import SubmitReassembler, extract, smpp_time
from gateway.smpp.address import as_number
from gateway.smpp.constants import EsmClass, Tag
from gateway.smpp.pdu import SubmitSm, tlv_u8, tlv_u16
from gateway.smpp.receipt import MessageState, parse_receipt
from gateway.smpp.text import ConcatMethod, split_message
from gateway.store.base import FrontPart
from gateway.store.sqlite import SqliteStore

# -- config and passwords -------------------------------------------------------------------


def test_password_hash_is_salted_and_verifies() -> None:
    first, second = hash_password("s3cret", 1000), hash_password("s3cret", 1000)
    assert first != second  # salted
    assert verify_password("s3cret", first) and verify_password("s3cret", second)
    assert not verify_password("s3creT", first)
    assert not verify_password("s3cret", "sha256$nothing")
    assert not verify_password("s3cret", "pbkdf2_sha256$x$00$00")


def test_password_tool_prints_a_hash_that_loads(capsys: pytest.CaptureFixture[str]) -> None:
    assert passwords_main(["pw123"]) == 0
    stored = capsys.readouterr().out.strip()
    assert verify_password("pw123", stored)
    config = load_dataclass(
        FrontConfig, {"accounts": [{"system_id": "crm", "password_hash": stored}]}
    )
    assert config.port == 2776 and config.host == "127.0.0.1"
    assert stored not in repr(config)
    assert passwords_main(["far-too-long"]) == 2


def test_front_config_lists_every_error() -> None:
    good = hash_password("pw", 1000)
    raw: dict[str, Any] = {
        "tls_cert": "/etc/cert.pem",
        "accounts": [
            {"system_id": "crm", "password_hash": good, "allowed_ips": ["10.0.0.0/33"]},
            {"system_id": "crm", "password_hash": "plain-text"},
            {"system_id": "x" * 16, "password_hash": good, "window": 0},
        ],
        "mo_routes": {"+33600000000": "nobody"},
    }
    with pytest.raises(ConfigError) as info:
        load_dataclass(FrontConfig, raw)
    text = "\n".join(info.value.errors)
    assert "accounts[0].allowed_ips" in text
    assert "accounts[1].password_hash" in text
    assert "accounts[2].system_id" in text
    assert "accounts[2].window" in text
    raw["accounts"] = [
        {"system_id": "crm", "password_hash": good},
        {"system_id": "crm", "password_hash": good},
    ]
    with pytest.raises(ConfigError) as info:
        load_dataclass(FrontConfig, raw)
    text = "\n".join(info.value.errors)
    assert "accounts[1].system_id: duplicate" in text
    assert "tls_cert: tls_cert and tls_key go together" in text
    assert "mo_routes.+33600000000: unknown account 'nobody'" in text


# -- inbound ---------------------------------------------------------------------------------


def _submit(data: bytes, **fields: Any) -> SubmitSm:
    return SubmitSm(
        source_addr="ACME", destination_addr="33612345678", short_message=data, **fields
    )


def test_extract_reads_udh_sar_and_payload() -> None:
    udh = extract(_submit(bytes((5, 0, 3, 7, 2, 1)) + b"abc", esm_class=EsmClass.UDHI))
    assert (udh.data, udh.concat) == (b"abc", (7, 2, 1))
    sar = extract(
        _submit(
            b"xyz",
            tlvs=(
                tlv_u16(Tag.SAR_MSG_REF_NUM, 300),
                tlv_u8(Tag.SAR_TOTAL_SEGMENTS, 3),
                tlv_u8(Tag.SAR_SEGMENT_SEQNUM, 3),
            ),
        )
    )
    assert (sar.data, sar.concat) == (b"xyz", (300, 3, 3))
    payload = extract(_submit(b"", tlvs=((Tag.MESSAGE_PAYLOAD, b"p" * 300),)))
    assert (payload.data, payload.concat) == (b"p" * 300, None)
    single = extract(_submit(bytes((5, 0, 3, 7, 1, 1)) + b"one", esm_class=EsmClass.UDHI))
    assert single.concat is None and single.data == b"one"


def test_as_number() -> None:
    assert as_number("33612345678", 1) == "+33612345678"
    assert as_number("33612345678", 0) == "+33612345678"
    assert as_number("0612345678", 0) == "0612345678"  # national: left to intake's region
    assert as_number("+33612345678", 0) == "+33612345678"
    assert as_number("ACME", 5) == "ACME"
    assert as_number("12345", 3) == "12345"


@pytest.mark.parametrize("ton", [0, 3, 6])
def test_a_short_code_reads_as_the_http_api_writes_it(ton: int) -> None:
    """3 to 8 digits with TON 0, 3 or 6 is a short code (intake's ``"from": "12345"``)."""
    assert as_number("123", ton) == "123"
    assert as_number("12345678", ton) == "12345678"
    assert as_number("12", 0) == "+12"  # too short for a short code: intake refuses it
    assert as_number("123456789", 0) == "+123456789"
    assert as_number("12345", 1) == "+12345"  # TON 1 says international


def test_one_address_rule_both_ways() -> None:
    """What the front and the simulator write reads back as it was kept."""
    from gateway.smpp.address import smpp_address
    from smsc_simulator.mo import address

    for kept, wire in (
        ("+33612345678", (1, 1, "33612345678")),
        ("12345", (0, 1, "12345")),
        ("ACME", (5, 0, "ACME")),
    ):
        assert smpp_address(kept) == address(kept) == wire
        assert as_number(wire[2], wire[0]) == kept


def test_smpp_times() -> None:
    now = 1_700_000_000.0
    assert smpp_time("000001000000000R", now) == now + 86400
    assert smpp_time("000000013000000R", now) == now + 5400
    # 2023-11-14 23:13:20 at UTC+1 (4 quarter hours ahead) is 22:13:20 UTC.
    assert smpp_time("231114231320004+", now) == 1_700_000_000.0
    assert smpp_time("231114211320004-", now) == 1_700_000_000.0
    assert smpp_time("231114221320504+", now) == 1_700_000_000.5 - 3600
    for bad in ("", "tomorrow", "231314221320000+", "2311142213200000", "231114221320049+"):
        with pytest.raises(ValueError):
            smpp_time(bad, now)


def test_reassembler_joins_out_of_order_and_times_out() -> None:
    text = "Ünïcode and GSM € mixed: " * 8
    split = split_message(text, concat=ConcatMethod.UDH8, ref=5)
    pieces = [
        extract(_submit(p.short_message, esm_class=EsmClass.UDHI, data_coding=split.data_coding))
        for p in split.parts
    ]
    assert len(pieces) >= 2
    joiner: SubmitReassembler[int] = SubmitReassembler(timeout=10)
    key = ("crm", "ACME", "33612345678", 5, len(pieces))
    order = list(reversed(range(len(pieces))))
    for n, index in enumerate(order):
        group, replaced = joiner.add(key, pieces[index], index, now=1.0)
        assert replaced is None
        if n < len(order) - 1:
            assert group is None
    assert group is not None
    assert group.text() == text
    assert group.attached() == list(range(len(pieces)))  # in part order
    # A part sent twice replaces the first copy; an incomplete group expires.
    joiner.add(key, pieces[0], 100, now=1.0)
    _, replaced = joiner.add(key, pieces[0], 101, now=2.0)
    assert replaced == 100
    assert joiner.expired(now=5.0) == []
    (old,) = joiner.expired(now=11.0)
    assert old.attached() == [101]
    assert joiner.groups == {}


# -- outgoing --------------------------------------------------------------------------------


def _info(status: str, rd: int = 1) -> ReceiptInfo:
    return ReceiptInfo(
        message_id="0190aabbccdd11223344556677",
        status=status,
        done_at=1_700_000_100.0,
        to="+33612345678",
        sender="ACME",
        submitted_at=1_700_000_000.0,
        registered_delivery=rd,
    )


@pytest.mark.parametrize(
    ("status", "state", "stat"),
    [
        ("delivered", MessageState.DELIVERED, "DELIVRD"),
        ("undeliverable", MessageState.UNDELIVERABLE, "UNDELIV"),
        ("expired", MessageState.EXPIRED, "EXPIRED"),
        ("rejected", MessageState.REJECTED, "REJECTD"),
        ("failed", MessageState.UNDELIVERABLE, "UNDELIV"),
    ],
)
def test_receipt_pdu_reads_back(status: str, state: MessageState, stat: str) -> None:
    pdu = build_receipt(_info(status))
    assert pdu is not None
    assert pdu.esm_class == EsmClass.SMSC_DELIVERY_RECEIPT
    assert (pdu.source_addr_ton, pdu.source_addr) == (1, "33612345678")
    assert (pdu.dest_addr_ton, pdu.destination_addr) == (5, "ACME")
    assert pdu.receipted_message_id == "0190aabbccdd11223344556677"
    assert pdu.message_state == state
    parsed = parse_receipt(pdu.esm_class, pdu.short_message, None, None, None)  # text alone
    assert parsed is not None
    assert parsed.message_id == "0190aabbccdd11223344556677"
    assert parsed.state == state
    assert f"stat:{stat}" in pdu.short_message.decode("ascii")
    assert "submit date:2311142213 done date:2311142215" in pdu.short_message.decode("ascii")


def test_failure_only_receipts() -> None:
    assert build_receipt(_info("delivered", rd=2)) is None
    assert build_receipt(_info("undeliverable", rd=2)) is not None
    assert registered_delivery_of("smpp:crm?rd=2") == 2
    assert registered_delivery_of("smpp:crm") == 1
    message_id = new_message_id(1_700_000_000.5)
    assert created_at_of(message_id) == 1_700_000_000.5


def test_mo_pdus() -> None:
    payload = json.dumps({"source": "+33611111111", "destination": "ACME", "text": "Привет"})
    (pdu,) = build_mo(payload, ref=1)
    assert (pdu.source_addr_ton, pdu.source_addr) == (1, "33611111111")
    assert (pdu.dest_addr_ton, pdu.destination_addr) == (5, "ACME")
    assert pdu.data_coding == 8 and pdu.short_message == "Привет".encode("utf-16-be")
    long = json.dumps({"source": "12345", "destination": "+33611111111", "text": "x" * 200})
    parts = build_mo(long, ref=9)
    assert len(parts) == 2 and all(p.esm_class & EsmClass.UDHI for p in parts)
    assert parts[0].source_addr_ton == 0 and parts[0].source_addr == "12345"
    (whole,) = build_mo(long, ref=9, max_parts=1)  # more parts than the window: one PDU
    assert whole.short_message == b"" and whole.message_payload == b"x" * 200
    assert not whole.esm_class & EsmClass.UDHI


def test_account_networks_take_ipv4_mapped_peers() -> None:
    from gateway.config.front import FrontAccountConfig
    from gateway.front.server import FrontAccount

    config = FrontAccountConfig(
        system_id="crm", password_hash="x", allowed_ips=("10.1.0.0/16", "2001:db8::/32")
    )
    account = FrontAccount(config, 0.0)
    assert account.allows("10.1.2.3") and account.allows("::ffff:10.1.2.3")
    assert account.allows("2001:db8::1")
    assert not account.allows("10.2.0.1") and not account.allows("127.0.0.1")
    assert not account.allows("not an address")


# -- the store's front outbox ------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "front.db", "normal")
    await store.open()
    yield store
    await store.close()


def _message(callback: str | None) -> NewMessage:
    return NewMessage(
        id=new_message_id(),
        to="+33612345678",
        sender="ACME",
        text="hi",
        encoding="gsm7",
        parts=1,
        carrier="sim",
        created_at=1000.0,
        callback_url=callback,
        account="crm",
    )


async def _deliver(store: SqliteStore, message: NewMessage, key: str) -> None:
    await store.record_outcomes(
        [
            SubmitOutcome(
                message_id=message.id,
                part=1,
                carrier="sim",
                status=MessageStatus.SUBMITTED,
                at=1001.0,
                carrier_message_id=key,
                receipt_key=key,
                command_status=0,
            )
        ]
    )
    await store.record_receipts(
        [
            IncomingReceipt(
                carrier="sim",
                receipt_key=key,
                carrier_message_id=key,
                status=MessageStatus.DELIVERED,
                state="DELIVRD",
                received_at=1002.0,
            )
        ]
    )


async def test_final_status_of_an_upstream_message_lands_in_the_front_outbox(
    store: SqliteStore,
) -> None:
    upstream, http = _message("smpp:crm?rd=1"), _message("https://example.net/cb")
    await store.accept([upstream, http])
    await _deliver(store, upstream, "k1")
    await _deliver(store, http, "k2")
    (item,) = await store.front_due("crm", 2000.0, 10)
    assert item.kind == "receipt" and item.account == "crm" and item.attempts == 0
    payload = json.loads(item.payload)
    assert (payload["id"], payload["status"], payload["url"]) == (
        upstream.id,
        "delivered",
        "smpp:crm?rd=1",
    )
    assert (payload["to"], payload["sender"], payload["created_at"]) == (
        "+33612345678",
        "ACME",
        1000.0,
    )
    callbacks = await store.callbacks_due(2000.0, 10)
    assert [c.url for c in callbacks] == ["https://example.net/cb"]  # not the smpp: one
    assert await store.front_due("other", 2000.0, 10) == []

    await store.front_retry([item.id], 3000.0)
    assert await store.front_due("crm", 2000.0, 10) == []
    (again,) = await store.front_due("crm", 3000.0, 10)
    assert again.attempts == 1
    await store.front_enqueue([("crm", "mo", "{}")], 3000.0)
    assert await store.front_pending() == {"crm": 2}
    await store.front_done([again.id])
    (mo,) = await store.front_due("crm", 3000.0, 10)
    assert mo.kind == "mo"


def _front_part(message_id: str, seq: int, total: int = 2) -> FrontPart:
    return FrontPart(
        part_id=f"{message_id}-{seq}",
        message_id=message_id,
        account="crm",
        source="ACME",
        destination="33612345678",
        ref=7,
        total=total,
        seq=seq,
        pdu=b"pdu %d" % seq,
        received_at=999.0,
    )


async def _outcome(store: SqliteStore, message: NewMessage, part: int, status: str) -> None:
    key = f"{message.id}.{part}"
    await store.record_outcomes(
        [
            SubmitOutcome(
                message_id=message.id,
                part=part,
                carrier="sim",
                status=MessageStatus.SUBMITTED,
                at=1001.0,
                carrier_message_id=key,
                receipt_key=key,
                command_status=0,
            )
        ]
    )
    await store.record_receipts(
        [
            IncomingReceipt(
                carrier="sim",
                receipt_key=key,
                carrier_message_id=key,
                status=MessageStatus(status),
                state=status,
                received_at=1002.0,
            )
        ]
    )


async def test_a_message_joined_from_upstream_parts_has_a_receipt_per_part(
    store: SqliteStore,
) -> None:
    """2 upstream parts, cut again into 3 by smsgw: upstream part 1 carries carrier parts 1-2,
    part 2 carries 2-3; each receipt has its part's id and its part's state."""
    message = _message("smpp:crm?rd=1")
    message.parts = 3
    await store.front_parts_add([_front_part(message.id, 1), _front_part(message.id, 2)])
    await store.accept([message])
    await store.front_parts_joined([message.id])
    await _outcome(store, message, 1, "delivered")
    await _outcome(store, message, 2, "delivered")
    assert await store.front_due("crm", 2000.0, 10) == []  # not final yet
    one, two = [await store.front_part_status(f"{message.id}-{n}") for n in (1, 2)]
    assert one is not None and (one.status, one.final_at) == ("delivered", 1002.0)
    assert two is not None and (two.status, two.final_at) == ("accepted", None)  # part 3
    await _outcome(store, message, 3, "undeliverable")
    items = await store.front_due("crm", 2000.0, 10)
    payloads = sorted((json.loads(i.payload) for i in items), key=lambda p: p["id"])
    assert [(p["id"], p["status"], p["message_id"]) for p in payloads] == [
        (f"{message.id}-1", "delivered", message.id),
        (f"{message.id}-2", "undeliverable", message.id),
    ]
    assert {p["url"] for p in payloads} == {"smpp:crm?rd=1"}
    part = await store.front_part(f"{message.id}-1")
    assert part is not None and part.state == "joined" and part.pdu == b""
    two = await store.front_part_status(f"{message.id}-2")
    assert two is not None and two.status == "undeliverable" and two.final_at is not None
    assert await store.front_part_status(f"{message.id}-3") is None


async def test_front_parts_held_survive_a_reopen_and_settle(tmp_path: Path) -> None:
    path = tmp_path / "front.db"
    store = SqliteStore(path, "full")
    await store.open()
    joined, waiting, refused = _message("smpp:crm?rd=1"), new_message_id(), new_message_id()
    await store.front_parts_add(
        [
            _front_part(joined.id, 1),
            _front_part(waiting, 1),
            _front_part(refused, 1),
        ]
    )
    await store.accept([joined])  # and the process stops before front_parts_joined
    await store.close()
    store = SqliteStore(path, "full")
    await store.open()
    try:
        held = await store.front_parts_held()
        assert sorted(p.message_id for p in held) == sorted([waiting, refused])
        assert all(p.pdu == b"pdu 1" and p.state == "held" for p in held)
        again = await store.front_part(f"{joined.id}-1")
        assert again is not None and again.state == "joined"
        # A copy of a part already joined changes nothing.
        await store.front_parts_add([_front_part(joined.id, 1)])
        again = await store.front_part(f"{joined.id}-1")
        assert again is not None and again.state == "joined" and again.pdu == b""
        receipt = ("crm", "receipt", json.dumps({"id": f"{refused}-1", "status": "rejected"}))
        await store.front_parts_failed([refused], [receipt], 1500.0)
        assert [p.message_id for p in await store.front_parts_held()] == [waiting]
        held_status = await store.front_part_status(f"{waiting}-1")
        assert held_status is not None and held_status.status == "accepted"
        failed = await store.front_part_status(f"{refused}-1")
        assert failed is not None and failed.status == "rejected"
        (item,) = await store.front_due("crm", 1500.0, 10)
        assert json.loads(item.payload)["id"] == f"{refused}-1"
    finally:
        await store.close()


async def test_front_outbox_survives_a_reopen(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "front.db", "full")
    await store.open()
    await store.front_enqueue([("crm", "mo", '{"text": "x"}')], 10.0)
    await store.close()
    store = SqliteStore(tmp_path / "front.db", "full")
    await store.open()
    try:
        (item,) = await store.front_due("crm", 10.0, 5)
        assert item.payload == '{"text": "x"}'
    finally:
        await store.close()


# -- the submit_sm checks, without sockets -----------------------------------------------------


class _Outbound:
    def enqueue(self, messages: Any, begun: Any = ()) -> None:
        raise AssertionError("not called by _check")

    def reserve(self, messages: Any) -> set[str]:
        raise AssertionError("not called by _check")

    def release(self, messages: Any, reserved: Any) -> None:
        raise AssertionError("not called by _check")

    def unclaimed(self, messages: Any) -> set[str]:
        raise AssertionError("not called by _check")

    def carriers_up(self) -> set[str]:
        return {"sim"}


def test_submit_checks_map_validity_schedule_and_receipts(tmp_path: Path) -> None:
    from gateway.core.intake import Intake
    from gateway.core.routing import Router
    from gateway.front.server import FrontAccount, FrontServer
    from gateway.smpp.constants import Status
    from tests.e2e_helpers import gateway_config
    from tests.front_helpers import ACCOUNT, front_section

    config = gateway_config(tmp_path, 2775)
    front_config = load_dataclass(FrontConfig, front_section(account={"default_sender": "ACME"}))
    now = 1_700_000_000.0
    server = FrontServer(
        front_config,
        store=None,  # type: ignore[arg-type]
        intake=Intake(config.messages, config.carriers, Router([], ["sim"])),
        outbound=_Outbound(),
        clock=lambda: now,
    )
    account = FrontAccount(front_config.accounts[0], 0.0)
    assert account.system_id == ACCOUNT

    def check(**fields: Any) -> tuple[int, NewMessage | None]:
        values: dict[str, Any] = {"destination_addr": "33612345678", "dest_addr_ton": 1}
        values.update(fields)
        status, message, _reason = server._check(account, SubmitSm(**values), "hello")
        return status, message

    status, message = check(validity_period="000000020000000R", registered_delivery=1)
    assert status == Status.ROK and message is not None
    assert message.sender == "ACME"  # default_sender for an empty source_addr
    assert message.validity_until == now + 7200
    assert message.callback_url == "smpp:crm?rd=1"
    assert message.account == ACCOUNT
    _, short = check(validity_period="000000000010000R", registered_delivery=0)
    assert short is not None and short.validity_until == now + 60  # at least a minute
    assert short.callback_url is None
    _, later = check(schedule_delivery_time="000000010000000R")
    assert later is not None and later.scheduled_at == now + 3600
    assert check(destination_addr="1")[0] == Status.RINVDSTADR
    assert check(validity_period="x")[0] == Status.RINVEXPIRY
    assert check(data_coding=4)[0] == Status.RSUBMITFAIL  # binary is not carried
    _, urgent = check(priority_flag=3)
    assert urgent is not None and urgent.priority == 3


def test_password_tool_help_prints_help_instead_of_hashing_it() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "gateway.front.passwords", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout and "pbkdf2" not in run.stdout
    dashed = subprocess.run(  # after "--", a password that looks like an option is hashed
        [sys.executable, "-m", "gateway.front.passwords", "--", "-x1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dashed.returncode == 0, dashed.stderr
    assert verify_password("-x1", dashed.stdout.strip())
