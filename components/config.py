"""Typed stack configuration and its validation.

Everything under the `app-update:` namespace is read here, checked in one pass, and turned
into frozen dataclasses before the program registers a single resource. Every problem found
is reported at once, one line each, naming the full key path and the rule it breaks.

No Pulumi import: the offline preview, the tests and `pulumi up` share this module.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components import canary_math, fenceposts

PROJECT = "app-update"

STRATEGIES = ("Recreate", "RollingUpdate", "Canary")
TRAFFIC_MODES = ("replicas", "nlb", "alb", "nginx")
CLUSTER_MODES = ("kubeconfig", "eks")

DEFAULT_IMAGE = "arungupta/app-upgrade"
DEFAULT_NAMESPACE = "app-update"
DEFAULT_KUBERNETES_VERSION = "1.33"
DEFAULT_SURGE = "25%"
DEFAULT_UNAVAILABLE = "25%"

# Kubernetes name rules (apimachinery validation).
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Distribution reference grammar, without tag or digest (the tag is its own key).
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?/)?" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_QUANTITY_FACTORS = {
    None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
# The minor versions the strict schema check has schemas for (kubernetes-validate 1.37.0
# ships 1.25 to 1.37; tests/test_manifests.py keeps the two in step).
SUPPORTED_KUBERNETES_VERSIONS = tuple(f"1.{minor}" for minor in range(25, 38))
INT32_MAX = 2**31 - 1
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")

# A canary's Service is `<release>-canary`, a Service name is at most 63 characters.
MAX_RELEASE_NAME = 63 - len("-canary")


class ConfigError(Exception):
    """Invalid stack configuration: one line per problem, each naming its key path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


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

    @property
    def tracks(self) -> tuple[Track, ...]:
        return tuple(t for t in (self.stable, self.canary) if t is not None)

    def tags(self) -> dict[str, str]:
        """Image tag per track ("app" for single-track releases)."""
        if self.strategy == "Canary":
            return {t.name: t.tag for t in self.tracks}
        return {"app": self.tag or ""}

    def images(self) -> dict[str, str]:
        """Image reference per track ("app" for single-track releases)."""
        return {track: f"{self.image}:{tag}" for track, tag in self.tags().items()}

    def object_names(self) -> dict[str, tuple[str, ...]]:
        """The names this release's objects take in the namespace, per kind (PodDisruptionBudgets
        share their Deployment's name)."""
        svc = self.service_name
        if self.strategy != "Canary":
            return {"Deployment": (self.name,), "Service": (svc,)}
        deployments = (f"{self.name}-stable", f"{self.name}-canary")
        if self.traffic == "replicas":
            return {"Deployment": deployments, "Service": (svc,)}
        if self.traffic == "nlb":
            return {"Deployment": deployments, "Service": (svc, f"{svc}-canary")}
        ingresses = (svc,) if self.traffic == "alb" else (svc, f"{svc}-canary")
        return {"Deployment": deployments, "Service": (f"{svc}-stable", f"{svc}-canary"), "Ingress": ingresses}

    def replica_counts(self) -> dict[str, int]:
        """Pods per track ("app" for single-track releases)."""
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

    def release(self, name: str) -> Release:
        for release in self.releases:
            if release.name == name:
                return release
        raise KeyError(name)


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


