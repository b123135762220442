"""The app-update policies as plain functions over a neutral shape, shared by two runners.

- The CrossGuard pack (`policy/__main__.py`, `pulumi preview --policy-pack policy`) wraps each
  rule in a ResourceValidationPolicy or StackValidationPolicy; `resource_validator` and
  `stack_validator` are the validate callbacks it passes.
- The offline preview calls `check_run` over what the program registered under the mocks.

Nothing here imports pulumi_policy, so the offline preview runs without it. A resource is
`(type token, name, props)`; props are the resource's inputs under the camelCase names Pulumi
passes to a policy pack (Kubernetes objects: `apiVersion`, `kind`, `metadata`, `spec`; an EKS
cluster: `vpcConfig.publicAccessCidrs`, ...). Props may be plain dicts and lists or the pack's
read-only proxies (Mapping/Sequence), so the rules only read them through those interfaces.

Whether a stack is protected (`app-update:protected: true`) decides the rules marked
`protected_only`. In the pack it comes from either source (whichever says protected wins): the
stack's own config, which the Pulumi engine hands every policy pack in the PULUMI_CONFIG
environment variable, or a policy config value `protected: true` (`policy/protected.json`,
which the workflows pass for prod).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANDATORY = "mandatory"
ADVISORY = "advisory"
DISABLED = "disabled"
LEVELS = (MANDATORY, ADVISORY, DISABLED)

PROTECTED_CONFIG_KEY = "app-update:protected"
RELEASE_NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
PART_OF = "app-update"
TRACK_LABEL = "app-update/track"
# A BlueGreen release (components/blue_green.py): its colors' pods carry `version: blue|green`; its Services say
# which one they are (`active`, `preview`); the active one carries the release's previewCheck.
COLOR_LABEL = "version"
COLORS = ("blue", "green")
BLUE_GREEN_ROLE = "app-update/blue-green"
PREVIEW_CHECK = "app-update/preview-check"
MIN_STABLE_REPLICAS = 2
PDB_MIN_REPLICAS = 2
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
# Workload types and where their pod spec is; the long-running ones must have probes.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:core/v1:ReplicationController": ("spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_RUN_TO_COMPLETION = frozenset({"kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob"})


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.name} ({self.type})"


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str  # "name (type token)", or "" for the stack as a whole
    message: str
    level: str  # MANDATORY or ADVISORY

    def line(self) -> str:
        where = f"{self.resource}: " if self.resource else ""
        return f"{self.level:<9}  {self.policy}: {where}{self.message}"


# A resource rule: (resource) -> messages; a stack rule: (resources) -> (resource, message) pairs.
ResourceCheck = Callable[[Resource], list[str]]
StackCheck = Callable[[list[Resource]], list[tuple[Resource | None, str]]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    level: str
    check: ResourceCheck | StackCheck
    scope: str = "resource"  # "resource" or "stack"
    protected_only: bool = False


# ---------------------------------------------------------------------------------------------
# Reading props (dicts or the pack's proxies)
# ---------------------------------------------------------------------------------------------


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _list(node: Any) -> list[Any]:
    if isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
        return list(node)
    return []


def _labels(props: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = _get(props, "metadata", "labels")
    return labels if isinstance(labels, Mapping) else {}


def _number(value: Any, default: float) -> float:
    # Numbers reach a policy pack as floats (protobuf Struct); offline they are ints.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def pod_spec(resource: Resource) -> Mapping[str, Any] | None:
    path = _POD_SPEC_PATHS.get(resource.type)
    if path is None:
        return None
    spec = _get(resource.props, *path)
    return spec if isinstance(spec, Mapping) else None


def containers(resource: Resource, init: bool = False) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(label, container, pod spec) for each container of a workload (and its init containers)."""
    spec = pod_spec(resource)
    if spec is None:
        return []
    keys = ("initContainers", "containers") if init else ("containers",)
    found = []
    for key in keys:
        for i, container in enumerate(_list(spec.get(key))):
            if isinstance(container, Mapping):
                kind = "init container" if key == "initContainers" else "container"
                found.append((f"{kind} {container.get('name') or i}", container, spec))
    return found


@dataclass(frozen=True)
class Image:
    registry: str | None  # host[:port], None for Docker Hub's short form
    repository: str
    tag: str | None  # None: no tag at all; "": an empty tag ("repo:")
    digest: str | None


