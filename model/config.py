"""Typed stack configuration: validated by the models in config_models.py, then resolved.

`validate()` checks the `app-update:` settings of one stack (every problem at once, one line
each, naming the full key path and the rule) and resolves them into frozen dataclasses the
components use: defaults filled in, the canary split worked out. It runs before the program
registers a single resource. No Pulumi import: the offline preview, the operations, the tests
and `pulumi up` share this module.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model import canary_math, eks_versions
from model.config_constants import (  # noqa: F401 (the project's constants, re-exported)
    CLUSTER_MODES,
    COLORS,
    DEFAULT_IMAGE,
    DEFAULT_KUBERNETES_VERSION,
    DEFAULT_SURGE,
    DEFAULT_UNAVAILABLE,
    INT32_MAX,
    MATCH_COOKIE_VALUE,
    MAX_RELEASE_NAME,
    PROJECT,
    STRATEGIES,
    SUPPORTED_KUBERNETES_VERSIONS,
    TRAFFIC_MODES,
)

if TYPE_CHECKING:
    from model import config_models as schema


@functools.cache
def project_defaults(project_dir: Path | None = None) -> dict[str, Any]:
    """The defaults Pulumi.yaml declares for this project's top-level keys (namespace,
    awaitLoadBalancer, protected): the one place they are written. The Pulumi CLI passes
    them to the program; offline, the stack-file reader applies them the same way."""
    from model.stack_file import PROJECT_DIR, load_yaml_file

    project = load_yaml_file((project_dir or PROJECT_DIR) / "Pulumi.yaml") or {}
    return {key: spec["default"] for key, spec in (project.get("config") or {}).items()
            if isinstance(spec, dict) and "default" in spec and ":" not in key}


# A Route53 record name in Release.object_names(): not a namespaced object, but two releases must not share one.
ROUTE53_RECORD = "Route53 record"


class ConfigError(Exception):
    """Invalid stack configuration: one line per problem, each naming its key path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    def report(self, stack: str) -> str:
        """What the operator reads, offline (`rollout preview`) and under `pulumi preview`/`up` alike:
        one header line naming the stack file and the count, then one line per problem."""
        count = len(self.problems)
        header = (f"{count} problem{'' if count == 1 else 's'} in Pulumi.{stack}.yaml; "
                  "nothing was deployed or written")
        return "\n".join([header, *self.problems])


# ---------------------------------------------------------------------------------------------
# Typed configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    requests: dict[str, str]
    limits: dict[str, str]


@dataclass(frozen=True)
class Track:
    """One side of a canary: the image tag it runs and the pods it gets."""

    name: str  # "stable" or "canary"
    tag: str
    replicas: int


@dataclass(frozen=True)
class Gateway:
    """The Gateway a `gateway` or `istio` canary binds to (north-south): its namespace resolved."""

    name: str
    namespace: str  # as given, or the release's own namespace
    section_name: str | None = None
    hosts: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Dns:
    """The Route53 weighted records of a `dns` canary and the load balancers they alias."""

    zone: str  # the hosted zone's name, without trailing dot
    name: str  # the record name, without trailing dot
    region: str  # where the load balancers are (their canonical hosted zone id depends on it)
    load_balancer_type: str  # "network" (AWS Load Balancer Controller NLBs) or "classic" (the in-tree ELB)


@dataclass(frozen=True)
class Match:
    """`canary.match`: requests that reach the canary whatever the weight. A header (exact value or regex) and/or a
    cookie `<cookie>=always`; either one is enough."""

    header_name: str | None = None
    header_value: str | None = None
    header_regex: str | None = None
    cookie: str | None = None

    @property
    def cookie_value(self) -> str:
        return MATCH_COOKIE_VALUE

    def describe(self) -> str:
        parts = []
        if self.header_name:
            parts.append(f"header {self.header_name}: {self.header_value}" if self.header_value is not None
                         else f"header {self.header_name} ~ /{self.header_regex}/")
        if self.cookie:
            parts.append(f"cookie {self.cookie}={self.cookie_value}")
        return " or ".join(parts)


