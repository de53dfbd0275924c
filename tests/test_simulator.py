"""The SMSC simulator over real sockets (127.0.0.1, port 0), driven by our own ESME client
(tests/smpp_client.py) and its JSON control API. Every simulator started is stopped."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.smpp.constants import CommandId, DataCoding, EsmClass, Status, Tag
from gateway.smpp.pdu import (
    DataSm,
    DeliverSm,
    EnquireLink,
    Pdu,
    SubmitSm,
    tlv_u8,
    tlv_u16,
)
from gateway.smpp.receipt import MessageState, parse_receipt
from gateway.smpp.text import ConcatMethod, decode_short_message, parse_udh, split_message
from smsc_simulator.config import (
    AccountConfig,
    ControlConfig,
    DelayConfig,
    LogConfig,
    MessageIdConfig,
    MessagesConfig,
    OutcomesConfig,
    ReceiptsConfig,
    ReplyConfig,
    SimulatorConfig,
    SmppConfig,
    SubscribersConfig,
)
from smsc_simulator.server import Simulator
from tests.smpp_client import EsmeClient

ROOT = Path(__file__).resolve().parent.parent
QUIET = 0.3
"""How long to wait for something that must NOT happen (a response in black-hole mode)."""


# -- helpers ---------------------------------------------------------------------------------


def account(**overrides: Any) -> AccountConfig:
    """The smsgw/secret account, receipts at once, everything else at its default."""
    fields: dict[str, Any] = {
        "system_id": "smsgw",
        "password": "secret",
        "receipts": ReceiptsConfig(delay=DelayConfig(seconds=0.0)),
    }
    fields.update(overrides)
    return AccountConfig(**fields)


def receipts(**overrides: Any) -> ReceiptsConfig:
    fields: dict[str, Any] = {"delay": DelayConfig(seconds=0.0)}
    fields.update(overrides)
    return ReceiptsConfig(**fields)


def make_config(
    *accounts: AccountConfig,
    subscribers: SubscribersConfig | None = None,
    keep: int = 100,
) -> SimulatorConfig:
    return SimulatorConfig(
        smpp=SmppConfig(host="127.0.0.1", port=0),
        control=ControlConfig(host="127.0.0.1", port=0),
        log=LogConfig(level="warning"),
        accounts=accounts or (account(),),
        messages=MessagesConfig(keep=keep),
        subscribers=subscribers or SubscribersConfig(),
        seed=7,
    )


def submit(text: str = "hello", registered_delivery: int = 0, **fields: Any) -> SubmitSm:
    values: dict[str, Any] = {
        "source_addr": "SMSGW",
        "source_addr_ton": 5,
        "destination_addr": "491511234567",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "registered_delivery": registered_delivery,
        "short_message": text.encode("ascii"),
    }
    values.update(fields)
    return SubmitSm(**values)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 3.0) -> None:
    """Poll ``check`` every 10 ms until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Harness:
    def __init__(self, sim: Simulator, http: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.http = http
        self.clients: list[EsmeClient] = []
        assert sim.smpp_port and sim.control_port
        self.port: int = sim.smpp_port
        self.base = f"http://127.0.0.1:{sim.control_port}"

    async def client(
        self,
        bind_type: str = "trx",
        system_id: str = "smsgw",
        password: str = "secret",
        **kwargs: Any,
    ) -> EsmeClient:
        client = await EsmeClient.bound(
            self.port, bind_type, system_id, password, host="127.0.0.1", **kwargs
        )
        self.clients.append(client)
        return client

    async def connect(self) -> EsmeClient:
        client = await EsmeClient.connect("127.0.0.1", self.port)
        self.clients.append(client)
        return client

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {}
        if isinstance(body, str | bytes):
            kwargs["data"] = body
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.base + path, **kwargs) as response:
            return response.status, await response.json()

    async def stats(self) -> dict[str, Any]:
        status, body = await self.call("GET", "/v1/stats")
        assert status == 200
        result: dict[str, Any] = body
        return result

    async def faults(self, **switches: Any) -> dict[str, Any]:
        status, body = await self.call("PUT", "/v1/faults", switches)
        assert status == 200, body
        result: dict[str, Any] = body
        return result

    async def mo(self, **body: Any) -> tuple[int, Any]:
        return await self.call("POST", "/v1/mo", body)

    async def wait_stat(self, key: str, value: Any, within: float = 3.0) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def check() -> bool:
            seen.update(await self.stats())
            return bool(seen[key] == value)

        try:
            await eventually(check, within)
        except AssertionError:
            raise AssertionError(f"stats[{key!r}] is {seen.get(key)!r}, not {value!r}") from None
        return seen


StartSim = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    harnesses: list[Harness] = []

    async def start(config: SimulatorConfig | None = None) -> Harness:
        sim = Simulator(config or make_config())
        await sim.start()
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        harness = Harness(sim, http)
        harnesses.append(harness)
        return harness

    try:
        yield start
    finally:
        for harness in harnesses:
            for client in harness.clients:
                if client.conn is not None:
                    client.conn.abort()
            await harness.http.close()
            await asyncio.wait_for(harness.sim.stop(), 10)


@pytest.fixture
async def h(start_sim: StartSim) -> Harness:
    return await start_sim()


