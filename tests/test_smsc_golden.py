"""Golden bytes of the deliver_sm an SMSC role writes: receipts and MO, from the front
(gateway.front) and from the simulator (smsc_simulator), both paths of the simulator's
receipts (the general ``build_receipt`` and the fast path's ``receipt_body``).

The bytes in tests/fixtures/golden_smsc_deliver_sm.json were captured from the code before
the SMSC-role helpers were gathered in gateway.smpp.smsc: they prove that the move changed
nothing an ESME receives. A difference here is a wire change: make it on purpose, or not at
all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest

from gateway.front.outgoing import build_mo as front_build_mo
from gateway.front.outgoing import build_receipt as front_build_receipt
from gateway.front.outgoing import mo_payload, receipt_info
from gateway.smpp.pdu import DataSm, SubmitSm, decode, encode, tlv_u8, tlv_u16
from gateway.smpp.receipt import MessageState
from gateway.smpp.text import ConcatMethod
from smsc_simulator.dlr import NETWORK_ERROR, ReceiptText
from smsc_simulator.dlr import build_receipt as sim_build_receipt
from smsc_simulator.fastpath import network_error_tlv, receipt_body, receipt_text_field
from smsc_simulator.mo import build_mo as sim_build_mo

FIXTURE: Final = Path(__file__).parent / "fixtures" / "golden_smsc_deliver_sm.json"

LOCAL_TZ: Final = "XST-05:30"
"""The simulator writes receipt dates in local time: a fixed zone (POSIX form, no tzdata
needed) half an hour off any whole hour, so the golden dates prove which clock is read."""

SUBMITTED: Final = 1_790_000_000.0
DONE: Final = 1_790_000_061.0


# -- the front ---------------------------------------------------------------------------------


def _front_receipt_payload(status: str, to: str, sender: str, *, rd: int, error: str = "") -> str:
    data: dict[str, object] = {
        "id": "0190aabbccdd11223344556677",
        "message_id": "0190aabbccdd11223344556677",
        "status": status,
        "at": DONE,
        "url": f"smpp:crm?rd={rd}",
        "to": to,
        "sender": sender,
        "created_at": SUBMITTED,
    }
    if error:
        data["error"] = error
    return json.dumps(data)


FRONT_RECEIPTS: Final[dict[str, str]] = {
    "front_receipt_delivered": _front_receipt_payload("delivered", "+33612345678", "ACME", rd=1),
    "front_receipt_undeliverable_short_code": _front_receipt_payload(
        "undeliverable", "+4915112345678", "12345", rd=1
    ),
    "front_receipt_expired_failure_only": _front_receipt_payload(
        "expired", "33612345678", "+33699999999", rd=2
    ),
    "front_receipt_rejected": _front_receipt_payload("rejected", "+33612345678", "ACME", rd=3),
    "front_receipt_failed": _front_receipt_payload("failed", "+33612345678", "ACME Corp", rd=1),
    "front_receipt_cancelled": _front_receipt_payload(
        "failed", "+33612345678", "ACME", rd=1, error="CANCELLED"
    ),
    "front_receipt_part_id": json.dumps(
        {
            "id": "0190aabbccdd11223344556677-2",
            "status": "delivered",
            "at": DONE,
            "url": "smpp:crm?rd=1",
            "to": "+33612345678",
            "sender": "ACME",
        }
    ),
}

FRONT_MO: Final[dict[str, tuple[str, int, int]]] = {
    "front_mo_gsm": (mo_payload("+33611111111", "ACME", "Hello @ € [x]", DONE), 7, 255),
    "front_mo_ucs2": (mo_payload("+33611111111", "12345", "Привет", DONE), 7, 255),
    "front_mo_long_udh": (mo_payload("12345", "+33611111111", "x" * 200, DONE), 9, 255),
    "front_mo_payload": (mo_payload("12345", "+33611111111", "y" * 200, DONE), 9, 1),
}


def front_cases() -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for name, payload in FRONT_RECEIPTS.items():
        pdu = front_build_receipt(receipt_info(payload))
        out[name] = [] if pdu is None else [encode(pdu)]
    out["front_receipt_delivered_failure_only"] = []
    not_wanted = front_build_receipt(
        receipt_info(_front_receipt_payload("delivered", "+33612345678", "ACME", rd=2))
    )
    assert not_wanted is None
    for name, (payload, ref, window) in FRONT_MO.items():
        out[name] = [encode(p) for p in front_build_mo(payload, ref, window)]
    return out


# -- the simulator -----------------------------------------------------------------------------


def _submit(text: str, **fields: object) -> SubmitSm:
    values: dict[str, object] = {
        "sequence_number": 7,
        "source_addr": "SMSGW",
        "source_addr_ton": 5,
        "destination_addr": "491511234567",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "registered_delivery": 1,
        "short_message": text.encode("ascii"),
    }
    values.update(fields)
    return SubmitSm(**values)  # type: ignore[arg-type]


PLAIN: Final = _submit("Receipt text @ $ in GSM, longer than twenty")

SIM_SUBMITS: Final[dict[str, SubmitSm | DataSm]] = {
    "plain": PLAIN,
    "short_code": _submit(
        "hi", source_addr="12345", source_addr_ton=0, source_addr_npi=1, dest_addr_npi=0
    ),
    "sar": _submit(
        "part two of three",
        tlvs=(tlv_u16(0x020C, 513), tlv_u8(0x020E, 3), tlv_u8(0x020F, 2)),
    ),
    "udh": _submit("", short_message=bytes((5, 0, 3, 9, 2, 1)) + b"first half"),
    "data_sm": DataSm(
        sequence_number=8,
        source_addr="+33600000000",
        source_addr_ton=1,
        source_addr_npi=1,
        destination_addr="33611111111",
        dest_addr_ton=1,
        dest_addr_npi=1,
        registered_delivery=2,
        data_coding=8,
        tlvs=((0x0424, "Ünïcode payload".encode("utf-16-be")),),
    ),
}

SIM_STATES: Final = [*NETWORK_ERROR, MessageState.UNKNOWN]


def sim_cases() -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for submit_name, submit in SIM_SUBMITS.items():
        for state in SIM_STATES:
            for text_mode in ("minutes", "seconds", "none"):
                for tlvs in (True, False):
                    if text_mode == "none" and not tlvs:
                        continue
                    text = None if text_mode == "none" else ReceiptText(text_mode == "seconds")
                    pdu = sim_build_receipt(
                        receipt_id="5f3a9c01",
                        submit=submit,
                        state=state,
                        submitted=SUBMITTED,
                        done=DONE,
                        text=text,
                        tlvs=tlvs,
                    )
                    name = f"sim_receipt_{submit_name}_{state.name.lower()}_{text_mode}"
                    out[name + ("_tlvs" if tlvs else "")] = [encode(pdu)]
    # The fast path's body (it takes plain submit_sm only), header left to the sender.
    submit = PLAIN
    frame = encode(submit)
    body = frame[16:]
    src = body.index(b"\0") + 1
    dst = body.index(b"\0", src + 2) + 1
    q = body.index(b"\0", dst + 2) + 1
    for state in SIM_STATES:
        text = ReceiptText()
        head, tail = text.parts(state, SUBMITTED, DONE)
        field = receipt_text_field(submit.short_message, submit.data_coding)
        neterr = network_error_tlv(NETWORK_ERROR.get(state, b"\x03\x00\x00"))
        for tlvs in (True, False):
            fast = receipt_body(
                body[dst:q] + body[src:dst],
                head + b"5f3a9c01" + tail + field,
                b"5f3a9c01" if tlvs else None,
                state,
                neterr,
            )
            out[f"sim_fast_receipt_body_{state.name.lower()}" + ("_tlvs" if tlvs else "")] = [fast]
    mo_cases: dict[str, tuple[str, str, str, ConcatMethod, int, int | None]] = {
        "sim_mo_gsm": ("Hello @ € [x]", "+33611111111", "ACME", ConcatMethod.UDH8, 7, None),
        "sim_mo_short_code": ("Stop", " 12345 ", "+33611111111", ConcatMethod.UDH8, 7, None),
        "sim_mo_ucs2_udh16": (
            "Привет " * 20,
            "+33611111111",
            "12345",
            ConcatMethod.UDH16,
            300,
            None,
        ),
        "sim_mo_sar": ("z" * 200, "33611111111", "SHOP", ConcatMethod.SAR, 513, None),
        "sim_mo_payload": ("w" * 300, "+33611111111", "SHOP", ConcatMethod.PAYLOAD, 1, None),
        "sim_mo_forced_udh8": ("forced parts", "+33611111111", "SHOP", ConcatMethod.UDH8, 300, 3),
        "sim_mo_forced_sar": ("forced parts", "+33611111111", "SHOP", ConcatMethod.SAR, 300, 3),
    }
    for name, (text_, source, destination, concat, ref, parts) in mo_cases.items():
        mo = sim_build_mo(
            text_, source=source, destination=destination, concat=concat, ref=ref, parts=parts
        )
        out[name] = [encode(p) for p in mo.parts]
    return out


@pytest.fixture
def local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", LOCAL_TZ)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _golden() -> dict[str, list[str]]:
    data: dict[str, list[str]] = json.loads(FIXTURE.read_text())
    data.pop("_about")
    return data


def _check(cases: Callable[[], dict[str, list[bytes]]], prefix: str) -> None:
    golden = {k: v for k, v in _golden().items() if k.startswith(prefix)}
    built = {k: [b.hex() for b in v] for k, v in cases().items()}
    assert sorted(built) == sorted(golden)
    for name, pdus in built.items():
        assert pdus == golden[name], name


def test_front_receipts_and_mo_are_the_golden_bytes() -> None:
    _check(front_cases, "front_")


def test_simulator_receipts_and_mo_are_the_golden_bytes(local_time: None) -> None:
    _check(sim_cases, "sim_")


def test_the_golden_pdus_decode() -> None:
    for name, pdus in _golden().items():
        for hex_pdu in pdus:
            if "fast_receipt_body" not in name:
                decode(bytes.fromhex(hex_pdu))


def test_the_front_and_the_simulator_write_an_mo_with_one_builder() -> None:
    """The same MO (text, ends, reference) from the front's outbox and from the simulator's
    injection is the same deliver_sm, part for part: both are gateway.smpp.smsc's
    ``mo_deliver_sms``."""
    from gateway.smpp.address import smpp_address
    from gateway.smpp.smsc import mo_deliver_sms
    from gateway.smpp.text import split_message

    for text in ("Hello", "x" * 200, "Привет " * 30):
        split = split_message(text, concat=ConcatMethod.UDH8, ref=9)
        shared = mo_deliver_sms(
            source=smpp_address("+33611111111"), destination=smpp_address("12345"), split=split
        )
        front = front_build_mo(mo_payload("+33611111111", "12345", text, DONE), 9)
        sim = sim_build_mo(
            text, source="+33611111111", destination="12345", concat=ConcatMethod.UDH8, ref=9
        ).parts
        assert [encode(p) for p in front] == [encode(p) for p in sim]
        assert [encode(p) for p in shared] == [encode(p) for p in sim]
        assert len(shared) == (1 if text == "Hello" else len(split.parts)) > 0
