"""The policy rules: each through pulumi_policy's ResourceValidationArgs/StackValidationArgs (as the
pack runs them, without starting the pack) and through the offline `check_run`, and the
repository's own stacks against every mandatory rule."""

import copy
import json
import runpy
import subprocess
import sys

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy

from policy import rules
from tests.conftest import ROOT, STACKS, run_with, workshop_release

DEPLOYMENT = rules.DEPLOYMENT
SERVICE = rules.SERVICE
NOT_PROTECTED: dict[str, str] = {}  # an environment without PULUMI_CONFIG


def container(**overrides):
    c = {
        "name": "app",
        "image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/app-update/app:v1@sha256:" + "a" * 64,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
        "livenessProbe": {"httpGet": {"path": "/", "port": "http"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "allowPrivilegeEscalation": False},
    }
    c.update(overrides)
    return {k: v for k, v in c.items() if v is not None}


def deployment(name="app", replicas=3, strategy="RollingUpdate", track=None, **container_overrides):
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "app-update"}
    selector = {"app.kubernetes.io/name": name}
    if track:
        labels[rules.TRACK_LABEL] = track
        selector[rules.TRACK_LABEL] = track
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "app-update", "labels": labels},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": selector}, "strategy": {"type": strategy},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [container(**container_overrides)]}},
        },
    }


def pdb(name="app", selector=None):
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "app-update"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector or {"app.kubernetes.io/name": name}}}}


def service(kind="LoadBalancer", labels=None):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": labels if labels is not None else {
                "app.kubernetes.io/name": "app", "app.kubernetes.io/part-of": "app-update"}},
            "spec": {"type": kind, "ports": [{"port": 80}]}}


def blue_green_service(check=True):
    annotations = {rules.BLUE_GREEN_ROLE: "active"}
    if check:
        annotations[rules.PREVIEW_CHECK] = '{"interval":"2m","path":"/"}'
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "app-bg", "annotations": annotations,
                         "labels": {"app.kubernetes.io/name": "app-bg", "app.kubernetes.io/part-of": "app-update"}},
            "spec": {"type": "LoadBalancer", "selector": {"app.kubernetes.io/name": "app-bg", "version": "blue"},
                     "ports": [{"port": 80}]}}


def eks(cidrs=None, public=True):
    vpc = {"endpointPublicAccess": public, "endpointPrivateAccess": True, "subnetIds": ["subnet-1"]}
    if cidrs is not None:
        vpc["publicAccessCidrs"] = cidrs
    return {"name": "cluster", "version": "1.33", "vpcConfig": vpc}


# rule name -> (type token, violating props, passing props)
CASES = {
    "no-latest-image-tag": (DEPLOYMENT, deployment(image="arungupta/app-upgrade:latest"),
                            deployment(image="arungupta/app-upgrade:v2")),
    "container-requests": (DEPLOYMENT, deployment(resources={"limits": {"memory": "128Mi"}}), deployment()),
    "container-probes": (DEPLOYMENT, deployment(livenessProbe=None), deployment()),
    "container-non-root": (DEPLOYMENT, deployment(securityContext={"allowPrivilegeEscalation": False}),
                           deployment()),
    "no-load-balancer-outside-release": (SERVICE, service(labels={"app": "web"}), service()),
    "no-recreate-on-protected": (DEPLOYMENT, deployment(strategy="Recreate"), deployment()),
    "stable-replicas-on-protected": (DEPLOYMENT, deployment(replicas=1, track="stable"),
                                     deployment(replicas=1, track="canary")),
    "image-from-private-registry": (DEPLOYMENT, deployment(image="arungupta/app-upgrade:v1@sha256:" + "b" * 64),
                                    deployment()),
    "image-pinned-by-digest": (DEPLOYMENT,
                               deployment(image="123456789012.dkr.ecr.us-west-2.amazonaws.com/app-update/app:v1"),
                               deployment()),
    "eks-endpoint-restricted-on-protected": (rules.EKS_CLUSTER, eks(["0.0.0.0/0"]), eks(["203.0.113.0/24"])),
    "bluegreen-preview-check-on-protected": (SERVICE, blue_green_service(check=False), blue_green_service()),
}
RESOURCE_RULES = [r.name for r in rules.RULES if r.scope == "resource"]