@dataclass(frozen=True)
class PreviewCheck:
    """BlueGreen `previewCheck`: `rollout bluegreen` judges the preview Service for at least `interval` seconds,
    probing `path` (the release's healthPath unless given), before it switches."""

    interval: str  # as written (a duration like 2m)
    interval_seconds: int
    path: str

    def to_json(self) -> dict[str, Any]:
        return {"interval": self.interval, "intervalSeconds": self.interval_seconds, "path": self.path}


@dataclass(frozen=True)
class Release:
    name: str
    strategy: str
    image: str
    replicas: int
    port: int
    service_port: int
    service_name: str
    health_path: str
    resources: Resources
    env: dict[str, str]
    min_ready_seconds: int
    progress_deadline_seconds: int
    pre_stop_seconds: int
    # Recreate and RollingUpdate
    tag: str | None = None
    # RollingUpdate and Canary (the tracks roll in place on promotion)
    max_surge: int | str | None = None
    max_unavailable: int | str | None = None
    # Canary
    stable: Track | None = None
    canary: Track | None = None
    requested_weight: int | None = None
    effective_weight: float | None = None
    traffic: str = "replicas"
    ingress_class: str | None = None
    # Set between the two updates of a weight step: each track keeps the pods it has at this
    # weight too, so pods are ready before traffic moves and stay while traffic leaves.
    pods_for_weight: int | None = None
    # traffic: gateway or istio, bound to a Gateway (None: in-mesh only)
    gateway: Gateway | None = None
    # traffic: dns
    dns: Dns | None = None
    # Requests routed to the canary whatever the weight (header/cookie routes), and session affinity.
    match: Match | None = None
    sticky: bool = False
    # BlueGreen: the color the active Service selects, each color (None: never deployed) and the preview Service.
    # A color's Track has the pods it runs: the release's replicas (complete) or 0 (scaled down).
    active: str | None = None
    blue: Track | None = None
    green: Track | None = None
    preview_service_name: str | None = None
    preview_check: PreviewCheck | None = None

    @property
    def tracks(self) -> tuple[Track, ...]:
        """A canary's tracks, or a blue-green release's colors (those present in config)."""
        return tuple(t for t in (self.stable, self.canary, self.blue, self.green) if t is not None)

    @property
    def idle(self) -> str | None:
        """BlueGreen: the color the preview Service selects (the one that is not active)."""
        from model.config_models import other_color

        return None if self.active is None else other_color(self.active)

    @property
    def colors(self) -> dict[str, Track | None]:
        """BlueGreen: each color, None where config has none."""
        return {"blue": self.blue, "green": self.green}

    def color_replicas(self, color: str) -> int:
        """BlueGreen: a color's pods (0 when absent or scaled down)."""
        track = self.colors[color]
        return 0 if track is None else track.replicas

    def tags(self) -> dict[str, str]:
        """Image tag per track ("app" for single-track releases; per color present for BlueGreen)."""
        if self.strategy in ("Canary", "BlueGreen"):
            return {t.name: t.tag for t in self.tracks}
        return {"app": self.tag or ""}

    def images(self) -> dict[str, str]:
        """Image reference per track ("app" for single-track releases). A BlueGreen release's also has "app",
        the image its users get: the active color's."""
        images = {track: f"{self.image}:{tag}" for track, tag in self.tags().items()}
        if self.strategy == "BlueGreen" and self.active in images:
            images["app"] = images[self.active]
        return images

    def object_names(self) -> dict[str, tuple[str, ...]]:
        """The names this release's objects take in the namespace, per kind (PodDisruptionBudgets
        share their Deployment's name). A `dns` canary's weighted records, named by their DNS name,
        count as kind ROUTE53_RECORD: two releases must not write the same one."""
        svc = self.service_name
        if self.strategy == "BlueGreen":
            # Both colors' names, present or not: the idle one may come with the next `rollout bluegreen`.
            assert self.preview_service_name is not None
            return {"Deployment": (f"{self.name}-blue", f"{self.name}-green"), "Service": (svc, self.preview_service_name)}
        if self.strategy != "Canary":
            return {"Deployment": (self.name,), "Service": (svc,)}
        deployments = (f"{self.name}-stable", f"{self.name}-canary")
        tracks = (f"{svc}-stable", f"{svc}-canary")
        if self.traffic == "replicas":
            return {"Deployment": deployments, "Service": (svc,)}
        if self.traffic == "nlb":
            return {"Deployment": deployments, "Service": (svc, f"{svc}-canary")}
        if self.traffic == "gateway":
            front = (svc,) if self.gateway is None else ()  # the mesh form attaches to the release's own Service
            return {"Deployment": deployments, "Service": (*tracks, *front), "HTTPRoute": (svc,)}
        if self.traffic == "istio":
            return {"Deployment": deployments, "Service": (svc,), "VirtualService": (svc,), "DestinationRule": (svc,)}
        if self.traffic == "dns":
            assert self.dns is not None
            return {"Deployment": deployments, "Service": tracks, ROUTE53_RECORD: (self.dns.name,)}
        ingresses = (svc, f"{svc}-canary") if self.traffic == "nginx" else (svc,)
        if self.traffic == "skipper":
            ingresses += tuple(f"{svc}-canary-{kind}" for kind in self.match_kinds())
        return {"Deployment": deployments, "Service": tracks, "Ingress": ingresses}

    def match_kinds(self) -> tuple[str, ...]:
        """What `canary.match` routes on: ("header",), ("cookie",), both or none."""
        if self.match is None:
            return ()
        return tuple(kind for kind, given in (("header", self.match.header_name), ("cookie", self.match.cookie))
                     if given)

    def resource_names(self) -> dict[str, tuple[str, ...]]:
        """The logical names of this release's Pulumi resources under its component, per kind. Two
        releases of one strategy with the same name here would register the same URN."""
        name = self.name
        if self.strategy == "BlueGreen":
            return {"Deployment": (f"{name}-blue", f"{name}-green"),
                    "PodDisruptionBudget": (f"{name}-blue-pdb", f"{name}-green-pdb"),
                    "Service": (f"{name}-service", f"{name}-preview-service")}
        if self.strategy != "Canary":
            return {"Deployment": (f"{name}-deployment",), "Service": (f"{name}-service",),
                    "PodDisruptionBudget": (f"{name}-deployment-pdb",)}
        tracks = {"Deployment": (f"{name}-stable", f"{name}-canary"),
                  "PodDisruptionBudget": (f"{name}-stable-pdb", f"{name}-canary-pdb")}
        track_services = (f"{name}-stable-service", f"{name}-canary-service")
        if self.traffic == "replicas":
            return {**tracks, "Service": (f"{name}-service",)}
        if self.traffic == "nlb":
            return {**tracks, "Service": (f"{name}-service", f"{name}-canary-service")}
        if self.traffic == "gateway":
            front = (f"{name}-service",) if self.gateway is None else ()
            return {**tracks, "Service": (*track_services, *front), "HTTPRoute": (f"{name}-httproute",)}
        if self.traffic == "istio":
            return {**tracks, "Service": (f"{name}-service",), "VirtualService": (f"{name}-virtualservice",),
                    "DestinationRule": (f"{name}-destinationrule",)}
        if self.traffic == "dns":
            return {**tracks, "Service": track_services, "Record": (f"{name}-stable-record", f"{name}-canary-record")}
        ingresses = (f"{name}-ingress", f"{name}-canary-ingress") if self.traffic == "nginx" else (f"{name}-ingress",)
        if self.traffic == "skipper":
            ingresses += tuple(f"{name}-canary-{kind}-ingress" for kind in self.match_kinds())
        return {**tracks, "Service": track_services, "Ingress": ingresses}

    def address_source(self) -> str:
        """Where the release's address comes from (the `address` output, or where to look when
        the program cannot know it)."""
        svc = self.service_name
        if self.strategy != "Canary" or self.traffic in ("replicas", "nlb"):
            return f"Service {svc} status (its load balancer)"  # (BlueGreen: the active Service)
        if self.traffic in ("alb", "nginx", "skipper"):
            return f"Ingress {svc} status (its load balancer)"
        if self.traffic == "dns":
            assert self.dns is not None
            return f"Route53 record {self.dns.name} (weighted aliases of the load balancers of {svc}-stable and {svc}-canary)"
        if self.gateway is None:
            return f"in-mesh only: callers of Service {svc}"
        if self.traffic == "gateway":
            return f"from Gateway {self.gateway.ref} status"
        return (f"the Istio ingress gateway behind Gateway {self.gateway.ref}, for hosts {', '.join(self.gateway.hosts)}; "
                f"in the mesh: callers of Service {svc}")

    def replica_counts(self) -> dict[str, int]:
        """Pods per track ("app" for single-track releases; both colors, 0 where absent, for BlueGreen)."""
        if self.strategy == "BlueGreen":
            return {color: self.color_replicas(color) for color in COLORS}
        if self.strategy == "Canary":
            return {t.name: t.replicas for t in self.tracks}
        return {"app": self.replicas}


