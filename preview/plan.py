"""The preview plan: what a stack deploys, per release, in numbers, with its warnings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from model import canary_math
from model.capacity import Room, defaulted_requests, node_group_room, pod_room
from model.config import Release, StackConfig
from model.fenceposts import RECREATE, ROLLING_UPDATE, scaled_value
from model.forecast import Forecast, blue_green_forecast, forecast
from preview.runner import ProgramRun


def release_forecast(release: Release) -> Forecast:
    """The update this release goes through when its (stable) image changes.

    For a canary that is the promotion: the stable Deployment rolls to the canary's tag.
    """
    if release.strategy == "Canary":
        assert release.stable is not None
        return forecast(release.stable.replicas, ROLLING_UPDATE, release.max_surge, release.max_unavailable)
    if release.strategy == "Recreate":
        return forecast(release.replicas, RECREATE, None, None)
    return forecast(release.replicas, ROLLING_UPDATE, release.max_surge, release.max_unavailable)


def traffic_needs(release: Release) -> str | None:
    """What the cluster (or the account) must already have for the release's traffic mode: the
    program creates none of it, and a missing one shows only at `pulumi up`."""
    if release.strategy != "Canary":
        return None
    svc, gateway = release.service_name, release.gateway
    if release.traffic in ("nlb", "alb"):
        return "the AWS Load Balancer Controller"
    if release.traffic == "nginx":
        return f"ingress-nginx serving IngressClass {release.ingress_class}"
    if release.traffic == "gateway" and gateway is None:
        return ("the Gateway API v1 CRDs (HTTPRoute) and a service mesh that implements GAMMA for HTTPRoute v1 "
                f"(Istio 1.22+, Linkerd 2.18+) with the callers of Service {svc} in it")
    if release.traffic == "gateway":
        assert gateway is not None
        return (f"the Gateway API v1 CRDs (HTTPRoute), Gateway {gateway.ref} with a controller serving it (the AWS "
                "Load Balancer Controller v2.14+ with its Gateway API feature gate, Istio, Envoy Gateway, ...), and a "
                f"listener{' ' + gateway.section_name if gateway.section_name else ''} that allows routes from this "
                "namespace")
    if release.traffic == "istio":
        needs = (f"Istio 1.22+ (the networking.istio.io/v1 CRDs) with the callers of Service {svc} in the mesh "
                 "(sidecars, or ambient with a waypoint for the Service)")
        if gateway is not None:
            needs += f", and the Istio Gateway {gateway.ref} serving hosts {', '.join(gateway.hosts)}"
        return needs
    if release.traffic == "skipper":
        return (f"skipper serving IngressClass {release.ingress_class} and kube-ingress-aws-controller in front of it "
                "(its IAM permissions, and a security group tagged for it)")
    if release.traffic == "dns":
        assert release.dns is not None
        lbs = ("NLBs from the AWS Load Balancer Controller" if release.dns.load_balancer_type == "network"
               else "the in-tree classic ELBs")
        return (f"the public Route53 hosted zone {release.dns.zone} in the account (`rollout preflight` checks it); "
                f"the records alias {lbs} in {release.dns.region}")
    return None


def traffic_caveats(release: Release) -> list[str]:
    """What a mode's split does not do, in words (shown under the release)."""
    if release.strategy != "Canary":
        return []
    svc = release.service_name
    if release.traffic == "dns":
        settle = canary_math.settle_seconds(release)
        return [f"DNS caching makes this coarse: a weight change shows only after Route53 has it (up to "
                f"{canary_math.ROUTE53_PROPAGATION_SECONDS} s) and the alias records' TTL "
                f"({canary_math.ALIAS_TTL_SECONDS} s) has run out in every resolver (so a step settles for "
                f"{settle:g} s before it is judged), and it splits by resolver, not by request: a client sees all "
                "stable or all canary until its cached answer expires; shares match the weights only over many "
                "resolvers"]
    if release.traffic in ("gateway", "istio") and (release.gateway is None or release.traffic == "istio"):
        return [f"only calls made through the mesh are split by weight: a caller outside it reaches Service {svc}'s "
                "pods of both tracks by pod count"]
    return []