def receipt_of(pdu: Pdu) -> Any:
    assert isinstance(pdu, DeliverSm)
    return parse_receipt(
        pdu.esm_class,
        pdu.short_message,
        pdu.receipted_message_id,
        pdu.message_state,
        pdu.network_error_code,
    )


def mo_text(parts: list[Pdu]) -> str:
    """Reassemble MO parts (any order) the way a receiver must: by their seq numbers."""
    chunks: dict[int, bytes] = {}
    data_coding = 0
    for pdu in parts:
        assert isinstance(pdu, DeliverSm)
        data_coding = pdu.data_coding
        data = pdu.short_message or pdu.message_payload or b""
        if pdu.esm_class & EsmClass.UDHI:
            udh, data = parse_udh(data)
            assert udh is not None
            chunks[udh.seq] = data
        elif pdu.sar_segment_seqnum is not None:
            chunks[pdu.sar_segment_seqnum] = data
        else:
            chunks[1] = data
    return decode_short_message(b"".join(chunks[k] for k in sorted(chunks)), data_coding)


# -- binds -----------------------------------------------------------------------------------


async def test_bind_submit_answers_with_a_hex_message_id(h: Harness) -> None:
    client = await h.client("trx")
    response = await client.submit(submit())
    assert response.command_id == CommandId.SUBMIT_SM_RESP
    assert response.command_status == Status.ROK
    assert re.fullmatch(r"[0-9a-f]+", response.message_id)  # type: ignore[attr-defined]
    assert (await h.stats())["binds"] == 1


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [
        ("nobody", "secret", Status.RINVSYSID),
        ("smsgw", "wrong", Status.RINVPASWD),
    ],
)
async def test_bad_credentials_are_refused(
    h: Harness, system_id: str, password: str, status: int
) -> None:
    client = await h.connect()
    assert await client.bind("trx", system_id, password) == status
    stats = await h.stats()
    assert stats["binds"] == 0
    assert stats["bind_failures_by_status"] == {f"ESME_{Status(status).name}": 1}


async def test_disallowed_bind_type_and_too_many_binds_are_rbindfail(
    start_sim: StartSim,
) -> None:
    h = await start_sim(make_config(account(bind_types=("tx", "rx"), max_binds=2)))
    trx = await h.connect()
    assert await trx.bind("trx", "smsgw", "secret") == Status.RBINDFAIL
    first = await h.client("tx")
    await h.client("rx")
    third = await h.connect()
    assert await third.bind("tx", "smsgw", "secret") == Status.RBINDFAIL
    await first.unbind()
    await h.wait_stat("binds", 1)
    await h.client("tx")  # a freed place can be taken again


async def test_stop_unbinds_every_esme(start_sim: StartSim) -> None:
    h = await start_sim()
    client = await h.client("trx")
    await h.sim.stop()
    await client.wait_closed(2.0)
    assert "Unbound" in client.close_reason
    assert h.sim.connections == set()


# -- limits ----------------------------------------------------------------------------------


async def test_tps_limit_answers_rthrottled(start_sim: StartSim) -> None:
    h = await start_sim(make_config(account(tps=5.0, tps_burst=3.0)))
    client = await h.client("tx")
    responses = await client.submit_many([submit() for _ in range(20)])
    statuses = [r.command_status for r in responses]
    assert statuses[:3] == [Status.ROK] * 3
    assert statuses.count(Status.ROK) <= 4  # the bucket refills 5 per second
    assert statuses.count(Status.RTHROTTLED) >= 16
    stats = await h.stats()
    assert stats["submit_sm_by_status"]["ESME_RTHROTTLED"] == statuses.count(Status.RTHROTTLED)


async def test_window_limit_answers_rmsgqful(start_sim: StartSim) -> None:
    h = await start_sim(make_config(account(window=2)))
    await h.faults(slow_responses=0.2)
    client = await h.client("tx")
    futures = [client.submit_nowait(submit()) for _ in range(5)]
    done = await asyncio.wait_for(asyncio.gather(*futures), 3)
    assert [r.command_status for r in done] == [
        Status.ROK,
        Status.ROK,
        Status.RMSGQFUL,
        Status.RMSGQFUL,
        Status.RMSGQFUL,
    ]
    # The refusals are immediate; the accepted ones wait for slow_responses.
    assert client.arrivals[:3] == ["submit_sm_resp"] * 3


@pytest.mark.parametrize("quickack", [False, True])
async def test_tcp_quickack_is_set_again_after_every_read(
    start_sim: StartSim, monkeypatch: pytest.MonkeyPatch, quickack: bool
) -> None:
    """smpp.tcp_quickack: the sink ACKs every read at once (Linux clears TCP_QUICKACK by
    itself, so it is set after each read); off (the default), the kernel's delayed ACKs."""
    import socket

    from smsc_simulator import fastpath

    if not hasattr(socket, "TCP_QUICKACK"):
        pytest.skip("TCP_QUICKACK is Linux only")
    calls: list[int] = []
    real = fastpath.FastConnection._ack_now

    def counting(self: fastpath.FastConnection) -> None:
        calls.append(1)
        real(self)

    monkeypatch.setattr(fastpath.FastConnection, "_ack_now", counting)
    config = make_config()
    h = await start_sim(replace(config, smpp=replace(config.smpp, tcp_quickack=quickack)))
    client = await h.client("trx")
    for n in range(3):
        response = await client.submit(submit(f"ack {n}", registered_delivery=1))
        assert response.command_status == Status.ROK
        assert isinstance(await client.next_deliver(), DeliverSm)
    await h.wait_stat("deliver_sm_resp_by_status", {"ESME_ROK": 3})
    # At connect, then once per read: the bind, three submit_sm, three deliver_sm_resp.
    assert len(calls) >= 5 if quickack else calls == []


