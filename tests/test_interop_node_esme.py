"""The npm ``smpp`` client (tests/interop/esme_client.js, run by node) against our SMSC side.

node binds as a transceiver, submits GSM 03.38 and UCS-2 text (encoded by node), reports
the message ids, the receipts and an MO it receives (decoded by node), keeps the link alive
with enquire_link, and unbinds. The SMSC side is parametrised: the bare Session in the SMSC
role, and the simulator.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from gateway.smpp.constants import Status
from tests.interop_helpers import (
    NodePeer,
    SmscUnderTest,
    requires_node,
    smsc_under_test,
)

pytestmark = [pytest.mark.interop, requires_node]

GSM_TEXT = "Hello @ interop {€} ~"
UCS2_TEXT = "Привет, мир! 你好"
MO_TEXT = "MO reply @ 1€"


@pytest.fixture(params=["session", "simulator"])
async def smsc(request: pytest.FixtureRequest) -> AsyncIterator[SmscUnderTest]:
    async with smsc_under_test(request.param) as target:
        yield target


async def test_node_esme_submits_and_receives_receipts_and_mo(smsc: SmscUnderTest) -> None:
    submits = [
        {"ref": "gsm", "text": GSM_TEXT, "data_coding": 0},
        {"ref": "ucs2", "text": UCS2_TEXT, "data_coding": 8},
    ]
    args = ["--port", str(smsc.port), "--submit", json.dumps(submits), "--enquire-link-ms", "100"]
    async with NodePeer("esme_client.js", *args) as node:
        bound = await node.expect("bound")
        assert bound["command"] == "bind_transceiver_resp"

        ids = {}
        for ref in ("gsm", "ucs2"):
            resp = await node.expect("submit_sm_resp", ref=ref)
            assert resp["status"] == Status.ROK
            assert resp["message_id"]
            ids[ref] = resp["message_id"]
        assert len(set(ids.values())) == 2
        assert sorted(await smsc.received_texts()) == sorted([GSM_TEXT, UCS2_TEXT])

        for message_id in ids.values():
            receipt = await node.expect("deliver_sm", receipt=True, receipted_message_id=message_id)
            assert receipt["message_state"] == 2  # DELIVERED
            assert receipt["text"].startswith(f"id:{message_id} ")
            assert "stat:DELIVRD" in receipt["text"]

        await smsc.inject_mo("447700900555", "SMSGW", MO_TEXT)
        mo = await node.expect("deliver_sm", receipt=False, source_addr="447700900555")
        assert mo["text"] == MO_TEXT
        assert mo["data_coding"] == 0
        await smsc.inject_mo("447700900556", "SMSGW", UCS2_TEXT, ucs2=True)
        mo = await node.expect("deliver_sm", receipt=False, source_addr="447700900556")
        assert mo["text"] == UCS2_TEXT
        assert mo["data_coding"] == 8

        for _ in range(2):
            keepalive = await node.expect("enquire_link_resp")
            assert keepalive["status"] == Status.ROK

        node.send({"cmd": "unbind"})
        unbound = await node.expect("unbind_resp")
        assert unbound["status"] == Status.ROK
        await node.expect("close")
        assert not node.matching("generic_nack")
        assert not node.matching("error")
    assert await smsc.problems() == []


async def test_node_esme_with_a_wrong_password_gets_a_bind_error(smsc: SmscUnderTest) -> None:
    args = ["--port", str(smsc.port), "--password", "wrong"]
    async with NodePeer("esme_client.js", *args) as node:
        failed = await node.expect("bind_failed")
        assert failed["status"] in (Status.RINVPASWD, Status.RBINDFAIL)
        assert failed["command"] == "bind_transceiver_resp"
        await node.expect("close")
        assert not node.matching("bound")
    assert await smsc.problems() == []
