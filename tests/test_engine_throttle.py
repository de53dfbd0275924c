"""Pacing: token buckets counted in parts, smooth bursts, adaptive slowdown and recovery.

Time is passed in: no test sleeps.
"""

from __future__ import annotations

import itertools
import math

import pytest

from gateway.engine.throttle import (
    BURST_SECONDS,
    MIN_RATE,
    RECOVERY_DOUBLING_SECONDS,
    SLOWDOWN_FACTOR,
    THROTTLE_PAUSE_SECONDS,
    UNCAPPED_RELEASE_FACTOR,
    UNLIMITED,
    BindThrottle,
    RateMeter,
    TokenBucket,
    account_bucket,
)


def drive(bucket: TokenBucket | BindThrottle, start: float, seconds: float) -> list[float]:
    """Send whenever allowed, waking exactly when told: the send times."""
    now = start
    sent: list[float] = []
    end = start + seconds
    while now < end:
        n = bucket.available(now)
        if n > 0:
            bucket.take(n, now)
            sent.extend([now] * n)
        wait = bucket.time_until_available(now)
        now += wait if wait > 0 else 1e-4
    return sent


def test_bucket_rejects_a_rate_of_zero() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 0.0)


def test_burst_is_a_few_ms_of_tokens_plus_one() -> None:
    assert TokenBucket(200, 0.0).capacity == pytest.approx(1 + 200 * BURST_SECONDS)
    assert TokenBucket(20_000, 0.0).capacity == pytest.approx(101)
    # After a long idle spell a bind at 200/s may send 2 at once, never a second's worth.
    bucket = TokenBucket(200, 0.0)
    assert bucket.available(3600.0) == 2


def test_paced_rate_is_exact_over_a_second() -> None:
    bucket = TokenBucket(200, 0.0)
    sent = drive(bucket, 0.0, 1.0)
    assert 200 <= len(sent) <= 202  # the initial burst of 2, then one every 5 ms


def test_no_once_a_second_burst() -> None:
    bucket = TokenBucket(1000, 0.0)
    sent = drive(bucket, 0.0, 2.0)
    # In any 10 ms, at most 10 sent plus the small burst.
    per_window: dict[int, int] = {}
    for t in sent:
        per_window[int(t * 100)] = per_window.get(int(t * 100), 0) + 1
    assert max(per_window.values()) <= 10 + bucket.capacity


def test_late_wakeups_do_not_lose_rate() -> None:
    """Waking 1 ms late every time (event loop granularity) still yields the rate: the extra
    token in the bucket absorbs the lateness."""
    bucket = TokenBucket(200, 0.0)
    now, sent = 0.0, 0
    while now < 1.0:
        n = bucket.available(now)
        bucket.take(n, now)
        sent += n
        now += bucket.time_until_available(now) + 0.001
    assert sent >= 195


def test_time_until_available_counts_parts() -> None:
    bucket = TokenBucket(100, 0.0)
    bucket.take(bucket.available(0.0), 0.0)  # capacity 1.5: half a token is left
    assert bucket.available(0.0) == 0
    assert bucket.time_until_available(0.0) == pytest.approx(0.005)
    assert bucket.time_until_available(0.0, 3) == pytest.approx(0.025)
    assert bucket.available(0.0049) == 0
    assert bucket.available(0.005) == 1


def test_set_rate_keeps_earned_tokens_up_to_the_new_capacity() -> None:
    bucket = TokenBucket(1000, 0.0)
    bucket.set_rate(100, 0.0)
    assert bucket.capacity == pytest.approx(1.5)
    assert bucket.tokens(0.0) <= 1.5


def test_account_bucket_zero_is_unlimited() -> None:
    assert account_bucket(0, 0.0) is None
    bucket = account_bucket(50, 0.0)
    assert bucket is not None and bucket.rate == 50


def test_unlimited_bind_is_always_available() -> None:
    throttle = BindThrottle(0, 0.0)
    assert throttle.available(0.0) == UNLIMITED
    assert throttle.time_until_available(0.0) == 0.0
    assert throttle.effective_rate is None