# -- receipts --------------------------------------------------------------------------------


async def test_receipt_carries_text_and_tlvs_matching_the_message_id(h: Harness) -> None:
    client = await h.client("trx")
    response = await client.submit(submit("Hello receipts", registered_delivery=1))
    deliver = await client.next_deliver()
    assert isinstance(deliver, DeliverSm)
    assert deliver.esm_class == EsmClass.SMSC_DELIVERY_RECEIPT
    assert (deliver.source_addr, deliver.destination_addr) == ("491511234567", "SMSGW")
    receipt = receipt_of(deliver)
    message_id = response.message_id  # type: ignore[attr-defined]
    assert receipt.message_id == message_id
    assert receipt.state is MessageState.DELIVERED
    assert receipt.network_error_code == b"\x03\x00\x00"
    text = deliver.short_message.decode("ascii")
    assert text.startswith(f"id:{message_id} sub:001 dlvrd:001 submit date:")
    assert "stat:DELIVRD err:000 text:Hello receipts" in text
    await h.wait_stat("receipts_sent", 1)
    stats = await h.wait_stat("deliver_sm_resp_by_status", {"ESME_ROK": 1})
    assert stats["receipts_by_state"] == {"DELIVRD": 1}


async def test_receipt_id_form_decimal_padded_and_other_base(start_sim: StartSim) -> None:
    ids = MessageIdConfig(base="decimal", width=20)
    h = await start_sim(
        make_config(account(message_id=ids, receipts=receipts(id_in_other_base=True)))
    )
    client = await h.client("trx")
    response = await client.submit(submit(registered_delivery=1))
    message_id = response.message_id  # type: ignore[attr-defined]
    assert re.fullmatch(r"[0-9]{20}", message_id)
    receipt = receipt_of(await client.next_deliver())
    assert re.fullmatch(r"[0-9a-f]{20}", receipt.message_id)  # hex, same padding
    assert int(receipt.message_id, 16) == int(message_id, 10)


async def test_receipt_text_only_and_tlvs_only(start_sim: StartSim) -> None:
    h = await start_sim(
        make_config(
            account(system_id="textonly", receipts=receipts(tlvs=False)),
            account(
                system_id="tlvonly",
                receipts=receipts(text=False),
                message_id=MessageIdConfig(base="hex", uppercase=True),
            ),
        )
    )
    text_client = await h.client("trx", system_id="textonly")
    await text_client.submit(submit(registered_delivery=1))
    deliver = await text_client.next_deliver()
    assert isinstance(deliver, DeliverSm)
    assert deliver.tlvs == () and deliver.short_message.startswith(b"id:")

    tlv_client = await h.client("trx", system_id="tlvonly")
    response = await tlv_client.submit(submit(registered_delivery=1))
    deliver = await tlv_client.next_deliver()
    assert isinstance(deliver, DeliverSm)
    assert deliver.short_message == b""
    assert deliver.receipted_message_id == response.message_id  # type: ignore[attr-defined]
    assert re.fullmatch(r"[0-9A-F]+", deliver.receipted_message_id or "")
    assert deliver.message_state == MessageState.DELIVERED


async def test_failure_only_receipts(start_sim: StartSim) -> None:
    h = await start_sim(
        make_config(
            account(system_id="good"),
            account(
                system_id="bad",
                receipts=receipts(outcomes=OutcomesConfig(delivered=0, undeliverable=1)),
            ),
        )
    )
    good = await h.client("trx", system_id="good")
    await good.submit(submit(registered_delivery=2))
    bad = await h.client("trx", system_id="bad")
    await bad.submit(submit(registered_delivery=2))
    receipt = receipt_of(await bad.next_deliver())
    assert receipt.state is MessageState.UNDELIVERABLE
    assert receipt.err == "001"
    assert receipt.network_error_code == b"\x03\x00\x01"
    stats = await h.stats()
    assert stats["receipts_scheduled"] == 1  # nothing for the delivered one
    assert good.delivers.empty()


async def test_outcome_mix_follows_the_weights(start_sim: StartSim) -> None:
    outcomes = OutcomesConfig(delivered=1, undeliverable=1, expired=1, rejected=1)
    h = await start_sim(make_config(account(receipts=receipts(outcomes=outcomes))))
    client = await h.client("trx")
    await client.submit_many([submit(registered_delivery=1) for _ in range(80)])
    states = {receipt_of(p).state for p in await client.collect(80)}
    assert states == {
        MessageState.DELIVERED,
        MessageState.UNDELIVERABLE,
        MessageState.EXPIRED,
        MessageState.REJECTED,
    }


