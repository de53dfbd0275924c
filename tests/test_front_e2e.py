"""The SMPP server front end to end: our own test ESME (tests/smpp_client.py) binds to
smsgw, which carries its traffic to the simulator carrier; receipts come back carrying
smsgw's ids. Limits, long messages, held receipts, retries, restart, MO delivery.
(Independent ESMEs: tests/test_front_interop.py.)"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.front.refusals import BURST, INTERVAL_SECONDS
from gateway.smpp.aio import SmppConnection
from gateway.smpp.constants import EsmClass, Status, Tag
from gateway.smpp.pdu import DeliverSm, Pdu, QuerySm, QuerySmResp, SubmitSm, tlv_u8, tlv_u16
from gateway.smpp.receipt import MessageState
from gateway.smpp.session import Role, Session, SessionConfig
from gateway.smpp.text import ConcatMethod, decode_short_message, parse_udh, split_message
from tests.e2e_helpers import eventually, simulator_config
from tests.front_helpers import ACCOUNT, OTHER, PASSWORD, FrontLab, front_section
from tests.smpp_client import EsmeClient

TO = "33612345678"


async def started(tmp_path: Path, **front: Any) -> FrontLab:
    lab = FrontLab(tmp_path, simulator_config(), front_section(**front))
    await lab.start()
    return lab


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[FrontLab]:
    lab = await started(tmp_path)
    yield lab
    await lab.stop()


async def esme(lab: FrontLab, bind_type: str = "trx", **kwargs: Any) -> EsmeClient:
    return await EsmeClient.bound(lab.front_port, bind_type, ACCOUNT, PASSWORD, **kwargs)


def submit(text: str | bytes = "hello", to: str = TO, **fields: Any) -> SubmitSm:
    values: dict[str, Any] = {
        "source_addr_ton": 5,
        "source_addr": "ACME",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": to,
        "registered_delivery": 1,
        "short_message": text.encode("ascii") if isinstance(text, str) else text,
    }
    values.update(fields)
    return SubmitSm(**values)


def message_id(resp: Pdu) -> str:
    assert resp.command_status == Status.ROK, resp
    value = getattr(resp, "message_id", "")
    assert isinstance(value, str) and value
    return value


async def carrier_texts(lab: FrontLab) -> list[str]:
    received = (await lab.sim("GET", "/v1/messages?limit=100"))["messages"]
    return [m["text"] for m in received]


async def status_of(lab: FrontLab, message: str) -> str:
    assert lab.gateway is not None
    view = await lab.gateway.store.get_message(message)
    return view.status if view else "missing"


async def test_submit_reaches_the_carrier_and_the_receipt_carries_smsgws_id(
    lab: FrontLab,
) -> None:
    client = await esme(lab)
    try:
        sent = message_id(await client.submit(submit("hello from upstream")))
        assert len(sent) == 26
        receipt = await client.next_deliver(within=10)
        assert isinstance(receipt, DeliverSm)
        assert receipt.esm_class & EsmClass.SMSC_DELIVERY_RECEIPT
        assert receipt.receipted_message_id == sent
        assert receipt.message_state == MessageState.DELIVERED
        text = receipt.short_message.decode("latin-1")
        assert text.startswith(f"id:{sent} sub:001 dlvrd:001 submit date:")
        assert "stat:DELIVRD err:000" in text
        assert (receipt.source_addr, receipt.destination_addr) == (TO, "ACME")
        assert await carrier_texts(lab) == ["hello from upstream"]
        assert await status_of(lab, sent) == "delivered"
    finally:
        await client.unbind()


async def test_no_receipt_when_registered_delivery_asks_none(lab: FrontLab) -> None:
    client = await esme(lab)
    try:
        sent = message_id(await client.submit(submit("no receipt", registered_delivery=0)))

        async def delivered() -> bool:
            return await status_of(lab, sent) == "delivered"

        await eventually(delivered)
        with pytest.raises(TimeoutError):
            await client.next_deliver(within=0.5)
    finally:
        await client.unbind()


def udh_parts(text: str, ref: int) -> list[SubmitSm]:
    split = split_message(text, concat=ConcatMethod.UDH8, ref=ref)
    return [
        submit(part.short_message, esm_class=EsmClass.UDHI, data_coding=split.data_coding)
        for part in split.parts
    ]


LONG = "Prices in € rise [again] " * 12
"""Three UDH parts in GSM 03.38, with extension characters."""


async def assert_one_receipt_per_part(client: EsmeClient, ids: list[str]) -> list[Pdu]:
    receipts = await client.collect(len(ids), within=10)
    assert sorted(r.receipted_message_id or "" for r in receipts) == sorted(ids)
    for receipt in receipts:
        assert receipt.esm_class & EsmClass.SMSC_DELIVERY_RECEIPT
        text = receipt.short_message.decode("latin-1")
        assert text.startswith(f"id:{receipt.receipted_message_id} sub:001")
    with pytest.raises(TimeoutError):
        await client.next_deliver(within=0.3)  # one receipt per part, no more
    return receipts


async def carrier_text(lab: FrontLab) -> str:
    """The carrier's parts of the one long message it got, joined."""
    received = (await lab.sim("GET", "/v1/messages?limit=100"))["messages"]
    ordered = sorted(received, key=lambda m: m["concat"]["seq"] if m["concat"] else 0)
    return "".join(m["text"] for m in ordered)


