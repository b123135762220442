"""The canary's weight read where it takes effect, not where it was written: before a step's evidence
counts, `rollout canary` polls one of these readers until the live state carries the step's weight
(operations/step_checks.py: `wait_until_live`, `--verify-timeout`); a weight that never becomes live
ends the run in the abort path with the last reading.

What each traffic mode can and cannot confirm:

    replicas  the Deployments' status: ready, updated pods of each track equal to the split the plan
              gives (model/canary_math.py), observed at their current generation. The share judged is
              the ready pods' (what kube-proxy spreads connections over). Cannot see a node's
              iptables lagging the endpoints.
    nlb, alb  the load balancer the release's address names (ELBv2 describe_load_balancers by DNS
              name), its listener's forward action (nlb: describe_listeners; alb: describe_rules of the
              listener) with the canary's target-group weight, found by the AWS Load Balancer
              Controller's tags naming the canary Service; and at least one healthy target in each
              target group with weight (describe_target_health). Cannot see the load balancer's
              nodes applying the new rule (seconds, not reported by the API).
    dns       the two weighted alias records (Route53 list_resource_record_sets, set identifiers
              stable/canary) carry the weights (read after the loop's wait for Route53's propagation
              and the alias TTL). Cannot see resolvers' caches.
    nginx     the canary Ingress's canary/canary-weight annotations as live in the API, and the
              Ingress's status.loadBalancer (written by the controller once it serves the Ingress).
              Cannot see the controller's reload: ingress-nginx writes no per-change status.
    skipper   the Ingress's zalando.org/backend-weights annotation and status.loadBalancer (written by
              kube-ingress-aws-controller). Cannot see skipper's route table update.
    gateway   the HTTPRoute's backendRefs weights, and status.parents[] written by the Gateway's
              implementation: Accepted and ResolvedRefs True, at the route's current generation.
    istio     the VirtualService's route weights; status.conditions Reconciled True at the current
              generation when istiod writes status (PILOT_ENABLE_STATUS); without status, the weights
              only (said in the reading).

Kubernetes objects are read with the official `kubernetes` client from the stack's kubeconfig (the EKS
stack's `kubeconfig` output, or the local kubeconfig's context); AWS with boto3 and the default
credential chain in the stack's region. Every reader takes its client, so tests point it at a real or
loopback API server (Kubernetes) or moto (AWS).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from model import canary_math
from model.config import Release

NGINX_CANARY = "nginx.ingress.kubernetes.io/canary"
NGINX_CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
NGINX_CANARY_WEIGHT_TOTAL = "nginx.ingress.kubernetes.io/canary-weight-total"
SKIPPER_BACKEND_WEIGHTS = "zalando.org/backend-weights"


@dataclass(frozen=True)
class LiveWeight:
    confirmed: bool  # the live state carries the step's weight
    share: float | None  # the canary's share (percent) the live state gives, when it says one
    detail: str  # what was read, one line


class WeightNotLive(Exception):
    """The live state could not be read or does not carry the weight yet (the message says which)."""


class LiveReader(Protocol):
    def read(self, weight: int, share: float) -> LiveWeight: ...


def _close(share: float, expected: float) -> bool:
    return abs(share - expected) < 0.01


# -- Kubernetes --------------------------------------------------------------------------------------


def kubernetes_client(kubeconfig: Any = None, context: str | None = None) -> Any:
    """An ApiClient from the EKS stack's kubeconfig output (a dict or its JSON/YAML text), or from the
    local kubeconfig file and `context`."""
    from kubernetes import config

    if kubeconfig:
        if isinstance(kubeconfig, str):
            import yaml

            kubeconfig = yaml.safe_load(kubeconfig)
        return config.new_client_from_config_dict(kubeconfig, context=context)
    return config.new_client_from_config(context=context)


def _api_error(error: Exception, what: str) -> WeightNotLive:
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", None) or error
    return WeightNotLive(f"{what}: {'HTTP ' + str(status) + ' ' if status else ''}{reason}".strip())


class DeploymentsReader:
    """`replicas` mode: the tracks' ready pods from their Deployments' status."""

    def __init__(self, client: Any, namespace: str, release: str, replicas: int):
        from kubernetes import client as k8s

        self.apps = k8s.AppsV1Api(client)
        self.namespace, self.release, self.replicas = namespace, release, replicas

    def read(self, weight: int, share: float) -> LiveWeight:
        from kubernetes.client.exceptions import ApiException

        stable_n, canary_n = canary_math.split_replicas(self.replicas, weight)
        ready, text = {}, []
        for track, expected in (("stable", stable_n), ("canary", canary_n)):
            name = f"{self.release}-{track}"
            try:
                deployment = self.apps.read_namespaced_deployment_status(name, self.namespace)
            except (ApiException, OSError) as error:
                raise _api_error(error, f"Deployment {self.namespace}/{name}") from None
            status, spec = deployment.status, deployment.spec
            current = (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
            ready[track] = status.ready_replicas or 0
            updated = status.updated_replicas or 0
            settled = current and spec.replicas == expected and ready[track] == expected and updated >= expected \
                and (status.replicas or 0) == expected
            ready[track] = ready[track] if settled else -1
            text.append(f"{name} {status.ready_replicas or 0}/{spec.replicas} ready"
                        + ("" if settled else f" (want {expected} ready, updated, at the current generation)"))
        confirmed = ready["stable"] >= 0 and ready["canary"] >= 0
        live_share = canary_math.share_percent(ready["stable"], ready["canary"]) if confirmed else None
        return LiveWeight(confirmed, live_share, ", ".join(text)
                          + (f": the canary gets {live_share:g}% of the pods" if confirmed else ""))


class IngressReader:
    """`nginx` (the canary Ingress's annotations) and `skipper` (the backend-weights annotation)."""

    def __init__(self, client: Any, namespace: str, service: str, traffic: str):
        from kubernetes import client as k8s

        self.networking = k8s.NetworkingV1Api(client)
        self.namespace, self.service, self.traffic = namespace, service, traffic

    def read(self, weight: int, share: float) -> LiveWeight:
        from kubernetes.client.exceptions import ApiException

        name = f"{self.service}-canary" if self.traffic == "nginx" else self.service
        try:
            ingress = self.networking.read_namespaced_ingress(name, self.namespace)
        except (ApiException, OSError) as error:
            raise _api_error(error, f"Ingress {self.namespace}/{name}") from None
        annotations = ingress.metadata.annotations or {}
        if self.traffic == "nginx":
            total = float(annotations.get(NGINX_CANARY_WEIGHT_TOTAL, "100") or 100)
            if annotations.get(NGINX_CANARY) != "true":
                return LiveWeight(False, None, f"Ingress {name} is not an ingress-nginx canary (no {NGINX_CANARY}: true)")
            try:
                live = 100 * float(annotations.get(NGINX_CANARY_WEIGHT, "0")) / total
            except ValueError:
                return LiveWeight(False, None, f"Ingress {name}: {NGINX_CANARY_WEIGHT} is not a number")
        else:
            try:
                weights = json.loads(annotations.get(SKIPPER_BACKEND_WEIGHTS, "{}"))
                total = sum(float(v) for v in weights.values())
                live = 100 * float(weights.get(f"{self.service}-canary", 0)) / total if total else 0.0
            except (ValueError, TypeError, AttributeError):
                return LiveWeight(False, None, f"Ingress {name}: {SKIPPER_BACKEND_WEIGHTS} is not a JSON object of numbers")
        lb = ingress.status.load_balancer if ingress.status else None
        served = bool(lb and lb.ingress)
        detail = (f"Ingress {name} gives the canary {live:g}%"
                  + ("" if served else "; no status.loadBalancer yet (no controller serves it)"))
        return LiveWeight(_close(live, weight) and served, live, detail)


def _matches_requests(matches: list[dict[str, Any]] | None) -> bool:
    """A route rule that picks requests by header, cookie (a Cookie header) or query: the canary's match route."""
    return any(m.get("headers") or m.get("queryParams") for m in matches or [])


class RouteReader:
    """`gateway` (HTTPRoute) and `istio` (VirtualService): the weights and the implementation's status."""

    def __init__(self, client: Any, namespace: str, service: str, traffic: str):
        from kubernetes import client as k8s

        self.custom = k8s.CustomObjectsApi(client)
        self.namespace, self.service, self.traffic = namespace, service, traffic

    def read(self, weight: int, share: float) -> LiveWeight:
        from kubernetes.client.exceptions import ApiException

        kind = "HTTPRoute" if self.traffic == "gateway" else "VirtualService"
        group, version, plural = (("gateway.networking.k8s.io", "v1", "httproutes") if self.traffic == "gateway"
                                  else ("networking.istio.io", "v1", "virtualservices"))
        try:
            route = self.custom.get_namespaced_custom_object(group, version, self.namespace, plural, self.service)
        except (ApiException, OSError) as error:
            raise _api_error(error, f"{kind} {self.namespace}/{self.service}") from None
        generation = (route.get("metadata") or {}).get("generation")
        spec, status = route.get("spec") or {}, route.get("status") or {}
        if self.traffic == "gateway":
            # The weighted rule: a header/cookie route's rule sends its requests whatever the weight. Matches on
            # the path alone are no such rule (the API server defaults every rule's matches to PathPrefix /).
            refs = [ref for rule in spec.get("rules") or [] if not _matches_requests(rule.get("matches"))
                    for ref in rule.get("backendRefs") or []]
            weights = {ref.get("name"): float(ref.get("weight", 1)) for ref in refs}
            canary = weights.get(f"{self.service}-canary", 0.0)
            parents = status.get("parents") or []
            problems = []
            if not parents:
                problems.append("no status.parents yet (no implementation has accepted it)")
            for parent in parents:
                conditions = {c.get("type"): c for c in parent.get("conditions") or []}
                for wanted in ("Accepted", "ResolvedRefs"):
                    condition = conditions.get(wanted) or {}
                    if condition.get("status") != "True":
                        problems.append(f"{wanted} is {condition.get('status', 'missing')}"
                                        + (f" ({condition.get('reason')})" if condition.get("reason") else ""))
                    elif generation is not None and condition.get("observedGeneration") not in (None, generation):
                        problems.append(f"{wanted} is of generation {condition.get('observedGeneration')}, "
                                        f"not {generation}")
        else:
            routes = [r for http in spec.get("http") or [] if not _matches_requests(http.get("match"))
                      for r in http.get("route") or []]
            weights = {(r.get("destination") or {}).get("subset"): float(r.get("weight", 0)) for r in routes}
            canary = weights.get("canary", 0.0)
            problems = []
            if status:
                reconciled = {c.get("type"): c for c in status.get("conditions") or []}.get("Reconciled") or {}
                if reconciled and reconciled.get("status") != "True":
                    problems.append(f"Reconciled is {reconciled.get('status')}")
                if generation is not None and status.get("observedGeneration") not in (None, generation, str(generation)):
                    problems.append(f"status is of generation {status.get('observedGeneration')}, not {generation}")
        total = sum(weights.values())
        live = 100 * canary / total if total else 0.0
        detail = f"{kind} {self.service} gives the canary {live:g}%"
        if problems:
            detail += "; " + "; ".join(problems)
        elif self.traffic == "istio" and not status:
            detail += " (Istio wrote no status: weights only; enable istiod's status to confirm it is served)"
        return LiveWeight(_close(live, weight) and not problems, live, detail)


# -- AWS ---------------------------------------------------------------------------------------------


class LoadBalancerReader:
    """`nlb` and `alb`: the listener's (or its rules') forward weights and the targets' health."""

    def __init__(self, elbv2: Any, address: str, service: str, traffic: str, port: int):
        self.elbv2, self.address, self.service, self.traffic, self.port = elbv2, address, service, traffic, port

    def _load_balancer(self) -> dict[str, Any]:
        for page in self.elbv2.get_paginator("describe_load_balancers").paginate():
            for lb in page["LoadBalancers"]:
                if lb.get("DNSName", "").lower() == self.address.lower():
                    return lb
        raise WeightNotLive(f"no load balancer has the DNS name {self.address}")

    def _forwards(self, lb: dict[str, Any]) -> list[list[dict[str, Any]]]:
        """The target-group lists of each weighted forward action (listener default actions; ALB rules too)."""
        actions = []
        for listener in self.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            if self.traffic == "nlb" and listener.get("Port") != self.port:
                continue
            found = list(listener.get("DefaultActions") or [])
            if self.traffic == "alb":
                for rule in self.elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
                    found += rule.get("Actions") or []
            for action in found:
                groups = ((action.get("ForwardConfig") or {}).get("TargetGroups") or [])
                if action.get("Type") == "forward" and len(groups) > 1:
                    actions.append(groups)
        return actions

    def _is_canary(self, arn: str) -> bool:
        tags = self.elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
        canary = f"{self.service}-canary"
        return any(canary in tag.get("Value", "") for description in tags for tag in description.get("Tags") or [])

    def read(self, weight: int, share: float) -> LiveWeight:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            lb = self._load_balancer()
            forwards = self._forwards(lb)
            if not forwards:
                return LiveWeight(False, None, f"load balancer {lb['LoadBalancerName']} has no weighted forward action")
            groups = forwards[0]
            total = sum(g.get("Weight", 0) for g in groups)
            canary = [g for g in groups if self._is_canary(g["TargetGroupArn"])]
            if not canary:
                return LiveWeight(False, None, f"load balancer {lb['LoadBalancerName']}: no target group of its "
                                  f"weighted forward is tagged with {self.service}-canary")
            live = 100 * sum(g.get("Weight", 0) for g in canary) / total if total else 0.0
            unhealthy = []
            for group in groups:
                if not group.get("Weight"):
                    continue
                health = self.elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
                states = [d["TargetHealth"]["State"] for d in health["TargetHealthDescriptions"]]
                if "healthy" not in states:
                    unhealthy.append(f"{group['TargetGroupArn'].rsplit('/', 2)[-2]} has no healthy target "
                                     f"({', '.join(states) or 'no targets'})")
        except (BotoCoreError, ClientError) as error:
            raise WeightNotLive(f"ELBv2: {error}") from None
        detail = f"load balancer {lb['LoadBalancerName']} forwards {live:g}% to the canary"
        if unhealthy:
            detail += "; " + "; ".join(unhealthy)
        return LiveWeight(_close(live, weight) and not unhealthy, live, detail)


class RecordsReader:
    """`dns`: the weighted alias records of the release's name (set identifiers stable/canary)."""

    def __init__(self, route53: Any, zone: str, name: str):
        self.route53, self.zone, self.name = route53, zone.rstrip(".") + ".", name.rstrip(".") + "."

    def read(self, weight: int, share: float) -> LiveWeight:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            zones = self.route53.list_hosted_zones_by_name(DNSName=self.zone)["HostedZones"]
            zone = next((z for z in zones if z["Name"] == self.zone and not z.get("Config", {}).get("PrivateZone")),
                        None)
            if zone is None:
                return LiveWeight(False, None, f"no public hosted zone {self.zone}")
            records = self.route53.list_resource_record_sets(HostedZoneId=zone["Id"], StartRecordName=self.name,
                                                             StartRecordType="A")["ResourceRecordSets"]
        except (BotoCoreError, ClientError) as error:
            raise WeightNotLive(f"Route53: {error}") from None
        weights = {r.get("SetIdentifier"): r.get("Weight", 0) for r in records
                   if r["Name"] == self.name and r["Type"] == "A" and "Weight" in r}
        if set(weights) < {"stable", "canary"}:
            return LiveWeight(False, None, f"{self.name} has weighted records {sorted(map(str, weights))}, "
                                           "not stable and canary")
        total = weights["stable"] + weights["canary"]
        live = 100 * weights["canary"] / total if total else 50.0
        return LiveWeight(_close(live, weight), live, f"Route53 {self.name} weights stable {weights['stable']}, "
                                                      f"canary {weights['canary']}: {live:g}% to the canary")


# An ELB's DNS name carries its region: NLBs `name-id.elb.REGION.amazonaws.com`, ALBs and classic ELBs
# `[internal-|dualstack.]name-id.REGION.elb.amazonaws.com` (`.amazonaws.com.cn` in China).
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_ELB_HOSTNAME = re.compile(rf"\.(?:elb\.(?P<nlb>{_REGION})|(?P<alb>{_REGION})\.elb)\.amazonaws\.com(?:\.cn)?$")


def region_of_hostname(address: Any) -> str | None:
    """The AWS region an ELB's DNS name says (None for anything else: an IP, another name)."""
    if not isinstance(address, str):
        return None
    host = address.strip().lower().rstrip(".")
    host = host.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0] if ":" in host or "/" in host else host
    found = _ELB_HOSTNAME.search(host)
    return (found.group("nlb") or found.group("alb")) if found else None


def reader_for(release: Release, *, namespace: str, outputs: dict[str, Any], kubeconfig: Any = None,
               context: str | None = None, region: str | None = None, kubernetes: Any = None,
               session: Any = None) -> LiveReader:
    """The reader for the release's traffic mode, with clients from the stack (or the ones given)."""
    traffic = release.traffic
    if traffic in ("nlb", "alb", "dns"):
        import boto3

        session = session or boto3.session.Session(region_name=region)
        if traffic == "dns":
            assert release.dns is not None
            return RecordsReader(session.client("route53"), release.dns.zone, release.dns.name)
        address = outputs.get("address")
        if not address:
            raise WeightNotLive(f"the stack reports no address for release {release.name}: its load balancer is unknown")
        port = release.service_port if traffic == "nlb" else 80
        return LoadBalancerReader(session.client("elbv2"), str(address), release.service_name, traffic, port)
    client = kubernetes or kubernetes_client(kubeconfig, context)
    if traffic == "replicas":
        return DeploymentsReader(client, namespace, release.name, release.replicas)
    if traffic in ("nginx", "skipper"):
        return IngressReader(client, namespace, release.service_name, traffic)
    return RouteReader(client, namespace, release.service_name, traffic)