async def test_receipts_are_held_until_a_receiver_binds(h: Harness) -> None:
    tx = await h.client("tx")
    await tx.submit_many([submit(registered_delivery=1) for _ in range(3)])
    await h.wait_stat("receipts_pending", 3)
    rx = await h.client("rx")
    received = await rx.collect(3)
    assert all(receipt_of(p).state is MessageState.DELIVERED for p in received)
    await h.wait_stat("receipts_pending", 0)


async def test_receipts_round_robin_over_receivers(h: Harness) -> None:
    tx = await h.client("tx")
    rx1 = await h.client("rx")
    rx2 = await h.client("rx")
    await tx.submit_many([submit(registered_delivery=1) for _ in range(10)])
    await h.wait_stat("receipts_sent", 10)
    assert rx1.delivers.qsize() == 5 and rx2.delivers.qsize() == 5


async def test_receipts_respect_the_esme_window(start_sim: StartSim) -> None:
    h = await start_sim(make_config(account(deliver_window=2)))
    client = await h.client("trx")
    client.auto_answer = False
    await client.submit_many([submit(registered_delivery=1) for _ in range(5)])
    await client.collect(2)
    stats = await h.wait_stat("receipts_pending", 3)
    assert stats["receipts_sent"] == 2
    client.auto_answer = True
    for pdu in client.unanswered:
        client.answer(pdu)
    await client.collect(3)
    await h.wait_stat("receipts_pending", 0)


async def test_deliver_sm_resp_statuses_are_counted(h: Harness) -> None:
    client = await h.client("trx")
    client.deliver_status = Status.RX_T_APPN
    await client.submit(submit(registered_delivery=1))
    await client.next_deliver()
    await h.wait_stat("deliver_sm_resp_by_status", {"ESME_RX_T_APPN": 1})


@pytest.mark.parametrize(
    ("status", "again"),
    [(Status.RX_T_APPN, True), (Status.RSYSERR, True), (Status.RX_P_APPN, False)],
)
async def test_a_receipt_refused_for_now_is_offered_again(
    start_sim: StartSim, status: int, again: bool
) -> None:
    h = await start_sim(make_config(account(deliver_retry_delay=0.05)))
    client = await h.client("trx")
    client.deliver_status = status
    await client.submit(submit(registered_delivery=1))
    first = await client.next_deliver()
    client.deliver_status = Status.ROK
    if again:
        second = await client.next_deliver()
        assert second.short_message == first.short_message
        stats = await h.wait_stat("deliver_sm_retried", 1)
        assert stats["deliver_sm_resp_by_status"]["ESME_ROK"] == 1
    else:
        stats = await h.wait_stat("receipts_pending", 0)
        assert stats["deliver_sm_retried"] == 0
        with pytest.raises(asyncio.TimeoutError):
            await client.next_deliver(within=0.3)


async def test_long_message_gets_one_receipt_per_part(h: Harness) -> None:
    client = await h.client("trx")
    text = "Long message. " * 30
    udh_parts = split_message(text, concat=ConcatMethod.UDH8, ref=42).parts
    sar_parts = split_message(text, concat=ConcatMethod.SAR, ref=43).parts
    pdus = [
        submit(
            registered_delivery=1,
            esm_class=EsmClass.UDHI,
            short_message=part.short_message,
        )
        for part in udh_parts
    ]
    for part in sar_parts:
        assert part.sar is not None
        ref, total, seq = part.sar
        pdus.append(
            submit(
                registered_delivery=1,
                short_message=part.short_message,
                tlvs=(
                    tlv_u16(Tag.SAR_MSG_REF_NUM, ref),
                    tlv_u8(Tag.SAR_TOTAL_SEGMENTS, total),
                    tlv_u8(Tag.SAR_SEGMENT_SEQNUM, seq),
                ),
            )
        )
    payload = submit(
        registered_delivery=1,
        short_message=b"",
        tlvs=((Tag.MESSAGE_PAYLOAD, text.encode("ascii")),),
    )
    pdus.append(payload)
    responses = await client.submit_many(pdus)
    ids = {r.message_id for r in responses}  # type: ignore[attr-defined]
    assert len(ids) == len(pdus) == len(udh_parts) + len(sar_parts) + 1
    receipts_got = await client.collect(len(pdus))
    assert {receipt_of(p).message_id for p in receipts_got} == ids

    stats = await h.stats()
    assert stats["parts_received"] == len(pdus)
    assert stats["concat_parts_received"] == len(udh_parts) + len(sar_parts)
    assert stats["payload_messages_received"] == 1
    status, body = await h.call("GET", f"/v1/messages?limit={len(pdus)}")
    assert status == 200
    messages = body["messages"]
    assert [m["concat"] for m in messages[: len(udh_parts)]] == [
        {"ref": 42, "total": len(udh_parts), "seq": n} for n in range(1, len(udh_parts) + 1)
    ]
    assert "".join(m["text"] for m in messages[: len(udh_parts)]) == text
    assert messages[-1]["text"] == text and messages[-1]["payload"] is True


