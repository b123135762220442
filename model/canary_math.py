"""Canary replica arithmetic, as small pure functions (after Argo Rollouts' canary.go).

No Pulumi import.
"""

from __future__ import annotations

from math import gcd
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (model.config imports this module)
    from model.config import Release

# Route53 alias records to a load balancer have a fixed TTL of 60 s: resolvers and clients may keep
# answering with the old weights that long after a change.
ALIAS_TTL_SECONDS = 60
# Route53 says a change reaches all its authoritative name servers "generally within 60 seconds"
# (the change's status goes PENDING → INSYNC); the TTL only starts counting after that.
ROUTE53_PROPAGATION_SECONDS = 60


def split_replicas(total: int, weight: int) -> tuple[int, int]:
    """Split `total` pods into (stable, canary) for a replica-weighted canary.

    The canary gets the count whose share is closest to `weight` percent, never 0 while
    weight > 0 and never all pods while weight < 100 (both need total >= 2). Ties go to
    the smaller canary: a canary earns traffic, it is not handed it.
    """
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be 0..100, got {weight}")
    if total < 0:
        raise ValueError(f"total must not be negative, got {total}")
    if weight == 0 or total == 0:
        return total, 0
    if weight == 100:
        return 0, total
    # round-half-down of total * weight / 100, in integers
    canary = (total * weight * 2 + 99) // 200
    canary = min(max(canary, 1), total - 1)
    return total - canary, canary


def share_percent(stable: int, canary: int) -> float:
    """The share of pods (and so of traffic behind one Service) that the canary gets."""
    total = stable + canary
    return 0.0 if total == 0 else round(100 * canary / total, 2)


def exact_total(weight: int) -> int:
    """The fewest pods for which a replica split gives exactly `weight` percent (5% → 20)."""
    if weight in (0, 100):
        return 1
    return 100 // gcd(weight, 100)