def split_words(release: Release) -> str | None:
    """Where the weight lives, with this weight's numbers."""
    weight = release.requested_weight
    if release.strategy != "Canary" or weight is None or release.traffic in ("replicas", "nlb", "alb", "nginx"):
        return None
    svc, stable, canary = release.service_name, 100 - weight, weight
    if release.traffic == "gateway":
        return f"HTTPRoute {svc} backendRefs: {svc}-stable weight {stable}, {svc}-canary weight {canary}"
    if release.traffic == "istio":
        return f"VirtualService {svc} routes: subset stable weight {stable}, subset canary weight {canary}"
    if release.traffic == "skipper":
        return f"Ingress {svc} zalando.org/backend-weights: {svc}-stable {stable}, {svc}-canary {canary}"
    assert release.dns is not None
    return (f"Route53 A {release.dns.name}: set stable weight {stable} (load balancer of {svc}-stable), set canary "
            f"weight {canary} (load balancer of {svc}-canary)")


# Where each router holds a match route and a sticky session (the plan's `match` and `sticky` lines).
MATCH_WHERE = {
    "nginx": "Ingress {svc}-canary canary-by-header/-cookie, read before canary-weight",
    "alb": "ALB listener rules with http-header conditions, ahead of the weighted rule (Ingress {svc})",
    "gateway": "HTTPRoute {svc}: a rule with header matches ahead of the weighted rule",
    "istio": "VirtualService {svc}: the first http route, match on headers",
    "skipper": "Ingress {svc}-canary-<kind> with a zalando.org/skipper-predicate",
}
STICKY_WHERE = {
    "nginx": "cookie {svc}-track (ingress-nginx affinity, affinity-canary-behavior: sticky)",
    "alb": "the ALB's target-group stickiness cookie (AWSALBTG) on the weighted forward",
}


def match_words(release: Release) -> str | None:
    """The header/cookie route: what matches and where the router holds it; matched requests ignore the weight."""
    if release.match is None:
        return None
    where = MATCH_WHERE[release.traffic].format(svc=release.service_name)
    return f"{release.match.describe()} → canary at every weight; {where}"


def routing_plan(release: Release) -> dict[str, Any] | None:
    """How a canary's traffic reaches it: where the address comes from, what the cluster or account
    must have, where the weight lives, what the mode does not do, and how long a weight change takes."""
    if release.strategy != "Canary":
        return None
    return {
        "address": release.address_source(),
        "needs": traffic_needs(release),
        "split": split_words(release),
        "match": match_words(release),
        "sticky": STICKY_WHERE[release.traffic].format(svc=release.service_name) if release.sticky else None,
        "caveats": traffic_caveats(release),
        "settleSeconds": canary_math.settle_seconds(release),
    }


def traffic_plan(release: Release) -> dict[str, Any] | None:
    if release.strategy != "Canary":
        return None
    assert release.stable is not None and release.canary is not None
    share = release.effective_weight or 0.0
    plan: dict[str, Any] = {
        "mode": release.traffic,
        "requestedWeight": release.requested_weight,
        "canaryShare": share,
        "stablePods": release.stable.replicas,
        "canaryPods": release.canary.replicas,
    }
    weight = release.requested_weight
    if weight is not None:
        # What the workshop's pod-count split would need for exactly this share.
        exact = canary_math.exact_total(weight)
        plan["replicasModeExactTotal"] = exact
        plan["replicasModeExactCanaryPods"] = exact * weight // 100
    if release.traffic == "replicas" and weight is not None and release.replicas > 0:
        plan["nearestShares"] = list(canary_math.nearest_shares(release.replicas, weight))
    return plan


DEFAULT_STEPS = (5, 25, 50, 100)  # `rollout canary`'s default --steps


def _pods_at(release: Release, weight: int, pods_for: int | None = None) -> tuple[int, int]:
    assert release.stable is not None
    base = release.stable.replicas if release.traffic != "replicas" else release.replicas
    stable, canary = canary_math.track_replicas(release.traffic, base, weight, pods_for)
    # A header/cookie route keeps a canary pod at weight 0 (model/config.py).
    return stable, max(canary, 1) if release.match is not None else canary