async def test_data_sm_is_answered_and_receipted(h: Harness) -> None:
    client = await h.client("trx")
    response = await client.request(
        DataSm(
            source_addr="SMSGW",
            destination_addr="491511234567",
            registered_delivery=1,
            tlvs=((Tag.MESSAGE_PAYLOAD, b"data sm text"),),
        )
    )
    assert response.command_id == CommandId.DATA_SM_RESP
    assert response.command_status == Status.ROK
    receipt = receipt_of(await client.next_deliver())
    assert receipt.message_id == response.message_id  # type: ignore[attr-defined]
    assert receipt.text == "data sm text"
    assert (await h.stats())["data_sm"] == 1


# -- MO --------------------------------------------------------------------------------------


async def test_mo_single_part(h: Harness) -> None:
    client = await h.client("rx")
    status, body = await h.mo(**{"from": "491701234567", "to": "12345", "text": "Hi @ there"})
    assert status == 202
    assert body["parts"] == 1
    pdu = await client.next_deliver()
    assert isinstance(pdu, DeliverSm)
    assert pdu.esm_class == 0 and pdu.data_coding == DataCoding.SMSC_DEFAULT
    assert (pdu.source_addr, pdu.destination_addr) == ("491701234567", "12345")
    assert (pdu.source_addr_ton, pdu.dest_addr_ton) == (1, 0)
    assert decode_short_message(pdu.short_message, pdu.data_coding) == "Hi @ there"
    await h.wait_stat("mo_sent", 1)


async def test_mo_long_ucs2_message_in_parts(h: Harness) -> None:
    client = await h.client("trx")
    text = "Привет, как дела? " * 10
    status, body = await h.mo(**{"from": "491701234567", "to": "12345", "text": text})
    assert status == 202 and body["parts"] == 3
    parts = await client.collect(3)
    assert all(p.data_coding == DataCoding.UCS2 for p in parts)  # type: ignore[attr-defined]
    assert all(p.esm_class == EsmClass.UDHI for p in parts)  # type: ignore[attr-defined]
    assert mo_text(parts) == text
    await h.wait_stat("mo_parts_sent", 3)


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar"])
async def test_mo_forced_parts_shuffled(h: Harness, concat: str) -> None:
    client = await h.client("trx")
    text = "Short text, five parts"
    status, body = await h.mo(
        **{"from": "4917", "to": "12345", "text": text, "parts": 5, "shuffle": True},
        concat=concat,
    )
    assert status == 202 and body["parts"] == 5
    parts = await client.collect(5)
    assert mo_text(parts) == text
    seqs: list[int] = []
    for pdu in parts:
        assert isinstance(pdu, DeliverSm)
        if concat == "sar":
            assert pdu.sar_msg_ref_num == body["ref"]
            assert pdu.sar_segment_seqnum is not None
            seqs.append(pdu.sar_segment_seqnum)
        else:
            udh, _ = parse_udh(pdu.short_message)
            assert udh is not None and udh.ref == body["ref"] and udh.total == 5
            seqs.append(udh.seq)
    assert sorted(seqs) == [1, 2, 3, 4, 5]
    assert seqs != [1, 2, 3, 4, 5]  # shuffled (the seed makes this deterministic)


async def test_mo_payload(h: Harness) -> None:
    client = await h.client("trx")
    text = "payload " * 40
    status, body = await h.mo(**{"from": "4917", "to": "12345", "text": text}, concat="payload")
    assert status == 202 and body["parts"] == 1
    pdu = await client.next_deliver()
    assert isinstance(pdu, DeliverSm)
    assert pdu.short_message == b"" and mo_text([pdu]) == text


async def test_mo_without_receiver_is_409(h: Harness) -> None:
    await h.client("tx")
    status, body = await h.mo(**{"from": "4917", "to": "12345", "text": "hi"})
    assert status == 409
    assert "no receiver" in body["error"]


async def test_mo_bad_request_lists_every_error(h: Harness) -> None:
    status, body = await h.mo(
        **{"from": 12, "text": 5, "parts": 0, "shuffle": "yes", "concat": "x", "colour": 1}
    )
    assert status == 400
    errors = "\n".join(body["errors"])
    for key in ("from:", "to:", "text:", "parts:", "shuffle:", "concat:", "colour:"):
        assert key in errors, (key, errors)
    status, body = await h.call("POST", "/v1/mo", "{not json")
    assert status == 400 and body["errors"][0].startswith("body: not valid JSON")
    await h.client("rx")
    status, body = await h.mo(**{"from": "1", "to": "2", "text": "ab", "parts": 3})
    assert status == 400 and "parts" in body["errors"][0]
    status, body = await h.mo(**{"from": "1", "to": "2", "text": "ab", "account": "nobody"})
    assert status == 400 and "account" in body["errors"][0]


# -- scripted subscribers --------------------------------------------------------------------


async def test_subscribers_reply_to_the_sender(start_sim: StartSim) -> None:
    subscribers = SubscribersConfig(
        reply_share=1.0,
        delay=DelayConfig(seconds=0.0),
        replies=(ReplyConfig(text="STOP"),),
        reply_once="number",
    )
    h = await start_sim(make_config(subscribers=subscribers))
    client = await h.client("trx")
    await client.submit(submit("first"))
    await client.submit(submit("second"))  # same number: once per number
    reply = await client.next_deliver()
    assert isinstance(reply, DeliverSm)
    assert (reply.source_addr, reply.destination_addr) == ("491511234567", "SMSGW")
    assert decode_short_message(reply.short_message, reply.data_coding) == "STOP"
    await client.submit(submit("third", destination_addr="491519999999"))
    await client.next_deliver()
    stats = await h.wait_stat("subscriber_replies", {"STOP": 2})
    assert stats["mo_sent"] == 2


