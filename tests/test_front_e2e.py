"""The SMPP server front end to end: our own test ESME binds to smsgw, submits, and gets
receipts carrying smsgw's ids; limits, held receipts, restart. (The independent ESMEs are
in tests/test_front_interop.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.smpp.constants import EsmClass, Status, Tag
from gateway.smpp.pdu import SubmitSm
from gateway.smpp.receipt import MessageState
from tests.e2e_helpers import simulator_config
from tests.front_helpers import ACCOUNT, PASSWORD, FrontLab, front_section
from tests.smpp_client import EsmeClient


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[FrontLab]:
    lab = FrontLab(tmp_path, simulator_config(), front_section())
    await lab.start()
    yield lab
    await lab.stop()


async def esme(lab: FrontLab, bind_type: str = "trx", password: str = PASSWORD) -> EsmeClient:
    return await EsmeClient.bound(lab.front_port, bind_type, ACCOUNT, password)


def submit(text: str, to: str = "33612345678", **fields: object) -> SubmitSm:
    return SubmitSm(
        source_addr_ton=5,
        source_addr="ACME",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=to,
        registered_delivery=1,
        short_message=text.encode("ascii"),
        **fields,  # type: ignore[arg-type]
    )


async def test_submit_reaches_the_carrier_and_the_receipt_carries_smsgws_id(
    lab: FrontLab,
) -> None:
    client = await esme(lab)
    try:
        resp = await client.submit(submit("hello from upstream"))
        assert resp.command_status == Status.ROK
        message_id = resp.message_id  # type: ignore[attr-defined]
        assert len(message_id) == 26
        receipt = await client.next_deliver(within=10)
        assert receipt.esm_class & EsmClass.SMSC_DELIVERY_RECEIPT
        assert receipt.receipted_message_id == message_id
        assert receipt.message_state == MessageState.DELIVERED
        text = receipt.short_message.decode("latin-1")  # type: ignore[attr-defined]
        assert text.startswith(f"id:{message_id} sub:001 dlvrd:001 submit date:")
        assert "stat:DELIVRD err:000" in text
        assert receipt.source_addr == "33612345678"  # type: ignore[attr-defined]
        assert receipt.destination_addr == "ACME"  # type: ignore[attr-defined]
        received = (await lab.sim("GET", "/v1/messages?limit=10"))["messages"]
        assert [m["text"] for m in received] == ["hello from upstream"]
        assert received[0]["destination"] == "33612345678"
        assert lab.gateway is not None
        view = await lab.gateway.store.get_message(message_id)
        assert view is not None and view.status == "delivered"
    finally:
        await client.unbind()
    assert Tag.MESSAGE_STATE  # the TLV tag used above exists