async def test_udh_parts_are_answered_each_with_its_own_id_and_receipted_each(
    lab: FrontLab,
) -> None:
    pdus = udh_parts(LONG, 77)
    assert len(pdus) == 3
    client = await esme(lab)
    try:
        pdus.reverse()  # out of order on purpose
        ids = [message_id(r) for r in await client.submit_many(pdus)]
        assert len(set(ids)) == 3
        receipts = await assert_one_receipt_per_part(client, ids)
        assert {r.message_state for r in receipts} == {MessageState.DELIVERED}
    finally:
        await client.unbind()
    # The carrier got one message, cut again its own way, and the text is whole.
    assert await carrier_text(lab) == LONG
    assert lab.gateway is not None
    message = ids[0].rsplit("-", 1)[0]  # a part id is <message id>-<seq>
    assert {i.rsplit("-", 1)[0] for i in ids} == {message}
    assert await status_of(lab, message) == "delivered"


async def test_a_part_sent_again_gets_the_same_id_and_one_receipt(lab: FrontLab) -> None:
    """An ESME that timed out waiting for a part's response sends it again: the copy is
    answered with the part's id, and the part is receipted once."""
    first, second, third = udh_parts(LONG, 66)
    client = await esme(lab)
    try:
        ids = [message_id(await client.submit(pdu)) for pdu in (first, first, second, third)]
        assert ids[0] == ids[1] and len(set(ids)) == 3
        await assert_one_receipt_per_part(client, ids[1:])
    finally:
        await client.unbind()
    assert await carrier_text(lab) == LONG


async def test_a_stop_and_wait_esme_sends_a_long_message(tmp_path: Path) -> None:
    """Window 1 on both sides: each part is answered before the next one leaves."""
    lab = await started(tmp_path, account={"window": 1})
    try:
        client = await esme(lab)
        try:
            ids = [message_id(await client.submit(pdu)) for pdu in udh_parts(LONG, 12)]
            assert len(set(ids)) == 3
            await assert_one_receipt_per_part(client, ids)
        finally:
            await client.unbind()
        assert await carrier_text(lab) == LONG
    finally:
        await lab.stop()