class _Checker:
    """Collects problems; every check returns a usable value (or None) so validation goes on."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, rule: str) -> None:
        self.problems.append(f"{PROJECT}:{path}: {rule}")

    def keys(self, path: str, value: Mapping[str, Any], allowed: tuple[str, ...],
             misplaced: Mapping[str, str] | None = None) -> None:
        for key in value:
            if key in allowed:
                continue
            key_path = f"{path}.{key}" if path else str(key)
            if misplaced and key in misplaced:
                self.fail(key_path, misplaced[key])
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(allowed)}"
            self.fail(key_path, f"unknown key{hint}")

    def mapping(self, path: str, value: Any, required: bool = False) -> dict[str, Any] | None:
        if value is None:
            if required:
                self.fail(path, "is required")
            return None
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping (got {_show(value)})")
            return None
        return value

    def integer(self, path: str, value: Any, default: int | None = None, *, low: int | None = None,
                high: int | None = None, required: bool = False) -> int | None:
        if value is None:
            if required:
                self.fail(path, "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer (got {_show(value)})")
            return default
        # Every integer the objects carry is an int32 in the Kubernetes API.
        high = INT32_MAX if high is None else high
        if low is not None and value < low or value > high:
            if high == INT32_MAX and low is not None and value < low:
                self.fail(path, f"must be at least {low} (got {value})")
            elif high == INT32_MAX:
                self.fail(path, f"must be at most {high}, the largest number the Kubernetes API takes here (got {value})")
            else:
                self.fail(path, f"must be between {low} and {high} (got {value})")
            return default
        return value

    def boolean(self, path: str, value: Any, default: bool) -> bool:
        if value is None:
            return default
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        if not isinstance(value, bool):
            self.fail(path, f"must be true or false (got {_show(value)})")
            return default
        return value

    def string(self, path: str, value: Any, default: str | None = None, *, pattern: re.Pattern[str] | None = None,
               rule: str = "", required: bool = False, choices: tuple[str, ...] | None = None,
               quote_hint: bool = False) -> str | None:
        if value is None:
            if required:
                self.fail(path, "is required")
            return default
        if not isinstance(value, str):
            self.fail(path, f"must be a string (got {_show(value)})")
            return default
        if choices is not None and value not in choices and quote_hint:
            self.fail(path, f"{rule} (got {value!r})")
            return default
        if choices is not None and value not in choices:
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.fail(path, f"must be one of {', '.join(choices)} (got {value!r}){hint}")
            return default
        if pattern is not None and not pattern.match(value):
            self.fail(path, f"{rule} (got {value!r})")
            return default
        return value

    def tag(self, path: str, value: Any, *, required: bool = False) -> str | None:
        """An image tag. Integers are taken as text: YAML and `pulumi config set --path` make `42` a number."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            value = str(value)
        elif isinstance(value, float):
            self.fail(path, f"must be an image tag; quote it so YAML keeps it as written (got {value!r})")
            return None
        return self.string(path, value, required=required, pattern=_TAG,
                           rule="must be an image tag (letters, digits, '_', '.', '-'; at most 128 characters)")

    def int_or_percent(self, path: str, value: Any, default: int | str) -> int | str | None:
        if value is None:
            return default
        if isinstance(value, bool):
            self.fail(path, f'must be a non-negative integer or a percentage like "25%" (got {_show(value)})')
            return None
        if isinstance(value, int):
            if value < 0:
                self.fail(path, f"must not be negative (got {value})")
                return None
            if value > INT32_MAX:
                self.fail(path, f"must be at most {INT32_MAX} (got {value})")
                return None
            return value
        if isinstance(value, str) and fenceposts.parse_percent(value) is not None:
            return value
        self.fail(path, f'must be a non-negative integer or a percentage like "25%" (got {_show(value)})')
        return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _quantity(text: str) -> float | None:
    match = _QUANTITY.match(text)
    if not match:
        return None
    return float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------