def _step_updates(release: Release, old: int, new: int) -> list[str]:
    """The two updates `rollout canary` and `rollout abort` make for one weight change, in words."""
    (first_weight, hold), (second_weight, _) = canary_math.weight_step(old, new)
    states = [_pods_at(release, old), _pods_at(release, first_weight, hold), _pods_at(release, second_weight)]
    words = []
    for (weight_before, (stable_a, canary_a)), (weight_after, (stable_b, canary_b)) in zip(
            ((old, states[0]), (first_weight, states[1])), ((first_weight, states[1]), (new, states[2])), strict=True):
        parts = []
        if canary_b != canary_a:
            parts.append(f"canary {canary_a} → {canary_b} pods" + (", awaited ready" if canary_b > canary_a else ""))
        if stable_b != stable_a:
            parts.append(f"stable {stable_a} → {stable_b} pods" + (", awaited ready" if stable_b > stable_a else ""))
        if weight_after != weight_before and release.traffic != "replicas":
            parts.append(f"weight {weight_before}% → {weight_after}%")
        words.append(", ".join(parts) or "no change (skipped)")
    return words


def weight_step_plan(release: Release) -> list[dict[str, Any]]:
    """What the next weight step up and an abort do, update by update (weight form only)."""
    weight = release.requested_weight
    if release.strategy != "Canary" or weight is None or release.pods_for_weight is not None:
        return []
    plans = []
    higher = [w for w in DEFAULT_STEPS if w > weight]
    if higher:
        plans.append({"change": f"raise {weight}% → {higher[0]}%", "updates": _step_updates(release, weight, higher[0])})
    if weight > 0:
        plans.append({"change": f"abort {weight}% → 0%", "updates": _step_updates(release, weight, 0)})
    return plans


def warnings_for(release: Release, fc: Forecast) -> list[str]:
    out = []
    name = release.name
    if fc.replicas > 0 and fc.min_available_seen == 0:
        why = "Recreate stops every pod first" if release.strategy == "Recreate" else (
            f"maxUnavailable {release.max_unavailable} covers all {fc.replicas} pods")
        out.append(f"release {name}: an update drops to 0 ready pods ({why}): expect downtime on every update")
    serving = {"Canary": "stable", "BlueGreen": release.active}
    single = [t for t, n in release.replica_counts().items()
              if n == 1 and (release.strategy not in serving or t == serving[release.strategy])]
    if single:
        which = {"Canary": "stable ", "BlueGreen": "active "}.get(release.strategy, "")
        out.append(f"release {name}: runs a single {which}pod: "
                   "a node drain or crash takes it offline")
    if release.strategy != "Recreate":
        replicas = fc.replicas
        surge = scaled_value(release.max_surge, replicas, True)
        unavailable = scaled_value(release.max_unavailable, replicas, False)
        if replicas > 0 and surge == 0 and unavailable == 0:
            out.append(f"release {name}: maxSurge {release.max_surge!r} and maxUnavailable {release.max_unavailable!r} "
                       f"both round to 0 at {replicas} pods; the controller takes maxUnavailable = 1")
    # The weight warning is the program's own (CanaryPair logs it): build() takes it from the run.
    return out


# Kinds that carry a release's traffic split under its Service name, before a Service of that name.
_ROUTE_KINDS = ("HTTPRoute", "VirtualService", "Ingress")
ROUTE53_FRONT = "Route53 weighted records"


def _front(release: Release, run: ProgramRun) -> str:
    """What the program registered in front of the release's pods under its Service name: a route
    (HTTPRoute, VirtualService, Ingress), else the Service's type; Route53 records for `dns`."""
    if any(r.type == "aws:route53/record:Record" and r.parent_name == release.name for r in run.resources):
        return ROUTE53_FRONT
    found: dict[str, str] = {}
    for resource in run.kubernetes_objects():
        metadata = resource.inputs.get("metadata") or {}
        kind = resource.inputs.get("kind")
        if metadata.get("name") == release.service_name and kind in ("Service", *_ROUTE_KINDS):
            found[kind] = kind if kind != "Service" else (resource.inputs.get("spec") or {}).get("type", "ClusterIP")
    for kind in (*_ROUTE_KINDS, "Service"):
        if kind in found:
            return found[kind]
    return "none"


