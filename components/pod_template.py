"""The pod template and Deployment shape every strategy shares.

One place decides probes, resources, the security context, graceful shutdown and the
labels, so a Recreate release, a rolling one and both canary tracks run pods alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from model.config import Release
from model.fenceposts import scaled_value

NAME_LABEL = "app.kubernetes.io/name"
TRACK_LABEL = "app-update/track"
VERSION_LABEL = "app.kubernetes.io/version"
# A BlueGreen color's pods: `version: blue|green` (the workshop's `version` label, with the color as its value).
COLOR_LABEL = "version"
CHANGE_CAUSE = "kubernetes.io/change-cause"
CONTAINER_NAME = "app"
PORT_NAME = "http"
# The workshop image is node:14 based and runs as root by default; uid 1000 is its `node`
# user, and the app listens on 8080, so it runs unprivileged unchanged.
RUN_AS_USER = 1000
REVISION_HISTORY_LIMIT = 10
# Time after the preStop pause for the app to finish requests in flight on SIGTERM.
SHUTDOWN_SECONDS = 25

SPREAD_TOPOLOGY_KEYS = ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
# Deployments of fewer pods get no PodDisruptionBudget: one pod cannot stay up through its own eviction.
PDB_MIN_REPLICAS = 2

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ReleaseContext:
    """What every release component needs from the stack around it."""

    stack: str
    namespace: pulumi.Input[str]
    provider: pulumi.ProviderResource
    await_load_balancer: bool
    service_annotations: dict[str, str]
    kubernetes_version: str = "1.33"

    def at_least(self, minor: int) -> bool:
        """Whether the cluster's Kubernetes version is 1.<minor> or later."""
        return int(self.kubernetes_version.split(".")[1]) >= minor


def selector_labels(release: Release, track: str | None = None, color: str | None = None) -> dict[str, str]:
    """Labels a Deployment selects on. Never the image tag: a new tag must not replace it."""
    labels = {NAME_LABEL: release.name}
    if track is not None:
        labels[TRACK_LABEL] = track
    if color is not None:
        labels[COLOR_LABEL] = color
    return labels


def object_labels(release: Release) -> dict[str, str]:
    """Labels on every object of a release (Services, Ingresses, Deployments)."""
    return {NAME_LABEL: release.name, "app.kubernetes.io/part-of": "app-update", "app.kubernetes.io/managed-by": "pulumi"}


def pod_labels(release: Release, tag: str, track: str | None = None, color: str | None = None) -> dict[str, str]:
    labels = {**object_labels(release), **selector_labels(release, track, color)}
    # Like the workshop's `version: v1` label, so `kubectl get pods -l` can tell versions apart
    # (a tag pinned by digest, `v2@sha256:...`, is labelled with its tag).
    version = tag.split("@", 1)[0]
    if len(version) <= 63 and _LABEL_VALUE.match(version):
        labels[VERSION_LABEL] = version
    return labels


def change_cause(stack: str, release: Release, tag: str) -> str:
    """What `kubectl rollout history` shows for the revision this template creates."""
    return f"app-update {stack}: {release.image}:{tag}"


def pre_stop_pause(seconds: int, kubernetes_version: str) -> k8s.core.v1.LifecycleHandlerArgs:
    """A preStop pause. The `sleep` action is on by default from Kubernetes 1.30 (PodLifecycleSleepAction
    beta); before, the API server drops it, so the pause runs `sleep` in the container instead."""
    if int(kubernetes_version.split(".")[1]) >= 30:
        return k8s.core.v1.LifecycleHandlerArgs(sleep=k8s.core.v1.SleepActionArgs(seconds=seconds))
    return k8s.core.v1.LifecycleHandlerArgs(exec_=k8s.core.v1.ExecActionArgs(command=["sleep", str(seconds)]))


