"""What becomes of a part whose submit_sm was not accepted: retry later, or give up.

A rule per answer: a command_status (ESME_RTHROTTLED...), ``timeout`` (no response in time,
or the link died with the request in flight) or ``generic_nack``. A rule says how many
submit attempts a part gets in all, and the delay before the next one (doubled after each
further attempt, capped at ``MAX_RETRY_DELAY``). An answer with no rule is permanent: the
carrier refused the message itself (ESME_RINVDSTADR...), so the part is REJECTED at once.
A part that runs out of attempts is FAILED.

Pure code: the dispatcher asks ``decide`` and acts on the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from gateway.config import MessagesConfig, RetryRule
from gateway.core.model import MessageStatus
from gateway.smpp.constants import Status, status_name

TIMEOUT: Final = "timeout"
"""Key of the rule for a submit_sm that got no response (timeout or link lost)."""
GENERIC_NACK: Final = "generic_nack"
"""Key of the rule for a submit_sm answered with generic_nack."""

RetryKey = int | str
"""A command_status, TIMEOUT or GENERIC_NACK."""

MAX_RETRY_DELAY: Final = 3600.0
"""Backoff cap: a part waits at most an hour between attempts (as documented for
``[[messages.retry]]``), so a long outage still gets retried within the validity period."""


@dataclass(frozen=True, slots=True)
class Rule:
    attempts: int
    """Submit attempts in all (the first included) before the part fails."""
    delay: float
    """Seconds before the second attempt; doubled for each one after."""


DEFAULT_RULES: Final[dict[RetryKey, Rule]] = {
    # The carrier is busy, not refusing: the adaptive throttle slows the bind, and the part
    # comes back soon. Many attempts, short first delay.
    Status.RTHROTTLED: Rule(attempts=30, delay=0.5),
    Status.RMSGQFUL: Rule(attempts=30, delay=1.0),
    # Temporary errors by definition (spec 5.1.3: "ESME Receiver Temporary App Error") or in
    # field practice (system error: the SMSC's own trouble).
    Status.RX_T_APPN: Rule(attempts=5, delay=5.0),
    Status.RSYSERR: Rule(attempts=5, delay=5.0),
    # No answer: the SMSC may have taken it (the retry is marked possibly duplicated).
    TIMEOUT: Rule(attempts=5, delay=10.0),
    # The SMSC could not read our PDU; worth a few tries (a corrupt stream, a restart).
    GENERIC_NACK: Rule(attempts=3, delay=5.0),
}
"""Built-in rules; ``[[messages.retry]]`` entries replace them status by status."""

THROTTLE_STATUSES: Final = frozenset({int(Status.RTHROTTLED), int(Status.RMSGQFUL)})
"""Answers that also slow the bind down (see gateway.engine.throttle)."""


class Verdict(Enum):
    RETRY = "retry"
    REJECT = "reject"  # permanent refusal by the carrier
    FAIL = "fail"  # attempts exhausted


_STATUS_OF: Final = {
    Verdict.RETRY: MessageStatus.QUEUED,
    Verdict.REJECT: MessageStatus.REJECTED,
    Verdict.FAIL: MessageStatus.FAILED,
}


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    delay: float
    """Seconds until the next attempt (RETRY only; 0.0 otherwise)."""
    error: str
    """What the part's history says: the answer's name, and why it is final."""

    @property
    def status(self) -> MessageStatus:
        return _STATUS_OF[self.verdict]


def describe(key: RetryKey) -> str:
    if key == TIMEOUT:
        return "no response (timeout)"
    if key == GENERIC_NACK:
        return "generic_nack"
    assert isinstance(key, int)
    return status_name(key)


def rule_key(status: int | str) -> RetryKey:
    """The key a ``RetryRule.status`` stands for: a number, ``ESME_<NAME>``, or one of the
    two words."""
    if isinstance(status, int):
        return status
    if status in (TIMEOUT, GENERIC_NACK):
        return status
    if status.startswith("ESME_"):
        return int(Status[status[5:]])
    raise ValueError(f"unknown command_status name {status!r}")


class RetryPolicy:
    """Built-in rules overridden by configuration rules (the last rule for a key wins)."""

    def __init__(self, rules: Iterable[RetryRule] = ()) -> None:
        self.rules: dict[RetryKey, Rule] = dict(DEFAULT_RULES)
        for rule in rules:
            key = rule_key(rule.status)
            if key == Status.ROK:
                continue  # ROK is success; a rule for it would be meaningless
            self.rules[key] = Rule(rule.attempts, rule.delay)
        self._decisions: dict[tuple[RetryKey, int], Decision] = {}

    @classmethod
    def from_config(cls, messages: MessagesConfig) -> RetryPolicy:
        return cls(messages.retry)

    def is_temporary(self, key: RetryKey) -> bool:
        return key in self.rules

    def decide(self, key: RetryKey, attempts: int) -> Decision:
        """What to do after attempt number ``attempts`` (1 for the first) got ``key``."""
        cached = self._decisions.get((key, attempts))
        if cached is not None:
            return cached
        name = describe(key)
        rule = self.rules.get(key)
        if rule is None:
            decision = Decision(Verdict.REJECT, 0.0, name)
        elif attempts >= rule.attempts:
            decision = Decision(Verdict.FAIL, 0.0, f"{name} after {attempts} attempts")
        else:
            exponent = min(max(attempts - 1, 0), 30)
            delay = min(MAX_RETRY_DELAY, rule.delay * 2.0**exponent)
            decision = Decision(Verdict.RETRY, delay, name)
        if len(self._decisions) < 4096:  # a handful of statuses in practice; bound it anyway
            self._decisions[(key, attempts)] = decision
        return decision