@dataclass(frozen=True)
class NodeGroup:
    instance_types: tuple[str, ...]
    min: int
    desired: int
    max: int
    capacity_type: str


@dataclass(frozen=True)
class Cluster:
    mode: str
    kubernetes_version: str
    context: str | None = None
    load_balancer_controller: bool = False
    # eks only
    vpc_cidr: str | None = None
    availability_zones: int | None = None
    nodes: NodeGroup | None = None
    endpoint_public_access_cidrs: tuple[str, ...] = ()
    nat_gateways: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    availability_zone_names: tuple[str, ...] = ()  # pinned zones; else the first N that need no opt-in
    log_retention_days: int = 30
    admins: tuple[str, ...] = ()  # IAM principals given cluster admin; none: whoever runs `pulumi up`


@dataclass(frozen=True)
class StackConfig:
    stack: str
    namespace: str
    await_load_balancer: bool
    protected: bool
    cluster: Cluster
    releases: tuple[Release, ...]
    allowed_account_ids: tuple[str, ...] = ()
    region: str | None = None
    aws_profile: str | None = None  # aws:profile
    aws_role_arn: str | None = None  # the role the AWS provider assumes (aws:assumeRoles, last one)
    # promotion.from and promotion.soak (seconds); per release, how it got here (written by the rollout verbs)
    promotion_from: tuple[str, ...] = ()
    promotion_soak: int = 0
    verification: dict[str, dict[str, Any]] = field(default_factory=dict)

    def release(self, name: str) -> Release:
        for release in self.releases:
            if release.name == name:
                return release
        raise KeyError(name)


