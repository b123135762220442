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
- gateway: a Gateway API HTTPRoute whose backendRefs (the stable and canary Services) carry the
  weights; attached to a Gateway (north-south) or, without one, to the release's own Service (the
  mesh form, GAMMA).
- istio: a DestinationRule with a subset per track and a VirtualService for the release's Service
  routing to the subsets by weight (bound to an Istio Gateway too when one is given).
- skipper: one Ingress with two identical paths, one per track's Service, and skipper's
  `zalando.org/backend-weights`; kube-ingress-aws-controller puts an ALB in front of skipper.
- dns: a LoadBalancer Service per track and two Route53 weighted alias records of one name.
A weight step changes weights (annotations, route weights, record weights) and canary replicas
only, never a selector.

Header and cookie routes (`canary.match`): on the routers that read requests (nginx, alb, gateway,
istio, skipper) matched requests reach the canary at every weight, 0 included; the loader refuses
them on replicas, nlb and dns. Sticky sessions (`canary.sticky`): nginx and alb.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.pod_template import TRACK_LABEL, deployment, object_labels, rolling_strategy, selector_labels
from components.release import ReleaseArgs
from components.service import NLB_ANNOTATIONS, SKIP_AWAIT, ingress_address, service, service_address
from model import canary_math
from model.config import Gateway, Match

STABLE = "stable"
CANARY = "canary"
NLB_ACTION_PREFIX = "service.beta.kubernetes.io/actions.TCP-"
ALB_ACTION_NAME = "canary-split"
ALB_ACTION_ANNOTATION = f"alb.ingress.kubernetes.io/actions.{ALB_ACTION_NAME}"
NGINX_CANARY = "nginx.ingress.kubernetes.io/canary"
NGINX_CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
ISTIO_API_VERSION = "networking.istio.io/v1"
SKIPPER_BACKEND_WEIGHTS = "zalando.org/backend-weights"
# kube-ingress-aws-controller (the load balancer in front of skipper); its default scheme is
# internet-facing already: written out so the object says what it gets.
SKIPPER_LB_SCHEME = "zalando.org/aws-load-balancer-scheme"
SKIPPER_PREDICATE = "zalando.org/skipper-predicate"
NGINX = "nginx.ingress.kubernetes.io/"
ALB_CONDITIONS = "alb.ingress.kubernetes.io/conditions."
# ALB actions of a header and a cookie route (one each: the conditions of one rule must all hold, a match is either).
ALB_MATCH_ACTIONS = {"header": "canary-header", "cookie": "canary-cookie"}
# How long a sticky client stays on its track (ALB target-group stickiness, the nginx cookie).
STICKY_SECONDS = 3600


def cookie_regex(match: Match) -> str:
    """A Cookie header holding `<cookie>=always` among its pairs, as a full-match RE2 expression."""
    assert match.cookie is not None
    return f"^(.*;\\s*)?{re.escape(match.cookie)}={match.cookie_value}(;.*)?$"


def track_weights(weight: int) -> dict[str, int]:
    """Per-track weights of the weighted modes: percentages summing to 100, so never all 0."""
    return {STABLE: 100 - weight, CANARY: weight}


def nlb_forward_action(canary_service: str, service_port: int, weight: int) -> str:
    """The NLB listener's forward action: the base (stable) Service keeps 100 - weight."""
    return json.dumps({
        "type": "forward",
        "forwardConfig": {
            "baseServiceWeight": 100 - weight,
            "targetGroups": [{"serviceName": canary_service, "servicePort": service_port, "weight": weight}],
        },
    }, separators=(",", ":"))


def alb_forward_action(stable_service: str, canary_service: str, service_port: int, weight: int,
                       sticky: bool = False) -> str:
    """The ALB rule's forward action over both tracks' Services, weights summing to 100; with `sticky`, the
    target-group stickiness of a weighted forward (the ALB's AWSALBTG cookie keeps a client on its track)."""
    config: dict[str, Any] = {"targetGroups": [
        {"serviceName": stable_service, "servicePort": service_port, "weight": 100 - weight},
        {"serviceName": canary_service, "servicePort": service_port, "weight": weight},
    ]}
    if sticky:
        config["targetGroupStickinessConfig"] = {"enabled": True, "durationSeconds": STICKY_SECONDS}
    return json.dumps({"type": "forward", "forwardConfig": config}, separators=(",", ":"))


