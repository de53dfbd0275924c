"""The simulator's fast path (smsc_simulator/fastpath.py): the same answers, receipts and
counters as the general path, from raw bytes on a real socket (127.0.0.1, port 0).

A raw ESME writes exact byte streams (many submit_sm in one write, one PDU cut across
writes, an enquire_link in the middle) so the tests control how the reads are chunked.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp.constants import CommandId, Status
from gateway.smpp.pdu import (
    Bind,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    decode,
    encode,
)
from gateway.smpp.receipt import MessageState, parse_receipt
from gateway.smpp.text import decode_short_message
from smsc_simulator.config import SimulatorConfig
from smsc_simulator.dlr import (
    NETWORK_ERROR,
    ReceiptText,
    build_receipt,
    message_text,
    text_field,
)
from smsc_simulator.fastpath import (
    FastConnection,
    network_error_tlv,
    receipt_body,
    receipt_text_field,
)
from smsc_simulator.server import Simulator
from tests.test_simulator import account, make_config, receipts

_SEQ = struct.Struct(">I")


def submit_bytes(seq: int, text: str = "hello fast path", registered_delivery: int = 1) -> bytes:
    pdu = SubmitSm(
        sequence_number=seq,
        source_addr="SMSGW",
        source_addr_ton=5,
        destination_addr=f"4915112{seq:05d}",
        dest_addr_ton=1,
        dest_addr_npi=1,
        registered_delivery=registered_delivery,
        short_message=text.encode("ascii"),
    )
    return encode(pdu)


class RawEsme:
    """A bound transceiver that writes bytes exactly as given and reads whole PDUs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def bound(cls, port: int, bind: type[Bind] = BindTransceiver) -> RawEsme:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        esme = cls(reader, writer)
        await esme.write(encode(bind(sequence_number=1, system_id="smsgw", password="secret")))
        resp = await esme.read()
        assert resp.command_id == bind.command_id | 0x80000000
        assert resp.command_status == Status.ROK
        return esme

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, within: float = 5.0) -> Pdu:
        head = await asyncio.wait_for(self.reader.readexactly(4), within)
        (length,) = _SEQ.unpack(head)
        rest = await asyncio.wait_for(self.reader.readexactly(length - 4), within)
        return decode(head + rest)

    async def read_n(self, n: int) -> list[Pdu]:
        return [await self.read() for _ in range(n)]

    async def answer(self, deliver: Pdu, status: int = Status.ROK) -> None:
        await self.write(
            encode(DeliverSmResp(sequence_number=deliver.sequence_number, command_status=status))
        )

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def sims() -> AsyncIterator[list[Simulator]]:
    started: list[Simulator] = []
    try:
        yield started
    finally:
        for sim in started:
            await asyncio.wait_for(sim.stop(), 10)


async def start(started: list[Simulator], config: SimulatorConfig | None = None) -> Simulator:
    sim = Simulator(config or make_config(account(deliver_window=1000)))
    await sim.start()
    started.append(sim)
    return sim


def fast_connections(sim: Simulator) -> list[FastConnection]:
    conns = [h.conn for h in sim.connections]
    assert all(isinstance(c, FastConnection) for c in conns)
    return [c for c in conns if isinstance(c, FastConnection)]


def receipt_of(pdu: Pdu) -> Any:
    assert isinstance(pdu, DeliverSm)
    return parse_receipt(
        pdu.esm_class,
        pdu.short_message,
        pdu.receipted_message_id,
        pdu.message_state,
        pdu.network_error_code,
    )


def split(pdus: list[Pdu]) -> tuple[list[Pdu], list[Pdu]]:
    """(everything but deliver_sm, deliver_sm), each in arrival order."""
    others = [p for p in pdus if not isinstance(p, DeliverSm)]
    delivers = [p for p in pdus if isinstance(p, DeliverSm)]
    return others, delivers


