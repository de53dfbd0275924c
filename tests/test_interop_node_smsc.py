"""Our ESME side (gateway/binds.py CarrierBind over gateway/smpp) against an independent SMSC.

The SMSC is tests/interop/mini_smsc.js, written with the npm ``smpp`` package: it checks the
bind credentials, answers submit_sm with a message id, sends a delivery receipt back, sends
MO deliver_sm on request, answers and sends enquire_link, and prints what it saw as JSON
lines. Nothing here shares code with our codec, so agreement means both speak SMPP 3.4.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from gateway.binds import BindSettings, BindState, CarrierBind
from gateway.smpp.constants import DataCoding, EsmClass, RegisteredDelivery, Status
from gateway.smpp.pdu import DeliverSm, Pdu, SubmitSm, SubmitSmResp
from gateway.smpp.receipt import MessageState, parse_receipt
from gateway.smpp.session import BindType, RequestTimedOut, ResponseReceived, SessionConfig
from gateway.smpp.text import decode_short_message, gsm7_encode
from tests.interop_helpers import NodePeer, requires_node, wait_until

pytestmark = [pytest.mark.interop, requires_node]

BIND_TIMEOUT = 5.0
"""Seconds to wait for a bind (or a re-bind) to come up against a local node SMSC."""

GSM_TEXT = "Hello @ interop {€} ~"
"""GSM 03.38 with '@' (septet 0x00) and extension characters (ESC pairs)."""
UCS2_TEXT = "Привет, мир! 你好"


@dataclass
class RecordingListener:
    """BindListener that queues what the bind reports and answers every deliver_sm ROK."""

    responses: asyncio.Queue[ResponseReceived] = field(default_factory=asyncio.Queue)
    requests: asyncio.Queue[Pdu] = field(default_factory=asyncio.Queue)
    timeouts: list[RequestTimedOut] = field(default_factory=list)
    ups: int = 0
    downs: int = 0
    answer: bool = True

    def bind_up(self, bind: CarrierBind) -> None:
        self.ups += 1

    def bind_down(self, bind: CarrierBind, lost: list[RequestTimedOut]) -> None:
        self.downs += 1

    def response(self, bind: CarrierBind, event: ResponseReceived) -> None:
        self.responses.put_nowait(event)

    def timeout(self, bind: CarrierBind, event: RequestTimedOut) -> None:
        self.timeouts.append(event)

    def request(self, bind: CarrierBind, pdu: Pdu) -> None:
        self.requests.put_nowait(pdu)
        if self.answer and pdu.RESPONSE is not None:
            bind.respond(pdu.make_response())


def settings_for(port: int, **overrides: object) -> BindSettings:
    values: dict[str, object] = {
        "carrier": "interop",
        "name": "node-smsc",
        "host": "127.0.0.1",
        "port": port,
        "system_id": "smsgw",
        "password": "secret",
        "bind_type": BindType.TRX,
        "session": SessionConfig(
            window=10, response_timeout=3.0, enquire_link_interval=0.3, bind_timeout=3.0
        ),
        "reconnect_initial": 0.05,
        "reconnect_max": 0.4,
        "reconnect_jitter": 0.1,
    }
    values.update(overrides)
    return BindSettings(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running_bind(
    settings: BindSettings, listener: RecordingListener
) -> AsyncIterator[CarrierBind]:
    bind = CarrierBind(settings, listener)
    bind.start()
    try:
        yield bind
    finally:
        await asyncio.wait_for(bind.stop(drain=2.0), 5.0)


def state_of(bind: CarrierBind) -> BindState:
    """The state now (a call, so a type checker does not keep an earlier narrowing)."""
    return bind.state


async def start_smsc(*args: str) -> tuple[NodePeer, int]:
    peer = NodePeer("mini_smsc.js", *args)
    await peer.start()
    try:
        listening = await peer.expect("listening", within=10.0)
    except BaseException:
        await peer.stop()
        raise
    return peer, int(listening["port"])


def submit_sm(text: str, *, ucs2: bool = False, receipt: bool = True) -> SubmitSm:
    return SubmitSm(
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="SMSGW",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="447700900123",
        registered_delivery=(
            RegisteredDelivery.SUCCESS_OR_FAILURE if receipt else RegisteredDelivery.NONE
        ),
        data_coding=DataCoding.UCS2 if ucs2 else DataCoding.SMSC_DEFAULT,
        short_message=text.encode("utf-16-be") if ucs2 else gsm7_encode(text),
    )


async def next_request(listener: RecordingListener) -> DeliverSm:
    pdu = await asyncio.wait_for(listener.requests.get(), 5.0)
    assert isinstance(pdu, DeliverSm), pdu
    return pdu


async def test_carrier_bind_submits_and_takes_receipts_and_mo_from_node_smsc() -> None:
    peer, port = await start_smsc()
    async with peer:
        listener = RecordingListener()
        keepalive = SessionConfig(response_timeout=1.0, enquire_link_interval=0.2, bind_timeout=3.0)
        async with running_bind(settings_for(port, session=keepalive), listener) as bind:
            await asyncio.wait_for(bind.became_bound.wait(), BIND_TIMEOUT)
            bound = await peer.expect("bind", command="bind_transceiver", status=0)
            assert bound["system_id"] == "smsgw"
            assert bound["interface_version"] == 0x34
            assert bind.conn is not None and bind.conn.session.system_id == "nodesmsc"

            # Submit GSM 03.38 and UCS-2; node decodes our bytes to the same text.
            bind.submit(submit_sm(GSM_TEXT), context="gsm")
            bind.submit(submit_sm(UCS2_TEXT, ucs2=True), context="ucs2")
            ids: dict[str, str] = {}
            for _ in range(2):
                event = await asyncio.wait_for(listener.responses.get(), 5.0)
                assert isinstance(event.response, SubmitSmResp)
                assert event.response.command_status == Status.ROK
                assert event.response.message_id
                ids[event.context] = event.response.message_id
            seen_gsm = await peer.expect("submit_sm", message_id=ids["gsm"])
            assert seen_gsm["text"] == GSM_TEXT
            assert seen_gsm["data_coding"] == DataCoding.SMSC_DEFAULT
            assert seen_gsm["registered_delivery"] == 1
            assert seen_gsm["source_addr"] == "SMSGW"
            assert seen_gsm["destination_addr"] == "447700900123"
            seen_ucs2 = await peer.expect("submit_sm", message_id=ids["ucs2"])
            assert seen_ucs2["text"] == UCS2_TEXT
            assert seen_ucs2["data_coding"] == DataCoding.UCS2

            # One receipt per submit, read by our receipt parser, answered ROK.
            receipts = {}
            for _ in range(2):
                pdu = await next_request(listener)
                receipt = parse_receipt(
                    pdu.esm_class,
                    pdu.short_message,
                    pdu.receipted_message_id,
                    pdu.message_state,
                    pdu.network_error_code,
                )
                assert receipt is not None, pdu
                receipts[receipt.message_id] = receipt
            assert set(receipts) == set(ids.values())
            for receipt in receipts.values():
                assert receipt.state is MessageState.DELIVERED
                assert receipt.stat == "DELIVRD"
                assert receipt.network_error is not None
                assert receipt.network_error.network_type == 3
                assert receipt.submit_date is not None
            for message_id in ids.values():
                resp = await peer.expect("resp", what="receipt", message_id=message_id)
                assert resp["command"] == "deliver_sm_resp"
                assert resp["status"] == 0

            # MO in GSM 03.38 and in UCS-2, sent by node on request.
            peer.send({"cmd": "mo", "source_addr": "447700900555", "text": "MO @ {ok}"})
            mo = await next_request(listener)
            assert mo.esm_class & EsmClass.MESSAGE_TYPE_MASK == 0
            assert mo.source_addr == "447700900555"
            assert mo.source_addr_ton == 1
            assert decode_short_message(mo.short_message, mo.data_coding) == "MO @ {ok}"
            peer.send({"cmd": "mo", "text": "ответ 👍", "data_coding": 8})
            mo = await next_request(listener)
            assert mo.data_coding == DataCoding.UCS2
            assert decode_short_message(mo.short_message, mo.data_coding) == "ответ 👍"
            for _ in range(2):
                resp = await peer.expect("resp", what="mo")
                assert resp["command"] == "deliver_sm_resp"
                assert resp["status"] == 0

            # Keep-alive both ways: node's is answered by us; ours (every 0.2 s idle) is
            # answered by node, or the 1 s response timeout would drop and redo the bind.
            peer.send({"cmd": "enquire_link"})
            resp = await peer.expect("resp", what="enquire_link")
            assert resp["command"] == "enquire_link_resp"
            assert resp["status"] == 0
            await asyncio.sleep(1.3)
            assert len(peer.matching("enquire_link")) >= 4
            assert bind.state is BindState.BOUND
            assert bind.connects == 1
        # Leaving running_bind stopped the bind: node saw the unbind and answered it.
        await peer.expect("unbind")
        await peer.expect("close")
        assert state_of(bind) is BindState.STOPPED
        assert listener.timeouts == []
        assert not peer.matching("pdu"), "node saw PDUs it did not expect"
        assert not peer.matching("error")


async def test_carrier_bind_answers_mo_sent_right_after_bind_resp() -> None:
    """Some SMSCs push queued MO the moment the bind_resp is out; none may be lost."""
    peer, port = await start_smsc("--mo-on-bind", "queued MO")
    async with peer:
        listener = RecordingListener()
        async with running_bind(settings_for(port), listener) as bind:
            await asyncio.wait_for(bind.became_bound.wait(), BIND_TIMEOUT)
            mo = await next_request(listener)
            assert decode_short_message(mo.short_message, mo.data_coding) == "queued MO"
            resp = await peer.expect("resp", what="mo")
            assert resp["status"] == 0


async def test_carrier_bind_reports_refused_bind_and_keeps_retrying() -> None:
    peer, port = await start_smsc()
    async with peer:
        listener = RecordingListener()
        async with running_bind(settings_for(port, password="wrong"), listener) as bind:
            first = await peer.expect("bind")
            assert first["status"] == Status.RINVPASWD
            await wait_until(
                lambda: "ESME_RINVPASWD" in bind.last_error, what="bind error recorded"
            )
            # The bind backs off and tries again by itself; it never reports bound.
            await peer.expect("bind", status=Status.RINVPASWD)
            assert not bind.became_bound.is_set()
            assert listener.ups == 0


async def test_carrier_bind_reconnects_after_smsc_is_killed_and_restarted() -> None:
    peer, port = await start_smsc()
    listener = RecordingListener()
    try:
        async with running_bind(settings_for(port), listener) as bind:
            await asyncio.wait_for(bind.became_bound.wait(), BIND_TIMEOUT)
            await peer.expect("bind", status=0)
            connects_before = bind.connects

            await peer.kill()  # no unbind, no FIN from a process that closes politely
            await wait_until(lambda: listener.downs == 1, what="bind_down after kill")
            assert not bind.bound

            # The same port again, as a carrier's SMSC coming back after a restart.
            peer, new_port = await start_smsc("--port", str(port))
            assert new_port == port
            await peer.expect("bind", status=0, within=BIND_TIMEOUT)
            await asyncio.wait_for(bind.became_bound.wait(), BIND_TIMEOUT)
            await wait_until(lambda: bind.bound, what="bound again")
            assert bind.connects > connects_before
            assert listener.ups == 2

            # And it works: a submit gets its response and its receipt.
            bind.submit(submit_sm("after restart"), context="again")
            event = await asyncio.wait_for(listener.responses.get(), 5.0)
            assert isinstance(event.response, SubmitSmResp)
            assert event.response.command_status == Status.ROK
            receipt = await next_request(listener)
            assert receipt.receipted_message_id == event.response.message_id
        await peer.expect("unbind")
    finally:
        await peer.stop()
