"""The Deployment controller's arithmetic against the upstream Kubernetes test tables.

Cases ported as data from kubernetes/kubernetes pkg/controller/deployment/rolling_test.go and
pkg/controller/deployment/util/deployment_util_test.go.
"""

import pytest

from model.fenceposts import (
    RECREATE,
    ROLLING_UPDATE,
    ReplicaSet,
    Strategy,
    cleanup_unhealthy_replicas,
    max_unavailable,
    new_rs_new_replicas,
    reconcile_new_replica_set,
    reconcile_old_replica_sets,
    resolve_fenceposts,
    scale_down_old_replica_sets,
)

# TestResolveFenceposts: (maxSurge, maxUnavailable, desired, surge, unavailable, error)
RESOLVE_FENCEPOSTS = [
    ("0%", "0%", 0, 0, 1, False),
    ("39%", "39%", 10, 4, 3, False),
    ("oops", "39%", 10, 0, 0, True),
    ("55%", "urg", 10, 0, 0, True),
    (None, "39%", 10, 0, 3, False),
    ("39%", None, 10, 4, 0, False),
    (None, None, 10, 0, 1, False),
]


@pytest.mark.parametrize("surge,unavailable,desired,want_surge,want_unavailable,error", RESOLVE_FENCEPOSTS)
def test_resolve_fenceposts(surge, unavailable, desired, want_surge, want_unavailable, error):
    if error:
        with pytest.raises(ValueError):
            resolve_fenceposts(surge, unavailable, desired)
        return
    assert resolve_fenceposts(surge, unavailable, desired) == (want_surge, want_unavailable)


# TestNewRSNewReplicas: (strategy, deployment replicas, new RS replicas, maxSurge, expected);
# allRSs holds one other ReplicaSet of 5 replicas (upstream's rs5) and maxUnavailable is 1.
NEW_RS_NEW_REPLICAS = [
    ("can not scale up - to newRSReplicas", ROLLING_UPDATE, 1, 5, 1, 5),
    ("scale up - to depReplicas", ROLLING_UPDATE, 6, 2, 10, 6),
    ("recreate - to depReplicas", RECREATE, 3, 1, 1, 3),
]


@pytest.mark.parametrize("name,strategy,replicas,new_replicas,surge,expected", NEW_RS_NEW_REPLICAS)
def test_new_rs_new_replicas(name, strategy, replicas, new_replicas, surge, expected):
    spec = Strategy(strategy, replicas, surge, 1)
    assert new_rs_new_replicas(spec, [ReplicaSet(5)], ReplicaSet(new_replicas)) == expected


# TestMaxUnavailable: (replicas, maxUnavailable, expected); maxSurge 1
MAX_UNAVAILABLE = [
    ("less than replicas", 10, 5, 5),
    ("equal replicas", 10, 10, 10),
    ("greater than replicas", 5, 10, 5),
    ("replicas is 0", 0, 10, 0),
    ("less than replicas with percents", 10, "50%", 5),
    ("equal replicas with percents", 10, "100%", 10),
    ("greater than replicas with percents", 5, "100%", 5),
]


@pytest.mark.parametrize("name,replicas,unavailable,expected", MAX_UNAVAILABLE)
def test_max_unavailable(name, replicas, unavailable, expected):
    assert max_unavailable(Strategy(ROLLING_UPDATE, replicas, 1, unavailable)) == expected


def test_max_unavailable_is_zero_for_recreate():
    assert max_unavailable(Strategy(RECREATE, 0, None, None)) == 0
    assert max_unavailable(Strategy(RECREATE, 5, None, None)) == 0


# TestDeploymentController_reconcileNewReplicaSet: (replicas, maxSurge, old, new, scale?, expected new)
# maxUnavailable 0
RECONCILE_NEW = [
    (10, 0, 10, 0, False, None),
    (10, 2, 10, 0, True, 2),
    (10, 2, 5, 0, True, 7),
    (10, 2, 10, 2, False, None),
    (10, 2, 2, 11, True, 10),
]


