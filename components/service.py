"""Services in front of a release's pods, and the address they end up with."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.pod_template import PORT_NAME, ReleaseContext, object_labels
from model.config import Release

SKIP_AWAIT = "pulumi.com/skipAwait"
# pulumi-kubernetes (4.18.4 and later) waits for this JSONPath instead of its default Service await.
WAIT_FOR = "pulumi.com/waitFor"
LOAD_BALANCER_ADDRESS = "jsonpath={.status.loadBalancer.ingress}"
# On a namespace: the AWS Load Balancer Controller's webhook adds target-health readiness gates to
# pods created after their Service's target group binding exists.
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"

# AWS Load Balancer Controller: an internet-facing NLB that targets pod IPs directly.
NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
}


def service(
    resource_name: str,
    *,
    object_name: str,
    release: Release,
    context: ReleaseContext,
    selector: dict[str, str],
    parent: pulumi.Resource,
    load_balancer: bool = True,
    annotations: dict[str, pulumi.Input[str]] | None = None,
    depends_on: list[pulumi.Resource] | None = None,
) -> k8s.core.v1.Service:
    """A Service from `servicePort` to the pods' named container port.

    With load_balancer=True it is of type LoadBalancer, with the cluster's load balancer
    annotations; `awaitLoadBalancer: false` stops `pulumi up` waiting for an address that a
    cluster without a load-balancer implementation would never give.

    pulumi-kubernetes' default Service await also waits until the Service's endpoints target a
    ready pod (provider/pkg/await/service.go). Every Deployment here is created after the Service
    in front of its pods (for the load balancer controller's readiness gates), and a canary track
    may have 0 pods, so that await would never end: a ClusterIP Service is not awaited, and a
    LoadBalancer one only until its load balancer has an address (pulumi.com/waitFor, which takes
    precedence over the default await from pulumi-kubernetes 4.18.4). The pods are awaited where
    they belong, by their Deployment.
    """
    merged: dict[str, Any] = {}
    if load_balancer:
        merged.update(context.service_annotations)
        if not context.await_load_balancer:
            merged[SKIP_AWAIT] = "true"
        else:
            merged[WAIT_FOR] = LOAD_BALANCER_ADDRESS
    else:
        merged[SKIP_AWAIT] = "true"
    merged.update(annotations or {})
    return k8s.core.v1.Service(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=object_name,
            namespace=context.namespace,
            labels=object_labels(release),
            annotations=merged or None,
        ),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="LoadBalancer" if load_balancer else "ClusterIP",
            selector=selector,
            ports=[k8s.core.v1.ServicePortArgs(
                name=PORT_NAME, port=release.service_port, target_port=release.port, protocol="TCP",
            )],
        ),
        opts=pulumi.ResourceOptions(parent=parent, provider=context.provider, depends_on=depends_on),
    )


def _first_ingress_address(status: Any) -> str:
    """hostname (AWS load balancers) or ip (most others) of the first ingress point, or ""."""
    if not status:
        return ""
    load_balancer = status.get("load_balancer") if isinstance(status, dict) else getattr(status, "load_balancer", None)
    if not load_balancer:
        return ""
    ingress = load_balancer.get("ingress") if isinstance(load_balancer, dict) else getattr(load_balancer, "ingress", None)
    if not ingress:
        return ""
    first = ingress[0]
    get = first.get if isinstance(first, dict) else lambda k: getattr(first, k, None)
    return get("hostname") or get("ip") or ""


def service_address(svc: k8s.core.v1.Service) -> pulumi.Output[str]:
    return svc.status.apply(_first_ingress_address)


def ingress_address(ingress: k8s.networking.v1.Ingress) -> pulumi.Output[str]:
    return ingress.status.apply(_first_ingress_address)