def engine_props(props):
    """Props as the engine hands them to a pack: numbers as floats (protobuf Struct), behind the
    read-only proxy that raises on values unknown during preview."""
    def floats(value):
        if isinstance(value, dict):
            return {k: floats(v) for k, v in value.items()}
        if isinstance(value, list):
            return [floats(v) for v in value]
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value
    return unknown_checking_proxy(floats(copy.deepcopy(props)))


def options():
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def validate_resource(rule_name, typ, props, config=None, environ=None):
    """Run a rule's validate callback as the pack does, collecting what it reports."""
    reported = []
    args = ResourceValidationArgs(typ, engine_props(props), f"urn:pulumi:test::app-update::{typ}::res", "res",
                                  options(), None, config)
    rules.resource_validator(rules.RULES_BY_NAME[rule_name], NOT_PROTECTED if environ is None else environ)(
        args, lambda message, urn=None: reported.append(message))
    return reported


def policy_resources(items):
    return [PolicyResource(typ, engine_props(props), f"urn:pulumi:test::app-update::{typ}::{name}", name, options(),
                           None, None, [], {}) for typ, name, props in items]


def validate_stack(rule_name, items, config=None, environ=None):
    reported = []
    args = StackValidationArgs(policy_resources(items), config)
    rules.stack_validator(rules.RULES_BY_NAME[rule_name], NOT_PROTECTED if environ is None else environ)(
        args, lambda message, urn=None: reported.append((message, urn)))
    return reported


def test_every_rule_has_a_case():
    assert set(CASES) == set(RESOURCE_RULES)
    assert {r.name for r in rules.RULES if r.scope == "stack"} == {"pdb-per-deployment-on-protected",
                                                                          "promotion-proof-on-protected"}


# ---------------------------------------------------------------------------------------------
# Each rule, through ResourceValidationArgs and through the offline check
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RESOURCE_RULES)
def test_rule_through_resource_validation_args(name):
    typ, bad, good = CASES[name]
    config = {"protected": True} if rules.RULES_BY_NAME[name].protected_only else None
    found = validate_resource(name, typ, bad, config)
    assert len(found) == 1 and found[0], found
    assert validate_resource(name, typ, good, config) == []


@pytest.mark.parametrize("name", RESOURCE_RULES)
def test_rule_through_the_offline_check(name):
    typ, bad, good = CASES[name]
    rule = rules.RULES_BY_NAME[name]
    found = [v for v in rules.check([(typ, "res", bad)], protected=True) if v.policy == name]
    assert [(v.resource, v.level) for v in found] == [(f"res ({typ})", rule.level)]
    assert not [v for v in rules.check([(typ, "res", good)], protected=True) if v.policy == name]


@pytest.mark.parametrize("name", [r.name for r in rules.RULES if r.protected_only and r.scope == "resource"])
def test_protected_rules_apply_only_to_protected_stacks(name):
    typ, bad, _ = CASES[name]
    assert validate_resource(name, typ, bad) == []  # not protected: silent
    assert validate_resource(name, typ, bad, {"protected": True})  # the policy config says so
    # the stack's own config, as the engine passes it to the pack
    assert validate_resource(name, typ, bad, environ={"PULUMI_CONFIG": json.dumps({"app-update:protected": "true"})})
    assert validate_resource(name, typ, bad, environ={"PULUMI_CONFIG": json.dumps({"app-update:protected": "false"})}) == []
    assert not [v for v in rules.check([(typ, "res", bad)], protected=False) if v.policy == name]


def test_pdb_rule_through_stack_validation_args():
    protected = {"protected": True}
    lonely = [(DEPLOYMENT, "app", deployment(replicas=3))]
    found = validate_stack("pdb-per-deployment-on-protected", lonely, protected)
    assert len(found) == 1
    message, urn = found[0]
    assert message.startswith("app: 3 replicas and no PodDisruptionBudget") and urn.endswith("::app")
    covered = lonely + [(rules.PDB, "app-pdb", pdb())]
    assert validate_stack("pdb-per-deployment-on-protected", covered, protected) == []
    # a budget over both canary tracks does not protect one track
    wide = [(DEPLOYMENT, "app-stable", deployment("app", replicas=2, track="stable")), (rules.PDB, "p", pdb())]
    assert len(validate_stack("pdb-per-deployment-on-protected", wide, protected)) == 1
    # one replica needs none; not protected: silent
    assert validate_stack("pdb-per-deployment-on-protected", [(DEPLOYMENT, "a", deployment(replicas=1))], protected) == []
    assert validate_stack("pdb-per-deployment-on-protected", lonely) == []


