"""smpplib (an independent, synchronous SMPP client) against our SMSC side.

smpplib blocks on its socket, so each scenario runs in a worker thread (with socket
timeouts, so it cannot hang) while the SMSC runs in the test's event loop; an MO is injected
from the thread through ``run_coroutine_threadsafe``. The SMSC side is parametrised: the bare
Session in the SMSC role, and the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

from tests.interop_helpers import SmscUnderTest, smsc_under_test

pytestmark = pytest.mark.interop

GSM_TEXT = "Hello @ interop {€} ~"
UCS2_TEXT = "Привет, мир! 你好"
MO_TEXT = "MO reply @ 1€"

SOCKET_TIMEOUT = 1.0
"""smpplib's socket timeout: the longest one blocking read can take."""
SCENARIO_TIMEOUT = 15.0
"""Bound on a whole scenario thread; every wait inside is shorter."""


@pytest.fixture(params=["session", "simulator"])
async def smsc(request: pytest.FixtureRequest) -> AsyncIterator[SmscUnderTest]:
    async with smsc_under_test(request.param) as target:
        yield target


class Recorder:
    """smpplib's handlers, keeping what they are given."""

    def __init__(self) -> None:
        self.sent: list[Any] = []  # submit_sm_resp PDUs
        self.received: list[Any] = []  # deliver_sm PDUs

    def on_sent(self, pdu: Any, **kwargs: Any) -> None:
        self.sent.append(pdu)

    def on_received(self, pdu: Any, **kwargs: Any) -> int:
        self.received.append(pdu)
        return int(smpplib.consts.SMPP_ESME_ROK)


@contextlib.contextmanager
def client_for(smsc: SmscUnderTest, recorder: Recorder) -> Iterator[smpplib.client.Client]:
    client = smpplib.client.Client(
        smsc.host, smsc.port, timeout=SOCKET_TIMEOUT, allow_unknown_opt_params=True
    )
    client.set_message_sent_handler(recorder.on_sent)
    client.set_message_received_handler(recorder.on_received)
    client.connect()
    try:
        yield client
    finally:
        client.disconnect()


def read_until(
    clients: list[smpplib.client.Client], done: Callable[[], bool], what: str, within: float = 5.0
) -> None:
    """Let smpplib read and act (answering deliver_sm and enquire_link) until ``done``."""
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {within} s")
        for client in clients:
            # A read that times out makes smpplib send enquire_link, which must be answered.
            client.read_once()


