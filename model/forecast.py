"""Step-by-step forecast of a Deployment update, driven by the controller's own arithmetic.

The model: the state is (old, new, newReady) starting at (N, 0, 0). Old pods are always
ready, pods scaled down vanish at once. Each round runs one controller sync (scale the new
ReplicaSet up if it may, which ends the sync; otherwise reconcile the old ReplicaSets), then
lets every new pod become ready. Recreate scales old to 0, then new to N, then they get ready.
No Pulumi import.

Any replica count finishes in time proportional to what is listed: once the update settles
into its steady cycle (scale new up by maxSurge + maxUnavailable, let it get ready, scale old
down by as much), the controller's own arithmetic runs one cycle and the remaining identical
cycles are counted, not simulated. A forecast of more than LISTED_STEPS steps lists the first
and the last SUMMARY_STEPS of them and counts those in between; the fewest available pods,
the most pods and the number of syncs are always exact.
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

# A forecast up to this many steps lists every step (a Deployment of about 3,300 pods at
# maxSurge 1 / maxUnavailable 0, any size at the 25%/25% defaults); past it, the first and
# last SUMMARY_STEPS are listed and the ones in between counted.
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


@dataclass(frozen=True)
class _Cycles:
    """`count` steady cycles from the state (low - new, new, new), each one of three steps:

    scale new up by `delta` (`low - n`, `n + delta`, `n` ready), the new pods get ready, scale
    old down by `delta`. `low` is spec.replicas - maxUnavailable, `delta` maxSurge + maxUnavailable.
    """

    new: int
    count: int
    low: int
    delta: int

    def __len__(self) -> int:
        return 3 * self.count

    def step(self, index: int) -> Step:
        cycle, phase = divmod(index, 3)
        n = self.new + cycle * self.delta
        old = self.low - n
        if phase == 0:
            return Step(old, n + self.delta, n)
        if phase == 1:
            return Step(old, n + self.delta, n + self.delta)
        return Step(old - self.delta, n + self.delta, n + self.delta)


class _RollingRun:
    """The rounds of a RollingUpdate as a list of explicit steps and runs of steady cycles."""

    def __init__(self, spec: Strategy, surge: int, unavailable: int):
        self.spec = spec
        self.replicas = spec.replicas
        self.low = spec.replicas - unavailable  # MinAvailable
        self.high = spec.replicas + surge  # MaxTotal
        self.delta = self.high - self.low
        self.segments: list[list[Step] | _Cycles] = []
        self.syncs = 0
        self.lowest_available = spec.replicas
        self.highest_pods = spec.replicas
        self._last: Step | None = None

    @property
    def length(self) -> int:
        return sum(len(segment) for segment in self.segments)

    def _add(self, step: Step) -> None:
        # Syncs that changed nothing are not listed: they are the controller waiting.
        if step == self._last:
            return
        if not self.segments or isinstance(self.segments[-1], _Cycles):
            self.segments.append([])
        self.segments[-1].append(step)  # type: ignore[union-attr]
        self._last = step
        self.lowest_available = min(self.lowest_available, step.available)
        self.highest_pods = max(self.highest_pods, step.pods)

    def _round(self, old: int, new: int) -> tuple[int, int]:
        """One controller sync from (old, new, all new ready), then the new pods get ready."""
        self.syncs += 1
        old_rs, new_rs = ReplicaSet(old, old), ReplicaSet(new, new)
        target = reconcile_new_replica_set(self.spec, [old_rs, new_rs], new_rs)
        if target is not None:
            after_old, after_new = old, target
        else:
            remaining, _ = reconcile_old_replica_sets(self.spec, [old_rs], new_rs)
            after_old, after_new = remaining[0].replicas, new
        ready = min(new, after_new)
        self._add(Step(after_old, after_new, ready))
        if ready != after_new:
            self._add(Step(after_old, after_new, after_new))
        if (after_old, after_new) == (old, new):
            raise RuntimeError(f"rollout forecast made no progress for {self.spec} at {old}+{new}")
        return after_old, after_new

    def simulate(self) -> None:
        old, new = self.replicas, 0
        self._add(Step(old, new, new))
        while not (old == 0 and new == self.replicas):
            steady = old > 0 and new < self.replicas and old + new == self.low and self.delta > 0
            cycles = old // self.delta if steady else 0
            if cycles < 2:
                old, new = self._round(old, new)
                continue
            # One steady cycle by the controller's arithmetic; if it is the cycle predicted,
            # the other cycles - 1 are the same shape and counted instead of run.
            expected = (old - self.delta, new + self.delta)
            old, new = self._round(*self._round(old, new))
            if (old, new) != expected:
                continue
            segment = _Cycles(new, cycles - 1, self.low, self.delta)
            self.segments.append(segment)
            self.syncs += 2 * segment.count
            # Every cycle shows low ready pods at its low point and high pods at its peak.
            self.lowest_available = min(self.lowest_available, self.low)
            self.highest_pods = max(self.highest_pods, self.high)
            old, new = old - segment.count * self.delta, new + segment.count * self.delta
            self._last = Step(old, new, new)

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