async def test_which_numbers_reply_is_a_function_of_the_number(start_sim: StartSim) -> None:
    subscribers = SubscribersConfig(
        reply_share=0.5, delay=DelayConfig(seconds=0.0), replies=(ReplyConfig(text="OK"),)
    )
    h = await start_sim(make_config(subscribers=subscribers))
    assert h.sim.subscribers is not None
    numbers = [f"4915{n:08d}" for n in range(200)]
    first = [h.sim.subscribers.replies(n) for n in numbers]
    assert first == [h.sim.subscribers.replies(n) for n in numbers]
    assert 60 < sum(first) < 140
    client = await h.client("trx")
    replying = numbers[first.index(True)]
    silent = numbers[first.index(False)]
    await client.submit(submit(destination_addr=silent))
    await client.submit(submit(destination_addr=replying))
    await client.submit(submit(destination_addr=replying))  # once per message
    replies = await client.collect(2)
    assert {p.source_addr for p in replies} == {replying}  # type: ignore[attr-defined]


# -- faults ----------------------------------------------------------------------------------


async def test_faults_merge_show_and_clear(h: Harness) -> None:
    assert (await h.faults(throttle=0.5))["throttle"] == 0.5
    body = await h.faults(submit_error={"status": 0x45, "probability": 0.25})
    assert body["throttle"] == 0.5  # partial updates merge
    assert body["submit_error"] == {"status": 0x45, "probability": 0.25}
    status, shown = await h.call("GET", "/v1/faults")
    assert status == 200 and shown == body
    status, body = await h.call("PUT", "/v1/faults", {"nonsense": 1, "throttle": 2})
    assert status == 400
    assert any(e.startswith("nonsense:") for e in body["errors"])
    assert any(e.startswith("throttle:") for e in body["errors"])
    status, cleared = await h.call("DELETE", "/v1/faults")
    assert status == 200 and cleared["throttle"] == 0 and cleared["submit_error"] is None


@pytest.mark.parametrize(
    ("switches", "expected"),
    [
        ({"throttle": 1.0}, Status.RTHROTTLED),
        ({"queue_full": 1.0}, Status.RMSGQFUL),
        ({"submit_error": {"status": 0x45, "probability": 1.0}}, Status.RSUBMITFAIL),
    ],
)
async def test_error_status_faults(h: Harness, switches: dict[str, Any], expected: int) -> None:
    client = await h.client("trx")
    await h.faults(**switches)
    assert (await client.submit(submit())).command_status == expected
    await h.call("DELETE", "/v1/faults")
    assert (await client.submit(submit())).command_status == Status.ROK


async def test_generic_nack_fault(h: Harness) -> None:
    client = await h.client("trx")
    await h.faults(generic_nack=1.0)
    response = await client.submit(submit())
    assert response.command_id == CommandId.GENERIC_NACK
    assert (await h.stats())["submit_sm_generic_nack"] == 1


async def test_black_hole_answers_nothing_then_recovers(h: Harness) -> None:
    client = await h.client("trx")
    await h.faults(black_hole=True)
    before = client.bytes_received
    submitted = client.submit_nowait(submit(registered_delivery=1))
    client.request_nowait(EnquireLink())
    done, _ = await asyncio.wait({submitted}, timeout=QUIET)
    assert not done
    assert client.bytes_received == before  # not even enquire_link_resp
    stats = await h.stats()
    assert stats["submit_sm_unanswered"] == 1 and stats["receipts_scheduled"] == 0
    await h.call("DELETE", "/v1/faults")
    client.request_nowait(EnquireLink())

    async def answered() -> bool:
        return client.bytes_received > before

    await eventually(answered)
    assert (await client.submit(submit())).command_status == Status.ROK
    submitted.cancel()


async def test_slow_responses(h: Harness) -> None:
    client = await h.client("trx")
    await h.faults(slow_responses=0.2)
    started = time.monotonic()
    assert (await client.submit(submit())).command_status == Status.ROK
    assert time.monotonic() - started >= 0.18


async def test_drop_link_every(h: Harness) -> None:
    client = await h.client("trx")
    await h.faults(drop_link_every=0.1)
    await client.wait_closed(2.0)
    stats = await h.wait_stat("binds", 0)
    assert stats["links_dropped"] >= 1


async def test_garbage_instead_of_a_response(h: Harness) -> None:
    client = await h.client("trx")
    await h.faults(garbage=1.0)
    submitted = client.submit_nowait(submit())
    done, _ = await asyncio.wait({submitted}, timeout=QUIET)
    # The junk never reads as the submit_sm_resp: the link breaks, or the framer sits on
    # a bogus length, or the junk decodes as something else.
    if done:
        assert submitted.exception() is not None or submitted.result().command_id in (
            CommandId.GENERIC_NACK,
        )
    assert (await h.stats())["submit_sm_garbage"] == 1


