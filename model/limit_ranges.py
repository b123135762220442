"""Whether a namespace's LimitRange admits a pod: its `min`, `max` and `maxLimitRequestRatio` bounds.

A port of the validation of the API server's LimitRanger admission plugin
(k8s.io/kubernetes plugin/pkg/admission/limitranger/admission.go, v1.35: `PodValidateLimitFunc`, `minConstraint`,
`maxConstraint`, `limitRequestRatioConstraint`, `requestLimitEnforcedValues`), its rules and its messages:

- `min` (a `Container` item: each container; a `Pod` item: the pod's totals): the request must be set and at least
  the bound, and a limit, where set, too ("minimum cpu usage per Container is 100m, but request is 50m").
- `max`: the limit must be set and at most the bound, and a request, where set, too ("maximum cpu usage per
  Container is 500m.  No limit is specified": the two spaces are upstream's).
- `maxLimitRequestRatio`: request and limit both set and not 0, and limit / request at most the bound.

Values compare as upstream's do: in thousandths rounded up when none is past int64's milli range, else in units
rounded up. What is checked are the requests and limits a pod is admitted with, after the API server's defaulting
and the LimitRanger's own Container defaults (operations/live_capacity.py computes those): the plugin mutates
(defaults) before it validates. Upstream reports the first LimitRange that refuses a pod; here each one's lines
are given. The bound is shown as the API server stores it (its canonical form); the pod's value as the release
gives it (upstream shows it canonical: "1000m" as "1").

The app's pod has one container and no init or sidecar containers (components/pod_template.py), so a `Pod`
item's totals are that container's requests and limits; pod-level `resources` are not set either. Items of other
types (`PersistentVolumeClaim`) bound no pod. No Pulumi import.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from model.quantity import parse_quantity

# resource.MaxMilliValue: past it, upstream compares whole units (a thousandth would overflow int64).
MAX_MILLI_VALUE = (2**63 - 1) // 1000
CONTAINER, POD = "Container", "Pod"


@dataclass(frozen=True)
class LimitRangeItem:
    """One item of a LimitRange's `spec.limits`: its type and its bounds (resource name → quantity)."""

    type: str
    min: Mapping[str, str] = field(default_factory=dict)
    max: Mapping[str, str] = field(default_factory=dict)
    max_limit_request_ratio: Mapping[str, str] = field(default_factory=dict)


def _quantity(text: str, what: str) -> Decimal:
    value = parse_quantity(str(text))
    if value is None:
        raise ValueError(f"{what} {text!r} is not a Kubernetes quantity (resource.Quantity)")
    return value


def _common_precision(*values: Decimal) -> list[int]:
    """requestLimitEnforcedValues: Quantity.MilliValue() of each when every Value() fits the milli range, else
    Value(); both round up."""
    units = [math.ceil(v) for v in values]
    if all(u <= MAX_MILLI_VALUE for u in units):
        return [math.ceil(v * 1000) for v in values]
    return units


def _observed(resource: str, enforced: str, kind: str, requests: Mapping[str, str],
              limits: Mapping[str, str]) -> tuple[int, int, int]:
    request = _quantity(requests[resource], f"the {resource} request") if resource in requests else Decimal(0)
    limit = _quantity(limits[resource], f"the {resource} limit") if resource in limits else Decimal(0)
    bound = _quantity(enforced, f"the {kind} {resource} bound")
    observed_request, observed_limit, observed_bound = _common_precision(request, limit, bound)
    return observed_request, observed_limit, observed_bound


def min_constraint(limit_type: str, resource: str, enforced: str, requests: Mapping[str, str],
                   limits: Mapping[str, str]) -> str | None:
    """minConstraint: the request must be set and >= the bound, and a limit, where set, >= it too."""
    request, limit, bound = _observed(resource, enforced, "min", requests, limits)
    if resource not in requests:
        return f"minimum {resource} usage per {limit_type} is {enforced}.  No request is specified"
    if request < bound:
        return f"minimum {resource} usage per {limit_type} is {enforced}, but request is {requests[resource]}"
    if resource in limits and limit < bound:
        return f"minimum {resource} usage per {limit_type} is {enforced}, but limit is {limits[resource]}"
    return None


def max_constraint(limit_type: str, resource: str, enforced: str, requests: Mapping[str, str],
                   limits: Mapping[str, str]) -> str | None:
    """maxConstraint: the limit must be set and <= the bound, and a request, where set, <= it too."""
    request, limit, bound = _observed(resource, enforced, "max", requests, limits)
    if resource not in limits:
        return f"maximum {resource} usage per {limit_type} is {enforced}.  No limit is specified"
    if limit > bound:
        return f"maximum {resource} usage per {limit_type} is {enforced}, but limit is {limits[resource]}"
    if resource in requests and request > bound:
        return f"maximum {resource} usage per {limit_type} is {enforced}, but request is {requests[resource]}"
    return None


def limit_request_ratio_constraint(limit_type: str, resource: str, enforced: str, requests: Mapping[str, str],
                                   limits: Mapping[str, str]) -> str | None:
    """limitRequestRatioConstraint: request and limit set and not 0, limit / request <= the bound."""
    request, limit, _ = _observed(resource, enforced, "maxLimitRequestRatio", requests, limits)
    head = f"{resource} max limit to request ratio per {limit_type} is {enforced}"
    if resource not in requests or request == 0:
        return f"{head}, but no request is specified or request is 0"
    if resource not in limits or limit == 0:
        return f"{head}, but no limit is specified or limit is 0"
    observed = limit / request
    shown = observed
    # Upstream compares the ratio in thousandths against the bound's MilliValue where the bound allows it.
    enforced_value = _quantity(enforced, f"the maxLimitRequestRatio {resource} bound")
    if math.ceil(enforced_value) <= MAX_MILLI_VALUE:
        observed, bound = observed * 1000, float(math.ceil(enforced_value * 1000))
    else:
        bound = float(math.ceil(enforced_value))
    if observed > bound:
        return f"{head}, but provided ratio is {shown:f}"
    return None


CONSTRAINTS = (("min", min_constraint), ("max", max_constraint),
               ("max_limit_request_ratio", limit_request_ratio_constraint))


def pod_refusals(items: Iterable[LimitRangeItem], requests: Mapping[str, str],
                 limits: Mapping[str, str]) -> list[str]:
    """PodValidateLimitFunc for one LimitRange and a pod of one container with these (admitted) requests and
    limits: one line per bound it breaks, in upstream's words; empty: the LimitRange admits the pod."""
    out = []
    for item in items:
        if item.type not in (CONTAINER, POD):
            continue  # PersistentVolumeClaim items bound claims, not pods
        # One container and no init containers: the Pod item's totals are the container's own.
        for attribute, constraint in CONSTRAINTS:
            bounds: Mapping[str, str] = getattr(item, attribute)
            for resource in sorted(bounds):  # upstream walks a map: its order varies
                line = constraint(item.type, resource, str(bounds[resource]), requests, limits)
                if line is not None:
                    out.append(line)
    return out