# ---------------------------------------------------------------------------------------------
# Resolving checked settings
# ---------------------------------------------------------------------------------------------

DEFAULT_RESOURCES = Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "128Mi"})


def _resources(given: schema.Resources | None) -> Resources:
    if given is None:
        return DEFAULT_RESOURCES
    # A given `resources` replaces the defaults whole: what is not written is not set.
    return Resources(requests=given.requests.model_dump(exclude_none=True) if given.requests else {},
                     limits=given.limits.model_dump(exclude_none=True) if given.limits else {})


def _cluster(given: schema.KubeconfigCluster | schema.EksCluster | None) -> Cluster:
    from model import config_models as schema

    given = given or schema.KubeconfigCluster(mode="kubeconfig")
    version = given.kubernetes_version or DEFAULT_KUBERNETES_VERSION
    lbc = bool(given.load_balancer_controller)
    if isinstance(given, schema.KubeconfigCluster):
        return Cluster(mode="kubeconfig", kubernetes_version=version, context=given.context, load_balancer_controller=lbc)
    nodes = given.nodes or schema.NodeGroup()
    return Cluster(
        mode="eks", kubernetes_version=version, load_balancer_controller=lbc,
        vpc_cidr=given.vpc_cidr or "10.0.0.0/16",
        availability_zones=len(given.availability_zone_names or ()) or given.availability_zones or 2,
        nodes=NodeGroup(tuple(nodes.instance_types or ["t3.medium"]), nodes.min or schema.NODES_MIN,
                        nodes.desired or schema.NODES_DESIRED, nodes.max or schema.NODES_MAX,
                        nodes.capacity_type or "ON_DEMAND"),
        endpoint_public_access_cidrs=tuple(given.endpoint_public_access_cidrs or ["0.0.0.0/0"]),
        nat_gateways=given.nat_gateways or "single", tags=dict(given.tags or {}),
        availability_zone_names=tuple(given.availability_zone_names or ()),
        log_retention_days=int(given.log_retention_days or 30), admins=tuple(given.admins or ()),
    )