TOP_LEVEL_KEYS = ("namespace", "awaitLoadBalancer", "protected", "cluster", "releases")
COMMON_RELEASE_KEYS = (
    "strategy", "image", "replicas", "port", "servicePort", "serviceName", "resources", "env",
    "healthPath", "minReadySeconds", "progressDeadlineSeconds", "preStopSeconds",
)
RELEASE_KEYS = {
    "Recreate": COMMON_RELEASE_KEYS + ("tag",),
    "RollingUpdate": COMMON_RELEASE_KEYS + ("tag", "maxSurge", "maxUnavailable"),
    "Canary": COMMON_RELEASE_KEYS + ("stable", "canary", "maxSurge", "maxUnavailable", "traffic", "ingressClass"),
}
_MISPLACED = {
    "Recreate": {
        "maxSurge": "is a RollingUpdate setting: the Kubernetes API rejects rollingUpdate settings with strategy Recreate",
        "maxUnavailable": "is a RollingUpdate setting: the Kubernetes API rejects rollingUpdate settings with strategy Recreate",
        "stable": "belongs to Canary releases only",
        "canary": "belongs to Canary releases only",
        "traffic": "belongs to Canary releases only",
        "ingressClass": "belongs to Canary releases only",
    },
    "RollingUpdate": {
        "stable": "belongs to Canary releases only",
        "canary": "belongs to Canary releases only",
        "traffic": "belongs to Canary releases only",
        "ingressClass": "belongs to Canary releases only",
    },
    "Canary": {
        "tag": "a Canary release has no single tag: set stable.tag and canary.tag",
    },
}
KUBECONFIG_KEYS = ("mode", "context", "kubernetesVersion", "loadBalancerController")
EKS_KEYS = (
    "mode", "kubernetesVersion", "vpcCidr", "availabilityZones", "nodes", "endpointPublicAccessCidrs",
    "natGateways", "loadBalancerController", "tags",
)
NODE_KEYS = ("instanceTypes", "min", "desired", "max", "capacityType")


def _check_cluster(c: _Checker, raw: Any) -> Cluster:
    path = "cluster"
    value = c.mapping(path, raw) or {"mode": "kubeconfig"}
    mode = c.string(f"{path}.mode", value.get("mode"), "kubeconfig", choices=CLUSTER_MODES)
    version = c.string(f"{path}.kubernetesVersion", value.get("kubernetesVersion"), DEFAULT_KUBERNETES_VERSION,
                       choices=SUPPORTED_KUBERNETES_VERSIONS, quote_hint=True,
                       rule=f'must be a Kubernetes minor version from "{SUPPORTED_KUBERNETES_VERSIONS[0]}" to '
                            f'"{SUPPORTED_KUBERNETES_VERSIONS[-1]}", quoted (the versions the schema check knows)')
    lbc = c.boolean(f"{path}.loadBalancerController", value.get("loadBalancerController"), False)
    if mode != "eks":
        c.keys(path, value, KUBECONFIG_KEYS)
        context = c.string(f"{path}.context", value.get("context"))
        return Cluster(mode="kubeconfig", kubernetes_version=version, context=context,
                       load_balancer_controller=lbc)

    c.keys(path, value, EKS_KEYS)
    cidr_text = c.string(f"{path}.vpcCidr", value.get("vpcCidr"), "10.0.0.0/16")
    vpc = None
    try:
        vpc = ipaddress.IPv4Network(cidr_text)
        if not 16 <= vpc.prefixlen <= 20:
            c.fail(f"{path}.vpcCidr", f"must be a /16 to /20 network so every subnet gets room (got {cidr_text!r})")
            vpc = None
    except (ValueError, TypeError):
        c.fail(f"{path}.vpcCidr", f"must be an IPv4 network in CIDR form like 10.0.0.0/16 (got {cidr_text!r})")
    azs = c.integer(f"{path}.availabilityZones", value.get("availabilityZones"), 2, low=2, high=3)

    nodes_raw = c.mapping(f"{path}.nodes", value.get("nodes")) or {}
    c.keys(f"{path}.nodes", nodes_raw, NODE_KEYS)
    types_raw = nodes_raw.get("instanceTypes", ["t3.medium"])
    instance_types: list[str] = []
    if not isinstance(types_raw, list) or not types_raw:
        c.fail(f"{path}.nodes.instanceTypes", f"must be a non-empty list of EC2 instance types (got {_show(types_raw)})")
    else:
        for i, t in enumerate(types_raw):
            checked = c.string(f"{path}.nodes.instanceTypes[{i}]", t, pattern=_INSTANCE_TYPE,
                               rule="must be an EC2 instance type like t3.medium")
            if checked:
                instance_types.append(checked)
    low = c.integer(f"{path}.nodes.min", nodes_raw.get("min"), 1, low=1)
    desired = c.integer(f"{path}.nodes.desired", nodes_raw.get("desired"), 2, low=1)
    high = c.integer(f"{path}.nodes.max", nodes_raw.get("max"), 3, low=1)
    if low is not None and desired is not None and high is not None and not low <= desired <= high:
        c.fail(f"{path}.nodes", f"must satisfy min <= desired <= max (got {low}, {desired}, {high})")
    capacity = c.string(f"{path}.nodes.capacityType", nodes_raw.get("capacityType"), "ON_DEMAND",
                        choices=("ON_DEMAND", "SPOT"))

    public_raw = value.get("endpointPublicAccessCidrs", ["0.0.0.0/0"])
    public: list[str] = []
    if not isinstance(public_raw, list) or not public_raw:
        c.fail(f"{path}.endpointPublicAccessCidrs", "must be a non-empty list of CIDRs")
    else:
        for i, item in enumerate(public_raw):
            try:
                public.append(str(ipaddress.IPv4Network(item)))
            except (ValueError, TypeError):
                c.fail(f"{path}.endpointPublicAccessCidrs[{i}]",
                       f"must be an IPv4 network in CIDR form with no host bits set (got {_show(item)})")
    nat = c.string(f"{path}.natGateways", value.get("natGateways"), "single", choices=("single", "perAz"))
    tags_raw = c.mapping(f"{path}.tags", value.get("tags")) or {}
    tags = {}
    for k, v in tags_raw.items():
        if not isinstance(v, str):
            c.fail(f"{path}.tags.{k}", f"must be a string (got {_show(v)})")
        else:
            tags[str(k)] = v
    return Cluster(
        mode="eks", kubernetes_version=version, load_balancer_controller=lbc,
        vpc_cidr=str(vpc) if vpc else "10.0.0.0/16", availability_zones=azs,
        nodes=NodeGroup(tuple(instance_types), low or 1, desired or 1, high or 1, capacity or "ON_DEMAND"),
        endpoint_public_access_cidrs=tuple(public), nat_gateways=nat, tags=tags,
    )


