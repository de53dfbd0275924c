"""Failure modes switched at run time (``PUT /v1/faults``), one small value object.

Each switch is a way real SMSCs fail (the jasmin catalogue of bad peers, and the field notes):
throttling and full queues under load, a peer that stops answering, slow answers, links cut
from the far side, corrupt bytes, receipts that beat their submit_sm_resp, generic_nack for
anything unexpected, and arbitrary error statuses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

MAX_DELAY_SECONDS = 3600.0
"""Upper bound for slow_responses and drop_link_every: a typo must not park a test for days."""


@dataclass(frozen=True, slots=True)
class SubmitError:
    status: int
    """The command_status to answer submit_sm with."""
    probability: float


@dataclass(frozen=True, slots=True)
class Faults:
    throttle: float = 0.0
    """Probability of answering submit_sm with ESME_RTHROTTLED."""
    queue_full: float = 0.0
    """Probability of answering submit_sm with ESME_RMSGQFUL."""
    black_hole: bool = False
    """No output at all: no responses, no enquire_link_resp, no receipts (they are held)."""
    slow_responses: float = 0.0
    """Seconds to wait before each submit_sm_resp."""
    drop_link_every: float = 0.0
    """Close every connection every N seconds; 0 is off."""
    garbage: float = 0.0
    """Probability of answering submit_sm with random bytes instead of a response."""
    receipt_before_response: bool = False
    """Send the receipt first, then the submit_sm_resp."""
    generic_nack: float = 0.0
    """Probability of answering submit_sm with generic_nack."""
    submit_error: SubmitError | None = None
    """Answer submit_sm with this status with this probability."""

    @property
    def affects_submit(self) -> bool:
        """Whether any switch changes how a submit_sm is answered (the hot path checks one bool)."""
        return bool(
            self.throttle
            or self.queue_full
            or self.black_hole
            or self.slow_responses
            or self.garbage
            or self.receipt_before_response
            or self.generic_nack
            or (self.submit_error is not None and self.submit_error.probability)
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_PROBABILITIES = ("throttle", "queue_full", "garbage", "generic_nack")
_BOOLS = ("black_hole", "receipt_before_response")
_SECONDS = ("slow_responses", "drop_link_every")
FAULT_NAMES = frozenset(f.name for f in fields(Faults))


def _probability(name: str, value: Any, errors: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(f"{name}: must be a number between 0 and 1, got {value!r}")
        return None
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        errors.append(f"{name}: must be between 0 and 1, got {value!r}")
        return None
    return float(value)


def _seconds(name: str, value: Any, errors: list[str]) -> float | None:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(f"{name}: must be a number of seconds, got {value!r}")
        return None
    if not (0.0 <= value <= MAX_DELAY_SECONDS):
        errors.append(f"{name}: must be between 0 and {MAX_DELAY_SECONDS:g} seconds, got {value!r}")
        return None
    return float(value)


def _submit_error(value: Any, errors: list[str]) -> tuple[bool, SubmitError | None]:
    if value is None:
        return True, None
    if not isinstance(value, dict):
        errors.append(
            f"submit_error: must be an object {{status, probability}} or null, got {value!r}"
        )
        return False, None
    ok = True
    unknown = sorted(set(value) - {"status", "probability"})
    for key in unknown:
        errors.append(f"submit_error.{key}: unknown key (known: probability, status)")
        ok = False
    status = value.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 0xFFFFFFFF:
        errors.append(f"submit_error.status: must be an integer 0..0xFFFFFFFF, got {status!r}")
        ok = False
    probability = _probability("submit_error.probability", value.get("probability", 1.0), errors)
    if probability is None or not ok:
        return False, None
    assert isinstance(status, int)
    return True, SubmitError(status=status, probability=probability)


def merge_faults(current: Faults, update: Any) -> tuple[Faults, list[str]]:
    """Apply a partial JSON update. Returns the new set and every error found (then the
    new set is the current one unchanged)."""
    errors: list[str] = []
    if not isinstance(update, dict):
        return current, [f"body: must be a JSON object, got {type(update).__name__}"]
    changes: dict[str, Any] = {}
    for key in sorted(update):
        value = update[key]
        if key in _PROBABILITIES:
            if (p := _probability(key, value, errors)) is not None:
                changes[key] = p
        elif key in _BOOLS:
            if isinstance(value, bool):
                changes[key] = value
            else:
                errors.append(f"{key}: must be true or false, got {value!r}")
        elif key in _SECONDS:
            if (s := _seconds(key, value, errors)) is not None:
                changes[key] = s
        elif key == "submit_error":
            ok, submit_error = _submit_error(value, errors)
            if ok:
                changes[key] = submit_error
        else:
            errors.append(f"{key}: unknown fault (known: {', '.join(sorted(FAULT_NAMES))})")
    if errors:
        return current, errors
    return replace(current, **changes), []
