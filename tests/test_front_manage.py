"""query_sm, cancel_sm and replace_sm on the SMPP front, end to end: our test ESME
(tests/smpp_client.py), smpplib (query_sm, the only one of the three it sends) and the npm
``smpp`` package (all three) bind to a whole Gateway whose carrier is the simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import smpplib.consts

from gateway.core.model import CANCELLED, MessageStatus, NewMessage, Replacement, new_message_id
from gateway.smpp.constants import EsmClass, Status
from gateway.smpp.pdu import CancelSm, DeliverSm, QuerySm, QuerySmResp, ReplaceSm, SubmitSm
from gateway.smpp.receipt import MessageState
from gateway.smpp.text import ConcatMethod, split_message
from gateway.store.base import EDIT_DONE, EDIT_REFUSED, EDIT_UNKNOWN
from gateway.store.sqlite import SqliteStore
from tests.e2e_helpers import eventually, simulator_config
from tests.fakes import FakeStore
from tests.front_helpers import (
    ACCOUNT,
    OTHER,
    OTHER_PASSWORD,
    PASSWORD,
    FrontLab,
    front_section,
)
from tests.interop_helpers import NodePeer, requires_node
from tests.smpp_client import EsmeClient
from tests.test_front_interop import _Target
from tests.test_interop_smpplib import Recorder, client_for, read_response, run_in_thread

TO = "33612345678"
LATER = "000000010000000R"  # one hour from now (relative SMPP time)
NOW = "000000000000000R"


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[FrontLab]:
    lab = FrontLab(tmp_path, simulator_config(), front_section())
    await lab.start()
    yield lab
    await lab.stop()


def submit(text: str = "hello", **fields: Any) -> SubmitSm:
    values: dict[str, Any] = {
        "source_addr_ton": 5,
        "source_addr": "ACME",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": TO,
        "registered_delivery": 1,
        "short_message": text.encode("ascii"),
    }
    values.update(fields)
    return SubmitSm(**values)


async def submitted(client: EsmeClient, pdu: SubmitSm) -> str:
    resp = await client.submit(pdu)
    assert resp.command_status == Status.ROK, resp
    value = getattr(resp, "message_id", "")
    assert isinstance(value, str) and value
    return value


async def query(client: EsmeClient, message_id: str) -> QuerySmResp:
    answer = await client.request(QuerySm(message_id=message_id, source_addr="ACME"))
    assert isinstance(answer, QuerySmResp)
    return answer


async def carrier_texts(lab: FrontLab) -> list[str]:
    received = (await lab.sim("GET", "/v1/messages?limit=100"))["messages"]
    return [m["text"] for m in received]


async def status_of(lab: FrontLab, message: str) -> tuple[str, str | None]:
    assert lab.gateway is not None
    view = await lab.gateway.store.get_message(message)
    assert view is not None
    return view.status, view.error


async def test_a_scheduled_message_is_queried_cancelled_and_never_sent(lab: FrontLab) -> None:
    client = await EsmeClient.bound(lab.front_port, "trx", ACCOUNT, PASSWORD)
    try:
        later = await submitted(client, submit("not this one", schedule_delivery_time=LATER))
        now = await submitted(client, submit("this one"))
        answer = await query(client, later)
        assert answer.command_status == Status.ROK
        assert answer.message_state == MessageState.ENROUTE
        assert answer.message_id == later and answer.final_date == ""
        assert lab.gateway is not None
        assert lab.gateway.dispatcher.parts_in_memory >= 1  # waiting for its time

        cancelled = await client.request(CancelSm(message_id=later, source_addr="ACME"))
        assert cancelled.command_status == Status.ROK
        assert await status_of(lab, later) == ("failed", CANCELLED)
        answer = await query(client, later)
        assert answer.message_state == MessageState.DELETED
        assert len(answer.final_date) == 16  # YYMMDDhhmmsstnn+
        # Its receipt says DELETED; the other message is delivered as usual.
        receipts: dict[str, DeliverSm] = {}
        for _ in range(2):
            pdu = await client.next_deliver(within=10)
            assert isinstance(pdu, DeliverSm) and pdu.esm_class & EsmClass.SMSC_DELIVERY_RECEIPT
            assert pdu.receipted_message_id is not None
            receipts[pdu.receipted_message_id] = pdu
        assert receipts[later].message_state == MessageState.DELETED
        assert b"stat:DELETED" in receipts[later].short_message
        assert receipts[now].message_state == MessageState.DELIVERED
        # Gone from the dispatcher's queues: nothing left to send.
        assert lab.gateway.dispatcher.parts_in_memory == 0
        assert sum(lab.gateway.dispatcher.queue_depth().values()) == 0
        assert await carrier_texts(lab) == ["this one"]
        # Too late now for both: one is final by cancel, the other delivered.
        for message in (later, now):
            again = await client.request(CancelSm(message_id=message))
            assert again.command_status == Status.RCANCELFAIL
        delivered = await query(client, now)
        assert delivered.message_state == MessageState.DELIVERED
        assert delivered.error_code == 0
    finally:
        await client.unbind()


async def test_replace_changes_text_and_schedule_of_a_queued_message(lab: FrontLab) -> None:
    client = await EsmeClient.bound(lab.front_port, "trx", ACCOUNT, PASSWORD)
    try:
        message = await submitted(client, submit("first draft", schedule_delivery_time=LATER))
        # New text, schedule kept: still waiting.
        resp = await client.request(ReplaceSm(message_id=message, short_message=b"second draft"))
        assert resp.command_status == Status.ROK
        assert lab.gateway is not None
        view = await lab.gateway.store.get_message(message)
        assert view is not None and view.status == "accepted" and len(view.parts) == 1
        # Longer text (two parts now), schedule now: it leaves with the new text.
        final = "Final text, long enough for two parts. " * 5
        resp = await client.request(
            ReplaceSm(
                message_id=message,
                short_message=final.encode("ascii"),
                schedule_delivery_time=NOW,
                registered_delivery=1,
            )
        )
        assert resp.command_status == Status.ROK

        async def delivered() -> bool:
            return (await status_of(lab, message))[0] == "delivered"

        await eventually(delivered)
        view = await lab.gateway.store.get_message(message)
        assert view is not None and len(view.parts) == 2
        texts = await carrier_texts(lab)
        assert len(texts) == 2 and "".join(texts) == final
        receipt = await client.next_deliver(within=10)
        assert isinstance(receipt, DeliverSm) and receipt.receipted_message_id == message
        # Sent: replacing or cancelling it is too late.
        late = await client.request(ReplaceSm(message_id=message, short_message=b"too late"))
        assert late.command_status == Status.RREPLACEFAIL
        bad = await submitted(client, submit("x", schedule_delivery_time=LATER))
        unreadable = await client.request(
            ReplaceSm(message_id=bad, short_message=b"y", validity_period="soon")
        )
        assert unreadable.command_status == Status.RINVEXPIRY
    finally:
        await client.unbind()


async def test_an_account_reaches_only_its_own_messages(lab: FrontLab) -> None:
    owner = await EsmeClient.bound(lab.front_port, "trx", ACCOUNT, PASSWORD)
    other = await EsmeClient.bound(lab.front_port, "trx", OTHER, OTHER_PASSWORD)
    try:
        message = await submitted(owner, submit("mine", schedule_delivery_time=LATER))
        for request in (
            QuerySm(message_id=message),
            CancelSm(message_id=message),
            ReplaceSm(message_id=message, short_message=b"theirs"),
            QuerySm(message_id="0000000000000000000000unknown"),
            CancelSm(message_id="nonsense"),
        ):
            answer = await other.request(request)
            assert answer.command_status == Status.RINVMSGID, request
        assert await status_of(lab, message) == ("accepted", None)
        view = await query(owner, message)
        assert view.message_state == MessageState.ENROUTE
        by_address = await owner.request(CancelSm(source_addr="ACME", destination_addr=TO))
        assert by_address.command_status == Status.RCANCELFAIL  # not supported
    finally:
        await owner.unbind()
        await other.unbind()


async def test_query_and_cancel_take_the_id_of_a_part_of_a_long_message(lab: FrontLab) -> None:
    text = "A long scheduled message from upstream, sent in two parts. " * 3
    parts = [p.short_message for p in split_message(text, concat=ConcatMethod.UDH8, ref=0x42).parts]
    assert len(parts) == 2
    client = await EsmeClient.bound(lab.front_port, "trx", ACCOUNT, PASSWORD)
    try:
        ids = [
            await submitted(
                client,
                submit(
                    esm_class=EsmClass.UDHI,
                    short_message=part,
                    schedule_delivery_time=LATER,
                ),
            )
            for part in parts
        ]
        assert len(set(ids)) == 2
        answer = await query(client, ids[1])
        assert answer.command_status == Status.ROK
        assert answer.message_state == MessageState.ENROUTE
        replaced = await client.request(ReplaceSm(message_id=ids[0], short_message=b"short"))
        assert replaced.command_status == Status.RREPLACEFAIL  # one part cannot say it all
        cancelled = await client.request(CancelSm(message_id=ids[0]))
        assert cancelled.command_status == Status.ROK
        for part_id in ids:
            answer = await query(client, part_id)
            assert answer.message_state == MessageState.DELETED
    finally:
        await client.unbind()


async def test_smpplib_queries_a_message_it_submitted(lab: FrontLab) -> None:
    owner = await EsmeClient.bound(lab.front_port, "trx", ACCOUNT, PASSWORD)
    try:
        message = await submitted(owner, submit("scheduled", schedule_delivery_time=LATER))
        cancelled = await owner.request(CancelSm(message_id=message))
        assert cancelled.command_status == Status.ROK
    finally:
        await owner.unbind()
    target: Any = _Target(lab.front_port)

    def scenario() -> None:
        with client_for(target, Recorder()) as client:
            client.bind_transceiver(system_id=ACCOUNT, password=PASSWORD)
            client.query_message(message_id=message, source_addr="ACME")
            answer = read_response(client, "query_sm_resp")
            assert answer.status == smpplib.consts.SMPP_ESME_ROK
            assert answer.message_state == MessageState.DELETED
            assert answer.message_id.decode() == message
            client.query_message(message_id="not-a-message", source_addr="ACME")
            unknown = read_response(client, "query_sm_resp")
            assert unknown.status == smpplib.consts.SMPP_ESME_RINVMSGID

    await run_in_thread(scenario)


@requires_node
async def test_npm_smpp_queries_replaces_and_cancels(lab: FrontLab) -> None:
    async with NodePeer(
        "esme_client.js",
        "--port",
        str(lab.front_port),
        "--system-id",
        ACCOUNT,
        "--password",
        PASSWORD,
        "--submit",
        json.dumps(
            [
                {
                    "ref": r,
                    "text": f"draft {r}",
                    "schedule_delivery_time": LATER,
                    "destination_addr": TO,
                }
                for r in ("a", "b")
            ]
        ),
    ) as peer:
        await peer.expect("submit_sm_resp", ref="a")
        await peer.expect("submit_sm_resp", ref="b")
        ids = {e["ref"]: e["message_id"] for e in peer.matching("submit_sm_resp")}
        peer.send({"cmd": "query_sm", "message_id": ids["a"]})
        queried = await peer.expect("query_sm_resp")
        assert queried["status"] == 0 and queried["message_state"] == MessageState.ENROUTE
        peer.send(
            {
                "cmd": "replace_sm",
                "message_id": ids["a"],
                "text": "final A",
                "schedule_delivery_time": NOW,
            }
        )
        assert (await peer.expect("replace_sm_resp"))["status"] == 0
        peer.send({"cmd": "cancel_sm", "message_id": ids["b"]})
        assert (await peer.expect("cancel_sm_resp"))["status"] == 0
        receipt_b = await peer.expect("deliver_sm", receipted_message_id=ids["b"])
        assert receipt_b["message_state"] == MessageState.DELETED
        receipt_a = await peer.expect("deliver_sm", receipted_message_id=ids["a"])
        assert receipt_a["message_state"] == MessageState.DELIVERED
        peer.send({"cmd": "cancel_sm", "message_id": ids["a"]})
        assert (await peer.expect("cancel_sm_resp"))["status"] == Status.RCANCELFAIL
        peer.send({"cmd": "unbind"})
        await peer.expect("close")
    assert await carrier_texts(lab) == ["final A"]


# -- the store's half, without sockets ------------------------------------------------------------


def _new(account: str = ACCOUNT, parts: int = 1, callback: str | None = None) -> NewMessage:
    return NewMessage(
        id=new_message_id(),
        to="+33612345678",
        sender="ACME",
        text="hi",
        encoding="gsm7",
        parts=parts,
        carrier="sim",
        created_at=1000.0,
        callback_url=callback,
        account=account,
    )


@pytest.mark.parametrize("kind", ["sqlite", "fake"])
async def test_the_store_edits_only_messages_no_part_of_which_has_left(
    tmp_path: Path, kind: str
) -> None:
    store: Any = SqliteStore(tmp_path / "edit.db", "normal") if kind == "sqlite" else FakeStore()
    await store.open()
    try:
        begun, waiting, theirs = _new(), _new(parts=2, callback="smpp:crm?rd=1"), _new(OTHER)
        await store.accept([begun, waiting, theirs])
        await store.begin_attempts([(begun.id, 1)])  # its submit_sm is about to leave
        assert (await store.cancel_message(begun.id, ACCOUNT, 2000.0))[0] == EDIT_REFUSED
        new = Replacement("x" * 400, "gsm7", 3, None, None, None)
        assert await store.replace_message(begun.id, ACCOUNT, new, 2000.0) == EDIT_REFUSED
        assert (await store.cancel_message(theirs.id, ACCOUNT, 2000.0))[0] == EDIT_UNKNOWN
        assert (await store.cancel_message("no-such-id", ACCOUNT, 2000.0))[0] == EDIT_UNKNOWN
        # Replaced: three parts now, one row each, still waiting.
        asked = Replacement("x" * 400, "gsm7", 3, None, None, "smpp:crm?rd=1")
        assert await store.replace_message(waiting.id, ACCOUNT, asked, 2000.0) == EDIT_DONE
        view = await store.get_message(waiting.id)
        assert view is not None and [p.part for p in view.parts] == [1, 2, 3]
        pending = {m.id: m for m in await store.load_pending(None, 10)}
        assert pending[waiting.id].text == "x" * 400
        # Cancelled: failed, final, and its receipt (DELETED) is in the front outbox.
        answer, changes = await store.cancel_message(waiting.id, ACCOUNT, 2001.0)
        assert answer == EDIT_DONE and [c.status for c in changes] == [MessageStatus.FAILED]
        assert changes[0].error == CANCELLED
        summary = await store.message_summary(waiting.id)
        assert summary is not None and (summary.status, summary.error) == ("failed", CANCELLED)
        assert waiting.id not in {m.id for m in await store.load_pending(None, 10)}
        assert (await store.cancel_message(waiting.id, ACCOUNT, 2002.0))[0] == EDIT_REFUSED
        if kind == "sqlite":
            assert summary.updated_at == 2001.0
            (item,) = await store.front_due(ACCOUNT, 3000.0, 10)
            assert json.loads(item.payload)["error"] == CANCELLED
    finally:
        await store.close()