async def test_query_sm_on_a_part_id_follows_the_part(tmp_path: Path) -> None:
    """query_sm with a part's id: ENROUTE while the part waits for its siblings (also after
    a restart), DELIVERED with its final_date once the carrier parts carrying it are."""
    lab = await started(tmp_path, reassembly_timeout=60.0)
    try:
        first, second, third = udh_parts(LONG, 17)
        client = await esme(lab)
        ids = [message_id(await client.submit(pdu)) for pdu in (first, second)]
        waiting = await client.request(QuerySm(message_id=ids[0], source_addr="ACME"))
        assert isinstance(waiting, QuerySmResp) and waiting.command_status == Status.ROK
        assert (waiting.message_state, waiting.final_date) == (MessageState.ENROUTE, "")
        await client.unbind()
        await lab.stop_gateway()
        await lab.start_gateway()
        client = await esme(lab)
        try:
            held = await client.request(QuerySm(message_id=ids[1], source_addr="ACME"))
            assert isinstance(held, QuerySmResp) and held.message_state == MessageState.ENROUTE
            ids.append(message_id(await client.submit(third)))
            await assert_one_receipt_per_part(client, ids)
            for part_id in ids:
                done = await client.request(QuerySm(message_id=part_id, source_addr="ACME"))
                assert isinstance(done, QuerySmResp) and done.command_status == Status.ROK
                assert done.message_id == part_id
                assert done.message_state == MessageState.DELIVERED
                assert done.final_date.endswith("00+") and done.error_code == 0
        finally:
            await client.unbind()
    finally:
        await lab.stop()


async def test_parts_answered_before_a_restart_are_not_lost(tmp_path: Path) -> None:
    lab = await started(tmp_path, reassembly_timeout=60.0)
    try:
        pdus = udh_parts(LONG, 200)
        tx = await esme(lab, "tx")
        first = [message_id(await tx.submit(pdu)) for pdu in pdus[:2]]
        await tx.unbind()
        await lab.stop_gateway()
        await lab.start_gateway()
        client = await esme(lab)
        try:
            last = message_id(await client.submit(pdus[2]))
            await assert_one_receipt_per_part(client, [*first, last])
        finally:
            await client.unbind()
        assert await carrier_text(lab) == LONG
    finally:
        await lab.stop()


async def test_parts_whose_siblings_never_come_are_sent_and_receipted(lab: FrontLab) -> None:
    """Parts 1 and 3 of 3; part 2 never comes. After reassembly_timeout (2 s here) what
    came goes, joined in order, and each part that was answered gets its receipt."""
    pdus = udh_parts(LONG, 31)
    client = await esme(lab)
    try:
        ids = [message_id(await client.submit(pdus[n])) for n in (0, 2)]
        receipts = await assert_one_receipt_per_part(client, ids)
        assert {r.message_state for r in receipts} == {MessageState.DELIVERED}
    finally:
        await client.unbind()
    split = split_message(LONG, concat=ConcatMethod.UDH8, ref=31)
    expected = "".join(
        decode_short_message(parse_udh(split.parts[n].short_message)[1], 0) for n in (0, 2)
    )
    assert await carrier_text(lab) == expected
    async with aiohttp.ClientSession() as http, http.get(lab.gw_url + "/metrics") as r:
        assert 'smsgw_front_incomplete_total{account="crm"} 1.0' in await r.text()


async def test_a_joined_message_refused_fails_each_part_with_a_receipt(lab: FrontLab) -> None:
    """Each part passes alone, but 11 parts are more than max_parts (10): the parts were
    answered ROK, so each gets a REJECTD receipt rather than vanishing."""
    pdus = udh_parts("x" * 153 * 11, 44)
    assert len(pdus) == 11
    client = await esme(lab)
    try:
        ids = [message_id(r) for r in await client.submit_many(pdus)]
        receipts = await assert_one_receipt_per_part(client, ids)
        assert {r.message_state for r in receipts} == {MessageState.REJECTED}
        assert all(b"stat:REJECTD" in r.short_message for r in receipts)
    finally:
        await client.unbind()
    assert await carrier_texts(lab) == []
    async with aiohttp.ClientSession() as http, http.get(lab.gw_url + "/metrics") as r:
        assert 'smsgw_front_parts_refused_total{account="crm"} 11.0' in await r.text()


