"""Whether the namespace admits a blue-green release's new color and its ResourceQuotas hold it, read live.

`rollout bluegreen` brings the new color up complete beside the old one. A LimitRange and a ResourceQuota are
enforced by the API server's admission at each pod's creation: a pod outside a LimitRange's bounds is refused
(403 "maximum cpu usage per Container is 500m, but limit is 1"), and so is one that would take a quota past its
`hard` (403 "exceeded quota"); the new color's ReplicaSet keeps failing to create it, and the preview update waits
10 minutes for a Deployment that never gets ready. So before its first write the run lists the namespace's
LimitRanges and ResourceQuotas (the official `kubernetes` client, from the stack's `kubeconfig` output or the local
kubeconfig's context, as operations/live_weight.py's readers) and checks the new color's pods against each
LimitRange's `min`, `max` and `maxLimitRequestRatio` (`Container` and `Pod` items, model/limit_ranges.py: the
LimitRanger's rules and words, one line per bound broken, naming the LimitRange), and each quota's `status.used`
plus the new color's pods, requests and limits against its `status.hard` (model/capacity.py: `quota_shortfalls`).

The pods counted are those the new color adds: the release's `replicas` less what the idle color runs live
(0 after a scale-down; all of them when `--keep-old` left it up, or when a resumed run's preview is up
already: pods that run were admitted, nothing is checked). A pod's requests and limits are those it is admitted
with: its `resources`, a request not given taking its limit (the API server's defaulting), then, for what is still
unset, the Container defaults (`defaultRequest`, `default`) of the namespace's LimitRanges, as the LimitRanger
admission plugin sets them before it validates (plugin/pkg/admission/limitranger; each LimitRange in turn sets only
what is still unset: with several, a resource takes the first's by name, as the API server promises no order). A
stored LimitRange has its defaults filled in by the API server (`default` from `max`, `defaultRequest` from `default`
or `min`), so a `max` alone also gives the pods a limit. The pod template has one container and no init or sidecar
containers (components/pod_template.py): a `Pod` item's totals are that container's.

A quota on `requests.cpu`, `limits.memory` (or `cpu`, `memory`, `requests.memory`, `limits.cpu`) refuses a pod that
leaves that resource unset ("must specify ..."): such a quota is named too. Quotas with `scopes` or a
`scopeSelector` count only the pods they select: `Terminating` and `BestEffort` quotas (and PriorityClass or
cross-namespace-affinity selectors, which the release's pods never carry) are left out where they cannot select
these pods. Pods are counted against `pods` and `count/pods` (the object-count name the API server's pod evaluator
also answers to).

Not checked: a rolling update's surge pods when the idle color changes tag in place, quotas on other object counts
(`count/deployments.apps`, `count/services`...), which the preview update does not add to, and the other admission
plugins a cluster may run (PodSecurity, policy webhooks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from model.capacity import Room, defaulted_requests, pod_room, quota_shortfalls, quota_unset_keys
from model.config import Release
from model.limit_ranges import LimitRangeItem, pod_refusals


class QuotaUnreadable(Exception):
    """The namespace's ResourceQuotas or LimitRanges could not be read (no kubeconfig, the API unreachable, RBAC):
    one line."""


@dataclass(frozen=True)
class NewColorCheck:
    """What the live check found: the LimitRanges' refusals of the new color's pods, and the quotas' shortfalls
    (one line each; both empty: the namespace admits and holds them)."""

    refused: tuple[str, ...] = ()
    short: tuple[str, ...] = ()


def pod_requests(release: Release) -> dict[str, str]:
    """The requests each pod gets: `resources.requests`, a request not given taking its limit (as the API
    server defaults a container's requests from its limits)."""
    return defaulted_requests(release.resources.requests, release.resources.limits)


@dataclass(frozen=True)
class Admitted:
    """A pod's requests and limits as admitted, and the LimitRange whose defaults filled some (None: none did)."""

    requests: dict[str, str]
    limits: dict[str, str]
    defaulted_by: str | None = None
    defaulted: tuple[str, ...] = ()  # e.g. ("cpu request 500m", "memory limit 512Mi")


def container_defaults(limit_ranges: list[Any]) -> tuple[str | None, dict[str, str], dict[str, str]]:
    """(the namespace/names of the LimitRanges that gave defaults, their Container defaultRequests, their Container
    defaults): the LimitRanger runs each LimitRange's defaulting in turn, each setting only what is still unset, so
    a resource takes the default of the first LimitRange (here by name) that has one; (None, {}, {}) when none has."""
    sources: list[str] = []
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for limit_range in sorted(limit_ranges, key=lambda item: item.metadata.name):
        own_requests: dict[str, str] = {}
        own_limits: dict[str, str] = {}
        for item in (limit_range.spec.limits if limit_range.spec is not None else None) or []:
            if item.type == "Container":  # a later item of one LimitRange overrides an earlier one, as in admission
                own_requests.update({k: str(v) for k, v in (item.default_request or {}).items()})
                own_limits.update({k: str(v) for k, v in (item.default or {}).items()})
        new_requests = {k: v for k, v in own_requests.items() if k not in requests}
        new_limits = {k: v for k, v in own_limits.items() if k not in limits}
        if new_requests or new_limits:
            sources.append(f"{limit_range.metadata.namespace}/{limit_range.metadata.name}")
            requests.update(new_requests)
            limits.update(new_limits)
    return (", ".join(sources) or None), requests, limits


def admitted_resources(release: Release, limit_ranges: list[Any] | None = None) -> tuple[dict[str, str],
                                                                                         dict[str, str]]:
    """(requests, limits) of the release's container as admitted, every resource the LimitRanges default
    included (`ephemeral-storage`...): what the LimitRanger validates its bounds against."""
    limits = {k: str(v) for k, v in (release.resources.limits or {}).items()}
    requests = defaulted_requests(release.resources.requests, release.resources.limits, resources=None)
    _, default_requests, default_limits = container_defaults(limit_ranges or [])
    return {**default_requests, **requests}, {**default_limits, **limits}


def limit_range_items(limit_range: Any) -> list[LimitRangeItem]:
    """A V1LimitRange's `spec.limits` as model items (bounds only)."""
    spec = limit_range.spec
    return [LimitRangeItem(type=str(item.type), min={k: str(v) for k, v in (item.min or {}).items()},
                           max={k: str(v) for k, v in (item.max or {}).items()},
                           max_limit_request_ratio={k: str(v) for k, v in (item.max_limit_request_ratio or {}).items()})
            for item in (spec.limits if spec is not None else None) or []]


def limit_range_refusals(limit_ranges: list[Any], release: Release) -> list[str]:
    """One line per bound of a LimitRange the release's pods (as admitted) break, naming the LimitRange, in the
    LimitRanger's words (model/limit_ranges.py); empty: every LimitRange admits them. QuotaUnreadable when a
    bound is not a quantity (an API server never stores one)."""
    requests, limits = admitted_resources(release, limit_ranges)
    out = []
    for limit_range in sorted(limit_ranges, key=lambda item: item.metadata.name):
        where = f"LimitRange {limit_range.metadata.namespace}/{limit_range.metadata.name}"
        try:
            out += [f"{where}: {line}" for line in pod_refusals(limit_range_items(limit_range), requests, limits)]
        except ValueError as error:
            raise QuotaUnreadable(f"{where}: {error}") from None
    return out


def admitted(release: Release, limit_ranges: list[Any] | None = None) -> Admitted:
    """The release's pods' requests and limits as the API server admits them (see the module's docstring)."""
    limits = {k: str(v) for k, v in (release.resources.limits or {}).items() if k in ("cpu", "memory")}
    requests = pod_requests(release)
    source, default_requests, default_limits = container_defaults(limit_ranges or [])
    filled = []
    for kind, mine, defaults in (("limit", limits, default_limits), ("request", requests, default_requests)):
        for name in ("cpu", "memory"):
            if name not in mine and name in defaults:
                mine[name] = defaults[name]
                filled.append(f"{name} {kind} {defaults[name]}")
    return Admitted(requests, limits, source if filled else None, tuple(filled))


def new_color_room(release: Release, pods: int, limit_ranges: list[Any] | None = None) -> tuple[Room, Room]:
    """What `pods` new pods of the release take from a quota: their requests and their limits (as admitted)."""
    pod = admitted(release, limit_ranges)
    return pod_room(pod.requests, pods), pod_room(pod.limits, pods)


def quota_selects(quota: Any, release: Release, limit_ranges: list[Any] | None = None) -> bool:
    """Whether the quota's scopes select the release's pods (no activeDeadlineSeconds, no priority class, no
    cross-namespace affinity; best-effort only without requests and limits, as admitted)."""
    spec = quota.spec
    scopes = list(spec.scopes or []) if spec is not None else []
    selector = getattr(spec, "scope_selector", None) if spec is not None else None
    expressions = list(selector.match_expressions or []) if selector is not None else []
    pod = admitted(release, limit_ranges)
    best_effort = not pod.requests and not pod.limits
    for scope in scopes:
        if scope == "Terminating" or (scope == "BestEffort" and not best_effort) or (
                scope == "NotBestEffort" and best_effort) or scope in ("PriorityClass", "CrossNamespacePodAffinity"):
            return False
    for expression in expressions:
        name, operator = expression.scope_name, expression.operator
        if name == "Terminating" or (name == "BestEffort" and not best_effort) or (
                name == "NotBestEffort" and best_effort):
            return False
        if name in ("PriorityClass", "CrossNamespacePodAffinity") and operator in ("In", "Exists"):
            return False  # the pods have neither: only NotIn / DoesNotExist select them
    return True


def shortfalls(quotas: list[Any], release: Release, pods: int, limit_ranges: list[Any] | None = None) -> list[str]:
    """One line per quota key the new color's `pods` would take past its hard limit, or leave unset where the
    quota requires it, naming the quota; and, when there is one, a line naming the LimitRange whose defaults
    the pods were counted with."""
    if pods <= 0:
        return []
    pod = admitted(release, limit_ranges)
    requests, limits = pod_room(pod.requests, pods), pod_room(pod.limits, pods)
    out = []
    for quota in sorted(quotas, key=lambda q: q.metadata.name):
        if not quota_selects(quota, release, limit_ranges):
            continue
        status = quota.status
        hard: Mapping[str, str] = (status.hard if status is not None and status.hard else None) or (
            quota.spec.hard if quota.spec is not None else None) or {}
        used: Mapping[str, str] = (status.used if status is not None else None) or {}
        where = f"ResourceQuota {quota.metadata.namespace}/{quota.metadata.name}"
        out += [f"{where}: {key}: the pods would not set it (no resources.{REQUIRED[key]} and no LimitRange default)"
                f" and the API server refuses a pod without it" for key in quota_unset_keys(hard, pod.requests, pod.limits)]
        out += [f"{where}: {line}" for line in quota_shortfalls(hard, used, requests, limits)]
    if out and pod.defaulted_by is not None:
        out.append(f"counted with the defaults of LimitRange {pod.defaulted_by}: {', '.join(pod.defaulted)} each")
    return out


# Where a quota's required key is set in the release (its `resources.` path), for the line that names it.
REQUIRED = {"cpu": "requests.cpu", "requests.cpu": "requests.cpu", "memory": "requests.memory",
            "requests.memory": "requests.memory", "limits.cpu": "limits.cpu", "limits.memory": "limits.memory"}


def read_limit_ranges(api_client: Any, namespace: str) -> list[Any]:
    """The namespace's LimitRanges (V1LimitRange models); QuotaUnreadable with the reason."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    try:
        return list(k8s.CoreV1Api(api_client).list_namespaced_limit_range(namespace, _request_timeout=20).items)
    except ApiException as error:
        raise QuotaUnreadable(f"LimitRanges: HTTP {error.status} {error.reason}".strip()) from None
    except Exception as error:  # noqa: BLE001 (unreachable, TLS: one line)
        raise QuotaUnreadable(f"LimitRanges: {_line(error)}") from None


def read_quotas(api_client: Any, namespace: str) -> list[Any]:
    """The namespace's ResourceQuotas (V1ResourceQuota models); QuotaUnreadable with the reason."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    try:
        return list(k8s.CoreV1Api(api_client).list_namespaced_resource_quota(namespace, _request_timeout=20).items)
    except ApiException as error:
        raise QuotaUnreadable(f"HTTP {error.status} {error.reason}".strip()) from None
    except Exception as error:  # noqa: BLE001 (unreachable, TLS, a broken kubeconfig: one line)
        raise QuotaUnreadable(_line(error)) from None


def _line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}".rstrip(": ")