def _service_line(release: Release) -> str | None:
    """The plan's `service` line for the modes whose front is not one LoadBalancer Service or Ingress."""
    if release.strategy != "Canary" or release.traffic not in ("gateway", "istio", "dns"):
        return None
    svc, ports = release.service_name, f":{release.service_port} → pod :{release.port}"
    source = release.address_source()
    where = source if source.startswith("in-mesh") else f"address: {source}"
    if release.traffic == "dns":
        assert release.dns is not None
        return (f"{release.dns.name}: Route53 weighted records → LoadBalancer {svc}-stable, {svc}-canary {ports} "
                "(addresses assigned at deploy)")
    if release.traffic == "gateway" and release.gateway is not None:
        return f"{svc}: HTTPRoute on Gateway {release.gateway.ref} → {svc}-stable, {svc}-canary {ports} ({where})"
    route = "HTTPRoute" if release.traffic == "gateway" else "VirtualService"
    return f"{svc}: ClusterIP {ports}, split by {route} {svc} ({where})"


def release_plan(release: Release, run: ProgramRun) -> dict[str, Any]:
    fc = release_forecast(release)
    plan: dict[str, Any] = {
        "name": release.name,
        "strategy": release.strategy,
        "images": release.images(),
        "replicas": release.replica_counts(),
        "totalReplicas": release.replicas,
        "maxSurge": release.max_surge,
        "maxUnavailable": release.max_unavailable,
        # The forecast resolved the fenceposts already (Recreate: no surge, every pod unavailable).
        "maxSurgePods": fc.surge_pods,
        "maxUnavailablePods": fc.unavailable_pods,
        "fewestReadyDuringUpdate": fc.min_available_seen,
        "mostPodsDuringUpdate": fc.max_pods_seen,
        "service": {
            "name": release.service_name,
            "port": release.service_port,
            "targetPort": release.port,
            "type": _front(release, run),
            "line": _service_line(release),
        },
        "forecast": fc.to_json(),
        "warnings": warnings_for(release, fc),
    }
    if release.strategy == "Canary":
        plan["requestedWeight"] = release.requested_weight
        plan["effectiveWeight"] = release.effective_weight
        plan["traffic"] = traffic_plan(release)
        plan["routing"] = routing_plan(release)
        plan["weightSteps"] = weight_step_plan(release)
    return plan


def blue_green_plan(release: Release) -> dict[str, Any]:
    """Both colors, which is active and which is previewed, and the capacity a `rollout bluegreen` run needs."""
    assert release.active is not None and release.idle is not None
    colors = {}
    for color, track in release.colors.items():
        active = color == release.active
        colors[color] = {"tag": track.tag if track else None, "pods": release.color_replicas(color),
                         "role": "active" if active else "preview",
                         "service": release.service_name if active else release.preview_service_name}
    check = release.preview_check
    return {
        "active": release.active, "idle": release.idle, "colors": colors,
        "activeService": release.service_name, "previewService": release.preview_service_name,
        "previewCheck": check.to_json() if check else None,
        "forecast": blue_green_forecast(release.replicas, release.color_replicas(release.idle)).to_json(),
    }


def _pod_requests(release: Release) -> dict[str, str]:
    """What each pod requests as the scheduler counts it (a request not given takes its limit)."""
    return defaulted_requests(release.resources.requests, release.resources.limits)


def _pods_at_rest(release: Release) -> Room:
    return pod_room(_pod_requests(release), sum(release.replica_counts().values()))


def capacity_warnings(config: StackConfig) -> dict[str, list[str]]:
    """Per blue-green release: where the node group at its largest cannot hold the stack's pods with both of its
    colors up (model/capacity.py; the other releases at rest, one switch at a time). A kubeconfig cluster's nodes and
    a namespace's ResourceQuota are not in config: checked live only."""
    nodes = config.cluster.nodes
    if config.cluster.mode != "eks" or nodes is None:
        return {}
    room, words = node_group_room(nodes.instance_types, nodes.max)
    if room is None:
        return {}
    rest = Room(0, Decimal(0), Decimal(0))
    for release in config.releases:
        rest = rest + _pods_at_rest(release)
    found: dict[str, list[str]] = {}
    for release in config.releases:
        if release.strategy != "BlueGreen":
            continue
        assert release.idle is not None
        extra = pod_room(_pod_requests(release), release.replicas - release.color_replicas(release.idle))
        short = room.short_of(rest + extra)
        if short:
            found[release.name] = [
                f"release {release.name}: the node group at its largest ({words}) cannot hold both colors during a "
                f"switch ({'; '.join(short)}, with the stack's other pods at rest): the new color's pods would stay "
                "Pending and `rollout bluegreen` would fail before the switch; raise cluster.nodes.max or lower the "
                "requests"]
    return found


