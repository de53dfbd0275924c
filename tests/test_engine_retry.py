"""Retry policy: built-in rules, configuration overrides, backoff, permanent rejects."""

from __future__ import annotations

import pytest

from gateway.config import RetryRule
from gateway.core.model import MessageStatus
from gateway.engine.retry import (
    DEFAULT_RULES,
    GENERIC_NACK,
    MAX_RETRY_DELAY,
    TIMEOUT,
    RetryPolicy,
    Verdict,
    rule_key,
)
from gateway.smpp.constants import Status


@pytest.mark.parametrize(
    "key",
    [Status.RTHROTTLED, Status.RMSGQFUL, Status.RX_T_APPN, Status.RSYSERR, TIMEOUT, GENERIC_NACK],
)
def test_temporary_answers_requeue_with_the_rule_delay(key: int | str) -> None:
    policy = RetryPolicy()
    decision = policy.decide(key, 1)
    assert decision.verdict is Verdict.RETRY
    assert decision.status is MessageStatus.QUEUED
    assert decision.delay == DEFAULT_RULES[key].delay


@pytest.mark.parametrize(
    "status", [Status.RINVDSTADR, Status.RINVSRCADR, Status.RSUBMITFAIL, Status.RX_P_APPN, 0x401]
)
def test_other_answers_are_permanent_rejects(status: int) -> None:
    decision = RetryPolicy().decide(status, 1)
    assert decision.verdict is Verdict.REJECT
    assert decision.status is MessageStatus.REJECTED
    if status == Status.RINVDSTADR:
        assert decision.error == "ESME_RINVDSTADR"
    if status == 0x401:
        assert decision.error == "0x00000401"


def test_attempts_exhausted_fail() -> None:
    policy = RetryPolicy()
    rule = DEFAULT_RULES[Status.RX_T_APPN]
    assert policy.decide(Status.RX_T_APPN, rule.attempts - 1).verdict is Verdict.RETRY
    decision = policy.decide(Status.RX_T_APPN, rule.attempts)
    assert decision.verdict is Verdict.FAIL
    assert decision.status is MessageStatus.FAILED
    assert decision.error == f"ESME_RX_T_APPN after {rule.attempts} attempts"


def test_delay_doubles_per_attempt_up_to_the_cap() -> None:
    policy = RetryPolicy([RetryRule(status="ESME_RSYSERR", attempts=100, delay=2.0)])
    delays = [policy.decide(Status.RSYSERR, n).delay for n in range(1, 6)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert policy.decide(Status.RSYSERR, 60).delay == MAX_RETRY_DELAY


def test_config_rules_override_and_extend_the_defaults() -> None:
    policy = RetryPolicy(
        [
            RetryRule(status="ESME_RTHROTTLED", attempts=2, delay=0.1),
            RetryRule(status=0x45, attempts=3, delay=1.0),  # RSUBMITFAIL becomes temporary
            RetryRule(status="timeout", attempts=1, delay=1.0),  # a timeout fails at once
            RetryRule(status="ESME_ROK", attempts=3, delay=1.0),  # ignored
        ]
    )
    assert policy.decide(Status.RTHROTTLED, 1).delay == 0.1
    assert policy.decide(Status.RTHROTTLED, 2).verdict is Verdict.FAIL
    assert policy.decide(Status.RSUBMITFAIL, 1).verdict is Verdict.RETRY
    assert policy.decide(TIMEOUT, 1).verdict is Verdict.FAIL
    assert Status.ROK not in policy.rules
    # Untouched defaults stay.
    assert policy.decide(Status.RMSGQFUL, 1).delay == DEFAULT_RULES[Status.RMSGQFUL].delay


def test_rule_keys() -> None:
    assert rule_key("ESME_RMSGQFUL") == 0x14
    assert rule_key(0x58) == 0x58
    assert rule_key("generic_nack") == GENERIC_NACK
    with pytest.raises(KeyError):
        rule_key("ESME_NOPE")
    with pytest.raises(ValueError):
        rule_key("nope")


def test_timeout_error_text() -> None:
    assert RetryPolicy().decide(TIMEOUT, 1).error == "no response (timeout)"