async def test_receipt_before_response(h: Harness) -> None:
    client = await h.client("trx")
    await h.faults(receipt_before_response=True)
    await client.submit(submit(registered_delivery=1))
    await client.next_deliver()
    assert client.arrivals == ["deliver_sm", "submit_sm_resp"]


async def test_receipt_before_response_on_another_bind(h: Harness) -> None:
    tx = await h.client("tx")
    rx = await h.client("rx")
    rx.arrivals = tx.arrivals  # one journal for both binds
    await h.faults(receipt_before_response=True)
    await tx.submit(submit(registered_delivery=1))
    await rx.next_deliver()
    assert tx.arrivals == ["deliver_sm", "submit_sm_resp"]


# -- stats, messages, robustness -------------------------------------------------------------


async def test_stats_shape_and_reset(h: Harness) -> None:
    client = await h.client("trx")
    await client.submit_many([submit() for _ in range(5)])
    stats = await h.stats()
    for key in (
        "binds",
        "submit_sm",
        "submit_sm_by_status",
        "receipts_sent",
        "receipts_pending",
        "receipts_by_state",
        "deliver_sm_resp_by_status",
        "mo_sent",
        "subscriber_replies",
        "parts_received",
        "submit_rate",
        "uptime",
        "protocol_errors",
    ):
        assert key in stats, key
    assert stats["submit_sm"] == 5 and stats["submit_sm_by_status"] == {"ESME_ROK": 5}
    assert stats["submit_rate"] > 0
    status, fresh = await h.call("POST", "/v1/stats/reset")
    assert status == 200
    assert fresh["submit_sm"] == 0 and fresh["submit_sm_by_status"] == {}
    assert fresh["binds"] == 1  # a gauge, not a counter
    status, body = await h.call("GET", "/v1/binds")
    assert status == 200 and body["binds"][0]["bind_type"] == "trx"


async def test_messages_ring_buffer(start_sim: StartSim) -> None:
    h = await start_sim(make_config(keep=3))
    client = await h.client("trx")
    responses = await client.submit_many([submit(f"message {n}") for n in range(5)])
    status, body = await h.call("GET", "/v1/messages?limit=10")
    assert status == 200
    messages = body["messages"]
    assert [m["text"] for m in messages] == ["message 2", "message 3", "message 4"]
    assert [m["message_id"] for m in messages] == [r.message_id for r in responses[2:]]  # type: ignore[attr-defined]
    first = messages[0]
    assert first["source"] == "SMSGW" and first["destination"] == "491511234567"
    assert first["data_coding"] == 0 and first["esm_class"] == 0
    status, body = await h.call("GET", "/v1/messages?limit=1")
    assert [m["text"] for m in body["messages"]] == ["message 4"]
    status, body = await h.call("GET", "/v1/messages?limit=x")
    assert status == 400


async def test_bad_input_never_crashes_and_is_counted(h: Harness) -> None:
    client = await h.client("trx")
    # An unknown command_id: answered with generic_nack, the bind stays up.
    client.write_raw(bytes.fromhex("00000010 000000ff 00000000 00000063"))
    # submit_sm with a short_message running past the end of the PDU.
    client.write_raw(bytes.fromhex("00000014 00000004 00000000 00000064 00000000"))
    await h.wait_stat("protocol_errors", 2)
    assert (await client.submit(submit())).command_status == Status.ROK
    # A command_length below the header size: the stream is lost, the link is closed.
    client.write_raw(bytes.fromhex("00000004 00000004 00000000 00000065"))
    await client.wait_closed(2.0)
    await h.wait_stat("binds", 0)
    assert (await h.stats())["internal_errors"] == 0


# -- config and command line -----------------------------------------------------------------


def test_shipped_config_loads() -> None:
    from smsc_simulator.config import load_config

    config = load_config(ROOT / "conf" / "simulator.toml")
    (smsgw,) = config.accounts
    assert (smsgw.system_id, smsgw.password, smsgw.max_binds) == ("smsgw", "secret", 4)
    assert set(smsgw.bind_types) == {"tx", "rx", "trx"}
    assert smsgw.tps == 0 and smsgw.window == 0
    assert (config.smpp.port, config.control.port) == (2775, 8776)