def test_throttle_halves_the_rate_and_pauses() -> None:
    throttle = BindThrottle(100, 0.0)
    throttle.throttled(1.0)
    assert throttle.effective_rate == pytest.approx(100 * SLOWDOWN_FACTOR)
    assert throttle.available(1.0) == 0
    assert throttle.available(1.0 + THROTTLE_PAUSE_SECONDS / 2) == 0
    assert throttle.time_until_available(1.0) == pytest.approx(THROTTLE_PAUSE_SECONDS)
    after = 1.0 + THROTTLE_PAUSE_SECONDS
    assert throttle.available(after + 0.05) >= 1


def test_answers_to_requests_sent_before_the_cut_do_not_cut_again() -> None:
    throttle = BindThrottle(100, 0.0)
    throttle.throttled(1.0, sent_at=0.9)
    # The rest of the window in flight comes back throttled too: one signal, one cut.
    for _ in range(20):
        throttle.throttled(1.01, sent_at=0.95)
    assert throttle.effective_rate == pytest.approx(50)
    # A request sent after the cut that is throttled again cuts again.
    throttle.throttled(2.0, sent_at=1.5)
    assert throttle.effective_rate == pytest.approx(25)


def test_rate_never_falls_below_the_minimum() -> None:
    throttle = BindThrottle(4, 0.0)
    for n in range(10):
        throttle.throttled(float(n), sent_at=float(n))
    assert throttle.effective_rate == MIN_RATE


def test_recovery_is_gradual_and_ends_at_the_configured_rate() -> None:
    throttle = BindThrottle(100, 0.0)
    throttle.throttled(0.0)
    rates = []
    t = 0.0
    while throttle.cap is not None and t < 60:
        t += 0.1
        throttle.succeeded(t)
        rates.append(throttle.effective_rate)
    # Halved, then doubled back in about RECOVERY_DOUBLING_SECONDS, through every value.
    assert t == pytest.approx(RECOVERY_DOUBLING_SECONDS, abs=0.15)
    assert all(b is not None and a is not None and b >= a for a, b in itertools.pairwise(rates))
    assert throttle.effective_rate == 100


def test_no_recovery_without_successes() -> None:
    throttle = BindThrottle(100, 0.0)
    throttle.throttled(0.0)
    assert throttle.effective_rate == 50
    # Time passes, nothing succeeds: the cut stays.
    assert throttle.available(10.0) >= 1
    assert throttle.effective_rate == 50


def test_paced_rate_after_a_cut() -> None:
    throttle = BindThrottle(200, 0.0)
    throttle.throttled(0.0)
    sent = drive(throttle, 0.0, 1.0 + THROTTLE_PAUSE_SECONDS)
    assert 95 <= len(sent) <= 103  # 100/s for one second after the pause


def test_unlimited_bind_halves_its_measured_rate() -> None:
    throttle = BindThrottle(0, 0.0)
    t = 0.0
    for _ in range(1000):  # 1000 parts/s for a second
        throttle.take(1, t)
        t += 0.001
    assert throttle.measured_rate(t) == pytest.approx(1000, rel=0.05)
    throttle.throttled(t)
    assert throttle.effective_rate == pytest.approx(500, rel=0.05)
    assert throttle.available(t) == 0  # paused, then paced
    # It grows back and the cap is lifted at UNCAPPED_RELEASE_FACTOR x the rate it was cut from.
    start = t
    while throttle.cap is not None:
        t += 0.1
        throttle.succeeded(t)
    expected = RECOVERY_DOUBLING_SECONDS * (1 + math.log2(UNCAPPED_RELEASE_FACTOR))
    assert t - start == pytest.approx(expected, abs=0.2)
    assert throttle.available(t) == UNLIMITED


def test_rate_meter_forgets_an_idle_spell() -> None:
    meter = RateMeter(0.0, window=1.0)
    meter.add(100, 0.5)
    assert meter.rate(0.9) == pytest.approx(100 / 0.9)
    assert meter.rate(1.5) > 0  # the previous window still counts
    assert meter.rate(10.0) == 0.0