def build(config: StackConfig, run: ProgramRun) -> dict[str, Any]:
    releases = [release_plan(r, run) for r in config.releases]
    for plan_, release in zip(releases, config.releases, strict=True):
        if release.strategy == "BlueGreen":
            plan_["blueGreen"] = blue_green_plan(release)
    for name, warnings in capacity_warnings(config).items():
        next(p for p in releases if p["name"] == name)["warnings"].extend(warnings)
    cluster = config.cluster
    return {
        "stack": config.stack,
        "cluster": {
            "mode": cluster.mode,
            "context": cluster.context,
            "kubernetesVersion": cluster.kubernetes_version,
            "loadBalancerController": cluster.load_balancer_controller,
        },
        "namespace": config.namespace,
        "awaitLoadBalancer": config.await_load_balancer,
        "resources": [
            {"type": r.type, "name": r.name, "parent": r.parent_name}
            for r in sorted(run.resources, key=lambda r: (r.custom, r.type, r.name))
        ],
        "releases": releases,
        "warnings": [w for r in releases for w in r["warnings"]] + list(run.warnings),
    }


# ---------------------------------------------------------------------------------------------
# Text rendering
# ---------------------------------------------------------------------------------------------


def _steps_line(fc: dict[str, Any], limit: int = 12) -> str:
    steps = [f"{s['old']}+{s['new']}" + ("" if s["newReady"] == s["new"] else f"({s['newReady']} ready)")
             for s in fc["steps"]]
    if len(steps) > limit:
        steps = steps[: limit // 2] + ["…"] + steps[-limit // 2:]
    return " → ".join(steps)


def _blue_green_lines(r: dict[str, Any]) -> list[str]:
    bg, svc = r["blueGreen"], r["service"]
    image = r["images"].get("app", "").rsplit(":", 1)[0] or None
    lines = []
    for color, c in bg["colors"].items():
        what = f"{image}:{c['tag']} × {c['pods']}" if c["tag"] is not None else "not deployed (no Deployment)"
        lines.append(f"    {color:<11}{what}; {c['role']}: Service {c['service']} selects it")
    ports = f":{svc['port']} → pod :{svc['targetPort']}"
    lines.append(f"    {'service':<11}{bg['activeService']}: LoadBalancer {ports}, active ({bg['active']}) "
                 "(address assigned at deploy)")
    lines.append(f"    {'preview':<11}{bg['previewService']}: LoadBalancer {ports}, idle ({bg['idle']}) "
                 "(address assigned at deploy)")
    check = bg["previewCheck"]
    lines.append(f"    {'check':<11}" + (f"the preview is judged for at least {check['interval']} on {check['path']} "
                                         "before the switch" if check else
                                         "no previewCheck (required on protected stacks)"))
    fc = bg["forecast"]
    rest, peak = fc["phases"][0]["pods"], fc["peakPods"]
    lines.append(f"    {'switch':<11}{rest} pods at rest → {peak} while both colors are up (new color up and judged, "
                 f"switch, scale-down delay) → {fc['phases'][-1]['pods']}; never fewer than {fc['fewestReady']} "
                 "ready behind the active Service")
    return lines


def render_text(plan: dict[str, Any], manifest_note: str = "") -> str:
    lines = []
    cluster = plan["cluster"]
    where = f"kubeconfig context {cluster['context']}" if cluster["mode"] == "kubeconfig" and cluster["context"] else (
        "kubeconfig current context" if cluster["mode"] == "kubeconfig" else "EKS cluster created by this stack")
    lines.append(f"Stack {plan['stack']}: {where}, namespace {plan['namespace']}, Kubernetes {cluster['kubernetesVersion']}")
    lines.append("")
    lines.append(f"Resources ({len(plan['resources'])})")
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in plan["resources"]:
        children.setdefault(r["parent"], []).append(r)

    def tree(parent: str | None, depth: int) -> None:
        for r in children.get(parent, []):
            lines.append(f"  {'  ' * depth}{r['name']}  ({r['type']})")
            if r["name"] != parent:
                tree(r["name"], depth + 1)

    tree(None, 0)
    lines.append("")
    lines.append("Releases")
    for r in plan["releases"]:
        head = f"  {r['name']}  {r['strategy']}"
        if r["strategy"] == "Canary":
            head += f" (traffic: {r['traffic']['mode']})"
        if r["strategy"] == "BlueGreen":
            lines.append(f"{head} (active: {r['blueGreen']['active']})")
            lines.extend(_blue_green_lines(r))
            continue
        lines.append(head)
        for track, image in r["images"].items():
            if track not in r["replicas"]:  # a blue-green release's "app" is its active color's image
                continue
            label = "image" if track == "app" else track
            lines.append(f"    {label:<11}{image} × {r['replicas'][track]}")
        svc = r["service"]
        t = r.get("traffic") or {}
        if svc.get("line"):
            lines.append(f"    {'service':<11}{svc['line']}")
        else:
            kind = "LoadBalancer" if svc["type"] == "LoadBalancer" else "Ingress"
            lines.append(f"    {'service':<11}{svc['name']}: {kind} :{svc['port']} → pod :{svc['targetPort']}"
                         " (address assigned at deploy)")
        if r["strategy"] == "Canary":
            req = "" if t["requestedWeight"] is None else f" (requested {t['requestedWeight']}%)"
            lines.append(f"    {'weight':<11}{t['canaryShare']:g}% of traffic to canary{req}, "
                         f"{t['canaryPods']} canary + {t['stablePods']} stable pods")
            if t.get("replicasModeExactTotal") and t["mode"] != "replicas" and t["requestedWeight"] not in (0, 100):
                lines.append(f"    {'':<11}a pod-count split needs {t['replicasModeExactTotal']} pods for exactly "
                             f"{t['requestedWeight']}%; this mode needs {t['canaryPods']} canary pod(s)")
            routing = r.get("routing") or {}
            if routing.get("split"):
                lines.append(f"    {'split':<11}{routing['split']}")
            if routing.get("match"):
                lines.append(f"    {'match':<11}{routing['match']}")
            if routing.get("sticky"):
                lines.append(f"    {'sticky':<11}{routing['sticky']}")
            if routing.get("needs") and t["mode"] in ("gateway", "istio", "skipper", "dns"):
                lines.append(f"    {'needs':<11}{routing['needs']}")
            for caveat in routing.get("caveats") or ():
                lines.append(f"    {'caveat':<11}{caveat}")
        for i, step in enumerate(r.get("weightSteps") or []):
            label = "steps" if i == 0 else ""
            updates = "  ".join(f"{n}) {u}" for n, u in enumerate(step["updates"], start=1))
            lines.append(f"    {label:<11}{step['change']}: {updates}")
        if r["strategy"] != "Recreate":
            lines.append(f"    {'fenceposts':<11}maxSurge {r['maxSurge']} → {r['maxSurgePods']} pod(s), "
                         f"maxUnavailable {r['maxUnavailable']} → {r['maxUnavailablePods']} pod(s)")
        fc = r["forecast"]
        what = "promotion" if r["strategy"] == "Canary" else "update"
        lines.append(f"    {what:<11}fewest ready {fc['minAvailableSeen']}, most pods {fc['maxPodsSeen']}, "
                     f"{fc['syncs']} controller syncs")
        lines.append(f"    {'':<11}old+new: {_steps_line(fc)}")
    if plan.get("policy"):
        lines.append("")
        lines.append("Policies (advisory: `pulumi up` goes ahead)")
        for v in plan["policy"]:
            lines.append(f"  - {v['policy']}: {v['resource']}: {v['message']}")
    if plan["warnings"]:
        lines.append("")
        lines.append("Warnings")
        for w in plan["warnings"]:
            lines.append(f"  ! {w}")
    if manifest_note:
        lines.append("")
        lines.append(manifest_note)
    return "\n".join(lines)