def nearest_shares(total: int, weight: int) -> tuple[float, float]:
    """The achievable canary shares at `total` pods just below and above `weight` (constant time)."""
    if total <= 0:
        return 0.0, 100.0
    below = total * weight // 100  # canary pods whose share is at most the weight
    above = -(-total * weight // 100)  # ... at least the weight
    return round(100 * below / total, 2), round(100 * above / total, 2)


def weighted_canary_replicas(stable_replicas: int, weight: int) -> int:
    """Canary pods when the load balancer splits traffic by weight.

    The stable fleet keeps its full size (sized for all traffic, so an abort is instant); the
    canary gets its share of that size, rounded up, at least 1 while weight > 0 and none at 0:
    5% of traffic costs one pod, not nineteen stable ones.
    """
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be 0..100, got {weight}")
    if weight == 0:
        return 0
    return max(1, -(-stable_replicas * weight // 100))


def track_replicas(traffic: str, replicas: int, weight: int, pods_for_weight: int | None = None) -> tuple[int, int]:
    """(stable, canary) pods of a canary in the weight form.

    With `pods_for_weight` (set between the two updates of a weight step) each track keeps
    the larger of its pods at `weight` and at `pods_for_weight`: pods come up before traffic
    reaches them and leave only after traffic has left them.
    """
    weights = [weight] if pods_for_weight is None else [weight, pods_for_weight]
    if traffic == "replicas":
        splits = [split_replicas(replicas, w) for w in weights]
    else:
        splits = [(replicas, weighted_canary_replicas(replicas, w)) for w in weights]
    return max(s for s, _ in splits), max(c for _, c in splits)


def weight_step(old: int, new: int) -> tuple[tuple[int, int | None], tuple[int, None]]:
    """The two updates of a weight change, as (canary.weight, canary.podsForWeight) each.

    First: the lower weight, with pods for the higher one (raising: canary pods come up and
    are ready while traffic stays; lowering: traffic leaves while the pods stay). Second: the
    new weight alone, which on the way down removes the pods traffic no longer reaches.
    """
    low, high = min(old, new), max(old, new)
    return (low, high if high != low else None), (new, None)


def weight_warning(release: str, total: int, requested: int | None, effective: float | None,
                   traffic: str = "replicas") -> str | None:
    """The warning `pulumi up` logs (and preview shows) when pod counts cannot give the requested weight."""
    if traffic != "replicas" or requested is None or effective is None or abs(effective - requested) <= 1:
        return None
    below, above = nearest_shares(total, requested)
    return (f"release {release}: canary weight {requested}% is approximated as {effective:g}% with {total} pods; "
            f"an exact split needs a multiple of {exact_total(requested)} pods, or a weighted traffic mode "
            f"(traffic: nlb, alb, nginx, gateway, istio, skipper or dns); nearest shares at {total} pods: "
            f"{below:g}% and {above:g}%")


def settle_seconds(release: Release) -> float:
    """How long after a weight update has applied before traffic follows it: what `rollout canary`
    waits before judging a step, and before calling an abort complete.

    0 where the split is applied per request by a proxy or load balancer the update configures. For
    `dns`, a Route53 change first reaches Route53's name servers (up to ROUTE53_PROPAGATION_SECONDS),
    then resolvers keep the old answer for the alias TTL (ALIAS_TTL_SECONDS); even after both, the
    split is per resolver, not per request.
    """
    if release.strategy != "Canary" or release.traffic != "dns":
        return 0.0
    return float(ROUTE53_PROPAGATION_SECONDS + ALIAS_TTL_SECONDS)


def effective_share(traffic: str, replicas: int, weight: int) -> float:
    """The share of traffic (percent) the canary gets at `weight` once the step's update is live: in
    `replicas` mode the share of the pods (split_replicas), in the weighted modes the weight itself."""
    if traffic != "replicas":
        return float(weight)
    return share_percent(*split_replicas(replicas, weight))


def feasible_weights(replicas: int) -> list[int]:
    """The weights (1..100) whose pod split in `replicas` mode gives exactly that share."""
    return [w for w in range(1, 101) if replicas > 0 and replicas * w % 100 == 0
            and split_replicas(replicas, w)[1] == replicas * w // 100]


def step_shares(traffic: str, replicas: int, steps: list[int]) -> tuple[list[float], list[str], list[str]]:
    """What `rollout canary` judges at each step: (effective shares, warnings, refusals).

    Replicas mode rounds each weight to the share of pods closest to it (split_replicas), and the
    judge judges that share: a warning names each step whose share differs from its weight by more
    than a point, with the nearest weights the pods give exactly. A step that gives the canary no
    pod at all, or the whole traffic below 100% (1 replica), cannot be judged: refused, with the
    weights that can be."""
    shares = [effective_share(traffic, replicas, w) for w in steps]
    warnings, refusals = [], []
    if traffic != "replicas":
        return shares, warnings, refusals
    exact = feasible_weights(replicas)
    for weight, share in zip(steps, shares, strict=True):
        canary = split_replicas(replicas, weight)[1]
        if (canary == 0) or (share >= 100 and weight < 100):
            refusals.append(f"step {weight}% cannot be served by {replicas} pod{'s' * (replicas != 1)}: the canary "
                            f"would get {share:g}% of the traffic; weights that can: "
                            f"{', '.join(f'{w}%' for w in exact)} (or more replicas, or a weighted traffic mode)")
        elif abs(share - weight) > 1:
            below = max((w for w in exact if w <= weight), default=None)
            above = min((w for w in exact if w >= weight), default=None)
            nearest = " and ".join(f"{w}%" for w in dict.fromkeys(x for x in (below, above) if x is not None))
            warnings.append(f"step {weight}% is judged at {share:g}%, the share {canary} of {replicas} pods give "
                            f"(nearest exact weights: {nearest}; exact {weight}% needs a multiple of "
                            f"{exact_total(weight)} pods)")
    return shares, warnings, refusals