def test_pdb_rule_offline():
    lonely = [(DEPLOYMENT, "app", deployment(replicas=2))]
    assert [v.policy for v in rules.mandatory(rules.check(lonely, protected=True))] == ["pdb-per-deployment-on-protected"]
    assert not rules.mandatory(rules.check(lonely + [(rules.PDB, "app", pdb())], protected=True))


@pytest.mark.parametrize("image, problem", [
    ("arungupta/app-upgrade", "has no tag"),
    ("arungupta/app-upgrade:", "empty tag"),
    ("arungupta/app-upgrade:latest", "'latest'"),
    ("localhost:5000/app", "has no tag"),  # the port is no tag
    ("", "has no image"),
])
def test_unpinned_tags(image, problem):
    found = validate_resource("no-latest-image-tag", DEPLOYMENT, deployment(image=image))
    assert len(found) == 1 and problem in found[0], found


@pytest.mark.parametrize("image", ["localhost:5000/app:v1", "app@sha256:" + "c" * 64, "ghcr.io/o/app:1.2.3"])
def test_pinned_tags_pass(image):
    assert validate_resource("no-latest-image-tag", DEPLOYMENT, deployment(image=image)) == []


def test_init_containers_and_pod_security_context_count():
    props = deployment()
    pod = props["spec"]["template"]["spec"]
    pod["initContainers"] = [container(name="migrate", image="busybox:latest", securityContext=None)]
    assert any("init container migrate" in m for m in validate_resource("no-latest-image-tag", DEPLOYMENT, props))
    assert any("init container migrate" in m for m in validate_resource("container-non-root", DEPLOYMENT, props))
    pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1000}  # the pod's context covers it
    assert validate_resource("container-non-root", DEPLOYMENT, props) == []
    root = deployment(securityContext={"runAsNonRoot": True, "runAsUser": 0})
    assert "uid 0" in validate_resource("container-non-root", DEPLOYMENT, root)[0]
    privileged = deployment(securityContext={"runAsNonRoot": True, "privileged": True})
    assert "privileged" in validate_resource("container-non-root", DEPLOYMENT, privileged)[0]


def test_jobs_need_no_probes():
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "spec": {"template": {"spec": {"containers": [container(readinessProbe=None, livenessProbe=None)]}}}}
    assert validate_resource("container-probes", "kubernetes:batch/v1:Job", job) == []


@pytest.mark.parametrize("image, registry", [
    ("arungupta/app-upgrade:v1", None), ("nginx", None), ("docker.io/library/nginx:1", "docker.io"),
    ("123456789012.dkr.ecr.us-west-2.amazonaws.com/app:v1", "123456789012.dkr.ecr.us-west-2.amazonaws.com"),
    ("registry:5000/app:v1", "registry:5000"),
])
def test_registry_parsing(image, registry):
    assert rules.parse_image(image).registry == registry


def test_docker_io_spelled_out_is_still_docker_hub():
    found = validate_resource("image-from-private-registry", DEPLOYMENT, deployment(image="docker.io/library/nginx:1"))
    assert len(found) == 1


def test_eks_endpoint_defaults():
    # no CIDRs given: AWS opens the public endpoint to 0.0.0.0/0; a private-only endpoint is fine
    assert validate_resource("eks-endpoint-restricted-on-protected", rules.EKS_CLUSTER, eks(None), {"protected": True})
    assert validate_resource("eks-endpoint-restricted-on-protected", rules.EKS_CLUSTER, eks(["0.0.0.0/0"], public=False),
                             {"protected": True}) == []


def test_a_value_unknown_during_preview_is_left_to_the_pack():
    """The engine's proxy raises for unknowns; the pack turns that into "can't run during preview"."""
    from pulumi.runtime.rpc import UNKNOWN
    from pulumi_policy.proxy import UnknownValueError

    props = deployment()
    props["spec"]["template"]["spec"]["containers"][0]["image"] = UNKNOWN
    with pytest.raises(UnknownValueError):
        validate_resource("no-latest-image-tag", DEPLOYMENT, props)


# ---------------------------------------------------------------------------------------------
# Policy config: enforcement levels and `protected`
# ---------------------------------------------------------------------------------------------


