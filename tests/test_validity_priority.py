"""A message's validity and priority reach the carrier (issue 18.6): submit_sm carries the
validity left at the time of the submit as a relative SMPP time (spec 7.1.1) and the
priority_flag the carrier's mapping gives the message's priority."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.config import CarrierConfig
from gateway.config.loader import ConfigError, load_dataclass
from gateway.core.model import MessageStatus
from gateway.front.submits import smpp_time
from gateway.smpp.times import relative_time
from tests.e2e_helpers import Lab, eventually, simulator_config
from tests.fakes import FakeSmsc, new_message
from tests.test_engine_dispatcher import carrier, rig


def test_relative_time_is_the_spec_form_and_reads_back() -> None:
    assert relative_time(600) == "000000001000000R"
    assert relative_time(90061) == "000001010101000R"  # 1 day 1 h 1 min 1 s
    for seconds in (1, 59, 3600, 86399, 48 * 3600, 7 * 86400, 99 * 86400 + 5, 400 * 86400 + 7):
        assert smpp_time(relative_time(seconds), 0.0) == seconds
    assert relative_time(0) == "000000000001000R"  # never "no time left": one second


def _carrier(**kw: Any) -> dict[str, Any]:
    return {"name": "c", "host": "h", "port": 1, "system_id": "s", "password": "p", **kw}


def test_priority_flag_mapping_is_checked() -> None:
    default = load_dataclass(CarrierConfig, _carrier())
    assert default.send_validity is True
    assert default.priority_flag == (0, 1, 2, 3, 3, 3, 3, 3, 3, 3)
    with pytest.raises(ConfigError) as error:
        load_dataclass(CarrierConfig, _carrier(priority_flag=[0, 1, 4]))
    assert "priority_flag" in str(error.value)
    assert "10" in str(error.value) and "0..3" in str(error.value)


async def test_remaining_validity_and_mapped_priority_go_in_submit_sm() -> None:
    smsc = FakeSmsc()
    mapping = (0, 0, 0, 0, 0, 1, 1, 1, 2, 2)
    async with rig({"alpha": smsc}, [carrier(priority_flag=mapping)]) as r:
        now = time.time()
        # Accepted 1,000 s ago with 1,300 s of validity: 300 s are left.
        old = new_message(now=now - 1000, validity_until=now + 300, priority=5)
        plain = new_message(to="+4915100000001", priority=0)
        urgent = new_message(to="+4915100000002", validity_until=now + 600, priority=9)
        await r.send([old, plain, urgent])
        await r.until_status([old, plain, urgent], MessageStatus.SUBMITTED)
        sent = {rec.pdu.destination_addr: rec.pdu for rec in smsc.received}
        left = smpp_time(sent[old.to[1:]].validity_period, 0.0)
        assert 290 <= left <= 300
        assert sent[old.to[1:]].priority_flag == 1
        assert sent[plain.to[1:]].validity_period == ""  # no validity: none sent
        assert sent[plain.to[1:]].priority_flag == 0
        assert 590 <= smpp_time(sent[urgent.to[1:]].validity_period, 0.0) <= 600
        assert sent[urgent.to[1:]].priority_flag == 2


async def test_send_validity_off_leaves_the_field_empty() -> None:
    smsc = FakeSmsc()
    async with rig({"alpha": smsc}, [carrier(send_validity=False)]) as r:
        one = new_message(validity_until=time.time() + 600, priority=1)
        await r.send([one])
        await r.until_status([one], MessageStatus.SUBMITTED)
        assert smsc.received[0].pdu.validity_period == ""
        assert smsc.received[0].pdu.priority_flag == 1


async def test_http_validity_and_priority_reach_the_simulator(tmp_path: Path) -> None:
    lab = Lab(tmp_path, simulator_config())
    await lab.start()
    try:
        answer = await lab.post(
            "/v1/messages",
            {"to": "+33612345678", "from": "ACME", "text": "hi", "validity": 600, "priority": 5},
        )

        async def delivered() -> bool:
            return await lab.statuses([answer["id"]]) == {"delivered": 1}

        await eventually(delivered)
        received = (await lab.sim("GET", "/v1/messages?limit=10"))["messages"]
        assert len(received) == 1
        assert received[0]["priority_flag"] == 3
        assert 590 <= smpp_time(received[0]["validity_period"], 0.0) <= 600
    finally:
        await lab.stop()