def parse_image(image: str) -> Image:
    """Split an image reference as the container runtime does: [registry/]repository[:tag][@digest]."""
    rest, _, digest = image.partition("@")
    first, slash, _ = rest.partition("/")
    registry = None
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry = first
    last = rest.rsplit("/", 1)[-1]
    tag = None
    if ":" in last:
        tag = last.rsplit(":", 1)[1]
        rest = rest[: len(rest) - len(tag) - 1]
    repository = rest[len(registry) + 1:] if registry else rest
    return Image(registry, repository, tag, digest or None)


# ---------------------------------------------------------------------------------------------
# Rules: mandatory everywhere
# ---------------------------------------------------------------------------------------------


def image_tag_pinned(resource: Resource) -> list[str]:
    """No container image with the tag `latest`, an empty tag, or none at all (which means latest)."""
    problems = []
    for label, container, _ in containers(resource, init=True):
        image = container.get("image")
        if not isinstance(image, str) or not image.strip():
            problems.append(f"{label} has no image")
            continue
        ref = parse_image(image)
        if ref.digest:
            continue  # a digest decides what runs; the tag is ignored
        if ref.tag is None:
            problems.append(f"{label}: image {image} has no tag, so it runs whatever 'latest' is at pull time; "
                            "give it a version tag")
        elif ref.tag == "":
            problems.append(f"{label}: image {image} has an empty tag; give it a version tag")
        elif ref.tag == "latest":
            problems.append(f"{label}: image {image} uses the tag 'latest', which changes under the release; "
                            "give it a version tag")
    return problems


def container_requests(resource: Resource) -> list[str]:
    """Every container requests CPU and memory, so the scheduler places it where it fits."""
    problems = []
    for label, container, _ in containers(resource, init=True):
        requests = _get(container, "resources", "requests")
        missing = [r for r in ("cpu", "memory") if not (isinstance(requests, Mapping) and requests.get(r))]
        if missing:
            problems.append(f"{label} requests no {' and no '.join(missing)} (resources.requests)")
    return problems


def container_probes(resource: Resource) -> list[str]:
    """Every long-running container has a readiness and a liveness probe."""
    if resource.type in _RUN_TO_COMPLETION:
        return []
    problems = []
    for label, container, _ in containers(resource):
        missing = [p for p in ("readinessProbe", "livenessProbe") if not isinstance(container.get(p), Mapping)]
        if missing:
            problems.append(f"{label} has no {' and no '.join(missing)}")
    return problems


def _effective(container: Mapping[str, Any], pod: Mapping[str, Any], key: str) -> Any:
    value = _get(container, "securityContext", key)
    return value if value is not None else _get(pod, "securityContext", key)


def container_non_root(resource: Resource) -> list[str]:
    """Every container runs as a non-root user (runAsNonRoot, or a non-zero runAsUser) and unprivileged."""
    problems = []
    for label, container, pod in containers(resource, init=True):
        non_root = _effective(container, pod, "runAsNonRoot")
        user = _effective(container, pod, "runAsUser")
        if user is not None and _number(user, -1) == 0:
            problems.append(f"{label} runs as uid 0 (runAsUser: 0)")
        elif non_root is not True and _number(user, 0) <= 0:
            problems.append(f"{label} may run as root: set securityContext.runAsNonRoot: true (and a runAsUser)")
        if _get(container, "securityContext", "privileged") is True:
            problems.append(f"{label} is privileged (securityContext.privileged: true)")
    return problems


def no_load_balancer_outside_release(resource: Resource) -> list[str]:
    """A Service of type LoadBalancer (a public address that costs money) only as part of a release."""
    if resource.type != SERVICE or _get(resource.props, "spec", "type") != "LoadBalancer":
        return []
    labels = _labels(resource.props)
    if labels.get(RELEASE_NAME_LABEL) and labels.get(PART_OF_LABEL) == PART_OF:
        return []
    return [f"Service of type LoadBalancer outside a release (no labels {RELEASE_NAME_LABEL} and "
            f"{PART_OF_LABEL}: {PART_OF}); use ClusterIP, or declare it as a release"]


# ---------------------------------------------------------------------------------------------
# Rules: mandatory on protected stacks
# ---------------------------------------------------------------------------------------------


def _is_stable_track(props: Mapping[str, Any]) -> bool:
    track = _labels(props).get(TRACK_LABEL)
    if track is None:
        track = _get(props, "spec", "template", "metadata", "labels", TRACK_LABEL)
    return track is None or track == "stable"