def test_policy_config_changes_enforcement_levels():
    bad = [(DEPLOYMENT, "app", deployment(image="app:latest", strategy="Recreate")), (rules.PDB, "app", pdb())]
    assert {v.policy for v in rules.mandatory(rules.check(bad, protected=True))} == {
        "no-latest-image-tag", "no-recreate-on-protected"}
    relaxed = rules.check(bad, protected=True, config={"no-recreate-on-protected": "advisory"})
    assert {v.policy for v in rules.mandatory(relaxed)} == {"no-latest-image-tag"}
    assert not rules.mandatory(rules.check(bad, protected=True, config={"all": "advisory"}))
    off = rules.check(bad, protected=True, config={"no-latest-image-tag": {"enforcementLevel": "disabled"}})
    assert "no-latest-image-tag" not in {v.policy for v in off}


def test_policy_config_problems_are_one_line_each():
    assert rules.config_problems({"no-such-rule": "advisory"})[0].startswith("no-such-rule: no such policy")
    assert "enforcement level" in rules.config_problems({"container-probes": "off"})[0]
    assert "unknown setting(s) protected" in rules.config_problems({"container-probes": {"protected": True}})[0]
    assert rules.config_problems({"all": "mandatory", "no-recreate-on-protected": {"protected": True}}) == []


def test_protected_config_file_marks_every_protected_rule(tmp_path):
    config = rules.load_policy_config(ROOT / "policy" / "protected.json")
    assert {name for name, value in config.items() if value.get("protected") is True} == {
        r.name for r in rules.RULES if r.protected_only}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(rules.PolicyConfigError, match="bad.json: cannot read it as JSON"):
        rules.load_policy_config(bad)


def test_report_lines_name_policy_resource_and_level():
    lines = rules.report(rules.check([(DEPLOYMENT, "web", deployment(image="web:latest"))], protected=False))
    assert lines[0].startswith("mandatory  no-latest-image-tag: web (kubernetes:apps/v1:Deployment): container app:")
    assert lines[-1] == "policy: 1 mandatory, 2 advisory violation(s)"


# ---------------------------------------------------------------------------------------------
# The program's own stacks, offline
# ---------------------------------------------------------------------------------------------


def stack_is_protected(stack):
    from model.stack_file import stack_settings

    return str(stack_settings(stack, ROOT).get("app-update:protected", "false")).lower() == "true"


@pytest.mark.parametrize("stack", STACKS)
def test_the_repositorys_stacks_pass_every_mandatory_rule(stack_runs, stack):
    run = stack_runs[stack]
    assert run.error is None
    found = rules.check_run(run.resources, stack_is_protected(stack))
    assert rules.mandatory(found) == [], rules.report(found)
    if stack == "prod":
        assert stack_is_protected("prod")
        assert not [v for v in found if v.policy == "eks-endpoint-restricted-on-protected"]


def test_a_protected_stack_with_a_recreate_release_fails():
    run = run_with({"app": {"strategy": "Recreate", "tag": "v1", "replicas": 3}}, protected=True)
    assert run.error is None, run.error
    found = rules.mandatory(rules.check_run(run.resources, protected=True))
    assert [(v.policy, v.resource) for v in found] == [
        ("no-recreate-on-protected", "app-deployment (kubernetes:apps/v1:Deployment)")]
    assert rules.mandatory(rules.check_run(run.resources, protected=False)) == []


@pytest.mark.parametrize("protected", [False, True])
def test_any_stack_with_a_latest_tag_fails(protected):
    run = run_with({"app": workshop_release(tag="latest")}, protected=protected)
    assert run.error is None, run.error
    found = rules.mandatory(rules.check_run(run.resources, protected=protected))
    assert {v.policy for v in found} == {"no-latest-image-tag"}


def test_a_protected_canary_with_one_stable_pod_fails():
    release = {"strategy": "Canary", "stable": {"tag": "v1", "replicas": 1}, "canary": {"tag": "v2", "replicas": 1}}
    run = run_with({"app": release})
    assert run.error is None, run.error
    found = rules.mandatory(rules.check_run(run.resources, protected=True))
    assert [(v.policy, v.resource) for v in found] == [
        ("stable-replicas-on-protected", "app-stable (kubernetes:apps/v1:Deployment)")]


# ---------------------------------------------------------------------------------------------
# The pack itself, built without starting its server
# ---------------------------------------------------------------------------------------------