async def test_sar_parts_and_message_payload_are_accepted(lab: FrontLab) -> None:
    first, second = "A" * 150, "B" * 40
    client = await esme(lab)
    try:
        sar = [
            submit(
                chunk,
                tlvs=(
                    tlv_u16(Tag.SAR_MSG_REF_NUM, 513),
                    tlv_u8(Tag.SAR_TOTAL_SEGMENTS, 2),
                    tlv_u8(Tag.SAR_SEGMENT_SEQNUM, seq),
                ),
            )
            for seq, chunk in ((1, first), (2, second))
        ]
        payload_text = "payload " * 40
        payload = submit(b"", tlvs=((Tag.MESSAGE_PAYLOAD, payload_text.encode("ascii")),))
        resps = await client.submit_many([*sar, payload])
        sar_ids = [message_id(r) for r in resps[:2]]
        assert len(set(sar_ids)) == 2  # each part its own id
        payload_id = message_id(resps[2])
        await assert_one_receipt_per_part(client, [*sar_ids, payload_id])
    finally:
        await client.unbind()
    assert lab.gateway is not None
    sar_message = sar_ids[0].rsplit("-", 1)[0]
    views = [await lab.gateway.store.get_message(i) for i in (sar_message, payload_id)]
    assert [len(v.parts) for v in views if v] == [2, 3]  # 190 and 320 GSM characters
    texts = await carrier_texts(lab)
    assert "".join(t for t in texts if t[0] in "AB") == first + second


async def test_binds_refused_with_the_right_status(tmp_path: Path) -> None:
    lab = await started(tmp_path, account={"max_binds": 1})
    try:
        for system_id, password, status in (
            (ACCOUNT, "wrong", Status.RINVPASWD),
            ("nobody", PASSWORD, Status.RINVSYSID),
            (OTHER, PASSWORD, Status.RINVPASWD),
        ):
            client = await EsmeClient.connect("127.0.0.1", lab.front_port)
            assert await client.bind("trx", system_id, password) == status
            await client.close()
        first = await esme(lab)
        second = await EsmeClient.connect("127.0.0.1", lab.front_port)
        assert await second.bind("tx", ACCOUNT, PASSWORD) == Status.RBINDFAIL  # max_binds 1
        await second.close()
        await first.unbind()
        async with aiohttp.ClientSession() as http, http.get(lab.gw_url + "/metrics") as r:
            metrics = await r.text()
        assert 'smsgw_front_bind_refused_total{account="crm",status="ESME_RINVPASWD"} 1.0' in (
            metrics
        )
        assert 'smsgw_front_bind_refused_total{account="crm",status="ESME_RBINDFAIL"} 1.0' in (
            metrics
        )
    finally:
        await lab.stop()


async def test_bind_from_an_address_not_allowed_is_refused(tmp_path: Path) -> None:
    lab = await started(tmp_path, account={"allowed_ips": ["10.0.0.0/8"]})
    try:
        client = await EsmeClient.connect("127.0.0.1", lab.front_port)
        assert await client.bind("trx", ACCOUNT, PASSWORD) == Status.RBINDFAIL
        await client.close()
    finally:
        await lab.stop()


async def test_over_tps_is_throttled_and_over_window_is_queue_full(tmp_path: Path) -> None:
    lab = await started(tmp_path, account={"tps": 3, "window": 2})
    try:
        client = await esme(lab)
        # One at a time (the window is 2): a bucket of 3/s with one second of burst.
        statuses = [(await client.submit(submit(f"burst {n}"))).command_status for n in range(8)]
        assert 4 <= statuses.count(Status.ROK) <= 5
        assert set(statuses) == {Status.ROK, Status.RTHROTTLED}
        assert statuses[:4] == [Status.ROK] * 4
        await asyncio.sleep(1.1)  # the bucket refills
        # Pipelined: the third is over the window while the first two are being committed.
        resps = await client.submit_many([submit(f"window {n}") for n in range(3)])
        assert [r.command_status for r in resps] == [Status.ROK, Status.ROK, Status.RMSGQFUL]
        await client.unbind()
    finally:
        await lab.stop()


