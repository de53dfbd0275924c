"""Independent ESMEs bind to smsgw's SMPP server front: aiosmpplib, smpplib and the npm
``smpp`` package (run by node). Each submits messages that reach the simulator carrier
through a whole Gateway, gets receipts carrying the ids it was given, and receives an MO
delivered to its account; a wrong password is refused."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
from aiosmpplib import (
    ESME,
    NPI,
    TON,
    BindMode,
    BindTransceiverResp,
    DeliverSm,
    PhoneNumber,
    SmppCommandStatus,
    SubmitSm,
    SubmitSmResp,
)
from aiosmpplib.broker import SimpleBroker

from gateway.smpp.constants import Status
from gateway.smpp.pdu import DeliverSm as DeliverSmPdu
from gateway.smpp.pdu import Pdu, decode
from gateway.smpp.pdu import SubmitSmResp as SubmitSmRespPdu
from tests.e2e_helpers import simulator_config
from tests.front_helpers import ACCOUNT, PASSWORD, FrontLab, front_section
from tests.interop_helpers import NodePeer, requires_node, wait_until
from tests.test_interop_aiosmpplib import RecordingHook, running_esme
from tests.test_interop_smpplib import (
    Recorder,
    client_for,
    decoded,
    read_until,
    receipt_ids,
    run_in_thread,
    unbind,
)

pytestmark = pytest.mark.interop

GSM_TEXT = "Hello @ front {€} ~"
UCS2_TEXT = "Привет, мир! 你好"
LONG_TEXT = "A long message from upstream, cut into UDH parts by the ESME. " * 4
TO = "33612345678"


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[FrontLab]:
    lab = FrontLab(tmp_path, simulator_config(), front_section())
    await lab.start()
    yield lab
    await lab.stop()


async def carrier_texts(lab: FrontLab) -> list[str]:
    received = (await lab.sim("GET", "/v1/messages?limit=100"))["messages"]
    by_ref: dict[Any, list[dict[str, Any]]] = {}
    texts = []
    for m in received:
        if m["concat"] is None:
            texts.append(m["text"])
        else:
            by_ref.setdefault(m["concat"]["ref"], []).append(m)
    for parts in by_ref.values():
        texts.append("".join(p["text"] for p in sorted(parts, key=lambda p: p["concat"]["seq"])))
    return texts


# -- npm smpp ---------------------------------------------------------------------------------


@requires_node
async def test_node_esme_through_the_front(lab: FrontLab) -> None:
    submits = [
        {"ref": "gsm", "text": GSM_TEXT, "data_coding": 0, "destination_addr": TO},
        {"ref": "ucs2", "text": UCS2_TEXT, "data_coding": 8, "destination_addr": TO},
    ]
    args = [
        "--port",
        str(lab.front_port),
        "--system-id",
        ACCOUNT,
        "--password",
        PASSWORD,
        "--submit",
        json.dumps(submits),
        "--enquire-link-ms",
        "200",
    ]
    async with NodePeer("esme_client.js", *args) as node:
        await node.expect("bound")
        ids = {}
        for ref in ("gsm", "ucs2"):
            resp = await node.expect("submit_sm_resp", ref=ref)
            assert resp["status"] == Status.ROK
            ids[ref] = resp["message_id"]
        assert len(set(ids.values())) == 2
        for message_id in ids.values():
            receipt = await node.expect(
                "deliver_sm", receipt=True, receipted_message_id=message_id, within=10
            )
            assert receipt["message_state"] == 2
            assert receipt["text"].startswith(f"id:{message_id} ")
            assert "stat:DELIVRD" in receipt["text"]
        assert sorted(await carrier_texts(lab)) == sorted([GSM_TEXT, UCS2_TEXT])

        await lab.front.deliver_mo(
            ACCOUNT, source="+33655555555", destination="12345", text="MO @ front €"
        )
        mo = await node.expect("deliver_sm", receipt=False, source_addr="33655555555")
        assert mo["text"] == "MO @ front €"
        keepalive = await node.expect("enquire_link_resp")
        assert keepalive["status"] == Status.ROK
        node.send({"cmd": "unbind"})
        assert (await node.expect("unbind_resp"))["status"] == Status.ROK
        await node.expect("close")
        assert not node.matching("generic_nack")


@requires_node
async def test_node_esme_stop_and_wait_long_message_gets_a_receipt_per_part(
    tmp_path: Path,
) -> None:
    """The npm ``smpp`` ESME sends a 3-part UDH message one part at a time, waiting for
    each response (window 1, on the account too): each part has its id at once, and one
    receipt."""
    lab = FrontLab(tmp_path, simulator_config(), front_section(account={"window": 1}))
    await lab.start()
    chunks = ["First part of three, " * 5, "second part of three, " * 5, "and the last."]
    submits = [
        {"ref": f"p{seq}", "text": chunk, "udh": f"050003a403{seq:02x}", "destination_addr": TO}
        for seq, chunk in enumerate(chunks, 1)
    ]
    args = [
        "--port",
        str(lab.front_port),
        "--system-id",
        ACCOUNT,
        "--password",
        PASSWORD,
        "--submit",
        json.dumps(submits, separators=(",", ":")),
        "--stop-and-wait",
    ]
    try:
        async with NodePeer("esme_client.js", *args) as node:
            await node.expect("bound")
            ids = []
            for seq in (1, 2, 3):
                resp = await node.expect("submit_sm_resp", ref=f"p{seq}")
                assert resp["status"] == Status.ROK
                ids.append(resp["message_id"])
            assert len(set(ids)) == 3
            for message_id in ids:
                receipt = await node.expect(
                    "deliver_sm", receipt=True, receipted_message_id=message_id, within=10
                )
                assert receipt["text"].startswith(f"id:{message_id} ")
            node.send({"cmd": "unbind"})
            await node.expect("close")
            per_part = Counter(r["receipted_message_id"] for r in node.matching("deliver_sm"))
            assert per_part == {i: 1 for i in ids}
        assert await carrier_texts(lab) == ["".join(chunks)]
    finally:
        await lab.stop()


@requires_node
async def test_node_esme_with_a_wrong_password(lab: FrontLab) -> None:
    args = ["--port", str(lab.front_port), "--system-id", ACCOUNT, "--password", "nope"]
    async with NodePeer("esme_client.js", *args) as node:
        failed = await node.expect("bind_failed")
        assert failed["status"] == Status.RINVPASWD
        await node.expect("close")


# -- smpplib ----------------------------------------------------------------------------------


class _Target:
    def __init__(self, port: int) -> None:
        self.host = "127.0.0.1"
        self.port = port


async def test_smpplib_through_the_front_with_a_long_message(lab: FrontLab) -> None:
    loop = asyncio.get_running_loop()
    target: Any = _Target(lab.front_port)

    def deliver_mo() -> None:
        future = asyncio.run_coroutine_threadsafe(
            lab.front.deliver_mo(ACCOUNT, source="+33644444444", destination="12345", text="OK"),
            loop,
        )
        future.result(5.0)

    def scenario() -> None:
        recorder = Recorder()
        with client_for(target, recorder) as client:
            client.bind_transceiver(system_id=ACCOUNT, password=PASSWORD)
            parts, encoding, esm_class = smpplib.gsm.make_parts(LONG_TEXT)
            assert len(parts) == 2
            for part in [*parts, smpplib.gsm.make_parts(GSM_TEXT)[0][0]]:
                long = part in parts
                client.send_message(
                    source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                    source_addr="SMSGW",
                    dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                    dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                    destination_addr=TO,
                    short_message=part,
                    data_coding=encoding,
                    esm_class=esm_class if long else 0,
                    registered_delivery=1,
                )
            read_until([client], lambda: len(recorder.sent) == 3, "3 submit_sm_resp")
            assert all(p.status == smpplib.consts.SMPP_ESME_ROK for p in recorder.sent)
            ids = {p.message_id.decode() for p in recorder.sent}
            assert len(ids) == 3  # each part its own id, as from an SMSC
            read_until([client], lambda: set(receipt_ids(recorder)) == ids, "3 receipts", 10)
            for message_id, receipt in receipt_ids(recorder).items():
                assert f"id:{message_id} " in bytes(receipt.short_message).decode("latin-1")
            deliver_mo()
            read_until(
                [client],
                lambda: any(p.esm_class & 0x3C == 0 for p in recorder.received),
                "MO",
            )
            (mo,) = [p for p in recorder.received if p.esm_class & 0x3C == 0]
            assert decoded(mo) == "OK"
            assert mo.source_addr.decode() == "33644444444"
            unbind(client)

    await run_in_thread(scenario)
    assert sorted(await carrier_texts(lab)) == sorted([LONG_TEXT, GSM_TEXT])


async def test_smpplib_stop_and_wait_sends_a_long_message(tmp_path: Path) -> None:
    """smpplib as CRMs and alerting tools use it: send a part, wait for its response, send
    the next (window 1, on the account too). Each of the 3 parts gets its own id at once
    and exactly one receipt."""
    lab = FrontLab(tmp_path, simulator_config(), front_section(account={"window": 1}))
    await lab.start()
    target: Any = _Target(lab.front_port)
    text = (LONG_TEXT * 2)[:400]

    def scenario() -> None:
        recorder = Recorder()
        with client_for(target, recorder) as client:
            client.bind_transceiver(system_id=ACCOUNT, password=PASSWORD)
            parts, encoding, esm_class = smpplib.gsm.make_parts(text)
            assert len(parts) == 3
            for n, part in enumerate(parts, 1):
                client.send_message(
                    source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                    source_addr="SMSGW",
                    dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                    dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                    destination_addr=TO,
                    short_message=part,
                    data_coding=encoding,
                    esm_class=esm_class,
                    registered_delivery=1,
                )
                read_until([client], lambda n=n: len(recorder.sent) == n, f"resp {n}")
                assert recorder.sent[-1].status == smpplib.consts.SMPP_ESME_ROK
            ids = [p.message_id.decode() for p in recorder.sent]
            assert len(set(ids)) == 3
            read_until([client], lambda: set(receipt_ids(recorder)) == set(ids), "receipts", 10)
            receipts = [p for p in recorder.received if p.esm_class & 0x3C == 0x04]
            per_part = Counter(p.receipted_message_id.decode() for p in receipts)
            assert per_part == {i: 1 for i in ids}
            unbind(client)

    try:
        await run_in_thread(scenario)
        assert await carrier_texts(lab) == [text]
    finally:
        await lab.stop()


async def test_smpplib_wrong_password(lab: FrontLab) -> None:
    target: Any = _Target(lab.front_port)

    def scenario() -> None:
        with client_for(target, Recorder()) as client:
            with pytest.raises(smpplib.exceptions.PDUError) as raised:
                client.bind_transmitter(system_id=ACCOUNT, password="nope")
            assert raised.value.args[1] == smpplib.consts.SMPP_ESME_RINVPASWD

    await run_in_thread(scenario)


# -- aiosmpplib -------------------------------------------------------------------------------


async def test_aiosmpplib_through_the_front(lab: FrontLab) -> None:
    hook = RecordingHook()
    broker = SimpleBroker()
    esme = ESME(
        smsc_host="127.0.0.1",
        smsc_port=lab.front_port,
        system_id=ACCOUNT,
        password=PASSWORD,
        bind_mode=BindMode.TRANSCEIVER,
        hook=hook,
        broker=broker,
        enquire_link_interval=0.3,
        socket_timeout=5.0,
        log_level=logging.WARNING,
    )
    payload_text = "Longer than 254 octets, so aiosmpplib sends it in message_payload. " * 5
    async with running_esme(esme):
        await wait_until(lambda: bool(hook.of_type(BindTransceiverResp)), what="bind_resp")
        assert hook.of_type(BindTransceiverResp)[0].command_status == SmppCommandStatus.ESME_ROK
        source = PhoneNumber("SMSGW", TON.ALPHANUMERIC, NPI.UNKNOWN)
        destination = PhoneNumber(TO, TON.INTERNATIONAL, NPI.ISDN)
        for log_id, fields in (
            ("gsm", {"short_message": GSM_TEXT}),
            ("ucs2", {"short_message": UCS2_TEXT, "encoding": "ucs2"}),
            ("payload", {"message_payload": payload_text}),
        ):
            await broker.enqueue(
                SubmitSm(
                    source=source,
                    destination=destination,
                    registered_delivery=1,
                    log_id=log_id,
                    **fields,
                )
            )
        await wait_until(lambda: len(hook.of_type(SubmitSmResp)) == 3, what="3 submit_sm_resp")
        resps = {r.log_id: r for r in hook.of_type(SubmitSmResp)}
        assert all(r.command_status == SmppCommandStatus.ESME_ROK for r in resps.values())

        def receipts() -> list[DeliverSm]:
            return [d for d in hook.of_type(DeliverSm) if d.is_receipt()]

        await wait_until(lambda: len(receipts()) == 3, within=10, what="3 receipts")
        for receipt in receipts():
            fields = receipt.parse_receipt()
            assert fields["stat"] == "DELIVRD"
            assert receipt.log_id in resps  # aiosmpplib matched it to its submit by id
            assert fields["id"] == resps[receipt.log_id].message_id

        await lab.front.deliver_mo(
            ACCOUNT, source="+33633333333", destination="12345", text=UCS2_TEXT
        )

        def mos() -> list[DeliverSm]:
            return [d for d in hook.of_type(DeliverSm) if not d.is_receipt()]

        await wait_until(lambda: len(mos()) == 1, what="MO")
        assert mos()[0].short_message == UCS2_TEXT
        await asyncio.sleep(0.5)  # aiosmpplib's enquire_link is answered meanwhile
        assert hook.unparsed == []
        assert hook.send_errors == []
    assert sorted(await carrier_texts(lab)) == sorted([GSM_TEXT, UCS2_TEXT, payload_text])


async def test_aiosmpplib_long_message_in_udh_parts_gets_a_receipt_per_part(
    lab: FrontLab,
) -> None:
    """aiosmpplib cuts the text into UDH parts itself (auto_message_payload off, UDHI set),
    keeps each part's id from its submit_sm_resp and reports the message's receipt only
    once every part has had its own: with one id for all parts it never would."""
    hook = RecordingHook()
    broker = SimpleBroker()
    esme = ESME(
        smsc_host="127.0.0.1",
        smsc_port=lab.front_port,
        system_id=ACCOUNT,
        password=PASSWORD,
        bind_mode=BindMode.TRANSCEIVER,
        hook=hook,
        broker=broker,
        enquire_link_interval=0.3,
        socket_timeout=5.0,
        log_level=logging.WARNING,
    )
    text = (LONG_TEXT * 2)[:400]  # three parts of 153 GSM characters

    def raw(command_id: int) -> list[Pdu]:
        """What aiosmpplib kept to itself (a part's response or receipt), decoded."""
        pdus = [decode(frame) for frame in hook.unparsed]
        return [p for p in pdus if p.command_id == command_id]

    def receipts() -> list[DeliverSm]:
        return [d for d in hook.of_type(DeliverSm) if d.is_receipt()]

    async with running_esme(esme):
        await wait_until(lambda: bool(hook.of_type(BindTransceiverResp)), what="bind_resp")
        await broker.enqueue(
            SubmitSm(
                source=PhoneNumber("SMSGW", TON.ALPHANUMERIC, NPI.UNKNOWN),
                destination=PhoneNumber(TO, TON.INTERNATIONAL, NPI.ISDN),
                short_message=text,
                esm_class=0x40,
                auto_message_payload=False,
                registered_delivery=1,
                log_id="long",
            )
        )
        await wait_until(lambda: len(receipts()) == 1, within=10, what="the message's receipt")
        # aiosmpplib reports one response (the first part's) and keeps the others.
        (resp,) = hook.of_type(SubmitSmResp)
        assert resp.command_status == SmppCommandStatus.ESME_ROK
        others = raw(SubmitSmRespPdu.command_id)
        assert [p.command_status for p in others] == [Status.ROK] * 2
        part_ids = [getattr(p, "message_id", "") for p in others]
        assert part_ids[0] == resp.message_id and len(set(part_ids)) == 2
        # It reports the message's receipt once each of the 3 parts had its own.
        (receipt,) = receipts()
        assert receipt.log_id == "long"  # matched to the submit
        assert receipt.parse_receipt()["stat"] == "DELIVRD"
        kept = [getattr(p, "receipted_message_id", "") for p in raw(DeliverSmPdu.command_id)]
        assert len(set(kept)) == 2
        assert lab.front.accounts[ACCOUNT].stats.receipts_sent == 3
    assert await carrier_texts(lab) == [text]