def test_the_pack_wraps_every_rule(monkeypatch):
    import pulumi_policy

    built = {}

    def fake_pack(**kwargs):  # PolicyPack(...) would start the gRPC server and block
        built.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", fake_pack)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "rules", raising=False)
    try:
        runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    finally:
        sys.modules.pop("rules", None)  # the pack's own import of rules.py, by its bare name
    assert built["name"] == "app-update"
    policies = {p.name: p for p in built["policies"]}
    assert list(policies) == [r.name for r in rules.RULES]
    for rule in rules.RULES:
        policy = policies[rule.name]
        assert policy.enforcement_level == EnforcementLevel(rule.level)
        assert isinstance(policy, StackValidationPolicy if rule.scope == "stack" else ResourceValidationPolicy)
        assert (policy.config_schema is not None) == rule.protected_only
    reported = []
    args = ResourceValidationArgs(DEPLOYMENT, engine_props(deployment(image="app:latest")), "urn", "app", options(), None)
    policies["no-latest-image-tag"].validate(args, lambda message, urn=None: reported.append(message))
    assert len(reported) == 1 and "'latest'" in reported[0]


def test_the_rules_import_without_pulumi_policy():
    code = ("import sys; sys.modules['pulumi_policy'] = None; import policy.rules as r; "
            "print(len(r.RULES), 'pulumi_policy' in sys.modules and sys.modules['pulumi_policy'] is not None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(rules.RULES)), "False"]


def test_pack_files_are_in_place():
    import yaml

    meta = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"]["name"] == "python" and meta["runtime"]["options"]["virtualenv"] == "venv"
    assert set(meta) <= {"runtime", "version", "main", "description", "author", "website", "license"}
    pins = (ROOT / "policy" / "requirements.txt").read_text()
    assert "pulumi-policy==" in pins and "pulumi==" in pins


# ---------------------------------------------------------------------------------------------
# BlueGreen on protected stacks
# ---------------------------------------------------------------------------------------------


def blue_green(**overrides):
    release = {"strategy": "BlueGreen", "replicas": 2, "active": "blue", "blue": {"tag": "v1"},
               "green": {"tag": "v2", "replicas": 0}}
    release.update(overrides)
    return release


def test_a_protected_blue_green_release_needs_a_preview_check():
    unchecked = [v for v in rules.check_run(run_with({"app-bg": blue_green()}).resources, protected=True)
                 if v.level == rules.MANDATORY]
    assert [(v.policy, v.resource) for v in unchecked] == [
        ("bluegreen-preview-check-on-protected", "app-bg-service (kubernetes:core/v1:Service)")]
    assert "app-update:releases.app-bg.previewCheck" in unchecked[0].message
    checked = run_with({"app-bg": blue_green(previewCheck={"interval": "2m", "path": "/healthz"})})
    assert not rules.mandatory(rules.check_run(checked.resources, protected=True))
    assert not rules.mandatory(rules.check_run(run_with({"app-bg": blue_green()}).resources, protected=False))


def test_a_scaled_down_color_is_no_stable_track_with_too_few_pods():
    run = run_with({"app-bg": blue_green(previewCheck={"interval": "1m"})})
    found = [v for v in rules.check_run(run.resources, protected=True) if v.policy == "stable-replicas-on-protected"]
    assert found == []
    one = run_with({"app-bg": blue_green(replicas=1, green=None, previewCheck={"interval": "1m"})})
    assert [v.resource for v in rules.check_run(one.resources, protected=True)
            if v.policy == "stable-replicas-on-protected"] == ["app-bg-blue (kubernetes:apps/v1:Deployment)"]


@pytest.mark.parametrize("active,record,ok", [("blue", "v1", True), ("green", "v2", True), ("blue", "v3", False)])
def test_promotion_proof_reads_a_blue_green_release_on_its_active_color(active, record, ok):
    release = blue_green(active=active, green={"tag": "v2"}, previewCheck={"interval": "1m"})
    run = run_with({"app-bg": release})
    items = [(r.type, r.name, r.inputs) for r in run.resources if r.custom]
    environ = {"PULUMI_CONFIG": json.dumps({
        "app-update:promotion": json.dumps({"from": ["staging"]}),
        "app-update:verification": json.dumps({"app-bg": {"how": "promotion", "image": f"arungupta/app-upgrade:{record}"}}),
    })}
    found = rules.promotion_proof([rules.Resource(*item) for item in items], environ)
    assert (found == []) is ok, found
