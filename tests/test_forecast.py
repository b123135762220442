"""The rollout forecast: exact sequences for known cases, controller bounds for a grid of cases."""

import itertools

import pytest

from components.forecast import Step, forecast


def steps(fc):
    return [(s.old, s.new, s.new_ready) for s in fc.steps]


def test_workshop_rolling_update_5_replicas_surge_1_unavailable_1():
    fc = forecast(5, "RollingUpdate", 1, 1)
    assert steps(fc) == [
        (5, 0, 0), (5, 1, 0), (5, 1, 1), (3, 1, 1), (3, 3, 1), (3, 3, 3),
        (1, 3, 3), (1, 5, 3), (1, 5, 5), (0, 5, 5),
    ]
    assert (fc.min_available, fc.max_total) == (4, 6)
    assert (fc.min_available_seen, fc.max_pods_seen, fc.syncs) == (4, 6, 6)


def test_workshop_recreate_5_replicas_goes_through_zero():
    fc = forecast(5, "Recreate")
    assert steps(fc) == [(5, 0, 0), (0, 0, 0), (0, 5, 0), (0, 5, 5)]
    assert fc.min_available_seen == 0
    assert fc.max_pods_seen == 5


def test_max_surge_zero_replaces_in_place_one_at_a_time():
    fc = forecast(3, "RollingUpdate", 0, 1)
    assert steps(fc) == [(3, 0, 0), (2, 0, 0), (2, 1, 0), (2, 1, 1), (1, 1, 1), (1, 2, 1), (1, 2, 2),
                         (0, 2, 2), (0, 3, 2), (0, 3, 3)]
    assert fc.max_pods_seen == 3
    assert fc.min_available_seen == 2


def test_percentages_that_round_to_zero_still_progress():
    # 0% surge, 10% of 5 rounds down to 0 unavailable: the controller takes unavailable = 1
    fc = forecast(5, "RollingUpdate", "0%", "10%")
    assert fc.unavailable_pods == 1
    assert steps(fc)[-1] == (0, 5, 5)


def test_zero_replicas_is_already_done():
    assert steps(forecast(0, "RollingUpdate")) == [(0, 0, 0)]
    assert steps(forecast(0, "Recreate")) == [(0, 0, 0)]


def test_json_shape():
    data = forecast(4).to_json()
    assert set(data) == {"strategy", "replicas", "maxSurge", "maxUnavailable", "minAvailable", "maxTotal",
                         "steps", "minAvailableSeen", "maxPodsSeen", "syncs"}
    assert data["maxSurge"] == 1 and data["maxUnavailable"] == 1  # 25% of 4
    assert data["steps"][0] == {"old": 4, "new": 0, "newReady": 0, "available": 4}
    assert all(isinstance(v, int) for s in data["steps"] for v in s.values())


FENCEPOSTS = [0, 1, 2, "0%", "25%", "50%", "100%"]


@pytest.mark.parametrize("replicas", [1, 2, 3, 5, 10])
def test_controller_bounds_hold_for_every_fencepost_pair(replicas):
    for surge, unavailable in itertools.product(FENCEPOSTS, FENCEPOSTS):
        if surge in (0, "0%") and unavailable in (0, "0%"):
            continue  # rejected by the API (and by our validation)
        fc = forecast(replicas, "RollingUpdate", surge, unavailable)
        assert fc.steps[0] == Step(replicas, 0, 0)
        assert fc.steps[-1] == Step(0, replicas, replicas)
        for step in fc.steps:
            assert step.pods <= fc.max_total, (surge, unavailable, step)
            assert step.available >= min(fc.min_available, replicas), (surge, unavailable, step)
        # old only shrinks, new only grows
        assert all(a.old >= b.old and a.new <= b.new for a, b in zip(fc.steps, fc.steps[1:], strict=False))