def test_bad_config_lists_every_error(tmp_path: Path) -> None:
    from gateway.config.loader import ConfigError
    from smsc_simulator.config import load_config

    path = tmp_path / "sim.toml"
    path.write_text(
        """
[smpp]
port = 70000
[control]
prot = 1
[log]
level = "loud"
[[accounts]]
system_id = "smsgw"
password = "far-too-long"
bind_types = ["tx", "xx"]
[accounts.receipts.delay]
distribution = "uniform"
min = 3
max = 1
[subscribers]
reply_share = 0.5
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    errors = "\n".join(caught.value.errors)
    for where in (
        "smpp.port",
        "control.prot",
        "log.level",
        "accounts[0].password",
        "accounts[0].bind_types[1]",
        "accounts[0].receipts.delay.min",
        "subscribers.replies",
    ):
        assert where in errors, (where, errors)


def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text("[smpp]\nport = -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "smsc_simulator.cli", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "smpp.port" in result.stderr and "accounts: missing required key" in result.stderr


async def test_cli_on_port_0_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smsc_simulator.cli",
        "--config",
        str(ROOT / "conf" / "simulator.toml"),
        "--port",
        "0",
        "--control-port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        match = re.search(r"smpp_port=(\d+) control_host=\S+ control_port=(\d+)", line)
        assert match, line
        smpp_port, control_port = int(match.group(1)), int(match.group(2))
        client = await EsmeClient.bound(smpp_port, "trx", "smsgw", "secret")
        assert (await client.submit(submit())).command_status == Status.ROK
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{control_port}/v1/stats") as response,
        ):
            assert (await response.json())["binds"] == 1
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        await client.wait_closed(2.0)
        assert "Unbound" in client.close_reason  # unbound, not cut
        assert process.stderr is not None
        log = (await process.stderr.read()).decode()
        assert "sim.started" in log and "sim.stopped" in log
        assert "secret" not in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_account_helper_defaults_match_the_config_defaults() -> None:
    # The helpers above only change the receipt delay; keep them honest.
    base = AccountConfig(system_id="smsgw", password="secret")
    assert replace(base, receipts=receipts()) == account()


# -- the pieces, without sockets -------------------------------------------------------------


def test_receipt_text_cache_writes_what_format_receipt_text_writes() -> None:
    from datetime import datetime

    from gateway.smpp.receipt import format_receipt_text
    from smsc_simulator.dlr import ReceiptText

    submitted, done = 1_700_000_000.0, 1_700_000_125.5
    for seconds in (False, True):
        cache = ReceiptText(seconds)
        for state, err in ((MessageState.DELIVERED, "000"), (MessageState.EXPIRED, "027")):
            for message_id in ("1a2b", "000000000000123456"):
                expected = format_receipt_text(
                    message_id,
                    state,
                    datetime.fromtimestamp(submitted),
                    datetime.fromtimestamp(done),
                    err=err,
                    text="Hello there",
                    seconds=seconds,
                )
                written = cache(message_id, state, submitted, done, "Hello there")
                assert written == expected.encode("ascii")
    # The text field: 20 characters at most, printable ASCII only.
    written = ReceiptText()(
        "1", MessageState.DELIVERED, submitted, done, "Привет\nworld, long text"
    )
    assert written.split(b"text:")[1] == b"???????world, long t"


async def test_ucs2_message_gets_an_ascii_receipt(h: Harness) -> None:
    client = await h.client("trx")
    text = "Привет мир"
    response = await client.submit(
        submit(
            registered_delivery=1,
            data_coding=DataCoding.UCS2,
            short_message=text.encode("utf-16-be"),
        )
    )
    receipt = receipt_of(await client.next_deliver())
    assert receipt.message_id == response.message_id  # type: ignore[attr-defined]
    assert receipt.text == "?????? ???"
    status, body = await h.call("GET", "/v1/messages?limit=1")
    assert status == 200
    assert body["messages"][0]["text"] == text and body["messages"][0]["data_coding"] == 8


def test_token_bucket_is_smooth() -> None:
    from smsc_simulator.limits import TokenBucket

    bucket = TokenBucket(rate=10.0, capacity=2.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert not bucket.take(0.05)  # half a token
    assert bucket.take(0.1)  # one token per 100 ms
    assert not bucket.take(0.1)
    assert [bucket.take(10.0) for _ in range(3)] == [True, True, False]  # capped at capacity


def test_id_formatter() -> None:
    from smsc_simulator.limits import IdFormatter

    assert IdFormatter("hex")(255) == "ff"
    assert IdFormatter("hex", uppercase=True, width=6)(255) == "0000FF"
    assert IdFormatter("decimal", width=5)(255) == "00255"
    with pytest.raises(ValueError):
        IdFormatter("octal")


def test_merge_faults_reports_every_error_and_changes_nothing() -> None:
    from smsc_simulator.faults import Faults, merge_faults

    current = Faults(throttle=0.1)
    merged, errors = merge_faults(
        current,
        {
            "throttle": True,
            "black_hole": 1,
            "slow_responses": -1,
            "submit_error": {"status": "x", "colour": 1},
            "what": 0,
        },
    )
    assert merged is current
    assert len(errors) == 6, errors
    merged, errors = merge_faults(current, {"drop_link_every": None, "garbage": 0.5})
    assert errors == [] and merged.garbage == 0.5 and merged.throttle == 0.1
    assert merged.affects_submit and not Faults(drop_link_every=5).affects_submit


def test_build_mo_forced_parts_keep_gsm7_escapes_whole() -> None:
    from smsc_simulator.mo import MoError, build_mo

    mo = build_mo(
        "a{b}c[d]e", source="1", destination="2", concat=ConcatMethod.UDH8, ref=300, parts=3
    )
    assert mo.ref == 300 & 0xFF
    texts = []
    for pdu in mo.parts:
        udh, data = parse_udh(pdu.short_message)
        assert udh is not None and udh.total == 3
        texts.append(decode_short_message(data, pdu.data_coding))
    assert "".join(texts) == "a{b}c[d]e"
    with pytest.raises(MoError):
        build_mo("ab", source="1", destination="2", concat=ConcatMethod.UDH8, ref=1, parts=3)
    with pytest.raises(MoError):
        build_mo("abc", source="1", destination="2", concat=ConcatMethod.PAYLOAD, ref=1, parts=2)