@pytest.mark.parametrize("replicas,surge,old,new,scale,expected", RECONCILE_NEW)
def test_reconcile_new_replica_set(replicas, surge, old, new, scale, expected):
    spec = Strategy(ROLLING_UPDATE, replicas, surge, 0)
    new_rs = ReplicaSet(new)
    result = reconcile_new_replica_set(spec, [new_rs, ReplicaSet(old)], new_rs)
    assert (result is not None) == scale
    assert result == expected


# TestDeploymentController_reconcileOldReplicaSets:
# (replicas, maxUnavailable, old, new, ready old, ready new, scale?, expected old); maxSurge 0
RECONCILE_OLD = [
    (10, 0, 10, 0, 10, 0, True, 9),
    (10, 2, 10, 0, 10, 0, True, 8),
    (10, 2, 10, 0, 8, 0, True, 8),  # unhealthy old replicas cleaned up
    (10, 2, 10, 0, 9, 0, True, 8),  # 1 unhealthy cleaned up, 1 ready scaled down
    (10, 2, 8, 2, 8, 0, False, 8),  # the new RS's unavailable pods block further scale-down
]


@pytest.mark.parametrize("replicas,unavailable,old,new,ready_old,ready_new,scale,expected_old", RECONCILE_OLD)
def test_reconcile_old_replica_sets(replicas, unavailable, old, new, ready_old, ready_new, scale, expected_old):
    spec = Strategy(ROLLING_UPDATE, replicas, 0, unavailable)
    remaining, scaled = reconcile_old_replica_sets(spec, [ReplicaSet(old, ready_old)], ReplicaSet(new, ready_new))
    assert (scaled > 0) == scale
    assert remaining[0].replicas == expected_old


# TestDeploymentController_cleanupUnhealthyReplicas: (old, ready, max cleanup, cleaned)
CLEANUP = [
    (10, 8, 1, 1),
    (10, 8, 3, 2),
    (10, 8, 0, 0),
    (10, 10, 3, 0),
]


@pytest.mark.parametrize("old,ready,max_cleanup,expected", CLEANUP)
def test_cleanup_unhealthy_replicas(old, ready, max_cleanup, expected):
    remaining, cleaned = cleanup_unhealthy_replicas([ReplicaSet(old, ready)], max_cleanup)
    assert cleaned == expected
    assert remaining[0].replicas == old - expected


# TestDeploymentController_scaleDownOldReplicaSetsForRollingUpdate:
# (replicas, maxUnavailable, ready, old, scale?, expected old); maxSurge 0
SCALE_DOWN = [
    (10, 0, 10, 10, True, 9),
    (10, 2, 10, 10, True, 8),
    (10, 2, 8, 10, False, 10),
    (10, 2, 10, 0, False, 0),
    (10, 2, 1, 10, False, 10),
]


@pytest.mark.parametrize("replicas,unavailable,ready,old,scale,expected_old", SCALE_DOWN)
def test_scale_down_old_replica_sets(replicas, unavailable, ready, old, scale, expected_old):
    spec = Strategy(ROLLING_UPDATE, replicas, 0, unavailable)
    old_rs = ReplicaSet(old, ready)
    remaining, scaled = scale_down_old_replica_sets(spec, [old_rs], [old_rs])
    assert (scaled > 0) == scale
    assert remaining[0].replicas == expected_old


# Percentages as the API parses them (strings.TrimSuffix "%", then strconv.Atoi into an int64):
# nothing around the number, ASCII digits only, and no more than fits an int64.
@pytest.mark.parametrize("text,expected", [
    ("25%", 25), ("0%", 0), ("100%", 100), ("007%", 7), ("9223372036854775807%", 2**63 - 1),
    (" 25%", None), ("25 %", None), ("%", None), ("25", None), ("-5%", None), ("\u0662\u0665%", None), ("2.5%", None),
])
def test_parse_percent_reads_what_the_api_reads(text, expected):
    from model.fenceposts import parse_percent

    assert parse_percent(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("25%\n", None),  # `$` matched before a trailing newline
    ("9223372036854775808%", None),  # past int64: the API's Atoi fails
    ("9" * 5000 + "%", None),  # int() raised ValueError past 4300 digits
    ("0" * 5000 + "25%", 25),
])
def test_parse_percent_refuses_trailing_newlines_and_huge_numbers_without_raising(text, expected):
    from model.fenceposts import parse_percent

    assert parse_percent(text) == expected
