"""The sequential canary judge, case by case."""

import random

import pytest

from rollout.canary_analysis import MIN_EVIDENCE, Judge, share_band, wilson_interval


def test_wilson_interval_brackets_the_rate():
    low, high = wilson_interval(50, 100)
    assert low < 0.5 < high
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 1000)[1] < 0.011


def feed(judge, rng, requests, canary_fail=0.0, stable_fail=0.0, canary_latency=0.01):
    for n in range(1, requests + 1):
        canary = rng.random() * 100 < judge.weight
        fail = rng.random() < (canary_fail if canary else stable_fail)
        judge.observe(judge.canary_version if canary else "v1", not fail, canary_latency if canary else 0.01)
        if judge.verdict():
            return n
    return None


def judge(weight=50, **kw):
    return Judge("v2", weight, kw.get("max_error_rate", 0.01), kw.get("max_p99", 0.5))


def test_one_failure_is_never_enough():
    j = judge()
    j.observe("v2", False, 0.01)
    assert j.verdict() is None
    for _ in range(MIN_EVIDENCE - 2):
        j.observe("v2", False, 0.01)
    assert j.verdict() is None
    j.observe("v2", False, 0.01)
    assert "error rate" in j.verdict()


@pytest.mark.parametrize("seed", range(20))
def test_a_healthy_canary_passes_a_long_step(seed):
    # 0.3% errors against a 1% budget over 3000 requests: no false abort
    assert feed(judge(weight=50), random.Random(seed), 3000, canary_fail=0.003) is None


def test_a_badly_failing_canary_is_caught_within_a_few_dozen_canary_requests():
    j = judge(weight=50)
    assert feed(j, random.Random(1), 3000, canary_fail=0.5) is not None
    assert j.canary.requests < 40


def test_failures_outside_the_canary_count_too():
    j = judge(weight=5)
    assert feed(j, random.Random(2), 5000, stable_fail=0.3) is not None
    assert "over all" in j.verdict()


def test_slow_canary_trips_the_p99_rule():
    j = judge(weight=50, max_p99=0.1)
    assert feed(j, random.Random(3), 3000, canary_latency=0.3) is not None
    assert "p99" in j.verdict()


@pytest.mark.parametrize("weight,observed_canary,verdict", [
    (25, 0.0, "not reaching it"),
    (5, 0.6, "far above"),
    (25, 0.25, None),
])
def test_share_far_from_the_weight_aborts(weight, observed_canary, verdict):
    j = judge(weight=weight)
    for i in range(2000):
        j.observe("v2" if (i % 100) < observed_canary * 100 else "v1", True, 0.01)
    result = j.verdict()
    assert (result is None) if verdict is None else (verdict in result)


@pytest.mark.parametrize("weight,band", [(0, (0.0, 0.5)), (5, (0.5, 9.5)), (50, (23.0, 77.0)), (100, (99.5, 100.0))])
def test_share_band(weight, band):
    assert share_band(weight) == band
