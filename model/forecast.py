"""Step-by-step forecast of a Deployment update, driven by the controller's own arithmetic.

The model (checked step by step against the real Deployment controller: tests/cluster/test_cluster.py): the state
is (old, new, newReady) starting at (N, 0, 0). Old pods are always ready; pods scaled down vanish at once. The
controller syncs until a sync changes nothing, as it does: every ReplicaSet it scales wakes it again (one sync
scales the new ReplicaSet up if it may, and ends there; otherwise it reconciles the old ones; the sync that creates
the new ReplicaSet, already at its first size, reconciles the old ones too). Then ONE new pod becomes ready, and
the controller settles again; and so on until every pod is new and ready. Recreate scales old to 0, then new to
N, then they get ready. No Pulumi import.

Any replica count finishes in time proportional to what is listed: once the update settles into its steady cycle
(a new pod gets ready, the controller scales old down by one, then new up by one), the controller's own
arithmetic runs one cycle and the remaining identical cycles are counted, not simulated. A forecast of more than
LISTED_STEPS steps lists the first and the last SUMMARY_STEPS of them and counts those in between; the fewest
available pods, the most pods and the number of syncs are always exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from model.fenceposts import (
    RECREATE,
    ReplicaSet,
    Strategy,
    max_surge,
    max_unavailable,
    reconcile_new_replica_set,
    reconcile_old_replica_sets,
)

# A forecast up to this many steps lists every step (a Deployment of about 3,300 pods: up to three steps a pod,
# it gets ready, old scaled down, new scaled up); past it, the first and last SUMMARY_STEPS are listed and the
# ones in between counted.
LISTED_STEPS = 10_000
SUMMARY_STEPS = 1_000


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
    # The whole update's step count; more than len(steps) when the listing is summarised,
    # in which case steps[:omitted_after] are the first steps and the rest the last ones.
    total_steps: int | None = None
    omitted_after: int | None = None
    # Exact over the whole update (summarised or not); None: computed from steps.
    lowest_available: int | None = None
    highest_pods: int | None = None

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
        if self.lowest_available is not None:
            return self.lowest_available
        return min(s.available for s in self.steps)

    @property
    def max_pods_seen(self) -> int:
        if self.highest_pods is not None:
            return self.highest_pods
        return max(s.pods for s in self.steps)

    @property
    def omitted_steps(self) -> int:
        """Steps of the update not listed in `steps` (0 unless summarised)."""
        return 0 if self.total_steps is None else self.total_steps - len(self.steps)

    def to_json(self) -> dict:
        data = {
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
        if self.omitted_steps:
            # Only in a summarised forecast: steps[:omittedAfter] come first, then omittedSteps
            # steps not listed, then the rest of steps.
            data["totalSteps"] = self.total_steps
            data["omittedSteps"] = self.omitted_steps
            data["omittedAfter"] = self.omitted_after
        return data


def forecast(replicas: int, strategy: str = "RollingUpdate", max_surge_value: int | str | None = "25%",
             max_unavailable_value: int | str | None = "25%") -> Forecast:
    """Forecast the update of a Deployment of `replicas` pods from one template to the next.

    Raises ValueError for a negative replica count or fenceposts that resolve to negative pods
    (the API rejects both; no update could finish).
    """
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ValueError(f"replicas must be a non-negative integer (got {replicas!r})")
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
    if result.surge_pods < 0 or result.unavailable_pods < 0:
        raise ValueError(f"maxSurge and maxUnavailable must not be negative (got {max_surge_value!r}, "
                         f"{max_unavailable_value!r})")

    run = _RollingRun(spec, result.surge_pods, result.unavailable_pods)
    run.simulate()
    result.syncs = run.syncs
    result.lowest_available = run.lowest_available
    result.highest_pods = run.highest_pods
    total = run.length
    if total <= LISTED_STEPS:
        result.steps = list(run.steps(0, total))
    else:
        result.steps = list(run.steps(0, SUMMARY_STEPS)) + list(run.steps(total - SUMMARY_STEPS, total))
        result.total_steps = total
        result.omitted_after = SUMMARY_STEPS
    return result


# ---------------------------------------------------------------------------------------------
# RollingUpdate: explicit rounds, and steady cycles counted instead of simulated
# ---------------------------------------------------------------------------------------------


# The three steady cycles an update settles into, each started by one new pod getting ready: the steps of one
# cycle relative to the settled state before it, how that state moves per cycle, and the syncs per cycle.
# "replace": old + ready is MinAvailable and old + new MaxTotal, so the pod frees one old pod, which frees one
# new pod; "drain": the new ReplicaSet is full, the pod frees one old pod; "ready": no old pod is left.
_CYCLE_SHAPES = {
    "replace": (((0, 0, 1), (-1, 0, 1), (-1, 1, 1)), (-1, 1, 1), 2),
    "drain": (((0, 0, 1), (-1, 0, 1)), (-1, 0, 1), 1),
    "ready": (((0, 0, 1),), (0, 0, 1), 0),
}


@dataclass(frozen=True)
class _Cycles:
    """`count` steady cycles of one shape (_CYCLE_SHAPES) from the settled state (old, new, ready)."""

    kind: str
    old: int
    new: int
    ready: int
    count: int

    def __len__(self) -> int:
        return len(_CYCLE_SHAPES[self.kind][0]) * self.count

    @property
    def syncs(self) -> int:
        return _CYCLE_SHAPES[self.kind][2] * self.count

    def end(self) -> tuple[int, int, int]:
        """The settled state after the last cycle."""
        return self._state(self.count)

    def _state(self, cycle: int) -> tuple[int, int, int]:
        move = _CYCLE_SHAPES[self.kind][1]
        return self.old + cycle * move[0], self.new + cycle * move[1], self.ready + cycle * move[2]

    def step(self, index: int) -> Step:
        shape = _CYCLE_SHAPES[self.kind][0]
        cycle, phase = divmod(index, len(shape))
        old, new, ready = self._state(cycle)
        d_old, d_new, d_ready = shape[phase]
        return Step(old + d_old, new + d_new, ready + d_ready)


class _RollingRun:
    """The steps of a RollingUpdate as a list of explicit steps and runs of steady cycles."""

    def __init__(self, spec: Strategy, surge: int, unavailable: int):
        self.spec = spec
        self.replicas = spec.replicas
        self.low = spec.replicas - unavailable  # MinAvailable
        self.high = spec.replicas + surge  # MaxTotal
        self.segments: list[list[Step] | _Cycles] = []
        self.syncs = 0
        self.lowest_available = spec.replicas
        self.highest_pods = spec.replicas
        self._last: Step | None = None

    @property
    def length(self) -> int:
        return sum(len(segment) for segment in self.segments)

    def _add(self, step: Step) -> None:
        if step == self._last:
            return
        if not self.segments or isinstance(self.segments[-1], _Cycles):
            self.segments.append([])
        self.segments[-1].append(step)  # type: ignore[union-attr]
        self._last = step
        self.lowest_available = min(self.lowest_available, step.available)
        self.highest_pods = max(self.highest_pods, step.pods)

    def _sync(self, old: int, new: int, ready: int, creating: bool) -> tuple[int, int]:
        """One controller sync (rolloutRolling); each ReplicaSet it scales is a step."""
        old_rs, new_rs = ReplicaSet(old, old), ReplicaSet(new, ready)
        target = reconcile_new_replica_set(self.spec, [old_rs, new_rs], new_rs)
        if target is not None:
            new = target
            self._add(Step(old, new, ready))
            if not creating:
                return old, new
            # The sync that creates the new ReplicaSet creates it at this size (getNewReplicaSet), so
            # reconcileNewReplicaSet finds nothing to scale and the old ReplicaSets are reconciled at once.
            new_rs = ReplicaSet(new, ready)
        remaining, _ = reconcile_old_replica_sets(self.spec, [old_rs], new_rs)
        old = remaining[0].replicas
        self._add(Step(old, new, ready))
        return old, new

    def _settle(self, old: int, new: int, ready: int, creating: bool = False) -> tuple[int, int]:
        """Sync until a sync changes nothing (the controller waiting for a pod); syncs that change
        nothing are not counted and not listed."""
        for _ in range(4):  # at most: scale new up, old down, new up again, then nothing to do
            after = self._sync(old, new, ready, creating)
            if after == (old, new) and not creating:
                return old, new
            if after != (old, new):
                self.syncs += 1
            old, new = after
            creating = False
        raise RuntimeError(f"rollout forecast did not settle for {self.spec} at {old}+{new} ({ready} ready)")

    def _steady(self, old: int, new: int, ready: int) -> tuple[str, int] | None:
        """The steady cycle a settled state is in, and how many cycles of it are left."""
        if old == 0 and new == self.replicas:
            return "ready", self.replicas - ready
        if old > 0 and old + ready == self.low and new == self.replicas:
            return "drain", old
        if old > 0 and old + ready == self.low and old + new == self.high and new < self.replicas:
            return "replace", min(old, self.replicas - new)
        return None

    def simulate(self) -> None:
        old, new, ready = self.replicas, 0, 0
        self._add(Step(old, new, ready))
        if self.replicas == 0:
            return
        old, new = self._settle(old, new, ready, creating=True)
        while not (old == 0 and ready == self.replicas):
            if ready == new:
                raise RuntimeError(f"rollout forecast made no progress for {self.spec} at {old}+{new}")
            steady = self._steady(old, new, ready)
            # One pod gets ready, and the controller settles.
            syncs = self.syncs
            ready += 1
            self._add(Step(old, new, ready))
            after = self._settle(old, new, ready)
            if steady is None or steady[1] < 2:
                old, new = after
                continue
            kind, cycles = steady
            # If that was one cycle of the steady shape by the controller's arithmetic, the other cycles - 1
            # are the same shape and counted instead of run.
            expected = _Cycles(kind, old, new, ready - 1, 1)
            old, new = after
            if (old, new, ready) != expected.end() or self.syncs - syncs != expected.syncs:
                continue
            segment = _Cycles(kind, old, new, ready, cycles - 1)
            self.segments.append(segment)
            self.syncs += segment.syncs
            old, new, ready = segment.end()
            self._last = Step(old, new, ready)

    def steps(self, start: int, stop: int) -> Iterator[Step]:
        """Steps start..stop-1 of the whole update."""
        offset = 0
        for segment in self.segments:
            size = len(segment)
            if offset >= stop:
                return
            if offset + size > start:
                first, last = max(start - offset, 0), min(stop - offset, size)
                if isinstance(segment, _Cycles):
                    for index in range(first, last):
                        yield segment.step(index)
                else:
                    yield from segment[first:last]
            offset += size


# ---------------------------------------------------------------------------------------------
# BlueGreen: capacity through a `rollout bluegreen` run (no rolling simulation: each color is complete or 0)
# ---------------------------------------------------------------------------------------------
# A blue-green run never rolls a Deployment: it starts the idle color complete beside the active one, switches the
# Services' selectors, waits out the scale-down delay and scales the old color to 0. So its forecast is its capacity:
# replicas pods at rest, 2 x replicas from the moment the new color starts until the old one is scaled down (or for
# good with --keep-old), and never fewer than replicas ready (the active color is not touched before the switch).
# Whether a cluster holds both colors is checked against what config knows (model/capacity.py: the pods' requests
# and an EKS node group's largest size); a namespace's ResourceQuota lives in the cluster and is read by operations/.


@dataclass(frozen=True)
class BlueGreenPhase:
    name: str
    active: int  # pods of the color the active Service selects
    idle: int  # pods of the other color
    serving: str  # which color the active Service selects: "old" or "new"

    @property
    def pods(self) -> int:
        return self.active + self.idle


@dataclass(frozen=True)
class BlueGreenForecast:
    replicas: int
    phases: tuple[BlueGreenPhase, ...]

    @property
    def peak_pods(self) -> int:
        return max(p.pods for p in self.phases)

    @property
    def fewest_ready(self) -> int:
        """Pods behind the active Service at every moment: the active color, complete, throughout."""
        return self.replicas

    @property
    def extra_pods(self) -> int:
        """Pods above the rest state during the switch window: the whole new color."""
        return self.peak_pods - self.phases[0].pods

    def to_json(self) -> dict[str, object]:
        return {"strategy": "BlueGreen", "replicas": self.replicas, "peakPods": self.peak_pods,
                "fewestReady": self.fewest_ready, "extraPods": self.extra_pods,
                "phases": [{"name": p.name, "activePods": p.active, "idlePods": p.idle, "pods": p.pods,
                            "serving": p.serving} for p in self.phases]}


def blue_green_forecast(replicas: int, idle_pods: int = 0, keep_old: bool = False) -> BlueGreenForecast:
    """The pods of each phase of `rollout bluegreen` for a release of `replicas` pods per color, whose idle color
    runs `idle_pods` now (0: scaled down or never deployed; replicas: a preview is already up)."""
    old_after = replicas if keep_old else 0
    return BlueGreenForecast(replicas, (
        BlueGreenPhase("at rest", replicas, idle_pods, "old"),
        BlueGreenPhase("new color up behind the preview Service, judged", replicas, replicas, "old"),
        BlueGreenPhase("switch (the Services' selectors only)", replicas, replicas, "new"),
        BlueGreenPhase("scale-down delay (undo switches back)", replicas, replicas, "new"),
        BlueGreenPhase("old color kept (--keep-old)" if keep_old else "old color scaled to 0", replicas, old_after,
                       "new"),
    ))