def _check_resources(c: _Checker, path: str, raw: Any) -> Resources:
    defaults = Resources(requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "128Mi"})
    value = c.mapping(path, raw)
    if value is None:
        return defaults
    c.keys(path, value, ("requests", "limits"))
    sections: dict[str, dict[str, str]] = {}
    for section in ("requests", "limits"):
        part = c.mapping(f"{path}.{section}", value.get(section)) or {}
        c.keys(f"{path}.{section}", part, ("cpu", "memory"))
        checked: dict[str, str] = {}
        for res in ("cpu", "memory"):
            if res not in part:
                continue
            q = part[res]
            text = str(q) if isinstance(q, (int, float)) and not isinstance(q, bool) else q
            if not isinstance(text, str) or _quantity(text) is None:
                c.fail(f"{path}.{section}.{res}", f'must be a Kubernetes quantity like "250m" or "128Mi" (got {_show(q)})')
                continue
            checked[res] = text
        sections[section] = checked
    for res in ("cpu", "memory"):
        req, lim = sections["requests"].get(res), sections["limits"].get(res)
        if req and lim and _quantity(req) > _quantity(lim):
            c.fail(f"{path}.requests.{res}", f"must not exceed limits.{res} ({req} > {lim}): the Kubernetes API rejects it")
    return Resources(requests=sections["requests"], limits=sections["limits"])


def _check_env(c: _Checker, path: str, raw: Any) -> dict[str, str]:
    value = c.mapping(path, raw) or {}
    env: dict[str, str] = {}
    for name, v in value.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            c.fail(f"{path}.{name}", "is not a valid environment variable name (letters, digits, '_', '-', '.'; not starting with a digit)")
            continue
        if isinstance(v, bool):
            env[name] = "true" if v else "false"
        elif isinstance(v, (str, int, float)):
            env[name] = str(v)
        else:
            c.fail(f"{path}.{name}", f"must be a string, number or boolean (got {_show(v)})")
    return env


