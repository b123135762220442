"""Canary replica arithmetic, case by case."""

import pytest

from model import canary_math
from model.canary_math import (
    exact_total,
    nearest_shares,
    share_percent,
    split_replicas,
    weight_warning,
    weighted_canary_replicas,
)

# (total, weight, stable, canary)
SPLITS = [
    (4, 0, 4, 0),
    (4, 100, 0, 4),
    (4, 50, 2, 2),       # the workshop's 2 + 2
    (6, 67, 2, 4),       # the workshop's 2 + 4: two thirds
    (4, 25, 3, 1),
    (4, 5, 3, 1),        # never 0 canary pods while weight > 0
    (4, 99, 1, 3),       # never 0 stable pods while weight < 100
    (20, 5, 19, 1),      # 5% exactly needs 20 pods
    (5, 50, 3, 2),       # a tie goes to the smaller canary
    (10, 33, 7, 3),
    (2, 1, 1, 1),
    (0, 30, 0, 0),
]


@pytest.mark.parametrize("total,weight,stable,canary", SPLITS)
def test_split_replicas(total, weight, stable, canary):
    assert split_replicas(total, weight) == (stable, canary)


@pytest.mark.parametrize("total", range(2, 30))
def test_split_is_the_closest_allowed_share(total):
    for weight in range(1, 100):
        stable, canary = split_replicas(total, weight)
        assert stable + canary == total and stable >= 1 and canary >= 1
        best = min(abs(100 * c / total - weight) for c in range(1, total))
        assert abs(100 * canary / total - weight) == pytest.approx(best)


@pytest.mark.parametrize("weight", [-1, 101])
def test_split_rejects_weights_outside_0_100(weight):
    with pytest.raises(ValueError):
        split_replicas(4, weight)


@pytest.mark.parametrize("weight,total", [(5, 20), (25, 4), (50, 2), (1, 100), (33, 100), (0, 1), (100, 1), (20, 5)])
def test_exact_total(weight, total):
    assert exact_total(weight) == total


def test_share_percent():
    assert share_percent(2, 2) == 50.0
    assert share_percent(2, 4) == pytest.approx(66.67)
    assert share_percent(0, 0) == 0.0


def test_nearest_shares():
    assert nearest_shares(4, 5) == (0.0, 25.0)
    assert nearest_shares(4, 50) == (50.0, 50.0)


# (stable pods, weight, canary pods in a weighted traffic mode)
WEIGHTED = [(4, 0, 0), (4, 1, 1), (4, 5, 1), (4, 25, 1), (4, 50, 2), (4, 99, 4), (4, 100, 4), (1, 5, 1), (10, 10, 1),
            (10, 11, 2), (0, 50, 1)]


@pytest.mark.parametrize("stable,weight,canary", WEIGHTED)
def test_weighted_canary_replicas(stable, weight, canary):
    assert weighted_canary_replicas(stable, weight) == canary


def test_weight_warning_names_the_exact_total():
    message = weight_warning("app", 4, 5, 25.0)
    assert message is not None and "20 pods" in message and "5%" in message
    assert weight_warning("app", 4, 25, 25.0) is None
    assert weight_warning("app", 4, 5, 5.0, traffic="nlb") is None


WEIGHT_STEPS = [
    # old, new, first update (weight, podsForWeight), second update
    (0, 5, (0, 5), (5, None)),
    (5, 25, (5, 25), (25, None)),
    (50, 100, (50, 100), (100, None)),
    (25, 0, (0, 25), (0, None)),
    (100, 0, (0, 100), (0, None)),
    (50, 25, (25, 50), (25, None)),
    (0, 0, (0, None), (0, None)),
]


@pytest.mark.parametrize("old,new,first,second", WEIGHT_STEPS)
def test_a_weight_step_holds_pods_for_the_higher_weight_first(old, new, first, second):
    assert canary_math.weight_step(old, new) == (first, second)


TRACKS = [
    # traffic, replicas, weight, podsForWeight, (stable, canary)
    ("replicas", 20, 5, None, (19, 1)),
    ("replicas", 20, 5, 25, (19, 5)),
    ("replicas", 20, 0, 25, (20, 5)),
    ("replicas", 4, 100, 0, (4, 4)),
    ("nlb", 4, 5, None, (4, 1)),
    ("nlb", 4, 5, 50, (4, 2)),
    ("alb", 4, 0, 100, (4, 4)),
    ("nginx", 10, 25, 5, (10, 3)),
]


@pytest.mark.parametrize("traffic,replicas,weight,pods_for,expected", TRACKS)
def test_track_replicas_take_the_larger_count_of_both_weights(traffic, replicas, weight, pods_for, expected):
    assert canary_math.track_replicas(traffic, replicas, weight, pods_for) == expected


def test_nearest_shares_take_constant_time_at_any_size():
    assert nearest_shares(2**31 - 1, 25) == (25.0, 25.0)
    assert nearest_shares(3, 50) == (33.33, 66.67)


@pytest.mark.parametrize("traffic,replicas,weight,share", [
    ("replicas", 4, 5, 25.0), ("replicas", 4, 25, 25.0), ("replicas", 4, 50, 50.0), ("replicas", 4, 100, 100.0),
    ("replicas", 20, 5, 5.0), ("replicas", 3, 50, 33.33), ("nlb", 4, 5, 5.0), ("dns", 2, 1, 1.0),
])
def test_effective_share_is_the_pods_share_in_replicas_mode(traffic, replicas, weight, share):
    from model.canary_math import effective_share

    assert effective_share(traffic, replicas, weight) == share


def test_feasible_weights_are_the_exact_splits():
    from model.canary_math import feasible_weights

    assert feasible_weights(4) == [25, 50, 75, 100]
    assert feasible_weights(20)[:3] == [5, 10, 15] and feasible_weights(1) == [100]


def test_step_shares_warn_where_the_pods_cannot_give_the_weight_and_refuse_where_no_split_serves_it():
    from model.canary_math import step_shares

    shares, warnings, refusals = step_shares("replicas", 4, [5, 25, 50, 100])
    assert shares == [25.0, 25.0, 50.0, 100.0] and refusals == []
    assert warnings == ["step 5% is judged at 25%, the share 1 of 4 pods give (nearest exact weights: 25%; exact 5% "
                        "needs a multiple of 20 pods)"]
    assert step_shares("replicas", 20, [5, 25, 50, 100]) == ([5.0, 25.0, 50.0, 100.0], [], [])
    assert step_shares("nlb", 4, [1, 5]) == ([1.0, 5.0], [], [])
    _, _, refusals = step_shares("replicas", 1, [5, 100])
    assert refusals == ["step 5% cannot be served by 1 pod: the canary would get 0% of the traffic; weights that can: "
                        "100% (or more replicas, or a weighted traffic mode)"]
