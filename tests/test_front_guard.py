"""Failed binds on the front back off then lock out (per client address and per system_id),
and refusals on the front are logged at info, rate-limited. The guard and the log limiter
take time as an argument, so nothing here sleeps."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import smpplib.consts
import smpplib.exceptions

from gateway.front.guard import BindGuard, GuardLimits, client_key
from gateway.front.refusals import RefusalLog
from gateway.smpp.constants import Status
from gateway.smpp.pdu import SubmitSm
from tests.e2e_helpers import simulator_config
from tests.front_helpers import ACCOUNT, OTHER, PASSWORD, FrontLab, front_section
from tests.smpp_client import EsmeClient
from tests.test_front_interop import _Target
from tests.test_interop_smpplib import Recorder, client_for, run_in_thread

LIMITS = GuardLimits(per_address=5, per_system_id=12, window=60.0, lockout=300.0, delay=1.0)


# -- the guard, with time passed in ------------------------------------------------------------


def test_an_address_is_locked_out_after_its_limit_and_released_after_the_lockout() -> None:
    guard = BindGuard(LIMITS)
    t = 1000.0
    assert guard.failed("192.0.2.7", "crm", t) == 0.0  # a first mistake: answered at once
    for n in range(1, 4):
        assert guard.locked("192.0.2.7", "crm", t + n) is None
        assert guard.failed("192.0.2.7", "crm", t + n) == 1.0  # the next ones are held back
    assert guard.locked("192.0.2.7", "crm", t + 4) is None
    guard.failed("192.0.2.7", "crm", t + 4)  # the fifth within the window
    lock = guard.locked("192.0.2.7", "crm", t + 5)
    assert lock is not None and lock.scope == "address" and lock.until == t + 4 + 300
    assert guard.locked("192.0.2.7", None, t + 303) is not None  # any system_id
    assert guard.locked("192.0.2.8", "crm", t + 5) is None  # another address is not
    assert guard.locked("192.0.2.7", "crm", t + 304.5) is None  # the lockout is over
    assert guard.lockouts() == {"address": 1, "system_id": 0}
    assert guard.locked_count(t + 5) == {"address": 1, "system_id": 0}


def test_failures_spread_wider_than_the_window_never_lock_an_address_out() -> None:
    guard = BindGuard(LIMITS)
    # 5 within 60 s locks: one failure every 16 s makes at most 4 in any window.
    for n in range(200):
        guard.failed("192.0.2.7", "crm", 16.0 * n)
        assert guard.locked("192.0.2.7", "crm", 16.0 * n) is None
    guard.failed("192.0.2.7", "crm", 16.0 * 199 + 1)  # a fifth within the window
    assert guard.locked("192.0.2.7", "crm", 16.0 * 199 + 2) is not None


def test_many_addresses_guessing_one_system_id_lock_the_system_id() -> None:
    guard = BindGuard(LIMITS)
    for n in range(12):  # 12 addresses, 1 failure each: no address reaches its limit
        guard.failed(f"198.51.100.{n}", "crm", 10.0 + n * 0.1)
    lock = guard.locked("203.0.113.1", "crm", 12.0)  # even from a fresh address
    assert lock is not None and lock.scope == "system_id"
    assert guard.locked("203.0.113.1", "alerts", 12.0) is None  # other accounts bind
    assert guard.locked("203.0.113.1", None, 12.0) is None


def test_memory_stays_bounded_and_locked_addresses_survive_a_flood() -> None:
    limits = GuardLimits(
        per_address=3, per_system_id=10**9, window=60, lockout=300, delay=0, max_entries=1000
    )
    guard = BindGuard(limits)
    for n in range(3):
        guard.failed("192.0.2.66", None, n * 0.001)
    assert guard.locked("192.0.2.66", None, 1.0) is not None
    for n in range(100_000):  # one failure each from 100,000 addresses in 100 s
        guard.failed(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", None, 1.0 + n * 0.001)
        assert len(guard.address.entries) <= 1000
    assert guard.locked("192.0.2.66", None, 101.0) is not None  # not forgotten


def test_ipv6_clients_are_keyed_by_their_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("192.0.2.1") == "192.0.2.1"


def test_refusal_log_is_rate_limited_per_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.refusals")
    refusals = RefusalLog(logging.getLogger("test.refusals"), interval=10.0, burst=3)
    written = [
        refusals.log("front.rejected", 100.0 + n * 0.01, account="crm", status="ESME_RTHROTTLED")
        for n in range(50)
    ]
    assert written.count(True) == 3 and refusals.suppressed_total == 47
    # Another key has its own allowance.
    assert refusals.log("front.rejected", 100.6, account="crm", status="ESME_RMSGQFUL")
    # After the interval, the next line says how many were left out.
    assert refusals.log("front.rejected", 111.0, account="crm", status="ESME_RTHROTTLED")
    last = caplog.records[-1]
    assert last.__dict__["smsgw_fields"]["suppressed"] == 47
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_refusal_log_keys_are_bounded() -> None:
    refusals = RefusalLog(logging.getLogger("test.refusals"), max_keys=100)
    for n in range(10_000):
        refusals.log("front.bind_refused", float(n), account=f"id{n}", status="x")
    assert len(refusals._counts) <= 100


# -- through the front's socket ------------------------------------------------------------------


async def started(tmp_path: Path, **front: Any) -> FrontLab:
    lab = FrontLab(tmp_path, simulator_config(), front_section(**front))
    await lab.start()
    return lab


async def metrics(lab: FrontLab) -> str:
    async with aiohttp.ClientSession() as http, http.get(lab.gw_url + "/metrics") as r:
        return await r.text()


async def try_bind(lab: FrontLab, system_id: str, password: str) -> int:
    client = await EsmeClient.connect("127.0.0.1", lab.front_port)
    try:
        return await client.bind("trx", system_id, password)
    finally:
        await client.close()


async def test_guessing_over_many_connections_locks_the_address_even_for_the_right_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smsgw.front")
    lab = await started(
        tmp_path, bind_failures_per_address=10, bind_failure_delay=0, bind_lockout=600
    )
    try:
        # 32 connections guessing at once, as in the report (1,000 guesses in 22 s).
        guesses = await asyncio.gather(*(try_bind(lab, ACCOUNT, f"guess{n}") for n in range(32)))
        # One address is checked one bind at a time: ten guesses were read, then none.
        assert guesses.count(Status.RINVPASWD) == 10
        assert guesses.count(Status.RBINDFAIL) == 22
        # The right password right after: refused while the address is locked out.
        assert await try_bind(lab, ACCOUNT, PASSWORD) == Status.RBINDFAIL
        assert await try_bind(lab, OTHER, "alrtpw") == Status.RBINDFAIL  # the whole address
        text = await metrics(lab)
        assert 'smsgw_front_bind_lockouts_total{scope="address"} 1.0' in text
        assert 'smsgw_front_bind_locked{scope="address"} 1.0' in text
        assert 'smsgw_front_bind_failures_total{reason="password"}' in text
        lockouts = [r for r in caplog.records if r.getMessage() == "front.bind_lockout"]
        assert len(lockouts) == 1 and lockouts[0].levelno == logging.WARNING
        refused = [r for r in caplog.records if r.getMessage() == "front.bind_refused"]
        assert refused and all(r.levelno == logging.INFO for r in refused)
        assert len(refused) < 34  # rate-limited: not one line per refused bind
        assert all(PASSWORD not in r.getMessage() for r in caplog.records)
        assert PASSWORD not in caplog.text and "guess1" not in caplog.text
    finally:
        await lab.stop()


async def test_an_unknown_system_id_can_be_answered_as_a_wrong_password(tmp_path: Path) -> None:
    lab = await started(
        tmp_path,
        hide_unknown_system_id=True,
        bind_failure_delay=0,
        account={"allowed_ips": ["10.0.0.0/8"]},  # crm binds only from 10/8
    )
    try:
        assert await try_bind(lab, "nobody", PASSWORD) == Status.RINVPASWD
        # Not ESME_RBINDFAIL: that would say crm exists.
        assert await try_bind(lab, ACCOUNT, PASSWORD) == Status.RINVPASWD
        assert await try_bind(lab, OTHER, "wrong") == Status.RINVPASWD
        assert await try_bind(lab, OTHER, "alrtpw") == Status.ROK
        text = await metrics(lab)
        assert 'smsgw_front_bind_failures_total{reason="system_id"} 1.0' in text
        assert 'smsgw_front_bind_failures_total{reason="address_not_allowed"} 1.0' in text
        assert 'smsgw_front_bind_failures_total{reason="password"} 1.0' in text
    finally:
        await lab.stop()


async def test_smpplib_is_locked_out_after_guessing(tmp_path: Path) -> None:
    lab = await started(tmp_path, bind_failures_per_address=3, bind_failure_delay=0)
    target: Any = _Target(lab.front_port)

    def scenario() -> None:
        for password in ("a", "b", "c", PASSWORD):
            with client_for(target, Recorder()) as client:
                with pytest.raises(smpplib.exceptions.PDUError) as raised:
                    client.bind_transmitter(system_id=ACCOUNT, password=password)
                expected = (
                    smpplib.consts.SMPP_ESME_RBINDFAIL
                    if password == PASSWORD
                    else smpplib.consts.SMPP_ESME_RINVPASWD
                )
                assert raised.value.args[1] == expected

    try:
        await run_in_thread(scenario)
    finally:
        await lab.stop()


async def test_front_refusals_are_logged_with_account_and_reason_rate_limited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smsgw.front")
    lab = await started(tmp_path, account={"tps": 1, "allowed_senders": ["ACME"]})
    try:
        client = await EsmeClient.bound(lab.front_port, "trx", ACCOUNT, PASSWORD)
        try:

            def submit(**fields: Any) -> SubmitSm:
                values: dict[str, Any] = {
                    "source_addr": "ACME",
                    "destination_addr": "33612345678",
                    "dest_addr_ton": 1,
                    "short_message": b"hi",
                }
                values.update(fields)
                return SubmitSm(**values)

            bad_sender = await client.submit(submit(source_addr="EVIL"))
            assert bad_sender.command_status == Status.RINVSRCADR
            answers = await client.submit_many([submit() for _ in range(40)])
            throttled = [a for a in answers if a.command_status == Status.RTHROTTLED]
            assert len(throttled) >= 30
        finally:
            await client.unbind()
        lines = [r for r in caplog.records if r.getMessage() == "front.rejected"]
        fields = [r.__dict__["smsgw_fields"] for r in lines]
        assert all(r.levelno == logging.INFO for r in lines)
        sender = [f for f in fields if f["status"] == "ESME_RINVSRCADR"]
        assert sender and sender[0]["account"] == ACCOUNT
        assert sender[0]["reason"] == "sender not in allowed_senders"
        slow = [f for f in fields if f["status"] == "ESME_RTHROTTLED"]
        assert 1 <= len(slow) <= 5  # one line per refusal would be 30 or more
        assert slow[0]["reason"] == "over tps 1" and slow[0]["command"] == "submit_sm"
        text = await metrics(lab)
        assert "smsgw_front_refusal_logs_suppressed_total" in text
        assert "smsgw_front_refusal_logs_suppressed_total 0.0" not in text
    finally:
        await lab.stop()
