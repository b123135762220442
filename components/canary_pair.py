"""Canary: a stable and a canary track of one app, with traffic split by pods or by weight.

Both tracks' pods carry the release's name label; each Deployment also selects on its own
track label, so neither adopts the other's pods. No selector holds an image tag: promotion
(the canary tag becomes the stable tag) rolls the stable Deployment in place.

Traffic modes:
- replicas: one LoadBalancer Service selects both tracks; shares follow pod counts (the workshop).
- nlb: the LoadBalancer Service selects the stable track and, through the AWS Load Balancer
  Controller's weighted target groups, forwards `weight` percent to a canary Service.
- alb: an ALB Ingress forwards to a stable and a canary Service with weights summing to 100.
- nginx: a stable Ingress and an ingress-nginx canary Ingress with `canary-weight`.
A weight step changes annotations and canary replicas only, never a selector.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s

from components.pod_template import deployment, object_labels, rolling_strategy, selector_labels
from components.release import ReleaseArgs
from components.service import SKIP_AWAIT, ingress_address, service, service_address
from model import canary_math

STABLE = "stable"
CANARY = "canary"
NLB_ACTION_PREFIX = "service.beta.kubernetes.io/actions.TCP-"
ALB_ACTION_NAME = "canary-split"
ALB_ACTION_ANNOTATION = f"alb.ingress.kubernetes.io/actions.{ALB_ACTION_NAME}"
NGINX_CANARY = "nginx.ingress.kubernetes.io/canary"
NGINX_CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


def nlb_forward_action(canary_service: str, service_port: int, weight: int) -> str:
    """The NLB listener's forward action: the base (stable) Service keeps 100 - weight."""
    return json.dumps({
        "type": "forward",
        "forwardConfig": {
            "baseServiceWeight": 100 - weight,
            "targetGroups": [{"serviceName": canary_service, "servicePort": service_port, "weight": weight}],
        },
    }, separators=(",", ":"))


def alb_forward_action(stable_service: str, canary_service: str, service_port: int, weight: int) -> str:
    """The ALB rule's forward action over both tracks' Services, weights summing to 100."""
    return json.dumps({
        "type": "forward",
        "forwardConfig": {
            "targetGroups": [
                {"serviceName": stable_service, "servicePort": service_port, "weight": 100 - weight},
                {"serviceName": canary_service, "servicePort": service_port, "weight": weight},
            ],
        },
    }, separators=(",", ":"))


def nginx_canary_annotations(weight: int) -> dict[str, str]:
    return {NGINX_CANARY: "true", NGINX_CANARY_WEIGHT: str(weight)}