# A BlueGreen color's Deployment rolls only when its tag changes while it is up, which `rollout bluegreen` never does
# to the active color: if someone does, it keeps every pod serving (nothing unavailable, a quarter more at a time).
BLUE_GREEN_SURGE, BLUE_GREEN_UNAVAILABLE = "25%", 0


def _release(name: str, given: schema.RecreateRelease | schema.RollingRelease | schema.CanaryRelease
             | schema.BlueGreenRelease,
             namespace: str = "app-update", region: str | None = None, load_balancer_controller: bool = False) -> Release:
    from model import config_models as schema

    common = dict(
        name=name, strategy=given.strategy, image=given.image or DEFAULT_IMAGE, port=given.port or 8080,
        service_port=given.service_port or 80, service_name=given.service_name or name,
        health_path=given.health_path or "/", resources=_resources(given.resources), env=dict(given.env or {}),
        min_ready_seconds=schema.DEFAULT_MIN_READY_SECONDS if given.min_ready_seconds is None else given.min_ready_seconds,
        progress_deadline_seconds=given.progress_deadline_seconds or 600,
        pre_stop_seconds=5 if given.pre_stop_seconds is None else given.pre_stop_seconds,
    )
    if isinstance(given, schema.RecreateRelease):
        return Release(**common, replicas=1 if given.replicas is None else given.replicas, tag=given.tag)
    if isinstance(given, schema.BlueGreenRelease):
        colors = {color: Track(color, spec.tag, given.color_replicas(color))
                  for color, spec in given.colors.items() if spec is not None}
        return Release(**common, replicas=given.size, max_surge=BLUE_GREEN_SURGE,
                       max_unavailable=BLUE_GREEN_UNAVAILABLE, active=given.active, blue=colors.get("blue"),
                       green=colors.get("green"),
                       preview_service_name=given.preview_service or schema.default_preview_service(common["service_name"]),
                       preview_check=None if given.preview_check is None else PreviewCheck(
                           given.preview_check.interval, seconds(given.preview_check.interval),
                           given.preview_check.path or common["health_path"]))
    surge = DEFAULT_SURGE if given.max_surge is None else given.max_surge
    unavailable = DEFAULT_UNAVAILABLE if given.max_unavailable is None else given.max_unavailable
    if isinstance(given, schema.RollingRelease):
        return Release(**common, replicas=1 if given.replicas is None else given.replicas, tag=given.tag,
                       max_surge=surge, max_unavailable=unavailable)
    traffic = given.traffic or "replicas"
    stable, canary = given.stable, given.canary
    if stable.replicas is not None or canary.replicas is not None:  # the workshop's form
        stable_n, canary_n = stable.replicas or 0, canary.replicas or 0
        requested, effective = None, canary_math.share_percent(stable_n, canary_n)
    else:
        requested = canary.weight or 0
        stable_n, canary_n = canary_math.track_replicas(traffic, given.replicas or 0, requested, canary.pods_for_weight)
        if canary.match is not None:
            canary_n = max(canary_n, 1)  # matched requests reach the canary at every weight, 0 included
        effective = canary_math.share_percent(stable_n, canary_n) if traffic == "replicas" else float(requested)
    ingress_class = given.ingress_class or traffic
    gateway = None
    if given.gateway is not None:
        gateway = Gateway(name=given.gateway.name, namespace=given.gateway.namespace or namespace,
                          section_name=given.gateway.section_name, hosts=tuple(given.gateway.hosts or ()))
    dns = None
    if given.dns is not None and region:
        dns = Dns(zone=given.dns.zone.rstrip("."), name=given.dns.name.rstrip("."), region=region,
                  load_balancer_type="network" if load_balancer_controller else "classic")
    return Release(
        **common, replicas=stable_n + canary_n, max_surge=surge, max_unavailable=unavailable,
        stable=Track("stable", stable.tag, stable_n), canary=Track("canary", canary.tag, canary_n),
        requested_weight=requested, effective_weight=effective, traffic=traffic,
        ingress_class=ingress_class if traffic in schema.INGRESS_MODES else None, pods_for_weight=canary.pods_for_weight,
        gateway=gateway, dns=dns, match=_match(canary.match), sticky=bool(canary.sticky),
    )