def pod_template(release: Release, tag: str, track: str | None = None,
                 kubernetes_version: str = "1.35", color: str | None = None) -> k8s.core.v1.PodTemplateSpecArgs:
    probe_get = k8s.core.v1.HTTPGetActionArgs(path=release.health_path, port=PORT_NAME)
    resources = k8s.core.v1.ResourceRequirementsArgs(
        requests=dict(release.resources.requests) or None,
        limits=dict(release.resources.limits) or None,
    )
    env = [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(release.env.items())] or None
    container = k8s.core.v1.ContainerArgs(
        name=CONTAINER_NAME,
        image=f"{release.image}:{tag}",
        ports=[k8s.core.v1.ContainerPortArgs(name=PORT_NAME, container_port=release.port, protocol="TCP")],
        env=env,
        resources=resources,
        readiness_probe=k8s.core.v1.ProbeArgs(
            http_get=probe_get, period_seconds=5, timeout_seconds=2, failure_threshold=3, success_threshold=1,
        ),
        liveness_probe=k8s.core.v1.ProbeArgs(
            http_get=probe_get, initial_delay_seconds=10, period_seconds=10, timeout_seconds=2, failure_threshold=3,
        ),
        # Keep serving while the load balancer deregisters the pod, then get SIGTERM.
        lifecycle=k8s.core.v1.LifecycleArgs(pre_stop=pre_stop_pause(release.pre_stop_seconds, kubernetes_version))
        if release.pre_stop_seconds > 0 else None,
        security_context=k8s.core.v1.SecurityContextArgs(
            run_as_non_root=True,
            run_as_user=RUN_AS_USER,
            run_as_group=RUN_AS_USER,
            allow_privilege_escalation=False,
            privileged=False,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
    )
    # Spread each Deployment's pods over zones and nodes, so a node drain (an EKS node-group
    # upgrade replaces one node at a time) or a zone outage takes only part of them; best effort,
    # so a small cluster still schedules everything.
    spread = [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1, topology_key=key, when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(release, track, color)),
        )
        for key in SPREAD_TOPOLOGY_KEYS
    ]
    return k8s.core.v1.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(labels=pod_labels(release, tag, track, color)),
        spec=k8s.core.v1.PodSpecArgs(
            containers=[container],
            topology_spread_constraints=spread,
            automount_service_account_token=False,
            termination_grace_period_seconds=release.pre_stop_seconds + SHUTDOWN_SECONDS,
            security_context=k8s.core.v1.PodSecurityContextArgs(
                run_as_non_root=True,
                run_as_user=RUN_AS_USER,
                run_as_group=RUN_AS_USER,
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
        ),
    )


def deployment(
    resource_name: str,
    *,
    object_name: str,
    release: Release,
    context: ReleaseContext,
    tag: str,
    replicas: int,
    strategy: k8s.apps.v1.DeploymentStrategyArgs,
    parent: pulumi.Resource,
    track: str | None = None,
    depends_on: list[pulumi.Resource] | None = None,
    color: str | None = None,
) -> k8s.apps.v1.Deployment:
    """A Deployment of the shared pod template, parented to its release component, and its
    PodDisruptionBudget when it runs PDB_MIN_REPLICAS pods or more. `track` (a canary's) or `color` (a
    blue-green release's) is a selector label of its own, so two Deployments of a release never share pods."""
    created = k8s.apps.v1.Deployment(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=object_name,
            namespace=context.namespace,
            labels=pod_labels(release, tag, track, color),
            annotations={CHANGE_CAUSE: change_cause(context.stack, release, tag)},
        ),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(release, track, color)),
            strategy=strategy,
            min_ready_seconds=release.min_ready_seconds,
            progress_deadline_seconds=release.progress_deadline_seconds,
            revision_history_limit=REVISION_HISTORY_LIMIT,
            template=pod_template(release, tag, track, context.kubernetes_version, color),
        ),
        opts=pulumi.ResourceOptions(parent=parent, provider=context.provider, depends_on=depends_on),
    )
    if replicas >= PDB_MIN_REPLICAS:
        disruption_budget(f"{resource_name}-pdb", object_name=object_name, release=release, context=context,
                          replicas=replicas, parent=parent, track=track, color=color)
    return created


def disruption_budget_pods(release: Release, replicas: int) -> int:
    """maxUnavailable of a Deployment's PodDisruptionBudget: what its rolling update may take
    down anyway, and never less than 1, so a node drain can always evict a pod and never hangs."""
    if release.strategy == "Recreate":
        return 1
    return max(1, scaled_value(release.max_unavailable, replicas, False))


def disruption_budget(resource_name: str, *, object_name: str, release: Release, context: ReleaseContext,
                      replicas: int, parent: pulumi.Resource, track: str | None = None,
                      color: str | None = None) -> k8s.policy.v1.PodDisruptionBudget:
    """Limits voluntary disruptions (drains, node-group upgrades) of exactly one Deployment's pods."""
    return k8s.policy.v1.PodDisruptionBudget(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=context.namespace,
                                            labels=object_labels(release)),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            max_unavailable=disruption_budget_pods(release, replicas),
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(release, track, color)),
            # A pod that is not ready protects nothing: let a drain evict it (on by default from 1.27).
            unhealthy_pod_eviction_policy="AlwaysAllow" if context.at_least(27) else None,
        ),
        opts=pulumi.ResourceOptions(parent=parent, provider=context.provider),
    )


def rolling_strategy(release: Release) -> k8s.apps.v1.DeploymentStrategyArgs:
    return k8s.apps.v1.DeploymentStrategyArgs(
        type="RollingUpdate",
        rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
            max_surge=release.max_surge, max_unavailable=release.max_unavailable,
        ),
    )
