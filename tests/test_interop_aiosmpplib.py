"""aiosmpplib's ESME (an independent asyncio SMPP client) against our SMSC side.

The ESME binds as a transceiver, submits GSM 03.38 and UCS-2 messages, gets message ids in
submit_sm_resp, receives the delivery receipts (and aiosmpplib's own correlator matches each
receipt to its submit by message id), receives an MO, and unbinds. The SMSC side is
parametrised: the bare Session in the SMSC role, and the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TypeVar

import pytest
from aiosmpplib import (
    ESME,
    NPI,
    TON,
    AbstractHook,
    BindMode,
    BindTransceiverResp,
    DeliverSm,
    PhoneNumber,
    SmppCommandStatus,
    SmppMessage,
    SmppSessionState,
    SubmitSm,
    SubmitSmResp,
)
from aiosmpplib.broker import SimpleBroker

from tests.interop_helpers import (
    SmscUnderTest,
    smsc_under_test,
    wait_until,
)

pytestmark = pytest.mark.interop

GSM_TEXT = "Hello @ interop {€} ~"
UCS2_TEXT = "Привет, мир! 你好"
MO_TEXT = "MO reply @ 1€"
LONG_TEXT = "Longer than 254 octets, so aiosmpplib sends it in message_payload. " * 5

M = TypeVar("M", bound=SmppMessage)


class RecordingHook(AbstractHook):  # type: ignore[misc]
    """Keeps every message aiosmpplib parsed, and the raw PDUs it could not parse."""

    def __init__(self) -> None:
        self.messages: list[SmppMessage] = []
        self.unparsed: list[bytes] = []
        self.send_errors: list[Exception] = []

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        pass

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        if smpp_message is None:
            self.unparsed.append(pdu)
        else:
            self.messages.append(smpp_message)

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        self.send_errors.append(error)

    def of_type(self, kind: type[M]) -> list[M]:
        return [m for m in self.messages if isinstance(m, kind)]


@contextlib.asynccontextmanager
async def running_esme(esme: ESME) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(esme.start())
    try:
        yield task
    finally:
        try:
            await asyncio.wait_for(esme.stop(), 5.0)
            await asyncio.wait_for(task, 5.0)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@pytest.fixture(params=["session", "simulator"])
async def smsc(request: pytest.FixtureRequest) -> AsyncIterator[SmscUnderTest]:
    async with smsc_under_test(request.param) as target:
        yield target


async def test_aiosmpplib_esme_submits_and_receives_receipts_and_mo(smsc: SmscUnderTest) -> None:
    hook = RecordingHook()
    broker = SimpleBroker()
    esme = ESME(
        smsc_host=smsc.host,
        smsc_port=smsc.port,
        system_id="smsgw",
        password="secret",
        bind_mode=BindMode.TRANSCEIVER,
        hook=hook,
        broker=broker,
        enquire_link_interval=0.3,
        socket_timeout=5.0,
        log_level=logging.WARNING,
    )
    async with running_esme(esme):
        await wait_until(lambda: bool(hook.of_type(BindTransceiverResp)), what="bind_resp")
        bind_resp = hook.of_type(BindTransceiverResp)[0]
        assert bind_resp.command_status == SmppCommandStatus.ESME_ROK
        assert esme.session_state == SmppSessionState.BOUND_TRX

        source = PhoneNumber("SMSGW", TON.ALPHANUMERIC, NPI.UNKNOWN)
        destination = PhoneNumber("447700900123", TON.INTERNATIONAL, NPI.ISDN)
        await broker.enqueue(
            SubmitSm(
                short_message=GSM_TEXT,
                source=source,
                destination=destination,
                registered_delivery=1,
                log_id="gsm",
            )
        )
        await broker.enqueue(
            SubmitSm(
                short_message=UCS2_TEXT,
                source=source,
                destination=destination,
                registered_delivery=1,
                encoding="ucs2",
                log_id="ucs2",
            )
        )

        await broker.enqueue(
            SubmitSm(
                message_payload=LONG_TEXT,
                source=source,
                destination=destination,
                registered_delivery=1,
                log_id="payload",
            )
        )

        await wait_until(lambda: len(hook.of_type(SubmitSmResp)) == 3, what="3 submit_sm_resp")
        resps = {r.log_id: r for r in hook.of_type(SubmitSmResp)}
        assert set(resps) == {"gsm", "ucs2", "payload"}
        for resp in resps.values():
            assert resp.command_status == SmppCommandStatus.ESME_ROK
            assert resp.message_id
        assert sorted(await smsc.received_texts()) == sorted([GSM_TEXT, UCS2_TEXT, LONG_TEXT])

        def receipts() -> list[DeliverSm]:
            return [d for d in hook.of_type(DeliverSm) if d.is_receipt()]

        await wait_until(lambda: len(receipts()) == 3, what="3 receipts")
        for receipt in receipts():
            fields = receipt.parse_receipt()
            assert fields["stat"] == "DELIVRD"
            # aiosmpplib matched the receipt's id to the submit_sm_resp it saw: log_id is set.
            assert receipt.log_id in resps, fields
            assert fields["id"] == resps[receipt.log_id].message_id

        await smsc.inject_mo("447700900555", "SMSGW", MO_TEXT)
        await smsc.inject_mo("447700900556", "SMSGW", UCS2_TEXT, ucs2=True)

        def mos() -> list[DeliverSm]:
            return [d for d in hook.of_type(DeliverSm) if not d.is_receipt()]

        await wait_until(lambda: len(mos()) == 2, what="2 MO")
        by_source = {m.source.number: m for m in mos()}
        assert by_source["447700900555"].short_message == MO_TEXT
        assert by_source["447700900556"].short_message == UCS2_TEXT
        assert by_source["447700900556"].encoding == "ucs2"

        # Idle long enough for aiosmpplib's enquire_link to be answered, and still bound.
        await asyncio.sleep(0.5)
        assert esme.session_state == SmppSessionState.BOUND_TRX
        assert await smsc.problems() == []
    assert hook.unparsed == [], [p.hex() for p in hook.unparsed]
    assert hook.send_errors == []
