"""Step-by-step forecast of a Deployment update, driven by the controller's own arithmetic.

The model: the state is (old, new, newReady) starting at (N, 0, 0). Old pods are always
ready, pods scaled down vanish at once. Each round runs one controller sync (scale the new
ReplicaSet up if it may, which ends the sync; otherwise reconcile the old ReplicaSets), then
lets every new pod become ready. Recreate scales old to 0, then new to N, then they get ready.
No Pulumi import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.fenceposts import (
    RECREATE,
    ReplicaSet,
    Strategy,
    max_surge,
    max_unavailable,
    reconcile_new_replica_set,
    reconcile_old_replica_sets,
)

# A valid Deployment finishes in at most about 2N rounds; this only stops a broken model.
_MAX_ROUNDS = 100_000


@dataclass(frozen=True)
class Step:
    old: int
    new: int
    new_ready: int

    @property
    def available(self) -> int:
        return self.old + self.new_ready

    @property
    def pods(self) -> int:
        return self.old + self.new


@dataclass
class Forecast:
    strategy: str
    replicas: int
    max_surge: int | str | None
    max_unavailable: int | str | None
    surge_pods: int
    unavailable_pods: int
    steps: list[Step] = field(default_factory=list)
    syncs: int = 0

    @property
    def min_available(self) -> int:
        """The floor the controller keeps during the update (spec.replicas - maxUnavailable)."""
        return self.replicas - self.unavailable_pods

    @property
    def max_total(self) -> int:
        """The ceiling on pods during the update (spec.replicas + maxSurge)."""
        return self.replicas + self.surge_pods

    @property
    def min_available_seen(self) -> int:
        return min(s.available for s in self.steps)

    @property
    def max_pods_seen(self) -> int:
        return max(s.pods for s in self.steps)

    def to_json(self) -> dict:
        return {
            "strategy": self.strategy,
            "replicas": self.replicas,
            "maxSurge": self.surge_pods,
            "maxUnavailable": self.unavailable_pods,
            "minAvailable": self.min_available,
            "maxTotal": self.max_total,
            "steps": [{"old": s.old, "new": s.new, "newReady": s.new_ready, "available": s.available}
                      for s in self.steps],
            "minAvailableSeen": self.min_available_seen,
            "maxPodsSeen": self.max_pods_seen,
            "syncs": self.syncs,
        }


def forecast(replicas: int, strategy: str = "RollingUpdate", max_surge_value: int | str | None = "25%",
             max_unavailable_value: int | str | None = "25%") -> Forecast:
    """Forecast the update of a Deployment of `replicas` pods from one template to the next."""
    spec = Strategy(strategy, replicas, max_surge_value, max_unavailable_value)
    result = Forecast(
        strategy=strategy, replicas=replicas, max_surge=max_surge_value, max_unavailable=max_unavailable_value,
        surge_pods=max_surge(spec), unavailable_pods=max_unavailable(spec),
    )
    if strategy == RECREATE:
        # Recreate has no fenceposts: every old pod goes before any new one starts.
        result.surge_pods = 0
        result.unavailable_pods = replicas
        result.steps = [Step(replicas, 0, 0), Step(0, 0, 0), Step(0, replicas, 0), Step(0, replicas, replicas)]
        result.syncs = 2
        if replicas == 0:
            result.steps = [Step(0, 0, 0)]
            result.syncs = 0
        return result

    old, new, new_ready = replicas, 0, 0
    result.steps.append(Step(old, new, new_ready))
    for _ in range(_MAX_ROUNDS):
        if old == 0 and new_ready == replicas:
            break
        # (a) one sync of the controller
        result.syncs += 1
        old_rs, new_rs = ReplicaSet(old, old), ReplicaSet(new, new_ready)
        target = reconcile_new_replica_set(spec, [old_rs, new_rs], new_rs)
        if target is not None:
            new = target
            new_ready = min(new_ready, new)
        else:
            remaining, _ = reconcile_old_replica_sets(spec, [old_rs], new_rs)
            old = remaining[0].replicas
        result.steps.append(Step(old, new, new_ready))
        # (b) every pod of the new ReplicaSet becomes ready
        if new_ready != new:
            new_ready = new
            result.steps.append(Step(old, new, new_ready))
    else:  # pragma: no cover - guarded by validation
        raise RuntimeError(f"rollout forecast did not converge for {spec}")
    # Syncs that changed nothing are not counted: they are the controller waiting.
    result.steps = _dedupe(result.steps)
    return result


def _dedupe(steps: list[Step]) -> list[Step]:
    out: list[Step] = []
    for step in steps:
        if not out or out[-1] != step:
            out.append(step)
    return out
