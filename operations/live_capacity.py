"""Whether the namespace's ResourceQuotas hold a blue-green release's new color, read live.

`rollout bluegreen` brings the new color up complete beside the old one. A ResourceQuota is enforced by the
API server's admission at each pod's creation: a pod that would take a quota past its `hard` is refused
(403 "exceeded quota"), the new color's ReplicaSet keeps failing to create it, and the preview update waits
10 minutes for a Deployment that never gets ready. So before its first write the run lists the namespace's
ResourceQuotas (the official `kubernetes` client, from the stack's `kubeconfig` output or the local
kubeconfig's context, as operations/live_weight.py's readers) and checks each one's `status.used` plus the
new color's pods, requests and limits against its `status.hard` (model/capacity.py: `quota_shortfalls`).

The pods counted are those the new color adds: the release's `replicas` less what the idle color runs live
(0 after a scale-down; all of them when `--keep-old` left it up, or when a resumed run's preview is up
already). A pod's requests and limits are those it is admitted with: its `resources`, a request not given
taking its limit (the API server's defaulting), then, for what is still unset, the Container defaults
(`defaultRequest`, `default`) of the namespace's LimitRanges, as the LimitRanger admission plugin sets them
(plugin/pkg/admission/limitranger; with several LimitRanges, the first by name: the API server promises no
order). A quota on `requests.cpu`, `limits.memory` (or `cpu`, `memory`, `requests.memory`, `limits.cpu`) refuses
a pod that leaves that resource unset ("must specify ..."): such a quota is named too. Quotas with `scopes` or a
`scopeSelector` count only the pods they select: `Terminating` and `BestEffort` quotas (and PriorityClass or
cross-namespace-affinity selectors, which the release's pods never carry) are left out where they cannot select
these pods.

Pods are counted against `pods` and `count/pods` (the object-count name the API server's pod evaluator also
answers to). Not checked: a LimitRange's own bounds (`min`, `max`, ratios: its admission refuses a pod outside
them), a rolling update's surge pods when the idle color changes tag in place, and quotas on other object counts
(`count/deployments.apps`, `count/services`...), which the preview update does not add to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from model.capacity import Room, defaulted_requests, pod_room, quota_shortfalls, quota_unset_keys
from model.config import Release


class QuotaUnreadable(Exception):
    """The namespace's ResourceQuotas could not be read (no kubeconfig, the API unreachable, RBAC): one line."""


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
    """(the LimitRange's namespace/name, its Container defaultRequest, its Container default) of the first
    LimitRange by name that has Container defaults; (None, {}, {}) when none has."""
    for limit_range in sorted(limit_ranges, key=lambda item: item.metadata.name):
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        for item in (limit_range.spec.limits if limit_range.spec is not None else None) or []:
            if item.type == "Container":  # a later item of one LimitRange overrides an earlier one, as in admission
                requests.update({k: str(v) for k, v in (item.default_request or {}).items()})
                limits.update({k: str(v) for k, v in (item.default or {}).items()})
        if requests or limits:
            return f"{limit_range.metadata.namespace}/{limit_range.metadata.name}", requests, limits
    return None, {}, {}


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
                         pods: int) -> list[str]:
    """The live check `rollout bluegreen` runs before its first write: the ResourceQuotas of the stack's
    namespace (its `namespace` output, else `namespace`) against `pods` new pods of the release, with a client
    from the stack's `kubeconfig` output or the local kubeconfig's `context`. QuotaUnreadable when they cannot
    be read."""
    from operations.live_weight import kubernetes_client

    try:
        namespace = str(_output(stack, "namespace") or namespace)
        api_client = kubernetes_client(_output(stack, "kubeconfig"), context)
    except Exception as error:  # noqa: BLE001 (no kubeconfig, a missing context: one line)
        raise QuotaUnreadable(_line(error)) from None
    try:
        quotas = read_quotas(api_client, namespace)
        # LimitRanges matter only to quotas: a namespace without quotas is not asked for them.
        return shortfalls(quotas, release, pods, read_limit_ranges(api_client, namespace) if quotas else [])
    finally:
        close = getattr(api_client, "close", None)
        if close is not None:
            close()

