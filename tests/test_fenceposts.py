"""The Deployment controller's arithmetic against the upstream Kubernetes test tables.

Cases ported as data from kubernetes/kubernetes pkg/controller/deployment/rolling_test.go and
pkg/controller/deployment/util/deployment_util_test.go.
"""

from types import SimpleNamespace

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


def case(name, **fields):
    """One row of an upstream table, its fields named; `name` is the row's id."""
    return pytest.param(SimpleNamespace(**fields), id=name)


# TestResolveFenceposts
RESOLVE_FENCEPOSTS = [
    case("0%/0% at 0 replicas: unavailable becomes 1", surge="0%", unavailable="0%", desired=0, want=(0, 1)),
    case("39% of 10: surge rounds up, unavailable down", surge="39%", unavailable="39%", desired=10, want=(4, 3)),
    case("bad maxSurge", surge="oops", unavailable="39%", desired=10, want=ValueError),
    case("bad maxUnavailable", surge="55%", unavailable="urg", desired=10, want=ValueError),
    case("no maxSurge", surge=None, unavailable="39%", desired=10, want=(0, 3)),
    case("no maxUnavailable", surge="39%", unavailable=None, desired=10, want=(4, 0)),
    case("neither: unavailable becomes 1", surge=None, unavailable=None, desired=10, want=(0, 1)),
]


@pytest.mark.parametrize("c", RESOLVE_FENCEPOSTS)
def test_resolve_fenceposts(c):
    if c.want is ValueError:
        with pytest.raises(ValueError):
            resolve_fenceposts(c.surge, c.unavailable, c.desired)
        return
    assert resolve_fenceposts(c.surge, c.unavailable, c.desired) == c.want


# TestNewRSNewReplicas: allRSs holds one other ReplicaSet of 5 replicas (upstream's rs5); maxUnavailable 1.
NEW_RS_NEW_REPLICAS = [
    case("can not scale up - to newRSReplicas", strategy=ROLLING_UPDATE, replicas=1, new_rs=5, surge=1, want=5),
    case("scale up - to depReplicas", strategy=ROLLING_UPDATE, replicas=6, new_rs=2, surge=10, want=6),
    case("recreate - to depReplicas", strategy=RECREATE, replicas=3, new_rs=1, surge=1, want=3),
]


@pytest.mark.parametrize("c", NEW_RS_NEW_REPLICAS)
def test_new_rs_new_replicas(c):
    spec = Strategy(c.strategy, c.replicas, c.surge, 1)
    assert new_rs_new_replicas(spec, [ReplicaSet(5)], ReplicaSet(c.new_rs)) == c.want


# TestMaxUnavailable (maxSurge 1)
MAX_UNAVAILABLE = [
    case("less than replicas", replicas=10, unavailable=5, want=5),
    case("equal replicas", replicas=10, unavailable=10, want=10),
    case("greater than replicas", replicas=5, unavailable=10, want=5),
    case("replicas is 0", replicas=0, unavailable=10, want=0),
    case("less than replicas with percents", replicas=10, unavailable="50%", want=5),
    case("equal replicas with percents", replicas=10, unavailable="100%", want=10),
    case("greater than replicas with percents", replicas=5, unavailable="100%", want=5),
]


@pytest.mark.parametrize("c", MAX_UNAVAILABLE)
def test_max_unavailable(c):
    assert max_unavailable(Strategy(ROLLING_UPDATE, c.replicas, 1, c.unavailable)) == c.want


def test_max_unavailable_is_zero_for_recreate():
    assert max_unavailable(Strategy(RECREATE, 0, None, None)) == 0
    assert max_unavailable(Strategy(RECREATE, 5, None, None)) == 0


# TestDeploymentController_reconcileNewReplicaSet (maxUnavailable 0); want: the new RS's replicas, None = no scaling
RECONCILE_NEW = [
    case("maxSurge 0: no scale up", replicas=10, surge=0, old=10, new=0, want=None),
    case("scale up to maxSurge", replicas=10, surge=2, old=10, new=0, want=2),
    case("scale up to replicas + maxSurge - old", replicas=10, surge=2, old=5, new=0, want=7),
    case("already at maxSurge", replicas=10, surge=2, old=10, new=2, want=None),
    case("scale down an oversized new RS", replicas=10, surge=2, old=2, new=11, want=10),
]