def _match(given: schema.CanaryMatch | None) -> Match | None:
    if given is None:
        return None
    header = given.header
    return Match(header_name=header.name if header else None, header_value=header.value if header else None,
                 header_regex=header.regex if header else None, cookie=given.cookie)


def _blue_green_services(releases: list[Release]) -> list[str]:
    """A BlueGreen release's preview Service is a Service name of its own (the default one too)."""
    problems = []
    for release in releases:
        preview = release.preview_service_name
        if release.strategy != "BlueGreen" or preview is None:
            continue
        if preview == release.service_name:
            problems.append(f"{PROJECT}:releases.{release.name}.previewServiceName: must differ from the active "
                            f"Service's name ({preview!r}): each selects another color")
        elif len(preview) > 63:
            problems.append(f"{PROJECT}:releases.{release.name}.previewServiceName: is required here: the default, "
                            f"{preview!r}, is longer than a Service name's 63 characters")
    return problems


def _unique_names(releases: list[Release]) -> list[str]:
    """No two releases may name the same object of a kind in the namespace: one would overwrite the other."""
    problems = []
    named_pairs: set[tuple[str, str]] = set()
    owners: dict[tuple[str, str], str] = {}
    previews = {r.name: r.preview_service_name for r in releases if r.strategy == "BlueGreen"}
    for release in releases:
        for kind, names in release.object_names().items():
            for object_name in names:
                owner = owners.setdefault((kind, object_name), release.name)
                if owner == release.name:
                    continue
                named_pairs.add((release.name, owner))
                if kind == ROUTE53_RECORD:
                    problems.append(f"{PROJECT}:releases.{release.name}.dns.name: record {object_name!r} is already "
                                    f"used by release {owner!r} (both would write its weighted records 'stable' and "
                                    "'canary')")
                elif kind == "Service" and object_name == previews.get(release.name):
                    whose = "preview Service" if previews.get(owner) == object_name else "Service"
                    problems.append(f"{PROJECT}:releases.{release.name}.previewServiceName: Service name "
                                    f"{object_name!r} is already used by release {owner!r} (its {whose}): rename this "
                                    "preview Service (each release's preview selects its own idle color)")
                elif kind == "Service" and object_name == release.service_name:
                    problems.append(f"{PROJECT}:releases.{release.name}.serviceName: Service name {object_name!r} is "
                                    f"already used by release {owner!r}")
                else:
                    problems.append(f"{PROJECT}:releases.{release.name}: its {kind} {object_name!r} has the name of a "
                                    f"{kind} of release {owner!r} in the same namespace; rename one of the releases "
                                    "(or its serviceName)")
    # Pulumi identities: a component's children are named after the release, so a canary `app` and a
    # canary `app-canary` could both register `app-canary-service`: one URN, twice. Every strategy's
    # component aliases the others' (a strategy change keeps its objects), so all strategies count.
    urns: dict[tuple[str, str], str] = {}
    for release in releases:
        for kind, names in release.resource_names().items():
            for resource_name in names:
                owner = urns.setdefault((kind, resource_name), release.name)
                if owner != release.name and (release.name, owner) not in named_pairs:
                    named_pairs.add((release.name, owner))  # one line per pair of releases
                    problems.append(f"{PROJECT}:releases.{release.name}: its Pulumi {kind} {resource_name!r} would have "
                                    f"the same URN as a resource of release {owner!r}; rename one of the releases")
    return problems