def _check_track(c: _Checker, path: str, raw: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    value = c.mapping(path, raw, required=True) or {}
    c.keys(path, value, keys)
    return value


def _check_release(c: _Checker, name: Any, raw: Any, cluster: Cluster) -> Release | None:
    path = f"releases.{name}"
    if not isinstance(name, str) or not _DNS1035_LABEL.match(name) or len(name) > MAX_RELEASE_NAME:
        c.fail(path, "release names must be DNS-1123 labels that start with a letter (lowercase letters, digits and '-', "
                     f"at most {MAX_RELEASE_NAME} characters) because they name Deployments and Services")
    value = c.mapping(path, raw)
    if value is None:
        c.fail(path, "must be a mapping with at least 'strategy'")
        return None
    strategy = c.string(f"{path}.strategy", value.get("strategy"), required=True, choices=STRATEGIES)
    if strategy is None:
        return None
    c.keys(path, value, RELEASE_KEYS[strategy], _MISPLACED[strategy])

    image = c.string(f"{path}.image", value.get("image"), DEFAULT_IMAGE)
    if image is not None and not _IMAGE.match(image):
        if "@" in image or re.search(r":[^/]*$", image):
            c.fail(f"{path}.image", f"must be an image reference without tag or digest; put the tag in 'tag' (got {image!r})")
        else:
            c.fail(f"{path}.image", f"is not a valid image reference (got {image!r})")
    port = c.integer(f"{path}.port", value.get("port"), 8080, low=1, high=65535)
    service_port = c.integer(f"{path}.servicePort", value.get("servicePort"), 80, low=1, high=65535)
    service_name = c.string(f"{path}.serviceName", value.get("serviceName"), name if isinstance(name, str) else "",
                            pattern=_DNS1035_LABEL, rule="must be a DNS-1035 label (a Service name)")
    if "serviceName" in value and service_name and len(service_name) > MAX_RELEASE_NAME:
        c.fail(f"{path}.serviceName", f"must be at most {MAX_RELEASE_NAME} characters")
    health_path = c.string(f"{path}.healthPath", value.get("healthPath"), "/",
                           pattern=re.compile(r"^/\S*$"), rule="must be an absolute HTTP path like /healthz")
    resources = _check_resources(c, f"{path}.resources", value.get("resources"))
    env = _check_env(c, f"{path}.env", value.get("env"))
    min_ready = c.integer(f"{path}.minReadySeconds", value.get("minReadySeconds"), 5, low=0)
    deadline = c.integer(f"{path}.progressDeadlineSeconds", value.get("progressDeadlineSeconds"), 600, low=1)
    if min_ready is not None and deadline is not None and deadline <= min_ready:
        c.fail(f"{path}.progressDeadlineSeconds",
               f"must be greater than minReadySeconds ({deadline} <= {min_ready}): the Kubernetes API rejects it")
    pre_stop = c.integer(f"{path}.preStopSeconds", value.get("preStopSeconds"), 5, low=0, high=300)

    common = dict(
        name=str(name), strategy=strategy, image=image or DEFAULT_IMAGE, port=port or 8080,
        service_port=service_port or 80, service_name=service_name or str(name), health_path=health_path or "/",
        resources=resources, env=env, min_ready_seconds=min_ready if min_ready is not None else 5,
        progress_deadline_seconds=deadline or 600, pre_stop_seconds=pre_stop if pre_stop is not None else 5,
    )

    if strategy in ("Recreate", "RollingUpdate"):
        tag = c.tag(f"{path}.tag", value.get("tag"), required=True)
        replicas = c.integer(f"{path}.replicas", value.get("replicas"), 1, low=0)
        surge = unavailable = None
        if strategy == "RollingUpdate":
            surge, unavailable = _check_fenceposts(c, path, value)
        return Release(**common, replicas=replicas if replicas is not None else 1, tag=tag,
                       max_surge=surge, max_unavailable=unavailable)

    # Canary
    surge, unavailable = _check_fenceposts(c, path, value)
    traffic = c.string(f"{path}.traffic", value.get("traffic"), "replicas", choices=TRAFFIC_MODES)
    ingress_class = c.string(f"{path}.ingressClass", value.get("ingressClass"),
                             "nginx" if traffic == "nginx" else ("alb" if traffic == "alb" else None),
                             pattern=_DNS1123_LABEL, rule="must be an IngressClass name (a DNS-1123 label)")
    if "ingressClass" in value and traffic not in ("alb", "nginx"):
        c.fail(f"{path}.ingressClass", "is only used with traffic: alb or nginx")
    if traffic in ("nlb", "alb") and not cluster.load_balancer_controller:
        c.fail(f"{path}.traffic",
               f"'{traffic}' needs the AWS Load Balancer Controller: set {PROJECT}:cluster.loadBalancerController to true "
               "(on eks it is installed; on a kubeconfig cluster it declares the controller is already there)")

    stable_raw = _check_track(c, f"{path}.stable", value.get("stable"), ("tag", "replicas"))
    canary_raw = _check_track(c, f"{path}.canary", value.get("canary"), ("tag", "weight", "replicas", "podsForWeight"))
    stable_tag = c.tag(f"{path}.stable.tag", stable_raw.get("tag"), required=value.get("stable") is not None)
    canary_tag = c.tag(f"{path}.canary.tag", canary_raw.get("tag"), required=value.get("canary") is not None)

    explicit = "replicas" in stable_raw or "replicas" in canary_raw
    weighted = "weight" in canary_raw or "replicas" in value
    if explicit and weighted:
        c.fail(path, "use either replicas + canary.weight or stable.replicas + canary.replicas, not both")
        return None
    if traffic != "replicas" and explicit:
        c.fail(path, f"traffic '{traffic}' splits by weight: set replicas (stable pods) and canary.weight, not per-track replicas")
        return None
    if explicit and "podsForWeight" in canary_raw:
        c.fail(f"{path}.canary.podsForWeight", "goes with replicas + canary.weight, not with per-track replicas")
        return None

    if explicit:
        stable_n = c.integer(f"{path}.stable.replicas", stable_raw.get("replicas"), required=True, low=0)
        canary_n = c.integer(f"{path}.canary.replicas", canary_raw.get("replicas"), required=True, low=0)
        if stable_n is None or canary_n is None:
            return None
        requested = None
        pods_for = None
        effective = canary_math.share_percent(stable_n, canary_n)
        total = stable_n + canary_n
    else:
        total_or_none = c.integer(f"{path}.replicas", value.get("replicas"), required=True, low=0)
        weight = c.integer(f"{path}.canary.weight", canary_raw.get("weight"), 0, low=0, high=100)
        pods_for = c.integer(f"{path}.canary.podsForWeight", canary_raw.get("podsForWeight"), None, low=0, high=100)
        if total_or_none is None or weight is None:
            return None
        requested = weight
        weights = [weight] if pods_for is None else [weight, pods_for]
        if traffic == "replicas" and any(0 < w < 100 for w in weights) and total_or_none < 2:
            c.fail(f"{path}.replicas", f"must be at least 2 for a canary weight of {max(weights)}: "
                   "each track needs a pod while 0 < weight < 100")
            return None
        if traffic != "replicas" and weight < 100 and total_or_none < 1:
            c.fail(f"{path}.replicas", f"must be at least 1 with traffic '{traffic}': the stable track serves the rest")
            return None
        stable_n, canary_n = canary_math.track_replicas(traffic or "replicas", total_or_none, weight, pods_for)
        effective = canary_math.share_percent(stable_n, canary_n) if traffic == "replicas" else float(weight)
        total = stable_n + canary_n
    if stable_tag is None or canary_tag is None:
        return None
    return Release(
        **common, replicas=total, max_surge=surge, max_unavailable=unavailable,
        stable=Track("stable", stable_tag, stable_n), canary=Track("canary", canary_tag, canary_n),
        requested_weight=requested, effective_weight=effective, traffic=traffic or "replicas",
        ingress_class=ingress_class if traffic in ("alb", "nginx") else None, pods_for_weight=pods_for,
    )


def _check_unique_names(c: _Checker, releases: list[Release]) -> None:
    """No two releases may name the same object of a kind in the namespace: one would overwrite the other."""
    owners: dict[tuple[str, str], str] = {}
    for release in releases:
        for kind, names in release.object_names().items():
            for object_name in names:
                owner = owners.setdefault((kind, object_name), release.name)
                if owner == release.name:
                    continue
                if kind == "Service" and object_name == release.service_name:
                    c.fail(f"releases.{release.name}.serviceName",
                           f"Service name {object_name!r} is already used by release {owner!r}")
                else:
                    c.fail(f"releases.{release.name}",
                           f"its {kind} {object_name!r} has the name of a {kind} of release {owner!r} in the "
                           "same namespace; rename one of the releases (or its serviceName)")


def _check_fenceposts(c: _Checker, path: str, value: Mapping[str, Any]) -> tuple[int | str | None, int | str | None]:
    surge = c.int_or_percent(f"{path}.maxSurge", value.get("maxSurge"), DEFAULT_SURGE)
    unavailable = c.int_or_percent(f"{path}.maxUnavailable", value.get("maxUnavailable"), DEFAULT_UNAVAILABLE)
    if isinstance(unavailable, str) and (fenceposts.parse_percent(unavailable) or 0) > 100:
        c.fail(f"{path}.maxUnavailable", f"must not be more than 100% (got {unavailable!r})")
    if surge is not None and unavailable is not None and fenceposts.is_zero(surge) and fenceposts.is_zero(unavailable):
        c.fail(f"{path}.maxUnavailable", "must not be 0 when maxSurge is 0: the Kubernetes API rejects it "
                                         "(the update could never replace a pod)")
    return surge, unavailable


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def validate(raw: Mapping[str, Any], stack: str, extra: Mapping[str, Any] | None = None) -> StackConfig:
    """Check the `app-update:` settings of one stack (keys without the namespace prefix).

    `extra` carries settings of other namespaces the program needs (`aws:region`,
    `aws:allowedAccountIds`). Raises ConfigError listing every problem.
    """
    c = _Checker()
    c.keys("", raw, TOP_LEVEL_KEYS)
    for key in TOP_LEVEL_KEYS:
        if key in raw and raw[key] is None:
            c.fail(key, "is empty (null); give it a value or remove the key for the default")
    namespace = c.string("namespace", raw.get("namespace"), DEFAULT_NAMESPACE, pattern=_DNS1123_LABEL,
                         rule="must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)")
    if namespace and len(namespace) > 63:
        c.fail("namespace", "must be at most 63 characters")
    await_lb = c.boolean("awaitLoadBalancer", raw.get("awaitLoadBalancer"), True)
    protected = c.boolean("protected", raw.get("protected"), False)
    cluster = _check_cluster(c, raw.get("cluster"))

    releases_raw = c.mapping("releases", raw.get("releases"), required="releases" not in raw) or {}
    if raw.get("releases") is not None and isinstance(raw.get("releases"), dict) and not releases_raw:
        c.fail("releases", "must name at least one release")
    releases = []
    for name, value in releases_raw.items():
        release = _check_release(c, name, value, cluster)
        if release is not None:
            releases.append(release)
    _check_unique_names(c, releases)

    extra = extra or {}
    allowed = extra.get("aws:allowedAccountIds")
    allowed_ids: tuple[str, ...] = ()
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(a, str) and _ACCOUNT_ID.match(a) for a in allowed):
            c.problems.append(f"aws:allowedAccountIds: must be a list of 12-digit AWS account ids, quoted (got {_show(allowed)})")
        else:
            allowed_ids = tuple(allowed)
    region = extra.get("aws:region")
    if cluster.mode == "eks" and not region:
        c.problems.append(f"aws:region: is required when {PROJECT}:cluster.mode is eks")

    if c.problems:
        raise ConfigError(c.problems)
    return StackConfig(
        stack=stack, namespace=namespace or DEFAULT_NAMESPACE, await_load_balancer=await_lb, protected=protected,
        cluster=cluster, releases=tuple(releases), allowed_account_ids=allowed_ids,
        region=region if isinstance(region, str) else None,
    )


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