def alb_match_annotations(canary_service: str, service_port: int, match: Match) -> dict[str, str]:
    """Per match kind an action forwarding everything to the canary and its condition. The Ingress lists their
    paths before the weighted one, so the controller orders their listener rules first."""
    forward = json.dumps({"type": "forward", "forwardConfig": {"targetGroups": [
        {"serviceName": canary_service, "servicePort": service_port, "weight": 100}]}}, separators=(",", ":"))
    annotations: dict[str, str] = {}
    if match.header_name:
        assert match.header_value is not None  # the loader refuses a regex on alb
        annotations[ALB_CONDITIONS + ALB_MATCH_ACTIONS["header"]] = json.dumps([{"field": "http-header",
            "httpHeaderConfig": {"httpHeaderName": match.header_name, "values": [match.header_value]}}])
    if match.cookie:
        # ALB compares header values with the * and ? wildcards: the pair first, or after another pair.
        pair = f"{match.cookie}={match.cookie_value}"
        annotations[ALB_CONDITIONS + ALB_MATCH_ACTIONS["cookie"]] = json.dumps([{"field": "http-header",
            "httpHeaderConfig": {"httpHeaderName": "Cookie", "values": [pair, f"{pair};*", f"*; {pair}",
                                                                        f"*; {pair};*"]}}])
    for kind in ("header", "cookie"):
        if ALB_CONDITIONS + ALB_MATCH_ACTIONS[kind] in annotations:
            annotations[f"alb.ingress.kubernetes.io/actions.{ALB_MATCH_ACTIONS[kind]}"] = forward
    return annotations


def nginx_canary_annotations(weight: int, match: Match | None = None) -> dict[str, str]:
    """The canary Ingress: ingress-nginx reads the header, then the cookie, then the weight, so a matched
    request reaches the canary at every weight (0 included)."""
    annotations = {NGINX_CANARY: "true", NGINX_CANARY_WEIGHT: str(weight)}
    if match is not None and match.header_name:
        annotations[NGINX + "canary-by-header"] = match.header_name
        if match.header_value is not None:
            annotations[NGINX + "canary-by-header-value"] = match.header_value
        else:
            annotations[NGINX + "canary-by-header-pattern"] = match.header_regex or ""
    if match is not None and match.cookie:
        annotations[NGINX + "canary-by-cookie"] = match.cookie  # the canary when its value is `always`
    return annotations


def nginx_sticky_annotations(service_name: str) -> dict[str, str]:
    """The stable Ingress: cookie affinity, and ingress-nginx's sticky canary behaviour (a client that reached
    the canary Ingress keeps reaching it)."""
    return {NGINX + "affinity": "cookie", NGINX + "affinity-canary-behavior": "sticky",
            NGINX + "session-cookie-name": f"{service_name}-track",
            NGINX + "session-cookie-max-age": str(STICKY_SECONDS)}


def skipper_predicate(match: Match, kind: str) -> str:
    """The route predicate of a skipper match Ingress (eskip strings, quoted as JSON strings are)."""
    if kind == "header":
        if match.header_value is not None:
            return f"Header({json.dumps(match.header_name)}, {json.dumps(match.header_value)})"
        return f"HeaderRegexp({json.dumps(match.header_name)}, {json.dumps(match.header_regex)})"
    return f"Cookie({json.dumps(match.cookie)}, {json.dumps(match.cookie_value)})"


