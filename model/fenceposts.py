"""The Deployment controller's rollout arithmetic, as plain functions.

Mirrors `pkg/controller/deployment/util/deployment_util.go` and the ReplicaSet scaling in
`pkg/controller/deployment/rolling.go` of Kubernetes, so that forecasts and validation agree
with what the cluster will do. Table tests in tests/test_fenceposts.py carry the upstream cases.
No Pulumi import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

RECREATE = "Recreate"
ROLLING_UPDATE = "RollingUpdate"

_PERCENT = re.compile(r"([0-9]+)%")
# Kubernetes parses the number of "N%" as an int64 (strconv.Atoi): more digits are not a percentage.
_MAX_PERCENT = 2**63 - 1

IntOrPercent = int | str


def parse_percent(value: str) -> int | None:
    """`"25%"` → 25; anything else → None (also text around it, and numbers past int64)."""
    match = _PERCENT.fullmatch(value) if isinstance(value, str) else None
    if match is None or len(match.group(1).lstrip("0")) > 19:
        return None
    percent = int(match.group(1).lstrip("0") or "0")
    return percent if percent <= _MAX_PERCENT else None


def is_zero(value: IntOrPercent) -> bool:
    """The API's literal zero test for maxSurge/maxUnavailable (0 and "0%" alike)."""
    if isinstance(value, int):
        return value == 0
    return parse_percent(value) == 0


def scaled_value(value: IntOrPercent | None, total: int, round_up: bool) -> int:
    """GetScaledValueFromIntOrPercent: an int stays, "N%" of total rounds up or down.

    Raises ValueError for a string that is not a percentage, as upstream does.
    """
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    percent = parse_percent(value)
    if percent is None:
        raise ValueError(f"invalid value for IntOrString: invalid value {value!r}: not a percentage")
    # Integer arithmetic: upstream's float ceil/floor agrees for these magnitudes.
    return -(-percent * total // 100) if round_up else percent * total // 100


def resolve_fenceposts(max_surge: IntOrPercent | None, max_unavailable: IntOrPercent | None,
                       desired: int) -> tuple[int, int]:
    """ResolveFenceposts: surge rounds up, unavailable rounds down, 0/0 becomes 0/1."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        # Otherwise the rollout could never make progress.
        unavailable = 1
    return surge, unavailable


@dataclass(frozen=True)
class Strategy:
    """The parts of a Deployment spec the rollout arithmetic reads."""

    type: str
    replicas: int
    max_surge: IntOrPercent | None = "25%"
    max_unavailable: IntOrPercent | None = "25%"


def max_unavailable(strategy: Strategy) -> int:
    """MaxUnavailable: resolved, capped at replicas; 0 for Recreate or zero replicas."""
    if strategy.type != ROLLING_UPDATE or strategy.replicas == 0:
        return 0
    _, unavailable = resolve_fenceposts(strategy.max_surge, strategy.max_unavailable, strategy.replicas)
    return min(unavailable, strategy.replicas)


def max_surge(strategy: Strategy) -> int:
    """MaxSurge: resolved surge; 0 for Recreate."""
    if strategy.type != ROLLING_UPDATE:
        return 0
    surge, _ = resolve_fenceposts(strategy.max_surge, strategy.max_unavailable, strategy.replicas)
    return surge


@dataclass(frozen=True)
class ReplicaSet:
    """spec.replicas and status.availableReplicas of one ReplicaSet."""

    replicas: int
    available: int = 0


def new_rs_new_replicas(strategy: Strategy, all_rss: list[ReplicaSet], new_rs: ReplicaSet) -> int:
    """NewRSNewReplicas: how far the new ReplicaSet may scale up in one sync."""
    if strategy.type == RECREATE:
        return strategy.replicas
    surge = scaled_value(strategy.max_surge, strategy.replicas, True)
    current = sum(rs.replicas for rs in all_rss)
    max_total = strategy.replicas + surge
    if current >= max_total:
        return new_rs.replicas
    scale_up = min(max_total - current, strategy.replicas - new_rs.replicas)
    return new_rs.replicas + scale_up


def reconcile_new_replica_set(strategy: Strategy, all_rss: list[ReplicaSet], new_rs: ReplicaSet) -> int | None:
    """reconcileNewReplicaSet: the new ReplicaSet's next size, or None when it stays."""
    if new_rs.replicas == strategy.replicas:
        return None
    if new_rs.replicas > strategy.replicas:
        return strategy.replicas
    target = new_rs_new_replicas(strategy, all_rss, new_rs)
    return None if target == new_rs.replicas else target


def cleanup_unhealthy_replicas(old_rss: list[ReplicaSet], max_cleanup: int) -> tuple[list[ReplicaSet], int]:
    """cleanupUnhealthyReplicas: drop unavailable old pods first, up to max_cleanup.

    old_rss must be oldest first, as upstream sorts them by creation time.
    """
    result = list(old_rss)
    total = 0
    for i, rs in enumerate(result):
        if total >= max_cleanup:
            break
        if rs.replicas == 0 or rs.replicas == rs.available:
            continue
        count = min(max_cleanup - total, rs.replicas - rs.available)
        result[i] = replace(rs, replicas=rs.replicas - count)
        total += count
    return result, total


def scale_down_old_replica_sets(strategy: Strategy, all_rss: list[ReplicaSet],
                                old_rss: list[ReplicaSet]) -> tuple[list[ReplicaSet], int]:
    """scaleDownOldReplicaSetsForRollingUpdate: scale old sets down while availability allows."""
    min_available = strategy.replicas - max_unavailable(strategy)
    available = sum(rs.available for rs in all_rss)
    if available <= min_available:
        return list(old_rss), 0
    result = list(old_rss)
    to_scale = available - min_available
    total = 0
    for i, rs in enumerate(result):
        if total >= to_scale:
            break
        if rs.replicas == 0:
            continue
        count = min(rs.replicas, to_scale - total)
        # Pods scaled away are gone, available ones included.
        result[i] = ReplicaSet(rs.replicas - count, min(rs.available, rs.replicas - count))
        total += count
    return result, total


def reconcile_old_replica_sets(strategy: Strategy, old_rss: list[ReplicaSet],
                               new_rs: ReplicaSet) -> tuple[list[ReplicaSet], int]:
    """reconcileOldReplicaSets: cleanup, then scale-down bounded by MinAvailable.

    Returns the old ReplicaSets after the sync and how many pods were scaled away.
    """
    old_count = sum(rs.replicas for rs in old_rss)
    if old_count == 0:
        return list(old_rss), 0
    all_count = old_count + new_rs.replicas
    min_available = strategy.replicas - max_unavailable(strategy)
    new_unavailable = new_rs.replicas - new_rs.available
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return list(old_rss), 0
    cleaned, cleanup_count = cleanup_unhealthy_replicas(old_rss, max_scaled_down)
    scaled, scaled_count = scale_down_old_replica_sets(strategy, cleaned + [new_rs], cleaned)
    return scaled, cleanup_count + scaled_count
