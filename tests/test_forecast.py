"""The rollout forecast: exact sequences for known cases, controller bounds for a grid of cases."""

import functools
import itertools

import pytest

import model.forecast
from model.forecast import Step, forecast


def steps(fc):
    return [(s.old, s.new, s.new_ready) for s in fc.steps]


def test_workshop_rolling_update_5_replicas_surge_1_unavailable_1():
    # The sequence the real controller takes (tests/cluster): scale up, then at once down (maxUnavailable 1),
    # then one old pod for each new pod that gets ready.
    fc = forecast(5, "RollingUpdate", 1, 1)
    assert steps(fc) == [
        (5, 0, 0), (5, 1, 0), (4, 1, 0), (4, 2, 0),
        (4, 2, 1), (3, 2, 1), (3, 3, 1),
        (3, 3, 2), (2, 3, 2), (2, 4, 2),
        (2, 4, 3), (1, 4, 3), (1, 5, 3),
        (1, 5, 4), (0, 5, 4), (0, 5, 5),
    ]
    assert (fc.min_available, fc.max_total) == (4, 6)
    # The sync that creates the new ReplicaSet scales the old one down too; then two syncs per ready pod.
    assert (fc.min_available_seen, fc.max_pods_seen, fc.syncs) == (4, 6, 9)


def test_25_percent_of_5_scales_up_2_then_replaces_one_pod_per_ready_pod():
    fc = forecast(5, "RollingUpdate", "25%", "25%")
    assert (fc.surge_pods, fc.unavailable_pods) == (2, 1)
    assert steps(fc) == [
        (5, 0, 0), (5, 2, 0), (4, 2, 0), (4, 3, 0),
        (4, 3, 1), (3, 3, 1), (3, 4, 1),
        (3, 4, 2), (2, 4, 2), (2, 5, 2),
        (2, 5, 3), (1, 5, 3),
        (1, 5, 4), (0, 5, 4), (0, 5, 5),
    ]
    assert (fc.min_available_seen, fc.max_pods_seen, fc.syncs) == (4, 7, 8)


def test_surge_100_percent_creates_every_new_pod_then_drops_one_old_pod_per_ready_pod():
    fc = forecast(3, "RollingUpdate", "100%", 0)
    assert steps(fc) == [(3, 0, 0), (3, 3, 0), (3, 3, 1), (2, 3, 1), (2, 3, 2), (1, 3, 2), (1, 3, 3), (0, 3, 3)]
    assert (fc.min_available_seen, fc.max_pods_seen, fc.syncs) == (3, 6, 4)


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


def test_max_unavailable_2_without_surge_scales_old_down_by_2_then_one_per_ready_pod():
    fc = forecast(4, "RollingUpdate", 0, 2)
    assert steps(fc) == [(4, 0, 0), (2, 0, 0), (2, 2, 0), (2, 2, 1), (1, 2, 1), (1, 3, 1), (1, 3, 2), (0, 3, 2),
                         (0, 4, 2), (0, 4, 3), (0, 4, 4)]
    assert (fc.min_available_seen, fc.max_pods_seen, fc.syncs) == (2, 4, 6)


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


# ---------------------------------------------------------------------------------------------
# Any replica count: the forecast against a straightforward simulation, and at int32 scale
# ---------------------------------------------------------------------------------------------


def reference(replicas, surge, unavailable):
    """The forecast's model run the plain way: pod after pod, no shortcut.

    The controller syncs until a sync changes nothing (a sync scales the new ReplicaSet up if it may and stops
    there, else reconciles the old ones; the sync that creates the new ReplicaSet does both); then one new pod
    gets ready. Steps that repeat the previous one are not listed; syncs that change nothing are not counted.
    """
    from model.fenceposts import (
        ReplicaSet,
        Strategy,
        reconcile_new_replica_set,
        reconcile_old_replica_sets,
        resolve_fenceposts,
    )
    from model.fenceposts import max_surge as surge_of
    from model.fenceposts import max_unavailable as unavailable_of

    given = Strategy("RollingUpdate", replicas, surge, unavailable)
    # The syncs see the fenceposts resolved once (what the controller computes from the spec each sync; an int
    # pair that is not 0/0 resolves to itself): parsing "25%" again in every sync was a third of this simulation.
    spec = Strategy("RollingUpdate", replicas, *resolve_fenceposts(surge, unavailable, replicas))
    # ReplicaSet is a frozen dataclass: one instance per value serves every sync that sees that value (making a
    # new one each time was a fifth of this simulation's time).
    replica_set = functools.cache(ReplicaSet)
    old, new, new_ready, syncs = replicas, 0, 0, 0
    out = [(old, new, new_ready)]
    first = True
    while replicas and not (old == 0 and new_ready == replicas):
        while True:  # syncs until nothing changes
            before = (old, new)
            target = reconcile_new_replica_set(spec, [replica_set(old, old), replica_set(new, new_ready)],
                                               replica_set(new, new_ready))
            if target is not None:
                new = target
                out.append((old, new, new_ready))
            if target is None or first:
                old = reconcile_old_replica_sets(spec, [replica_set(old, old)], replica_set(new, new_ready))[0][0].replicas
                out.append((old, new, new_ready))
            first = False
            if (old, new) == before:
                break
            syncs += 1
        if old == 0 and new_ready == replicas:
            break
        assert new_ready < new, "the reference made no progress"
        new_ready += 1
        out.append((old, new, new_ready))
    steps = [s for i, s in enumerate(out) if i == 0 or out[i - 1] != s]
    return steps, syncs, surge_of(given), unavailable_of(given)


