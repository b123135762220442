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
already). A pod's requests are its `resources.requests`, a request not given taking its limit (the API
server's defaulting). Quotas with `scopes` or a `scopeSelector` count only the pods they select: `Terminating`
and `BestEffort` quotas (and PriorityClass or cross-namespace-affinity selectors, which the release's pods
never carry) are left out where they cannot select these pods.

Pods are counted against `pods` and `count/pods` (the object-count name the API server's pod evaluator also
answers to). Not checked: a LimitRange's defaults (a release without requests may get some in admission), a rolling
update's surge pods when the idle color changes tag in place, and quotas on other object counts
(`count/deployments.apps`, `count/services`...), which the preview update does not add to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from model.capacity import Room, pod_room, quota_shortfalls
from model.config import Release


class QuotaUnreadable(Exception):
    """The namespace's ResourceQuotas could not be read (no kubeconfig, the API unreachable, RBAC): one line."""


def pod_requests(release: Release) -> dict[str, str]:
    """The requests each pod gets: `resources.requests`, a request not given taking its limit (as the API
    server defaults a container's requests from its limits)."""
    limits, requests = release.resources.limits or {}, release.resources.requests or {}
    return {**{k: v for k, v in limits.items() if k in ("cpu", "memory")}, **requests}


def new_color_room(release: Release, pods: int) -> tuple[Room, Room]:
    """What `pods` new pods of the release take from a quota: their requests and their limits."""
    return pod_room(pod_requests(release), pods), pod_room(release.resources.limits or {}, pods)


def _has_resources(release: Release) -> bool:
    return bool(pod_requests(release)) or bool(release.resources.limits)


def quota_selects(quota: Any, release: Release) -> bool:
    """Whether the quota's scopes select the release's pods (no activeDeadlineSeconds, no priority class, no
    cross-namespace affinity; best-effort only without requests and limits)."""
    spec = quota.spec
    scopes = list(spec.scopes or []) if spec is not None else []
    selector = getattr(spec, "scope_selector", None) if spec is not None else None
    expressions = list(selector.match_expressions or []) if selector is not None else []
    best_effort = not _has_resources(release)
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


def shortfalls(quotas: list[Any], release: Release, pods: int) -> list[str]:
    """One line per quota key the new color's `pods` would take past its hard limit, naming the quota."""
    if pods <= 0:
        return []
    requests, limits = new_color_room(release, pods)
    out = []
    for quota in sorted(quotas, key=lambda q: q.metadata.name):
        if not quota_selects(quota, release):
            continue
        status = quota.status
        hard: Mapping[str, str] = (status.hard if status is not None and status.hard else None) or (
            quota.spec.hard if quota.spec is not None else None) or {}
        used: Mapping[str, str] = (status.used if status is not None else None) or {}
        where = f"ResourceQuota {quota.metadata.namespace}/{quota.metadata.name}"
        out += [f"{where}: {line}" for line in quota_shortfalls(hard, used, requests, limits)]
    return out


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
        return shortfalls(read_quotas(api_client, namespace), release, pods)
    finally:
        close = getattr(api_client, "close", None)
        if close is not None:
            close()