def no_recreate(resource: Resource) -> list[str]:
    """No Recreate release: it stops every pod before starting new ones, a downtime on every update."""
    if resource.type != DEPLOYMENT or _get(resource.props, "spec", "strategy", "type") != "Recreate":
        return []
    return ["strategy Recreate stops every pod before new ones start (downtime on every update); "
            "use RollingUpdate or Canary on a protected stack"]


def _color(props: Mapping[str, Any]) -> str | None:
    """A blue-green color's Deployment: its color (from its selector), else None."""
    color = _match_labels(props).get(COLOR_LABEL)
    return str(color) if color in COLORS else None


def stable_replicas(resource: Resource) -> list[str]:
    """At least 2 replicas per Deployment that is not a canary track, so one pod can fail or be drained. A blue-green
    color scaled down to 0 serves nothing (the config refuses an active color at 0)."""
    if resource.type != DEPLOYMENT or not _is_stable_track(resource.props):
        return []
    replicas = _number(_get(resource.props, "spec", "replicas"), 1)  # Kubernetes defaults to 1
    if replicas >= MIN_STABLE_REPLICAS or (replicas == 0 and _color(resource.props) is not None):
        return []
    return [f"{int(replicas)} replica(s): a protected stack runs at least {MIN_STABLE_REPLICAS} per stable track"]


def _match_labels(props: Mapping[str, Any]) -> dict[str, Any]:
    selector = _get(props, "spec", "selector", "matchLabels")
    return dict(selector.items()) if isinstance(selector, Mapping) else {}


def _namespace(props: Mapping[str, Any]) -> Any:
    try:
        return _get(props, "metadata", "namespace")
    except Exception as error:  # the pack's proxy raises UnknownValueError for a value unknown during preview
        if type(error).__name__ == "UnknownValueError":
            return None
        raise


def disruption_budgets(resources: list[Resource]) -> list[tuple[Resource | None, str]]:
    """A PodDisruptionBudget selecting exactly the pods of each Deployment of 2 or more replicas."""
    budgets = [(_namespace(r.props), _match_labels(r.props)) for r in resources if r.type == PDB]
    problems: list[tuple[Resource | None, str]] = []
    for resource in resources:
        if resource.type != DEPLOYMENT:
            continue
        replicas = _number(_get(resource.props, "spec", "replicas"), 1)
        if replicas < PDB_MIN_REPLICAS:
            continue
        selector = _match_labels(resource.props)
        namespace = _namespace(resource.props)
        covered = any(labels == selector and (ns is None or namespace is None or ns == namespace)
                      for ns, labels in budgets)
        if not covered:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(selector.items())) or "(none)"
            problems.append((resource, f"{int(replicas)} replicas and no PodDisruptionBudget with its selector "
                                       f"({shown}): a node drain may take all its pods at once"))
    return problems