def read_response(client: smpplib.client.Client, command: str, within: float = 5.0) -> Any:
    """Read until the ``command`` response arrives, answering the SMSC's requests meanwhile
    (its enquire_link, a receipt) the way smpplib's read_once does."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pdu = client.read_pdu()
        if pdu.command == command:
            return pdu
        if pdu.command == "deliver_sm":
            client._message_received(pdu)
        elif pdu.command == "enquire_link":
            client._enquire_link_received(pdu)
    raise AssertionError(f"no {command} within {within} s")


def unbind(client: smpplib.client.Client) -> None:
    client.send_pdu(smpplib.smpp.make_pdu("unbind", client=client))
    answer = read_response(client, "unbind_resp")
    assert answer.status == smpplib.consts.SMPP_ESME_ROK


def submit(client: smpplib.client.Client, text: str, **fields: Any) -> None:
    parts, encoding, esm_class = smpplib.gsm.make_parts(text)
    assert len(parts) == 1
    client.send_message(
        source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
        source_addr_npi=smpplib.consts.SMPP_NPI_UNK,
        source_addr="SMSGW",
        dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
        dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
        destination_addr="447700900123",
        short_message=parts[0],
        data_coding=encoding,
        esm_class=esm_class,
        registered_delivery=1,
        **fields,
    )


def receipt_ids(recorder: Recorder) -> dict[str, Any]:
    receipts = [p for p in recorder.received if p.esm_class & 0x3C == 0x04]
    return {p.receipted_message_id.decode(): p for p in receipts}


def decoded(pdu: Any) -> str:
    if pdu.data_coding == smpplib.consts.SMPP_ENCODING_ISO10646:
        return bytes(pdu.short_message).decode("utf-16-be")
    table = smpplib.gsm.GSM_CHARACTER_TABLE
    out = []
    escaped = False
    for octet in bytes(pdu.short_message):
        if octet == 0x1B:
            escaped = True
            continue
        out.append(table[octet + 0x80] if escaped else table[octet])
        escaped = False
    return "".join(out)


async def run_in_thread(scenario: Callable[[], None]) -> None:
    await asyncio.wait_for(asyncio.to_thread(scenario), SCENARIO_TIMEOUT)


async def test_smpplib_transceiver_submits_gets_receipts_and_mo(smsc: SmscUnderTest) -> None:
    loop = asyncio.get_running_loop()

    def inject(source: str, text: str, ucs2: bool = False) -> None:
        future = asyncio.run_coroutine_threadsafe(smsc.inject_mo(source, "SMSGW", text, ucs2), loop)
        future.result(5.0)

    def scenario() -> None:
        recorder = Recorder()
        with client_for(smsc, recorder) as client:
            resp = client.bind_transceiver(system_id="smsgw", password="secret")
            assert resp.status == smpplib.consts.SMPP_ESME_ROK
            assert client.state == smpplib.consts.SMPP_CLIENT_STATE_BOUND_TRX

            submit(client, GSM_TEXT)
            submit(client, UCS2_TEXT)
            read_until([client], lambda: len(recorder.sent) == 2, "2 submit_sm_resp")
            ids = [p.message_id.decode() for p in recorder.sent]
            assert all(p.status == smpplib.consts.SMPP_ESME_ROK for p in recorder.sent)
            assert len(set(ids)) == 2 and all(ids)

            read_until([client], lambda: len(receipt_ids(recorder)) == 2, "2 receipts")
            receipts = receipt_ids(recorder)
            assert set(receipts) == set(ids)
            for message_id, receipt in receipts.items():
                assert receipt.message_state == 2  # DELIVERED
                text = bytes(receipt.short_message).decode("latin-1")
                assert f"id:{message_id} " in text
                assert "stat:DELIVRD" in text

            inject("447700900555", MO_TEXT)
            inject("447700900556", UCS2_TEXT, ucs2=True)

            def mos() -> list[Any]:
                return [p for p in recorder.received if p.esm_class & 0x3C == 0]

            read_until([client], lambda: len(mos()) == 2, "2 MO")
            by_source = {p.source_addr.decode(): p for p in mos()}
            assert decoded(by_source["447700900555"]) == MO_TEXT
            assert decoded(by_source["447700900556"]) == UCS2_TEXT

            # smpplib's keep-alive (what it sends on a read timeout) is answered.
            client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
            answer = read_response(client, "enquire_link_resp")
            assert answer.status == smpplib.consts.SMPP_ESME_ROK
            assert answer.sequence == client.sequence
            unbind(client)

    await run_in_thread(scenario)
    assert sorted(await smsc.received_texts()) == sorted([GSM_TEXT, UCS2_TEXT])
    assert await smsc.problems() == []


async def test_smpplib_transmitter_and_receiver_pair(smsc: SmscUnderTest) -> None:
    """The pre-transceiver setup: submits on a transmitter, receipts on a receiver."""

    def scenario() -> None:
        rx_recorder = Recorder()
        tx_recorder = Recorder()
        with client_for(smsc, rx_recorder) as rx, client_for(smsc, tx_recorder) as tx:
            rx.bind_receiver(system_id="smsgw", password="secret")
            tx.bind_transmitter(system_id="smsgw", password="secret")
            assert rx.state == smpplib.consts.SMPP_CLIENT_STATE_BOUND_RX
            assert tx.state == smpplib.consts.SMPP_CLIENT_STATE_BOUND_TX

            submit(tx, "via the transmitter")
            read_until([tx], lambda: len(tx_recorder.sent) == 1, "submit_sm_resp")
            message_id = tx_recorder.sent[0].message_id.decode()
            read_until([rx], lambda: message_id in receipt_ids(rx_recorder), "receipt on rx")
            assert tx_recorder.received == []  # nothing is delivered to a transmitter
            unbind(tx)
            unbind(rx)

    await run_in_thread(scenario)
    assert "via the transmitter" in await smsc.received_texts()
    assert await smsc.problems() == []


async def test_smpplib_wrong_password_gets_a_bind_error(smsc: SmscUnderTest) -> None:
    def scenario() -> None:
        with client_for(smsc, Recorder()) as client:
            with pytest.raises(smpplib.exceptions.PDUError) as raised:
                client.bind_transceiver(system_id="smsgw", password="wrong")
            status = raised.value.args[1]
            assert status in (
                smpplib.consts.SMPP_ESME_RINVPASWD,
                smpplib.consts.SMPP_ESME_RBINDFAIL,
            )
            assert client.state == smpplib.consts.SMPP_CLIENT_STATE_OPEN

    await run_in_thread(scenario)
    assert await smsc.problems() == []