def _output(stack: Any, name: str) -> Any:
    value = stack.outputs().get(name)
    return getattr(value, "value", value)


def new_color_shortfalls(stack: Any, namespace: str, context: str | None, release: Release,
                         pods: int) -> NewColorCheck:
    """The live check `rollout bluegreen` runs before its first write: the LimitRanges of the stack's namespace
    (its `namespace` output, else `namespace`) against the release's pods, and its ResourceQuotas against `pods`
    new pods, with a client from the stack's `kubeconfig` output or the local kubeconfig's `context`.
    QuotaUnreadable when they cannot be read."""
    from operations.live_weight import kubernetes_client

    try:
        namespace = str(_output(stack, "namespace") or namespace)
        api_client = kubernetes_client(_output(stack, "kubeconfig"), context)
    except Exception as error:  # noqa: BLE001 (no kubeconfig, a missing context: one line)
        raise QuotaUnreadable(_line(error)) from None
    try:
        quotas = read_quotas(api_client, namespace)
        # Read even without quotas: a LimitRange's bounds refuse pods on their own.
        limit_ranges = read_limit_ranges(api_client, namespace)
        return NewColorCheck(tuple(limit_range_refusals(limit_ranges, release)),
                             tuple(shortfalls(quotas, release, pods, limit_ranges)))
    finally:
        close = getattr(api_client, "close", None)
        if close is not None:
            close()