def blue_green_preview_check(resource: Resource) -> list[str]:
    """A blue-green release's active Service names the check `rollout bluegreen` runs on the preview before the
    switch (`previewCheck`): blue-green moves all traffic at once, so nothing may reach it unjudged."""
    if resource.type != SERVICE:
        return []
    annotations = _get(resource.props, "metadata", "annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    if annotations.get(BLUE_GREEN_ROLE) != "active" or annotations.get(PREVIEW_CHECK):
        return []
    release = _labels(resource.props).get(RELEASE_NAME_LABEL, "?")
    return [f"BlueGreen release {release} switches all traffic at once with no preview check: a protected stack "
            f"judges the preview first; set app-update:releases.{release}.previewCheck (interval, and path)"]


# ---------------------------------------------------------------------------------------------
# Rules: advisory
# ---------------------------------------------------------------------------------------------


def _stack_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The stack's config as the engine hands it to a policy pack (PULUMI_CONFIG); {} offline."""
    raw = (os.environ if environ is None else environ).get("PULUMI_CONFIG", "")
    try:
        config = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return config if isinstance(config, dict) else {}


def _structured(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def promotion_proof(resources: list[Resource], environ: Mapping[str, str] | None = None,
                    ) -> list[tuple[Resource | None, str]]:
    """A protected stack takes releases only through `rollout promote` (or a canary of a promoted
    release): it names where it takes them from (`app-update:promotion.from`), and each release with a
    release record (`app-update:verification.<release>`, written by promote, verify and canary) serves
    the recorded image, or the image its canary track runs (a canary being promoted). Reads the stack
    config the engine passes the pack; the offline preview has none to read and reports nothing."""
    config = _stack_config(environ)
    if not config:
        return []
    promotion = _structured(config.get("app-update:promotion"))
    found: list[tuple[Resource | None, str]] = []
    if not isinstance(promotion, Mapping) or not _list(promotion.get("from")):
        found.append((None, "a protected stack names the stacks it takes releases from: set app-update:promotion.from"))
    records = _structured(config.get("app-update:verification"))
    records = records if isinstance(records, Mapping) else {}
    deployments: dict[str, dict[str, tuple[Resource, str]]] = {}
    # A blue-green release serves its active color (the active Service's selector); the idle one is being previewed.
    active_colors = {str(_labels(r.props).get(RELEASE_NAME_LABEL)): _get(r.props, "spec", "selector", COLOR_LABEL)
                     for r in resources if r.type == SERVICE
                     and _get(r.props, "metadata", "annotations", BLUE_GREEN_ROLE) == "active"}
    for resource in resources:
        if resource.type != DEPLOYMENT:
            continue
        name = _labels(resource.props).get(RELEASE_NAME_LABEL)
        images = [image for _, image in _images(resource)]
        color = _color(resource.props)
        if name and images and color is not None:
            deployments.setdefault(str(name), {})["stable" if active_colors.get(str(name)) == color else "canary"] = (
                resource, images[0])
        elif name and images:
            track = "stable" if _is_stable_track(resource.props) else "canary"
            deployments.setdefault(str(name), {})[track] = (resource, images[0])
    for name, record in sorted(records.items()):
        tracks = deployments.get(str(name), {})
        if not isinstance(record, Mapping) or "stable" not in tracks:
            continue
        resource, serves = tracks["stable"]
        canary = tracks.get("canary", (None, None))[1]
        if serves not in (record.get("image"), canary):
            found.append((resource, f"serves {serves}, but release {name}'s record says {record.get('image')} "
                                    f"({record.get('how')}): change what a protected stack runs with `rollout "
                                    "promote` or a canary of a promoted release, not by hand"))
    return found


def _images(resource: Resource) -> list[tuple[str, str]]:
    return [(label, c["image"]) for label, c, _ in containers(resource, init=True)
            if isinstance(c.get("image"), str) and c["image"].strip()]


def image_from_private_registry(resource: Resource) -> list[str]:
    """Images come from a registry of your own (a host before the first slash), not Docker Hub."""
    problems = []
    for label, image in _images(resource):
        registry = parse_image(image).registry
        if registry is None or registry.lower() in DOCKER_HUB_HOSTS:
            problems.append(f"{label}: image {image} is pulled from Docker Hub (rate limits, no control over "
                            "what is published); mirror it to a registry of your own (ECR)")
    return problems


def image_pinned_by_digest(resource: Resource) -> list[str]:
    """Images are pinned by digest (@sha256:...), so a pushed-over tag cannot change what runs."""
    return [f"{label}: image {image} is not pinned by digest (@sha256:...)"
            for label, image in _images(resource) if not parse_image(image).digest]


def eks_endpoint_restricted(resource: Resource) -> list[str]:
    """A protected stack's EKS API endpoint is not open to the whole internet."""
    if resource.type != EKS_CLUSTER:
        return []
    vpc = _get(resource.props, "vpcConfig")
    if _get(vpc, "endpointPublicAccess") is False:
        return []
    cidrs = [c for c in _list(_get(vpc, "publicAccessCidrs")) if isinstance(c, str)] or ["0.0.0.0/0"]  # AWS default
    open_to = sorted(OPEN_CIDRS & set(cidrs))
    if not open_to:
        return []
    return [f"the public API endpoint is open to {', '.join(open_to)}; limit "
            "app-update:cluster.endpointPublicAccessCidrs to your networks"]


# ---------------------------------------------------------------------------------------------
# The rule table: names, descriptions and enforcement levels as data
# ---------------------------------------------------------------------------------------------


RULES: tuple[Rule, ...] = (
    Rule("no-latest-image-tag", "No container image tagged 'latest', with an empty tag, or untagged.",
         MANDATORY, image_tag_pinned),
    Rule("container-requests", "Every container requests CPU and memory.", MANDATORY, container_requests),
    Rule("container-probes", "Every long-running container has readiness and liveness probes.",
         MANDATORY, container_probes),
    Rule("container-non-root", "Every container runs as a non-root user and unprivileged.",
         MANDATORY, container_non_root),
    Rule("no-load-balancer-outside-release",
         "No Service of type LoadBalancer unless it belongs to a release (labels app.kubernetes.io/name and "
         "app.kubernetes.io/part-of: app-update).", MANDATORY, no_load_balancer_outside_release),
    Rule("no-recreate-on-protected", "No Recreate release on a protected stack: downtime on every update.",
         MANDATORY, no_recreate, protected_only=True),
    Rule("stable-replicas-on-protected", "At least 2 replicas per stable track on a protected stack.",
         MANDATORY, stable_replicas, protected_only=True),
    Rule("pdb-per-deployment-on-protected",
         "A PodDisruptionBudget for every Deployment of 2 or more replicas on a protected stack.",
         MANDATORY, disruption_budgets, scope="stack", protected_only=True),
    Rule("promotion-proof-on-protected",
         "A protected stack names where it takes releases from and serves what its release records say.",
         MANDATORY, promotion_proof, scope="stack", protected_only=True),
    Rule("bluegreen-preview-check-on-protected",
         "A BlueGreen release on a protected stack names its preview check (previewCheck) for `rollout bluegreen`.",
         MANDATORY, blue_green_preview_check, protected_only=True),
    Rule("image-from-private-registry", "Images come from a private registry, not Docker Hub.",
         ADVISORY, image_from_private_registry),
    Rule("image-pinned-by-digest", "Images are pinned by digest.", ADVISORY, image_pinned_by_digest),
    Rule("eks-endpoint-restricted-on-protected",
         "A protected stack's EKS API endpoint is not open to 0.0.0.0/0.",
         ADVISORY, eks_endpoint_restricted, protected_only=True),
)
RULES_BY_NAME = {rule.name: rule for rule in RULES}


# ---------------------------------------------------------------------------------------------
# Policy config: the file format `pulumi preview --policy-pack-config` takes
# ---------------------------------------------------------------------------------------------


class PolicyConfigError(ValueError):
    """A policy config file that cannot be used: one line naming the file and the key."""


def load_policy_config(path: Path) -> dict[str, Any]:
    """A policy config file (JSON, as `--policy-pack-config` takes it), checked against the rule table."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PolicyConfigError(f"{path}: cannot read it as JSON: {error}") from None
    problems = config_problems(data)
    if problems:
        raise PolicyConfigError(f"{path}: {problems[0]}")
    return data


def config_problems(config: Any) -> list[str]:
    if not isinstance(config, dict):
        return ["a policy config is a JSON object keyed by policy name (or 'all')"]
    problems = []
    for key, value in config.items():
        if key != "all" and key not in RULES_BY_NAME:
            problems.append(f"{key}: no such policy (policies: {', '.join(RULES_BY_NAME)})")
        elif isinstance(value, str):
            if value not in LEVELS:
                problems.append(f"{key}: enforcement level must be one of {', '.join(LEVELS)} (got {value!r})")
        elif isinstance(value, dict):
            level = value.get("enforcementLevel")
            if level is not None and level not in LEVELS:
                problems.append(f"{key}.enforcementLevel: must be one of {', '.join(LEVELS)} (got {level!r})")
            allowed = {"enforcementLevel"}
            if key in RULES_BY_NAME and RULES_BY_NAME[key].protected_only:
                allowed.add("protected")
            extra = sorted(set(value) - allowed)
            if extra:
                problems.append(f"{key}: unknown setting(s) {', '.join(extra)} (this policy takes: "
                                f"{', '.join(sorted(allowed))})")
            if not isinstance(value.get("protected", False), bool):
                problems.append(f"{key}.protected: must be true or false")
        else:
            problems.append(f"{key}: must be an enforcement level or an object")
    return problems


def _rule_config(config: Mapping[str, Any] | None, name: str) -> Mapping[str, Any]:
    value = (config or {}).get(name)
    if isinstance(value, str):
        return {"enforcementLevel": value}
    return value if isinstance(value, Mapping) else {}


def level_of(rule: Rule, config: Mapping[str, Any] | None = None) -> str:
    """The rule's enforcement level after a policy config: its own entry, then 'all', then the table."""
    own = _rule_config(config, rule.name).get("enforcementLevel")
    every = _rule_config(config, "all").get("enforcementLevel")
    return own or every or rule.level


# ---------------------------------------------------------------------------------------------
# Running the rules
# ---------------------------------------------------------------------------------------------


def _run(rule: Rule, resources: list[Resource]) -> list[tuple[Resource | None, str]]:
    if rule.scope == "stack":
        return rule.check(resources)  # type: ignore[arg-type,return-value]
    return [(resource, message) for resource in resources for message in rule.check(resource)]  # type: ignore[arg-type]


def check(resources: Iterable[tuple[str, str, Mapping[str, Any]]], protected: bool,
          config: Mapping[str, Any] | None = None) -> list[Violation]:
    """Every rule over `(type token, name, props)` resources; rules marked protected_only only when
    `protected` (or the policy config sets `protected: true` for that rule)."""
    items = [Resource(t, n, p) for t, n, p in resources]
    found = []
    for rule in RULES:
        level = level_of(rule, config)
        if level == DISABLED:
            continue
        if rule.protected_only and not (protected or _rule_config(config, rule.name).get("protected") is True):
            continue
        for resource, message in _run(rule, items):
            found.append(Violation(rule.name, resource.label if resource else "", message, level))
    return found


def check_run(run_resources: Iterable[Any], protected: bool,
              config: Mapping[str, Any] | None = None) -> list[Violation]:
    """`check` over the offline runner's registered resources (`.type`, `.name`, `.inputs`, `.custom`):
    custom resources only, as components carry no inputs the rules read."""
    return check([(r.type, r.name, r.inputs) for r in run_resources if getattr(r, "custom", True)], protected, config)


def mandatory(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.level == MANDATORY]


def report(violations: list[Violation]) -> list[str]:
    """Lines for the operator: mandatory first, then advisory, and a summary."""
    ordered = sorted(violations, key=lambda v: (v.level != MANDATORY, v.policy, v.resource))
    lines = [v.line() for v in ordered]
    blocking = len(mandatory(violations))
    if violations:
        lines.append(f"policy: {blocking} mandatory, {len(violations) - blocking} advisory violation(s)")
    return lines


# ---------------------------------------------------------------------------------------------
# The CrossGuard side: validate callbacks (duck-typed, so this module needs no pulumi_policy)
# ---------------------------------------------------------------------------------------------


def stack_is_protected(environ: Mapping[str, str] | None = None) -> bool:
    """`app-update:protected` of the stack being previewed or updated, from PULUMI_CONFIG: the engine
    passes the stack's config to every policy pack there (as to a program)."""
    raw = (os.environ if environ is None else environ).get("PULUMI_CONFIG", "")
    try:
        config = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return False
    if not isinstance(config, dict):
        return False
    value = config.get(PROTECTED_CONFIG_KEY, config.get("app-update:config:protected"))
    return str(value).strip().lower() == "true"


def _protected(args: Any, environ: Mapping[str, str] | None) -> bool:
    return args.get_config().get("protected") is True or stack_is_protected(environ)


def resource_validator(rule: Rule, environ: Mapping[str, str] | None = None) -> Callable[[Any, Any], None]:
    """validate(args, report_violation) for a ResourceValidationPolicy: args has resource_type, name,
    props and get_config() (pulumi_policy.ResourceValidationArgs)."""
    def validate(args: Any, report_violation: Any) -> None:
        if rule.protected_only and not _protected(args, environ):
            return
        for message in rule.check(Resource(args.resource_type, args.name, args.props)):  # type: ignore[arg-type]
            report_violation(message)

    return validate


def stack_validator(rule: Rule, environ: Mapping[str, str] | None = None) -> Callable[[Any, Any], None]:
    """validate(args, report_violation) for a StackValidationPolicy: args.resources are
    pulumi_policy.PolicyResource (resource_type, name, props, urn)."""
    def validate(args: Any, report_violation: Any) -> None:
        if rule.protected_only and not _protected(args, environ):
            return
        by_id = {}
        items = []
        for policy_resource in args.resources:
            item = Resource(policy_resource.resource_type, policy_resource.name, policy_resource.props)
            by_id[id(item)] = policy_resource.urn
            items.append(item)
        for resource, message in rule.check(items):  # type: ignore[arg-type]
            if resource is None:
                report_violation(message)
            else:
                report_violation(f"{resource.name}: {message}", by_id.get(id(resource)))

    return validate


CONFIG_SCHEMA = {"protected": {"type": "boolean", "description": "Apply the rule as on a protected stack."}}