def httproute_spec(service_name: str, service_port: int, weight: int, gateway: Gateway | None,
                   match: Match | None = None) -> dict[str, Any]:
    """The HTTPRoute: one rule over both tracks' Services, the canary's weight exactly `weight` percent
    of the sum. Attached to the Gateway, or without one to the release's own Service (GAMMA). With a match,
    a rule before it sends matched requests to the canary alone (a rule with header matches wins over the
    catch-all). No sticky sessions: HTTPRoute's sessionPersistence is experimental-channel only (the loader says
    so), and the standard CRDs refuse it."""
    if gateway is None:
        parent: dict[str, Any] = {"group": "", "kind": "Service", "name": service_name, "port": service_port}
    else:
        parent = {"name": gateway.name, "namespace": gateway.namespace}
        if gateway.section_name:
            parent["sectionName"] = gateway.section_name
    weights = track_weights(weight)
    spec: dict[str, Any] = {"parentRefs": [parent]}
    if gateway is not None and gateway.hosts:
        spec["hostnames"] = list(gateway.hosts)
    weighted: dict[str, Any] = {"backendRefs": [
        {"name": f"{service_name}-{track}", "port": service_port, "weight": weights[track]} for track in (STABLE, CANARY)
    ]}
    spec["rules"] = [weighted]
    if match is not None:
        matches = []
        if match.header_name:
            exact = match.header_value is not None
            matches.append({"headers": [{"type": "Exact" if exact else "RegularExpression", "name": match.header_name,
                                         "value": match.header_value if exact else match.header_regex}]})
        if match.cookie:
            matches.append({"headers": [{"type": "RegularExpression", "name": "Cookie", "value": cookie_regex(match)}]})
        spec["rules"].insert(0, {"matches": matches, "backendRefs": [
            {"name": f"{service_name}-{CANARY}", "port": service_port}]})
    return spec


def destination_rule_spec(service_name: str) -> dict[str, Any]:
    """The DestinationRule: the release Service's pods in two subsets, by their track label."""
    return {"host": service_name,
            "subsets": [{"name": track, "labels": {TRACK_LABEL: track}} for track in (STABLE, CANARY)]}


def virtual_service_spec(service_name: str, service_port: int, weight: int, gateway: Gateway | None,
                         match: Match | None = None) -> dict[str, Any]:
    """The VirtualService: calls to the release's Service (and, through the Gateway, to its hosts) go
    to the two subsets by weight. Bound to the Gateway and to `mesh`, so in-mesh callers keep the split.
    With a match, a first http route sends matched requests to the canary subset (Istio takes the first
    route that matches; header names lowercase, as Istio wants them; the cookie through the `cookie` header)."""
    weights = track_weights(weight)
    spec: dict[str, Any] = {"hosts": [service_name, *(gateway.hosts if gateway else ())]}
    if gateway is not None:
        spec["gateways"] = [gateway.ref, "mesh"]
    spec["http"] = [{"route": [
        {"destination": {"host": service_name, "subset": track, "port": {"number": service_port}},
         "weight": weights[track]} for track in (STABLE, CANARY)
    ]}]
    if match is not None:
        matches: list[dict[str, Any]] = []
        if match.header_name:
            value = {"exact": match.header_value} if match.header_value is not None else {"regex": match.header_regex}
            matches.append({"headers": {match.header_name.lower(): value}})
        if match.cookie:
            matches.append({"headers": {"cookie": {"regex": cookie_regex(match)}}})
        spec["http"].insert(0, {"name": "canary-match", "match": matches, "route": [
            {"destination": {"host": service_name, "subset": CANARY, "port": {"number": service_port}}}]})
    return spec