def validate(raw: Mapping[str, Any], stack: str, extra: Mapping[str, Any] | None = None,
             today: date | None = None) -> StackConfig:
    """Check the `app-update:` settings of one stack (keys without the namespace prefix), then resolve them.

    `extra` carries settings of other namespaces the program needs (`aws:region`,
    `aws:allowedAccountIds`). Raises ConfigError listing every problem.
    """
    from model import config_models as schema

    settings, problems = schema.check(raw)
    extra = extra or {}
    allowed = extra.get("aws:allowedAccountIds")
    if allowed is not None and (not isinstance(allowed, list) or not all(
            isinstance(a, str) and schema.ACCOUNT_ID.fullmatch(a) for a in allowed)):
        problems.append(f"aws:allowedAccountIds: must be a list of 12-digit AWS account ids, quoted (got "
                        f"{schema.show(allowed)})")
    region = extra.get("aws:region")
    cluster = raw.get("cluster")
    if isinstance(cluster, dict) and cluster.get("mode") == "eks":
        if not region:
            problems.append(f"aws:region: is required when {PROJECT}:cluster.mode is eks")
        version = cluster.get("kubernetesVersion", DEFAULT_KUBERNETES_VERSION)
        why = eks_versions.version_problem(version, today or date.today()) if isinstance(version, str) else None
        if why and version in SUPPORTED_KUBERNETES_VERSIONS:
            problems.append(f"{PROJECT}:cluster.kubernetesVersion: {why}")
    elif not region:
        # Route53 records are created with the stack's AWS provider: on a kubeconfig stack only aws:region gives it.
        dns = sorted(name for name, release in (raw.get("releases") or {}).items()
                     if isinstance(release, dict) and release.get("traffic") == "dns") if isinstance(
            raw.get("releases"), dict) else []
        if dns:
            problems.append(f"aws:region: is required when a release uses traffic: dns (releases {', '.join(dns)}): "
                            "its Route53 records are created with the stack's AWS provider, and the load balancers' "
                            "canonical hosted zone depends on the region")
    if settings is None or problems:
        raise ConfigError(problems)
    defaults = project_defaults()
    namespace = settings.namespace or defaults["namespace"]
    lbc = bool(settings.cluster and settings.cluster.load_balancer_controller)
    releases = [_release(name, given, namespace, region if isinstance(region, str) else None, lbc)
                for name, given in settings.releases.items()]
    problems = _blue_green_services(releases) + _unique_names(releases)
    if problems:
        raise ConfigError(problems)
    return StackConfig(
        stack=stack, namespace=namespace,
        await_load_balancer=(schema.parse_boolean(defaults["awaitLoadBalancer"]) if settings.await_load_balancer is None
                             else settings.await_load_balancer),
        protected=(schema.parse_boolean(defaults["protected"]) if settings.protected is None else settings.protected),
        cluster=_cluster(settings.cluster), releases=tuple(releases),
        allowed_account_ids=tuple(allowed or ()), region=region if isinstance(region, str) else None,
        aws_profile=extra.get("aws:profile") if isinstance(extra.get("aws:profile"), str) else None,
        aws_role_arn=_assumed_role(extra),
        promotion_from=tuple(settings.promotion.from_) if settings.promotion else (),
        promotion_soak=seconds(settings.promotion.soak) if settings.promotion and settings.promotion.soak else 0,
        verification={name: record.model_dump(by_alias=True, exclude_none=True)
                      for name, record in (settings.verification or {}).items()},
    )


def seconds(duration: str) -> int:
    """`1h30m` → 5400: a duration the models checked (d, h, m, s)."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)([dhms])", duration))


def _assumed_role(extra: Mapping[str, Any]) -> str | None:
    """The role the AWS provider ends up as: the last of aws:assumeRoles (or aws:assumeRole)."""
    roles = extra.get("aws:assumeRoles")
    role = roles[-1] if isinstance(roles, list) and roles else extra.get("aws:assumeRole")
    arn = role.get("roleArn") if isinstance(role, dict) else None
    return arn if isinstance(arn, str) else None


def load(values: Mapping[str, Any], stack: str, today: date | None = None) -> StackConfig:
    """The one loader: the config the Pulumi CLI would pass to the program (`namespace:key` →
    value; structured values as JSON text, or already parsed) into validated, resolved config.
    Used by the program, `preview`, the stack operations and the tests."""
    own, other = split_namespaces({key: parse_config_value(value) for key, value in values.items()})
    return validate(own, stack, other, today)


def parse_config_value(value: Any) -> Any:
    """A config value as the program sees it: structured values arrive as JSON text from the CLI."""
    value = getattr(value, "value", value)  # pulumi.automation.ConfigValue, or a bare value
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def split_namespaces(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split `{"app-update:x": …, "aws:region": …}` into (project settings, other settings)."""
    own: dict[str, Any] = {}
    other: dict[str, Any] = {}
    prefix = f"{PROJECT}:"
    for key, value in flat.items():
        if key.startswith(prefix):
            own[key[len(prefix):]] = value
        else:
            other[key] = value
    return own, other