async def until(check: Any, within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# -- bytes: the fast receipt is the general one --------------------------------------------


@pytest.mark.parametrize("tlvs", [True, False])
@pytest.mark.parametrize("text", [True, False])
@pytest.mark.parametrize("state", [*NETWORK_ERROR, MessageState.UNKNOWN])
def test_receipt_body_is_what_the_general_path_encodes(
    tlvs: bool, text: bool, state: MessageState
) -> None:
    if not (text or tlvs):
        return
    submit = decode(submit_bytes(7, "Receipt text @ $ in GSM, longer than twenty"))
    assert isinstance(submit, SubmitSm)
    receipt_text = ReceiptText() if text else None
    general = encode(
        build_receipt(
            receipt_id="5f3a9c01",
            submit=submit,
            state=state,
            submitted=1_790_000_000.0,
            done=1_790_000_061.0,
            text=receipt_text,
            tlvs=tlvs,
        )
    )
    frame = submit_bytes(7, "Receipt text @ $ in GSM, longer than twenty")
    body = frame[16:]
    src = body.index(b"\0") + 1
    dst = body.index(b"\0", src + 2) + 1
    q = body.index(b"\0", dst + 2) + 1
    short_message = b""
    if receipt_text is not None:  # what Account.fast_receipts_due joins
        head, tail = receipt_text.parts(state, 1_790_000_000.0, 1_790_000_061.0)
        field = receipt_text_field(submit.short_message, submit.data_coding)
        short_message = head + b"5f3a9c01" + tail + field
    fast = receipt_body(
        body[dst:q] + body[src:dst],
        short_message,
        b"5f3a9c01" if tlvs else None,
        state,
        network_error_tlv(NETWORK_ERROR.get(state, b"\x03\x00\x00")),
    )
    assert fast == general[16:]


@given(st.binary(max_size=160), st.sampled_from([0x00, 0x01, 0x03, 0x04, 0x08]))
def test_receipt_text_field_reads_like_the_general_path(data: bytes, data_coding: int) -> None:
    assert receipt_text_field(data, data_coding) == (
        text_field(decode_short_message(data, data_coding))
    )


def test_gsm_characters_that_differ_from_ascii_are_decoded() -> None:
    submit = decode(submit_bytes(1, "a@b$c_d"))
    assert isinstance(submit, SubmitSm)
    field = receipt_text_field(submit.short_message, 0)
    assert field == text_field(message_text(submit)[0])
    assert field != b"a@b$c_d"


# -- on the wire ---------------------------------------------------------------------------


async def test_many_submit_sm_in_one_write_with_an_enquire_link_are_answered_in_order(
    sims: list[Simulator],
) -> None:
    sim = await start(sims)
    assert sim.smpp_port is not None
    esme = await RawEsme.bound(sim.smpp_port)
    n = 200
    chunk = [submit_bytes(seq) for seq in range(2, 2 + n)]
    chunk.insert(50, encode(EnquireLink(sequence_number=10_000)))
    await esme.write(b"".join(chunk))
    answers, delivers = split(await esme.read_n(2 * n + 1))
    order = [(p.command_id, p.sequence_number) for p in answers]
    expected = [(int(CommandId.SUBMIT_SM_RESP), seq) for seq in range(2, 2 + n)]
    expected.insert(50, (int(CommandId.ENQUIRE_LINK_RESP), 10_000))
    assert order == expected
    ids = [p.message_id for p in answers if isinstance(p, SubmitSmResp)]
    assert all(p.command_status == Status.ROK for p in answers)
    assert len(set(ids)) == n
    assert len(delivers) == n
    by_id = {}
    for deliver in delivers:
        receipt = receipt_of(deliver)
        assert receipt.state is MessageState.DELIVERED
        assert "text:hello fast path" in deliver.short_message.decode("ascii")
        by_id[receipt.message_id] = deliver
    assert set(by_id) == set(ids)
    # the receipt goes from the part's destination back to its source
    first = answers[0]
    assert isinstance(first, SubmitSmResp)
    deliver = by_id[first.message_id]
    assert isinstance(deliver, DeliverSm)
    assert (deliver.source_addr, deliver.destination_addr) == ("491511200002", "SMSGW")
    assert (deliver.source_addr_ton, deliver.source_addr_npi) == (1, 1)
    assert (deliver.dest_addr_ton, deliver.dest_addr_npi) == (5, 0)
    await esme.write(
        b"".join(encode(DeliverSmResp(sequence_number=d.sequence_number)) for d in delivers)
    )
    conn = fast_connections(sim)[0]
    await until(lambda: not conn.fast_pending and conn.session.in_flight == 0)
    stats = sim.stats_snapshot()
    assert stats["submit_sm"] == n
    assert stats["parts_received"] == n
    assert stats["submit_sm_by_status"] == {"ESME_ROK": n}
    assert stats["receipts_scheduled"] == stats["receipts_sent"] == n
    assert stats["receipts_by_state"] == {"DELIVRD": n}
    assert stats["deliver_sm_resp_by_status"] == {"ESME_ROK": n}
    assert stats["protocol_errors"] == 0 and stats["internal_errors"] == 0
    recent = sim.recent_messages(1)
    assert recent[0]["text"] == "hello fast path"
    assert recent[0]["message_id"] == ids[-1]
    esme.close()


async def test_pdus_cut_across_writes_are_answered_in_order(sims: list[Simulator]) -> None:
    sim = await start(sims)
    assert sim.smpp_port is not None
    esme = await RawEsme.bound(sim.smpp_port)
    stream = b"".join(submit_bytes(seq, registered_delivery=0) for seq in range(2, 32))
    for cut in range(0, len(stream), 37):  # 37 octets: every PDU split, headers too
        await esme.write(stream[cut : cut + 37])
        await asyncio.sleep(0)
    answers = await esme.read_n(30)
    assert [p.sequence_number for p in answers] == list(range(2, 32))
    assert all(isinstance(p, SubmitSmResp) and p.command_status == 0 for p in answers)
    assert sim.stats_snapshot()["receipts_scheduled"] == 0
    esme.close()


async def test_a_fault_flipped_mid_connection_takes_the_general_path_and_back(
    sims: list[Simulator],
) -> None:
    sim = await start(sims)
    assert sim.smpp_port is not None
    esme = await RawEsme.bound(sim.smpp_port)
    await esme.write(submit_bytes(2) + submit_bytes(3))
    _answers, delivers = split(await esme.read_n(4))
    assert len(delivers) == 2
    # Throttle everything; the receipts sent by the fast path are still matched when
    # their responses arrive in a read the general path handles.
    sim.set_faults(replace(sim.faults, throttle=1.0))
    await esme.write(
        submit_bytes(4)
        + b"".join(encode(DeliverSmResp(sequence_number=d.sequence_number)) for d in delivers)
    )
    throttled = await esme.read()
    assert isinstance(throttled, SubmitSmResp)
    assert (throttled.sequence_number, throttled.command_status) == (4, Status.RTHROTTLED)
    conn = fast_connections(sim)[0]
    await until(lambda: not conn.fast_pending and conn.session.in_flight == 0)
    assert sim.stats_snapshot()["deliver_sm_resp_by_status"] == {"ESME_ROK": 2}
    assert sim.stats_snapshot()["unexpected_responses"] == 0
    sim.set_faults(replace(sim.faults, throttle=0.0))
    await esme.write(submit_bytes(5))
    answers, delivers = split(await esme.read_n(2))
    assert answers[0].command_status == Status.ROK and len(delivers) == 1
    stats = sim.stats_snapshot()
    assert stats["submit_sm"] == 4
    assert stats["submit_sm_by_status"] == {"ESME_ROK": 3, "ESME_RTHROTTLED": 1}
    esme.close()


async def test_a_receipt_refused_for_now_is_offered_again(sims: list[Simulator]) -> None:
    config = make_config(account(deliver_window=100, deliver_retry_delay=0.05))
    sim = await start(sims, config)
    assert sim.smpp_port is not None
    esme = await RawEsme.bound(sim.smpp_port)
    await esme.write(submit_bytes(2))
    response, first = await esme.read_n(2)
    assert isinstance(response, SubmitSmResp) and isinstance(first, DeliverSm)
    await esme.answer(first, Status.RX_T_APPN)
    again = await esme.read()
    assert isinstance(again, DeliverSm)
    assert again.sequence_number != first.sequence_number
    assert receipt_of(again).message_id == response.message_id
    await esme.answer(again)
    conn = fast_connections(sim)[0]
    await until(lambda: not conn.fast_pending)
    stats = sim.stats_snapshot()
    assert stats["deliver_sm_retried"] == 1
    assert stats["deliver_sm_resp_by_status"] == {"ESME_ROK": 1, "ESME_RX_T_APPN": 1}
    assert stats["receipts_sent"] == 1  # one receipt, offered twice
    esme.close()


async def test_an_unanswered_receipt_times_out_and_is_sent_again(sims: list[Simulator]) -> None:
    config = make_config(account(deliver_window=100))
    config = replace(config, smpp=replace(config.smpp, response_timeout=0.2))
    sim = await start(sims, config)
    assert sim.smpp_port is not None
    esme = await RawEsme.bound(sim.smpp_port)
    await esme.write(submit_bytes(2))
    response, first = await esme.read_n(2)
    again = await esme.read(within=3.0)  # not answered: offered again after the timeout
    assert isinstance(again, DeliverSm) and isinstance(response, SubmitSmResp)
    assert receipt_of(again).message_id == response.message_id
    assert again.sequence_number != first.sequence_number
    await esme.answer(again)
    conn = fast_connections(sim)[0]
    await until(lambda: not conn.fast_pending and conn.session.in_flight == 0)
    assert sim.stats_snapshot()["deliver_sm_timeouts"] >= 1
    esme.close()


async def test_receipts_in_flight_on_a_lost_link_go_to_another_bind(
    sims: list[Simulator],
) -> None:
    sim = await start(sims)
    assert sim.smpp_port is not None
    first = await RawEsme.bound(sim.smpp_port)
    await first.write(b"".join(submit_bytes(seq) for seq in range(2, 7)))
    _answers, delivers = split(await first.read_n(10))
    assert len(delivers) == 5
    second = await RawEsme.bound(sim.smpp_port)
    first.writer.transport.abort()  # the receipts are in flight, unanswered
    again = await second.read_n(5)
    assert sorted(receipt_of(d).message_id for d in again) == sorted(
        receipt_of(d).message_id for d in delivers
    )
    for deliver in again:
        await second.answer(deliver)
    await until(lambda: sim.stats_snapshot()["deliver_sm_resp_by_status"] == {"ESME_ROK": 5})
    second.close()


async def test_tlv_and_udh_submits_between_plain_ones_keep_their_order(
    sims: list[Simulator],
) -> None:
    sim = await start(sims, make_config(account(receipts=receipts(), deliver_window=100)))
    assert sim.smpp_port is not None
    esme = await RawEsme.bound(sim.smpp_port)
    udh = SubmitSm(
        sequence_number=3,
        source_addr="SMSGW",
        destination_addr="491511234567",
        esm_class=0x40,
        registered_delivery=0,
        short_message=b"\x05\x00\x03\x2a\x02\x01part one",
    )
    payload = SubmitSm(
        sequence_number=4,
        source_addr="SMSGW",
        destination_addr="491511234567",
        tlvs=((0x0424, b"payload text"),),
    )
    await esme.write(submit_bytes(2, registered_delivery=0) + encode(udh) + encode(payload))
    answers = await esme.read_n(3)
    assert [p.sequence_number for p in answers] == [2, 3, 4]
    assert all(p.command_status == Status.ROK for p in answers)
    stats = sim.stats_snapshot()
    assert stats["concat_parts_received"] == 1
    assert stats["payload_messages_received"] == 1
    assert stats["submit_sm"] == 3
    esme.close()


async def test_nothing_after_an_unbind_is_read(sims: list[Simulator]) -> None:
    sim = await start(sims)
    assert sim.smpp_port is not None
    esme = await RawEsme.bound(sim.smpp_port)
    await esme.write(submit_bytes(2))
    _response, deliver = await esme.read_n(2)
    assert isinstance(deliver, DeliverSm)
    # The unbind comes first: the deliver_sm_resp behind it in the same write is not read,
    # so the receipt is still undelivered and waits for the next receiver.
    await esme.write(
        encode(Unbind(sequence_number=3))
        + encode(DeliverSmResp(sequence_number=deliver.sequence_number))
    )
    unbind_resp = await esme.read()
    assert unbind_resp.command_id == CommandId.UNBIND_RESP
    await until(lambda: not sim.connections)
    stats = sim.stats_snapshot()
    assert stats["deliver_sm_resp_by_status"] == {}
    assert stats["receipts_pending"] == 1
    again = await RawEsme.bound(sim.smpp_port)
    redelivered = await again.read()
    assert isinstance(redelivered, DeliverSm)
    assert receipt_of(redelivered).message_id == receipt_of(deliver).message_id
    again.close()


async def test_held_receipts_and_an_mo_between_them_leave_in_order(
    sims: list[Simulator],
) -> None:
    sim = await start(sims)
    assert sim.smpp_port is not None
    sender = await RawEsme.bound(sim.smpp_port, BindTransmitter)  # no receiver: all held
    await sender.write(submit_bytes(2))
    first = await sender.read()
    sim.send_mo(sim.accounts["smsgw"], source="491700000001", destination="SMSGW", text="MO")
    await sender.write(submit_bytes(3))
    second = await sender.read()
    assert isinstance(first, SubmitSmResp) and isinstance(second, SubmitSmResp)
    assert sim.stats_snapshot()["receipts_pending"] == 2
    receiver = await RawEsme.bound(sim.smpp_port)
    delivered = await receiver.read_n(3)
    assert all(isinstance(p, DeliverSm) for p in delivered)
    assert receipt_of(delivered[0]).message_id == first.message_id
    assert isinstance(delivered[1], DeliverSm) and delivered[1].short_message == b"MO"
    assert receipt_of(delivered[2]).message_id == second.message_id
    for deliver in delivered:
        await receiver.answer(deliver)
    await until(lambda: sim.stats_snapshot()["deliver_sm_resp_by_status"] == {"ESME_ROK": 3})
    stats = sim.stats_snapshot()
    assert (stats["receipts_sent"], stats["mo_parts_sent"]) == (2, 1)
    sender.close()
    receiver.close()