async def test_bad_submits_get_clear_statuses_and_the_front_stays_up(tmp_path: Path) -> None:
    lab = await started(tmp_path, account={"allowed_senders": ["ACME"]})
    try:
        client = await esme(lab)
        bad_to = await client.submit(submit("x", to="12"))
        assert bad_to.command_status == Status.RINVDSTADR
        bad_from = await client.submit(submit("x", source_addr="EVIL"))
        assert bad_from.command_status == Status.RINVSRCADR
        bad_validity = await client.submit(submit("x", validity_period="tomorrow"))
        assert bad_validity.command_status == Status.RINVEXPIRY
        far = await client.submit(submit("x", schedule_delivery_time="991231235959000+"))
        assert far.command_status == Status.RINVSCHED
        # An unknown command id: the bind stays up (the generic_nack it gets is read on a
        # raw socket in test_bad_pdu_gets_generic_nack).
        client.write_raw(bytes.fromhex("00000010000000ff0000000000000063"))
        good = await client.submit(submit("still here"))
        assert good.command_status == Status.ROK
        assert client.session.is_bound
        await client.unbind()
    finally:
        await lab.stop()


async def test_a_store_refusing_work_is_answered_rsyserr_counted_and_logged_rate_limited(
    lab: FrontLab, caplog: pytest.LogCaptureFixture
) -> None:
    """With the database file gone the store refuses new work: every submit_sm is answered
    ESME_RSYSERR (the ESME sends it again later) and counted, but ``front.accept_failed``
    is a few warnings per interval, not one per refused batch, and says how many it left
    out."""
    assert lab.gateway is not None
    client = await esme(lab)
    try:
        os.unlink(lab.gateway.store.path)
        lab.gateway.store.check_health()
        assert not lab.gateway.store.health.accepting
        refusals = 40
        began = asyncio.get_running_loop().time()
        with caplog.at_level(logging.INFO, logger="smsgw.front"):
            for n in range(refusals):  # one at a time: one commit batch each
                resp = await client.submit(submit(f"refused {n}"))
                assert resp.command_status == Status.RSYSERR
        warnings = [r for r in caplog.records if "front.accept_failed" in r.getMessage()]
        assert warnings and all(r.levelno == logging.WARNING for r in warnings)
        # BURST lines per INTERVAL_SECONDS (the run takes well under one on any machine)
        intervals = 1 + int((asyncio.get_running_loop().time() - began) // INTERVAL_SECONDS)
        assert len(warnings) <= BURST * intervals < refusals, len(warnings)
        fields = warnings[0].__dict__["smsgw_fields"]
        assert fields["status"] == "StoreUnavailable" and "file_missing" in fields["error"]
        async with aiohttp.ClientSession() as http, http.get(lab.gw_url + "/metrics") as r:
            metrics = await r.text()
        assert (
            f'smsgw_front_submit_sm_total{{account="crm",status="ESME_RSYSERR"}} {refusals}.0'
            in metrics
        )
        assert (
            f'smsgw_front_accept_failed_total{{error="StoreUnavailable"}} {refusals}.0' in metrics
        ), [m for m in metrics.splitlines() if "accept_failed" in m]
        assert "smsgw_front_refusal_logs_suppressed_total 0.0" not in metrics
        assert client.session.is_bound  # the bind stays up
    finally:
        await client.close()


async def test_short_code_sender_with_ton_0_is_accepted_as_the_http_api_does(
    lab: FrontLab,
) -> None:
    """``12345`` with TON 0 (NPI 0 or 1), 3 or 6 is a short code, as ``"from": "12345"`` is
    over HTTP; the receipt comes back to it as a short code (TON 0, NPI 1)."""
    client = await esme(lab)
    try:
        sent = []
        for ton, npi in ((0, 0), (0, 1), (3, 0), (6, 0)):
            pdu = submit(f"from a short code {ton}/{npi}", source_addr="12345")
            pdu.source_addr_ton, pdu.source_addr_npi = ton, npi
            sent.append(message_id(await client.submit(pdu)))
        receipts = await client.collect(len(sent), within=10)
        assert sorted(r.receipted_message_id for r in receipts) == sorted(sent)
        assert {(r.dest_addr_ton, r.dest_addr_npi, r.destination_addr) for r in receipts} == {
            (0, 1, "12345")
        }
        # Too short or too long for a short code: still refused.
        for short in ("12", "123456789012345678"):
            refused = await client.submit(submit("x", source_addr=short, source_addr_ton=0))
            assert refused.command_status == Status.RINVSRCADR, short
    finally:
        await client.unbind()
    assert lab.gateway is not None
    views = [await lab.gateway.store.get_message(m) for m in sent]
    assert [v.sender for v in views if v] == ["12345"] * 4


async def test_receipts_held_while_no_receiver_then_delivered_on_bind(lab: FrontLab) -> None:
    tx = await esme(lab, "tx")
    sent = [message_id(await tx.submit(submit(f"held {n}"))) for n in range(3)]

    async def all_delivered() -> bool:
        return all([await status_of(lab, m) == "delivered" for m in sent])

    await eventually(all_delivered)
    await asyncio.sleep(0.3)
    assert lab.gateway is not None
    assert await lab.gateway.store.front_pending() == {ACCOUNT: 3}
    async with aiohttp.ClientSession() as http:
        async with http.get(lab.gw_url + "/healthz") as r:
            health = await r.json()
        async with http.get(lab.gw_url + "/metrics") as r:
            metrics = await r.text()
    (crm,) = [a for a in health["front"]["accounts"] if a["account"] == ACCOUNT]
    assert [b["type"] for b in crm["binds"]] == ["tx"]
    assert 'smsgw_front_binds{account="crm",type="tx"} 1.0' in metrics
    assert 'smsgw_front_binds{account="crm",type="rx"} 0.0' in metrics

    rx = await esme(lab, "rx")
    receipts = await rx.collect(3, within=10)
    assert sorted(r.receipted_message_id or "" for r in receipts) == sorted(sent)

    async def written_back() -> bool:
        assert lab.gateway is not None
        return await lab.gateway.store.front_pending() == {}

    await eventually(written_back)
    await rx.unbind()
    await tx.unbind()


async def test_refused_receipt_is_retried(lab: FrontLab) -> None:
    client = await esme(lab)
    client.deliver_status = Status.RX_T_APPN
    try:
        sent = message_id(await client.submit(submit("retry me")))
        first = await client.next_deliver(within=10)
        assert first.receipted_message_id == sent
        client.deliver_status = Status.ROK
        again = await client.next_deliver(within=5)  # retry_delay is 0.2 s here
        assert again.receipted_message_id == sent
    finally:
        await client.unbind()
    assert lab.front.accounts[ACCOUNT].stats.deliver_failed >= 1


async def test_restart_loses_no_receipt_owed(lab: FrontLab) -> None:
    tx = await esme(lab, "tx")
    sent = [message_id(await tx.submit(submit(f"before restart {n}"))) for n in range(5)]

    async def all_delivered() -> bool:
        return all([await status_of(lab, m) == "delivered" for m in sent])

    await eventually(all_delivered)
    await tx.unbind()
    await lab.stop_gateway()
    await lab.start_gateway()
    rx = await esme(lab, "rx")
    receipts = await rx.collect(5, within=10)
    assert sorted(r.receipted_message_id or "" for r in receipts) == sorted(sent)
    await rx.unbind()


async def test_receipts_older_than_hold_max_age_are_dropped(tmp_path: Path) -> None:
    lab = await started(tmp_path, account={"hold_max_age": 1})
    try:
        tx = await esme(lab, "tx")
        sent = message_id(await tx.submit(submit("too late")))

        async def delivered() -> bool:
            return await status_of(lab, sent) == "delivered"

        await eventually(delivered)
        await asyncio.sleep(1.2)
        rx = await esme(lab, "rx")
        with pytest.raises(TimeoutError):
            await rx.next_deliver(within=0.5)
        assert lab.front.accounts[ACCOUNT].stats.expired == 1
        await rx.unbind()
        await tx.unbind()
    finally:
        await lab.stop()


async def test_mo_for_an_account_is_held_then_delivered(lab: FrontLab) -> None:
    long_text = "Réponse longue: " + "bonjour " * 30
    await lab.front.deliver_mo(ACCOUNT, source="+33611111111", destination="12345", text="STOP")
    await lab.front.deliver_mo(ACCOUNT, source="+33622222222", destination="12345", text=long_text)
    with pytest.raises(KeyError):
        await lab.front.deliver_mo("nobody", source="+33611111111", destination="1", text="x")
    rx = await esme(lab, "rx")
    pdus = await rx.collect(3, within=10)  # STOP, then the long one in two parts
    assert all(isinstance(p, DeliverSm) for p in pdus)
    short = pdus[0]
    assert isinstance(short, DeliverSm)
    assert (short.source_addr, short.source_addr_ton, short.destination_addr) == (
        "33611111111",
        1,
        "12345",
    )
    assert short.short_message == b"STOP" and not short.esm_class & EsmClass.SMSC_DELIVERY_RECEIPT
    joined = b""
    for pdu in pdus[1:]:
        assert isinstance(pdu, DeliverSm) and pdu.esm_class & EsmClass.UDHI
        udh, data = parse_udh(pdu.short_message)
        assert udh is not None and udh.total == 2
        joined += data
    assert decode_short_message(joined, pdus[1].data_coding) == long_text
    await rx.unbind()
    assert lab.front.mo_account_for("+33699999999") is None


async def test_failure_receipt_with_failure_only_registered_delivery(tmp_path: Path) -> None:
    from smsc_simulator.config import OutcomesConfig, ReceiptsConfig

    sim = simulator_config(
        receipts=ReceiptsConfig(outcomes=OutcomesConfig(delivered=0, undeliverable=1))
    )
    lab = FrontLab(tmp_path, sim, front_section())
    await lab.start()
    try:
        client = await esme(lab)
        sent = message_id(await client.submit(submit("will fail", registered_delivery=2)))
        receipt = await client.next_deliver(within=10)
        assert receipt.receipted_message_id == sent
        assert receipt.message_state == MessageState.UNDELIVERABLE
        assert b"stat:UNDELIV err:001" in getattr(receipt, "short_message", b"")
        await client.unbind()
    finally:
        await lab.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_tls_listener(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    proc = await asyncio.create_subprocess_exec(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    lab = await started(tmp_path, tls_cert=str(cert), tls_key=str(key))
    try:
        context = ssl.create_default_context(cafile=str(cert))
        client = EsmeClient(SessionConfig(response_timeout=5.0, bind_timeout=5.0))
        loop = asyncio.get_running_loop()
        await loop.create_connection(
            lambda: SmppConnection(Session(Role.ESME, client.config, loop.time()), client),
            "127.0.0.1",
            lab.front_port,
            ssl=context,
        )
        assert await client.bind("trx", ACCOUNT, PASSWORD) == Status.ROK
        sent = message_id(await client.submit(submit("over TLS")))
        receipt = await client.next_deliver(within=10)
        assert receipt.receipted_message_id == sent
        await client.unbind()
        # A plain-text bind on the TLS port gets nowhere.
        plain = await EsmeClient.connect("127.0.0.1", lab.front_port, response_timeout=1.0)
        with pytest.raises((ConnectionError, TimeoutError)):
            await plain.bind("trx", ACCOUNT, PASSWORD, within=2.0)
        await plain.close()
    finally:
        await lab.stop()


async def test_front_probes_idle_binds_and_unbinds_them_on_stop(tmp_path: Path) -> None:
    lab = await started(tmp_path, enquire_link_interval=0.2)
    try:
        rx = await esme(lab, "rx")
        after_bind = rx.bytes_received
        await asyncio.sleep(0.5)
        assert rx.bytes_received >= after_bind + 16  # an enquire_link (16 octets), answered
        assert rx.session.is_bound
        await lab.stop_gateway()
        await rx.wait_closed()
        assert "Unbound(by_peer=True)" in rx.close_reason
    finally:
        await lab.stop()


async def test_bad_pdu_gets_generic_nack(lab: FrontLab) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", lab.front_port)
    try:
        writer.write(bytes.fromhex("00000010000000ff0000000000000063"))
        header = await asyncio.wait_for(reader.readexactly(16), 5.0)
        length, command_id, status, sequence = struct.unpack(">IIII", header)
        assert (length, command_id, sequence) == (16, 0x80000000, 0x63)
        assert status == Status.RINVCMDID
    finally:
        writer.close()
        await writer.wait_closed()


async def test_receipt_unanswered_when_the_link_drops_is_sent_again(lab: FrontLab) -> None:
    client = await esme(lab)
    client.auto_answer = False  # take the receipt, never answer it
    sent = message_id(await client.submit(submit("lost on the wire")))
    first = await client.next_deliver(within=10)
    assert first.receipted_message_id == sent
    assert client.conn is not None
    client.conn.abort()  # the link drops with the deliver_sm unanswered
    await client.wait_closed()
    again = await esme(lab, "rx")
    receipt = await again.next_deliver(within=5)
    assert receipt.receipted_message_id == sent

    async def written_back() -> bool:
        assert lab.gateway is not None
        return await lab.gateway.store.front_pending() == {}

    await eventually(written_back)
    await again.unbind()


async def test_front_port_in_use_stops_the_whole_start(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        port = blocker.getsockname()[1]
        lab = FrontLab(tmp_path, simulator_config(), front_section(port=port))
        await lab.simulator.start()
        try:
            with pytest.raises(OSError):
                await lab.start_gateway()
            assert lab.gateway is not None
            assert lab.gateway._started == []  # everything that started was stopped
            assert all(not b.bound for b in lab.gateway.binds)
            lab.gateway = None
        finally:
            await lab.stop()
    finally:
        blocker.close()


async def test_mo_to_a_number_routed_upstream_reaches_the_account(tmp_path: Path) -> None:
    lab = await started(tmp_path, mo_routes={"+447700900777": ACCOUNT})
    try:
        rx = await esme(lab, "rx")
        await lab.sim(
            "POST", "/v1/mo", {"from": "+33633334444", "to": "447700900777", "text": "Hi"}
        )
        await lab.sim(
            "POST", "/v1/mo", {"from": "+33633334444", "to": "447700900999", "text": "No"}
        )
        pdu = await rx.next_deliver(within=10)
        assert isinstance(pdu, DeliverSm)
        assert pdu.short_message == b"Hi" and pdu.source_addr == "33633334444"
        with pytest.raises(TimeoutError):  # another number: not this account's
            await rx.next_deliver(within=0.5)
        assert lab.gateway is not None
        logged = await lab.gateway.store.interactions(limit=10)
        actions = {i.text: i.actions for i in logged}
        assert actions["Hi"] == [{"type": "upstream", "account": ACCOUNT, "ok": True}]
        assert actions["No"] == []
        await rx.unbind()
    finally:
        await lab.stop()