def skipper_backend_weights(stable_service: str, canary_service: str, weight: int) -> str:
    """skipper's `zalando.org/backend-weights`: shares within the path group, summing to 100."""
    weights = track_weights(weight)
    return json.dumps({stable_service: weights[STABLE], canary_service: weights[CANARY]}, separators=(",", ":"))


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
        self.routes: dict[str, k8s.apiextensions.CustomResource] = {}  # by kind (gateway, istio)
        self.records: dict[str, pulumi.CustomResource] = {}  # Route53 records by track (dns)

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
        elif release.traffic in ("gateway", "istio"):
            self._mesh_modes(name, args, weight, track_deployment)
            # The address is the Gateway's (its status) or none (in-mesh only): not this program's to know.
            self.address = pulumi.Output.from_input("")
        elif release.traffic == "dns":
            self._dns_mode(name, args, weight, track_deployment)
            assert release.dns is not None
            self.address = pulumi.Output.from_input(release.dns.name)
        else:
            for track in (STABLE, CANARY):
                self.services[track] = self._track_service(name, args, track)
            track_deployment(CANARY, [self.services[CANARY]])
            track_deployment(STABLE, [self.services[STABLE]])
            if release.traffic == "skipper":
                self.ingresses[STABLE] = self._ingress(
                    name, args, object_name=svc, backend_services=[f"{svc}-stable", f"{svc}-canary"],
                    annotations={
                        SKIPPER_BACKEND_WEIGHTS: skipper_backend_weights(f"{svc}-stable", f"{svc}-canary", weight),
                        SKIPPER_LB_SCHEME: "internet-facing",
                    },
                )
                # A route with a predicate more than the weighted one's wins in skipper: one Ingress per match kind.
                for kind in release.match_kinds():
                    assert release.match is not None
                    self.ingresses[f"{CANARY}-{kind}"] = self._ingress(
                        f"{name}-canary-{kind}", args, object_name=f"{svc}-canary-{kind}",
                        backend_services=[f"{svc}-canary"],
                        annotations={SKIPPER_PREDICATE: skipper_predicate(release.match, kind)},
                    )
            elif release.traffic == "alb":
                kinds = release.match_kinds()
                annotations = {
                    "alb.ingress.kubernetes.io/scheme": "internet-facing",
                    "alb.ingress.kubernetes.io/target-type": "ip",
                    "alb.ingress.kubernetes.io/healthcheck-path": release.health_path,
                    ALB_ACTION_ANNOTATION: alb_forward_action(f"{svc}-stable", f"{svc}-canary", port, weight,
                                                              release.sticky),
                }
                if release.match is not None:
                    annotations.update(alb_match_annotations(f"{svc}-canary", port, release.match))
                self.ingresses[STABLE] = self._ingress(
                    name, args, object_name=svc, backend_port_name="use-annotation",
                    backend_services=[*(ALB_MATCH_ACTIONS[kind] for kind in kinds), ALB_ACTION_NAME],
                    annotations=annotations,
                )
            else:
                self.ingresses[STABLE] = self._ingress(
                    name, args, object_name=svc, backend_services=[f"{svc}-stable"],
                    annotations=nginx_sticky_annotations(svc) if release.sticky else None)
                self.ingresses[CANARY] = self._ingress(
                    f"{name}-canary", args, object_name=f"{svc}-canary", backend_services=[f"{svc}-canary"],
                    annotations=nginx_canary_annotations(weight, release.match),
                )
            self.address = ingress_address(self.ingresses[STABLE])

        self.images = release.images()
        warning = canary_math.weight_warning(release.name, release.replicas, release.requested_weight,
                                             release.effective_weight, release.traffic)
        if warning:
            pulumi.log.warn(warning, resource=self)
        self.address_source = release.address_source()
        self.register_outputs({
            "address": self.address,
            "addressSource": self.address_source,
            "images": self.images,
            "effectiveWeight": release.effective_weight,
            "deploymentNames": {k: d.metadata.name for k, d in self.deployments.items()},
        })

    def _mesh_modes(self, name: str, args: ReleaseArgs, weight: int, track_deployment: Any) -> None:
        """gateway and istio: the routes are custom resources of the platform's CRDs (Gateway API, Istio)."""
        release, context = args.release, args.context
        svc, port = release.service_name, release.service_port
        metadata = lambda object_name: k8s.meta.v1.ObjectMetaArgs(  # noqa: E731
            name=object_name, namespace=context.namespace, labels=object_labels(release))
        front: list[pulumi.Resource] = []
        if release.traffic == "istio" or release.gateway is None:
            # The host in-mesh callers call (and the VirtualService's host): both tracks' pods behind it.
            self.services["shared"] = service(
                f"{name}-service", object_name=svc, release=release, context=context,
                selector=selector_labels(release), parent=self, load_balancer=False,
            )
            front = [self.services["shared"]]
        if release.traffic == "gateway":
            for track in (STABLE, CANARY):
                self.services[track] = self._track_service(name, args, track)
            canary_deployment = track_deployment(CANARY, [self.services[CANARY], *front])
            track_deployment(STABLE, [self.services[STABLE], *front])
            self.routes["HTTPRoute"] = k8s.apiextensions.CustomResource(
                f"{name}-httproute", api_version=GATEWAY_API_VERSION, kind="HTTPRoute", metadata=metadata(svc),
                spec=httproute_spec(svc, port, weight, release.gateway, release.match),
                opts=pulumi.ResourceOptions(parent=self, provider=context.provider,
                                            depends_on=[*self.services.values(), canary_deployment]),
            )
            return
        canary_deployment = track_deployment(CANARY, front)
        track_deployment(STABLE, front)
        # Subsets before the routes that name them (Istio's make-before-break order).
        self.routes["DestinationRule"] = k8s.apiextensions.CustomResource(
            f"{name}-destinationrule", api_version=ISTIO_API_VERSION, kind="DestinationRule", metadata=metadata(svc),
            spec=destination_rule_spec(svc),
            opts=pulumi.ResourceOptions(parent=self, provider=context.provider, depends_on=front),
        )
        self.routes["VirtualService"] = k8s.apiextensions.CustomResource(
            f"{name}-virtualservice", api_version=ISTIO_API_VERSION, kind="VirtualService", metadata=metadata(svc),
            spec=virtual_service_spec(svc, port, weight, release.gateway, release.match),
            opts=pulumi.ResourceOptions(parent=self, provider=context.provider,
                                        depends_on=[*front, self.routes["DestinationRule"], canary_deployment]),
        )

    def _dns_mode(self, name: str, args: ReleaseArgs, weight: int, track_deployment: Any) -> None:
        """dns: a load balancer per track, and Route53 weighted alias records of one name over both."""
        import pulumi_aws as aws

        release, context = args.release, args.context
        dns = release.dns
        assert dns is not None
        svc = release.service_name
        # The records alias the load balancer the cluster gives: an NLB from the AWS Load Balancer
        # Controller (asked for explicitly, as on an eks stack), or the in-tree classic ELB.
        nlb = dns.load_balancer_type == "network"
        for track in (STABLE, CANARY):
            self.services[track] = service(
                f"{name}-{track}-service", object_name=f"{svc}-{track}", release=release, context=context,
                selector=selector_labels(release, track), parent=self, annotations=dict(NLB_ANNOTATIONS) if nlb else None,
            )
        canary_deployment = track_deployment(CANARY, [self.services[CANARY]])
        track_deployment(STABLE, [self.services[STABLE]])
        zone = aws.route53.get_zone_output(name=dns.zone)
        lb_zone = (aws.lb.get_hosted_zone_id_output(load_balancer_type="network", region=dns.region) if nlb
                   else aws.elb.get_hosted_zone_id_output(region=dns.region))
        weights = track_weights(weight)
        for track in (STABLE, CANARY):
            self.records[track] = aws.route53.Record(
                f"{name}-{track}-record", name=dns.name, type="A", zone_id=zone.zone_id, set_identifier=track,
                weighted_routing_policies=[aws.route53.RecordWeightedRoutingPolicyArgs(weight=weights[track])],
                aliases=[aws.route53.RecordAliasArgs(name=service_address(self.services[track]), zone_id=lb_zone.id,
                                                     evaluate_target_health=True)],
                # The weights move only once the canary's pods are ready (the canary Deployment is awaited).
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.services.values(), canary_deployment]),
            )

    def _track_service(self, name: str, args: ReleaseArgs, track: str) -> k8s.core.v1.Service:
        release = args.release
        return service(
            f"{name}-{track}-service", object_name=f"{release.service_name}-{track}", release=release,
            context=args.context, selector=selector_labels(release, track), parent=self, load_balancer=False,
        )

    def _ingress(self, name: str, args: ReleaseArgs, *, object_name: str, backend_services: list[str],
                 backend_port_name: str | None = None, annotations: dict[str, str] | None = None,
                 ) -> k8s.networking.v1.Ingress:
        """An Ingress with one rule: path / to each backend Service in turn (skipper's traffic split
        wants the identical path once per backend)."""
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
                    )
                    for backend_service in backend_services
                ]))],
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=context.provider,
                                        depends_on=[*self.services.values(), self.deployments[CANARY]]),
        )