class CanaryPair(pulumi.ComponentResource):
    """Stable and canary Deployments of one release and the traffic split between them."""

    TYPE = "app-update:index:CanaryPair"
    address: pulumi.Output[str]

    def __init__(self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, None, opts)
        release, context = args.release, args.context
        assert release.stable is not None and release.canary is not None
        strategy = rolling_strategy(release)
        weight = int(release.requested_weight or 0)
        svc = release.service_name
        port = release.service_port
        self.services: dict[str, k8s.core.v1.Service] = {}
        self.ingresses: dict[str, k8s.networking.v1.Ingress] = {}
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}

        def track_deployment(track: str, after: list[pulumi.Resource]) -> k8s.apps.v1.Deployment:
            spec = release.stable if track == STABLE else release.canary
            assert spec is not None
            self.deployments[track] = deployment(
                f"{name}-{track}", object_name=f"{release.name}-{track}", release=release, context=context,
                tag=spec.tag, replicas=spec.replicas, strategy=strategy, parent=self, track=track, depends_on=after)
            return self.deployments[track]

        # Order, within one update. Each Deployment comes after the Service in front of its pods (so
        # the AWS Load Balancer Controller's readiness gates are injected into them). The canary
        # Deployment changes, and is awaited ready, before the traffic split: in `replicas` mode the
        # stable Deployment waits for it (a raise adds canary pods before stable ones go), in the
        # weighted modes the split does (traffic never reaches canary pods that are not ready).
        # Lowering a weight needs the other order: `rollout canary` and `rollout abort` do that in
        # two updates, canary.podsForWeight keeping the pods in between.
        if release.traffic == "replicas":
            self.services["shared"] = service(
                f"{name}-service", object_name=svc, release=release, context=context,
                selector=selector_labels(release), parent=self,
            )
            canary_deployment = track_deployment(CANARY, [self.services["shared"]])
            track_deployment(STABLE, [canary_deployment])
            self.address = service_address(self.services["shared"])
        elif release.traffic == "nlb":
            self.services[CANARY] = self._track_service(name, args, CANARY)
            canary_deployment = track_deployment(CANARY, [self.services[CANARY]])
            self.services[STABLE] = service(
                f"{name}-service", object_name=svc, release=release, context=context,
                selector=selector_labels(release, STABLE), parent=self,
                annotations={f"{NLB_ACTION_PREFIX}{port}": nlb_forward_action(f"{svc}-canary", port, weight)},
                depends_on=[self.services[CANARY], canary_deployment],
            )
            track_deployment(STABLE, [self.services[STABLE]])
            self.address = service_address(self.services[STABLE])
        else:
            for track in (STABLE, CANARY):
                self.services[track] = self._track_service(name, args, track)
            track_deployment(CANARY, [self.services[CANARY]])
            track_deployment(STABLE, [self.services[STABLE]])
            if release.traffic == "alb":
                self.ingresses[STABLE] = self._ingress(
                    name, args, object_name=svc, backend_service=ALB_ACTION_NAME, backend_port_name="use-annotation",
                    annotations={
                        "alb.ingress.kubernetes.io/scheme": "internet-facing",
                        "alb.ingress.kubernetes.io/target-type": "ip",
                        "alb.ingress.kubernetes.io/healthcheck-path": release.health_path,
                        ALB_ACTION_ANNOTATION: alb_forward_action(f"{svc}-stable", f"{svc}-canary", port, weight),
                    },
                )
            else:
                self.ingresses[STABLE] = self._ingress(name, args, object_name=svc, backend_service=f"{svc}-stable")
                self.ingresses[CANARY] = self._ingress(
                    f"{name}-canary", args, object_name=f"{svc}-canary", backend_service=f"{svc}-canary",
                    annotations=nginx_canary_annotations(weight),
                )
            self.address = ingress_address(self.ingresses[STABLE])

        self.images = release.images()
        warning = canary_math.weight_warning(release.name, release.replicas, release.requested_weight,
                                             release.effective_weight, release.traffic)
        if warning:
            pulumi.log.warn(warning, resource=self)
        self.register_outputs({
            "address": self.address,
            "images": self.images,
            "effectiveWeight": release.effective_weight,
            "deploymentNames": {k: d.metadata.name for k, d in self.deployments.items()},
        })

    def _track_service(self, name: str, args: ReleaseArgs, track: str) -> k8s.core.v1.Service:
        release = args.release
        return service(
            f"{name}-{track}-service", object_name=f"{release.service_name}-{track}", release=release,
            context=args.context, selector=selector_labels(release, track), parent=self, load_balancer=False,
        )

    def _ingress(self, name: str, args: ReleaseArgs, *, object_name: str, backend_service: str,
                 backend_port_name: str | None = None, annotations: dict[str, str] | None = None,
                 ) -> k8s.networking.v1.Ingress:
        release, context = args.release, args.context
        port = (k8s.networking.v1.ServiceBackendPortArgs(name=backend_port_name) if backend_port_name
                else k8s.networking.v1.ServiceBackendPortArgs(number=release.service_port))
        merged = dict(annotations or {})
        if not context.await_load_balancer:
            merged[SKIP_AWAIT] = "true"
        return k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=object_name, namespace=context.namespace, annotations=merged or None,
                labels=object_labels(release),
            ),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=release.ingress_class,
                rules=[k8s.networking.v1.IngressRuleArgs(http=k8s.networking.v1.HTTPIngressRuleValueArgs(paths=[
                    k8s.networking.v1.HTTPIngressPathArgs(
                        path="/", path_type="Prefix",
                        backend=k8s.networking.v1.IngressBackendArgs(
                            service=k8s.networking.v1.IngressServiceBackendArgs(name=backend_service, port=port),
                        ),
                    ),
                ]))],
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=context.provider,
                                        depends_on=[*self.services.values(), self.deployments[CANARY]]),
        )