GRID_FENCEPOSTS = [0, 1, 2, 3, 7, 40, "0%", "1%", "10%", "25%", "33%", "50%", "75%", "100%", "250%"]


@pytest.mark.parametrize("replicas", range(0, 31))
def test_forecast_equals_the_reference_simulation_step_by_step(replicas):
    for surge, unavailable in itertools.product(GRID_FENCEPOSTS, GRID_FENCEPOSTS):
        if replicas and surge in (0, "0%") and unavailable in (0, "0%"):
            continue  # rejected by the API
        want_steps, want_syncs, want_surge, want_unavailable = reference(replicas, surge, unavailable)
        fc = forecast(replicas, "RollingUpdate", surge, unavailable)
        case = (replicas, surge, unavailable)
        assert steps(fc) == want_steps, case
        assert (fc.syncs, fc.surge_pods, fc.unavailable_pods) == (want_syncs, want_surge, want_unavailable), case
        assert fc.min_available_seen == min(o + r for o, _, r in want_steps), case
        assert fc.max_pods_seen == max(o + n for o, n, _ in want_steps), case
        assert fc.omitted_steps == 0 and "omittedSteps" not in fc.to_json()


@pytest.mark.parametrize("replicas,surge,unavailable", [(3333, 1, 0), (3000, 0, 1), (2500, 2, 1), (3300, "1%", 0)])
def test_forecasts_up_to_the_listed_size_are_listed_in_full(replicas, surge, unavailable):
    want_steps, want_syncs, _, _ = reference(replicas, surge, unavailable)
    fc = forecast(replicas, "RollingUpdate", surge, unavailable)
    assert len(want_steps) <= 10_000
    assert steps(fc) == want_steps and fc.syncs == want_syncs and fc.total_steps is None


def test_a_longer_forecast_lists_its_first_and_last_steps_with_exact_numbers():
    from model.forecast import LISTED_STEPS, SUMMARY_STEPS

    want_steps, want_syncs, _, _ = reference(4000, 1, 0)
    assert len(want_steps) > LISTED_STEPS
    fc = forecast(4000, "RollingUpdate", 1, 0)
    assert steps(fc) == want_steps[:SUMMARY_STEPS] + want_steps[-SUMMARY_STEPS:]
    assert (fc.total_steps, fc.omitted_steps, fc.omitted_after) == (
        len(want_steps), len(want_steps) - 2 * SUMMARY_STEPS, SUMMARY_STEPS)
    assert fc.syncs == want_syncs == 8000
    assert (fc.min_available_seen, fc.max_pods_seen) == (4000, 4001)
    data = fc.to_json()
    assert (data["totalSteps"], data["omittedSteps"], data["omittedAfter"]) == (
        len(want_steps), len(want_steps) - 2000, 1000)
    assert len(data["steps"]) == 2000


@pytest.fixture
def syncs_simulated(monkeypatch) -> list[int]:
    """How many controller syncs the forecast really runs (the rest of a long update is counted, not run): a
    bound on its work that no machine's speed changes (its time is in bench/)."""
    runs = [0]
    real = model.forecast.reconcile_new_replica_set

    def counted(*args, **kwargs):
        runs[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(model.forecast, "reconcile_new_replica_set", counted)
    return runs


def test_50000_replicas_surge_1_unavailable_0_finishes_at_once(syncs_simulated):
    # The old simulation gave up after 100,000 rounds: 50,000 pods one at a time need 100,000.
    fc = forecast(50_000, "RollingUpdate", 1, 0)
    assert syncs_simulated[0] <= 50
    assert (fc.syncs, fc.min_available_seen, fc.max_pods_seen) == (100_000, 50_000, 50_001)
    assert fc.total_steps == 150_001  # three steps a pod: it gets ready, old scaled down, new scaled up
    assert fc.steps[0] == Step(50_000, 0, 0) and fc.steps[-1] == Step(0, 50_000, 50_000)


INT32_MAX = 2**31 - 1


@pytest.mark.parametrize("surge,unavailable,syncs,fewest,most", [
    # 2 syncs to settle, 2 per pod while both ReplicaSets move, 1 per pod once the new one is full
    ("25%", "25%", 2 + 2 * 1_073_741_824 + 536_870_912, 1_610_612_736, 2_684_354_559),
    (1, 0, 2 * INT32_MAX, INT32_MAX, INT32_MAX + 1),
    (0, 1, 2 * INT32_MAX, INT32_MAX - 1, INT32_MAX),
    ("0%", "1%", None, None, INT32_MAX),
    ("100%", "100%", 1, 0, 2 * INT32_MAX),
    ("250%", 0, INT32_MAX + 1, INT32_MAX, 2 * INT32_MAX),
])
def test_int32_max_replicas_finish_at_once_with_exact_numbers(surge, unavailable, syncs, fewest, most,
                                                               syncs_simulated):
    fc = forecast(INT32_MAX, "RollingUpdate", surge, unavailable)
    assert syncs_simulated[0] <= 50
    assert fc.steps[0] == Step(INT32_MAX, 0, 0) and fc.steps[-1] == Step(0, INT32_MAX, INT32_MAX)
    assert len(fc.steps) <= 10_000
    if syncs is not None:
        assert (fc.syncs, fc.min_available_seen, fc.max_pods_seen) == (syncs, fewest, most)
    assert all(fc.min_available <= s.available and s.pods <= fc.max_total for s in fc.steps)


def test_negative_input_is_refused_not_looped_on():
    with pytest.raises(ValueError):
        forecast(-1, "RollingUpdate", 1, 1)
    with pytest.raises(ValueError):
        forecast(5, "RollingUpdate", -1, 1)