@pytest.mark.parametrize("c", RECONCILE_NEW)
def test_reconcile_new_replica_set(c):
    spec = Strategy(ROLLING_UPDATE, c.replicas, c.surge, 0)
    new_rs = ReplicaSet(c.new)
    assert reconcile_new_replica_set(spec, [new_rs, ReplicaSet(c.old)], new_rs) == c.want


# TestDeploymentController_reconcileOldReplicaSets (maxSurge 0)
RECONCILE_OLD = [
    case("maxUnavailable 0: still one old pod down", replicas=10, unavailable=0, old=10, new=0, ready_old=10,
         ready_new=0, scales=True, old_after=9),
    case("scale down by maxUnavailable", replicas=10, unavailable=2, old=10, new=0, ready_old=10, ready_new=0,
         scales=True, old_after=8),
    case("unhealthy old replicas cleaned up", replicas=10, unavailable=2, old=10, new=0, ready_old=8, ready_new=0,
         scales=True, old_after=8),
    case("1 unhealthy cleaned up, 1 ready scaled down", replicas=10, unavailable=2, old=10, new=0, ready_old=9,
         ready_new=0, scales=True, old_after=8),
    case("the new RS's unavailable pods block scale-down", replicas=10, unavailable=2, old=8, new=2, ready_old=8,
         ready_new=0, scales=False, old_after=8),
]


@pytest.mark.parametrize("c", RECONCILE_OLD)
def test_reconcile_old_replica_sets(c):
    spec = Strategy(ROLLING_UPDATE, c.replicas, 0, c.unavailable)
    remaining, scaled = reconcile_old_replica_sets(spec, [ReplicaSet(c.old, c.ready_old)],
                                                   ReplicaSet(c.new, c.ready_new))
    assert (scaled > 0) == c.scales
    assert remaining[0].replicas == c.old_after


# TestDeploymentController_cleanupUnhealthyReplicas
CLEANUP = [
    case("clean up one of two unhealthy", old=10, ready=8, max_cleanup=1, cleaned=1),
    case("clean up all unhealthy", old=10, ready=8, max_cleanup=3, cleaned=2),
    case("no room to clean up", old=10, ready=8, max_cleanup=0, cleaned=0),
    case("nothing unhealthy", old=10, ready=10, max_cleanup=3, cleaned=0),
]


@pytest.mark.parametrize("c", CLEANUP)
def test_cleanup_unhealthy_replicas(c):
    remaining, cleaned = cleanup_unhealthy_replicas([ReplicaSet(c.old, c.ready)], c.max_cleanup)
    assert cleaned == c.cleaned
    assert remaining[0].replicas == c.old - c.cleaned


# TestDeploymentController_scaleDownOldReplicaSetsForRollingUpdate (maxSurge 0)
SCALE_DOWN = [
    case("maxUnavailable 0: one pod down", replicas=10, unavailable=0, ready=10, old=10, scales=True, old_after=9),
    case("scale down by maxUnavailable", replicas=10, unavailable=2, ready=10, old=10, scales=True, old_after=8),
    case("already at the floor", replicas=10, unavailable=2, ready=8, old=10, scales=False, old_after=10),
    case("no old pods", replicas=10, unavailable=2, ready=10, old=0, scales=False, old_after=0),
    case("too few ready pods", replicas=10, unavailable=2, ready=1, old=10, scales=False, old_after=10),
]


@pytest.mark.parametrize("c", SCALE_DOWN)
def test_scale_down_old_replica_sets(c):
    spec = Strategy(ROLLING_UPDATE, c.replicas, 0, c.unavailable)
    old_rs = ReplicaSet(c.old, c.ready)
    remaining, scaled = scale_down_old_replica_sets(spec, [old_rs], [old_rs])
    assert (scaled > 0) == c.scales
    assert remaining[0].replicas == c.old_after


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
