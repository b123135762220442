"""The chapter's other canary methods: Gateway API (north-south and in-mesh), Istio, Zalando's skipper,
and Route53 weights. Exact objects at each weight, pods per track, schema validity (built-in kinds on the
strict Kubernetes schema, custom resources on validators generated from their upstream CRDs), the order
of a weight step both ways, the plan's words and the mocks' answers."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.canary_pair import (
    destination_rule_spec,
    httproute_spec,
    skipper_backend_weights,
    virtual_service_spec,
)
from model import canary_math
from model.config import split_namespaces, validate
from model.config_models import DEFAULT_KUBERNETES_VERSION
from preview import aws_mocks, manifests, plan
from preview.runner import ProgramRun
from tests import apiserver_rules
from tests.conftest import ROOT, objects_of, pod_labels, selects, settings_with, shared_run
from tests.fake_stack import answers_at_weight

WEIGHTS = [0, 5, 50, 100]
# (weight, canary pods) at 4 stable pods: the stable fleet keeps its size in every weighted mode.
PODS = {0: 0, 5: 1, 50: 2, 100: 4}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
DESTINATION_RULE = "kubernetes:networking.istio.io/v1:DestinationRule"
RECORD = "aws:route53/record:Record"
CUSTOM_API_VERSIONS = ("gateway.networking.k8s.io/v1", "networking.istio.io/v1")
# The custom resources each traffic mode renders (the other modes: none).
CUSTOM_KINDS = {"gateway": {"HTTPRoute"}, "istio": {"VirtualService", "DestinationRule"}}
LABELS = {"app.kubernetes.io/name": "app", "app.kubernetes.io/part-of": "app-update",
          "app.kubernetes.io/managed-by": "pulumi"}
REGION = "us-west-2"
ZONE = "example.com"
RECORD_NAME = "app.example.com"

# Each new mode in the forms it takes: (traffic, release keys, stack keys).
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "gateway-mesh": ("gateway", {}, {}),
    "gateway-north-south": ("gateway", {"gateway": {"name": "public", "namespace": "infra", "sectionName": "http",
                                                    "hosts": ["app.example.com"]}}, {}),
    "istio-mesh": ("istio", {}, {}),
    "istio-gateway": ("istio", {"gateway": {"name": "public", "namespace": "istio-ingress",
                                            "hosts": ["app.example.com"]}}, {}),
    "skipper": ("skipper", {}, {}),
    "dns": ("dns", {"dns": {"zone": ZONE, "name": RECORD_NAME}}, {"aws:region": REGION}),
    "dns-nlb": ("dns", {"dns": {"zone": ZONE, "name": RECORD_NAME}},
                {"aws:region": REGION, "app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True}}),
}


def releases_of(variant: str, weight: int, replicas: int = 4) -> dict[str, Any]:
    traffic, keys, _ = VARIANTS[variant]
    return {"app": {"strategy": "Canary", "traffic": traffic, "replicas": replicas, "stable": {"tag": "v1"},
                    "canary": {"tag": "v2", "weight": weight}, **copy.deepcopy(keys)},
            "other": {"strategy": "RollingUpdate", "tag": "v1", "replicas": 2}}


# What the Pulumi CLI (and `rollout preview`) set from Pulumi.yaml's config defaults. The settings of the modes
# carry them as `pulumi up` would give them, so a preview of a stack file holding those settings (below) reads the
# same program run (tests/conftest.py shares a run per config) instead of running the program again.
PROJECT_DEFAULTS = {(key if ":" in key else f"app-update:{key}"): spec["default"]
                    for key, spec in yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"].items()
                    if isinstance(spec, dict) and "default" in spec}


def settings_of(variant: str, weight: int, replicas: int = 4) -> dict[str, Any]:
    settings = {**PROJECT_DEFAULTS, **settings_with(releases_of(variant, weight, replicas))}
    settings.update(copy.deepcopy(VARIANTS[variant][2]))
    return settings


def run_variant(variant: str, weight: int, replicas: int = 4) -> ProgramRun:
    run = shared_run("test", settings_of(variant, weight, replicas))
    if run.error is not None:
        raise run.error
    return run


def release_of(variant: str, weight: int):
    own, other = split_namespaces(settings_of(variant, weight))
    return validate(own, "test", other).release("app")


def the(run: ProgramRun, typ: str, name: str = "app") -> dict[str, Any]:
    return objects_of(run, typ)[name]


def records(run: ProgramRun) -> dict[str, dict[str, Any]]:
    return {r.inputs["setIdentifier"]: r.inputs for r in run.of_type(RECORD)}


def metadata(name: str = "app") -> dict[str, Any]:
    return {"name": name, "namespace": "app-update", "labels": LABELS}


# ---------------------------------------------------------------------------------------------
# The exact objects, at weights 0, 5, 50 and 100
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", WEIGHTS)
def test_gateway_mesh_route_attaches_to_the_release_service(weight):
    run = run_variant("gateway-mesh", weight)
    route = the(run, HTTPROUTE)
    assert route == {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": metadata(),
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "app", "port": 80}],
            "rules": [{"backendRefs": [{"name": "app-stable", "port": 80, "weight": 100 - weight},
                                       {"name": "app-canary", "port": 80, "weight": weight}]}],
        },
    }
    assert route["spec"] == httproute_spec("app", 80, weight, None)
    assert sum(b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]) == 100  # never all 0
    # The front Service in-mesh callers call: ClusterIP, both tracks' pods behind it.
    services, deps = objects_of(run, SERVICE), objects_of(run, DEPLOYMENT)
    assert set(services) == {"app", "app-stable", "app-canary", "other"}
    front = services["app"]["spec"]
    assert front["type"] == "ClusterIP" and front["ports"] == [
        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    assert selects(front["selector"], pod_labels(deps["app-stable"]))
    assert selects(front["selector"], pod_labels(deps["app-canary"]))
    assert run.outputs["releases"]["app"]["address"] == ""  # in-mesh only: no address of its own


@pytest.mark.parametrize("weight", WEIGHTS)
def test_gateway_north_south_route_attaches_to_the_gateway(weight):
    run = run_variant("gateway-north-south", weight)
    route = the(run, HTTPROUTE)
    assert route["metadata"] == metadata()
    assert route["spec"] == {
        "parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "http"}],
        "hostnames": ["app.example.com"],
        "rules": [{"backendRefs": [{"name": "app-stable", "port": 80, "weight": 100 - weight},
                                   {"name": "app-canary", "port": 80, "weight": weight}]}],
    }
    # No Service of the release's own name: the Gateway is the front.
    assert set(objects_of(run, SERVICE)) == {"app-stable", "app-canary", "other"}
    assert [objects_of(run, SERVICE)[f"app-{t}"]["spec"]["type"] for t in ("stable", "canary")] == ["ClusterIP"] * 2


def test_gateway_namespace_defaults_to_the_releases_and_section_is_optional():
    settings = settings_of("gateway-north-south", 5)
    settings["app-update:releases"]["app"]["gateway"] = {"name": "public"}
    run = shared_run("test", settings)
    assert run.error is None
    assert the(run, HTTPROUTE)["spec"]["parentRefs"] == [{"name": "public", "namespace": "app-update"}]
    assert "hostnames" not in the(run, HTTPROUTE)["spec"]


@pytest.mark.parametrize("weight", WEIGHTS)
def test_istio_subsets_and_weighted_virtual_service(weight):
    run = run_variant("istio-mesh", weight)
    rule, virtual = the(run, DESTINATION_RULE), the(run, VIRTUAL_SERVICE)
    assert rule == {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": metadata(),
                    "spec": {"host": "app", "subsets": [{"name": "stable", "labels": {"app-update/track": "stable"}},
                                                        {"name": "canary", "labels": {"app-update/track": "canary"}}]}}
    assert virtual == {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": metadata(),
                       "spec": {"hosts": ["app"], "http": [{"route": [
                           {"destination": {"host": "app", "subset": "stable", "port": {"number": 80}},
                            "weight": 100 - weight},
                           {"destination": {"host": "app", "subset": "canary", "port": {"number": 80}},
                            "weight": weight}]}]}}
    assert rule["spec"] == destination_rule_spec("app")
    assert virtual["spec"] == virtual_service_spec("app", 80, weight, None)
    deps, services = objects_of(run, DEPLOYMENT), objects_of(run, SERVICE)
    assert set(services) == {"app", "other"}
    # The host's Service selects both tracks; each subset exactly one.
    assert selects(services["app"]["spec"]["selector"], pod_labels(deps["app-stable"]))
    assert selects(services["app"]["spec"]["selector"], pod_labels(deps["app-canary"]))
    for subset in rule["spec"]["subsets"]:
        assert selects(subset["labels"], pod_labels(deps[f"app-{subset['name']}"]))
        other = "canary" if subset["name"] == "stable" else "stable"
        assert not selects(subset["labels"], pod_labels(deps[f"app-{other}"]))


@pytest.mark.parametrize("weight", WEIGHTS)
def test_istio_bound_to_a_gateway_keeps_the_mesh_too(weight):
    virtual = the(run_variant("istio-gateway", weight), VIRTUAL_SERVICE)
    assert virtual["spec"]["hosts"] == ["app", "app.example.com"]
    assert virtual["spec"]["gateways"] == ["istio-ingress/public", "mesh"]
    assert [r["weight"] for r in virtual["spec"]["http"][0]["route"]] == [100 - weight, weight]


@pytest.mark.parametrize("weight", WEIGHTS)
def test_skipper_ingress_has_two_identical_paths_and_backend_weights(weight):
    run = run_variant("skipper", weight)
    ingress = the(run, INGRESS)
    weights = json.loads(ingress["metadata"]["annotations"]["zalando.org/backend-weights"])
    assert weights == {"app-stable": 100 - weight, "app-canary": weight}
    assert ingress["metadata"]["annotations"] == {
        "zalando.org/backend-weights": skipper_backend_weights("app-stable", "app-canary", weight),
        "zalando.org/aws-load-balancer-scheme": "internet-facing"}
    assert ingress["spec"] == {"ingressClassName": "skipper", "rules": [{"http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "app-stable", "port": {"number": 80}}}},
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "app-canary", "port": {"number": 80}}}},
    ]}}]}
    assert set(objects_of(run, INGRESS)) == {"app"}  # one Ingress, not a canary Ingress beside it
    assert run.outputs["releases"]["app"]["address"].endswith(".elb.us-west-2.amazonaws.com")


def test_skipper_ingress_class_can_be_changed():
    settings = settings_of("skipper", 5)
    settings["app-update:releases"]["app"]["ingressClass"] = "skipper-internal"
    run = shared_run("test", settings)
    assert the(run, INGRESS)["spec"]["ingressClassName"] == "skipper-internal"


@pytest.mark.parametrize("variant,zone_id", [("dns", "Z1H1FL5HABSF5"), ("dns-nlb", "Z18D5FSROUN65G")])
@pytest.mark.parametrize("weight", WEIGHTS)
def test_dns_weighted_alias_records_point_at_each_tracks_load_balancer(variant, zone_id, weight):
    run = run_variant(variant, weight)
    services = {r.inputs["metadata"]["name"]: r for r in run.of_type(SERVICE)}
    hosted_zone = aws_mocks.hosted_zone(ZONE)["zoneId"]
    found = records(run)
    assert set(found) == {"stable", "canary"}
    for track, share in (("stable", 100 - weight), ("canary", weight)):
        lb = services[f"app-{track}"]
        assert lb.inputs["spec"]["type"] == "LoadBalancer"
        hostname = lb.outputs["status"]["loadBalancer"]["ingress"][0]["hostname"]
        assert found[track] == {
            "name": RECORD_NAME, "type": "A", "zoneId": hosted_zone, "setIdentifier": track,
            "weightedRoutingPolicies": [{"weight": share}],
            "aliases": [{"name": hostname, "zoneId": zone_id, "evaluateTargetHealth": True}],
        }
    assert sum(r["weightedRoutingPolicies"][0]["weight"] for r in found.values()) == 100  # never all 0
    assert all(0 <= r["weightedRoutingPolicies"][0]["weight"] <= 255 for r in found.values())
    # The data sources the program asked, as AWS would be asked.
    lookups = [(token, args) for token, args in run.invokes if not token.startswith("aws:index/")]
    lb_lookup = (("aws:lb/getHostedZoneId:getHostedZoneId", {"loadBalancerType": "network", "region": REGION})
                 if variant == "dns-nlb" else ("aws:elb/getHostedZoneId:getHostedZoneId", {"region": REGION}))
    assert lookups == [("aws:route53/getZone:getZone", {"name": ZONE}), lb_lookup]
    assert run.outputs["releases"]["app"]["address"] == RECORD_NAME
    # Created with the default AWS provider (aws:region), not the Kubernetes one.
    assert all(r.provider is None for r in run.of_type(RECORD))


def test_dns_track_services_ask_for_nlbs_where_the_controller_gives_them():
    classic = objects_of(run_variant("dns", 5), SERVICE)
    nlb = objects_of(run_variant("dns-nlb", 5), SERVICE)
    for track in ("stable", "canary"):
        assert "service.beta.kubernetes.io/aws-load-balancer-type" not in (
            classic[f"app-{track}"]["metadata"].get("annotations") or {})
        assert nlb[f"app-{track}"]["metadata"]["annotations"] == {
            "service.beta.kubernetes.io/aws-load-balancer-type": "external",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
            "pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress}"}


SKIP = {"pulumi.com/skipAwait": "true"}
HOSTNAME = {"pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress}"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_service_waits_for_pods_that_come_after_it_or_may_be_none(variant):
    # pulumi-kubernetes' default Service await waits until the endpoints target a ready pod: a Service
    # created before its Deployment (and a canary's at weight 0) would never get there.
    run = run_variant(variant, 0)
    for service in run.of_type(SERVICE):
        if service.parent_name != "app":
            continue
        annotations = service.inputs["metadata"].get("annotations") or {}
        expected = HOSTNAME if service.inputs["spec"]["type"] == "LoadBalancer" else SKIP
        assert {k: v for k, v in annotations.items() if k.startswith("pulumi.com/")} == expected, service.name
    # The manifests for kubectl carry no pulumi.com/ annotation.
    for manifest in manifests.collect(run):
        assert not any(k.startswith("pulumi.com/") for k in manifest.obj["metadata"].get("annotations") or {})


def test_dns_on_an_eks_stack_uses_the_region_and_the_controllers_nlbs():
    settings = settings_with(releases_of("dns", 25))
    settings["app-update:cluster"] = {"mode": "eks", "loadBalancerController": True}
    settings["aws:region"] = "eu-west-1"
    run = shared_run("test", settings)
    assert run.error is None
    assert {r["aliases"][0]["zoneId"] for r in records(run).values()} == {"Z2IFOLAFXWLO4F"}  # eu-west-1 NLBs
    assert ("aws:lb/getHostedZoneId:getHostedZoneId", {"loadBalancerType": "network", "region": "eu-west-1"}) \
        in run.invokes


# ---------------------------------------------------------------------------------------------
# Pods per track, and what a weight step changes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("weight", WEIGHTS)
def test_the_stable_fleet_keeps_its_pods_and_the_canary_gets_its_share(variant, weight):
    deps = objects_of(run_variant(variant, weight), DEPLOYMENT)
    assert deps["app-stable"]["spec"]["replicas"] == 4
    assert deps["app-canary"]["spec"]["replicas"] == PODS[weight]
    release = release_of(variant, weight)
    assert release.effective_weight == float(weight)
    assert canary_math.track_replicas(release.traffic, 4, weight) == (4, PODS[weight])


TRAFFIC_OBJECTS = [HTTPROUTE, VIRTUAL_SERVICE, INGRESS, RECORD]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_weight_step_changes_only_weights_and_canary_replicas(variant):
    before, after = run_variant(variant, 5), run_variant(variant, 50)

    def weightless(typ: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        if typ == HTTPROUTE:
            for ref in obj["spec"]["rules"][0]["backendRefs"]:
                ref.pop("weight")
        elif typ == VIRTUAL_SERVICE:
            for route in obj["spec"]["http"][0]["route"]:
                route.pop("weight")
        elif typ == INGRESS:
            obj["metadata"]["annotations"].pop("zalando.org/backend-weights")
        elif typ == RECORD:
            obj.pop("weightedRoutingPolicies")
            obj["aliases"][0].pop("name")  # (the mocks' load balancer names are per run)
        return obj

    for typ in (DEPLOYMENT, SERVICE, DESTINATION_RULE, *TRAFFIC_OBJECTS):
        b = {r.name: r.inputs for r in before.of_type(typ)}
        a = {r.name: r.inputs for r in after.of_type(typ)}
        assert set(b) == set(a), typ
        for name in b:
            if typ == DEPLOYMENT:
                assert b[name]["spec"]["selector"] == a[name]["spec"]["selector"]
                assert b[name]["spec"]["template"] == a[name]["spec"]["template"]
            else:
                assert weightless(typ, b[name]) == weightless(typ, a[name]), (typ, name)
    moved = [r.name for typ in TRAFFIC_OBJECTS for r in after.of_type(typ)
             if r.inputs != next(x.inputs for x in before.of_type(typ) if x.name == r.name)]
    assert moved, "the weight moved nowhere"


# ---------------------------------------------------------------------------------------------
# Schema validity: built-in kinds strict, custom resources against their upstream CRDs
# ---------------------------------------------------------------------------------------------

CRD_DIR = ROOT / "tests" / "crd"


def crd_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Run the Node helper over custom resources: one line per invalid object ([] when all are valid).

    Skips (with the reason) only where its packages are not installed and CI is unset; in CI a
    missing install fails, so the check cannot silently stop running."""
    if not (CRD_DIR / "node_modules").is_dir():
        install = "npm ci --prefix tests/crd --no-audit --no-fund"
        if os.environ.get("CI"):
            pytest.fail(f"tests/crd/node_modules is missing in CI: run `{install}` before the tests")
        pytest.skip(f"the CRD validators are not installed (tests/crd/node_modules is missing): run `{install}`")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the CRD validators need Node 20 or later")
    done = subprocess.run([node, "validate.mjs"], cwd=CRD_DIR, input=json.dumps(objects), capture_output=True,
                          text=True, timeout=120)
    if done.returncode not in (0, 1):
        pytest.fail(f"validate.mjs failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode == 0:
        assert lines == [f"ok {len(objects)}"], lines
        return []
    return lines


def custom_resources(run: ProgramRun) -> list[dict[str, Any]]:
    return built_in_and_custom(run)[1]


def built_in_and_custom(run: ProgramRun) -> tuple[list[manifests.Manifest], list[dict[str, Any]]]:
    """The run's manifests of built-in kinds, and its custom resources' objects."""
    collected = manifests.collect(run)
    return ([m for m in collected if m.obj["apiVersion"] not in CUSTOM_API_VERSIONS],
            [m.obj for m in collected if m.obj["apiVersion"] in CUSTOM_API_VERSIONS])


@pytest.fixture(scope="module")
def crd_batch() -> dict[str, set[str]]:
    """Filled on first use by assert_crd_valid: the custom resources one run of the Node helper found valid."""
    return {}


def assert_crd_valid(objects: list[dict[str, Any]], batch: dict[str, set[str]]) -> None:
    """crd_problems(objects) == [], with one run of the Node helper for every custom resource this module's
    modes and match routes render (it checks each object on its own; a run is ~0.2 CPU-s, mostly Node
    starting). Objects that run did not find valid (all of them, if it found any problem) are asked about
    on their own, so a failure names them."""
    if "valid" not in batch:
        rendered = [o for v in VARIANTS for w in WEIGHTS for o in custom_resources(run_variant(v, w))]
        rendered += [o for v in MATCH_VARIANTS for o in custom_resources(run_match_variant(v))]
        batch["valid"] = {json.dumps(o, sort_keys=True) for o in rendered} if crd_problems(rendered) == [] else set()
    if not all(json.dumps(o, sort_keys=True) in batch["valid"] for o in objects):
        assert crd_problems(objects) == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_object_of_each_new_mode_is_schema_valid(variant, crd_batch):
    custom: list[dict[str, Any]] = []
    built_in: dict[str, manifests.Manifest] = {}  # an object rendered alike at several weights is checked once
    for weight in WEIGHTS:
        built_in_of_run, custom_of_run = built_in_and_custom(run_variant(variant, weight))
        for manifest in built_in_of_run:
            built_in.setdefault(json.dumps(manifest.obj, sort_keys=True), manifest)
        custom += custom_of_run
    assert len(built_in) >= len(built_in_of_run) > 0
    assert manifests.validate_all(list(built_in.values()), "1.35") == []
    assert {o["kind"] for o in custom} == CUSTOM_KINDS.get(VARIANTS[variant][0], set())
    if custom:
        assert_crd_valid(custom, crd_batch)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("weight", WEIGHTS)
def test_every_built_in_object_of_each_new_mode_is_one_the_api_server_takes(variant, weight):
    # Beyond the schema: the API server's own validation (tests/apiserver_rules.py). The rules skip the
    # custom resources (left to the CRD validators, above) and nothing else.
    objects = run_variant(variant, weight).kubernetes_objects()
    skipped = {r.inputs["kind"] for r in objects if apiserver_rules.is_custom_resource(r.inputs)}
    assert skipped == CUSTOM_KINDS.get(VARIANTS[variant][0], set())
    assert {r.inputs["kind"] for r in objects} >= {"Deployment", "Service", "PodDisruptionBudget"}
    assert apiserver_rules.problems_of(objects, DEFAULT_KUBERNETES_VERSION) == []


# Header and cookie routes (canary.match) and sticky sessions (canary.sticky) on each router that takes them:
# (traffic, release keys, stack keys), every object checked as the modes' are above.
MATCH = {"header": {"name": "X-Canary", "value": "always"}, "cookie": "canary"}
MATCH_REGEX = {"header": {"name": "X-User", "regex": "^(alice|bob)$"}, "cookie": "canary"}
CONTROLLER = {"app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True}}
MATCH_VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "nginx": ("nginx", {"match": MATCH_REGEX, "sticky": True}, {}),
    "alb": ("alb", {"match": MATCH, "sticky": True}, CONTROLLER),
    "gateway-mesh": ("gateway", {"match": MATCH_REGEX}, {}),
    "gateway-north-south": ("gateway", {"match": MATCH}, {}),
    "istio-mesh": ("istio", {"match": MATCH_REGEX}, {}),
    "istio-gateway": ("istio", {"match": MATCH}, {}),
    "skipper": ("skipper", {"match": MATCH_REGEX}, {}),
}
# The weights each match route is rendered at, one release each: "app" at 0%, "app5" at 5%, "app100" at 100%.
MATCH_WEIGHTS = {"app": 0, "app5": 5, "app100": 100}


def run_match_variant(variant: str) -> ProgramRun:
    """One run rendering the variant's match route at every one of MATCH_WEIGHTS (a release each, as a stack
    with several canaries has them; the modes' own releases beside them). Each release's objects are its own:
    one run renders what a run per weight would, under the release's name."""
    traffic, canary_keys, stack_keys = MATCH_VARIANTS[variant]
    releases: dict[str, Any] = {}
    for name, weight in MATCH_WEIGHTS.items():
        of_weight = releases_of(variant, weight) if variant in VARIANTS else {
            "app": {"strategy": "Canary", "traffic": traffic, "replicas": 4, "stable": {"tag": "v1"},
                    "canary": {"tag": "v2", "weight": weight}}}
        of_weight["app"]["canary"].update(copy.deepcopy(canary_keys))
        releases.update({name if release == "app" else release: spec for release, spec in of_weight.items()})
    settings = settings_with(releases)
    settings.update(copy.deepcopy(VARIANTS[variant][2] if variant in VARIANTS else {}))
    settings.update(copy.deepcopy(stack_keys))
    run = shared_run("test", settings)
    if run.error is not None:
        raise run.error
    return run


@pytest.mark.parametrize("variant", sorted(MATCH_VARIANTS))
def test_every_object_of_each_match_route_is_schema_valid_and_one_the_api_server_takes(variant, crd_batch):
    run = run_match_variant(variant)
    assert {name: run.outputs["releases"][name]["requestedWeight"] for name in MATCH_WEIGHTS} == MATCH_WEIGHTS
    built_in, custom = built_in_and_custom(run)
    assert {m.obj["metadata"]["name"] for m in built_in if m.kind == "Deployment"} >= {
        f"{name}-{track}" for name in MATCH_WEIGHTS for track in ("stable", "canary")}
    assert manifests.validate_all(built_in, "1.35") == []
    assert apiserver_rules.problems_of(run.kubernetes_objects(), DEFAULT_KUBERNETES_VERSION) == []
    assert {o["kind"] for o in custom} == CUSTOM_KINDS.get(MATCH_VARIANTS[variant][0], set())
    if custom:
        assert_crd_valid(custom, crd_batch)


def test_the_crd_validators_catch_a_broken_match_route():
    route = next(o for o in custom_resources(run_match_variant("gateway-mesh"))
                 if o["kind"] == "HTTPRoute" and o["metadata"]["name"] == "app")
    bad_type = copy.deepcopy(route)
    bad_type["spec"]["rules"][0]["matches"][0]["headers"][0]["type"] = "Regex"
    virtual = next(o for o in custom_resources(run_match_variant("istio-mesh"))
                   if o["kind"] == "VirtualService" and o["metadata"]["name"] == "app")
    bad_match = copy.deepcopy(virtual)
    bad_match["spec"]["http"][0]["match"] = {"headers": {}}
    found = crd_problems([bad_type, bad_match])
    assert len(found) == 2, found


def test_the_crd_validators_catch_what_the_api_server_would_refuse():
    run = run_variant("gateway-mesh", 5)
    route = custom_resources(run)[0]
    negative = copy.deepcopy(route)
    negative["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    too_big = copy.deepcopy(route)
    too_big["spec"]["rules"][0]["backendRefs"][1]["weight"] = 1_000_001
    virtual = next(o for o in custom_resources(run_variant("istio-mesh", 5)) if o["kind"] == "VirtualService")
    broken = copy.deepcopy(virtual)
    broken["spec"]["hosts"] = "app"
    del broken["spec"]["http"][0]["route"][0]["destination"]["host"]
    unknown = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    found = crd_problems([route, negative, too_big, broken, unknown])
    assert len(found) == 4, found
    assert "weight must be >= 0" in found[0] and "weight must be <= 1000000" in found[1]
    assert "/spec/hosts must be array" in found[2]
    assert re.search(r"/spec/http/0/route/0/destination must have required property '?host'?", found[2])
    assert found[3].startswith("ConfigMap/x: no validator")


# ---------------------------------------------------------------------------------------------
# Order: each Deployment after the Service in front of its pods; the split after the canary's pods
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_deployment_comes_after_the_services_in_front_of_its_pods(variant):
    run = run_variant(variant, 50)
    services = {r.urn: r for r in run.of_type(SERVICE)}
    deployments = run.of_type(DEPLOYMENT)
    for deployment in deployments:
        labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        fronting = {urn for urn, s in services.items() if selects(s.inputs["spec"]["selector"], labels)}
        assert fronting, deployment.name
        waits = set(deployment.dependencies)
        for other in deployments:
            if other.urn in waits:
                waits |= set(other.dependencies)
        assert fronting <= waits, deployment.name


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_traffic_objects_wait_for_the_canary_deployment(variant):
    run = run_variant(variant, 50)
    canary = run.named("app-canary")
    split = [r for typ in TRAFFIC_OBJECTS for r in run.of_type(typ) if r.parent_name == "app"]
    assert split
    for resource in split:
        assert canary.urn in resource.dependencies, resource.name
    for rule in run.of_type(DESTINATION_RULE):  # Istio: the subsets exist before a route names them
        assert rule.urn in run.named("app-virtualservice").dependencies


# The order of a weight step, through `rollout canary` and `rollout abort` on a stand-in stack whose
# updates run the program offline (as tests/test_canary.py does for the other modes).
RELEASES = "app-update:releases"
TRAFFIC_FIELD = {
    "gateway-mesh": ("HTTPRoute/app", "spec.rules"),
    "gateway-north-south": ("HTTPRoute/app", "spec.rules"),
    "istio-mesh": ("VirtualService/app", "spec.http"),
    "istio-gateway": ("VirtualService/app", "spec.http"),
    "skipper": ("Ingress/app", "metadata.annotations"),
    "dns": ("Record/canary", "weightedRoutingPolicies"),
    "dns-nlb": ("Record/canary", "weightedRoutingPolicies"),
}


def order_stack(variant: str):
    from tests.fake_stack import FakeStack

    class RecordTrackingStack(FakeStack):
        """FakeStack, whose changes also list the Route53 records (as "Record/<set identifier>")."""

        def tracked(self, run):
            records = []
            for resource in run.of_type(RECORD):
                inputs = copy.deepcopy(resource.inputs)
                inputs["aliases"][0]["name"] = "<load balancer>"  # (per run in the mocks)
                records.append((resource, f"Record/{resource.inputs['setIdentifier']}", inputs))
            return super().tracked(run) + records

    settings = settings_of(variant, 0)
    settings[RELEASES] = {"app": {**releases_of(variant, 0)["app"], "maxSurge": 1, "maxUnavailable": 1}}
    settings[RELEASES]["app"]["canary"]["tag"] = "v1"
    stack = RecordTrackingStack("staging", settings)
    stack.up(message="initial")
    return stack


def _differences(before: dict[str, Any], after: dict[str, Any], prefix: str = "", depth: int = 2) -> list[str]:
    """Paths (to `depth` levels) whose values differ, as tests/fake_stack.py lists them."""
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        if depth > 1 and isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.", depth - 1)
        else:
            out.append(f"{prefix}{key}")
    return out


def changed(stack, update: int, name: str, field: str) -> bool:
    return any(c.name == name and field in c.fields for c in stack.changes[update])


def pods(config: dict[str, Any]) -> dict[str, int]:
    from operations.stacks import check_config

    return check_config("staging", dict(config), config[RELEASES]).release("app").replica_counts()


@pytest.mark.parametrize("variant", sorted(TRAFFIC_FIELD))
def test_raising_a_weight_readies_canary_pods_before_traffic_moves(variant, monkeypatch):
    from operations import canary_run
    from operations.canary_run import CanaryOptions, run_canary
    from tests.clock import VirtualClock

    monkeypatch.setattr(canary_run.Prober, "run", answers_at_weight)
    stack = order_stack(variant)
    options = CanaryOptions(release="app", tag="v2", steps=[50], interval=0.5, url="http://127.0.0.1:9/")
    assert run_canary(stack, options, clock=VirtualClock()).exit_code == 0
    traffic = TRAFFIC_FIELD[variant]
    # Update 1: the canary Deployment scales up (awaited ready); the split does not move.
    assert changed(stack, 1, "Deployment/app-canary", "spec.replicas") and not changed(stack, 1, *traffic)
    # Update 2: the split moves; the canary's pods stay as they are.
    assert changed(stack, 2, *traffic) and not changed(stack, 2, "Deployment/app-canary", "spec.replicas")
    # Within one update too, the split waits for the canary Deployment.
    split = next(c for c in stack.changes[2] if c.name == traffic[0])
    assert "Deployment/app-canary" in split.depends_on
    before, during, after = (pods(stack.applied[i][1]) for i in (0, 1, 2))
    assert during["canary"] == after["canary"] > before["canary"] == 0
    assert during["stable"] == before["stable"] == after["stable"] == 4


@pytest.mark.parametrize("variant", sorted(TRAFFIC_FIELD))
def test_lowering_a_weight_moves_traffic_before_canary_pods_go(variant):
    from operations.canary_run import do_abort
    from tests.clock import VirtualClock

    stack = order_stack(variant)
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="at 50%")
    assert do_abort(stack, "app", True, None, clock=VirtualClock()) == 0
    traffic = TRAFFIC_FIELD[variant]
    # Update 1 (index 2): the split moves back; the canary keeps its pods.
    assert changed(stack, 2, *traffic) and not changed(stack, 2, "Deployment/app-canary", "spec.replicas")
    # Update 2: the canary's pods go; the split stays.
    assert changed(stack, 3, "Deployment/app-canary", "spec.replicas") and not changed(stack, 3, *traffic)
    before, during, after = (pods(stack.applied[i][1]) for i in (1, 2, 3))
    assert during["canary"] == before["canary"] == 2 and after["canary"] == 0
    assert during["stable"] == after["stable"] == before["stable"] == 4


# ---------------------------------------------------------------------------------------------
# settle_seconds, address sources, the plan
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_settle_seconds_is_the_alias_ttl_and_propagation_for_dns_only(variant):
    expected = 120.0 if VARIANTS[variant][0] == "dns" else 0.0
    assert canary_math.settle_seconds(release_of(variant, 5)) == expected
    assert canary_math.ALIAS_TTL_SECONDS == 60


def test_settle_seconds_of_the_other_modes_and_strategies_is_0():
    raw = {"cluster": {"mode": "kubeconfig", "loadBalancerController": True}, "releases": {
        "r": {"strategy": "RollingUpdate", "tag": "v1"},
        **{mode: {"strategy": "Canary", "traffic": mode, "replicas": 2, "stable": {"tag": "v1"},
                  "canary": {"tag": "v2", "weight": 5}} for mode in ("replicas", "nlb", "alb", "nginx")}}}
    assert {r.name: canary_math.settle_seconds(r) for r in validate(raw, "t").releases} == {
        "r": 0.0, "replicas": 0.0, "nlb": 0.0, "alb": 0.0, "nginx": 0.0}


ADDRESS_SOURCES = {
    "gateway-mesh": "in-mesh only: callers of Service app",
    "gateway-north-south": "from Gateway infra/public status",
    "istio-mesh": "in-mesh only: callers of Service app",
    "istio-gateway": "the Istio ingress gateway behind Gateway istio-ingress/public, for hosts app.example.com; "
                     "in the mesh: callers of Service app",
    "skipper": "Ingress app status (its load balancer)",
    "dns": "Route53 record app.example.com (weighted aliases of the load balancers of app-stable and app-canary)",
    "dns-nlb": "Route53 record app.example.com (weighted aliases of the load balancers of app-stable and app-canary)",
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_address_source_is_stated(variant):
    release = release_of(variant, 5)
    assert release.address_source() == ADDRESS_SOURCES[variant]
    own, other = split_namespaces(settings_of(variant, 5))
    built = plan.build(validate(own, "test", other), run_variant(variant, 5))
    assert built["releases"][0]["routing"]["address"] == ADDRESS_SOURCES[variant]
    assert built["releases"][0]["routing"]["settleSeconds"] == canary_math.settle_seconds(release)


PLAN_LINES = {
    "gateway-mesh": [
        "    service    app: ClusterIP :80 → pod :8080, split by HTTPRoute app (in-mesh only: callers of Service app)",
        "    split      HTTPRoute app backendRefs: app-stable weight 95, app-canary weight 5",
        "    needs      the Gateway API v1 CRDs (HTTPRoute) and a service mesh that implements GAMMA",
        "    caveat     only calls made through the mesh are split by weight"],
    "gateway-north-south": [
        "    service    app: HTTPRoute on Gateway infra/public → app-stable, app-canary :80 → pod :8080 "
        "(address: from Gateway infra/public status)",
        "    needs      the Gateway API v1 CRDs (HTTPRoute), Gateway infra/public with a controller serving it"],
    "istio-mesh": [
        "    service    app: ClusterIP :80 → pod :8080, split by VirtualService app (in-mesh only: callers of Service app)",
        "    split      VirtualService app routes: subset stable weight 95, subset canary weight 5",
        "    needs      Istio 1.22+ (the networking.istio.io/v1 CRDs)"],
    "istio-gateway": [
        "    service    app: ClusterIP :80 → pod :8080, split by VirtualService app (address: the Istio ingress "
        "gateway behind Gateway istio-ingress/public",
        "and the Istio Gateway istio-ingress/public serving hosts app.example.com"],
    "skipper": [
        "    service    app: Ingress :80 → pod :8080 (address assigned at deploy)",
        "    split      Ingress app zalando.org/backend-weights: app-stable 95, app-canary 5",
        "    needs      skipper serving IngressClass skipper and kube-ingress-aws-controller in front of it"],
    "dns": [
        "    service    app.example.com: Route53 weighted records → LoadBalancer app-stable, app-canary :80 → pod :8080",
        "    split      Route53 A app.example.com: set stable weight 95 (load balancer of app-stable), set canary "
        "weight 5 (load balancer of app-canary)",
        "    needs      the public Route53 hosted zone example.com in the account (`rollout preflight` checks it); "
        "the records alias the in-tree classic ELBs in us-west-2",
        "    caveat     DNS caching makes this coarse: a weight change shows only after Route53 has it (up to 60 s) "
        "and the alias records' TTL (60 s) has run out in every resolver (so a step settles for 120 s before it is "
        "judged), and it splits by resolver, not by request"],
    "dns-nlb": ["the records alias NLBs from the AWS Load Balancer Controller in us-west-2"],
}


@pytest.mark.parametrize("variant", sorted(PLAN_LINES))
def test_the_plan_shows_each_mode_with_its_caveats(variant):
    own, other = split_namespaces(settings_of(variant, 5))
    text = plan.render_text(plan.build(validate(own, "test", other), run_variant(variant, 5)))
    for expected in PLAN_LINES[variant]:
        assert expected in text, f"{expected!r} not in:\n{text}"
    assert "(traffic: " + VARIANTS[variant][0] + ")" in text


FRONTS = {"gateway-mesh": "HTTPRoute", "gateway-north-south": "HTTPRoute", "istio-mesh": "VirtualService",
          "istio-gateway": "VirtualService", "skipper": "Ingress", "dns": "Route53 weighted records",
          "dns-nlb": "Route53 weighted records"}


@pytest.mark.parametrize("variant", sorted(FRONTS))
def test_the_plan_reads_the_traffic_object_the_program_registered(variant):
    # At 50%, a weight the tests above render too: both the raise and the abort move pods and weight.
    own, other = split_namespaces(settings_of(variant, 50))
    built = plan.build(validate(own, "test", other), run_variant(variant, 50))
    assert built["releases"][0]["service"]["type"] == FRONTS[variant]
    steps = built["releases"][0]["weightSteps"]
    assert [s["change"] for s in steps] == ["raise 50% → 100%", "abort 50% → 0%"]
    assert steps[0]["updates"] == ["canary 2 → 4 pods, awaited ready", "weight 50% → 100%"]
    assert steps[1]["updates"] == ["weight 50% → 0%", "canary 2 → 0 pods"]


# ---------------------------------------------------------------------------------------------
# `rollout preview` on a stack file of its own
# ---------------------------------------------------------------------------------------------


def write_stack(project: Path, name: str, variant: str) -> None:
    settings = settings_of(variant, 5)
    (project / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": settings}))


@pytest.fixture
def project(tmp_path):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(ROOT / "__main__.py", tmp_path / "__main__.py")
    return tmp_path


@pytest.mark.parametrize("variant", ["skipper", "dns", "dns-nlb"])
def test_preview_shows_the_built_in_modes_with_their_caveats(variant, project, capsys):
    from rollout.cli import main

    write_stack(project, "test", variant)
    code = main(["-C", str(project), "preview", "test", "--out", str(project / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"app  Canary (traffic: {VARIANTS[variant][0]})" in out
    for expected in PLAN_LINES[variant]:
        assert expected.strip() in out
    written = sorted(p.name for p in (project / "out").glob("*.yaml"))
    assert any("ingress-app" in n for n in written) == (variant == "skipper")
    assert any("service-app-canary" in n for n in written)


@pytest.mark.parametrize("variant", ["gateway-mesh", "gateway-north-south", "istio-mesh", "istio-gateway"])
def test_preview_shows_the_custom_resource_modes(variant, project, capsys):
    from rollout.cli import main

    write_stack(project, "test", variant)
    code = main(["-C", str(project), "preview", "test", "--out", str(project / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    for expected in PLAN_LINES[variant]:
        assert expected.strip() in out


# ---------------------------------------------------------------------------------------------
# The mocks answer the new data sources as AWS does
# ---------------------------------------------------------------------------------------------


def test_the_hosted_zone_lookup_answers_like_route53():
    zone = aws_mocks.hosted_zone("example.com")
    assert re.fullmatch(r"Z[0-9A-Z]{20}", zone["id"]) and zone["zoneId"] == zone["id"]
    assert zone["name"] == "example.com." and zone["privateZone"] is False
    assert aws_mocks.hosted_zone("example.com.")["id"] == zone["id"] != aws_mocks.hosted_zone("example.org")["id"]


@pytest.mark.parametrize("kind,region,zone_id", [
    ("network", "us-west-2", "Z18D5FSROUN65G"), ("classic", "us-west-2", "Z1H1FL5HABSF5"),
    ("application", "us-west-2", "Z1H1FL5HABSF5"), ("network", "us-east-1", "Z26RNL4JYFTOTI"),
    ("classic", "us-east-1", "Z35SXDOTRQ7X7K"), ("network", "eu-central-1", "Z3F0SRJ5LGBH90"),
])
def test_the_load_balancer_zone_ids_are_the_real_per_region_ones(kind, region, zone_id):
    assert aws_mocks.load_balancer_zone_id(kind, region) == zone_id


def test_the_mocks_answer_the_invokes_and_fail_an_unknown_region_as_the_provider_does():
    from pulumi.runtime.mocks import MockCallArgs

    from preview.mocks import mock_classes

    mocks = mock_classes()[0]("test", "us-west-2")
    lb = mocks.call(MockCallArgs("aws:lb/getHostedZoneId:getHostedZoneId", {"loadBalancerType": "network"}, ""))
    assert lb == ({"id": "Z18D5FSROUN65G", "region": "us-west-2", "loadBalancerType": "network"}, [])
    elb = mocks.call(MockCallArgs("aws:elb/getHostedZoneId:getHostedZoneId", {"region": "us-east-1"}, ""))
    assert elb == ({"id": "Z35SXDOTRQ7X7K", "region": "us-east-1"}, [])
    zone, failures = mocks.call(MockCallArgs("aws:route53/getZone:getZone", {"name": "example.com"}, ""))
    assert zone["name"] == "example.com." and failures == []
    assert mocks.call(MockCallArgs("aws:elb/getHostedZoneId:getHostedZoneId", {"region": "xx-nowhere-1"}, "")) == (
        {}, [("region", "unsupported AWS Region: xx-nowhere-1")])
    assert [token for token, _ in mocks.invokes] == ["aws:lb/getHostedZoneId:getHostedZoneId",
                                                     "aws:elb/getHostedZoneId:getHostedZoneId",
                                                     "aws:route53/getZone:getZone",
                                                     "aws:elb/getHostedZoneId:getHostedZoneId"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_stack_file_of_each_new_mode_passes_the_committed_schema(variant):
    import jsonschema

    from model.config_models import SCHEMA_FILE

    validator = jsonschema.Draft202012Validator(json.loads((ROOT / SCHEMA_FILE).read_text()))
    document = {"config": settings_of(variant, 5)}
    assert [e.message for e in validator.iter_errors(document)] == []
    wrong = copy.deepcopy(document)
    wrong["config"]["app-update:releases"]["other"]["gateway"] = {"name": "public"}  # a RollingUpdate release
    assert list(validator.iter_errors(wrong))


def test_a_dns_canary_waits_out_the_ttl_before_judging_and_before_an_abort_is_complete(monkeypatch):
    from operations import canary_run
    from operations.canary_run import CanaryOptions, do_abort, run_canary
    from tests.clock import VirtualClock

    judges = []

    def no_probes(self, duration, on_tick):
        judges.append(self.judge)
        return answers_at_weight(self, duration, on_tick)

    monkeypatch.setattr(canary_run.Prober, "run", no_probes)
    stack = order_stack("dns")
    clock = VirtualClock()
    options = CanaryOptions(release="app", tag="v2", steps=[5, 50], interval=0.5, url="http://127.0.0.1:9/")
    assert run_canary(stack, options, clock=clock).exit_code == 0
    assert clock.slept == [120.0, 120.0]  # after each step's weight change, before judging it
    # One prober is one resolver: the share is never judged in dns mode, errors and latency are.
    assert all(judge.settling for judge in judges)
    stack.config["app-update:releases"]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="by hand")
    clock = VirtualClock()
    assert do_abort(stack, "app", True, None, clock=clock) == 0
    assert clock.slept == [120.0]  # the abort is complete only once DNS caches follow


def test_other_modes_judge_at_once(monkeypatch):
    from operations import canary_run
    from operations.canary_run import CanaryOptions, run_canary
    from tests.clock import VirtualClock

    monkeypatch.setattr(canary_run.Prober, "run", answers_at_weight)
    clock = VirtualClock()
    options = CanaryOptions(release="app", tag="v2", steps=[5, 50], interval=0.5, url="http://127.0.0.1:9/")
    assert run_canary(order_stack("skipper"), options, clock=clock).exit_code == 0
    assert clock.slept == []
